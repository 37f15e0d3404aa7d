// Regressions from the hostile review of the architecture step (issue 7):
// each case failed on the code before its fix.
#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "troupe/loader.hpp"
#include "troupe/registry.hpp"
#include "troupe/runtime.hpp"
#include "troupe/supervisor.hpp"
#include "troupe/type_ids.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

} // namespace

TEST_CASE("review: a validate hook that throws is a diagnostic, not an "
          "exception out of the loader") {
  registry reg;
  register_builtins(reg);
  actor_type t;
  t.name = "hooky";
  t.kind = actor_kind::sink;
  t.doc = "a sink whose validate hook throws";
  t.make_node = [](const node_context&) -> std::unique_ptr<node_logic> {
    return nullptr;
  };
  t.validate = [](const node_spec&, const graph_spec&, const registry&,
                  std::vector<diagnostic>&) {
    throw std::runtime_error("boom");
  };
  reg.add(t);
  load_result res;
  CHECK_NOTHROW(res = load_graph_text(R"(version: 1
nodes:
  src: { type: generate, count: 1 }
  out: { type: hooky, inputs: [src] }
)",
                                      "h.yaml", reg));
  REQUIRE(res.errors.size() == 1);
  CHECK(res.errors[0].where.line == 4);
  CHECK(contains(res.errors[0].message,
                 "type 'hooky': its validate hook threw: boom"));
}

TEST_CASE("review: diagnostics come in the order of the file") {
  registry reg;
  register_builtins(reg);
  // Parser (bad value) and validator (unknown type, bad workers) problems
  // interleaved: reported by line.
  auto res = load_graph_text(R"(version: 1
resources:
  r2: { type: counter, initial: "x" }
nodes:
  h: { type: nope }
  g: { type: generate, count: 3 }
  w: { type: map, fn: upper, workers: 0, inputs: [g] }
  q: { type: generate, rate: "-5/s" }
  z: { type: null, inputs: [q] }
)",
                             "order.yaml", reg);
  REQUIRE(res.errors.size() >= 4);
  for (size_t i = 1; i < res.errors.size(); ++i) {
    auto& a = res.errors[i - 1].where;
    auto& b = res.errors[i].where;
    CHECK((a.line < b.line || (a.line == b.line && a.column <= b.column)));
  }
}

TEST_CASE("review: the embeddable supervisor refuses a policy that could "
          "never exhaust its budget") {
  caf::actor_system_config cfg;
  add_message_types(cfg);
  caf::actor_system sys{cfg};
  supervisor_config bad;
  bad.name = "s";
  bad.policy.period = 0s;
  CHECK_THROWS_WITH_AS(spawn_supervisor(sys, bad),
                       "supervisor 's': policy.period must be positive",
                       std::invalid_argument);
  supervisor_config twice;
  twice.name = "t";
  twice.children.push_back({"a", restart_type::permanent, {}});
  twice.children.push_back({"a", restart_type::permanent, {}});
  CHECK_THROWS_AS(spawn_supervisor(sys, twice), std::invalid_argument);
  supervisor_config slow;
  slow.policy.backoff.min = 2s;
  slow.policy.backoff.max = 1s;
  CHECK_THROWS_AS(supervisor_child("inner", slow), std::invalid_argument);
}

TEST_CASE("review: two runs of one runtime writing one file: the second "
          "fails loudly instead of overwriting the first") {
  auto dir = std::filesystem::temp_directory_path()
             / ("troupe-review-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto path = (dir / "shared.txt").string();
  auto reg = std::make_shared<registry>();
  register_builtins(*reg);
  runtime rt{reg};
  // The first run holds the file while its slow source still produces.
  auto text = [&](const std::string& rate) {
    return "version: 1\nnodes:\n  src: { type: generate, count: 200, rate: "
           + rate + " }\n  out: { type: file, path: \"" + path
           + "\", inputs: [src] }\n";
  };
  auto first = load_graph_text(text("\"100/s\""), "a.yaml", rt.types());
  auto second = load_graph_text(text("\"100000/s\""), "b.yaml", rt.types());
  REQUIRE(first.ok());
  REQUIRE(second.ok());
  auto a = rt.start(*first.graph);
  // Until the first sink has the file open, a second run would be first.
  for (int i = 0; i < 500 && !std::filesystem::exists(path); ++i)
    std::this_thread::sleep_for(2ms);
  auto b = rt.start(*second.graph);
  REQUIRE(b.wait_for(30s));
  CHECK(b.report().status == "failed");
  CHECK(contains(b.report().message, "is being written by another run"));
  a.stop();
  REQUIRE(a.wait_for(30s));
  // Whatever the first run reports written is in the file.
  std::ifstream in(path);
  size_t lines = 0;
  for (std::string line; std::getline(in, line);)
    ++lines;
  CHECK(lines == a.report().sink_records);
  std::filesystem::remove_all(dir);
}

TEST_CASE("review: runtime_options.threads has YAML's limit") {
  registry reg;
  register_builtins(reg);
  CHECK_THROWS_AS((runtime{reg, runtime_options{100000, false}}),
                  std::invalid_argument);
}

TEST_CASE("review: a run does not hand out a runtime resource its runtime "
          "released") {
  auto reg = std::make_shared<registry>();
  register_builtins(*reg);
  runtime rt{reg};
  rt.add_resource({"seen", "counter"});
  // Declared as the runtime has it: the run binds to the runtime's one.
  auto loaded = load_graph_text(R"(version: 1
resources:
  seen: { type: counter }
nodes:
  src: { type: generate, count: 10 }
  out: { type: null, inputs: [src], counter: seen }
)",
                                "r.yaml", rt.types());
  REQUIRE(loaded.ok());
  auto run = rt.start(*loaded.graph);
  REQUIRE(run.wait_for(30s));
  CHECK_NOTHROW(run.resource("seen"));
  CHECK(rt.release_resource("seen"));
  CHECK_THROWS_WITH_AS(run.resource("seen"),
                       "resource 'seen' was released by its runtime",
                       std::invalid_argument);
}
