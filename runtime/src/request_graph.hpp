// The request graph of a graph file: which actors ask which (issue 10, the
// static check in lint). A vertex is a node or a resource, by its YAML name;
// an edge `from → to` says `from` sends requests to `to` and waits for the
// replies (a node asking the service in one of its client slots, a service
// computing through the service in one of its `calls` slots). A cycle of such
// edges can deadlock at run time: each member waits for the next one's reply.
//
// CAF-free and independent of graph_spec, so it is tested on its own; the
// validator (validate.cpp) builds one per graph and reports each cycle at
// the slot field of its closing edge.
//
// Thread safety: none; a value built and read by one caller.
//
// Example:
//   request_graph g;
//   auto a = g.add_vertex("a"), b = g.add_vertex("b");
//   g.add_edge(a, b);          // edge 0: a asks b
//   g.add_edge(b, a);          // edge 1: b asks a
//   auto cs = g.cycles();      // one cycle: members {a, b}, closing edge 1
//   g.describe(cs[0]);         // "a → b → a"
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace troupe::detail {

class request_graph {
public:
  // A cycle: members[i] asks members[i + 1], and the last one asks the first
  // through edge `closing` (an index in the order add_edge() was called).
  struct cycle {
    std::vector<size_t> members;
    size_t closing = 0;
  };

  // Adds a vertex shown as `name` (names need not be unique: a node and a
  // resource may share one); vertices are numbered in the order added.
  size_t add_vertex(std::string name);

  // `from` asks `to`; returns the edge's index. A vertex may ask itself.
  size_t add_edge(size_t from, size_t to);

  size_t size() const {
    return names_.size();
  }
  const std::string& name(size_t v) const {
    return names_[v];
  }

  // Every cycle once: a depth-first search from each vertex in order, each
  // vertex's edges in the order added, reports one cycle per edge that leads
  // back to a vertex on the current path (the edge that closes it). So
  // disjoint cycles are each reported, a self-loop is a cycle of one, and a
  // strongly connected tangle is reported once per closing edge rather than
  // once per elementary cycle (which can be exponentially many). Iterative:
  // a chain of any length does not overflow the stack.
  std::vector<cycle> cycles() const;

  // The vertices in an order where every vertex comes after the ones it asks
  // (callees first): a depth-first post-order from each vertex in number
  // order, so without edges simply number order. Only meaningful when
  // cycles() is empty.
  std::vector<size_t> callees_first() const;

  // "a → b → c → a".
  std::string describe(const cycle& c) const;

private:
  std::vector<std::string> names_;
  // Per vertex: (target, edge index), in the order added.
  std::vector<std::vector<std::pair<size_t, size_t>>> out_;
  size_t edges_ = 0;
};

} // namespace troupe::detail
