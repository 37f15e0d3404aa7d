// gather and race (troupe/actors/gather.hpp, race.hpp) are templates run
// on the calling actor; this is their one non-template piece: how a failed
// request is reported.
#include "troupe/actors/gather.hpp"

#include <caf/sec.hpp>

namespace troupe::detail {

namespace {

std::string show(duration d) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  return std::to_string(ms) + "ms";
}

} // namespace

caf::error gather_error(const char* who, size_t index, duration deadline,
                        caf::error err) {
  if (err == caf::sec::request_timeout)
    return make_error(errc::timeout, std::string{who} + ": request "
                                       + std::to_string(index)
                                       + " had no reply within the deadline of "
                                       + show(deadline));
  return err; // the callee's own error, unchanged
}

} // namespace troupe::detail
