// Deadlock detection, CAF-free core (issue 10): the wait-for graph in
// virtual time (explicit `now`, no clocks) and tracked_mutex's lock-order
// and timeout reports.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <memory>
#include <mutex>
#include <ostream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "troupe/deadlock.hpp"

using namespace troupe::deadlock;
using namespace std::chrono_literals;

namespace {

constexpr auto interval = 100ms;
const time_point t0{};
const time_point far = t0 + 3600s;

// Probes every interval from `from` to `to` (inclusive), collecting reports.
std::vector<report> probe_until(wait_graph& g, time_point from, time_point to,
                                std::vector<time_point>* at = nullptr) {
  std::vector<report> all;
  for (auto t = from; t <= to; t += interval)
    for (auto& r : g.probe(t)) {
      if (at) at->push_back(t);
      all.push_back(std::move(r));
    }
  return all;
}

} // namespace

TEST_CASE("wait_graph: a 3-actor cycle is reported with members and message types") {
  wait_graph g{interval};
  g.name(1, "a");
  g.name(2, "b");
  g.name(3, "c");
  // Probes at 0, 100, 200 ... ms; the cycle closes at 130 ms.
  CHECK(g.probe(t0).empty());
  g.add_wait(10, 1, 2, "lookup", t0 + 20ms, far);
  g.add_wait(11, 2, 3, "fetch", t0 + 60ms, far);
  CHECK(g.probe(t0 + 100ms).empty());
  g.add_wait(12, 3, 1, "put", t0 + 130ms, far);
  // At 200 ms the last edge is 70 ms old: younger than one interval.
  CHECK(g.probe(t0 + 200ms).empty());
  auto rs = g.probe(t0 + 300ms); // 170 ms after forming: within two intervals
  REQUIRE(rs.size() == 1);
  auto& r = rs.front();
  CHECK(r.kind == report_kind::cycle);
  CHECK(r.members == std::vector<actor_id>{1, 2, 3});
  CHECK(r.names == std::vector<std::string>{"a", "b", "c"});
  CHECK(r.message_types == std::vector<std::string>{"lookup", "fetch", "put"});
  CHECK(r.waits == std::vector<wait_id>{10, 11, 12});
  CHECK(r.to_string() == "cycle a →(lookup) b →(fetch) c →(put) a");
  // It stands: not reported again.
  CHECK(probe_until(g, t0 + 400ms, t0 + 2000ms).empty());
  CHECK(g.snapshot().size() == 3);
}

TEST_CASE("wait_graph: reported within two intervals of forming, never before one") {
  // The cycle closes at every offset within a probe period; probes run
  // every interval from 0.
  for (auto offset = 0ms; offset < interval; offset += 7ms) {
    CAPTURE(offset.count());
    wait_graph g{interval};
    auto formed = t0 + 500ms + offset;
    g.add_wait(1, 1, 2, "x", t0 + 100ms, far);
    g.add_wait(2, 2, 3, "y", t0 + 200ms, far);
    std::vector<time_point> at;
    auto before = probe_until(g, t0, t0 + 500ms, &at);
    CHECK(before.empty());
    g.add_wait(3, 3, 1, "z", formed, far);
    auto rs = probe_until(g, t0 + 600ms, t0 + 1500ms, &at);
    REQUIRE(rs.size() == 1);
    REQUIRE(at.size() == 1);
    CHECK(at.front() - formed >= interval);
    CHECK(at.front() - formed <= 2 * interval);
  }
}

TEST_CASE("wait_graph: an actor waiting on itself") {
  wait_graph g{interval};
  g.name(7, "loop");
  g.add_wait(1, 7, 7, "get", t0 + 10ms, far);
  CHECK(g.probe(t0 + 100ms).empty()); // 90 ms old
  auto rs = g.probe(t0 + 200ms);
  REQUIRE(rs.size() == 1);
  CHECK(rs[0].kind == report_kind::self_wait);
  CHECK(rs[0].members == std::vector<actor_id>{7});
  CHECK(rs[0].message_types == std::vector<std::string>{"get"});
  CHECK(rs[0].to_string() == "self-wait loop →(get) loop");
  CHECK(g.probe(t0 + 300ms).empty());
}

TEST_CASE("wait_graph: waits on a dead holder") {
  wait_graph g{interval};
  g.name(1, "client");
  g.add_wait(1, 1, 2, "query", t0, far);
  g.add_wait(2, 2, 3, "inner", t0, far); // the holder's own wait ends with it
  CHECK(g.probe(t0 + 10ms).empty());
  g.actor_died(2);
  CHECK(g.snapshot().size() == 1);
  auto rs = g.probe(t0 + 20ms); // at once: a dead holder never answers
  REQUIRE(rs.size() == 1);
  CHECK(rs[0].kind == report_kind::dead_holder);
  CHECK(rs[0].members == std::vector<actor_id>{1, 2});
  CHECK(rs[0].to_string() == "dead holder client →(query) #2 (dead)");
  CHECK(g.probe(t0 + 120ms).empty());
  // A wait added after the death is reported too.
  g.add_wait(3, 4, 2, "late", t0 + 130ms, far);
  rs = g.probe(t0 + 140ms);
  REQUIRE(rs.size() == 1);
  CHECK(rs[0].waits == std::vector<wait_id>{3});
}

TEST_CASE("wait_graph: a slow but progressing chain is never reported") {
  // a → b → c → a in the request pattern, but each request is answered
  // within 0.8 intervals and re-issued: at every probe all edges are
  // younger than one interval, across 100 intervals.
  wait_graph g{interval};
  wait_id next = 1;
  std::vector<report> all;
  for (int k = 0; k < 100; ++k) {
    auto base = t0 + k * interval;
    std::vector<wait_id> ids;
    for (actor_id a = 1; a <= 3; ++a) {
      ids.push_back(next);
      g.add_wait(next++, a, a % 3 + 1, "step", base + 10ms, far);
    }
    for (auto& r : g.probe(base + 50ms)) all.push_back(r);
    for (auto id : ids) g.clear_wait(id);
    for (auto& r : g.probe(base + 90ms)) all.push_back(r);
  }
  CHECK(all.empty());
  // A chain a → b → c where c answers only after 50 intervals: no cycle,
  // no report.
  g.add_wait(next++, 1, 2, "slow", t0 + 20s, far);
  g.add_wait(next++, 2, 3, "slow", t0 + 20s, far);
  CHECK(probe_until(g, t0 + 20s, t0 + 25s).empty());
}

TEST_CASE("wait_graph: a slow chain whose timeouts fire is dropped, not reported") {
  wait_graph g{interval};
  g.add_wait(1, 1, 2, "a", t0, t0 + 150ms);
  g.add_wait(2, 2, 1, "b", t0 + 10ms, t0 + 150ms);
  CHECK(probe_until(g, t0 + 200ms, t0 + 1s).empty());
  CHECK(g.size() == 0);
  CHECK(g.expired() == 2);
  CHECK_FALSE(g.add_wait(3, 1, 2, "past", t0 + 2s, t0 + 2s));
}

TEST_CASE("wait_graph: 1000 random acyclic graphs give no report") {
  std::mt19937_64 rng{20261130};
  for (int round = 0; round < 1000; ++round) {
    wait_graph g{interval};
    auto n = std::uniform_int_distribution<int>{2, 40}(rng);
    // A random order of actors; edges only go forward in it: acyclic.
    std::vector<actor_id> order(n);
    for (int i = 0; i < n; ++i) order[i] = 1000 + i;
    std::shuffle(order.begin(), order.end(), rng);
    wait_id id = 1;
    for (int i = 0; i < n; ++i) {
      auto fan = std::uniform_int_distribution<int>{0, 3}(rng);
      for (int f = 0; f < fan && i + 1 < n; ++f) {
        auto j = std::uniform_int_distribution<int>{i + 1, n - 1}(rng);
        g.add_wait(id++, order[i], order[j], "m", t0, far);
      }
    }
    auto rs = probe_until(g, t0, t0 + 3 * interval);
    CHECK_MESSAGE(rs.empty(), "round " << round);
  }
}

TEST_CASE("wait_graph: 200 random graphs with a planted cycle, each reported once") {
  std::mt19937_64 rng{42};
  for (int round = 0; round < 200; ++round) {
    CAPTURE(round);
    wait_graph g{interval};
    auto n = std::uniform_int_distribution<int>{3, 40}(rng);
    std::vector<actor_id> order(n);
    for (int i = 0; i < n; ++i) order[i] = 1 + i;
    std::shuffle(order.begin(), order.end(), rng);
    wait_id id = 1;
    for (int i = 0; i < n; ++i) {
      auto fan = std::uniform_int_distribution<int>{0, 2}(rng);
      for (int f = 0; f < fan && i + 1 < n; ++f) {
        auto j = std::uniform_int_distribution<int>{i + 1, n - 1}(rng);
        g.add_wait(id++, order[i], order[j], "m", t0, far);
      }
    }
    // Plant: a chain of k distinct actors, forward in the order, then a back
    // edge from the last to the first (the only backward edge).
    auto k = std::uniform_int_distribution<int>{2, std::min(n, 6)}(rng);
    std::vector<int> pos(n);
    for (int i = 0; i < n; ++i) pos[i] = i;
    std::shuffle(pos.begin(), pos.end(), rng);
    pos.resize(k);
    std::sort(pos.begin(), pos.end());
    for (int i = 0; i + 1 < k; ++i)
      g.add_wait(id++, order[pos[i]], order[pos[i + 1]], "fwd", t0, far);
    auto formed = t0 + 30ms;
    g.add_wait(id++, order[pos[k - 1]], order[pos[0]], "back", formed, far);
    std::vector<time_point> at;
    auto rs = probe_until(g, t0, t0 + 10 * interval, &at);
    REQUIRE(rs.size() == 1);
    CHECK(rs[0].kind == report_kind::cycle);
    CHECK(at[0] - formed >= interval);
    CHECK(at[0] - formed <= 2 * interval);
    // The cycle closes through the back edge; every member is distinct and
    // each edge joins consecutive members.
    CHECK(std::count(rs[0].message_types.begin(), rs[0].message_types.end(), "back") == 1);
    std::set<actor_id> distinct(rs[0].members.begin(), rs[0].members.end());
    CHECK(distinct.size() == rs[0].members.size());
    auto edges = g.snapshot();
    for (std::size_t i = 0; i < rs[0].waits.size(); ++i) {
      auto e = std::find_if(edges.begin(), edges.end(),
                            [&](auto& x) { return x.id == rs[0].waits[i]; });
      REQUIRE(e != edges.end());
      CHECK(e->waiter == rs[0].members[i]);
      CHECK(e->holder == rs[0].members[(i + 1) % rs[0].members.size()]);
    }
  }
}

TEST_CASE("wait_graph: a cycle that dissolves and forms again is reported twice") {
  wait_graph g{interval};
  g.add_wait(1, 1, 2, "x", t0, far);
  g.add_wait(2, 2, 1, "y", t0, far);
  CHECK(probe_until(g, t0, t0 + 500ms).size() == 1);
  g.clear_wait(2); // b got its answer some other way (say a timeout)
  CHECK(probe_until(g, t0 + 600ms, t0 + 800ms).empty());
  g.add_wait(3, 2, 1, "y", t0 + 850ms, far);
  auto rs = probe_until(g, t0 + 900ms, t0 + 1500ms);
  REQUIRE(rs.size() == 1);
  CHECK(rs[0].waits == std::vector<wait_id>{1, 3});
  // Re-adding the very same wait id after a clear counts as a new wait.
  g.clear_wait(3);
  g.add_wait(3, 2, 1, "y", t0 + 1550ms, far);
  CHECK(probe_until(g, t0 + 1600ms, t0 + 2000ms).size() == 1);
}

TEST_CASE("wait_graph: an actor with several outgoing waits") {
  // a waits on b and on c; only c leads back to a.
  wait_graph g{interval};
  g.add_wait(1, 1, 2, "to-b", t0, far);
  g.add_wait(2, 1, 3, "to-c", t0, far);
  g.add_wait(3, 2, 4, "b-d", t0, far);
  g.add_wait(4, 3, 1, "c-a", t0, far);
  auto rs = probe_until(g, t0, t0 + 300ms);
  REQUIRE(rs.size() == 1);
  CHECK(rs[0].members == std::vector<actor_id>{1, 3});
  CHECK(rs[0].message_types == std::vector<std::string>{"to-c", "c-a"});
  // Two separate cycles give two reports.
  g.add_wait(5, 10, 11, "p", t0 + 400ms, far);
  g.add_wait(6, 11, 10, "q", t0 + 400ms, far);
  g.add_wait(7, 20, 21, "r", t0 + 400ms, far);
  g.add_wait(8, 21, 20, "s", t0 + 400ms, far);
  rs = probe_until(g, t0 + 400ms, t0 + 700ms);
  REQUIRE(rs.size() == 2);
  CHECK(rs[0].members == std::vector<actor_id>{10, 11});
  CHECK(rs[1].members == std::vector<actor_id>{20, 21});
}

// --- tracked_mutex ---------------------------------------------------------
// These run under TSan too: a tracked_mutex takes no real lock in the
// program's order (one internal mutex and a condition variable), so the
// deliberate inversions below give TSan's lock-order checker nothing.

namespace {

// Captures lock reports for one test and restores the previous reporter.
struct capture_reports {
  std::mutex m;
  std::vector<lock_report> seen;
  lock_reporter previous;
  capture_reports() {
    previous = set_lock_reporter([this](const lock_report& r) {
      std::lock_guard<std::mutex> g{m};
      seen.push_back(r);
    });
  }
  ~capture_reports() { set_lock_reporter(previous); }
  std::vector<lock_report> get() {
    std::lock_guard<std::mutex> g{m};
    return seen;
  }
};

} // namespace

TEST_CASE("tracked_mutex: an A-then-B / B-then-A inversion is reported before it deadlocks") {
  capture_reports cap;
  tracked_mutex a{"accounts"}, b{"audit"};
  std::thread first{[&] {
    set_thread_name("transfer");
    std::lock_guard<tracked_mutex> la{a};
    std::lock_guard<tracked_mutex> lb{b};
  }};
  first.join();
  CHECK(cap.get().empty());
  std::thread second{[&] {
    set_thread_name("report");
    std::lock_guard<tracked_mutex> lb{b};
    std::lock_guard<tracked_mutex> la{a}; // inverted: reported, then taken
  }};
  second.join();
  auto rs = cap.get();
  REQUIRE(rs.size() == 1);
  CHECK(rs[0].what == lock_report::kind::inversion);
  CHECK(rs[0].first == "accounts");
  CHECK(rs[0].second == "audit");
  CHECK(rs[0].this_thread_name == "report");
  CHECK(rs[0].other_thread_name == "transfer");
  // (thread ids may be reused after join, so the names tell them apart)
  CHECK(rs[0].text.find("lock order inversion") != std::string::npos);
  CHECK(rs[0].text.find("'accounts'") != std::string::npos);
  CHECK(rs[0].text.find("'audit'") != std::string::npos);
  // Reported once per pair.
  std::thread third{[&] {
    std::lock_guard<tracked_mutex> lb{b};
    std::lock_guard<tracked_mutex> la{a};
  }};
  third.join();
  CHECK(cap.get().size() == 1);
}

TEST_CASE("tracked_mutex: a longer inverted chain is reported") {
  capture_reports cap;
  tracked_mutex a{"a"}, b{"b"}, c{"c"};
  { std::lock_guard<tracked_mutex> x{a}; std::lock_guard<tracked_mutex> y{b}; }
  { std::lock_guard<tracked_mutex> x{b}; std::lock_guard<tracked_mutex> y{c}; }
  CHECK(cap.get().empty());
  { std::lock_guard<tracked_mutex> x{c}; std::lock_guard<tracked_mutex> y{a}; }
  auto rs = cap.get();
  REQUIRE(rs.size() == 1);
  CHECK(rs[0].first == "a");
  CHECK(rs[0].second == "c");
}

TEST_CASE("tracked_mutex: a consistent order never reports") {
  capture_reports cap;
  tracked_mutex a{"first"}, b{"second"}, c{"third"};
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i)
    ts.emplace_back([&] {
      for (int k = 0; k < 200; ++k) {
        std::lock_guard<tracked_mutex> la{a};
        std::unique_lock<tracked_mutex> lb{b};
        std::lock_guard<tracked_mutex> lc{c};
        lb.unlock(); // released out of order
      }
      // Skipping a level keeps the order.
      std::lock_guard<tracked_mutex> la{a};
      std::lock_guard<tracked_mutex> lc{c};
    });
  for (auto& t : ts) t.join();
  CHECK(cap.get().empty());
  // try_lock in the other order never blocks, so it is no inversion.
  std::lock_guard<tracked_mutex> lc{c};
  REQUIRE(a.try_lock());
  a.unlock();
  CHECK(cap.get().empty());
}

TEST_CASE("tracked_mutex: lock_for times out and names the holder") {
  capture_reports cap;
  tracked_mutex m{"ledger"};
  std::promise<void> holding, release;
  auto released = release.get_future();
  std::thread holder{[&] {
    set_thread_name("slow-writer");
    std::lock_guard<tracked_mutex> g{m};
    holding.set_value();
    released.wait();
  }};
  auto holder_id = holder.get_id();
  holding.get_future().wait();
  set_thread_name("main");
  CHECK_FALSE(m.lock_for(5ms));
  release.set_value();
  holder.join();
  auto rs = cap.get();
  REQUIRE(rs.size() == 1);
  CHECK(rs[0].what == lock_report::kind::timeout);
  CHECK(rs[0].first == "ledger");
  CHECK(rs[0].other_thread == holder_id);
  CHECK(rs[0].other_thread_name == "slow-writer");
  CHECK(rs[0].text.find("slow-writer") != std::string::npos);
  // Free now: lock_for succeeds and nothing more is reported.
  REQUIRE(m.lock_for(5ms));
  m.unlock();
  CHECK(cap.get().size() == 1);
  set_thread_name("");
}

namespace {

std::string id_text(std::thread::id t) {
  std::ostringstream s;
  s << t;
  return s.str();
}

} // namespace

TEST_CASE("tracked_mutex: an unlock by a thread that does not hold it is reported, then done") {
  capture_reports cap;
  tracked_mutex m{"handoff"}, n{"other"};
  set_thread_name("owner");
  m.lock();
  std::thread stranger{[&] {
    set_thread_name("stranger");
    m.unlock(); // undefined for std::mutex: reported, then released
  }};
  stranger.join();
  auto rs = cap.get();
  REQUIRE(rs.size() == 1);
  CHECK(rs[0].what == lock_report::kind::unlock_not_owner);
  CHECK(rs[0].first == "handoff");
  CHECK(rs[0].this_thread_name == "stranger");
  CHECK(rs[0].other_thread == std::this_thread::get_id());
  CHECK(rs[0].other_thread_name == "owner");
  CHECK(rs[0].text == "lock misuse: thread " + id_text(rs[0].this_thread) +
                          " (stranger) unlocks 'handoff', held by thread " +
                          id_text(std::this_thread::get_id()) + " (owner)");
  // Released: free for anyone, and off the owner's held list, so taking n
  // now adds no stale edge handoff → other (n then m elsewhere stays quiet).
  REQUIRE(m.try_lock());
  m.unlock();
  { std::lock_guard<tracked_mutex> ln{n}; }
  std::thread other{[&] {
    std::lock_guard<tracked_mutex> ln{n};
    std::lock_guard<tracked_mutex> lm{m};
  }};
  other.join();
  CHECK(cap.get().size() == 1);
  // Unlocking a mutex nobody holds: reported, no effect.
  m.unlock();
  rs = cap.get();
  REQUIRE(rs.size() == 2);
  CHECK(rs[1].what == lock_report::kind::unlock_not_held);
  CHECK(rs[1].other_thread == std::thread::id{});
  CHECK(rs[1].text.find("which nobody holds") != std::string::npos);
  REQUIRE(m.try_lock());
  m.unlock();
  CHECK(cap.get().size() == 2);
  set_thread_name("");
}

TEST_CASE("tracked_mutex: a thread that ends holding a lock leaves it held") {
  capture_reports cap;
  tracked_mutex m{"leaked"};
  std::thread quitter{[&] {
    set_thread_name("quitter");
    m.lock(); // never unlocked by this thread (held, as with std::mutex)
  }};
  quitter.join(); // its held list is gone; the mutex must not point to it
  CHECK_FALSE(m.try_lock());
  CHECK_FALSE(m.lock_for(1ms));
  m.unlock(); // by a thread that does not hold it: reported, released
  auto rs = cap.get();
  REQUIRE(rs.size() == 2);
  CHECK(rs[0].what == lock_report::kind::timeout);
  CHECK(rs[0].other_thread_name == "quitter");
  CHECK(rs[1].what == lock_report::kind::unlock_not_owner);
  CHECK(rs[1].other_thread_name == "quitter");
  REQUIRE(m.try_lock());
  m.unlock();
  CHECK(cap.get().size() == 2);
}

TEST_CASE("tracked_mutex: locking it again on the holding thread is reported and throws") {
  capture_reports cap;
  tracked_mutex m{"config"};
  set_thread_name("reloader");
  std::lock_guard<tracked_mutex> held{m};
  try {
    m.lock(); // a std::mutex would hang here forever
    FAIL("lock() of a held mutex by its holder returned");
  } catch (const std::system_error& e) {
    CHECK(e.code() == std::errc::resource_deadlock_would_occur);
    CHECK(std::string{e.what()}.find("'config'") != std::string::npos);
  }
  CHECK_THROWS_AS(m.lock_for(1s), std::system_error); // at once, not after 1 s
  CHECK_FALSE(m.try_lock()); // cannot hang: plain false, no report
  auto rs = cap.get();
  REQUIRE(rs.size() == 2);
  for (auto& r : rs) {
    CHECK(r.what == lock_report::kind::self_deadlock);
    CHECK(r.first == "config");
    CHECK(r.other_thread == r.this_thread);
    CHECK(r.text.find("(reloader) locks 'config', which it already holds") != std::string::npos);
  }
  set_thread_name("");
  // Still held once: the lock_guard's unlock releases it without a report.
}

TEST_CASE("tracked_mutex: destroying a held mutex is reported with its holder") {
  capture_reports cap;
  tracked_mutex after{"after"};
  set_thread_name("owner");
  auto m = std::make_unique<tracked_mutex>("doomed");
  m->lock();
  m.reset();
  auto rs = cap.get();
  REQUIRE(rs.size() == 1);
  CHECK(rs[0].what == lock_report::kind::destroyed_held);
  CHECK(rs[0].first == "doomed");
  CHECK(rs[0].other_thread_name == "owner");
  CHECK(rs[0].text.find("'doomed' destroyed while held by thread") != std::string::npos);
  // Off the held list: later locks see no phantom holding.
  { std::lock_guard<tracked_mutex> l{after}; }
  CHECK(cap.get().size() == 1);
  set_thread_name("");
}

TEST_CASE("tracked_mutex: many threads on many mutexes in one order never report; "
          "one planted inversion reports once") {
  capture_reports cap;
  constexpr int n_mutexes = 8, n_threads = 6, rounds = 300;
  std::vector<std::unique_ptr<tracked_mutex>> ms;
  for (int i = 0; i < n_mutexes; ++i)
    ms.push_back(std::make_unique<tracked_mutex>("m" + std::to_string(i)));
  std::vector<std::thread> ts;
  for (int t = 0; t < n_threads; ++t)
    ts.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(1000 + t));
      for (int k = 0; k < rounds; ++k) {
        // A random subset, always taken in ascending order (the first round
        // takes all, so every pair has its edge), released in random order.
        std::vector<int> take;
        for (int i = 0; i < n_mutexes; ++i)
          if (k == 0 || rng() % 3 == 0) take.push_back(i);
        std::vector<int> got;
        for (int i : take) {
          auto how = rng() % 3;
          if (how == 0) {
            ms[i]->lock();
          } else if (how == 1) {
            if (!ms[i]->try_lock()) continue; // busy: skip it, the order holds
          } else {
            CHECK(ms[i]->lock_for(30s)); // never that long: no cycle
          }
          got.push_back(i);
        }
        std::shuffle(got.begin(), got.end(), rng);
        for (int i : got) ms[i]->unlock();
      }
    });
  for (auto& th : ts) th.join();
  CHECK(cap.get().empty());
  // The planted inversion, m5 then m2, taken by several threads at once
  // (consistent among themselves): one report for the pair, not one each.
  std::vector<std::thread> planted;
  for (int t = 0; t < 4; ++t)
    planted.emplace_back([&] {
      set_thread_name("planted");
      std::lock_guard<tracked_mutex> hi{*ms[5]};
      std::lock_guard<tracked_mutex> lo{*ms[2]};
    });
  for (auto& th : planted) th.join();
  auto rs = cap.get();
  REQUIRE(rs.size() == 1);
  CHECK(rs[0].what == lock_report::kind::inversion);
  CHECK(rs[0].first == "m2");
  CHECK(rs[0].second == "m5");
  CHECK(rs[0].this_thread_name == "planted");
}

TEST_CASE("tracked_mutex: every listener gets each report, outside the internal lock") {
  capture_reports cap; // the reporter slot
  std::mutex seen_m;
  std::vector<std::string> seen;
  tracked_mutex a{"a"}, b{"b"}, side{"side"};
  auto t1 = add_lock_listener([&](const lock_report& r) {
    // Runs outside the internal mutex: may use another tracked mutex.
    CHECK(side.try_lock());
    side.unlock();
    std::lock_guard<std::mutex> g{seen_m};
    seen.push_back(std::string{"one:"} + to_string(r.what));
  });
  auto t2 = add_lock_listener([&](const lock_report& r) {
    std::lock_guard<std::mutex> g{seen_m};
    seen.push_back(std::string{"two:"} + to_string(r.what));
  });
  CHECK(t1 != 0);
  CHECK(t2 != t1);
  { std::lock_guard<tracked_mutex> x{a}; std::lock_guard<tracked_mutex> y{b}; }
  { std::lock_guard<tracked_mutex> y{b}; std::lock_guard<tracked_mutex> x{a}; }
  CHECK(cap.get().size() == 1);
  CHECK(seen == std::vector<std::string>{"one:inversion", "two:inversion"});
  CHECK(remove_lock_listener(t1));
  CHECK_FALSE(remove_lock_listener(t1));
  a.unlock(); // not held: a misuse report, to the slot and t2 only
  CHECK(cap.get().size() == 2);
  CHECK(seen.back() == "two:unlock_not_held");
  CHECK(seen.size() == 3);
  CHECK(remove_lock_listener(t2));
}

TEST_CASE("tracked_mutex: removing a listener waits for its running call") {
  capture_reports cap;
  tracked_mutex m{"m"};
  std::promise<void> entered, go;
  auto go_f = go.get_future().share();
  std::atomic<bool> finished{false};
  auto token = add_lock_listener([&](const lock_report&) {
    entered.set_value();
    go_f.wait();
    finished = true;
  });
  std::thread reporter{[&] { m.unlock(); }}; // a report: the listener blocks
  entered.get_future().wait();
  bool finished_when_removed = false;
  std::thread remover{[&] {
    CHECK(remove_lock_listener(token));
    finished_when_removed = finished.load();
  }};
  go.set_value();
  remover.join();
  reporter.join();
  CHECK(finished_when_removed);
  CHECK(cap.get().size() == 1);
}
