#include "completion.hpp"

#include <cstdint>

namespace troupe::supervision {

std::string completion_failure(const std::vector<ended_node>& nodes,
                               delivery_mode delivery) {
  // Every node's counters balance against what it measurably holds, and
  // nothing is held.
  for (auto& x : nodes) {
    auto& n = x.report;
    if (n.in_flight != 0 || !n.balanced())
      return "node '" + n.name + "' ended with its records unaccounted for: "
             + std::to_string(n.in + n.created) + " in and created, "
             + std::to_string(n.out + n.filtered + n.dead_lettered + n.retried
                              + n.lost)
             + " out, filtered, dead-lettered, retried or lost, "
             + std::to_string(n.in_flight) + " still held";
  }
  // A source removed before it ended did not read all its input: whatever
  // it never made is counted nowhere, so the run cannot be a success.
  for (auto& x : nodes)
    if (x.removed && x.source)
      return "temporary source '" + x.report.name
             + "' was removed before it produced all its records";
  // at_least_once promises every record: a temporary node that went away
  // with records (counted lost) leaves the rest of the graph to finish, but
  // the run did not deliver everything, so it does not end as a success.
  if (delivery == delivery_mode::at_least_once) {
    uint64_t lost = 0;
    std::string where;
    for (auto& x : nodes)
      if (auto n = x.report.lost; n > 0) {
        lost += n;
        where += (where.empty() ? "" : ", ") + x.report.name + " "
                 + std::to_string(n);
      }
    if (lost > 0)
      return std::to_string(lost)
             + " records lost with removed temporary nodes (" + where
             + ") although delivery is at_least_once";
  }
  return {};
}

uint64_t orphaned_records(delivery_mode delivery, bool consumer_removed,
                          uint64_t sent, uint64_t received, uint64_t unacked) {
  uint64_t n = sent > received ? sent - received : 0;
  if (delivery == delivery_mode::at_least_once && !consumer_removed)
    n += unacked;
  return n;
}

} // namespace troupe::supervision
