#include "troupe/errors.hpp"

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>
#include <caf/exit_reason.hpp>
#include <caf/sec.hpp>

namespace troupe {

const char* to_string(errc x) {
  switch (x) {
    case errc::none:
      return "none";
    case errc::stage_failed:
      return "stage_failed";
    case errc::worker_failed:
      return "worker_failed";
    case errc::restart_budget:
      return "restart_budget";
    case errc::unrecoverable:
      return "unrecoverable";
    case errc::refused:
      return "refused";
    case errc::failed:
      return "failed";
    case errc::timeout:
      return "timeout";
    case errc::cancelled:
      return "cancelled";
    case errc::unavailable:
      return "unavailable";
    case errc::deadlock:
      return "deadlock";
  }
  return "unknown";
}

caf::error make_error(errc code, std::string context) {
  return caf::error{static_cast<uint8_t>(code), caf::atom("troupe"),
                    caf::make_message(std::move(context))};
}

std::string render(const caf::error& err) {
  if (!err)
    return "none";
  if (err.category() == caf::atom("troupe")) {
    std::string out = "troupe.";
    out += to_string(static_cast<errc>(err.code()));
    auto& ctx = err.context();
    if (ctx.size() == 1 && ctx.match_element<std::string>(0))
      out += ": " + ctx.get_as<std::string>(0);
    return out;
  }
  if (err.category() == caf::atom("system"))
    return std::string{"caf."} + caf::to_string(static_cast<caf::sec>(err.code()));
  if (err.category() == caf::atom("exit"))
    return std::string{"caf.exit."}
           + caf::to_string(static_cast<caf::exit_reason>(err.code()));
  return caf::to_string(err);
}

} // namespace troupe
