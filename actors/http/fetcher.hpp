// One request to its final outcome, on a node: the circuit breaker's say,
// a permit from the node's rate limiter (each attempt takes one, so retries
// count against the rate too), the transfer on the node's engine, then a
// retry after backoff or the outcome. Shared by http_fetch and paginate.
//
// Runs on the node's thread: the engine's completions come back through
// node_calls::external(), backoff through node_calls::after(), so a crash
// of the node drops its fetches with its incarnation (the engine, owned
// here, aborts their transfers) and upstream redelivers their records.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>
#include <optional>
#include <string>
#include <unordered_map>

#include "policy.hpp"
#include "settings.hpp"
#include "troupe/actors/http.hpp"
#include "troupe/waiting.hpp"

namespace troupe {
class limiter_client;
}

namespace troupe::http {

struct fetch_outcome {
  response res;          // the last attempt's
  uint32_t attempts = 0; // transfers started
  duration elapsed{0};   // from the first attempt to the outcome
  // Set when no transfer made the outcome: the circuit was open, the rate
  // limiter refused, or the fetch was cancelled before its transfer.
  std::string refused;
  // Said after the reason (why the retries stopped early).
  std::string note;
  // `refused` is a whole reason already (a race's summary of its mirrors).
  bool summary = false;
};

// "12.345": milliseconds with microseconds, for attributes and JSON.
std::string millis(duration d);

// An outcome the node passes on: a response whose status `accept` lists.
bool succeeded(const fetch_outcome& o, const std::vector<std::string>& accept);

// For the errors output: why it failed, and its kind for the http_error
// attribute ("refused", "status", or the transfer's failure: "timeout", ...).
std::string failure_reason(const fetch_outcome& o);
const char* failure_kind(const fetch_outcome& o);

// Sets the attributes every HTTP node's records carry: http_url,
// http_attempts, http_elapsed_ms, http_transfer_ms, http_status and, when it
// failed, http_error.
void set_outcome_attrs(record& r, const fetch_outcome& o, bool ok);

class fetcher {
public:
  using done_fn = std::function<void(fetch_outcome, emitter&)>;
  // Told of every finished transfer (adaptive concurrency listens).
  using observer_fn = std::function<void(const response&)>;

  fetcher(const fetch_settings& s, node_calls& calls, limiter_client* limiter,
          uint64_t seed);

  // Starts `req`; `done` runs once on the node's thread. `limit_key` is the
  // rate limiter's bucket key. Returns a handle for cancel().
  uint64_t fetch(request req, std::string limit_key, done_fn done,
                 emitter& out);
  // Ends a fetch early: its transfer is aborted (the server sees the
  // connection close), a pending retry is dropped; `done` still runs, with
  // failure::cancelled. Call it from a continuation (on the node's thread).
  void cancel(uint64_t handle, emitter& out);

  void on_transfer(observer_fn f) {
    observer_ = std::move(f);
  }

  engine& transport() {
    return engine_;
  }

private:
  struct job {
    uint64_t handle = 0;
    request req;
    std::string limit_key;
    done_fn done;
    std::string host;
    uint32_t attempts = 0;
    std::chrono::steady_clock::time_point began;
    std::optional<uint64_t> transfer; // engine id while a transfer runs
    std::optional<uint64_t> timer;    // node timer while backing off
    std::optional<response> last;     // the last attempt's response
    bool cancelled = false;
    bool probe = false; // the breaker let this attempt through as its probe
  };
  using job_ptr = std::shared_ptr<job>;

  // Finished transfers on their way from the engine's I/O thread to the
  // node: one external call wakes the node for all that finished meanwhile
  // (a message per batch, not per response). While transfers run, exactly
  // one call is armed (waiting for the first response) or fired (drain
  // pending), so the node does not finish under them.
  struct inbox {
    std::mutex mtx;
    std::vector<std::tuple<job_ptr, std::optional<uint64_t>, response>> items;
    std::shared_ptr<external_call> armed;
  };

  void attempt(const job_ptr& j, emitter& out);
  void drain(emitter& out);
  void transfer(const job_ptr& j, std::optional<uint64_t> permit);
  void on_response(const job_ptr& j, std::optional<uint64_t> permit,
                   response res, emitter& out);
  void finish(const job_ptr& j, fetch_outcome o, emitter& out);

  node_calls& calls_;
  limiter_client* limiter_;
  retry_policy retry_;
  circuit_breaker breaker_;
  observer_fn observer_;
  std::unordered_map<uint64_t, job_ptr> jobs_;
  std::shared_ptr<inbox> inbox_ = std::make_shared<inbox>();
  size_t transfers_ = 0; // submitted and not drained yet
  uint64_t next_handle_ = 0;
  engine engine_; // last: destroyed first, so no transfer outlives the rest
};

} // namespace troupe::http
