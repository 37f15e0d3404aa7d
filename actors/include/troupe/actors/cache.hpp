// The `cache` service's protocol (the seed's SharedCache, ReadHeavyCache and
// AsyncSafeCache.get_or_set): a key -> value store with LRU capacity (entries
// and/or bytes), a time to live in the actor clock's time (virtual under the
// test coordinator), and single-flight computation through leases.
//
// The actor is the lock: every message is handled one at a time, so readers
// never see a torn entry and no lock exists. `shards: N` puts N such actors
// behind one handle (a router: see spawn_cache) for read-heavy load.
//
// Values are opaque bytes (std::string); errors of failed computations are
// text. Every message type below has an inspect(), so a cache can serve a
// remote node.
//
// Single flight, the lease protocol (what get_or_compute and cache_client do):
//   lookup(keys)  -> one cache_lookup_result per key, in order:
//                    hit(value)    the value is cached;
//                    failed(error) a failure is cached (negative_ttl);
//                    lease(id)     a miss and nobody computes it: the caller
//                                  computes, then sends fulfil(key, id, value)
//                                  or abandon(key, id, reason);
//                    pending       another caller computes: ask await(key).
//   await(key)    -> hit | failed | lease, when the computation ends:
//                    fulfilled: hit(value); abandoned: failed(reason) for every
//                    waiter (they shared that computation); the lease holder
//                    died (monitored) or its lease timed out (lease_timeout):
//                    the lease passes to the next waiter, who gets lease(id).
//                    Asked when nothing is in flight it answers at once: the
//                    error of a computation that failed within lease_timeout
//                    (so a caller told `pending` just before the failure
//                    gets it, even with negative_ttl 0), else a lease.
//   fulfil / abandon are one-way. A fulfil with an older lease still stores
//   its value (a late value is still the value; counted as `stale`); an
//   abandon with an older lease is ignored (counted as `stale`).
// Concurrent misses on one key: one lease, everyone else waits (a key twice
// in one lookup: a lease for the first, pending for the rest). Waiters are
// capped (max_waiting): past the cap await answers troupe.refused (counted).
// A waiter whose own request timed out may still be handed a lease it never
// uses; the lease_timeout then passes it on (every lease ends).
//
// Example (an embedder, by typed handle):
//   troupe::cache_config cfg;
//   cfg.capacity = 1000;
//   auto cache = troupe::spawn_cache(sys, cfg);
//   self->request(cache, 1s, troupe::put_atom_v, std::string{"k"},
//                 std::string{"v"}).then([](bool stored) {});
//   troupe::get_or_compute(self, cache, "k", 1s,
//     [](const std::string& key) { return expensive(key); },
//     [](troupe::call_result<std::string> v) { ... });
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <caf/error.hpp>
#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/timespan.hpp>
#include <caf/typed_actor.hpp>

#include "troupe/actors/type_ids.hpp"
#include "troupe/call_context.hpp"
#include "troupe/node_logic.hpp"
#include "troupe/type_ids.hpp"
#include "troupe/units.hpp"
#include "troupe/waiting.hpp"

// The cache's atoms and types are registered in troupe/actors/type_ids.hpp
// (the services' one block).
namespace troupe {

// What a cache counts since it started (a sharded cache: summed over shards).
struct cache_stats {
  uint64_t hits = 0;           // get/lookup answered with a value
  uint64_t misses = 0;         // get/lookup found no (live) entry
  uint64_t evictions = 0;      // entries pushed out by capacity or max_bytes
  uint64_t expirations = 0;    // entries dropped because their ttl passed
  uint64_t coalesced = 0;      // misses that joined a computation in flight
  uint64_t computations = 0;   // leases granted (computations started)
  uint64_t entries = 0;        // live entries now (failures cached included)
  uint64_t bytes = 0;          // their key + value bytes now
  uint64_t failures = 0;       // computations abandoned
  uint64_t negative_hits = 0;  // lookups answered with a cached failure
  uint64_t lease_timeouts = 0; // leases that ran out of lease_timeout
  uint64_t handoffs = 0;       // leases passed to a waiter (death, timeout)
  uint64_t refused = 0;        // awaits refused (max_waiting), oversize puts
  uint64_t stale = 0;          // fulfil/abandon with a lease no longer current
};

cache_stats& operator+=(cache_stats& x, const cache_stats& y);

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cache_stats& x) {
  return f(caf::meta::type_name("cache_stats"), x.hits, x.misses, x.evictions,
           x.expirations, x.coalesced, x.computations, x.entries, x.bytes,
           x.failures, x.negative_hits, x.lease_timeouts, x.handoffs,
           x.refused, x.stale);
}

// get's reply: a value, or none (never cached, expired, evicted, or a cached
// failure).
struct cache_value {
  bool found = false;
  std::string value;
  explicit operator bool() const {
    return found;
  }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cache_value& x) {
  return f(caf::meta::type_name("cache_value"), x.found, x.value);
}

// One key's answer (CAF-free): its value, a lease to compute it, or a failure
// (a cached failure, the abandon reason of the computation it waited for, or
// a call that failed: refused, timed out, cache gone).
struct cache_answer {
  enum class kind : uint8_t { hit, lease, failed };
  kind what = kind::hit;
  std::string value;  // hit
  uint64_t lease = 0; // lease: pass it back with fulfil or abandon
  std::string error;  // failed

  static cache_answer hit(std::string v) {
    return {kind::hit, std::move(v), 0, {}};
  }
  static cache_answer leased(uint64_t id) {
    return {kind::lease, {}, id, {}};
  }
  static cache_answer failure(std::string why) {
    return {kind::failed, {}, 0, std::move(why)};
  }
};

std::string to_string(cache_answer::kind x);

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cache_answer& x) {
  return f(caf::meta::type_name("cache_answer"), x.what, x.value, x.lease,
           x.error);
}

// lookup's answer per key: `pending` (another caller computes it: ask
// await(key)), or the answer itself.
struct cache_lookup_result {
  bool pending = false;
  cache_answer answer;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cache_lookup_result& x) {
  return f(caf::meta::type_name("cache_lookup_result"), x.pending, x.answer);
}

using cache_actor = caf::typed_actor<
  // get(key) -> value or none; counts a hit or a miss; never leases.
  caf::replies_to<get_atom, std::string>::with<cache_value>,
  // put(key, value[, ttl]) -> stored (false: larger than max_bytes). A ttl of
  // 0 means the cache's ttl. Replaces a cached failure; ends no flight.
  caf::replies_to<put_atom, std::string, std::string>::with<bool>,
  caf::replies_to<put_atom, std::string, std::string, caf::timespan>::with<bool>,
  // erase(key) -> whether a live entry was removed.
  caf::replies_to<erase_atom, std::string>::with<bool>,
  caf::replies_to<stats_atom>::with<cache_stats>,
  // The lease protocol (above).
  caf::replies_to<lookup_atom, std::vector<std::string>>::with<
    std::vector<cache_lookup_result>>,
  caf::replies_to<await_atom, std::string>::with<cache_answer>,
  caf::reacts_to<fulfil_atom, std::string, uint64_t, std::string>,
  caf::reacts_to<abandon_atom, std::string, uint64_t, std::string>>;

// How to start a cache (the YAML resource's parameters, same defaults).
struct cache_config {
  uint64_t capacity = 10000;            // entries; 0: no entry limit
  uint64_t max_bytes = 64 << 20;        // key + value bytes; 0: no byte limit
  duration ttl = std::chrono::minutes(5); // 0: entries never expire
  duration negative_ttl{0};             // failures cached this long; 0: not
  uint64_t shards = 1;                  // actors behind the handle
  duration lease_timeout = std::chrono::seconds(30); // finite, > 0
  uint64_t max_waiting = 65536;         // awaits held at once, per shard
};

// Starts a cache. With shards > 1 the handle is a router actor that sends
// each key's messages to its shard by key hash (stats summed over shards).
// Throws std::invalid_argument for an impossible config (no bound at all,
// lease_timeout 0, shards 0). The cache ends when its handle's last
// reference goes or it is sent an exit.
cache_actor spawn_cache(caf::actor_system& sys, const cache_config& cfg);

// Checks a config; "" or what is impossible about it.
std::string check_cache_config(const cache_config& cfg);

// The CAF-free client a node's logic gets for its `cache:` slot
// (node_context::calls->client<cache_client>("cache")). Every call runs under
// the node's call timeout; continuations run on the node's thread.
class cache_client : public slot_client {
public:
  using answer_fn
    = std::function<void(size_t index, cache_answer answer, emitter& out)>;

  // One lookup for a batch of keys. `each` is called exactly once per key
  // index, possibly over several continuations: hits, failures and leases from
  // the first reply, keys another caller computes when their await replies
  // (hit, failed, or a lease passed on) or fails. A call that fails (timeout,
  // cache gone) gives every key still open a failed answer.
  virtual void lookup(std::vector<std::string> keys, answer_fn each) = 0;
  // One-way: the computation for a lease succeeded / failed.
  virtual void fulfil(const std::string& key, uint64_t lease,
                      std::string value)
    = 0;
  virtual void abandon(const std::string& key, uint64_t lease,
                       std::string reason)
    = 0;
};

// -- get_or_compute: single flight for embedders ------------------------------

namespace detail {

template <class Self, class Compute, class Done>
void cache_settle(Self* self, const cache_actor& cache,
                  const std::string& key, cache_answer answer, Compute& compute, Done& done) {
  using result = call_result<std::string>;
  switch (answer.what) {
    case cache_answer::kind::hit:
      done(result::success(std::move(answer.value)));
      return;
    case cache_answer::kind::failed:
      done(result::failure(call_status::failed, std::move(answer.error)));
      return;
    case cache_answer::kind::lease:
      break;
  }
  std::string value;
  try {
    value = compute(key);
  } catch (const std::exception& e) {
    self->send(cache, abandon_atom_v, key, answer.lease, std::string{e.what()});
    done(result::failure(call_status::failed, e.what()));
    return;
  }
  self->send(cache, fulfil_atom_v, key, answer.lease, value);
  done(result::success(std::move(value)));
}

} // namespace detail

// The value of `key` from `cache`, computed by `compute(key) -> std::string`
// in the calling actor `self` when nobody has it or computes it (exactly one
// caller computes per key at a time; the others wait for its value). A
// compute that throws abandons the lease: `done` and the waiters get the
// error. `done(call_result<std::string>)` runs exactly once, in `self`, also
// on a timeout (each request under `timeout`) or a dead cache.
template <class Self, class Compute, class Done>
void get_or_compute(Self* self, const cache_actor& cache, std::string key,
                    duration timeout, Compute compute, Done done) {
  using result = call_result<std::string>;
  auto ts = std::chrono::duration_cast<caf::timespan>(timeout);
  auto on_error = [done](caf::error& err) mutable {
    done(result::failure(classify(err), render(err)));
  };
  self->request(cache, ts, lookup_atom_v, std::vector<std::string>{key})
    .then(
      [=](std::vector<cache_lookup_result>& rs) mutable {
        if (rs.size() != 1) {
          done(result::failure(call_status::failed,
                               "cache: lookup answered "
                                 + std::to_string(rs.size()) + " keys for 1"));
          return;
        }
        if (!rs[0].pending) {
          detail::cache_settle(self, cache, key, std::move(rs[0].answer),
                               compute, done);
          return;
        }
        self->request(cache, ts, await_atom_v, key)
          .then(
            [=](cache_answer& a) mutable {
              detail::cache_settle(self, cache, key, std::move(a), compute,
                                   done);
            },
            on_error);
      },
      on_error);
}

} // namespace troupe
