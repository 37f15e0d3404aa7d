// The live progress line of `troupe run` on a TTY: totals, the rate of the
// whole run and of each node, and an ETA when every source knows its size
// (generate's count, a file's length).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "troupe/metrics.hpp"
#include "troupe/report.hpp"

namespace troupe::cli {

class progress_meter {
public:
  using clock = std::chrono::steady_clock;

  explicit progress_meter(clock::time_point start);
  // The line for this moment ("\r", clear, text), at most `width` columns.
  std::string line(const run_report& r, const run_metrics& m,
                   clock::time_point now, size_t width);

  // Exposed for the unit test: the fraction done (0..1) over every source,
  // or a negative value when a source does not know its size.
  static double fraction_done(const run_metrics& m);

private:
  clock::time_point start_;
  clock::time_point last_;
  uint64_t last_sources_ = 0;
  std::vector<uint64_t> last_out_;
};

// "1.2M", "980k", "12": a count or rate in four characters or so.
std::string short_count(double v);
// "3s", "2m05s", "1h02m".
std::string short_duration(double seconds);

} // namespace troupe::cli
