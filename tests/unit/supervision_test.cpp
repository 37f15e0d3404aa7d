// Supervision policy (no actors) and supervision groups in graphs (on the
// test coordinator, virtual time).
#include <doctest/doctest.h>

#include "troupe/supervision.hpp"

using namespace troupe;
using namespace std::chrono_literals;

TEST_CASE("the 4th failure within the period exceeds an intensity of 3") {
  restart_budget budget{3, 5s};
  auto t0 = std::chrono::steady_clock::time_point{};
  CHECK(budget.admit(t0));
  CHECK(budget.admit(t0 + 1s));
  CHECK(budget.admit(t0 + 2s));
  CHECK_FALSE(budget.admit(t0 + 3s));
}

TEST_CASE("100 failures spaced past the period never exceed the budget") {
  restart_budget budget{3, 5s};
  auto t = std::chrono::steady_clock::time_point{};
  for (int i = 0; i < 100; ++i) {
    CHECK(budget.admit(t));
    t += 5s; // the previous failure has left the window
  }
  CHECK(budget.recent() == 1);
}

TEST_CASE("a stable period restores the budget") {
  restart_budget budget{2, 10s};
  auto t = std::chrono::steady_clock::time_point{};
  CHECK(budget.admit(t));
  CHECK(budget.admit(t + 1s));
  CHECK_FALSE(budget.admit(t + 2s));
  CHECK(budget.admit(t + 20s)); // all earlier failures are old now
}

TEST_CASE("backoff doubles from min, is capped at max, jitter stays in bounds") {
  backoff_spec b{10ms, 1s, 0.2};
  CHECK(backoff_delay(b, 1, 0) == 10ms);
  CHECK(backoff_delay(b, 2, 0) == 20ms);
  CHECK(backoff_delay(b, 4, 0) == 80ms);
  CHECK(backoff_delay(b, 30, 0) == 1s);
  CHECK(backoff_delay(b, 1, 1) == 12ms);
  CHECK(backoff_delay(b, 1, -1) == 8ms);
  CHECK(backoff_delay(b, 30, 5.0) == 1200ms); // u is clamped to [-1, 1]
}

TEST_CASE("restart sets per strategy") {
  using v = std::vector<size_t>;
  CHECK(restart_set(strategy::one_for_one, 2, 5) == v{2});
  CHECK(restart_set(strategy::one_for_all, 2, 5) == v{0, 1, 2, 3, 4});
  CHECK(restart_set(strategy::rest_for_one, 2, 5) == v{2, 3, 4});
}
