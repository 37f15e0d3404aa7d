// Typed services and resource lifetimes (issue 7, part 4): a service type
// registers its typed protocol and slot hook, resources outlive a run until
// released, and resource<Handle>(name) hands them out typed or refuses
// clearly. All on CAF's test coordinator: deterministic, no sleeps.
#include <doctest/doctest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/replies_to.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "troupe/actors/counter.hpp"
#include "troupe/errors.hpp"
#include "troupe/loader.hpp"
#include "troupe/registry.hpp"
#include "troupe/runtime.hpp"
#include "troupe/service.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

// A service type of the test's own: `tally` sums what nodes report to it.
using tally_actor
  = caf::typed_actor<caf::reacts_to<add_atom, int64_t>,
                     caf::replies_to<get_atom>::with<int64_t>>;

struct tally_state {
  static inline const char* name = "test.tally";
  int64_t total = 0;
};

// (The unused int: CAF 0.17 dereferences a null argument tuple when a
// function actor takes no arguments, which UBSan reports.)
tally_actor::behavior_type
tally_fn(tally_actor::stateful_pointer<tally_state> self, int) {
  return {
    [=](add_atom, int64_t n) { self->state.total += n; },
    [=](get_atom) { return self->state.total; },
  };
}

// What the slot hook saw, outside any actor (the test coordinator runs every
// actor on this thread).
struct hook_log {
  size_t events = 0;
  uint64_t records = 0;
};

void register_tally(registry& reg, std::shared_ptr<hook_log> log) {
  actor_type t;
  t.name = "tally";
  t.kind = actor_kind::service;
  t.protocol = "tally";
  t.doc = "sums what the nodes naming it pass on";
  t.service = typed_service<tally_actor>(
    [](caf::actor_system& sys, const resource_spec&) {
      return sys.spawn(tally_fn, 0);
    },
    [log](const tally_actor& h, const slot_event& e) {
      if (e.what != slot_event::kind::passed_on)
        return;
      ++log->events;
      log->records += e.records;
      caf::anon_send(h, add_atom_v, static_cast<int64_t>(e.records));
    });
  reg.add(std::move(t));
  reg.add_resource_slot("tally", "tally", "counts what this node passes on");
}

struct fixture {
  std::shared_ptr<hook_log> log = std::make_shared<hook_log>();
  std::shared_ptr<registry> reg = [this] {
    auto r = std::make_shared<registry>();
    register_builtins(*r);
    register_tally(*r, log);
    return r;
  }();
  std::unique_ptr<runtime> rt
    = std::make_unique<runtime>(std::shared_ptr<const registry>(reg),
                                runtime_options{1, true});
  caf::scheduler::test_coordinator& sched
    = dynamic_cast<caf::scheduler::test_coordinator&>(
      rt->system().scheduler());

  graph_run start(const std::string& yaml) {
    auto loaded = load_graph_text(yaml, "t.yaml", *reg);
    if (!loaded.ok()) {
      std::string msg;
      for (auto& d : loaded.errors)
        msg += d.str() + "\n";
      FAIL(msg);
    }
    return rt->start(*loaded.graph);
  }

  bool drive(const graph_run& run) {
    sched.run();
    for (duration t{0}; t < 60s && !run.finished(); t += 10ms) {
      sched.advance_time(10ms);
      sched.run();
    }
    return run.finished();
  }

  // get -> total over the handle's typed protocol; -1 when it answers an
  // error (e.g. the resource was stopped).
  template <class Handle>
  int64_t total(const Handle& h) {
    auto out = std::make_shared<int64_t>(-2);
    rt->system().spawn(
      [out, h](caf::event_based_actor* self, int) {
        self->request(h, std::chrono::seconds(1), get_atom_v)
          .then([out](int64_t n) { *out = n; },
                [out](caf::error&) { *out = -1; });
      },
      0); // (the int: CAF 0.17 and argument-less function actors, see README)
    sched.run();
    return *out;
  }
};

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(no error)";
}

// generate(count) with a counter slot -> null, built in code.
graph_spec counted(int64_t count, const std::string& counter) {
  graph_spec g;
  g.name = "counted";
  node_spec src;
  src.name = "src";
  src.type = "generate";
  src.is_source = true;
  param_value c;
  c.type = param_type::integer;
  c.integer = count;
  c.text = std::to_string(count);
  src.params.set("count", c);
  src.resources["counter"] = counter;
  node_spec out;
  out.name = "out";
  out.type = "null";
  out.inputs.push_back({"src"});
  g.nodes = {src, out};
  return g;
}

} // namespace

TEST_CASE("a run's own resource outlives the run until released") {
  fixture f;
  auto run = f.start(R"(version: 1
resources:
  seen: { type: counter, initial: 5 }
nodes:
  src: { type: generate, count: 100, counter: seen }
  out: { type: null, inputs: [src] }
)");
  REQUIRE(f.drive(run));
  CHECK(run.report().status == "completed");
  auto seen = run.resource<counter_actor>("seen");
  CHECK(f.total(seen) == 105); // read after the run ended
  run.release();
  run.release(); // twice is fine
  f.sched.run();
  CHECK(f.total(seen) == -1); // stopped
  CHECK(contains(error_of([&] { run.resource<counter_actor>("seen"); }),
                 "resource 'seen' of this run was released"));
}

TEST_CASE("a run's own resources end when its last handle is gone") {
  fixture f;
  counter_actor seen;
  {
    auto run = f.start(R"(version: 1
resources:
  seen: { type: counter }
nodes:
  src: { type: generate, count: 10, counter: seen }
  out: { type: null, inputs: [src] }
)");
    REQUIRE(f.drive(run));
    seen = run.resource<counter_actor>("seen");
    CHECK(f.total(seen) == 10);
    CHECK(f.rt->running() == 0); // forgets the ended run: `run` is the last
  }
  f.sched.run();
  CHECK(f.total(seen) == -1);
}

TEST_CASE("a runtime resource is shared by two runs until released") {
  fixture f;
  f.rt->add_resource({"seen", "counter"});
  auto seen = f.rt->resource<counter_actor>("seen");
  // A graph built in code names it without declaring it ...
  auto first = f.rt->start(counted(30, "seen"));
  REQUIRE(f.drive(first));
  // ... a YAML graph declares it (same name and type) and uses the same one.
  auto second = f.start(R"(version: 1
resources:
  seen: { type: counter, initial: 1000 }
nodes:
  src: { type: generate, count: 12, counter: seen }
  out: { type: null, inputs: [src] }
)");
  REQUIRE(f.drive(second));
  CHECK(f.total(seen) == 42); // the graph's `initial` is the runtime's
  // A run's release leaves the runtime's resources alone.
  second.release();
  f.sched.run();
  CHECK(f.total(seen) == 42);
  CHECK(f.total(second.resource<counter_actor>("seen")) == 42);

  CHECK(f.rt->release_resource("seen"));
  CHECK_FALSE(f.rt->release_resource("seen"));
  f.sched.run();
  CHECK(f.total(seen) == -1);
  CHECK(contains(error_of([&] { f.rt->resource<counter_actor>("seen"); }),
                 "no resource 'seen'"));
  // Gone for later runs too: the slot names nothing now.
  CHECK(contains(error_of([&] { f.rt->start(counted(1, "seen")); }),
                 "refers to unknown resource 'seen'"));
}

TEST_CASE("resource<Handle> is typed: a wrong protocol or name is an error") {
  fixture f;
  f.rt->add_resource({"seen", "counter"});
  f.rt->add_resource({"sum", "tally"});
  CHECK(f.total(f.rt->resource<counter_actor>("seen")) == 0);
  CHECK(f.total(f.rt->resource<tally_actor>("sum")) == 0);
  CHECK(f.rt->resource<caf::actor>("sum")); // untyped: any protocol
  auto wrong = error_of([&] { f.rt->resource<tally_actor>("seen"); });
  CHECK(contains(wrong, "resource 'seen' is a counter and speaks protocol "
                        "'counter'"));
  auto unknown = error_of([&] { f.rt->resource<counter_actor>("nope"); });
  CHECK(contains(unknown, "no resource 'nope' (known: seen, sum)"));

  auto run = f.start(R"(version: 1
resources:
  mine: { type: counter }
nodes:
  src: { type: generate, count: 3, counter: mine }
  out: { type: null, inputs: [src] }
)");
  REQUIRE(f.drive(run));
  CHECK(contains(error_of([&] { run.resource<tally_actor>("mine"); }),
                 "resource 'mine' is a counter"));
  CHECK(contains(error_of([&] { run.resource<counter_actor>("sum"); }),
                 "no resource 'sum' (known: mine)")); // not used by this run
}

TEST_CASE("add_resource checks its spec like a graph's resources") {
  fixture f;
  CHECK(contains(error_of([&] { f.rt->add_resource({"x", "nope"}); }),
                 "resource 'x': unknown actor type 'nope'"));
  CHECK(contains(error_of([&] { f.rt->add_resource({"x", "map"}); }),
                 "'map' is a stage, not a service"));
  resource_spec bad{"x", "counter"};
  param_value text;
  text.type = param_type::string;
  text.text = "many";
  bad.params.set("initial", text);
  CHECK(contains(error_of([&] { f.rt->add_resource(bad); }),
                 "resource 'x': 'initial': expects an integer value, got a string"));
  f.rt->add_resource({"x", "counter"});
  CHECK(contains(error_of([&] { f.rt->add_resource({"x", "tally"}); }),
                 "resource 'x': the name is taken"));
  CHECK(contains(error_of([&] {
                   f.start(R"(version: 1
resources:
  x: { type: tally }
nodes:
  src: { type: generate, count: 3, tally: x }
  out: { type: null, inputs: [src] }
)");
                 }),
                 "the graph declares a tally, but the runtime's resource 'x' "
                 "is a counter"));
}

TEST_CASE("a custom service's slot hook gets what each node passes on") {
  fixture f;
  auto run = f.start(R"(version: 1
runtime: { batch_size: 16 }
resources:
  sum: { type: tally }
nodes:
  src:  { type: generate, count: 100, tally: sum }
  keep: { type: filter, regex: "[05]$", tally: sum, inputs: [src] }
  out:  { type: null, inputs: [keep] }
)");
  REQUIRE(f.drive(run));
  REQUIRE(run.report().status == "completed");
  // src passes on 100 records, keep the 20 whose number ends in 0 or 5.
  CHECK(f.log->records == 120);
  CHECK(f.log->events >= 100 / 16 + 1); // at least one event per batch
  CHECK(f.total(run.resource<tally_actor>("sum")) == 120);
}

TEST_CASE("a graph_run kept after its runtime is safe; resources ended") {
  graph_run run;
  counter_actor seen;
  {
    fixture f;
    f.rt->add_resource({"shared", "counter"});
    run = f.start(R"(version: 1
resources:
  mine: { type: counter }
nodes:
  src: { type: generate, count: 7, counter: mine }
  out: { type: null, inputs: [src] }
)");
    REQUIRE(f.drive(run));
    seen = run.resource<counter_actor>("mine");
  } // ~runtime stops both resources, or it would wait for them forever
  CHECK(run.report().status == "completed");
  run.release(); // nothing left to stop, and no actor system to stop it on
  CHECK(contains(error_of([&] { run.resource<counter_actor>("mine"); }),
                 "was released"));
}

TEST_CASE("~runtime on threads stops resources nobody released") {
  // Real threads: the actor system waits for every actor at its end, so a
  // resource left running would hang here (ctest's timeout fails it).
  auto reg = std::make_shared<registry>();
  register_builtins(*reg);
  graph_run run;
  {
    runtime rt{std::shared_ptr<const registry>(reg), runtime_options{2, false}};
    rt.add_resource({"shared", "counter"});
    auto g = counted(500, "shared");
    resource_spec mine{"mine", "counter"};
    g.resources.push_back(mine);
    g.nodes[1].resources["counter"] = "mine";
    run = rt.start(g);
    REQUIRE(run.wait_for(60s));
    CHECK(run.report().status == "completed");
    CHECK(run.resource<counter_actor>("mine"));
  }
  CHECK(contains(error_of([&] { run.resource<counter_actor>("mine"); }),
                 "was released"));
}
