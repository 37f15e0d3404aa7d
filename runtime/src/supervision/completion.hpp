// The end-of-run check of a graph, free of CAF: once every node ended
// (finished, or removed for good), did the run deliver everything?
#pragma once

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

} // namespace troupe::supervision
