// What node_metrics keeps besides its counters, for the live view, the
// HTML report and /metrics: the ring of recent failures and the counters a
// node's logic names itself (event_counters).
#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <vector>

#include "troupe/metrics.hpp"

TEST_CASE("recent failures: the newest 16, oldest first, reasons trimmed") {
  troupe::recent_failures f;
  CHECK(f.list().empty());
  CHECK(f.total() == 0);
  for (uint64_t i = 1; i <= 20; ++i)
    f.note(i == 20, i, "reason " + std::to_string(i));
  CHECK(f.total() == 20);
  auto l = f.list();
  REQUIRE(l.size() == troupe::recent_failures::capacity);
  CHECK(l.front().seq == 5);
  CHECK(l.front().reason == "reason 5");
  CHECK_FALSE(l.front().crash);
  CHECK(l.back().seq == 20);
  CHECK(l.back().crash);
  for (size_t i = 1; i < l.size(); ++i)
    CHECK(l[i - 1].seq + 1 == l[i].seq);
  f.note(false, 21, std::string(2000, 'x'));
  CHECK(f.list().back().reason.size() == 512);
}

TEST_CASE("event counters: named once, found again, bounded") {
  troupe::event_counters ev;
  CHECK(ev.list().empty());
  auto* a = ev.get("http_2xx");
  REQUIRE(a != nullptr);
  a->fetch_add(3);
  // A restarted logic asks again and gets the same counter: it never resets.
  CHECK(ev.get("http_2xx") == a);
  ev.get("http_5xx")->fetch_add(1);
  auto l = ev.list();
  REQUIRE(l.size() == 2);
  CHECK(l[0] == std::pair<std::string, uint64_t>{"http_2xx", 3});
  CHECK(l[1] == std::pair<std::string, uint64_t>{"http_5xx", 1});
  for (size_t i = 2; i < troupe::event_counters::capacity; ++i)
    CHECK(ev.get("e" + std::to_string(i)) != nullptr);
  CHECK(ev.get("one too many") == nullptr);
  CHECK(ev.get("http_5xx") != nullptr); // known names still resolve
  CHECK(ev.list().size() == troupe::event_counters::capacity);
}

TEST_CASE("event counters: bumped from several threads, none lost") {
  troupe::event_counters ev;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&ev, t] {
      auto* c = ev.get(t % 2 ? "odd" : "even");
      for (int i = 0; i < 10000; ++i)
        c->fetch_add(1, std::memory_order_relaxed);
    });
  for (auto& t : threads)
    t.join();
  auto l = ev.list();
  REQUIRE(l.size() == 2);
  CHECK(l[0].second + l[1].second == 40000);
  CHECK(l[0].second == 20000);
}
