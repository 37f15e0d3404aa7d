// The cache service (issue 8, part 3): get/put/erase, TTL in virtual time,
// LRU by entries and bytes, single flight through leases (coalescing, failed
// computations, a dying or slow lease holder), shards, and a node using the
// cache_client in a graph. All on CAF's test coordinator: no sleeps.
#include <doctest/doctest.h>

#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/send.hpp>

#include "troupe/actors/cache.hpp"
#include "troupe/loader.hpp"
#include "troupe/registry.hpp"
#include "troupe/runtime.hpp"
#include "troupe/type_ids.hpp"
#include "troupe/waiting.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

caf::actor_system_config& testing_config(caf::actor_system_config& cfg) {
  cfg.set("scheduler.policy", caf::atom("testing"));
  troupe::add_message_types(cfg);
  troupe::actors::add_message_types(cfg);
  return cfg;
}

// A caller of the lease protocol that stays alive: it looks keys up, awaits,
// and fulfils when told; what it got is recorded.
struct caller_log {
  std::vector<cache_lookup_result> looked_up;
  std::optional<cache_answer> awaited;
  std::string error;
};

caf::behavior caller_fn(caf::event_based_actor* self, cache_actor cache,
                        std::shared_ptr<caller_log> log) {
  return {
    [=](lookup_atom, std::vector<std::string> keys) {
      self->request(cache, std::chrono::seconds(600), lookup_atom_v, keys)
        .then([log](std::vector<cache_lookup_result>& rs) { log->looked_up = rs; },
              [log](caf::error& e) { log->error = render(e); });
    },
    [=](await_atom, std::string key) {
      self->request(cache, std::chrono::seconds(600), await_atom_v, key)
        .then([log](cache_answer& a) { log->awaited = a; },
              [log](caf::error& e) { log->error = render(e); });
    },
  };
}

struct fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{testing_config(cfg)};
  caf::scheduler::test_coordinator& sched
    = dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());

  // Actors that hold leases (ask with keep): alive until the test ends.
  std::vector<caf::actor> kept;

  // A cache, stopped when the test ends (even when it fails early).
  cache_actor cache(const cache_config& c = {}) {
    auto h = spawn_cache(sys, c);
    kept.push_back(caf::actor_cast<caf::actor>(h));
    return h;
  }

  // A caller (caller_fn), stopped when the test ends.
  caf::actor caller(const cache_actor& c, std::shared_ptr<caller_log> log) {
    auto a = sys.spawn(caller_fn, c, std::move(log));
    kept.push_back(a);
    return a;
  }

  ~fixture() {
    for (auto& a : kept)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    sched.run();
  }

  // Sends `xs` to `to` from a fresh actor and returns the reply of type T
  // (nullopt when it answered an error or nothing). With `keep` the asking
  // actor stays alive (a lease it got stays held), else it ends after the
  // reply (and a cache monitoring it passes its leases on).
  template <class T, class Handle, class... Ts>
  std::optional<T> ask_from(bool keep, const Handle& to, Ts... xs) {
    auto out = std::make_shared<std::optional<T>>();
    auto a = sys.spawn(
      [=](caf::event_based_actor* self, int) {
        self->request(to, std::chrono::seconds(60), xs...)
          .then([out](T& v) { *out = std::move(v); }, [](caf::error&) {});
        if (keep)
          self->become([](int) {});
      },
      0); // (the int: CAF 0.17 and argument-less function actors)
    if (keep)
      kept.push_back(a);
    sched.run();
    return *out;
  }

  template <class T, class Handle, class... Ts>
  std::optional<T> ask(const Handle& to, Ts... xs) {
    return ask_from<T>(false, to, xs...);
  }

  cache_value get(const cache_actor& c, const std::string& k) {
    auto v = ask<cache_value>(c, get_atom_v, k);
    REQUIRE(v);
    return *v;
  }
  bool put(const cache_actor& c, const std::string& k, const std::string& v) {
    auto r = ask<bool>(c, put_atom_v, k, v);
    REQUIRE(r);
    return *r;
  }
  cache_stats stats(const cache_actor& c) {
    auto s = ask<cache_stats>(c, stats_atom_v);
    REQUIRE(s);
    return *s;
  }
  std::vector<cache_lookup_result> lookup(const cache_actor& c,
                                          std::vector<std::string> keys) {
    auto r
      = ask_from<std::vector<cache_lookup_result>>(true, c, lookup_atom_v, keys);
    REQUIRE(r);
    return *r;
  }
};

} // namespace

TEST_CASE("cache: get, put, erase and their statistics") {
  fixture f;
  auto c = f.cache();
  CHECK_FALSE(f.get(c, "a"));
  CHECK(f.put(c, "a", "1"));
  auto v = f.get(c, "a");
  CHECK(v.found);
  CHECK(v.value == "1");
  CHECK(f.put(c, "a", "22")); // replaces
  CHECK(f.get(c, "a").value == "22");
  CHECK(f.ask<bool>(c, erase_atom_v, std::string{"a"}) == true);
  CHECK(f.ask<bool>(c, erase_atom_v, std::string{"a"}) == false);
  CHECK_FALSE(f.get(c, "a"));
  auto s = f.stats(c);
  CHECK(s.hits == 2);
  CHECK(s.misses == 2);
  CHECK(s.entries == 0);
  CHECK(s.bytes == 0);
  CHECK(f.put(c, "key", "value"));
  CHECK(f.stats(c).bytes == 8); // key + value
  caf::anon_send_exit(c, caf::exit_reason::user_shutdown);
}

TEST_CASE("cache: entries expire after ttl in virtual time") {
  fixture f;
  cache_config cfg;
  cfg.ttl = 5min;
  auto c = f.cache(cfg);
  CHECK(f.put(c, "a", "1"));
  CHECK(f.ask<bool>(c, put_atom_v, std::string{"b"}, std::string{"2"},
                    caf::timespan{10min})
        == true); // its own ttl
  f.sched.advance_time(5min - 1ms);
  CHECK(f.get(c, "a").found);
  f.sched.advance_time(1ms);
  CHECK_FALSE(f.get(c, "a"));
  CHECK(f.get(c, "b").found);
  f.sched.advance_time(5min);
  auto s = f.stats(c); // the stats sweep what expired
  CHECK(s.expirations == 2);
  CHECK(s.entries == 0);
  CHECK_FALSE(f.get(c, "b"));

  cfg.ttl = duration{0}; // never expires
  auto forever = f.cache(cfg);
  CHECK(f.put(forever, "a", "1"));
  f.sched.advance_time(std::chrono::hours(24 * 365));
  CHECK(f.get(forever, "a").found);
  caf::anon_send_exit(c, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(forever, caf::exit_reason::user_shutdown);
}

TEST_CASE("cache: LRU eviction by entries and by bytes") {
  fixture f;
  cache_config cfg;
  cfg.capacity = 3;
  auto c = f.cache(cfg);
  f.put(c, "a", "1");
  f.put(c, "b", "2");
  f.put(c, "c", "3");
  CHECK(f.get(c, "a").found); // a is now the most recently used
  f.put(c, "d", "4");         // evicts b, the least recently used
  CHECK_FALSE(f.get(c, "b"));
  CHECK(f.get(c, "a").found);
  CHECK(f.get(c, "c").found);
  CHECK(f.get(c, "d").found);
  f.put(c, "e", "5"); // evicts a (c, d, a were touched in that order)
  CHECK_FALSE(f.get(c, "a"));
  auto s = f.stats(c);
  CHECK(s.evictions == 2);
  CHECK(s.entries == 3);

  cache_config bytes;
  bytes.capacity = 0;
  bytes.max_bytes = 10;
  auto b = f.cache(bytes);
  CHECK(f.put(b, "a", "1234")); // 5 bytes
  CHECK(f.put(b, "b", "1234")); // 10
  CHECK(f.put(b, "c", "1"));    // 12 > 10: a goes
  CHECK_FALSE(f.get(b, "a"));
  CHECK(f.get(b, "b").found);
  CHECK(f.stats(b).bytes == 7);
  CHECK_FALSE(f.put(b, "big", "12345678")); // 11 bytes alone: never stored
  CHECK_FALSE(f.get(b, "big"));
  s = f.stats(b);
  CHECK(s.refused == 1);
  CHECK(s.evictions == 1);
  CHECK(s.bytes <= 10);
  caf::anon_send_exit(c, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
}

TEST_CASE("cache: 100 concurrent misses on one key compute once") {
  fixture f;
  auto c = f.cache();
  auto computed = std::make_shared<int>(0);
  auto got = std::make_shared<std::vector<std::string>>();
  for (int i = 0; i < 100; ++i)
    f.sys.spawn(
      [=](caf::event_based_actor* self, int) {
        get_or_compute(
          self, c, "k", 10s,
          [computed](const std::string& key) {
            ++*computed;
            return "value of " + key;
          },
          [got](call_result<std::string> v) {
            got->push_back(v.ok() ? v.value() : "error: " + v.error());
          });
      },
      0);
  f.sched.run();
  CHECK(*computed == 1);
  REQUIRE(got->size() == 100);
  for (auto& v : *got)
    CHECK(v == "value of k");
  auto s = f.stats(c);
  CHECK(s.computations == 1);
  CHECK(s.coalesced == 99);
  CHECK(s.misses == 100);
  // Later callers hit.
  f.sys.spawn(
    [=](caf::event_based_actor* self, int) {
      get_or_compute(
        self, c, "k", 10s, [computed](const std::string&) { ++*computed; return std::string{"x"}; },
        [got](call_result<std::string> v) { got->push_back(v.value()); });
    },
    0);
  f.sched.run();
  CHECK(*computed == 1);
  CHECK(got->back() == "value of k");
  caf::anon_send_exit(c, caf::exit_reason::user_shutdown);
}

TEST_CASE("cache: waiters wait for a slow computation, then all get it") {
  fixture f;
  auto c = f.cache();
  auto holder_log = std::make_shared<caller_log>();
  auto holder = f.caller(c, holder_log);
  caf::anon_send(holder, lookup_atom_v, std::vector<std::string>{"k", "k"});
  f.sched.run();
  REQUIRE(holder_log->looked_up.size() == 2);
  CHECK(holder_log->looked_up[0].answer.what == cache_answer::kind::lease);
  CHECK(holder_log->looked_up[1].pending); // the same key twice: one lease
  auto lease = holder_log->looked_up[0].answer.lease;
  std::vector<std::shared_ptr<caller_log>> logs;
  std::vector<caf::actor> waiters;
  for (int i = 0; i < 10; ++i) {
    logs.push_back(std::make_shared<caller_log>());
    waiters.push_back(f.caller(c, logs.back()));
    caf::anon_send(waiters.back(), lookup_atom_v, std::vector<std::string>{"k"});
  }
  f.sched.run();
  for (auto& w : waiters)
    caf::anon_send(w, await_atom_v, std::string{"k"});
  f.sched.run();
  for (auto& l : logs) {
    CHECK(l->looked_up.at(0).pending);
    CHECK_FALSE(l->awaited); // still computing
  }
  f.sched.advance_time(10s); // well within lease_timeout (30s)
  f.sched.run();
  caf::anon_send(c, fulfil_atom_v, std::string{"k"}, lease, std::string{"v"});
  f.sched.run();
  for (auto& l : logs) {
    REQUIRE(l->awaited);
    CHECK(l->awaited->what == cache_answer::kind::hit);
    CHECK(l->awaited->value == "v");
  }
  auto s = f.stats(c);
  CHECK(s.computations == 1);
  CHECK(s.coalesced == 11);
  for (auto& w : waiters)
    caf::anon_send_exit(w, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(holder, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(c, caf::exit_reason::user_shutdown);
}

TEST_CASE("cache: a failed computation is not cached; waiters get its error") {
  fixture f;
  auto c = f.cache();
  auto calls = std::make_shared<int>(0);
  auto got = std::make_shared<std::vector<std::string>>();
  auto failing = [=](caf::event_based_actor* self, int) {
    get_or_compute(
      self, c, "k", 10s,
      [calls](const std::string&) -> std::string {
        ++*calls;
        throw std::runtime_error("backend down");
      },
      [got](call_result<std::string> v) {
        got->push_back(v.ok() ? v.value() : v.error());
      });
  };
  for (int i = 0; i < 5; ++i)
    f.sys.spawn(failing, 0);
  f.sched.run();
  CHECK(*calls == 1);
  REQUIRE(got->size() == 5);
  for (auto& v : *got)
    CHECK(v == "backend down");
  // Not cached: the next caller computes again.
  f.sys.spawn(failing, 0);
  f.sched.run();
  CHECK(*calls == 2);
  auto s = f.stats(c);
  CHECK(s.failures == 2);
  CHECK(s.entries == 0);
  caf::anon_send_exit(c, caf::exit_reason::user_shutdown);
}

TEST_CASE("cache: a failure is cached for negative_ttl") {
  fixture f;
  cache_config cfg;
  cfg.negative_ttl = 10s;
  auto c = f.cache(cfg);
  auto r = f.lookup(c, {"k"});
  REQUIRE(r.at(0).answer.what == cache_answer::kind::lease);
  caf::anon_send(c, abandon_atom_v, std::string{"k"}, r[0].answer.lease,
                 std::string{"HTTP 503"});
  f.sched.run();
  r = f.lookup(c, {"k"});
  CHECK(r.at(0).answer.what == cache_answer::kind::failed);
  CHECK(r.at(0).answer.error == "HTTP 503");
  CHECK_FALSE(f.get(c, "k")); // a failure is no value
  f.sched.advance_time(10s);
  r = f.lookup(c, {"k"});
  CHECK(r.at(0).answer.what == cache_answer::kind::lease); // computed again
  auto s = f.stats(c);
  CHECK(s.negative_hits == 2); // the lookup and the get
  CHECK(s.failures == 1);
  CHECK(s.computations == 2);
  caf::anon_send_exit(c, caf::exit_reason::user_shutdown);
}

TEST_CASE("cache: the lease passes to the next waiter when its holder dies") {
  fixture f;
  auto c = f.cache();
  std::vector<std::shared_ptr<caller_log>> logs;
  std::vector<caf::actor> callers;
  for (int i = 0; i < 4; ++i) {
    logs.push_back(std::make_shared<caller_log>());
    callers.push_back(f.caller(c, logs.back()));
  }
  caf::anon_send(callers[0], lookup_atom_v, std::vector<std::string>{"k"});
  f.sched.run();
  REQUIRE(logs[0]->looked_up.at(0).answer.what == cache_answer::kind::lease);
  auto first = logs[0]->looked_up[0].answer.lease;
  for (int i = 1; i < 4; ++i)
    caf::anon_send(callers[i], await_atom_v, std::string{"k"});
  f.sched.run();
  CHECK_FALSE(logs[1]->awaited);
  caf::anon_send_exit(callers[0], caf::exit_reason::kill); // the holder dies
  f.sched.run();
  REQUIRE(logs[1]->awaited);
  CHECK(logs[1]->awaited->what == cache_answer::kind::lease);
  CHECK(logs[1]->awaited->lease != first);
  CHECK_FALSE(logs[2]->awaited); // still waits, now for caller 1
  // A lease handed on is monitored too: caller 1 dies, caller 2 computes.
  caf::anon_send_exit(callers[1], caf::exit_reason::kill);
  f.sched.run();
  REQUIRE(logs[2]->awaited);
  CHECK(logs[2]->awaited->what == cache_answer::kind::lease);
  CHECK_FALSE(logs[3]->awaited);
  // A late abandon with the first holder's lease changes nothing.
  caf::anon_send(c, abandon_atom_v, std::string{"k"}, first, std::string{"x"});
  caf::anon_send(c, fulfil_atom_v, std::string{"k"}, logs[2]->awaited->lease,
                 std::string{"from 2"});
  f.sched.run();
  REQUIRE(logs[3]->awaited);
  CHECK(logs[3]->awaited->value == "from 2");
  auto s = f.stats(c);
  CHECK(s.handoffs == 2);
  CHECK(s.computations == 3);
  CHECK(s.stale == 1);
  for (int i = 2; i < 4; ++i)
    caf::anon_send_exit(callers[i], caf::exit_reason::user_shutdown);
  caf::anon_send_exit(c, caf::exit_reason::user_shutdown);
}

TEST_CASE("cache: a lease that times out passes on; its late value counts") {
  fixture f;
  cache_config cfg;
  cfg.lease_timeout = 5s;
  auto c = f.cache(cfg);
  auto a_log = std::make_shared<caller_log>();
  auto b_log = std::make_shared<caller_log>();
  auto a = f.caller(c, a_log);
  auto b = f.caller(c, b_log);
  caf::anon_send(a, lookup_atom_v, std::vector<std::string>{"k"});
  f.sched.run();
  auto first = a_log->looked_up.at(0).answer.lease;
  caf::anon_send(b, await_atom_v, std::string{"k"});
  f.sched.run();
  f.sched.advance_time(5s - 1ms);
  f.sched.run();
  CHECK_FALSE(b_log->awaited);
  f.sched.advance_time(1ms); // a's lease runs out
  f.sched.run();
  REQUIRE(b_log->awaited);
  CHECK(b_log->awaited->what == cache_answer::kind::lease);
  CHECK(f.stats(c).lease_timeouts == 1);
  // a finishes late: its value is still the value.
  caf::anon_send(c, fulfil_atom_v, std::string{"k"}, first, std::string{"late"});
  f.sched.run();
  CHECK(f.get(c, "k").value == "late");
  // With nobody waiting, a lease that runs out just ends: the next miss
  // leases afresh.
  auto r = f.lookup(c, {"other"});
  f.sched.advance_time(5s);
  f.sched.run();
  r = f.lookup(c, {"other"});
  CHECK(r.at(0).answer.what == cache_answer::kind::lease);
  auto s = f.stats(c);
  CHECK(s.lease_timeouts == 2); // a's on k and the one on other (b's lease
                                // on k ended with a's late value)
  CHECK(s.stale == 1);
  caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(c, caf::exit_reason::user_shutdown);
}

TEST_CASE("cache: awaits past max_waiting are refused") {
  fixture f;
  cache_config cfg;
  cfg.max_waiting = 2;
  auto c = f.cache(cfg);
  auto r = f.lookup(c, {"k"});
  REQUIRE(r.at(0).answer.what == cache_answer::kind::lease);
  std::vector<std::shared_ptr<caller_log>> logs;
  std::vector<caf::actor> callers;
  for (int i = 0; i < 3; ++i) {
    logs.push_back(std::make_shared<caller_log>());
    callers.push_back(f.caller(c, logs.back()));
    caf::anon_send(callers.back(), await_atom_v, std::string{"k"});
    f.sched.run();
  }
  CHECK(logs[2]->error.find("max_waiting") != std::string::npos);
  caf::anon_send(c, fulfil_atom_v, std::string{"k"}, r[0].answer.lease,
                 std::string{"v"});
  f.sched.run();
  CHECK(logs[0]->awaited->value == "v");
  CHECK(logs[1]->awaited->value == "v");
  CHECK(f.stats(c).refused == 1);
  for (auto& x : callers)
    caf::anon_send_exit(x, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(c, caf::exit_reason::user_shutdown);
}

TEST_CASE("cache: shards give the same answers and summed statistics") {
  fixture f;
  cache_config one;
  one.capacity = 1000;
  auto four = one;
  four.shards = 4;
  auto a = f.cache(one);
  auto b = f.cache(four);
  for (auto c : {a, b}) {
    for (int i = 0; i < 50; ++i)
      f.put(c, "k" + std::to_string(i), "v" + std::to_string(i));
    for (int i = 0; i < 100; i += 3)
      f.get(c, "k" + std::to_string(i));
    f.ask<bool>(c, erase_atom_v, std::string{"k7"});
  }
  for (int i = 0; i < 100; ++i) {
    auto k = "k" + std::to_string(i);
    auto x = f.get(a, k), y = f.get(b, k);
    CHECK(x.found == y.found);
    CHECK(x.value == y.value);
  }
  // A batched lookup across shards answers in key order; its leases work.
  std::vector<std::string> keys;
  for (int i = 45; i < 60; ++i)
    keys.push_back("k" + std::to_string(i));
  auto ra = f.lookup(a, keys), rb = f.lookup(b, keys);
  REQUIRE(ra.size() == keys.size());
  REQUIRE(rb.size() == keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    CHECK(ra[i].answer.what == rb[i].answer.what);
    CHECK(ra[i].answer.value == rb[i].answer.value);
    if (rb[i].answer.what == cache_answer::kind::lease)
      caf::anon_send(b, fulfil_atom_v, keys[i], rb[i].answer.lease,
                     std::string{"new"});
  }
  f.sched.run();
  CHECK(f.get(b, "k55").value == "new");
  auto sa = f.stats(a), sb = f.stats(b);
  CHECK(sa.hits == sb.hits - 1); // b's get of k55
  CHECK(sa.misses == sb.misses);
  CHECK(sa.computations == sb.computations);
  CHECK(sb.computations == 10); // k50..k59
  CHECK(sb.entries == 49 + 10);
  CHECK(sa.entries == 49);
  caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
  f.sched.run();
  CHECK_FALSE(f.ask<cache_stats>(b, stats_atom_v)); // the router is gone
}

TEST_CASE("cache: a sharded lookup's leases are held by the caller") {
  // The router splits a lookup spanning shards; each shard must monitor the
  // caller, not the router, or a dead caller's leases would never pass on.
  fixture f;
  cache_config cfg;
  cfg.shards = 4;
  auto c = f.cache(cfg);
  auto a_log = std::make_shared<caller_log>();
  auto b_log = std::make_shared<caller_log>();
  auto a = f.caller(c, a_log);
  auto b = f.caller(c, b_log);
  std::vector<std::string> keys;
  for (int i = 0; i < 16; ++i)
    keys.push_back("k" + std::to_string(i));
  caf::anon_send(a, lookup_atom_v, keys);
  f.sched.run();
  REQUIRE(a_log->looked_up.size() == 16);
  for (auto& r : a_log->looked_up)
    CHECK(r.answer.what == cache_answer::kind::lease);
  caf::anon_send(b, await_atom_v, std::string{"k11"});
  f.sched.run();
  CHECK_FALSE(b_log->awaited);
  caf::anon_send_exit(a, caf::exit_reason::kill);
  f.sched.run();
  REQUIRE(b_log->awaited);
  CHECK(b_log->awaited->what == cache_answer::kind::lease);
  auto s = f.stats(c);
  CHECK(s.handoffs == 1);
  CHECK(s.computations == 17);
  caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(c, caf::exit_reason::user_shutdown);
}

TEST_CASE("cache: waiters get an error when the cache stops") {
  fixture f;
  auto c = f.cache();
  auto r = f.lookup(c, {"k"});
  REQUIRE(r.at(0).answer.what == cache_answer::kind::lease);
  auto log = std::make_shared<caller_log>();
  auto w = f.caller(c, log);
  caf::anon_send(w, await_atom_v, std::string{"k"});
  f.sched.run();
  CHECK(log->error.empty());
  caf::anon_send_exit(c, caf::exit_reason::user_shutdown);
  f.sched.run();
  CHECK_FALSE(log->awaited);
  CHECK(log->error.find("cache: stopped while 'k' was computed")
        != std::string::npos);
  caf::anon_send_exit(w, caf::exit_reason::user_shutdown);
}

TEST_CASE("cache: impossible configs are refused") {
  fixture f;
  auto refused = [&](cache_config cfg) {
    try {
      f.cache(cfg);
    } catch (const std::invalid_argument& e) {
      return std::string{e.what()};
    }
    return std::string{"(spawned)"};
  };
  cache_config c;
  c.capacity = 0;
  c.max_bytes = 0;
  CHECK(refused(c).find("grow without bound") != std::string::npos);
  c = {};
  c.lease_timeout = duration{0};
  CHECK(refused(c).find("lease_timeout") != std::string::npos);
  c = {};
  c.capacity = 2;
  c.shards = 3;
  CHECK(refused(c).find("shards (3) above capacity (2)") != std::string::npos);
}

// -- a node using cache_client in a graph ------------------------------------

namespace {

// A test stage that memoises "v<key>" per record key (k0..k9 from seq % 10)
// through its `cache:` slot: hits take the cached value, a lease computes and
// fulfils, a failure fails the record.
class memo_logic : public node_logic {
public:
  memo_logic(const node_context& ctx, std::shared_ptr<int> computed,
             std::string failing_key = "")
    : computed_(std::move(computed)), failing_key_(std::move(failing_key)) {
    if (ctx.calls)
      client_ = ctx.calls->client<cache_client>("cache");
    if (!client_)
      throw std::runtime_error("memo: no cache client");
  }

  void consume(record_batch in, emitter&) override {
    std::vector<std::string> keys;
    std::vector<pending_records::ticket> tickets;
    for (auto& r : in.take()) {
      keys.push_back("k" + std::to_string(r.seq % 10));
      tickets.push_back(pending_.hold(std::move(r)));
      pending_.next_to_start();
    }
    auto ks = keys;
    client_->lookup(std::move(ks), [this, tickets, keys](size_t i,
                                                         cache_answer a,
                                                         emitter& out) {
      auto t = tickets.at(i);
      switch (a.what) {
        case cache_answer::kind::hit:
          pending_.at(t).body = a.value;
          pending_.complete(t, pending_records::outcome::emit);
          break;
        case cache_answer::kind::lease: {
          ++*computed_;
          if (keys.at(i) == failing_key_) {
            client_->abandon(keys.at(i), a.lease, "no value for " + keys.at(i));
            pending_.fail(t, "no value for " + keys.at(i));
            break;
          }
          auto v = "v" + keys.at(i);
          client_->fulfil(keys.at(i), a.lease, v);
          pending_.at(t).body = v;
          pending_.complete(t, pending_records::outcome::emit);
          break;
        }
        case cache_answer::kind::failed:
          pending_.fail(t, a.error);
          break;
      }
      pending_.flush(out);
    });
  }
  size_t buffered() const override {
    return pending_.buffered();
  }
  size_t held() const override {
    return pending_.held();
  }

private:
  std::shared_ptr<int> computed_;
  std::string failing_key_; // its computation fails
  cache_client* client_ = nullptr;
  pending_records pending_{true, size_t{1} << 20};
};

// Checks the bodies that reach it: "v" + "k" + seq % 10.
class check_sink : public node_logic {
public:
  explicit check_sink(std::shared_ptr<int> wrong) : wrong_(std::move(wrong)) {
  }
  void consume(record_batch in, emitter& out) override {
    for (auto& r : in.records())
      if (r.body != "vk" + std::to_string(r.seq % 10))
        ++*wrong_;
    out.emit(std::move(in));
  }

private:
  std::shared_ptr<int> wrong_;
};

struct memo_run {
  run_report report;
  int computed = 0;
  int wrong = 0;
  cache_stats stats;
};

// generate(1000) -> memo (keys k0..k9 through a cache) -> check, on the
// test coordinator.
memo_run run_memo(const std::string& cache_params,
                  const std::string& failing_key = "") {
  auto computed = std::make_shared<int>(0);
  auto wrong = std::make_shared<int>(0);
  auto reg = std::make_shared<registry>();
  register_builtins(*reg);
  actor_type memo;
  memo.name = "memo";
  memo.slots = {"cache"};
  memo.kind = actor_kind::stage;
  memo.protocol = "record_stream";
  memo.doc = "test: memoises through its cache slot";
  memo.make_node = [computed, failing_key](const node_context& ctx) {
    return std::make_unique<memo_logic>(ctx, computed, failing_key);
  };
  reg->add(memo);
  actor_type sink;
  sink.name = "check";
  sink.kind = actor_kind::sink;
  sink.protocol = "record_stream";
  sink.doc = "test: checks memoised bodies";
  sink.make_node = [wrong](const node_context&) {
    return std::make_unique<check_sink>(wrong);
  };
  reg->add(sink);
  runtime rt{std::shared_ptr<const registry>(reg), runtime_options{1, true}};
  auto& sched
    = dynamic_cast<caf::scheduler::test_coordinator&>(rt.system().scheduler());
  auto loaded = load_graph_text(R"(version: 1
runtime: { batch_size: 32 }
resources:
  memo_cache: { type: cache, )" + cache_params + R"( }
nodes:
  src:  { type: generate, count: 1000 }
  memo: { type: memo, cache: memo_cache, inputs: [src] }
  out:  { type: check, inputs: [memo] }
)",
                                "t.yaml", *reg);
  if (!loaded.ok())
    for (auto& d : loaded.errors)
      FAIL(d.str());
  auto run = rt.start(*loaded.graph);
  sched.run();
  for (duration t{0}; t < 60s && !run.finished(); t += 10ms) {
    sched.advance_time(10ms);
    sched.run();
  }
  REQUIRE(run.finished());
  memo_run r;
  r.report = run.report();
  r.computed = *computed;
  r.wrong = *wrong;
  auto c = run.resource<cache_actor>("memo_cache");
  auto out = std::make_shared<std::optional<cache_stats>>();
  rt.system().spawn(
    [=](caf::event_based_actor* self, int) {
      self->request(c, std::chrono::seconds(1), stats_atom_v)
        .then([out](cache_stats& s) { *out = s; }, [](caf::error&) {});
    },
    0);
  sched.run();
  REQUIRE(*out);
  r.stats = **out;
  run.release();
  return r;
}

} // namespace

TEST_CASE("cache: a node's cache_client completes every record in a graph") {
  for (auto params : {"capacity: 100", "capacity: 100, shards: 2"}) {
    CAPTURE(params);
    auto r = run_memo(params);
    CHECK(r.report.status == "completed");
    CHECK(r.report.balanced());
    CHECK(r.report.sink_records == 1000);
    CHECK(r.wrong == 0);
    CHECK(r.computed == 10); // one computation per distinct key
    CHECK(r.stats.computations == 10);
    CHECK(r.stats.hits + r.stats.misses == 1000);
    CHECK(r.stats.misses == 10 + r.stats.coalesced);
  }
}

TEST_CASE("cache: a failing computation fails its records, not the run") {
  // Every record of k3 fails (to errors) with the computation's reason; the
  // rest complete. The lookups of later batches joined the one failing
  // computation in flight (or met its failure), so it ran once.
  for (auto params : {"capacity: 100", "capacity: 100, negative_ttl: 1m"}) {
    CAPTURE(params);
    auto r = run_memo(params, "k3");
    CHECK(r.report.status == "completed");
    CHECK(r.report.balanced());
    CHECK(r.report.sink_records == 900);
    CHECK(r.report.dead_lettered == 100);
    CHECK(r.wrong == 0);
    CHECK(r.computed == 10);
    CHECK(r.stats.failures == 1);
  }
}
