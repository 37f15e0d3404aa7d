// One validator for graphs from YAML and graphs built in code: a spec built
// in code with a wrong parameter is refused by runtime::start() with the
// same message the loader gives for the same graph written in YAML, instead
// of reaching the node (param_set::get throws, the node crash-loops until
// the restart budget fails the run).
#include <doctest/doctest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "troupe/loader.hpp"
#include "troupe/registry.hpp"
#include "troupe/runtime.hpp"
#include "troupe/validate.hpp"

using namespace troupe;

namespace {

std::shared_ptr<registry> builtins() {
  auto reg = std::make_shared<registry>();
  register_builtins(*reg);
  return reg;
}

param_value integer(int64_t v) {
  param_value p;
  p.type = param_type::integer;
  p.integer = v;
  p.text = std::to_string(v);
  return p;
}

param_value text(std::string s, param_type t = param_type::string) {
  param_value p;
  p.type = t;
  p.text = std::move(s);
  return p;
}

node_spec node(std::string name, std::string type,
               std::vector<std::string> inputs = {}) {
  node_spec n;
  n.name = std::move(name);
  n.type = std::move(type);
  for (auto& i : inputs)
    n.inputs.push_back({i, "", {}});
  return n;
}

// generate(count) -> out, with `out` given by the caller.
graph_spec pair(int64_t count, node_spec out) {
  graph_spec g;
  g.name = "pair";
  auto src = node("src", "generate");
  src.params.set("count", integer(count));
  g.nodes.push_back(src);
  g.nodes.push_back(std::move(out));
  return g;
}

// What start() says about a spec it refuses, "(started)" if it runs it.
std::string refusal(runtime& rt, const graph_spec& g) {
  try {
    auto run = rt.start(g);
    run.stop();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(started)";
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

} // namespace

TEST_CASE("code-built: a parameter below its minimum is refused by start()") {
  runtime rt{builtins()};
  auto why = refusal(rt, pair(-3, node("out", "null", {"src"})));
  CHECK(contains(why, "'count': must be at least 0, got -3"));
  CHECK(contains(why, "node 'src'"));
  CHECK(rt.running() == 0);
}

TEST_CASE("code-built: a choice outside its choices is refused by start()") {
  runtime rt{builtins()};
  auto out = node("out", "file", {"src"});
  out.params.set("path", text("/dev/null"));
  out.params.set("format", text("xml", param_type::choice));
  auto why = refusal(rt, pair(3, out));
  CHECK(contains(why, "'format': expected one of jsonl, lines, got 'xml'"));
}

TEST_CASE("code-built: an unknown parameter is refused by start()") {
  runtime rt{builtins()};
  auto g = pair(3, node("out", "null", {"src"}));
  g.nodes[0].params.set("cout", integer(3));
  auto why = refusal(rt, g);
  CHECK(contains(why, "unknown field 'cout' for type 'generate' (did you "
                      "mean 'count'?)"));
}

TEST_CASE("code-built: a missing required parameter is refused by start()") {
  runtime rt{builtins()};
  auto out = node("out", "file", {"src"});
  auto why = refusal(rt, pair(3, out));
  CHECK(contains(why, "node 'out': missing required field 'path' for type "
                      "'file'"));
}

TEST_CASE("validate() resolves each node's kind once") {
  auto reg = builtins();
  graph_spec g;
  g.name = "kinds";
  auto in = node("in", "file");
  in.is_source = true; // `file` is a source and a sink: the source
  in.params.set("path", text("/dev/null"));
  g.nodes.push_back(in);
  auto out = node("out", "file", {"in"});
  out.params.set("path", text("/dev/null"));
  g.nodes.push_back(out);
  g.nodes.push_back(node("gen", "generate")); // one kind: is_source not needed
  g.nodes.push_back(node("nul", "null", {"gen"}));
  REQUIRE(validate(g, *reg).empty());
  CHECK(g.find_node("in")->kind == actor_kind::source);
  CHECK(g.find_node("out")->kind == actor_kind::sink);
  CHECK(g.find_node("gen")->kind == actor_kind::source);
  CHECK(g.find_node("gen")->is_source);
  CHECK(g.find_node("nul")->kind == actor_kind::sink);
  // What the run and the CLI use: the exact type of that kind.
  CHECK(reg->find("file", actor_kind::source)->kind == actor_kind::source);
  CHECK(reg->find("file", actor_kind::sink)->kind == actor_kind::sink);
  CHECK(reg->find("file", actor_kind::stage) == nullptr);
  CHECK(reg->find_all("file").size() == 2);
  CHECK(reg->find_all("nope").empty());
}

TEST_CASE("a source-meant node naming a sink-only parameter is the sink") {
  auto reg = builtins();
  graph_spec g;
  auto f = node("f", "file");
  f.is_source = true;
  f.params.set("path", text("/dev/null"));
  f.params.set("format", text("lines", param_type::choice));
  g.nodes.push_back(f);
  auto diags = validate(g, *reg);
  REQUIRE(diags.size() == 1);
  CHECK(g.nodes[0].kind == actor_kind::sink);
  CHECK(diags[0].message
        == "node 'f': 'f' is a sink (file) and needs 'inputs'");
}

// -- registry::add --------------------------------------------------------------

TEST_CASE("registry::add refuses defaults that do not fit their parameter") {
  registry reg;
  actor_type t;
  t.name = "odd";
  t.kind = actor_kind::sink;
  t.make_node = [](const node_context&) { return nullptr; };
  SUBCASE("an integer default above its maximum") {
    param_spec p{"limit", param_type::integer, false, "11", "", {}, 0};
    p.max = 10;
    t.params = {p};
    CHECK_THROWS_AS(reg.add(t), std::invalid_argument);
    t.params[0].default_value = "10";
    CHECK_NOTHROW(reg.add(t));
  }
  SUBCASE("a choice default that is not a choice") {
    t.params = {{"mode", param_type::choice, false, "fast", "", {"slow"}, 0}};
    CHECK_THROWS_AS(reg.add(t), std::invalid_argument);
    t.params[0].choices.push_back("fast");
    CHECK_NOTHROW(reg.add(t));
  }
  SUBCASE("a duration default that is no duration") {
    t.params = {{"every", param_type::time_span, false, "often", "", {}, 0}};
    CHECK_THROWS_AS(reg.add(t), std::invalid_argument);
  }
  // validate() fills defaults without checking them again: add() is where
  // a bad one is caught.
}

// -- the same diagnostics from YAML and from code ------------------------------

namespace {

param_value choice(std::string s) {
  return text(std::move(s), param_type::choice);
}

// A graph built in code, node by node.
struct code_graph {
  graph_spec g;

  node_spec& add(std::string name, std::string type,
                 std::vector<std::string> inputs = {},
                 std::vector<std::pair<std::string, param_value>> params = {}) {
    auto n = node(std::move(name), std::move(type), std::move(inputs));
    for (auto& [k, v] : params)
      n.params.set(k, v);
    g.nodes.push_back(std::move(n));
    return g.nodes.back();
  }
};

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string::npos)
      end = text.size();
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size()
         && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// tests/bad_configs/FILE through the loader, and `code` through
// runtime::start(): the same messages, one for one; the code-built ones
// name what they concern instead of a position.
void same_diagnostics(const std::string& file, const graph_spec& code) {
  CAPTURE(file);
  auto reg = builtins();
  auto loaded = load_graph_file(
    std::string{TROUPE_SOURCE_DIR} + "/tests/bad_configs/" + file, *reg);
  REQUIRE_FALSE(loaded.ok());
  runtime rt{reg};
  auto refused = lines(refusal(rt, code));
  CHECK(refused.size() == loaded.errors.size());
  for (auto& d : loaded.errors) {
    CAPTURE(d.message);
    bool found = false;
    for (auto& l : refused)
      found = found || ends_with(l, ": " + d.message);
    CHECK(found);
  }
  for (auto& l : refused) {
    CAPTURE(l);
    CHECK(l.rfind("<graph>:1:1: error: ", 0) == 0);
  }
}

} // namespace

TEST_CASE("YAML and code give the same diagnostics: parameters") {
  {
    code_graph c;
    c.add("src", "generate", {}, {{"count", integer(10)}});
    c.add("out", "file", {"src"}, {{"format", choice("lines")}});
    same_diagnostics("missing_required_field.yaml", c.g);
  }
  {
    code_graph c;
    c.add("src", "generate", {}, {{"count", integer(10)}});
    c.add("out", "file", {"src"},
          {{"path", text("out/x.xml")}, {"format", choice("xml")}});
    same_diagnostics("bad_choice.yaml", c.g);
  }
  {
    code_graph c;
    c.add("src", "generate", {}, {{"count", integer(-3)}});
    c.add("out", "stdout", {"src"});
    same_diagnostics("negative_count.yaml", c.g);
  }
  {
    code_graph c;
    c.add("src", "generate", {}, {{"count", integer(10)}});
    c.add("batch", "batch", {"src"}, {{"sise", integer(50)}});
    c.add("out", "stdout", {"batch"});
    same_diagnostics("unknown_field.yaml", c.g);
  }
  {
    code_graph c;
    c.add("src", "generate", {}, {{"count", integer(10)}});
    c.add("batch", "batch", {"src"}, {{"size", integer(20000)}});
    c.add("out", "stdout", {"batch"});
    c.g.runtime.window = 16384;
    same_diagnostics("batch_larger_than_window.yaml", c.g);
  }
}

TEST_CASE("YAML and code give the same diagnostics: kinds and inputs") {
  {
    code_graph c;
    c.add("first", "generate", {}, {{"count", integer(10)}});
    c.add("second", "generate", {"first"}, {{"count", integer(10)}});
    c.add("out", "stdout", {"second"});
    same_diagnostics("source_with_inputs.yaml", c.g);
  }
  {
    code_graph c;
    c.add("src", "generate", {}, {{"count", integer(10)}});
    c.add("up", "map", {"src"}, {{"fn", text("upper")}});
    c.add("out", "stdout");
    same_diagnostics("sink_without_inputs.yaml", c.g);
  }
  {
    code_graph c;
    c.add("src", "generate", {}, {{"count", integer(10)}});
    c.add("hash", "map", {"src"}, {{"fn", text("sha256")}});
    c.add("out", "stdout", {"hsah"});
    same_diagnostics("dangling_input.yaml", c.g);
  }
  {
    code_graph c;
    c.add("src", "generate", {}, {{"count", integer(10)}});
    c.add("a", "map", {"src", "c"}, {{"fn", text("upper")}});
    c.add("b", "map", {"a"}, {{"fn", text("lower")}});
    c.add("c", "map", {"b"}, {{"fn", text("trim")}});
    c.add("out", "stdout", {"c"});
    same_diagnostics("cycle.yaml", c.g);
  }
  {
    code_graph c;
    c.add("src", "generate", {}, {{"count", integer(10)}});
    c.add("up", "mapp", {"src"}, {{"fn", text("upper")}});
    c.add("out", "stdout", {"up"});
    same_diagnostics("unknown_actor_type.yaml", c.g);
  }
  {
    code_graph c;
    c.add("src", "generate", {}, {{"count", integer(10)}});
    c.add("tally", "counter");
    c.add("out", "stdout", {"src"});
    same_diagnostics("service_as_node.yaml", c.g);
  }
}

TEST_CASE("YAML and code give the same diagnostics: workers, slots, groups, "
          "runtime") {
  {
    code_graph c;
    c.add("src", "generate", {}, {{"count", integer(10)}});
    c.add("up", "map", {"src"}, {{"fn", text("upper")}}).workers = 0;
    c.add("out", "stdout", {"up"});
    same_diagnostics("zero_workers.yaml", c.g);
  }
  {
    code_graph c;
    c.add("src", "generate", {}, {{"count", integer(10)}});
    c.add("batch", "batch", {"src"}, {{"size", integer(5)}}).workers = 4;
    c.add("out", "stdout", {"batch"});
    same_diagnostics("workers_on_batch.yaml", c.g);
  }
  {
    code_graph c;
    c.g.resources.push_back({"tally", "counter", {}, {}, {}});
    c.add("src", "generate", {}, {{"count", integer(10)}});
    c.add("out", "stdout", {"src"}).resources["counter"] = "taly";
    same_diagnostics("unknown_resource.yaml", c.g);
  }
  {
    code_graph c;
    c.g.resources.push_back({"c", "counter", {}, {}, {}});
    c.add("src", "generate", {}, {{"count", integer(10)}});
    c.add("up", "map", {"src"}, {{"fn", text("upper")}}).resources["cache"]
      = "c";
    c.add("out", "stdout", {"up"});
    same_diagnostics("wrong_protocol_resource.yaml", c.g);
  }
  {
    code_graph c;
    c.add("src", "generate", {}, {{"count", integer(10)}});
    c.add("parse", "map", {"src"}, {{"fn", text("upper")}});
    c.add("out", "stdout", {"parse"});
    group_spec a;
    a.name = "a";
    a.nodes = {"parse"};
    auto b = a;
    b.name = "b";
    c.g.groups = {a, b};
    same_diagnostics("group_node_twice.yaml", c.g);
  }
  {
    code_graph c;
    c.add("src", "generate", {}, {{"count", integer(10)}});
    c.add("out", "stdout", {"src"});
    c.g.runtime.batch_size = 0;
    same_diagnostics("zero_batch_size.yaml", c.g);
  }
}

TEST_CASE("validate(resource_spec) checks a resource outside any graph") {
  auto reg = builtins();
  resource_spec r;
  r.name = "tally";
  r.type = "counter";
  CHECK(validate(r, *reg).empty());
  r.params.set("size", integer(3));
  auto diags = validate(r, *reg);
  REQUIRE(diags.size() == 1);
  CHECK(diags[0].str()
        == "<resource>:1:1: error: resource 'tally': unknown field 'size' for "
           "type 'counter'");
  resource_spec m;
  m.name = "m";
  m.type = "map";
  diags = validate(m, *reg);
  REQUIRE(diags.size() == 1);
  CHECK(diags[0].message == "resource 'm': 'map' is a stage, not a service; "
                            "declare it under 'nodes:'");
}
