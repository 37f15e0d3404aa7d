// The `worker_pool` service's protocol (the seed's ThreadWorkerPool,
// PriorityWorkerPool and Go's workerPool as one actor): tasks submitted with
// a key and a priority run on supervised workers; the reply to a submit comes
// when its task finished.
//
//   message                      reply          errors (troupe::errc)
//   submit(pool_task)            pool_result    refused: queue full (reject,
//                                               drop_newest, drop_oldest,
//                                               blocked list full), unknown
//                                               function; failed: the task
//                                               crashed max_attempts times;
//                                               unavailable: pool stopped
//   stats                        pool_stats
//
// A task is a registered record function by name applied to a batch (as
// `map` applies it: kept, dropped and failed records come back), or, for
// embedders in the same process, a C++ callable returning a string.
//
// Three ways in: by typed handle (spawn_worker_pool + submit_callable below,
// or runtime::resource<worker_pool_actor>(name) for a YAML resource); from a
// node whose `pool:` slot names the resource, through pool_client; from any
// actor, by requesting pool_submit_atom with a pool_task.
//
// Example (an embedder running a callable on a pool of its own):
//   troupe::worker_pool_config cfg;
//   cfg.workers = 4;
//   cfg.blocking = true; // tasks may sleep or burn CPU
//   auto pool = troupe::spawn_worker_pool(sys, cfg);
//   troupe::submit_callable(self, pool, std::chrono::seconds(30),
//                           [] { return std::string{"42"}; })
//     .then([](troupe::pool_result& r) { /* r.value == "42" */ },
//           [](caf::error& e) { /* troupe::render(e) */ });
// (or self->request(pool, timeout, troupe::pool_submit_atom_v, task) with a
// task from make_callable_task / make_function_task)
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "troupe/actors/type_ids.hpp"
#include "troupe/errors.hpp"
#include "troupe/record.hpp"
#include "troupe/units.hpp"
#include "troupe/waiting.hpp"

namespace troupe {

class registry;

// -- CAF-free part: what a node's logic sees ----------------------------------

// A record the task's function failed, with its reason.
struct pool_failure {
  record rec;
  std::string reason;
};

// What a finished task gives back. For a record function, what `map` gets
// from apply_to_batch: the records kept (transformed, in input order), the
// records failed with their reasons and how many were dropped. For a
// callable, its string result in `value`.
struct pool_result {
  record_batch kept;
  std::vector<pool_failure> failed;
  uint64_t dropped = 0;
  std::string value;
  uint32_t attempts = 1; // runs it took (a crash of its worker retries it)
  uint64_t worker = 0;   // the worker that ran it (numbered from 1)
};

// A node's way to the pool named in its `pool:` slot:
// ctx.calls->client<pool_client>("pool"). `done` runs on the node's thread
// with the result, or with call_status refused / failed / unavailable /
// timeout and the reason.
class pool_client : public slot_client {
public:
  virtual void submit(std::string fn, record_batch records, std::string key,
                      int priority, completion<pool_result> done)
    = 0;
};

// What the pool counts. Totals since it started, and gauges (now).
struct pool_stats {
  uint64_t submitted = 0;      // submits received
  uint64_t completed = 0;      // tasks that ran to the end (replied a result)
  uint64_t failed = 0;         // tasks given up after max_attempts crashes
  uint64_t retried = 0;        // runs repeated after a worker crashed
  uint64_t crashes = 0;        // workers that died and were replaced
  uint64_t rejected = 0;       // refused: on_full reject, or blocked list full
  uint64_t dropped_newest = 0; // refused: on_full drop_newest
  uint64_t dropped_oldest = 0; // evicted: on_full drop_oldest
  uint64_t blocked_total = 0;  // submits that had to wait for queue room
  uint64_t grown = 0;          // workers added by the resizer
  uint64_t shrunk = 0;         // workers retired after idle_timeout
  uint64_t queued = 0;         // gauge: tasks waiting for a worker
  uint64_t blocked = 0;        // gauge: submits waiting for queue room
  uint64_t busy = 0;           // gauge: workers with a task
  uint64_t workers = 0;        // gauge: workers alive
  uint64_t peak_workers = 0;
};

// -- the typed protocol ---------------------------------------------------------

// A C++ callable: local only. It never crosses to another node: its inspect
// fails when serialised (a remote submit gets an error, never a silent no-op).
struct pool_callable {
  std::shared_ptr<const std::function<std::string()>> fn;
};

// One task: `fn` + `records` (a registered record function), or `call`.
// `key` routes (key_hash keeps one key's tasks in submission order),
// `priority`: higher runs first, FIFO within one priority.
struct pool_task {
  std::string fn;
  record_batch records;
  pool_callable call;
  std::string key;
  int32_t priority = 0;
};

pool_task make_callable_task(std::function<std::string()> f,
                             std::string key = {}, int32_t priority = 0);
pool_task make_function_task(std::string fn, record_batch records,
                             std::string key = {}, int32_t priority = 0);

using worker_pool_actor
  = caf::typed_actor<caf::replies_to<pool_submit_atom, pool_task>::with<pool_result>,
                     caf::replies_to<stats_atom>::with<pool_stats>>;

// -- spawning one from C++ ------------------------------------------------------

enum class pool_routing : uint8_t { round_robin, least_loaded, key_hash };
enum class pool_on_full : uint8_t { block, drop_newest, drop_oldest, reject };

constexpr size_t default_max_blocked = 65536;

struct worker_pool_config {
  size_t workers = 4;                 // at start
  std::optional<size_t> min_workers;  // unset: workers
  std::optional<size_t> max_workers;  // unset: workers (no resizing)
  pool_routing routing = pool_routing::round_robin;
  // Tasks handed to one worker ahead (its mailbox): 1 keeps priorities
  // exact, more hides the round trip for tiny tasks.
  size_t worker_queue = 2;
  size_t queue_size = 1024; // tasks waiting for a worker
  pool_on_full on_full = pool_on_full::block;
  // With block: submits waiting for queue room (their requests stay
  // pending). Past it a submit is refused and counted as rejected. 0: 65536
  // (the submitters' own caps bound them: a waiting map's max_in_flight).
  size_t max_blocked = 0;
  uint32_t max_attempts = 3;     // runs per task when its worker crashes
  uint32_t record_attempts = 3;  // tries per record (a function that throws)
  bool blocking = false;         // workers on threads of their own
  duration idle_timeout = std::chrono::seconds(30); // shrink an idle worker
  size_t grow_above = 0; // grow when more tasks than this wait for a worker
};

// Starts a pool. `reg` looks up the record functions tasks name (nullptr:
// callables only). Throws std::invalid_argument on an impossible config.
worker_pool_actor spawn_worker_pool(caf::actor_system& sys,
                                    const worker_pool_config& cfg,
                                    std::shared_ptr<const registry> reg
                                    = nullptr);

// Submits a callable from an actor (event-based or scoped): the reply
// handle takes .then (or .receive) with pool_result& and caf::error&.
//   troupe::submit_callable(self, pool, 5s, [] { return std::string{"42"}; })
//     .then([](troupe::pool_result& r) { ... }, [](caf::error& e) { ... });
template <class Self, class F>
auto submit_callable(Self* self, const worker_pool_actor& pool,
                     duration timeout, F f, std::string key = {},
                     int32_t priority = 0) {
  return self->request(pool, timeout, pool_submit_atom_v,
                       make_callable_task(std::function<std::string()>(
                                            std::move(f)),
                                          std::move(key), priority));
}

// Checks a config; "" when it is possible, else why not.
std::string check_worker_pool_config(const worker_pool_config& cfg);

// -- inspection (cross-node where possible) ------------------------------------

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, pool_failure& x) {
  return f(caf::meta::type_name("pool_failure"), x.rec, x.reason);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, pool_result& x) {
  return f(caf::meta::type_name("pool_result"), x.kept, x.failed, x.dropped,
           x.value, x.attempts, x.worker);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, pool_stats& x) {
  return f(caf::meta::type_name("pool_stats"), x.submitted, x.completed,
           x.failed, x.retried, x.crashes, x.rejected, x.dropped_newest,
           x.dropped_oldest, x.blocked_total, x.grown, x.shrunk, x.queued,
           x.blocked, x.busy, x.workers, x.peak_workers);
}

// Local only: a serializer gets an error (the message is not sent), a
// printer a placeholder.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, pool_callable& x) {
  if constexpr (std::is_same<typename Inspector::result_type, void>::value) {
    std::string what = x.fn ? "<local callable>" : "<none>";
    return f(caf::meta::type_name("pool_callable"), what);
  } else {
    if (!x.fn) {
      bool none = true; // an empty callable crosses as "none"
      return f(caf::meta::type_name("pool_callable"), none);
    }
    return make_error(errc::refused,
                      "a pool task's C++ callable is local only and cannot "
                      "be serialised; submit a registered function instead");
  }
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, pool_task& x) {
  return f(caf::meta::type_name("pool_task"), x.fn, x.records, x.call, x.key,
           x.priority);
}

} // namespace troupe
