// once (issue 8, part 5): one initialisation under 100 concurrent callers,
// later callers answered at once, a failed or timed-out initialisation retried
// by the next request, the YAML initialiser (a record function), and the C++
// initialiser refusing to be serialised. CAF's test coordinator: one thread,
// virtual time.
#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/send.hpp>

#include "graph_harness.hpp"
#include "troupe/actors/once.hpp"
#include "troupe/actors/type_ids.hpp"
#include "troupe/errors.hpp"
#include "troupe/type_ids.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

// What the callers got: values, errors.
struct answers {
  std::vector<std::string> values;
  std::vector<std::string> errors;
};

struct once_fixture {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  std::vector<caf::actor> owned;

  once_fixture() {
    cfg.set("scheduler.policy", caf::atom("testing"));
    troupe::add_message_types(cfg);
    troupe::actors::add_message_types(cfg);
    sys = std::make_unique<caf::actor_system>(cfg);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(sys->scheduler());
  }

  ~once_fixture() {
    for (auto& a : owned)
      caf::anon_send_exit(a, caf::exit_reason::kill);
    sched->run();
  }

  once_actor once(once_config c) {
    auto h = spawn_once(*sys, c);
    owned.push_back(caf::actor_cast<caf::actor>(h));
    sched->run();
    return h;
  }

  // A caller asking `get` (or do(init) when `init` is set); not run yet.
  void ask(const once_actor& o, answers* out,
           std::function<std::string()> init = {}) {
    sys->spawn([o, out, init](caf::event_based_actor* self, int) {
      auto ok = [out](const std::string& v) { out->values.push_back(v); };
      auto failed = [out](caf::error& e) { out->errors.push_back(render(e)); };
      if (init)
        self->request(o, 60s, once_do_atom_v, once_init{init})
          .then(ok, failed);
      else
        self->request(o, 60s, get_atom_v).then(ok, failed);
    }, 0);
  }

  once_stats stats(const once_actor& o) {
    auto out = std::make_shared<once_stats>();
    sys->spawn([o, out](caf::event_based_actor* self, int) {
      self->request(o, 1s, stats_atom_v).then([out](once_stats& s) {
        *out = s;
      });
    }, 0);
    sched->run();
    return *out;
  }
};

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

} // namespace

TEST_CASE("100 concurrent callers: one initialisation, one value for all") {
  once_fixture f;
  auto calls = std::make_shared<int>(0);
  once_config c;
  c.init = [calls] {
    ++*calls;
    return std::string{"connected"};
  };
  auto o = f.once(c);
  answers got;
  for (int i = 0; i < 100; ++i)
    f.ask(o, &got); // all ask before anything runs
  f.sched->run();
  CHECK(*calls == 1);
  REQUIRE(got.values.size() == 100);
  for (auto& v : got.values)
    CHECK(v == "connected");
  auto st = f.stats(o);
  CHECK(st.attempts == 1);
  CHECK(st.coalesced == 99); // waited for the first one's attempt
  CHECK(st.done);
  // Later callers: at once, no new initialisation.
  answers later;
  f.ask(o, &later);
  f.sched->run();
  CHECK(later.values == std::vector<std::string>{"connected"});
  CHECK(*calls == 1);
  CHECK(f.stats(o).immediate == 1);
}

TEST_CASE("a failed initialisation is retried by the next request") {
  once_fixture f;
  auto calls = std::make_shared<int>(0);
  once_config c;
  c.name = "db";
  c.init = [calls]() -> std::string {
    if (++*calls == 1)
      throw std::runtime_error("connection refused");
    return "session-2";
  };
  auto o = f.once(c);
  answers first;
  for (int i = 0; i < 3; ++i)
    f.ask(o, &first);
  f.sched->run();
  CHECK(first.values.empty());
  REQUIRE(first.errors.size() == 3); // every waiter of the failed attempt
  CHECK(contains(first.errors[0], "troupe.failed"));
  CHECK(contains(first.errors[0],
                 "once 'db': initialiser failed: connection refused"));
  answers second;
  f.ask(o, &second);
  f.ask(o, &second);
  f.sched->run();
  CHECK(second.values == std::vector<std::string>{"session-2", "session-2"});
  CHECK(*calls == 2);
  auto st = f.stats(o);
  CHECK(st.attempts == 2);
  CHECK(st.failures == 1);
  CHECK(st.done);
}

TEST_CASE("an initialisation slower than init_timeout fails its waiters") {
  once_fixture f;
  auto calls = std::make_shared<int>(0);
  once_config c;
  c.name = "slow";
  c.init_timeout = 5s;
  c.init = [calls] { return "v" + std::to_string(++*calls); };
  auto o = f.once(c);
  answers got;
  f.ask(o, &got);
  // Let the caller ask and the once start its helper, but not run it yet:
  // the helper's answer then comes after the deadline.
  REQUIRE(f.sched->try_run_once()); // the caller sends get
  REQUIRE(f.sched->try_run_once()); // the once spawns the helper, arms 5s
  f.sched->advance_time(5s);    // the deadline is queued first
  f.sched->run();
  REQUIRE(got.errors.size() == 1);
  CHECK(contains(got.errors[0], "troupe.timeout"));
  CHECK(contains(got.errors[0], "once 'slow': initialiser took longer than "
                                "5s (init_timeout)"));
  CHECK(*calls == 1); // it ran; its late answer was ignored
  auto st = f.stats(o);
  CHECK(st.timeouts == 1);
  CHECK_FALSE(st.done);
  // The next request starts a new attempt.
  f.ask(o, &got);
  f.sched->run();
  CHECK(got.values == std::vector<std::string>{"v2"});
}

TEST_CASE("do(init): the first caller's initialiser runs, once") {
  once_fixture f;
  auto o = f.once(once_config{});
  answers got;
  f.ask(o, &got); // no initialiser configured: refused
  f.sched->run();
  REQUIRE(got.errors.size() == 1);
  CHECK(contains(got.errors[0], "has no initialiser"));
  f.ask(o, &got, [] { return std::string{"first"}; });
  f.ask(o, &got, [] { return std::string{"second"}; });
  f.sched->run();
  CHECK(got.values == std::vector<std::string>{"first", "first"});
  f.ask(o, &got); // get works now
  f.sched->run();
  CHECK(got.values.size() == 3);
  CHECK(got.values.back() == "first");
}

TEST_CASE("a once_init cannot be serialised: it is local only") {
  once_fixture f;
  once_init init{[] { return std::string{"x"}; }};
  std::vector<char> buf;
  caf::binary_serializer sink{*f.sys, buf};
  auto err = sink(init);
  REQUIRE(err);
  CHECK(contains(render(err), "local only"));
  std::vector<char> bytes{0, 0, 0, 0};
  caf::binary_deserializer source{*f.sys, bytes};
  once_init back;
  err = source(back);
  REQUIRE(err);
  CHECK(contains(render(err), "cannot be serialised"));
}

TEST_CASE("spawn_once refuses a non-positive init_timeout") {
  once_fixture f;
  once_config c;
  c.init_timeout = duration{0};
  CHECK_THROWS_AS(spawn_once(*f.sys, c), std::invalid_argument);
}

TEST_CASE("a YAML once applies its record function to its value") {
  troupe_test::harness h;
  auto run = h.start(R"(version: 1
resources:
  digest: { type: once, fn: sha256, value: "abc" }
nodes:
  src: { type: generate, count: 1 }
  out: { type: collect, inputs: [src] }
)");
  REQUIRE(h.drive(run));
  auto o = run.resource<once_actor>("digest");
  auto got = std::make_shared<std::string>();
  h.rt->system().spawn([o, got](caf::event_based_actor* self, int) {
    self->request(o, 1s, get_atom_v).then([got](const std::string& v) {
      *got = v;
    });
  }, 0);
  h.sched->run();
  CHECK(*got
        == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("a YAML once naming no record function is a located error") {
  troupe_test::harness h;
  auto res = load_graph_text(R"(version: 1
resources:
  digest: { type: once, fn: sha265, value: "abc" }
nodes:
  src: { type: generate, count: 1 }
  out: { type: collect, inputs: [src] }
)",
                             "t.yaml", h.reg);
  REQUIRE_FALSE(res.ok());
  CHECK(contains(res.errors[0].str(), "t.yaml:3:"));
  CHECK(contains(res.errors[0].str(), "sha265"));
}
