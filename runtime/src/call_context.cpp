#include "troupe/call_context.hpp"

#include <caf/atom.hpp>
#include <caf/sec.hpp>

#include "troupe/errors.hpp"

namespace troupe {

call_context::~call_context() = default;

call_status classify(const caf::error& err) {
  if (err.category() == caf::atom("troupe")) {
    switch (static_cast<errc>(err.code())) {
      case errc::refused:
        return call_status::refused;
      case errc::timeout:
        return call_status::timeout;
      case errc::unavailable:
        return call_status::unavailable;
      default:
        return call_status::failed;
    }
  }
  if (err.category() == caf::atom("system")) {
    switch (static_cast<caf::sec>(err.code())) {
      case caf::sec::request_timeout:
        return call_status::timeout;
      case caf::sec::request_receiver_down:
      case caf::sec::invalid_argument: // a request to a null handle
        return call_status::unavailable;
      default:
        return call_status::failed;
    }
  }
  if (err.category() == caf::atom("exit"))
    return call_status::unavailable;
  return call_status::failed;
}

} // namespace troupe
