// The immutable plan of one graph run, shared by its supervisor and nodes
// (internal). Computed once from a graph_spec: who consumes whom, and the
// reply tag each producer uses for each consumer edge.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "resources.hpp"
#include "troupe/graph_spec.hpp"
#include "troupe/metrics.hpp"
#include "troupe/registry.hpp"

namespace troupe::detail {

constexpr uint32_t data_port = 0;
constexpr uint32_t errors_port = 1;

struct edge {
  size_t producer;
  uint32_t port;      // data_port or errors_port of the producer
  size_t consumer;
  uint32_t in_port;   // index into the consumer's inputs
  uint32_t tag;       // index into the producer's edge list
};

struct run_plan {
  graph_spec graph;
  std::shared_ptr<const registry> shared_reg; // keeps `reg` and `types` alive
  const registry* reg = nullptr;
  std::shared_ptr<run_metrics> metrics;
  // Per node: the node's registered type, its factory wrapped so that a
  // factory returning no logic fails the run instead of crashing.
  std::vector<const actor_type*> types;
  std::deque<actor_type> checked_types; // what `types` points to
  std::vector<std::vector<edge>> out_edges;  // per producer, by tag
  std::vector<std::vector<edge>> in_edges;   // per consumer, by in_port
  resource_map resources; // the services the nodes' slots name

  static std::shared_ptr<const run_plan>
  make(const graph_spec& g, std::shared_ptr<const registry> reg,
       std::shared_ptr<run_metrics> metrics,
       resource_map resources);
};

} // namespace troupe::detail
