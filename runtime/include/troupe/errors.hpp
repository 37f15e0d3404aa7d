// troupe's error values. Errors cross actor boundaries as caf::error with the
// category atom "troupe"; the runtime registers a renderer so they print as
// readable text ("troupe.stage_failed: sha256: ...").
#pragma once

#include <cstdint>
#include <string>

#include <caf/error.hpp>

namespace troupe {

enum class errc : uint8_t {
  none = 0,
  stage_failed,     // a node's logic threw; the node is restarted
  worker_failed,    // a map worker died; its node is restarted
  restart_budget,   // a child crashed more often than supervision allows
  unrecoverable,    // a failure a restart cannot fix: the run fails at once
  // Service replies (call_status in waiting.hpp):
  refused,          // the service said no: a limiter's max_wait, a full queue
  failed,           // the work failed: a computation threw, a task gave up
  timeout,          // a service's own deadline passed (gather, a queue wait)
  cancelled,        // the caller no longer wants it (a race's losers)
  unavailable,      // the service is shutting down or has no worker left
  deadlock,         // the request waited in a cycle (deadlock_detector.hpp)
};

const char* to_string(errc x);

// Makes a caf::error in troupe's category carrying a human-readable context.
caf::error make_error(errc code, std::string context);

// Renders any caf::error with troupe's, CAF's or another category readably.
std::string render(const caf::error& err);

} // namespace troupe
