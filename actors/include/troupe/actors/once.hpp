// The `once` service (Go's sync.Once, a lazily built Singleton): the first
// request runs an initialiser, requests arriving while it runs wait for that
// one result, later requests get it at once. A failed (or timed-out)
// initialisation is not kept: its waiters all get the error, and the next
// request runs the initialiser again.
//
// Protocol (once_actor):
//   get            -> value   runs the configured initialiser if needed
//   do(init)       -> value   the same with the caller's initialiser; as in
//                             sync.Once only the first caller's runs
//   stats          -> once_stats
// Errors: troupe.failed (the initialiser threw or its record function
// failed or dropped the record), troupe.timeout (it took longer than
// init_timeout), troupe.refused (get with no initialiser configured, or
// max_waiting requests already wait).
//
// Where the initialiser runs: on a helper actor spawned per attempt, never in
// the once actor itself, so the once actor keeps answering (stats, new
// waiters) and enforces init_timeout while an initialiser runs. By default
// the helper runs on the scheduler (fine for quick work and deterministic
// under the test coordinator); `blocking` gives it a thread of its own for
// an initialiser that blocks (opens a connection, reads a file). An
// initialiser that outlives init_timeout is abandoned: its late result is
// ignored, and the next request starts a new attempt.
//
// Example (an embedder):
//   troupe::once_config cfg;
//   cfg.init = [] { return load_settings(); };   // std::string()
//   auto settings = troupe::spawn_once(sys, cfg);
//   self->request(settings, std::chrono::seconds(60), troupe::get_atom_v)
//     .then([](const std::string& v) { ... }, [](caf::error& e) { ... });
// From YAML: `resources: { cfg: { type: once, fn: sha256, value: "seed" } }`
// applies the record function `fn` to a record whose body is `value`.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include <caf/fwd.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/meta/save_callback.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "troupe/actors/type_ids.hpp"
#include "troupe/errors.hpp"
#include "troupe/units.hpp"

namespace troupe {

// A C++ initialiser in a message: LOCAL ONLY. A std::function cannot cross
// to another process; serialising or deserialising a once_init fails with
// troupe.unavailable instead of sending an empty function.
struct once_init {
  std::function<std::string()> fn;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, once_init&) {
  auto local_only = [] {
    return make_error(errc::unavailable,
                      "once_init holds a C++ callable: it is local only and "
                      "cannot be serialised");
  };
  return f(caf::meta::type_name("troupe::once_init"),
           caf::meta::save_callback(local_only),
           caf::meta::load_callback(local_only));
}

struct once_stats {
  uint64_t attempts = 0;  // initialisations started
  uint64_t failures = 0;  // of those, failed or timed out
  uint64_t timeouts = 0;  // of those, timed out
  uint64_t coalesced = 0; // requests that waited for a running attempt
  uint64_t immediate = 0; // requests answered at once with the value
  uint64_t refused = 0;   // requests refused (no initialiser, queue full)
  bool done = false;      // the value is there
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, once_stats& x) {
  return f(caf::meta::type_name("troupe::once_stats"), x.attempts,
           x.failures, x.timeouts, x.coalesced, x.immediate, x.refused,
           x.done);
}

using once_actor = caf::typed_actor<
  caf::replies_to<get_atom>::with<std::string>,
  caf::replies_to<once_do_atom, once_init>::with<std::string>,
  caf::replies_to<stats_atom>::with<once_stats>,
  // Internal: an attempt's result (attempt, ok, value or error) and its
  // deadline.
  caf::reacts_to<once_done_atom, uint64_t, bool, std::string>,
  caf::reacts_to<once_timeout_atom, uint64_t>>;

struct once_config {
  std::string name = "once"; // for error messages
  // The initialiser `get` runs; may be empty when callers use do(init).
  // It runs on a helper actor, so it must not touch the caller's state.
  std::function<std::string()> init;
  duration init_timeout = std::chrono::seconds(30); // > 0
  bool blocking = false;      // run the initialiser on a thread of its own
  int64_t max_waiting = 10000; // requests waiting for one attempt (>= 1)
};

// Spawns a once. Throws std::invalid_argument for a non-positive
// init_timeout or max_waiting.
once_actor spawn_once(caf::actor_system& sys, const once_config& cfg);

} // namespace troupe
