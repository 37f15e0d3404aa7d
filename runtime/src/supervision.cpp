#include "troupe/supervision.hpp"

#include <algorithm>
#include <cmath>

namespace troupe {

const char* to_string(strategy x) {
  switch (x) {
    case strategy::one_for_one:
      return "one_for_one";
    case strategy::one_for_all:
      return "one_for_all";
    default:
      return "rest_for_one";
  }
}

const char* to_string(restart_type x) {
  switch (x) {
    case restart_type::permanent:
      return "permanent";
    case restart_type::transient:
      return "transient";
    default:
      return "temporary";
  }
}

bool parse_strategy(const std::string& s, strategy& out) {
  for (auto x : {strategy::one_for_one, strategy::one_for_all,
                 strategy::rest_for_one})
    if (s == to_string(x)) {
      out = x;
      return true;
    }
  return false;
}

bool parse_restart_type(const std::string& s, restart_type& out) {
  for (auto x : {restart_type::permanent, restart_type::transient,
                 restart_type::temporary})
    if (s == to_string(x)) {
      out = x;
      return true;
    }
  return false;
}

restart_budget::restart_budget(uint32_t intensity, duration period)
  : intensity_(intensity), period_(period) {
}

bool restart_budget::admit(time_point now) {
  while (!failures_.empty() && now - failures_.front() >= period_)
    failures_.pop_front();
  failures_.push_back(now);
  return failures_.size() <= intensity_;
}

duration backoff_delay(const backoff_spec& b, size_t recent, double u) {
  auto exponent = static_cast<double>(recent > 0 ? recent - 1 : 0);
  auto base = static_cast<double>(b.min.count()) * std::pow(2.0, std::min(exponent, 62.0));
  base = std::min(base, static_cast<double>(b.max.count()));
  u = std::clamp(u, -1.0, 1.0);
  return duration{static_cast<int64_t>(base * (1.0 + b.jitter * u))};
}

std::vector<size_t> restart_set(strategy s, size_t failed, size_t n) {
  std::vector<size_t> out;
  switch (s) {
    case strategy::one_for_one:
      out.push_back(failed);
      break;
    case strategy::one_for_all:
      for (size_t i = 0; i < n; ++i)
        out.push_back(i);
      break;
    case strategy::rest_for_one:
      for (size_t i = failed; i < n; ++i)
        out.push_back(i);
      break;
  }
  return out;
}

} // namespace troupe
