#include "request_graph.hpp"

#include <utility>

namespace troupe::detail {

size_t request_graph::add_vertex(std::string name) {
  names_.push_back(std::move(name));
  out_.emplace_back();
  return names_.size() - 1;
}

size_t request_graph::add_edge(size_t from, size_t to) {
  out_.at(from).emplace_back(to, edges_);
  return edges_++;
}

namespace {

enum class mark : unsigned char { fresh, on_path, done };

// One depth-first pass over every vertex in order: `back(path, target,
// edge)` for an edge into the current path, `finished(v)` when all of v's
// edges are explored (post-order).
template <class Back, class Finished>
void depth_first(
  const std::vector<std::vector<std::pair<size_t, size_t>>>& out, Back back,
  Finished finished) {
  std::vector<mark> state(out.size(), mark::fresh);
  std::vector<size_t> path;
  std::vector<size_t> next; // per path entry: its next edge to explore
  for (size_t root = 0; root < out.size(); ++root) {
    if (state[root] != mark::fresh)
      continue;
    state[root] = mark::on_path;
    path.push_back(root);
    next.push_back(0);
    while (!path.empty()) {
      auto v = path.back();
      auto& k = next.back();
      if (k == out[v].size()) {
        state[v] = mark::done;
        finished(v);
        path.pop_back();
        next.pop_back();
        continue;
      }
      auto [to, edge] = out[v][k++];
      if (state[to] == mark::on_path) {
        back(path, to, edge);
      } else if (state[to] == mark::fresh) {
        state[to] = mark::on_path;
        path.push_back(to);
        next.push_back(0);
      }
    }
  }
}

} // namespace

std::vector<request_graph::cycle> request_graph::cycles() const {
  std::vector<cycle> found;
  depth_first(
    out_,
    [&](const std::vector<size_t>& path, size_t to, size_t edge) {
      cycle c;
      size_t from = path.size();
      while (path[from - 1] != to)
        --from;
      c.members.assign(path.begin() + static_cast<std::ptrdiff_t>(from - 1),
                       path.end());
      c.closing = edge;
      found.push_back(std::move(c));
    },
    [](size_t) {});
  return found;
}

std::vector<size_t> request_graph::callees_first() const {
  std::vector<size_t> order;
  order.reserve(names_.size());
  depth_first(
    out_, [](const std::vector<size_t>&, size_t, size_t) {},
    [&](size_t v) { order.push_back(v); });
  return order;
}

std::string request_graph::describe(const cycle& c) const {
  std::string s;
  for (auto v : c.members)
    s += names_[v] + " \u2192 ";
  return s + (c.members.empty() ? std::string{} : names_[c.members.front()]);
}

} // namespace troupe::detail
