// The supervision engine, event by event (no actors, no clock, no timers),
// and the graph's end-of-run check.
#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "supervision/completion.hpp"
#include "supervision/engine.hpp"

using namespace troupe;
using namespace troupe::supervision;
using namespace std::chrono_literals;

namespace {

using op = command::op;

const time_point t0{};

supervision_spec policy(strategy s, uint32_t intensity = 5,
                        duration period = std::chrono::minutes(1)) {
  supervision_spec p;
  p.strategy = s;
  p.intensity = intensity;
  p.period = period;
  p.backoff = {10ms, 100ms, 0};
  return p;
}

// An engine with children a, b, c in the root scope, all started.
struct tree {
  engine e;
  explicit tree(strategy s, stop_mode m = stop_mode::together,
                uint32_t intensity = 5)
    : e(m, policy(s, intensity), "root", 1) {
  }
  void add(std::vector<std::string> names,
           restart_type r = restart_type::permanent, scope_id s = root_scope) {
    for (auto& n : names)
      e.add_child(n, r, s);
  }
  void start() {
    for (auto& c : e.start_all())
      carry_out_starts(c);
  }
  void carry_out_starts(const command& c) {
    if (c.what == op::start)
      for (auto u : c.units)
        e.started(u);
  }
  // Carries out starts; returns the rest.
  commands run(commands cs) {
    commands rest;
    for (auto& c : cs) {
      carry_out_starts(c);
      if (c.what != op::start)
        rest.push_back(c);
    }
    return rest;
  }
};

std::vector<op> ops(const commands& cs) {
  std::vector<op> out;
  for (auto& c : cs)
    out.push_back(c.what);
  return out;
}

const command* find(const commands& cs, op what) {
  for (auto& c : cs)
    if (c.what == what)
      return &c;
  return nullptr;
}

using units = std::vector<unit_id>;

} // namespace

TEST_CASE("engine: start_all starts every unit in start order") {
  tree t{strategy::one_for_one};
  t.add({"a", "b", "c"});
  auto cs = t.e.start_all();
  REQUIRE(cs.size() == 1);
  CHECK(cs[0].what == op::start);
  CHECK(cs[0].units == units{0, 1, 2});
  CHECK(t.e.state(0) == unit_state::idle); // until the shell says started
  t.run(cs);
  CHECK(t.e.state(2) == unit_state::running);
}

TEST_CASE("engine: each strategy's restart set, stopped in reverse start order") {
  struct expectation {
    strategy s;
    units killed;    // the others, in reverse start order
    units restarted; // in start order
  };
  for (auto x : {expectation{strategy::one_for_one, {}, {1}},
                 expectation{strategy::one_for_all, {3, 2, 0}, {0, 1, 2, 3}},
                 expectation{strategy::rest_for_one, {3, 2}, {1, 2, 3}}}) {
    CAPTURE(to_string(x.s));
    tree t{x.s};
    t.add({"a", "b", "c", "d"});
    t.start();
    auto r = t.e.child_down(1, exit_kind::crash, "boom", t0);
    CHECK(r.what == disposition::restarting);
    auto kill = find(r.cmds, op::kill);
    if (x.killed.empty()) {
      CHECK(kill == nullptr);
      REQUIRE(find(r.cmds, op::schedule)); // nothing to wait for
    } else {
      REQUIRE(kill);
      CHECK(kill->units == x.killed);
      CHECK_FALSE(find(r.cmds, op::schedule)); // not before they are down
      for (size_t k = 0; k < x.killed.size(); ++k) {
        auto d = t.e.child_down(x.killed[k], exit_kind::crash, "killed", t0);
        CHECK(d.what == disposition::stopped);
        CHECK((find(d.cmds, op::schedule) != nullptr)
              == (k + 1 == x.killed.size()));
        if (k + 1 == x.killed.size())
          r = d;
      }
    }
    auto sched = find(r.cmds, op::schedule);
    REQUIRE(sched);
    CHECK(sched->delay == duration{10ms});
    auto due = t.e.restart_due(sched->token, t0 + 10ms);
    CHECK(ops(due) == std::vector<op>{op::restart, op::start});
    CHECK(due[0].units == x.restarted); // all down when the batch fires
    CHECK(due[1].units == x.restarted);
    t.run(due);
    for (unit_id u = 0; u < 4; ++u)
      CHECK(t.e.state(u) == unit_state::running);
    CHECK(t.e.pending_restarts() == 0);
  }
}

TEST_CASE("engine: one_by_one stops one child at a time, last started first") {
  tree t{strategy::one_for_all, stop_mode::one_by_one};
  t.add({"a", "b", "c"});
  t.start();
  auto r = t.e.child_down(0, exit_kind::crash, "boom", t0);
  REQUIRE(ops(r.cmds) == std::vector<op>{op::stop});
  CHECK(r.cmds[0].units == units{2});
  r = t.e.child_down(2, exit_kind::normal, "", t0);
  CHECK(r.what == disposition::stopped);
  REQUIRE(ops(r.cmds) == std::vector<op>{op::stop});
  CHECK(r.cmds[0].units == units{1});
  r = t.e.child_down(1, exit_kind::normal, "", t0);
  REQUIRE(ops(r.cmds) == std::vector<op>{op::schedule});
  auto due = t.e.restart_due(r.cmds[0].token, t0 + 10ms);
  CHECK(due.back().units == units{0, 1, 2});
}

TEST_CASE("engine: shutdown stops in reverse start order, then all_stopped") {
  SUBCASE("one by one") {
    tree t{strategy::one_for_one, stop_mode::one_by_one};
    t.add({"a", "b", "c"});
    t.start();
    auto cs = t.e.shutdown();
    std::vector<unit_id> order;
    while (!cs.empty() && cs[0].what == op::stop) {
      order.push_back(cs[0].units[0]);
      cs = t.e.child_down(cs[0].units[0], exit_kind::normal, "", t0).cmds;
    }
    CHECK(order == units{2, 1, 0});
    CHECK(ops(cs) == std::vector<op>{op::all_stopped});
    CHECK(t.e.shutdown().empty()); // only once
  }
  SUBCASE("together") {
    tree t{strategy::one_for_one};
    t.add({"a", "b", "c"});
    t.start();
    auto cs = t.e.shutdown();
    REQUIRE(ops(cs) == std::vector<op>{op::kill});
    CHECK(cs[0].units == units{2, 1, 0});
    CHECK(t.e.child_down(0, exit_kind::crash, "killed", t0).cmds.empty());
    CHECK(t.e.child_down(2, exit_kind::crash, "killed", t0).cmds.empty());
    CHECK(ops(t.e.child_down(1, exit_kind::crash, "killed", t0).cmds)
          == std::vector<op>{op::all_stopped});
  }
  SUBCASE("nothing running") {
    tree t{strategy::one_for_one, stop_mode::one_by_one};
    CHECK(ops(t.e.shutdown()) == std::vector<op>{op::all_stopped});
  }
}

TEST_CASE("engine: a stop timeout kills the child being stopped, a stale one nobody") {
  tree t{strategy::one_for_one, stop_mode::one_by_one};
  t.add({"a", "b"});
  t.start();
  auto cs = t.e.shutdown();
  REQUIRE(ops(cs) == std::vector<op>{op::stop});
  auto token = cs[0].token;
  CHECK(t.e.stop_timeout(token + 1).empty());
  auto k = t.e.stop_timeout(token);
  REQUIRE(ops(k) == std::vector<op>{op::kill});
  CHECK(k[0].units == units{1});
  cs = t.e.child_down(1, exit_kind::crash, "killed", t0).cmds;
  REQUIRE(ops(cs) == std::vector<op>{op::stop});
  CHECK(t.e.stop_timeout(token).empty()); // b's timer, a is being stopped
}

TEST_CASE("engine: the failure beyond the root's budget fails the tree") {
  tree t{strategy::one_for_one, stop_mode::together, 2};
  t.add({"a", "b"});
  t.start();
  for (int i = 0; i < 2; ++i) {
    auto r = t.e.child_down(1, exit_kind::crash, "boom", t0 + i * 1s);
    CHECK(r.what == disposition::restarting);
    t.run(t.e.restart_due(find(r.cmds, op::schedule)->token, t0));
  }
  auto r = t.e.child_down(1, exit_kind::crash, "third", t0 + 2s);
  CHECK(r.what == disposition::failed);
  REQUIRE(ops(r.cmds) == std::vector<op>{op::fail});
  CHECK(r.cmds[0].units == units{1});
  CHECK(r.cmds[0].reason == "third");
  // The shell shuts down: the others are stopped.
  auto cs = t.e.shutdown();
  REQUIRE(ops(cs) == std::vector<op>{op::kill});
  CHECK(cs[0].units == units{0});
}

TEST_CASE("engine: failures spaced past the period never exhaust the budget") {
  tree t{strategy::one_for_one, stop_mode::together, 1};
  t.add({"a"});
  t.start();
  for (int i = 0; i < 20; ++i) {
    auto now = t0 + i * 2min;
    auto r = t.e.child_down(0, exit_kind::crash, "boom", now);
    REQUIRE(r.what == disposition::restarting);
    t.run(t.e.restart_due(find(r.cmds, op::schedule)->token, now));
  }
}

TEST_CASE("engine: an exhausted group escalates to its parent, which restarts it whole") {
  // root (one_for_one): z, group g (one_for_all, intensity 1): x, y, and
  // group h inside g (one_for_one, intensity 0): w.
  engine e{stop_mode::together, policy(strategy::one_for_one, 5), "root", 1};
  auto g = e.add_scope("g", policy(strategy::one_for_all, 1));
  auto h = e.add_scope("h", policy(strategy::one_for_one, 0));
  e.set_parent(h, g);
  auto z = e.add_child("z", restart_type::permanent);
  auto x = e.add_child("x", restart_type::permanent, g);
  auto y = e.add_child("y", restart_type::permanent, g);
  auto w = e.add_child("w", restart_type::permanent, h);
  CHECK(e.scope_parent(h) == g);
  for (auto& c : e.start_all())
    for (auto u : c.units)
      e.started(u);
  auto settle = [&](down_result r) {
    // Carries out the kills and the restart; returns what the batch did.
    std::vector<unit_id> killed;
    if (auto k = find(r.cmds, op::kill))
      for (auto u : k->units) {
        killed.push_back(u);
        auto d = e.child_down(u, exit_kind::crash, "killed", t0);
        r.cmds.insert(r.cmds.end(), d.cmds.begin(), d.cmds.end());
      }
    auto s = find(r.cmds, op::schedule);
    REQUIRE(s);
    for (auto& c : e.restart_due(s->token, t0))
      if (c.what == op::start)
        for (auto u : c.units)
          e.started(u);
    return killed;
  };
  // w fails: h (intensity 0) escalates at once; g restarts everything in it.
  auto r = e.child_down(w, exit_kind::crash, "boom", t0);
  CHECK(r.what == disposition::restarting);
  REQUIRE(ops(r.cmds).front() == op::escalate);
  CHECK(r.cmds.front().scope == h);
  CHECK(settle(r) == units{y, x});
  // x fails: g's second failure in its period escalates to the root, which
  // restarts group g (one_for_one at the root: z is untouched).
  r = e.child_down(x, exit_kind::crash, "boom", t0 + 1s);
  REQUIRE(r.cmds.size() >= 1);
  CHECK(r.cmds[0].what == op::escalate);
  CHECK(r.cmds[0].scope == g);
  CHECK(settle(r) == units{w, y});
  CHECK(e.state(z) == unit_state::running);
  // With a root of intensity 0 the same escalation fails the tree.
  engine strict{stop_mode::together, policy(strategy::one_for_one, 0), "root",
                1};
  auto g2 = strict.add_scope("g", policy(strategy::one_for_one, 0));
  strict.add_child("x", restart_type::permanent, g2);
  for (auto& c : strict.start_all())
    for (auto u : c.units)
      strict.started(u);
  r = strict.child_down(0, exit_kind::crash, "boom", t0);
  CHECK(r.what == disposition::failed);
  CHECK(ops(r.cmds) == std::vector<op>{op::escalate, op::fail});
}

TEST_CASE("engine: a group starts where its first unit starts") {
  // a (root), b (g), c (root), d (g): rest_for_one at the root on a's
  // failure takes g (placed second) and c.
  engine e{stop_mode::together, policy(strategy::rest_for_one), "root", 1};
  auto g = e.add_scope("g", policy(strategy::one_for_one));
  e.add_child("a", restart_type::permanent);
  e.add_child("b", restart_type::permanent, g);
  e.add_child("c", restart_type::permanent);
  e.add_child("d", restart_type::permanent, g);
  for (auto& c : e.start_all())
    for (auto u : c.units)
      e.started(u);
  auto r = e.child_down(2, exit_kind::crash, "boom", t0);
  // c is after g in the root's start order: only c restarts.
  CHECK_FALSE(find(r.cmds, op::kill));
  r = e.child_down(0, exit_kind::crash, "boom", t0);
  REQUIRE(find(r.cmds, op::kill));
  CHECK(find(r.cmds, op::kill)->units == units{3, 1}); // c is down already
}

TEST_CASE("engine: temporary and transient children") {
  tree t{strategy::one_for_all};
  t.add({"temp"}, restart_type::temporary);
  t.add({"trans"}, restart_type::transient);
  t.add({"perm"}, restart_type::permanent);
  t.start();
  SUBCASE("a temporary child that crashes is removed, nothing else happens") {
    auto r = t.e.child_down(0, exit_kind::crash, "boom", t0);
    CHECK(r.what == disposition::removed);
    REQUIRE(ops(r.cmds) == std::vector<op>{op::remove});
    CHECK(t.e.state(0) == unit_state::removed);
    CHECK(t.e.state(1) == unit_state::running);
  }
  SUBCASE("a transient child's normal exit removes it; its crash restarts") {
    auto r = t.e.child_down(1, exit_kind::normal, "", t0);
    CHECK(r.what == disposition::removed);
    tree u{strategy::one_for_one};
    u.add({"trans"}, restart_type::transient);
    u.start();
    CHECK(u.e.child_down(0, exit_kind::crash, "boom", t0).what
          == disposition::restarting);
  }
  SUBCASE("a permanent child's normal exit is a failure") {
    auto r = t.e.child_down(2, exit_kind::normal, "", t0);
    CHECK(r.what == disposition::restarting);
  }
  SUBCASE("a temporary child stopped for a sibling's restart stays down") {
    auto r = t.e.child_down(2, exit_kind::crash, "boom", t0);
    REQUIRE(find(r.cmds, op::kill));
    CHECK(find(r.cmds, op::kill)->units == units{1, 0});
    t.e.child_down(1, exit_kind::crash, "killed", t0);
    auto d = t.e.child_down(0, exit_kind::crash, "killed", t0);
    auto due = t.e.restart_due(find(d.cmds, op::schedule)->token, t0);
    CHECK(ops(due) == std::vector<op>{op::restart, op::remove, op::start});
    CHECK(due[1].units == units{0});
    CHECK(due[2].units == units{1, 2});
  }
  SUBCASE("a finished child is never restarted, even in a restart set") {
    CHECK(t.e.child_down(1, exit_kind::finished, "", t0).what
          == disposition::finished);
    auto r = t.e.child_down(2, exit_kind::crash, "boom", t0);
    CHECK(find(r.cmds, op::kill)->units == units{0});
    auto d = t.e.child_down(0, exit_kind::crash, "killed", t0);
    auto due = t.e.restart_due(find(d.cmds, op::schedule)->token, t0);
    CHECK(due.back().units == units{2});
    CHECK(t.e.state(1) == unit_state::finished);
  }
  SUBCASE("a fatal exit is left to the shell") {
    auto r = t.e.child_down(2, exit_kind::fatal, "disk full", t0);
    CHECK(r.what == disposition::fatal);
    CHECK(r.cmds.empty());
  }
}

TEST_CASE("engine: backoff doubles with recent failures, jittered from the seed") {
  auto delays = [](uint64_t seed, double jitter) {
    auto p = policy(strategy::one_for_one, 100);
    p.backoff = {10ms, 1s, jitter};
    engine e{stop_mode::together, p, "root", seed};
    e.add_child("a", restart_type::permanent);
    for (auto& c : e.start_all())
      e.started(c.units[0]);
    std::vector<duration> out;
    for (int i = 0; i < 8; ++i) {
      auto r = e.child_down(0, exit_kind::crash, "boom", t0 + i * 1ms);
      auto s = find(r.cmds, op::schedule);
      out.push_back(s->delay);
      for (auto& c : e.restart_due(s->token, t0))
        if (c.what == op::start)
          e.started(0);
    }
    return out;
  };
  auto plain = delays(1, 0);
  CHECK(plain[0] == duration{10ms});
  CHECK(plain[1] == duration{20ms});
  CHECK(plain[2] == duration{40ms});
  CHECK(plain[7] == duration{1s}); // capped
  auto a = delays(42, 0.2), b = delays(42, 0.2), c = delays(43, 0.2);
  CHECK(a == b); // a fixed seed repeats
  CHECK(a != c);
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i] >= plain[i] * 8 / 10);
    CHECK(a[i] <= plain[i] * 12 / 10);
  }
}

TEST_CASE("engine: a stop while restarts are pending drops them") {
  tree t{strategy::one_for_one};
  t.add({"a", "b"});
  t.start();
  auto r = t.e.child_down(0, exit_kind::crash, "boom", t0);
  auto token = find(r.cmds, op::schedule)->token;
  CHECK(t.e.pending_restarts() == 1);
  auto cs = t.e.shutdown();
  CHECK(t.e.pending_restarts() == 0);
  REQUIRE(ops(cs) == std::vector<op>{op::kill});
  CHECK(cs[0].units == units{1}); // a is down already
  CHECK(t.e.restart_due(token, t0 + 1s).empty());
  CHECK(ops(t.e.child_down(1, exit_kind::crash, "killed", t0).cmds)
        == std::vector<op>{op::all_stopped});
  CHECK(t.e.state(0) == unit_state::down);
}

TEST_CASE("engine: a stop while a restart set is being stopped one by one") {
  tree t{strategy::one_for_all, stop_mode::one_by_one};
  t.add({"a", "b", "c"});
  t.start();
  auto r = t.e.child_down(0, exit_kind::crash, "boom", t0);
  REQUIRE(ops(r.cmds) == std::vector<op>{op::stop});
  CHECK(t.e.shutdown().empty()); // c is being stopped: wait for it
  auto cs = t.e.child_down(2, exit_kind::normal, "", t0).cmds;
  REQUIRE(ops(cs) == std::vector<op>{op::stop}); // no schedule: stopping
  CHECK(cs[0].units == units{1});
  CHECK(ops(t.e.child_down(1, exit_kind::normal, "", t0).cmds)
        == std::vector<op>{op::all_stopped});
}

TEST_CASE("engine: a down of a child already down is ignored") {
  tree t{strategy::one_for_one};
  t.add({"a", "b"});
  t.start();
  auto r = t.e.child_down(0, exit_kind::crash, "boom", t0);
  CHECK(r.what == disposition::restarting);
  auto again = t.e.child_down(0, exit_kind::crash, "boom", t0);
  CHECK(again.what == disposition::ignored);
  CHECK(again.cmds.empty());
  t.e.shutdown();
  t.e.child_down(1, exit_kind::crash, "killed", t0);
  CHECK(t.e.child_down(1, exit_kind::crash, "late", t0).what
        == disposition::ignored);
}

TEST_CASE("engine: a failed start restarts the rest with its restart set") {
  tree t{strategy::one_for_one, stop_mode::one_by_one};
  t.add({"a", "b", "c"});
  auto cs = t.e.start_all();
  t.e.started(0);
  auto f = t.e.start_failed(1, "no connection", t0); // c never started
  REQUIRE(ops(f) == std::vector<op>{op::schedule});
  CHECK(t.e.state(2) == unit_state::down);
  auto due = t.e.restart_due(f[0].token, t0 + 10ms);
  CHECK(due.back().units == units{1, 2});
  SUBCASE("a temporary child that fails to start is removed; the rest start") {
    tree u{strategy::one_for_one};
    u.add({"a"});
    u.add({"tmp"}, restart_type::temporary);
    u.add({"c"});
    u.e.start_all();
    u.e.started(0);
    auto g = u.e.start_failed(1, "bad", t0);
    REQUIRE(ops(g) == std::vector<op>{op::remove, op::start});
    CHECK(g[1].units == units{2});
  }
  SUBCASE("beyond the budget a failed start fails the tree") {
    tree u{strategy::one_for_one, stop_mode::one_by_one, 0};
    u.add({"a"});
    u.e.start_all();
    auto g = u.e.start_failed(0, "bad", t0);
    REQUIRE(ops(g) == std::vector<op>{op::fail});
    CHECK(g[0].reason == "failed to start: bad");
  }
}

// Random trees and events; the invariants hold after every step.
TEST_CASE("engine: randomized invariants") {
  for (uint32_t seed = 1; seed <= 200; ++seed) {
    CAPTURE(seed);
    std::mt19937 rng{seed};
    auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
    auto mode = pick(2) ? stop_mode::together : stop_mode::one_by_one;
    strategy strategies[] = {strategy::one_for_one, strategy::one_for_all,
                             strategy::rest_for_one};
    restart_type types[] = {restart_type::permanent, restart_type::transient,
                            restart_type::temporary};
    engine e{mode, policy(strategies[pick(3)], static_cast<uint32_t>(pick(6))),
             "root", seed};
    std::vector<scope_id> scopes{root_scope};
    for (size_t k = pick(3); k > 0; --k) {
      auto s = e.add_scope("g", policy(strategies[pick(3)],
                                       static_cast<uint32_t>(pick(4))));
      e.set_parent(s, scopes[pick(scopes.size())]);
      scopes.push_back(s);
    }
    auto n = 1 + pick(6);
    for (size_t i = 0; i < n; ++i)
      e.add_child("u", types[pick(3)], scopes[pick(scopes.size())]);
    std::vector<uint64_t> timers, stop_tokens;
    bool failed = false, all_stopped = false;
    time_point now{};
    std::function<void(const commands&)> run = [&](const commands& cs) {
      for (auto& c : cs) {
        switch (c.what) {
          case op::start:
            for (auto u : c.units) {
              REQUIRE_FALSE(e.up(u));
              if (pick(10) == 0) { // a failed start
                run(e.start_failed(u, "bad", now));
                break;
              }
              e.started(u);
            }
            break;
          case op::kill:
          case op::stop:
            // Reverse start order; only children that may be up.
            CHECK(std::is_sorted(c.units.rbegin(), c.units.rend()));
            for (auto u : c.units)
              CHECK(e.state(u) == unit_state::stopping);
            if (c.what == op::stop)
              stop_tokens.push_back(c.token);
            break;
          case op::schedule:
            CHECK_FALSE(e.shutting_down());
            timers.push_back(c.token);
            break;
          case op::fail:
            failed = true;
            run(e.shutdown());
            break;
          case op::all_stopped:
            CHECK_FALSE(all_stopped); // once
            all_stopped = true;
            for (unit_id u = 0; u < n; ++u)
              CHECK_FALSE(e.up(u));
            break;
          default:
            break;
        }
      }
    };
    run(e.start_all());
    for (int step = 0; step < 60; ++step) {
      now += std::chrono::milliseconds(pick(2000));
      auto what = pick(10);
      if (what < 5) {
        auto u = pick(n);
        exit_kind kinds[] = {exit_kind::crash, exit_kind::normal,
                             exit_kind::finished};
        run(e.child_down(u, kinds[pick(3)], "x", now).cmds);
      } else if (what < 8 && !timers.empty()) {
        auto k = pick(timers.size());
        auto token = timers[k];
        timers.erase(timers.begin() + static_cast<long>(k));
        run(e.restart_due(token, now));
      } else if (what == 8 && !stop_tokens.empty()) {
        run(e.stop_timeout(stop_tokens[pick(stop_tokens.size())]));
      } else if (what == 9 && pick(4) == 0) {
        run(e.shutdown());
      }
    }
    // Shut down and let every child go down: all_stopped, exactly once.
    run(e.shutdown());
    for (int guard = 0; guard < 100 && !all_stopped; ++guard)
      for (unit_id u = 0; u < n; ++u)
        if (e.up(u))
          run(e.child_down(u, exit_kind::crash, "killed", now).cmds);
    CHECK(all_stopped);
    CHECK(e.pending_restarts() == 0);
    for (auto token : timers)
      CHECK(e.restart_due(token, now).empty());
    (void)failed;
  }
}

// -- the end-of-run check (supervision/completion.hpp) -----------------------

namespace {

ended_node ended(std::string name, uint64_t in, uint64_t out,
                 uint64_t lost = 0, bool source = false,
                 bool removed = false) {
  ended_node x;
  x.report.name = std::move(name);
  if (source)
    x.report.created = in;
  else
    x.report.in = in;
  x.report.out = out;
  x.report.lost = lost;
  x.source = source;
  x.removed = removed;
  return x;
}

} // namespace

TEST_CASE("completion: a balanced run that held and lost nothing completed") {
  std::vector<ended_node> nodes{ended("src", 10, 10, 0, true),
                                ended("sink", 10, 10)};
  CHECK(completion_failure(nodes, delivery_mode::at_least_once).empty());
}

TEST_CASE("completion: an unbalanced node or one still holding records fails") {
  std::vector<ended_node> nodes{ended("src", 10, 10, 0, true),
                                ended("sink", 10, 9)};
  CHECK(completion_failure(nodes, delivery_mode::at_most_once)
        == "node 'sink' ended with its records unaccounted for: 10 in and "
           "created, 9 out, filtered, dead-lettered, retried or lost, 0 "
           "still held");
  nodes[1].report.out = 10;
  nodes[1].report.in_flight = 1;
  nodes[1].report.in = 11;
  CHECK(completion_failure(nodes, delivery_mode::at_most_once).find("1 still held")
        != std::string::npos);
}

TEST_CASE("completion: a removed temporary source fails the run") {
  std::vector<ended_node> nodes{ended("src", 5, 5, 0, true, true),
                                ended("sink", 5, 5)};
  CHECK(completion_failure(nodes, delivery_mode::at_most_once)
        == "temporary source 'src' was removed before it produced all its "
           "records");
}

TEST_CASE("completion: records lost fail at_least_once, not at_most_once") {
  std::vector<ended_node> nodes{ended("src", 10, 10, 0, true),
                                ended("tmp", 4, 0, 4, false, true),
                                ended("side", 6, 3, 3), ended("sink", 3, 3)};
  CHECK(completion_failure(nodes, delivery_mode::at_most_once).empty());
  CHECK(completion_failure(nodes, delivery_mode::at_least_once)
        == "7 records lost with removed temporary nodes (tmp 4, side 3) "
           "although delivery is at_least_once");
}

TEST_CASE("orphaned records: a removed producer sends nothing again") {
  // 10 sent to the dead consumer incarnation, 7 received, 5 of those not
  // acknowledged: 3 died in its mailbox.
  CHECK(orphaned_records(delivery_mode::at_least_once, false, 10, 7, 5) == 8);
  // A consumer removed itself: what it held is counted lost already.
  CHECK(orphaned_records(delivery_mode::at_least_once, true, 10, 7, 5) == 3);
  // at_most_once never sends a received record again anyway.
  CHECK(orphaned_records(delivery_mode::at_most_once, false, 10, 7, 5) == 3);
  CHECK(orphaned_records(delivery_mode::at_least_once, false, 0, 0, 0) == 0);
  // Its gauges were reset by a newer incarnation: never negative.
  CHECK(orphaned_records(delivery_mode::at_least_once, false, 0, 4, 0) == 0);
}
