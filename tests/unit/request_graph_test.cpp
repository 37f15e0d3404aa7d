// The request graph alone (issue 10, static check in lint): which cycles it
// finds, where each is closed, and the spawn order of an acyclic one. No
// registry, no YAML, no actors; request_cycles_test.cpp has the validator.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "request_graph.hpp"

using troupe::detail::request_graph;

namespace {

// Vertices named by the letters of `names`, in order.
std::vector<size_t> letters(request_graph& g, const std::string& names) {
  std::vector<size_t> out;
  for (char c : names)
    out.push_back(g.add_vertex(std::string(1, c)));
  return out;
}

size_t position(const std::vector<size_t>& order, size_t v) {
  return static_cast<size_t>(std::find(order.begin(), order.end(), v)
                             - order.begin());
}

} // namespace

TEST_CASE("request graph: a 3-cycle is one cycle, closed by its last edge") {
  request_graph g;
  auto v = letters(g, "abc");
  g.add_edge(v[0], v[1]);
  g.add_edge(v[1], v[2]);
  auto closing = g.add_edge(v[2], v[0]);
  auto cs = g.cycles();
  REQUIRE(cs.size() == 1);
  CHECK(cs[0].members == std::vector<size_t>{v[0], v[1], v[2]});
  CHECK(cs[0].closing == closing);
  CHECK(g.describe(cs[0]) == "a \u2192 b \u2192 c \u2192 a");
}

TEST_CASE("request graph: the search starts at the first vertex added") {
  // The same cycle with c added first: c → a → b → c, closed by b → c.
  request_graph g;
  auto c = g.add_vertex("c");
  auto a = g.add_vertex("a");
  auto b = g.add_vertex("b");
  g.add_edge(a, b);
  auto b_c = g.add_edge(b, c);
  g.add_edge(c, a);
  auto cs = g.cycles();
  REQUIRE(cs.size() == 1);
  CHECK(g.describe(cs[0]) == "c \u2192 a \u2192 b \u2192 c");
  CHECK(cs[0].closing == b_c);
}

TEST_CASE("request graph: a vertex asking itself is a cycle of one") {
  request_graph g;
  auto v = letters(g, "ab");
  g.add_edge(v[0], v[1]);
  auto self = g.add_edge(v[1], v[1]);
  auto cs = g.cycles();
  REQUIRE(cs.size() == 1);
  CHECK(cs[0].members == std::vector<size_t>{v[1]});
  CHECK(cs[0].closing == self);
  CHECK(g.describe(cs[0]) == "b \u2192 b");
}

TEST_CASE("request graph: two disjoint cycles are both reported, once each") {
  request_graph g;
  auto v = letters(g, "abcxyz");
  g.add_edge(v[0], v[1]);
  g.add_edge(v[1], v[0]);          // a ⇄ b
  g.add_edge(v[1], v[2]);          // b → c, c asks nobody
  g.add_edge(v[3], v[4]);
  g.add_edge(v[4], v[5]);
  g.add_edge(v[5], v[3]);          // x → y → z → x
  auto cs = g.cycles();
  REQUIRE(cs.size() == 2);
  CHECK(g.describe(cs[0]) == "a \u2192 b \u2192 a");
  CHECK(g.describe(cs[1]) == "x \u2192 y \u2192 z \u2192 x");
}

TEST_CASE("request graph: an acyclic diamond passes and orders callees first") {
  // a asks b and c, both ask d: d is reached twice but closes nothing.
  request_graph g;
  auto v = letters(g, "abcd");
  g.add_edge(v[0], v[1]);
  g.add_edge(v[0], v[2]);
  g.add_edge(v[1], v[3]);
  g.add_edge(v[2], v[3]);
  CHECK(g.cycles().empty());
  auto order = g.callees_first();
  REQUIRE(order.size() == 4);
  CHECK(position(order, v[3]) < position(order, v[1]));
  CHECK(position(order, v[3]) < position(order, v[2]));
  CHECK(position(order, v[1]) < position(order, v[0]));
  CHECK(position(order, v[2]) < position(order, v[0]));
}

TEST_CASE("request graph: without edges the order is the order added") {
  request_graph g;
  letters(g, "qwerty");
  CHECK(g.cycles().empty());
  CHECK(g.callees_first() == std::vector<size_t>{0, 1, 2, 3, 4, 5});
}

TEST_CASE("request graph: a long chain is searched without deep recursion") {
  // 200000 vertices in one chain: a recursive search would overflow the
  // stack (especially under ASan); closing it gives one cycle of all.
  constexpr size_t n = 200000;
  request_graph g;
  for (size_t i = 0; i < n; ++i)
    g.add_vertex("r" + std::to_string(i));
  for (size_t i = 0; i + 1 < n; ++i)
    g.add_edge(i, i + 1);
  CHECK(g.cycles().empty());
  auto order = g.callees_first();
  REQUIRE(order.size() == n);
  CHECK(order.front() == n - 1); // the end of the chain asks nobody
  CHECK(order.back() == 0);
  auto closing = g.add_edge(n - 1, 0);
  auto cs = g.cycles();
  REQUIRE(cs.size() == 1);
  CHECK(cs[0].members.size() == n);
  CHECK(cs[0].closing == closing);
}

TEST_CASE("request graph: a tangle is reported once per closing edge") {
  // a → b → a and a → b → c → a share a → b: two edges close a cycle.
  request_graph g;
  auto v = letters(g, "abc");
  g.add_edge(v[0], v[1]);
  auto b_a = g.add_edge(v[1], v[0]);
  g.add_edge(v[1], v[2]);
  auto c_a = g.add_edge(v[2], v[0]);
  auto cs = g.cycles();
  REQUIRE(cs.size() == 2);
  CHECK(cs[0].closing == b_a);
  CHECK(g.describe(cs[0]) == "a \u2192 b \u2192 a");
  CHECK(cs[1].closing == c_a);
  CHECK(g.describe(cs[1]) == "a \u2192 b \u2192 c \u2192 a");
}

TEST_CASE("request graph: vertices may share a name (a node and a resource)") {
  request_graph g;
  auto node = g.add_vertex("x");
  auto res = g.add_vertex("x");
  CHECK(node != res);
  g.add_edge(node, res);
  CHECK(g.cycles().empty());
  CHECK(g.size() == 2);
}
