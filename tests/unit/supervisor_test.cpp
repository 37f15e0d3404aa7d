// The embeddable supervisor, on CAF's test coordinator.
#include <doctest/doctest.h>

#include <string>

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include "supervisor_fixture.hpp"
#include "troupe/errors.hpp"
#include "troupe/supervisor.hpp"

using namespace troupe;
using namespace std::chrono_literals;
using troupe_test::no_args;

namespace {

struct fixture : troupe_test::supervisor_fixture {
  supervisor_config config(strategy s, uint32_t intensity = 5) {
    supervisor_config c;
    c.policy.strategy = s;
    c.policy.intensity = intensity;
    c.policy.period = 1min;
    c.policy.backoff = {10ms, 100ms, 0};
    c.children = {child("a"), child("b"), child("c")};
    return c;
  }
};

} // namespace

TEST_CASE("supervisor strategies: which children get new identities") {
  struct expectation {
    strategy s;
    bool a, b, c; // restarted?
  };
  for (auto e : {expectation{strategy::one_for_one, false, true, false},
                 expectation{strategy::one_for_all, true, true, true},
                 expectation{strategy::rest_for_one, false, true, true}}) {
    CAPTURE(to_string(e.s));
    fixture f;
    auto sup = spawn_supervisor(*f.sys, f.config(e.s));
    f.sched->run();
    auto a = f.get(sup, "a"), b = f.get(sup, "b"), c = f.get(sup, "c");
    REQUIRE(b);
    caf::anon_send(b, std::string{"crash"});
    f.settle();
    CHECK((f.get(sup, "a") != a) == e.a);
    CHECK((f.get(sup, "b") != b) == e.b);
    CHECK((f.get(sup, "c") != c) == e.c);
    CHECK(f.get(sup, "b")); // running again
    caf::anon_send(sup, stop_atom_v);
    f.settle();
  }
}

TEST_CASE("stop ends the children in reverse start order") {
  fixture f;
  auto sup = spawn_supervisor(*f.sys, f.config(strategy::one_for_one));
  f.sched->run();
  caf::anon_send(sup, stop_atom_v);
  f.settle();
  CHECK(f.stopped == std::vector<std::string>{"c", "b", "a"});
}

TEST_CASE("one_for_all stops the others in reverse order before restarting") {
  fixture f;
  auto sup = spawn_supervisor(*f.sys, f.config(strategy::one_for_all));
  f.sched->run();
  caf::anon_send(f.get(sup, "a"), std::string{"crash"});
  f.settle();
  CHECK(f.stopped == std::vector<std::string>{"a", "c", "b"});
  CHECK(f.starts["a"] == 2);
  CHECK(f.starts["b"] == 2);
  CHECK(f.starts["c"] == 2);
  caf::anon_send(sup, stop_atom_v);
  f.settle();
}

TEST_CASE("beyond the budget the supervisor stops all and exits") {
  fixture f;
  auto sup = spawn_supervisor(*f.sys, f.config(strategy::one_for_one, 2));
  caf::error exit_reason;
  bool down = false;
  // Pointers, not references: the init closure dies after the first run.
  auto* downp = &down;
  auto* reasonp = &exit_reason;
  // Keep the handle: an actor nobody references ends as unreachable.
  auto observer = f.sys->spawn([downp, reasonp, sup](caf::event_based_actor* self, int) {
    self->monitor(sup);
    self->set_down_handler([downp, reasonp](caf::down_msg& dm) {
      *downp = true;
      *reasonp = dm.reason;
    });
    return caf::behavior{[](int) {}};
  }, no_args);
  f.sched->run();
  for (int i = 0; i < 3; ++i) {
    caf::anon_send(f.get(sup, "b"), std::string{"crash"});
    f.settle();
  }
  REQUIRE(down);
  CHECK(render(exit_reason).find("restart_budget") != std::string::npos);
  // b's third crash was one too many: the others were stopped, c first.
  std::vector<std::string> tail(f.stopped.end() - 2, f.stopped.end());
  CHECK(tail == std::vector<std::string>{"c", "a"});
}

TEST_CASE("a nested supervisor escalates to its parent, which restarts it") {
  fixture f;
  supervisor_config inner;
  inner.policy.intensity = 0; // any failure escalates
  inner.children = {f.child("x")};
  supervisor_config outer;
  outer.policy.intensity = 5;
  outer.policy.period = 1min;
  outer.policy.backoff = {10ms, 100ms, 0};
  outer.children = {supervisor_child("inner", inner), f.child("y")};
  auto sup = spawn_supervisor(*f.sys, outer);
  f.sched->run();
  auto inner_sup = caf::actor_cast<supervisor_actor>(f.get(sup, "inner"));
  REQUIRE(inner_sup);
  auto y = f.get(sup, "y");
  caf::anon_send(f.get(inner_sup, "x"), std::string{"crash"});
  f.settle();
  auto inner_again = caf::actor_cast<supervisor_actor>(f.get(sup, "inner"));
  CHECK(inner_again);
  CHECK(inner_again != inner_sup); // the inner tree got a new identity
  CHECK(f.starts["x"] == 2);
  CHECK(f.get(sup, "y") == y); // one_for_one at the top: y untouched
  caf::anon_send(sup, stop_atom_v);
  f.settle();
}

TEST_CASE("temporary children are not restarted; transient ones are") {
  fixture f;
  supervisor_config c;
  c.policy.backoff = {10ms, 100ms, 0};
  c.children = {f.child("temp", restart_type::temporary),
                f.child("trans", restart_type::transient)};
  auto sup = spawn_supervisor(*f.sys, c);
  f.sched->run();
  caf::anon_send(f.get(sup, "temp"), std::string{"crash"});
  caf::anon_send(f.get(sup, "trans"), std::string{"crash"});
  f.settle();
  CHECK_FALSE(f.get(sup, "temp"));
  CHECK(f.get(sup, "trans"));
  CHECK(f.starts["temp"] == 1);
  CHECK(f.starts["trans"] == 2);
  caf::anon_send(sup, stop_atom_v);
  f.settle();
}
