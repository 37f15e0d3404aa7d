// The YAML loader and unit parsers, without an actor system.
#include <doctest/doctest.h>

#include "troupe/loader.hpp"
#include "troupe/registry.hpp"
#include "troupe/units.hpp"

using namespace troupe;

namespace {

registry& builtins() {
  static registry reg = [] {
    registry r;
    register_builtins(r);
    return r;
  }();
  return reg;
}

load_result load(const std::string& text, load_options opts = {}) {
  return load_graph_text(text, "t.yaml", builtins(), opts);
}

std::string all_errors(const load_result& r) {
  std::string s;
  for (auto& d : r.errors)
    s += d.str() + "\n";
  return s;
}

} // namespace

TEST_CASE("units parse durations, rates and sizes") {
  CHECK(parse_duration("250ms") == std::chrono::milliseconds(250));
  CHECK(parse_duration("5s") == std::chrono::seconds(5));
  CHECK(parse_duration("10m") == std::chrono::minutes(10));
  CHECK(!parse_duration("5"));
  CHECK(!parse_duration("-5s"));
  CHECK(!parse_duration("5 parsecs"));
  CHECK(*parse_rate("2/s") == doctest::Approx(2));
  CHECK(*parse_rate("120/m") == doctest::Approx(2));
  CHECK(*parse_rate("1.5k/s") == doctest::Approx(1500));
  CHECK(!parse_rate("2"));
  CHECK(!parse_rate("0/s"));
  CHECK(*parse_size("64KiB") == 65536);
  CHECK(*parse_size("1MiB") == 1048576);
  CHECK(*parse_size("512") == 512);
  CHECK(!parse_size("12 bananas"));
}

TEST_CASE("format_duration: short, and whole seconds past 1000 s") {
  CHECK(format_duration(std::chrono::nanoseconds(500)) == "500ns");
  CHECK(format_duration(std::chrono::milliseconds(250)) == "250ms");
  CHECK(format_duration(std::chrono::seconds(30)) == "30s");
  CHECK(format_duration(std::chrono::seconds(999)) == "999s");
  CHECK(format_duration(std::chrono::hours(1)) == "3600s");
  CHECK(parse_duration(format_duration(std::chrono::hours(24)))
        == std::chrono::hours(24));
}

TEST_CASE("did_you_mean finds close names only") {
  CHECK(did_you_mean("genrate", {"generate", "map"}) == "generate");
  CHECK(did_you_mean("zzzzzz", {"generate", "map"}).empty());
}

TEST_CASE("a valid graph loads in topological order with defaults") {
  auto r = load(R"(version: 1
nodes:
  sink: { type: null, inputs: [m] }
  m:    { type: map, fn: upper, workers: 3, ordered: false, inputs: [src] }
  src:  { type: generate, count: 5 }
)");
  REQUIRE_MESSAGE(r.ok(), all_errors(r));
  auto& g = *r.graph;
  REQUIRE(g.nodes.size() == 3);
  CHECK(g.nodes[0].name == "src");
  CHECK(g.nodes[1].name == "m");
  CHECK(g.nodes[2].name == "sink");
  CHECK(g.nodes[1].workers == 3);
  CHECK_FALSE(g.nodes[1].ordered);
  CHECK(g.nodes[0].params.integer("count") == 5);
  CHECK(g.nodes[0].params.str("template") == "{i}"); // the default
  CHECK(g.name == "t");
}

TEST_CASE("file is a source without inputs and a sink with them") {
  // The input must exist: the validator checks files.
  auto r = load(std::string{R"(version: 1
nodes:
  in:  { type: file, path: ")"} + TROUPE_SOURCE_DIR + R"(/README.md" }
  out: { type: file, path: b.txt, inputs: [in] }
)");
  REQUIRE_MESSAGE(r.ok(), all_errors(r));
  CHECK(r.graph->nodes[0].is_source);
  CHECK_FALSE(r.graph->nodes[1].is_source);
  // Resolved once, for the run and `troupe graph`.
  CHECK(r.graph->nodes[0].kind == actor_kind::source);
  CHECK(r.graph->nodes[1].kind == actor_kind::sink);
}

TEST_CASE("the parser keeps the position of every field it read") {
  auto r = load(R"(version: 1
runtime: { window: 64, batch_size: 8 }
supervision: { period: 2s }
resources:
  tally: { type: counter }
nodes:
  src: { type: generate, count: 5 }
  up:  { type: map, fn: upper, workers: 2, counter: tally, inputs: [src] }
  out: { type: null, inputs: [up] }
groups:
  g: { nodes: [up] }
)");
  REQUIRE_MESSAGE(r.ok(), all_errors(r));
  auto& g = *r.graph;
  auto pos = [](const source_location& w) {
    return std::to_string(w.line) + ":" + std::to_string(w.column);
  };
  CHECK(pos(g.runtime.where.at("window")) == "2:20");
  CHECK(pos(g.runtime.where.at("batch_size")) == "2:36");
  CHECK(pos(g.supervision.where.at("period")) == "3:24");
  CHECK(pos(g.resources[0].where) == "5:3");
  CHECK(pos(g.resources[0].at("type")) == "5:18");
  auto& up = *g.find_node("up");
  CHECK(pos(up.where) == "8:3");
  CHECK(pos(up.at("")) == "8:8");
  CHECK(pos(up.at("type")) == "8:16");
  CHECK(pos(up.at("workers")) == "8:41");
  CHECK(pos(up.at("counter")) == "8:53");
  CHECK(pos(up.at("inputs")) == "8:68");
  CHECK(pos(up.inputs[0].where) == "8:69");
  CHECK(pos(up.params.get("fn").where) == "8:25");
  CHECK(pos(up.params.get("fn").name_where) == "8:21");
  CHECK(up.params.get("fn").unparsed.empty()); // validate() parsed it
  CHECK(up.group == "g");                       // and completed the group
  CHECK(pos(g.groups[0].where) == "11:3");
  CHECK(pos(g.groups[0].field_where.at("nodes")) == "11:15");
  // A node built in code has none: its diagnostics name it instead.
  CHECK(node_spec{}.at("workers").file.empty());
}

TEST_CASE("environment variables and --set overrides") {
  load_options opts;
  opts.env = [](const std::string& name) -> std::optional<std::string> {
    if (name == "N")
      return "7";
    return std::nullopt;
  };
  opts.overrides = {"nodes.src.template=x{i}", "runtime.window=64"};
  auto r = load(R"(version: 1
nodes:
  src: { type: generate, count: "${N}", template: "${T:-raw_{i}}" }
  out: { type: null, inputs: [src] }
)",
                opts);
  REQUIRE_MESSAGE(r.ok(), all_errors(r));
  CHECK(r.graph->nodes[0].params.integer("count") == 7);
  CHECK(r.graph->nodes[0].params.str("template") == "x{i}");
  CHECK(r.graph->runtime.window == 64);
}

TEST_CASE("every problem is reported with its position, not only the first") {
  auto r = load(R"(version: 1
nodes:
  src: { type: generate, cuont: 5 }
  m:   { type: mapp, inputs: [src] }
  out: { type: null, inputs: [mm] }
)");
  CHECK_FALSE(r.ok());
  auto text = all_errors(r);
  CHECK(text.find("t.yaml:3:26: error: unknown field 'cuont' for type "
                  "'generate' (did you mean 'count'?)")
        != std::string::npos);
  CHECK(text.find("t.yaml:4:16: error: unknown actor type 'mapp' (did you "
                  "mean 'map'?)")
        != std::string::npos);
  CHECK(text.find("t.yaml:5:31: error: 'out' reads from unknown node 'mm'")
        != std::string::npos);
}

TEST_CASE("cycles, duplicate keys, anchors and extra documents are rejected") {
  auto cyc = load(R"(version: 1
nodes:
  src: { type: generate }
  a:   { type: map, fn: upper, inputs: [src, b] }
  b:   { type: map, fn: upper, inputs: [a] }
  out: { type: null, inputs: [b] }
)");
  CHECK(all_errors(cyc).find("cycle in the data graph") != std::string::npos);
  auto dup = load("version: 1\nversion: 1\nnodes: {}\n");
  CHECK(all_errors(dup).find("t.yaml:2:1: error: duplicate key 'version'")
        != std::string::npos);
  auto anchor = load("version: 1\nnodes: &n {}\nother: *n\n");
  CHECK(all_errors(anchor).find("anchors") != std::string::npos);
  CHECK(all_errors(anchor).find("aliases") != std::string::npos);
  auto docs = load("version: 1\n---\nversion: 1\n");
  CHECK(all_errors(docs).find("more than one YAML document")
        != std::string::npos);
}

TEST_CASE("resource slots check the resource's protocol") {
  auto r = load(R"(version: 1
resources:
  hits: { type: counter }
nodes:
  src: { type: generate, counter: hits }
  out: { type: null, cache: hits, inputs: [src] }
)");
  auto text = all_errors(r);
  CHECK(text.find("t.yaml:6:29: error: 'cache' needs a resource speaking "
                  "'cache', but 'hits' is a counter")
        != std::string::npos);
  CHECK(r.errors.size() == 1); // the counter slot on src is fine
}

TEST_CASE("runtime.deadlock loads, and bad values are located errors") {
  auto r = load(R"(version: 1
runtime:
  deadlock: { detect: false, probe_interval: 50ms, policy: restart }
nodes:
  src: { type: generate, count: 5 }
  out: { type: null, inputs: [src] }
)");
  REQUIRE_MESSAGE(r.ok(), all_errors(r));
  auto& d = r.graph->runtime.deadlock;
  CHECK_FALSE(d.detect);
  CHECK(d.probe_interval == std::chrono::milliseconds(50));
  CHECK(d.policy == deadlock_policy::restart);
  // The defaults: on, failing the cycle's requests.
  auto plain = load("version: 1\nnodes:\n  src: { type: generate, count: 5 }\n"
                    "  out: { type: null, inputs: [src] }\n");
  REQUIRE(plain.ok());
  CHECK(plain.graph->runtime.deadlock.detect);
  CHECK(plain.graph->runtime.deadlock.policy == deadlock_policy::fail);

  auto bad = [](const std::string& deadlock) {
    auto res = load("version: 1\nruntime:\n  deadlock: " + deadlock
                    + "\nnodes:\n  src: { type: generate, count: 5 }\n"
                      "  out: { type: null, inputs: [src] }\n");
    CHECK_FALSE(res.ok());
    return all_errors(res);
  };
  auto e = bad("{ policy: maybe }");
  CHECK_MESSAGE(e.find("t.yaml:3:23: error: 'policy' expects report, fail or "
                       "restart, got 'maybe'")
                  != std::string::npos,
                e);
  e = bad("{ probe_interval: 0s }");
  CHECK_MESSAGE(e.find("t.yaml:3:31: error:") != std::string::npos, e);
  CHECK_MESSAGE(e.find("probe_interval") != std::string::npos, e);
  e = bad("{ detect: 3 }");
  CHECK_MESSAGE(e.find("t.yaml:3:23: error:") != std::string::npos, e);
  CHECK_MESSAGE(e.find("detect") != std::string::npos, e);
  e = bad("{ detect: true, probes: 5 }");
  CHECK_MESSAGE(e.find("t.yaml:3:29: error: unknown field 'probes'")
                  != std::string::npos,
                e);
  e = bad("{ probe_interval: soon }");
  CHECK_MESSAGE(e.find("t.yaml:3:31: error:") != std::string::npos, e);
  e = bad("fail");
  CHECK_MESSAGE(e.find("t.yaml:3:13: error:") != std::string::npos, e);
}
