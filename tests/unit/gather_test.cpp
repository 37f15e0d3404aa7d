// gather (all, all_settled) and race (first success wins) from inside an
// actor, by typed handle, under a deadline (issue 8, part 5). The callees
// answer after a delay in virtual time on CAF's test coordinator.
#include <doctest/doctest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include "troupe/actors/gather.hpp"
#include "troupe/actors/race.hpp"
#include "troupe/call_context.hpp"
#include "troupe/registry.hpp"
#include "troupe/runtime.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

// A callee: get -> its value after `delay` (or its error), and, if it speaks
// it, cancel(request_id) stops the work (answered with errc::cancelled).
using slow_actor
  = caf::typed_actor<caf::replies_to<get_atom>::with<int64_t>,
                     caf::reacts_to<wake_atom, uint64_t>,
                     caf::reacts_to<cancel_atom, uint64_t>>;

struct callee_log {
  size_t cancels = 0;       // cancel messages that named its request
  size_t foreign = 0;       // cancel messages for another request
};

struct slow_state {
  static inline const char* name = "test.slow";
  struct pending {
    uint64_t request_id;
    std::optional<caf::typed_response_promise<int64_t>> rp;
  };
  std::vector<pending> requests; // by arrival; answered ones keep no promise
};

slow_actor::behavior_type slow_fn(slow_actor::stateful_pointer<slow_state> self,
                                  duration delay, int64_t value, bool fail,
                                  std::shared_ptr<callee_log> log) {
  return {
    [=](get_atom) {
      auto rp = self->make_response_promise<int64_t>();
      auto& rs = self->state.requests;
      rs.push_back(
        {self->current_message_id().request_id().integer_value(), rp});
      self->delayed_send(self, delay, wake_atom_v, uint64_t{rs.size() - 1});
      return rp;
    },
    [=](wake_atom, uint64_t i) {
      auto& rp = self->state.requests.at(i).rp;
      if (!rp)
        return; // cancelled
      if (fail)
        rp->deliver(make_error(errc::failed, "callee failed"));
      else
        rp->deliver(value);
      rp.reset();
    },
    [=](cancel_atom, uint64_t id) {
      for (auto& r : self->state.requests)
        if (r.request_id == id && r.rp) {
          ++log->cancels;
          r.rp->deliver(make_error(errc::cancelled, "cancelled"));
          r.rp.reset();
          return;
        }
      ++log->foreign;
    },
  };
}

struct fixture {
  registry reg = [] {
    registry r;
    register_builtins(r);
    return r;
  }();
  runtime rt{reg, runtime_options{1, true}};
  caf::scheduler::test_coordinator& sched
    = dynamic_cast<caf::scheduler::test_coordinator&>(rt.system().scheduler());
  std::vector<slow_actor> callees;
  std::vector<std::shared_ptr<callee_log>> logs;

  ~fixture() {
    for (auto& c : callees)
      caf::anon_send_exit(c, caf::exit_reason::user_shutdown);
    sched.run();
  }

  slow_actor callee(duration delay, int64_t value, bool fail = false) {
    logs.push_back(std::make_shared<callee_log>());
    callees.push_back(rt.system().spawn(slow_fn, delay, value, fail, logs.back()));
    return callees.back();
  }

  void advance(duration d) {
    sched.advance_time(std::chrono::duration_cast<caf::timespan>(d));
    sched.run();
  }

  // Runs `f(self)` inside a fresh actor.
  template <class F>
  void inside(F f) {
    rt.system().spawn([f](caf::event_based_actor* self, int) { f(self); }, 0);
    sched.run();
  }
};

std::string status_of(const caf::error& e) {
  return to_string(classify(e));
}

} // namespace

TEST_CASE("gather_all: results in request order, whatever order they come in") {
  fixture f;
  auto a = f.callee(30ms, 1);
  auto b = f.callee(10ms, 2);
  auto c = f.callee(20ms, 3);
  std::optional<std::vector<int64_t>> got;
  size_t calls = 0;
  f.inside([&](caf::event_based_actor* self) {
    gather_all<int64_t>(
      self, {make_ask(a, get_atom_v), make_ask(b, get_atom_v), make_ask(c, get_atom_v)},
      1s,
      [&](std::vector<int64_t>& v) {
        got = v;
        ++calls;
      },
      [&](size_t, const caf::error&) { ++calls; });
  });
  f.advance(20ms);
  CHECK_FALSE(got); // b and c answered, a not yet
  f.advance(10ms);
  REQUIRE(got);
  CHECK(*got == std::vector<int64_t>{1, 2, 3});
  f.advance(1s);
  CHECK(calls == 1);
}

TEST_CASE("gather_all: fails fast on the first error, once") {
  fixture f;
  auto a = f.callee(50ms, 1);
  auto b = f.callee(10ms, 2, /*fail*/ true);
  auto c = f.callee(100ms, 3);
  std::optional<size_t> failed_at;
  std::string why;
  size_t done = 0, failures = 0;
  f.inside([&](caf::event_based_actor* self) {
    gather_all<int64_t>(
      self, {make_ask(a, get_atom_v), make_ask(b, get_atom_v), make_ask(c, get_atom_v)},
      1s, [&](std::vector<int64_t>&) { ++done; },
      [&](size_t i, const caf::error& e) {
        ++failures;
        failed_at = i;
        why = status_of(e);
      });
  });
  f.advance(10ms); // at the first failure, not when all answered
  REQUIRE(failed_at);
  CHECK(*failed_at == 1);
  CHECK(why == "failed");
  f.advance(1s);
  CHECK(done == 0);
  CHECK(failures == 1);
}

TEST_CASE("gather_settled: one outcome per request; late ones time out") {
  fixture f;
  auto a = f.callee(10ms, 1);
  auto b = f.callee(20ms, 2, /*fail*/ true);
  auto c = f.callee(500ms, 3); // past the deadline
  std::optional<std::vector<settled<int64_t>>> got;
  f.inside([&](caf::event_based_actor* self) {
    gather_settled<int64_t>(
      self, {make_ask(a, get_atom_v), make_ask(b, get_atom_v), make_ask(c, get_atom_v)},
      100ms, [&](std::vector<settled<int64_t>>& v) { got = std::move(v); });
  });
  f.advance(99ms);
  CHECK_FALSE(got); // waits for c until the deadline
  f.advance(1ms);
  REQUIRE(got);
  REQUIRE(got->size() == 3);
  CHECK((*got)[0].ok());
  CHECK((*got)[0].value() == 1);
  CHECK_FALSE((*got)[1].ok());
  CHECK(status_of((*got)[1].error()) == "failed");
  CHECK_FALSE((*got)[2].ok());
  CHECK(status_of((*got)[2].error()) == "timeout");
  CHECK(render((*got)[2].error()).find("request 2") != std::string::npos);
}

TEST_CASE("gather: an empty request list finishes at once") {
  fixture f;
  bool all = false, settled_done = false;
  f.inside([&](caf::event_based_actor* self) {
    gather_all<int64_t>(self, {}, 1s, [&](std::vector<int64_t>& v) { all = v.empty(); },
                        [](size_t, const caf::error&) {});
    gather_settled<int64_t>(self, {}, 1s,
                            [&](std::vector<settled<int64_t>>& v) {
                              settled_done = v.empty();
                            });
  });
  CHECK(all);
  CHECK(settled_done);
}

TEST_CASE("race: the first success wins, losers are cancelled or ignored") {
  fixture f;
  auto slow_plain = f.callee(30ms, 1);     // no cancel: its late reply is ignored
  auto failing = f.callee(10ms, 2, true);  // fails before anyone wins
  auto winner = f.callee(20ms, 3);
  auto slow_cancel = f.callee(50ms, 4);    // speaks cancel
  std::optional<int64_t> value;
  std::optional<size_t> who;
  size_t decided = 0;
  std::shared_ptr<race_stats> stats;
  f.inside([&](caf::event_based_actor* self) {
    auto cancellable = make_ask(slow_cancel, get_atom_v);
    cancellable.cancellable = true;
    stats = race<int64_t>(
      self,
      {make_ask(slow_plain, get_atom_v), make_ask(failing, get_atom_v),
       make_ask(winner, get_atom_v), cancellable},
      1s,
      [&](int64_t& v, size_t i) {
        value = v;
        who = i;
        ++decided;
      },
      [&](std::vector<caf::error>&) { ++decided; });
  });
  f.advance(20ms);
  REQUIRE(value);
  CHECK(*value == 3);
  CHECK(*who == 2);
  f.sched.run();
  CHECK(f.logs[3]->cancels == 1); // the cancellable loser stopped its work
  CHECK(f.logs[3]->foreign == 0);
  CHECK(f.logs[0]->cancels + f.logs[0]->foreign == 0); // never told
  f.advance(1s);
  CHECK(decided == 1);
  CHECK(stats->won);
  CHECK(stats->winner == 2);
  CHECK(stats->cancelled == 1);
  CHECK(stats->late == 2); // slow_plain's value and slow_cancel's cancelled
}

TEST_CASE("race: when all fail, every error comes back") {
  fixture f;
  auto a = f.callee(10ms, 1, true);
  auto b = f.callee(5s, 2); // beyond the deadline
  std::optional<std::vector<caf::error>> errors;
  bool won = false;
  f.inside([&](caf::event_based_actor* self) {
    race<int64_t>(
      self, {make_ask(a, get_atom_v), make_ask(b, get_atom_v)}, 200ms,
      [&](int64_t&, size_t) { won = true; },
      [&](std::vector<caf::error>& errs) { errors = errs; });
  });
  f.advance(199ms);
  CHECK_FALSE(errors);
  f.advance(1ms);
  REQUIRE(errors);
  CHECK_FALSE(won);
  REQUIRE(errors->size() == 2);
  CHECK(status_of((*errors)[0]) == "failed");
  CHECK(status_of((*errors)[1]) == "timeout");
}

namespace {

// A typed service that answers get with the sum of its backends' values,
// gathered without blocking and delivered through a response promise.
using sum_actor = caf::typed_actor<caf::replies_to<get_atom>::with<int64_t>>;

sum_actor::behavior_type sum_fn(sum_actor::pointer self,
                                std::vector<slow_actor> backends) {
  return {
    [=](get_atom) {
      auto rp = self->make_response_promise<int64_t>();
      std::vector<ask_item> items;
      for (auto& b : backends)
        items.push_back(make_ask(b, get_atom_v));
      gather_all<int64_t>(
        self, std::move(items), std::chrono::milliseconds(500),
        [rp](std::vector<int64_t>& vs) mutable {
          int64_t sum = 0;
          for (auto v : vs)
            sum += v;
          rp.deliver(sum);
        },
        [rp](size_t, const caf::error& e) mutable { rp.deliver(e); });
      return rp;
    },
  };
}

} // namespace

TEST_CASE("gather from a typed actor: the answer goes out through a promise, "
          "and the actor keeps serving meanwhile") {
  fixture f;
  auto sum = f.rt.system().spawn(
    sum_fn, std::vector<slow_actor>{f.callee(10ms, 1), f.callee(30ms, 2),
                                    f.callee(20ms, 4)});
  std::vector<int64_t> answers;
  for (int i = 0; i < 2; ++i) // two callers at once: neither waits for the other
    f.inside([&](caf::event_based_actor* self) {
      self->request(sum, std::chrono::seconds(1), get_atom_v)
        .then([&](int64_t v) { answers.push_back(v); }, [](caf::error&) {});
    });
  f.advance(20ms);
  CHECK(answers.empty());
  f.advance(10ms);
  CHECK(answers == std::vector<int64_t>{7, 7});
  caf::anon_send_exit(sum, caf::exit_reason::user_shutdown);
}
