// Supervision policy, free of CAF: restart strategies, restart budgets and
// backoff, as OTP defines them plus jittered backoff. The supervision engine
// (runtime/src/supervision/engine.hpp) applies them for both the graph
// supervisor and the embeddable supervisor (supervisor.hpp).
//
// Example:
//   troupe::restart_budget budget{3, std::chrono::seconds(5)};
//   if (!budget.admit(now)) escalate();            // the 4th failure in 5 s
//   auto who = troupe::restart_set(strategy::rest_for_one, failed, n);
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "troupe/units.hpp"

namespace troupe {

enum class strategy {
  one_for_one,  // restart the failed child only
  one_for_all,  // stop all children, restart all
  rest_for_one, // restart the failed child and those started after it
};

enum class restart_type {
  permanent, // always restarted
  transient, // restarted after a crash, not after a normal exit
  temporary, // never restarted; its failure is recorded and it is removed
};

const char* to_string(strategy x);
const char* to_string(restart_type x);
bool parse_strategy(const std::string& s, strategy& out);
bool parse_restart_type(const std::string& s, restart_type& out);

struct backoff_spec {
  duration min = std::chrono::milliseconds(10);
  duration max = std::chrono::seconds(1);
  double jitter = 0.2; // +- this fraction, uniformly
};

// At most `intensity` restarts within any window of `period`: the failure
// that would be the (intensity + 1)-th within the window is refused. Old
// failures leave the window, so a stable period restores the budget.
class restart_budget {
public:
  using time_point = std::chrono::steady_clock::time_point;

  restart_budget(uint32_t intensity, duration period);

  // Records a failure at `now`; false when it exceeds the budget.
  bool admit(time_point now);
  // Failures inside the window after the last admit (drives the backoff).
  size_t recent() const {
    return failures_.size();
  }
  void reset() {
    failures_.clear();
  }

private:
  uint32_t intensity_;
  duration period_;
  std::deque<time_point> failures_;
};

// min * 2^(recent - 1), capped at max, times (1 + jitter * u) for u in
// [-1, 1]: repeated failures back off exponentially, and restarts of many
// children do not fire in lockstep.
duration backoff_delay(const backoff_spec& b, size_t recent, double u);

// Positions (in start order, 0..n-1) of the children to restart when the
// child at `failed` fails.
std::vector<size_t> restart_set(strategy s, size_t failed, size_t n);

} // namespace troupe
