// The embedding API as a service developer uses it: graphs built in code,
// runtimes with several threads and short lives, the embeddable supervisor.
// Issue 6, findings 21-30 (26 is elsewhere). Each case also runs under
// ASan/UBSan (build-asan).
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/send.hpp>
#include <caf/type_erased_value.hpp>
#include <caf/type_id.hpp>
#include <caf/uniform_type_info_map.hpp>

#include "supervisor_fixture.hpp"
#include "troupe/errors.hpp"
#include "troupe/hygiene.hpp"
#include "troupe/loader.hpp"
#include "troupe/registry.hpp"
#include "troupe/runtime.hpp"
#include "troupe/supervisor.hpp"
#include "troupe/type_ids.hpp"
#include "troupe/validate.hpp"

// An application's own type-ID block at caf::first_custom_type_id, visible
// together with troupe's (finding 30): this file compiles only when the two
// ranges do not overlap.
struct app_message {
  int value = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, app_message& x) {
  return f(caf::meta::type_name("app_message"), x.value);
}

CAF_BEGIN_TYPE_ID_BLOCK(embedding_test_app, caf::first_custom_type_id)
  CAF_ADD_TYPE_ID(embedding_test_app, (app_message))
CAF_END_TYPE_ID_BLOCK(embedding_test_app)

using namespace troupe;
using namespace std::chrono_literals;

namespace {

param_value integer(int64_t v) {
  param_value p;
  p.type = param_type::integer;
  p.integer = v;
  p.text = std::to_string(v);
  return p;
}

param_value text(std::string s) {
  param_value p;
  p.type = param_type::string;
  p.text = std::move(s);
  return p;
}

node_spec node(std::string name, std::string type,
               std::vector<std::string> inputs = {}) {
  node_spec n;
  n.name = std::move(name);
  n.type = std::move(type);
  for (auto& i : inputs) {
    input_ref r;
    r.node = i;
    n.inputs.push_back(r);
  }
  return n;
}

node_spec generate(std::string name, int64_t count) {
  auto n = node(std::move(name), "generate");
  n.is_source = true;
  n.params.set("count", integer(count));
  return n;
}

// generate -> map(upper) -> null, built in code.
graph_spec chain(int64_t count = 100) {
  graph_spec g;
  g.name = "chain";
  g.nodes.push_back(generate("src", count));
  auto up = node("up", "map", {"src"});
  up.params.set("fn", text("upper"));
  g.nodes.push_back(up);
  g.nodes.push_back(node("out", "null", {"up"}));
  return g;
}

std::shared_ptr<registry> builtins() {
  auto reg = std::make_shared<registry>();
  register_builtins(*reg);
  return reg;
}

// What start() says about a spec it refuses.
std::string refusal(runtime& rt, const graph_spec& g) {
  try {
    rt.start(g);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(started)";
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// A deterministic runtime and the coordinator that drives it.
struct driven {
  std::shared_ptr<registry> reg = builtins();
  std::unique_ptr<runtime> rt;
  caf::scheduler::test_coordinator* sched = nullptr;

  driven() {
    rt = std::make_unique<runtime>(std::shared_ptr<const registry>(reg),
                                   runtime_options{1, true});
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(
      rt->system().scheduler());
  }

  bool drive(const graph_run& run, duration limit = 60s) {
    sched->run();
    for (duration t{0}; t < limit && !run.finished(); t += 10ms) {
      sched->advance_time(10ms);
      sched->run();
    }
    return run.finished();
  }
};

} // namespace

// -- 21: start() from several threads ----------------------------------------

TEST_CASE("runtime::start from several threads at once is safe") {
  runtime rt{builtins(), {2, false}};
  std::vector<graph_run> runs;
  std::mutex runs_mtx;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 5; ++i) {
        auto run = rt.start(chain(50));
        std::lock_guard<std::mutex> guard{runs_mtx};
        runs.push_back(run);
      }
    });
  for (auto& t : threads)
    t.join();
  REQUIRE(runs.size() == 20);
  for (auto& run : runs) {
    REQUIRE(run.wait_for(60s));
    CHECK(run.report().status == "completed");
    CHECK(run.report().sink_records == 50);
  }
  CHECK(rt.running() == 0);
}

// -- 22: errors instead of segfaults -----------------------------------------

namespace {

// Runs src -> gap -> out where gap's factory returns no node logic.
run_report run_with_null_factory(bool parallel) {
  driven d;
  actor_type nothing;
  nothing.name = "nothing";
  nothing.kind = actor_kind::stage;
  nothing.parallel = parallel;
  nothing.make_node = [](const node_context&) {
    return std::unique_ptr<node_logic>{};
  };
  d.reg->add(nothing);
  graph_spec g;
  g.nodes.push_back(generate("src", 10));
  g.nodes.push_back(node("gap", "nothing", {"src"}));
  if (parallel)
    g.nodes.back().workers = 2;
  g.nodes.push_back(node("out", "null", {"gap"}));
  auto run = d.rt->start(g);
  REQUIRE(d.drive(run));
  return run.report();
}

} // namespace

TEST_CASE("a node factory returning nullptr fails the run with a reason") {
  auto rep = run_with_null_factory(false);
  CHECK(rep.status == "failed");
  CHECK(contains(rep.message, "returned no node logic"));
}

TEST_CASE("a parallel factory returning nullptr fails the run too") {
  auto rep = run_with_null_factory(true);
  CHECK(rep.status == "failed");
  CHECK(contains(rep.message, "returned no node logic"));
}

TEST_CASE("start() refuses a code-built map whose fn is not registered") {
  runtime rt{builtins()};
  auto g = chain();
  g.nodes[1].params.set("fn", text("no_such_fn"));
  auto why = refusal(rt, g);
  CHECK(contains(why, "unknown function 'no_such_fn'"));
  CHECK(contains(why, "node 'up'"));
  CHECK(contains(why, "<graph>:1:1: error:"));
}

TEST_CASE("a default-constructed or moved-from graph_run is defined") {
  graph_run none;
  CHECK(none.finished());
  CHECK(none.wait_for(1s));
  none.stop();
  CHECK(none.report().status == "none");
  CHECK(none.metrics().nodes.empty());
  none.release();
  CHECK_THROWS_AS(none.resource("x"), std::invalid_argument);

  driven d;
  auto run = d.rt->start(chain(10));
  graph_run taken = std::move(run);
  CHECK(run.finished()); // NOLINT(bugprone-use-after-move): defined
  run.stop();
  CHECK(run.report().status == "none");
  REQUIRE(d.drive(taken));
  CHECK(taken.report().status == "completed");
}

// -- 23: lifetimes ------------------------------------------------------------

TEST_CASE("a runtime built from a temporary registry owns its copy") {
  runtime rt{[] {
    registry r;
    register_builtins(r);
    return r;
  }()};
  auto run = rt.start(chain(20));
  REQUIRE(run.wait_for(60s));
  CHECK(run.report().sink_records == 20);
}

TEST_CASE("report() after the registry and the runtime are gone") {
  graph_run run;
  {
    auto reg = builtins();
    runtime rt{std::shared_ptr<const registry>(reg), {1, false}};
    run = rt.start(chain(30));
    reg.reset(); // the runtime shares it; the run keeps what it needs
    REQUIRE(run.wait_for(60s));
  }
  auto rep = run.report();
  CHECK(rep.status == "completed");
  CHECK(rep.source_records == 30);
  CHECK(rep.sink_records == 30);
}

TEST_CASE("wait_for(duration::max()) waits instead of overflowing") {
  runtime rt{builtins(), {1, false}};
  auto run = rt.start(chain(10));
  CHECK(run.wait_for(duration::max()));
  CHECK(run.report().status == "completed");
  CHECK(run.wait_for(duration::min())); // negative: just asks
}

// -- 24: no hangs --------------------------------------------------------------

TEST_CASE("~runtime stops a graph whose handle died first") {
  // A source paced at 1 record a second would run for an hour.
  runtime rt{builtins(), {1, false}};
  auto g = chain(3600);
  param_value rate;
  parse_param({"rate", param_type::rate, false, "", "", {}, 0}, "1/s", rate);
  g.nodes[0].params.set("rate", rate);
  { auto run = rt.start(g); }
  CHECK(rt.running() == 1);
  // ~runtime at the end of the scope must stop it: ctest's timeout would
  // catch a hang.
}

TEST_CASE("invalid code-built graphs are refused by start(), not run") {
  runtime rt{builtins()};
  SUBCASE("empty graph") {
    CHECK(contains(refusal(rt, graph_spec{}), "the graph has no nodes"));
  }
  SUBCASE("cycle") {
    auto g = chain();
    g.nodes[1].inputs.push_back({"out2", "", {}});
    g.nodes.push_back(node("out2", "map", {"up"}));
    g.nodes.back().params.set("fn", text("upper"));
    CHECK(contains(refusal(rt, g), "cycle in the data graph"));
  }
  SUBCASE("duplicate node names") {
    auto g = chain();
    g.nodes.push_back(node("out", "null", {"up"}));
    CHECK(contains(refusal(rt, g), "node name 'out' is used twice"));
  }
  SUBCASE("the same input twice") {
    auto g = chain();
    g.nodes[2].inputs.push_back(g.nodes[2].inputs[0]);
    CHECK(contains(refusal(rt, g), "lists input 'up' twice"));
  }
  SUBCASE("window 0 and batch_size 0") {
    auto g = chain();
    g.runtime.window = 0;
    g.runtime.batch_size = 0;
    auto why = refusal(rt, g);
    // The loader's words for `window: 0` (one validator for both).
    CHECK(contains(why, "runtime: 'window' expects a positive integer, at "
                        "most 16777216, got '0'"));
    CHECK(contains(why, "runtime: 'batch_size' expects a positive integer, "
                        "at most 1048576, got '0'"));
  }
  SUBCASE("a node in a group that does not exist") {
    auto g = chain();
    g.nodes[1].group = "nowhere";
    CHECK(contains(refusal(rt, g), "'up' names unknown group 'nowhere'"));
  }
  SUBCASE("a group naming a node that does not exist") {
    auto g = chain();
    group_spec grp;
    grp.name = "risky";
    grp.nodes = {"ghost"};
    g.groups.push_back(grp);
    CHECK(contains(refusal(rt, g), "names unknown node 'ghost'"));
  }
  SUBCASE("a missing required parameter") {
    auto g = chain();
    g.nodes[1] = node("up", "map", {"src"});
    CHECK(contains(refusal(rt, g), "missing required field 'fn'"));
  }
  SUBCASE("an unknown type") {
    auto g = chain();
    g.nodes[2].type = "nul";
    CHECK(contains(refusal(rt, g), "unknown actor type 'nul'"));
  }
  CHECK(rt.running() == 0);
}

TEST_CASE("a group given only on the node is completed by the validator") {
  driven d;
  auto g = chain(40);
  group_spec grp;
  grp.name = "fragile";
  g.groups.push_back(grp);
  g.nodes[1].group = "fragile";
  auto run = d.rt->start(g);
  REQUIRE(d.drive(run));
  CHECK(run.report().sink_records == 40);
}

TEST_CASE("deterministic: ~runtime returns even when nobody drove it") {
  driven d;
  auto run = d.rt->start(chain(1000));
  CHECK_FALSE(run.finished()); // nothing runs until driven
  d.rt.reset();                // drives the coordinator until it ended
  CHECK(run.finished());
}

// -- 25: topological order -----------------------------------------------------

TEST_CASE("code-built nodes in any order are sorted, nothing is lost") {
  driven d;
  auto g = chain(2000);
  std::reverse(g.nodes.begin(), g.nodes.end()); // sink, stage, source
  auto run = d.rt->start(g);
  REQUIRE(d.drive(run));
  auto rep = run.report();
  CHECK(rep.status == "completed");
  CHECK(rep.source_records == 2000);
  CHECK(rep.sink_records == 2000);
  auto sorted = g;
  REQUIRE(validate(sorted, *d.reg).empty());
  CHECK(sorted.nodes.front().name == "src");
  CHECK(sorted.nodes.back().name == "out");
}

// -- 28: finished runs are forgotten ------------------------------------------

TEST_CASE("a long-lived runtime forgets finished runs") {
  driven d;
  for (int i = 0; i < 25; ++i) {
    auto run = d.rt->start(chain(5));
    REQUIRE(d.drive(run));
  }
  CHECK(d.rt->running() == 0);
  auto held = d.rt->start(chain(5));
  CHECK(d.rt->running() == 1);
  REQUIRE(d.drive(held));
  CHECK(d.rt->running() == 0);
}

// -- 29: the registry ----------------------------------------------------------

TEST_CASE("the registry refuses to replace a function silently") {
  registry reg;
  register_builtins(reg);
  auto shout = [] {
    return record_fn{[](record&) { return fn_result::keep(); }};
  };
  CHECK_THROWS_AS(reg.add_function("upper", "", shout), std::invalid_argument);
  CHECK_NOTHROW(reg.replace_function("upper", "mine", shout));
  CHECK(reg.find_function("upper")->doc == "mine");
}

TEST_CASE("registry::add refuses a default that does not parse") {
  registry reg;
  actor_type t;
  t.name = "odd";
  t.kind = actor_kind::sink;
  t.make_node = [](const node_context&) { return nullptr; };
  t.params = {{"limit", param_type::integer, false, "lots", "", {}, 0}};
  CHECK_THROWS_AS(reg.add(t), std::invalid_argument);
  t.params[0].default_value = "5";
  CHECK_NOTHROW(reg.add(t));
}

TEST_CASE("a function factory returning an empty record_fn is an error") {
  auto reg = builtins();
  reg->add_function("hollow", "", [] { return record_fn{}; });
  runtime rt{std::shared_ptr<const registry>(reg)};
  auto g = chain();
  g.nodes[1].params.set("fn", text("hollow"));
  CHECK(contains(refusal(rt, g), "returned an empty record_fn"));
  auto loaded = load_graph_text(R"(version: 1
nodes:
  src: { type: generate, count: 3 }
  up:  { type: map, fn: hollow, inputs: [src] }
  out: { type: null, inputs: [up] }
)",
                                "hollow.yaml", *reg);
  REQUIRE(loaded.errors.size() == 1);
  CHECK(loaded.errors[0].str().rfind("hollow.yaml:4:", 0) == 0);
}

// -- validator: files ----------------------------------------------------------

TEST_CASE("the validator rejects paths that overlap or cannot work") {
  auto reg = builtins();
  auto sink = [](std::string name, std::string path, std::string input) {
    auto n = node(std::move(name), "file", {std::move(input)});
    n.params.set("path", text(std::move(path)));
    return n;
  };
  auto errors = [&](graph_spec g) {
    std::string all;
    for (auto& d : validate(g, *reg))
      all += d.str() + "\n";
    return all;
  };
  auto g = chain();
  SUBCASE("two sinks on one path") {
    g.nodes.push_back(sink("a", "out/same.txt", "up"));
    g.nodes.push_back(sink("b", "out/../out/same.txt", "up"));
    CHECK(contains(errors(g), "two sinks on one file"));
  }
  SUBCASE("an empty path") {
    g.nodes.push_back(sink("a", "", "up"));
    CHECK(contains(errors(g), "'path' is empty"));
  }
  SUBCASE("an output path that is a directory") {
    g.nodes.push_back(sink("a", TROUPE_SOURCE_DIR, "up"));
    CHECK(contains(errors(g), "names the directory"));
  }
  SUBCASE("an output below a file") {
    g.nodes.push_back(
      sink("a", std::string{TROUPE_SOURCE_DIR} + "/README.md/x.txt", "up"));
    CHECK(contains(errors(g), "is not a directory"));
  }
  SUBCASE("a missing input and an input that is a directory") {
    auto in = node("in", "file");
    in.is_source = true;
    in.params.set("path", text("no/such/input.txt"));
    auto dir = node("dir", "file");
    dir.is_source = true;
    dir.params.set("path", text(TROUPE_SOURCE_DIR));
    g.nodes.push_back(in);
    g.nodes.push_back(dir);
    g.nodes.push_back(node("o2", "null", {"in", "dir"}));
    auto all = errors(g);
    CHECK(contains(all, "input file 'no/such/input.txt' does not exist"));
    CHECK(contains(all, "is a directory, not a file"));
  }
  SUBCASE("a sink writing the source's input, and the --report helper") {
    auto input = std::string{TROUPE_SOURCE_DIR} + "/README.md";
    auto in = node("in", "file");
    in.is_source = true;
    in.params.set("path", text(input));
    g.nodes.push_back(in);
    g.nodes.push_back(sink("clobber", input, "in"));
    CHECK(contains(errors(g), "destroys the input"));
    auto report = check_extra_output(g, input, "--report");
    REQUIRE(report.size() == 2);
    CHECK(contains(report[0].message, "is the file node 'in' reads"));
  }
}

// -- 27: the embeddable supervisor ---------------------------------------------

namespace {

using troupe_test::no_args;

struct sup_fixture : troupe_test::supervisor_fixture {
  caf::error sup_exit;
  bool sup_down = false;
  caf::actor observer;

  ~sup_fixture() {
    sched->run(); // before the observer's handle goes
  }

  supervisor_config config(uint32_t intensity = 5) {
    supervisor_config c;
    c.policy.strategy = strategy::one_for_one;
    c.policy.intensity = intensity;
    c.policy.period = 1min;
    c.policy.backoff = {10ms, 10ms, 0};
    c.shutdown_timeout = 5s;
    return c;
  }

  supervisor_actor spawn(supervisor_config c) {
    auto sup = spawn_supervisor(*sys, std::move(c));
    // Keep the handle: an actor nobody references ends as unreachable.
    observer = sys->spawn([this, sup](caf::event_based_actor* self, int) {
      self->monitor(sup);
      self->set_down_handler([this](caf::down_msg& dm) {
        sup_down = true;
        sup_exit = dm.reason;
      });
      return caf::behavior{[](int) {}};
    }, no_args);
    sched->run();
    return sup;
  }
};

bool has(const std::vector<std::string>& xs, const std::string& x) {
  return std::find(xs.begin(), xs.end(), x) != xs.end();
}

} // namespace

TEST_CASE("supervisor: a child factory throwing on restart uses the budget") {
  sup_fixture f;
  auto c = f.config(2);
  c.children = {f.child("a"), f.child("b"), f.child("c")};
  c.children[1].start = [&f, inner = c.children[1].start](caf::local_actor& p) {
    if (f.starts["b"] >= 1) {
      ++f.starts["b"];
      throw std::runtime_error("cannot reconnect");
    }
    return inner(p);
  };
  auto sup = f.spawn(c);
  caf::anon_send(f.get(sup, "b"), std::string{"crash"});
  f.settle();
  REQUIRE(f.sup_down);
  CHECK(render(f.sup_exit).rfind("troupe.restart_budget", 0) == 0);
  CHECK(f.starts["b"] == 3); // the first start, then two failed restarts
  CHECK(has(f.stopped, "a")); // the others were stopped, not left running
  CHECK(has(f.stopped, "c"));
}

TEST_CASE("supervisor: a factory returning an invalid handle failed to start") {
  sup_fixture f;
  auto c = f.config(0);
  c.children = {f.child("a"),
                {"ghost", restart_type::permanent,
                 [](caf::local_actor&) { return caf::actor{}; }}};
  f.spawn(c);
  f.settle();
  REQUIRE(f.sup_down);
  CHECK(contains(render(f.sup_exit), "returned no actor"));
  CHECK(has(f.stopped, "a"));
}

TEST_CASE("supervisor: a transient child asked to shut down stays down") {
  sup_fixture f;
  auto c = f.config();
  c.children = {f.child("t", restart_type::transient)};
  auto sup = f.spawn(c);
  caf::anon_send_exit(f.get(sup, "t"), caf::exit_reason::user_shutdown);
  f.settle();
  CHECK(f.starts["t"] == 1);
  CHECK_FALSE(f.get(sup, "t"));
  CHECK_FALSE(f.sup_down);
  caf::anon_send(sup, stop_atom_v);
  f.settle();
}

TEST_CASE("supervisor: a timeout sent from outside kills nobody") {
  sup_fixture f;
  auto c = f.config();
  c.children = {f.child("slow", restart_type::permanent, true)};
  auto sup = f.spawn(c);
  caf::anon_send(sup, stop_atom_v);
  f.sched->run();
  // Not in supervisor_actor: only through an untyped handle.
  auto untyped = caf::actor_cast<caf::actor>(sup);
  for (uint64_t epoch = 0; epoch < 4; ++epoch)
    caf::anon_send(untyped, timeout_atom_v, epoch);
  f.sched->run();
  CHECK_FALSE(has(f.stopped, "slow")); // still within its shutdown_timeout
  f.settle(6s); // the supervisor's own timer: killed after 5 s
  CHECK(has(f.stopped, "slow"));
  CHECK(f.sup_down);
}

TEST_CASE("supervisor: a child spawned linked does not take it down") {
  sup_fixture f;
  auto c = f.config();
  c.children = {{"linked", restart_type::permanent,
                 [&f](caf::local_actor& p) {
                   ++f.starts["linked"];
                   return p.spawn<caf::linked>(sup_fixture::worker,
                                               std::string{"linked"},
                                               &f.stopped, false);
                 }}};
  auto sup = f.spawn(c);
  caf::anon_send(f.get(sup, "linked"), std::string{"crash"});
  f.settle();
  CHECK_FALSE(f.sup_down);
  CHECK(f.starts["linked"] == 2);
  CHECK(f.get(sup, "linked"));
  caf::anon_send(sup, stop_atom_v);
  f.settle();
  CHECK(f.sup_down);
}

// -- 30: type IDs --------------------------------------------------------------

TEST_CASE("an application's type-ID block does not collide with troupe's") {
  CHECK(caf::type_id<app_message>::value == caf::first_custom_type_id);
  CHECK(caf::id_block::troupe::begin >= caf::id_block::embedding_test_app::end);
  CHECK(caf::type_id<troupe::record>::value == troupe::type_id_offset);
}

TEST_CASE("an application's block and troupe's load into one actor system") {
  // An embedder with its own config (e.g. for spawn_supervisor) adds its
  // block and troupe's; troupe::runtime does the latter by itself.
  caf::actor_system_config cfg;
  cfg.set("scheduler.policy", caf::atom("testing"));
  cfg.add_message_types<caf::id_block::embedding_test_app>();
  troupe::add_message_types(cfg);
  caf::actor_system sys{cfg};
  CHECK(sys.types().make_value(typeid(app_message)) != nullptr);
  CHECK(sys.types().make_value(typeid(troupe::record_batch)) != nullptr);
  // Internal, so incomplete here: registered by name all the same.
  CHECK(sys.types().make_value("troupe::stage_result") != nullptr);
}
