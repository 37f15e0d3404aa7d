// The graph's picture (graph_picture.hpp): the DOT builder's structure and
// the in-process rendering through libgvc, including how a Graphviz error
// surfaces (an exception carrying Graphviz's message, nothing on stderr).
#include <doctest/doctest.h>

#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "troupe/graph_picture.hpp"
#include "troupe/report_html.hpp"

using namespace troupe;

namespace {

graph_spec sample() {
  graph_spec g;
  g.name = "pic";
  node_spec src;
  src.name = "src";
  src.type = "generate";
  src.kind = actor_kind::source;
  node_spec up;
  up.name = "up";
  up.type = "map";
  up.workers = 3;
  up.group = "fragile";
  up.inputs = {{"src", "", {}}};
  up.resources = {{"cache", "memo"}};
  node_spec out;
  out.name = "out";
  out.type = "file";
  out.kind = actor_kind::sink;
  out.inputs = {{"up", "", {}}};
  node_spec dead;
  dead.name = "dead";
  dead.type = "file";
  dead.kind = actor_kind::sink;
  dead.group = "inner";
  dead.inputs = {{"up", "errors", {}}};
  g.nodes = {src, up, out, dead};
  group_spec fragile;
  fragile.name = "fragile";
  fragile.nodes = {"up"};
  group_spec inner;
  inner.name = "inner";
  inner.parent = "fragile";
  inner.nodes = {"dead"};
  g.groups = {fragile, inner};
  resource_spec memo;
  memo.name = "memo";
  memo.type = "cache";
  g.resources = {memo};
  return g;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos;
       at = text.find(what, at + 1))
    ++n;
  return n;
}

} // namespace

TEST_CASE("graph_dot: ids, shapes by kind, clusters nested, errors and slots") {
  auto dot = graph_dot(sample());
  for (auto* n : {"src", "up", "out", "dead"})
    CHECK(dot.find("id=\"node-" + std::string(n) + "\"") != std::string::npos);
  CHECK(dot.find("\"src\" [id=\"node-src\", class=\"node-source\", shape=invhouse")
        != std::string::npos);
  CHECK(dot.find("class=\"node-sink\", shape=house") != std::string::npos);
  CHECK(dot.find("map x3") != std::string::npos);
  // inner sits inside fragile: its cluster opens before fragile's closes.
  auto fragile = dot.find("subgraph \"cluster_fragile\"");
  auto inner = dot.find("subgraph \"cluster_inner\"");
  REQUIRE(fragile != std::string::npos);
  REQUIRE(inner != std::string::npos);
  CHECK(inner > fragile);
  CHECK(dot.find("\"dead\" [id=\"node-dead\"", inner) != std::string::npos);
  CHECK(count(dot, "\"dead\" [id=") == 1); // drawn once, in its cluster
  CHECK(dot.find("\"up\" -> \"dead\" [style=dashed, color=red")
        != std::string::npos);
  CHECK(dot.find("\"up\" -> \"memo\" [style=dotted") != std::string::npos);
  CHECK(dot.find("id=\"resource-memo\"") != std::string::npos);
  CHECK(dot.find("\\nin ") == std::string::npos); // no counts without a report
}

TEST_CASE("graph_dot: with a report each node carries its figures") {
  run_report r;
  node_report up;
  up.name = "up";
  up.in = 1234;
  up.out = 1200;
  up.errors = 34;
  up.restarts = 2;
  up.latency_p50_ns = 1500;
  up.latency_p99_ns = 2500000;
  r.nodes = {up};
  auto dot = graph_dot(sample(), &r);
  CHECK(dot.find("in 1234  out 1200\\nerrors 34  restarts 2\\np50 1.5us  p99 2.5ms")
        != std::string::npos);
  CHECK(dot.find("color=\"#c00000\"") != std::string::npos); // errors: red
}

TEST_CASE("graph_dot: quotes and backslashes in names stay inside the string") {
  auto g = sample();
  g.name = "a \"quoted\" \\ name";
  auto dot = graph_dot(g);
  CHECK(dot.rfind("digraph \"a \\\"quoted\\\" \\\\ name\" {", 0) == 0);
  CHECK_NOTHROW(dot_to_svg(dot));
}

TEST_CASE("graph_svg: libgvc renders every node group with its id") {
  auto svg = graph_svg(sample());
  CHECK(svg.find("<svg") != std::string::npos);
  // Graphviz writes '-' as the character reference &#45; (the DOM's id is
  // node-NAME all the same).
  for (auto* n : {"src", "up", "out", "dead"})
    CHECK(svg.find("<g id=\"node&#45;" + std::string(n) + "\" class=\"node")
          != std::string::npos);
  CHECK(svg.find("<g id=\"group&#45;inner\" class=\"cluster\"") != std::string::npos);
  auto el = svg_element(svg);
  CHECK(el.rfind("<svg", 0) == 0);
  CHECK(el.find("<!DOCTYPE") == std::string::npos);
  CHECK(el.find("xmlns:xlink") == std::string::npos);
}

TEST_CASE("dot_to_svg: a Graphviz error is an exception with its message") {
  try {
    dot_to_svg("digraph { a -> ; }");
    FAIL("no exception");
  } catch (const std::runtime_error& e) {
    std::string what = e.what();
    CHECK(what.rfind("graphviz: cannot parse the DOT", 0) == 0);
    CHECK(what.find("syntax error") != std::string::npos);
  }
  // ... and Graphviz still works afterwards (its error state was reset).
  CHECK(dot_to_svg("digraph { a -> b; }").find("<svg") != std::string::npos);
}

TEST_CASE("graph_svg: callers on several threads take turns") {
  auto g = sample();
  std::vector<std::thread> threads;
  std::vector<std::string> out(4);
  for (size_t i = 0; i < out.size(); ++i)
    threads.emplace_back([&, i] { out[i] = graph_svg(g); });
  for (auto& t : threads)
    t.join();
  for (auto& s : out)
    CHECK(s == out[0]);
}

TEST_CASE("report_html: escapes names, carries the figures, no URL but svg's") {
  auto g = sample();
  run_report r;
  r.graph = "<pic>";
  r.status = "completed";
  node_report up;
  up.name = "up";
  up.type = "map";
  up.in = 7;
  up.out = 5;
  up.dead_lettered = 2;
  r.nodes = {up};
  std::vector<dead_letter> dead{{"up", false, 3, "bad <input>", "2026-01-01T00:00:00.000Z"}};
  auto page = report_html(g, r, dead, svg_element(graph_svg(g, &r)));
  CHECK(page.find("<title>troupe report: &lt;pic&gt;</title>") != std::string::npos);
  CHECK(page.find("<td data-field=\"in\">7</td>") != std::string::npos);
  CHECK(page.find("bad &lt;input&gt;") != std::string::npos);
  CHECK(page.find("https://") == std::string::npos);
  CHECK(count(page, "http://") == 1); // the svg namespace
  CHECK(page.find("id=\"node&#45;up\"") != std::string::npos);
}
