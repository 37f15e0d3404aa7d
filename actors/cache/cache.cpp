// cache: the seed's SharedCache / ReadHeavyCache / AsyncSafeCache as actors.
// Protocol and contract: troupe/actors/cache.hpp.
//
// One shard actor owns an LRU store with TTLs (lru_store, CAF-free, below)
// and the computations in flight (leases and their waiters). `shards: N`
// spawns N shards behind a router. Why a router and not hashing in clients:
// the handle stays one cache_actor that any C++ code, actor or remote node can
// use with the whole protocol, and a shard sees the real caller of every
// single-key message (the router delegates: the shard answers the caller
// directly, and a lease is held by the caller, whose death it monitors). Only
// a batched lookup spanning shards is split by the router, which passes the
// caller along (lookup_as). The router's per-message work is a hash and a
// forward; the shards do the rest in parallel.
#include "troupe/actors/cache.hpp"

#include <deque>
#include <limits>
#include <list>
#include <map>
#include <memory>
#include <stdexcept>
#include <unordered_map>

#include <caf/actor_cast.hpp>
#include <caf/actor_clock.hpp>
#include <caf/actor_system.hpp>
#include <caf/system_messages.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include "troupe/actors/builtin_types.hpp"
#include "troupe/errors.hpp"
#include "troupe/hygiene.hpp"
#include "troupe/service.hpp"
#include "troupe/service_stats.hpp"

namespace troupe {

cache_stats& operator+=(cache_stats& x, const cache_stats& y) {
  x.hits += y.hits;
  x.misses += y.misses;
  x.evictions += y.evictions;
  x.expirations += y.expirations;
  x.coalesced += y.coalesced;
  x.computations += y.computations;
  x.entries += y.entries;
  x.bytes += y.bytes;
  x.failures += y.failures;
  x.negative_hits += y.negative_hits;
  x.lease_timeouts += y.lease_timeouts;
  x.handoffs += y.handoffs;
  x.refused += y.refused;
  x.stale += y.stale;
  return x;
}

std::string to_string(cache_answer::kind x) {
  switch (x) {
    case cache_answer::kind::hit:
      return "hit";
    case cache_answer::kind::lease:
      return "lease";
    case cache_answer::kind::failed:
      return "failed";
  }
  return "?";
}

std::string check_cache_config(const cache_config& cfg) {
  if (cfg.capacity == 0 && cfg.max_bytes == 0)
    return "capacity and max_bytes are both 0: the cache would grow without "
           "bound (set at least one)";
  if (cfg.shards == 0)
    return "shards must be at least 1";
  if (cfg.capacity > 0 && cfg.shards > cfg.capacity)
    return "shards (" + std::to_string(cfg.shards) + ") above capacity ("
           + std::to_string(cfg.capacity) + "): a shard could hold nothing";
  if (cfg.max_bytes > 0 && cfg.shards > cfg.max_bytes)
    return "shards (" + std::to_string(cfg.shards) + ") above max_bytes ("
           + std::to_string(cfg.max_bytes) + "): a shard could hold nothing";
  if (cfg.lease_timeout <= duration{0})
    return "lease_timeout must be positive: a lease nobody ends would keep "
           "its waiters forever";
  if (cfg.max_waiting == 0)
    return "max_waiting must be at least 1: no caller could wait for a "
           "computation in flight";
  if (cfg.ttl < duration{0} || cfg.negative_ttl < duration{0})
    return "ttl and negative_ttl cannot be negative";
  return {};
}

namespace {

using time_point = caf::actor_clock::time_point;

constexpr time_point never = time_point::max();

// -- the store: LRU order, byte and entry caps, expiry (CAF-free) -------------

class lru_store {
public:
  struct entry {
    std::string value; // the error text when `failed`
    bool failed = false;
    time_point expires = never;
    std::list<const std::string*>::iterator lru;
    std::multimap<time_point, const std::string*>::iterator expiry;
  };

  lru_store(uint64_t capacity, uint64_t max_bytes, cache_stats& stats)
    : capacity_(capacity), max_bytes_(max_bytes), stats_(stats) {
  }

  // The live entry of `key`, now the most recently used; nullptr when absent
  // or expired (an expired one is dropped and counted).
  entry* find(const std::string& key, time_point now) {
    auto i = map_.find(key);
    if (i == map_.end())
      return nullptr;
    if (i->second.expires <= now) {
      drop(i);
      ++stats_.expirations;
      return nullptr;
    }
    lru_.splice(lru_.begin(), lru_, i->second.lru);
    return &i->second;
  }

  // Stores `key` (replacing what it held); evicts the least recently used
  // entries past the caps, expired ones first. False when key and value alone
  // exceed max_bytes (then nothing is stored and an old entry is removed).
  bool insert(const std::string& key, std::string value, bool failed,
              time_point expires, time_point now) {
    auto size = key.size() + value.size();
    if (max_bytes_ > 0 && size > max_bytes_) {
      erase(key);
      return false;
    }
    auto i = map_.find(key);
    if (i == map_.end()) {
      i = map_.emplace(key, entry{}).first;
      lru_.push_front(&i->first);
      i->second.lru = lru_.begin();
      i->second.expiry = expiry_.end();
      bytes_ += key.size();
    } else {
      bytes_ -= i->second.value.size();
      lru_.splice(lru_.begin(), lru_, i->second.lru);
      if (i->second.expiry != expiry_.end())
        expiry_.erase(i->second.expiry);
      i->second.expiry = expiry_.end();
    }
    auto& e = i->second;
    bytes_ += value.size();
    e.value = std::move(value);
    e.failed = failed;
    e.expires = expires;
    if (expires != never)
      e.expiry = expiry_.emplace(expires, &i->first);
    sweep(now);
    while ((capacity_ > 0 && map_.size() > capacity_)
           || (max_bytes_ > 0 && bytes_ > max_bytes_)) {
      // The new entry is at the front and fits alone: it is never the victim.
      drop(map_.find(*lru_.back()));
      ++stats_.evictions;
    }
    return true;
  }

  bool erase(const std::string& key) {
    auto i = map_.find(key);
    if (i == map_.end())
      return false;
    drop(i);
    return true;
  }

  // Drops every entry whose time passed.
  void sweep(time_point now) {
    while (!expiry_.empty() && expiry_.begin()->first <= now) {
      drop(map_.find(*expiry_.begin()->second));
      ++stats_.expirations;
    }
  }

  size_t size() const {
    return map_.size();
  }
  uint64_t bytes() const {
    return bytes_;
  }

private:
  using map_type = std::unordered_map<std::string, entry>;

  void drop(map_type::iterator i) {
    bytes_ -= i->first.size() + i->second.value.size();
    lru_.erase(i->second.lru);
    if (i->second.expiry != expiry_.end())
      expiry_.erase(i->second.expiry);
    map_.erase(i);
  }

  uint64_t capacity_;
  uint64_t max_bytes_;
  cache_stats& stats_;
  map_type map_; // node-based: the key pointers below stay valid
  std::list<const std::string*> lru_; // most recently used first
  std::multimap<time_point, const std::string*> expiry_;
  uint64_t bytes_ = 0;
};

// -- a shard ------------------------------------------------------------------

// What a shard speaks beyond the cache protocol: a router's lookup on a
// caller's behalf (the caller holds the leases), and its own lease timers.
using cache_shard_actor = cache_actor::extend<
  caf::replies_to<lookup_as_atom, caf::strong_actor_ptr,
                  std::vector<std::string>>::with<std::vector<cache_lookup_result>>,
  caf::reacts_to<lease_timeout_atom, std::string, uint64_t>>;

struct waiter {
  caf::typed_response_promise<cache_answer> promise;
  caf::strong_actor_ptr who;
};

// A computation in flight: its current lease and who waits for it.
struct flight {
  uint64_t lease = 0;
  caf::actor_addr holder;
  std::deque<waiter> waiters;
};

struct shard_state {
  static inline const char* name = "troupe.cache";

  cache_config cfg;
  cache_stats stats;
  std::unique_ptr<lru_store> store;
  // Failures not cached (negative_ttl 0), kept for awaits only, briefly: a
  // caller told `pending` whose await arrives after the computation failed
  // gets its error instead of a lease to fail again. Bounded, lease_timeout.
  cache_stats recent_stats; // not reported
  std::unique_ptr<lru_store> recent_failures;
  std::unordered_map<std::string, flight> flights;
  std::map<caf::actor_addr, size_t> holders; // leases held, per monitored actor
  uint64_t next_lease = 1;
  size_t waiting = 0; // waiters over all flights (<= cfg.max_waiting)

  ~shard_state() {
    // Nobody waits for a cache that is gone.
    for (auto& [key, f] : flights)
      for (auto& w : f.waiters)
        if (w.promise.pending())
          w.promise.deliver(make_error(errc::unavailable,
                                       "cache: stopped while '" + key
                                         + "' was computed"));
  }
};

using shard_pointer = cache_shard_actor::stateful_pointer<shard_state>;

time_point now(shard_pointer self) {
  return self->clock().now();
}

time_point expiry(time_point t, duration ttl) {
  if (ttl <= duration{0})
    return never;
  return t + std::chrono::duration_cast<time_point::duration>(ttl);
}

void hold(shard_pointer self, const caf::strong_actor_ptr& who) {
  if (!who)
    return; // anonymous: only the lease timer ends its lease
  auto addr = caf::actor_cast<caf::actor_addr>(who);
  if (self->state.holders[addr]++ == 0)
    self->monitor(who);
}

void release(shard_pointer self, const caf::actor_addr& addr) {
  if (!addr)
    return;
  auto& hs = self->state.holders;
  auto i = hs.find(addr);
  if (i == hs.end())
    return;
  if (--i->second == 0) {
    self->demonitor(addr);
    hs.erase(i);
  }
}

// A new lease on `f` for `who`: one more computation, under lease_timeout.
uint64_t lease_to(shard_pointer self, const std::string& key, flight& f,
                  const caf::strong_actor_ptr& who) {
  auto& st = self->state;
  f.lease = st.next_lease++;
  f.holder = caf::actor_cast<caf::actor_addr>(who);
  hold(self, who);
  ++st.stats.computations;
  self->delayed_send(self, st.cfg.lease_timeout, lease_timeout_atom_v, key,
                     f.lease);
  return f.lease;
}

// Ends a flight: every waiter gets `answer`.
void finish(shard_pointer self,
            std::unordered_map<std::string, flight>::iterator i,
            const cache_answer& answer) {
  auto& st = self->state;
  release(self, i->second.holder);
  for (auto& w : i->second.waiters)
    w.promise.deliver(answer);
  st.waiting -= i->second.waiters.size();
  st.flights.erase(i);
}

// The lease holder died or ran out of time: the next waiter computes.
void hand_off(shard_pointer self,
              std::unordered_map<std::string, flight>::iterator i) {
  auto& st = self->state;
  auto& f = i->second;
  release(self, f.holder);
  f.holder = caf::actor_addr{};
  while (!f.waiters.empty()) {
    auto w = std::move(f.waiters.front());
    f.waiters.pop_front();
    --st.waiting;
    if (!w.promise.pending())
      continue;
    ++st.stats.handoffs;
    w.promise.deliver(cache_answer::leased(lease_to(self, i->first, f, w.who)));
    return;
  }
  st.flights.erase(i); // nobody waits: the next miss leases afresh
}

std::vector<cache_lookup_result>
lookup(shard_pointer self, const caf::strong_actor_ptr& who,
       std::vector<std::string>& keys) {
  auto& st = self->state;
  auto t = now(self);
  std::vector<cache_lookup_result> out;
  out.reserve(keys.size());
  for (auto& key : keys) {
    if (auto* e = st.store->find(key, t)) {
      if (e->failed) {
        ++st.stats.negative_hits;
        out.push_back({false, cache_answer::failure(e->value)});
      } else {
        ++st.stats.hits;
        out.push_back({false, cache_answer::hit(e->value)});
      }
      continue;
    }
    ++st.stats.misses;
    auto [i, added] = st.flights.try_emplace(key);
    if (!added) {
      ++st.stats.coalesced;
      out.push_back({true, {}});
      continue;
    }
    out.push_back({false, cache_answer::leased(lease_to(self, key, i->second, who))});
  }
  return out;
}

bool store(shard_pointer self, const std::string& key, std::string value,
           bool failed, duration ttl) {
  auto& st = self->state;
  auto t = now(self);
  if (!failed)
    st.recent_failures->erase(key);
  if (st.store->insert(key, std::move(value), failed, expiry(t, ttl), t))
    return true;
  ++st.stats.refused;
  return false;
}

cache_shard_actor::behavior_type shard_fn(shard_pointer self,
                                          cache_config cfg) {
  self->state.cfg = cfg;
  self->state.store = std::make_unique<lru_store>(cfg.capacity, cfg.max_bytes,
                                                  self->state.stats);
  self->state.recent_failures
    = std::make_unique<lru_store>(1024, 0, self->state.recent_stats);
  install_exception_handler(self, "cache");
  install_default_handler(self, "cache");
  self->set_down_handler([self](caf::down_msg& m) {
    auto& st = self->state;
    st.holders.erase(m.source); // dead: its monitor is gone already
    std::vector<std::string> held;
    for (auto& [key, f] : st.flights)
      if (f.holder == m.source)
        held.push_back(key);
    for (auto& key : held) {
      auto i = st.flights.find(key);
      i->second.holder = caf::actor_addr{};
      hand_off(self, i);
    }
  });
  return {
    [=](get_atom, std::string& key) {
      auto& st = self->state;
      cache_value v;
      if (auto* e = st.store->find(key, now(self))) {
        if (e->failed) {
          ++st.stats.negative_hits;
        } else {
          ++st.stats.hits;
          v.found = true;
          v.value = e->value;
        }
      } else {
        ++st.stats.misses;
      }
      return v;
    },
    [=](put_atom, std::string& key, std::string& value) {
      return store(self, key, std::move(value), false, self->state.cfg.ttl);
    },
    [=](put_atom, std::string& key, std::string& value, caf::timespan ttl) {
      return store(self, key, std::move(value), false,
                   ttl > caf::timespan{0} ? duration{ttl} : self->state.cfg.ttl);
    },
    [=](erase_atom, std::string& key) {
      auto& st = self->state;
      st.store->sweep(now(self)); // an expired entry is not erased: it is gone
      return st.store->erase(key);
    },
    [=](stats_atom) {
      auto& st = self->state;
      st.store->sweep(now(self));
      auto s = st.stats;
      s.entries = st.store->size();
      s.bytes = st.store->bytes();
      return s;
    },
    [=](lookup_atom, std::vector<std::string>& keys) {
      return lookup(self, self->current_sender(), keys);
    },
    [=](lookup_as_atom, caf::strong_actor_ptr& who,
        std::vector<std::string>& keys) { return lookup(self, who, keys); },
    [=](await_atom, std::string& key) -> caf::result<cache_answer> {
      auto& st = self->state;
      if (auto* e = st.store->find(key, now(self)))
        return e->failed ? cache_answer::failure(e->value)
                         : cache_answer::hit(e->value);
      auto i = st.flights.find(key);
      if (i == st.flights.end()) {
        if (auto* e = st.recent_failures->find(key, now(self)))
          return cache_answer::failure(e->value);
        i = st.flights.try_emplace(key).first;
        return cache_answer::leased(
          lease_to(self, key, i->second, self->current_sender()));
      }
      if (st.waiting >= st.cfg.max_waiting) {
        ++st.stats.refused;
        return make_error(errc::refused,
                          "cache: " + std::to_string(st.cfg.max_waiting)
                            + " callers already wait (max_waiting)");
      }
      // (make_response_promise takes the sender out of the message: read it
      // first.)
      auto who = self->current_sender();
      auto rp = self->make_response_promise<cache_answer>();
      i->second.waiters.push_back({rp, std::move(who)});
      ++st.waiting;
      return rp;
    },
    [=](fulfil_atom, std::string& key, uint64_t lease, std::string& value) {
      auto& st = self->state;
      auto i = st.flights.find(key);
      if (i == st.flights.end() || i->second.lease != lease)
        ++st.stats.stale; // a late value is still the value
      auto answer = cache_answer::hit(value);
      store(self, key, std::move(value), false, st.cfg.ttl);
      if (i != st.flights.end())
        finish(self, i, answer);
    },
    [=](abandon_atom, std::string& key, uint64_t lease, std::string& reason) {
      auto& st = self->state;
      auto i = st.flights.find(key);
      if (i == st.flights.end() || i->second.lease != lease) {
        ++st.stats.stale; // a newer lease computes now
        return;
      }
      ++st.stats.failures;
      if (st.cfg.negative_ttl > duration{0}) {
        store(self, key, reason, true, st.cfg.negative_ttl);
      } else {
        auto t = now(self);
        st.recent_failures->insert(key, reason, true,
                                   expiry(t, st.cfg.lease_timeout), t);
      }
      finish(self, i, cache_answer::failure(reason));
    },
    [=](lease_timeout_atom, std::string& key, uint64_t lease) {
      auto& st = self->state;
      auto i = st.flights.find(key);
      if (i == st.flights.end() || i->second.lease != lease)
        return; // ended in time
      ++st.stats.lease_timeouts;
      hand_off(self, i);
    },
  };
}

// -- the router of a sharded cache --------------------------------------------

struct router_state {
  static inline const char* name = "troupe.cache.router";
  std::vector<cache_shard_actor> shards;
  caf::timespan timeout{0}; // for its own requests to the shards

  const cache_shard_actor& shard(const std::string& key) const {
    return shards[std::hash<std::string>{}(key) % shards.size()];
  }
};

using router_pointer = cache_actor::stateful_pointer<router_state>;

cache_actor::behavior_type router_fn(router_pointer self,
                                     std::vector<cache_shard_actor> shards,
                                     caf::timespan timeout) {
  install_exception_handler(self, "cache router");
  install_default_handler(self, "cache router");
  for (auto& s : shards)
    self->link_to(s); // a stopped router stops its shards
  self->state.shards = std::move(shards);
  self->state.timeout = timeout;
  return {
    [=](get_atom a, std::string& key) {
      return self->delegate(self->state.shard(key), a, std::move(key));
    },
    [=](put_atom a, std::string& key, std::string& value) {
      auto& s = self->state.shard(key);
      return self->delegate(s, a, std::move(key), std::move(value));
    },
    [=](put_atom a, std::string& key, std::string& value, caf::timespan ttl) {
      auto& s = self->state.shard(key);
      return self->delegate(s, a, std::move(key), std::move(value), ttl);
    },
    [=](erase_atom a, std::string& key) {
      return self->delegate(self->state.shard(key), a, std::move(key));
    },
    [=](await_atom a, std::string& key) {
      return self->delegate(self->state.shard(key), a, std::move(key));
    },
    [=](fulfil_atom a, std::string& key, uint64_t lease, std::string& value) {
      auto& s = self->state.shard(key);
      self->send(s, a, std::move(key), lease, std::move(value));
    },
    [=](abandon_atom a, std::string& key, uint64_t lease, std::string& why) {
      auto& s = self->state.shard(key);
      self->send(s, a, std::move(key), lease, std::move(why));
    },
    [=](stats_atom) {
      struct gather {
        cache_stats sum;
        size_t left;
        bool done = false;
      };
      auto rp = self->make_response_promise<cache_stats>();
      auto g = std::make_shared<gather>();
      g->left = self->state.shards.size();
      for (auto& s : self->state.shards)
        self->request(s, self->state.timeout, stats_atom_v)
          .then(
            [rp, g](cache_stats& x) mutable {
              g->sum += x;
              if (--g->left == 0 && !g->done) {
                g->done = true;
                rp.deliver(g->sum);
              }
            },
            [rp, g](caf::error& err) mutable {
              if (!g->done) {
                g->done = true;
                rp.deliver(std::move(err));
              }
            });
      return rp;
    },
    [=](lookup_atom a, std::vector<std::string>& keys)
      -> caf::result<std::vector<cache_lookup_result>> {
      auto& st = self->state;
      auto n = st.shards.size();
      std::vector<std::vector<size_t>> index(n);
      for (size_t k = 0; k < keys.size(); ++k)
        index[std::hash<std::string>{}(keys[k]) % n].push_back(k);
      size_t used = 0, last = 0;
      for (size_t s = 0; s < n; ++s)
        if (!index[s].empty())
          ++used, last = s;
      if (used <= 1) // the shard answers the caller, who holds its leases
        return self->delegate(st.shards[last], a, std::move(keys));
      // Split: each shard looks up its keys on the caller's behalf.
      struct gather {
        std::vector<cache_lookup_result> out;
        size_t left = 0;
        bool done = false;
      };
      // The caller, read before make_response_promise takes it out.
      auto who = self->current_sender();
      auto rp = self->make_response_promise<std::vector<cache_lookup_result>>();
      auto g = std::make_shared<gather>();
      g->out.resize(keys.size());
      g->left = used;
      for (size_t s = 0; s < n; ++s) {
        if (index[s].empty())
          continue;
        std::vector<std::string> part;
        part.reserve(index[s].size());
        for (auto k : index[s])
          part.push_back(std::move(keys[k]));
        self->request(st.shards[s], st.timeout, lookup_as_atom_v, who,
                      std::move(part))
          .then(
            [rp, g, idx = std::move(index[s])](
              std::vector<cache_lookup_result>& rs) mutable {
              if (g->done)
                return;
              for (size_t j = 0; j < rs.size() && j < idx.size(); ++j)
                g->out[idx[j]] = std::move(rs[j]);
              if (--g->left == 0) {
                g->done = true;
                rp.deliver(std::move(g->out));
              }
            },
            [rp, g](caf::error& err) mutable {
              if (!g->done) {
                g->done = true;
                rp.deliver(std::move(err));
              }
            });
      }
      return rp;
    },
  };
}

// -- the client a node's `cache:` slot gets ------------------------------------

class cache_client_impl final : public cache_client {
public:
  cache_client_impl(cache_actor handle, call_context& ctx)
    : handle_(std::move(handle)), ctx_(ctx) {
  }

  void lookup(std::vector<std::string> keys, answer_fn each) override {
    if (keys.empty())
      return;
    auto fn = std::make_shared<answer_fn>(std::move(each));
    auto ks = std::make_shared<std::vector<std::string>>(std::move(keys));
    auto n = ks->size();
    typed_call<std::vector<cache_lookup_result>>(
      ctx_, handle_, ctx_.timeout(),
      [this, fn, ks](std::vector<cache_lookup_result>& rs, emitter& out) {
        if (rs.size() != ks->size()) {
          auto why = "cache: lookup answered " + std::to_string(rs.size())
                     + " keys for " + std::to_string(ks->size());
          for (size_t i = 0; i < ks->size(); ++i)
            (*fn)(i, cache_answer::failure(why), out);
          return;
        }
        // Keys another caller computes: one await per distinct key, its
        // answer fanned out to every index of that key.
        std::map<std::string, std::vector<size_t>> waiting;
        for (size_t i = 0; i < rs.size(); ++i) {
          if (rs[i].pending)
            waiting[(*ks)[i]].push_back(i);
          else
            (*fn)(i, std::move(rs[i].answer), out);
        }
        for (auto& [key, indices] : waiting)
          await(key, std::move(indices), fn);
      },
      [fn, n](call_status, const std::string& why, emitter& out) {
        for (size_t i = 0; i < n; ++i)
          (*fn)(i, cache_answer::failure("cache lookup: " + why), out);
      },
      lookup_atom_v, *ks);
  }

  void fulfil(const std::string& key, uint64_t lease,
              std::string value) override {
    caf::anon_send(handle_, fulfil_atom_v, key, lease, std::move(value));
  }

  void abandon(const std::string& key, uint64_t lease,
               std::string reason) override {
    caf::anon_send(handle_, abandon_atom_v, key, lease, std::move(reason));
  }

private:
  // Awaits `key` for the records at `indices` (one call for all). A lease
  // passed on to this node goes to the first of them; the rest wait again,
  // now for this node's own computation.
  void await(const std::string& key, std::vector<size_t> indices,
             const std::shared_ptr<answer_fn>& fn) {
    auto idx = std::make_shared<std::vector<size_t>>(std::move(indices));
    typed_call<cache_answer>(
      ctx_, handle_, ctx_.timeout(),
      [this, fn, idx, key](cache_answer& a, emitter& out) {
        if (a.what == cache_answer::kind::lease) {
          (*fn)(idx->front(), std::move(a), out);
          if (idx->size() > 1)
            await(key, std::vector<size_t>(idx->begin() + 1, idx->end()), fn);
          return;
        }
        for (auto i : *idx)
          (*fn)(i, a, out);
      },
      [fn, idx](call_status, const std::string& why, emitter& out) {
        for (auto i : *idx)
          (*fn)(i, cache_answer::failure("cache await: " + why), out);
      },
      await_atom_v, key);
  }

  cache_actor handle_;
  call_context& ctx_;
};

// Where parameter `name` of `r` was written (its value), else the resource.
const source_location& where(const resource_spec& r, const std::string& name) {
  if (r.params.has(name)) {
    auto& v = r.params.get(name);
    if (v.where.line > 0)
      return v.where;
  }
  return r.at("");
}

cache_config config_of(const param_set& p) {
  cache_config c;
  c.capacity = static_cast<uint64_t>(p.integer("capacity"));
  c.max_bytes = p.bytes("max_bytes");
  c.ttl = p.dur("ttl");
  c.negative_ttl = p.dur("negative_ttl");
  c.shards = static_cast<uint64_t>(p.integer("shards"));
  c.lease_timeout = p.dur("lease_timeout");
  c.max_waiting = static_cast<uint64_t>(p.integer("max_waiting"));
  return c;
}

} // namespace

cache_actor spawn_cache(caf::actor_system& sys, const cache_config& cfg) {
  if (auto why = check_cache_config(cfg); !why.empty())
    throw std::invalid_argument("cache: " + why);
  if (cfg.shards == 1)
    return sys.spawn(shard_fn, cfg);
  // Each shard keeps its part of the caps (rounded up): LRU order is per
  // shard, and the totals hold within one entry (or byte) per shard.
  auto part = cfg;
  auto up = [&](uint64_t x) { return (x + cfg.shards - 1) / cfg.shards; };
  part.capacity = up(cfg.capacity);
  part.max_bytes = up(cfg.max_bytes);
  part.shards = 1;
  std::vector<cache_shard_actor> shards;
  for (uint64_t i = 0; i < cfg.shards; ++i)
    shards.push_back(sys.spawn(shard_fn, part));
  return sys.spawn(router_fn, std::move(shards),
                   std::chrono::duration_cast<caf::timespan>(cfg.lease_timeout));
}

namespace actors {

actor_type cache_type() {
  actor_type t;
  t.name = "cache";
  t.kind = actor_kind::service;
  t.protocol = "cache";
  t.doc
    = "A key -> value cache with LRU capacity (entries and/or bytes), a time "
      "to live, and single-flight computation: concurrent misses on one key "
      "give one caller a lease to compute it while the others wait for its "
      "value. Protocol (troupe/actors/cache.hpp, cache_actor): "
      "get(key) -> cache_value{found, value}; put(key, value[, ttl]) -> bool "
      "(false: larger than max_bytes); erase(key) -> bool; stats -> "
      "cache_stats{hits, misses, evictions, expirations, coalesced, "
      "computations, entries, bytes, failures, negative_hits, lease_timeouts, "
      "handoffs, refused, stale}; lookup([keys]) -> per key hit(value) | "
      "failed(error) | lease(id) | pending; await(key) -> hit | failed | "
      "lease, when the computation in flight ends; fulfil(key, lease, value) "
      "and abandon(key, lease, reason), one-way, end a lease. A lease passes "
      "to the next waiter when its holder dies or lease_timeout passes. A "
      "node's `cache:` slot gets a cache_client (batched lookup, fulfil, "
      "abandon).";
  t.params = {
    {"capacity", param_type::integer, false, "10000",
     "most entries kept (least recently used evicted first); 0: no entry "
     "limit (then max_bytes bounds it)",
     {}, 0, int64_t{1} << 40},
    {"max_bytes", param_type::size, false, "64MiB",
     "most key + value bytes kept; 0: no byte limit (then capacity bounds "
     "it). A value larger than this alone is not stored"},
    {"ttl", param_type::time_span, false, "5m",
     "how long an entry lives after it is stored; 0s: until evicted"},
    {"negative_ttl", param_type::time_span, false, "0s",
     "how long a failed computation is remembered (lookups then answer its "
     "error without computing); 0s: failures are not cached"},
    {"shards", param_type::integer, false, "1",
     "actors behind the one handle, by key hash, for read-heavy load; each "
     "keeps capacity/shards entries and max_bytes/shards bytes",
     {}, 1, 256},
    {"lease_timeout", param_type::time_span, false, "30s",
     "how long a lease holder may compute before its lease passes to the "
     "next waiter (its late value is still stored)"},
    {"max_waiting", param_type::integer, false, "65536",
     "callers waiting for computations in flight, per shard; past it await "
     "is refused (counted in stats.refused)",
     {}, 1, int64_t{1} << 30},
  };
  t.validate_resource = [](const resource_spec& r, const registry&,
                           std::vector<diagnostic>& errors) {
    auto c = config_of(r.params);
    if (c.capacity == 0 && c.max_bytes == 0) {
      errors.push_back(
        {where(r, "capacity"),
         "cache '" + r.name
           + "': capacity and max_bytes are both 0, so nothing bounds it; set "
             "at least one"});
    } else if (c.capacity > 0 && c.shards > c.capacity) {
      errors.push_back({where(r, "shards"),
                        "cache '" + r.name + "': shards ("
                          + std::to_string(c.shards) + ") above capacity ("
                          + std::to_string(c.capacity)
                          + "): a shard could hold nothing"});
    } else if (c.max_bytes > 0 && c.shards > c.max_bytes) {
      errors.push_back({where(r, "shards"),
                        "cache '" + r.name + "': shards ("
                          + std::to_string(c.shards) + ") above max_bytes ("
                          + std::to_string(c.max_bytes)
                          + "): a shard could hold nothing"});
    }
    if (c.lease_timeout <= duration{0})
      errors.push_back(
        {where(r, "lease_timeout"),
         "cache '" + r.name
           + "': lease_timeout must be positive: a lease nobody ends would "
             "keep its waiters forever"});
  };
  t.service = typed_client<cache_actor>(
    typed_service<cache_actor>(
      [](caf::actor_system& sys, const resource_spec& r) {
        return spawn_cache(sys, config_of(r.params));
      }),
    [](const cache_actor& h, call_context& ctx) {
      return std::make_unique<cache_client_impl>(h, ctx);
    });
  t.service.read_stats = stats_reader<cache_actor, cache_stats>(
    stats_atom_v, [](const cache_stats& s) {
      return std::vector<service_sample>{
          {"cache_hits_total", "Lookups answered with a value.", true, static_cast<double>(s.hits)},
          {"cache_misses_total", "Lookups that found no live entry.", true, static_cast<double>(s.misses)},
          {"cache_evictions_total", "Entries pushed out by capacity or max_bytes.", true, static_cast<double>(s.evictions)},
          {"cache_expirations_total", "Entries dropped because their ttl passed.", true, static_cast<double>(s.expirations)},
          {"cache_coalesced_total", "Misses that joined a computation in flight.", true, static_cast<double>(s.coalesced)},
          {"cache_computations_total", "Computations started (leases granted).", true, static_cast<double>(s.computations)},
          {"cache_failures_total", "Computations abandoned.", true, static_cast<double>(s.failures)},
          {"cache_refused_total", "Awaits refused (max_waiting) and oversize puts.", true, static_cast<double>(s.refused)},
          {"cache_entries", "Live entries now.", false, static_cast<double>(s.entries)},
          {"cache_bytes", "Key and value bytes of the live entries now.", false, static_cast<double>(s.bytes)}};
    });
  return t;
}

} // namespace actors

} // namespace troupe
