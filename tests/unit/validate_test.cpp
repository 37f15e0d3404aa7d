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
        == "node 'f': 'f' is a sink (file) and needs 'inputs' (or set "
           "is_source for the source)");
}
