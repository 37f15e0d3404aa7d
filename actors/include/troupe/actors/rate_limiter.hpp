// The `rate_limiter` service: the seed's requests-per-second limiter and
// ticker (a token bucket) and its semaphore (at most `max_in_flight` permits
// out) as one actor. A caller asks for a permit and gets its reply only when
// the permit is granted; a request that cannot be granted within `max_wait`
// is refused with troupe.refused and the reason.
//
// Protocol (rate_limiter_actor):
//   acquire(key)            -> permit   waits up to max_wait
//   acquire(key, wait)      -> permit   waits up to min(max_wait, wait)
//   release(permit)                     gives an in-flight permit back
//   stats                   -> limiter_stats
// - `key` picks a token bucket: each key has its own (rate, burst); "" is the
//   shared one. A key's bucket is forgotten after `key_idle` without use
//   (only once it is full again, so forgetting it never admits more).
// - `max_in_flight` is one semaphore over all keys. A permit counts until it
//   is released, or until the actor that asked for it dies (the limiter
//   monitors every holder). With no max_in_flight a permit is only a token:
//   release of it (or of any unknown permit) is a no-op.
// - Waiting requests are served in arrival order per key; at most
//   `max_waiting` wait at once, a request beyond that is refused at once
//   (counted as refused and overflowed). A waiting requester that dies is
//   forgotten.
// - Every timer is finite: max_wait must be positive; the refill wake-up is at
//   most one token interval away.
// Everything runs on the actor's clock, so tests run it in virtual time.
//
// Example (an embedder):
//   troupe::rate_limiter_config cfg;
//   cfg.rate = 2.0;            // per second
//   cfg.burst = 2;
//   cfg.max_in_flight = 5;
//   auto lim = troupe::spawn_rate_limiter(sys, cfg);
//   self->request(lim, std::chrono::seconds(31), troupe::acquire_atom_v,
//                 std::string{"api.example.com"})
//     .then([=](uint64_t permit) { ...; self->send(lim, troupe::release_atom_v, permit); },
//           [=](caf::error& err) { /* refused after max_wait */ });
//
// From a waiting stage: the node's `rate_limit: NAME` slot gives a
// limiter_client (below).
#pragma once

#include <cstdint>
#include <string>

#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "troupe/actors/type_ids.hpp"
#include "troupe/units.hpp"
#include "troupe/waiting.hpp"

namespace troupe {

struct limiter_stats {
  uint64_t granted = 0;    // permits handed out
  uint64_t refused = 0;    // requests refused (max_wait or a full queue)
  uint64_t overflowed = 0; // of those, refused because max_waiting were waiting
  uint64_t waited = 0;     // permits granted after waiting
  uint64_t in_flight = 0;  // max_in_flight permits out now
  uint64_t released_by_monitor = 0; // permits freed because their holder died
  uint64_t waiting = 0;    // requests waiting now
  uint64_t keys = 0;       // token buckets alive now
  uint64_t evicted = 0;    // idle buckets forgotten
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, limiter_stats& x) {
  return f(caf::meta::type_name("troupe::limiter_stats"), x.granted,
           x.refused, x.overflowed, x.waited, x.in_flight,
           x.released_by_monitor, x.waiting, x.keys, x.evicted);
}

using rate_limiter_actor = caf::typed_actor<
  caf::replies_to<acquire_atom, std::string>::with<uint64_t>,
  caf::replies_to<acquire_atom, std::string, duration>::with<uint64_t>,
  caf::reacts_to<release_atom, uint64_t>,
  caf::replies_to<stats_atom>::with<limiter_stats>,
  // Internal timers (sent by the limiter to itself).
  caf::reacts_to<limiter_wake_atom>,
  caf::reacts_to<limiter_expire_atom, uint64_t>,
  caf::reacts_to<limiter_sweep_atom>>;

// What an embedder configures; the YAML resource's parameters have the same
// names. At least one of rate and max_in_flight is set.
struct rate_limiter_config {
  std::string name = "rate_limiter"; // for error messages
  double rate = 0;         // tokens per second; 0: no token bucket
  int64_t burst = 1;       // bucket size (>= 1 with a rate)
  int64_t max_in_flight = 0;  // permits out at once; 0: no cap
  duration max_wait = std::chrono::seconds(30); // > 0
  duration key_idle = std::chrono::minutes(5);  // > 0
  int64_t max_waiting = 10000;                  // >= 1
};

// "" when `cfg` is possible, else why not (what validation reports).
std::string check(const rate_limiter_config& cfg);

// Spawns a limiter. Throws std::invalid_argument when check(cfg) fails.
rate_limiter_actor spawn_rate_limiter(caf::actor_system& sys,
                                      const rate_limiter_config& cfg);

// What a node's logic sees for its `rate_limit: NAME` slot
// (calls->client<limiter_client>("rate_limit")). CAF-free.
// - acquire: `done` gets a permit id once granted, or refused (max_wait, a
//   full wait queue), timeout or unavailable. The limiter is asked to give up
//   a little before the node's call timeout, so a permit is never granted to
//   a call that already ended.
// - release: gives a max_in_flight permit back (fire and forget). A permit
//   of a limiter without max_in_flight is only a token: releasing it does
//   nothing, and forgetting to release it costs nothing. Permits a node
//   still holds when it dies (a crash, the run's end) are released for it.
class limiter_client : public troupe::slot_client {
public:
  virtual void acquire(std::string key, troupe::completion<uint64_t> done) = 0;
  virtual void release(uint64_t permit) = 0;
};

} // namespace troupe
