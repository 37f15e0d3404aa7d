// ask(): how troupe actors make requests of other actors.
//
// Every request in the runtime goes through here, so two rules hold in one
// place: the timeout is always finite and positive (a lost reply never blocks
// anything forever), and the reply is handled asynchronously with
// `.then(on_reply, on_error)` — never `.await` or a blocking receive, which
// stall a scheduler thread and hold back exit messages (CAF #1584). It is
// also the seam where the deadlock detector will record wait edges.
//
// Example:
//   troupe::ask(self, counter, rt.request_timeout, troupe::get_atom_v)
//     .then([](int64_t n) { ... }, [](caf::error& e) { ... });
#pragma once

#include <chrono>
#include <stdexcept>
#include <utility>

#include <caf/timespan.hpp>

#include "troupe/units.hpp"

namespace troupe {

template <class Self, class Dest, class... Ts>
auto ask(Self* self, const Dest& dest, duration timeout, Ts&&... xs) {
  if (timeout <= duration{0})
    throw std::invalid_argument("troupe::ask: the timeout must be positive");
  return self->request(dest, std::chrono::duration_cast<caf::timespan>(timeout),
                       std::forward<Ts>(xs)...);
}

} // namespace troupe
