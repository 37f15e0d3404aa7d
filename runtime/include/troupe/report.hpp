// The run report: per-node counters, latency percentiles, totals, wall time,
// and the accounting identity every run must satisfy per node:
//   in + created = out + filtered + dead_lettered + in_flight + retried + lost
// (`created` covers records a node makes, `retried` what a crashed incarnation
// held and its upstream delivered again, `lost` what at_most_once gave up).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "troupe/metrics.hpp"
#include "troupe/units.hpp"

namespace troupe {

struct node_report {
  std::string name, type;
  uint64_t in = 0, created = 0, out = 0, filtered = 0, dead_lettered = 0;
  uint64_t retried = 0, lost = 0, redelivered = 0, restarts = 0, batches = 0;
  uint64_t errors = 0, unexpected = 0;
  int64_t in_flight = 0;
  uint64_t latency_p50_ns = 0, latency_p99_ns = 0;

  bool balanced() const; // the accounting identity
};

struct run_report {
  std::string graph;
  std::string status;  // completed | failed | interrupted | timed_out | running
  std::string message;
  std::vector<std::string> unfinished;
  double wall_seconds = 0;
  std::vector<node_report> nodes;
  // Totals.
  uint64_t source_records = 0; // created by sources
  uint64_t sink_records = 0;   // out of sinks (written)
  uint64_t dead_lettered = 0, restarts = 0, redelivered = 0, lost = 0;
  int64_t in_flight = 0;
  // Deadlocks the detector found while the run went on (every finding of
  // the runtime then, not only this graph's), "TEXT (RESOLUTION)" each; the
  // texts stop at the detector's first 1000.
  uint64_t deadlocks = 0;
  std::vector<std::string> deadlock_texts;

  bool balanced() const;
};

node_report snapshot(const node_metrics& m);
std::string report_json(const run_report& r);
// A few human lines for stderr at the end of `troupe run`.
std::string report_summary(const run_report& r);

} // namespace troupe
