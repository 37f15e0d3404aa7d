#include "troupe/hygiene.hpp"

#include <iostream>
#include <memory>

#include <caf/message.hpp>
#include <caf/message_view.hpp>
#include <caf/scheduled_actor.hpp>
#include <caf/sec.hpp>

#include "node_actor.hpp"
#include "troupe/errors.hpp"
#include "troupe/node_logic.hpp"
#include "troupe/log.hpp"

namespace troupe {

void install_default_handler(caf::scheduled_actor* self, std::string who,
                             std::atomic<uint64_t>* counter) {
  auto logged = std::make_shared<int>(0);
  self->set_default_handler(
    [who, counter, logged](caf::scheduled_actor*,
                           caf::message_view& x) -> caf::result<caf::message> {
      if (counter)
        counter->fetch_add(1, std::memory_order_relaxed);
      if ((*logged)++ < 10)
        TROUPE_LOG(warn, who,
                   "unexpected message "
                     << caf::to_string(x.copy_content_to_message())
                     << " (counted, dropped)");
      return caf::sec::unexpected_message;
    });
}

void install_exception_handler(caf::scheduled_actor* self, std::string who) {
  self->set_exception_handler(
    [who](caf::scheduled_actor*, std::exception_ptr& e) -> caf::error {
      try {
        std::rethrow_exception(e);
      } catch (const unrecoverable_error& x) {
        return make_error(errc::unrecoverable, who + ": " + x.what());
      } catch (...) {
      }
      return make_error(errc::stage_failed, who + ": " + detail::describe(e));
    });
}

} // namespace troupe
