// The end-of-run check of a graph, free of CAF: once every node ended
// (finished, or removed for good), did the run deliver everything?
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "troupe/graph_spec.hpp"
#include "troupe/report.hpp"

namespace troupe::supervision {

struct ended_node {
  node_report report; // its counters with the supervisor's account
  bool source = false;
  bool removed = false; // a temporary node removed after a failure
};

// "" when the run completed; else why it failed: a node whose counters do
// not balance or that still holds records, a temporary source removed
// before it produced everything, or (at_least_once) records lost with
// removed temporary nodes.
std::string completion_failure(const std::vector<ended_node>& nodes,
                               delivery_mode delivery);

// A consumer incarnation went down, and one of its producers was removed
// for good (a temporary node): that producer will never send again what it
// would have owed the consumer's next incarnation. Returns how many of its
// records are lost at the consumer: those `sent` to the dead incarnation
// that it never `received` (they died in its mailbox), and, under
// at_least_once and when the consumer restarts, those it received and had
// not acknowledged (`unacked`: held in it or further on, normally sent
// again after the restart). A consumer removed for good itself has its
// held records counted lost already.
uint64_t orphaned_records(delivery_mode delivery, bool consumer_removed,
                          uint64_t sent, uint64_t received, uint64_t unacked);

} // namespace troupe::supervision
