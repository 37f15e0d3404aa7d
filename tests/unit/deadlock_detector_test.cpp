// The deadlock detector actor on CAF's test coordinator (virtual time):
// request cycles through troupe::ask, found within two probe intervals and
// resolved by policy; self-waits, dead holders, and no report for a slow
// chain that progresses.
#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/send.hpp>

#include "troupe/ask.hpp"
#include "troupe/deadlock.hpp"
#include "troupe/deadlock_detector.hpp"
#include "troupe/errors.hpp"
#include "troupe/registry.hpp"
#include "troupe/runtime.hpp"
#include "troupe/supervisor.hpp"

using namespace std::chrono_literals;

namespace {

constexpr auto interval = std::chrono::milliseconds(100);

// A runtime on the test coordinator with a detector probing every 100 ms.
struct detector_fixture {
  std::unique_ptr<troupe::runtime> rt;
  caf::scheduler::test_coordinator* sched = nullptr;
  std::shared_ptr<std::vector<troupe::deadlock_notice>> notices
    = std::make_shared<std::vector<troupe::deadlock_notice>>();

  // Actors a test spawned that must be stopped before ~runtime (a ring's
  // members hold each other).
  std::vector<caf::actor> owned;

  ~detector_fixture() {
    for (auto& a : owned)
      caf::anon_send_exit(a, caf::exit_reason::kill);
    owned.clear();
    sched->run();
    // An actor in .await ignores even a kill until its reply or timeout:
    // let every request time out.
    sched->advance_time(std::chrono::seconds(120));
    sched->run();
  }

  explicit detector_fixture(troupe::deadlock_policy policy) {
    troupe::runtime_options opts;
    opts.deterministic = true;
    opts.deadlock.probe_interval = interval;
    opts.deadlock.policy = policy;
    rt = std::make_unique<troupe::runtime>(troupe::registry{}, opts);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(
      rt->system().scheduler());
    auto sink = notices;
    auto listener = rt->system().spawn(
      [sink](caf::event_based_actor*) -> caf::behavior {
        return {[sink](troupe::deadlock_atom, troupe::deadlock_notice& n) {
          sink->push_back(std::move(n));
        }};
      });
    caf::anon_send(rt->deadlock_detector(), troupe::subscribe_atom_v,
                   listener);
    owned.push_back(listener);
    sched->run();
  }

  caf::actor_system& sys() {
    return rt->system();
  }

  // Lets `d` of virtual time pass in steps of 10 ms, running what wakes.
  void advance(troupe::duration d) {
    for (auto left = d; left > troupe::duration{0}; left -= 10ms) {
      sched->advance_time(10ms);
      sched->run();
    }
  }

  troupe::deadlock_stats stats() {
    auto out = std::make_shared<troupe::deadlock_stats>();
    auto det = rt->deadlock_detector();
    sys().spawn([det, out](caf::event_based_actor* self) {
      troupe::ask(self, det, std::chrono::seconds(1),
                  troupe::deadlock_stats_atom_v)
        .then([out](troupe::deadlock_stats& s) { *out = s; },
              [](caf::error&) {});
    });
    sched->run();
    return *out;
  }
};

// A member of a ring: get(n) answers 0 when n is 0, else asks the next
// member get(n - 1) and waits for it with .await (the classic way to
// deadlock a CAF actor), answering its value plus one. get(3) on a ring of
// three comes back to the first member while it waits: a cycle.
caf::behavior ring_member(caf::event_based_actor* self,
                          std::shared_ptr<std::vector<caf::actor>> ring,
                          size_t me) {
  return {
    [=](troupe::get_atom, int64_t n) -> caf::result<int64_t> {
      if (n == 0)
        return int64_t{0};
      auto rp = self->make_response_promise<int64_t>();
      auto next = (*ring)[(me + 1) % ring->size()];
      troupe::ask(self, next, std::chrono::seconds(30), troupe::get_atom_v,
                  n - 1)
        .await([rp](int64_t v) mutable { rp.deliver(v + 1); },
               [rp](caf::error& e) mutable { rp.deliver(std::move(e)); });
      return rp;
    },
  };
}

// What a client saw: the value, or the error's text.
struct outcome {
  bool done = false;
  int64_t value = 0;
  std::string error;
};

std::shared_ptr<outcome> ask_from_client(caf::actor_system& sys,
                                         caf::actor to, int64_t n) {
  auto out = std::make_shared<outcome>();
  sys.spawn([to, out, n](caf::event_based_actor* self) {
    troupe::ask(self, to, std::chrono::seconds(60), troupe::get_atom_v, n)
      .then(
        [out](int64_t v) {
          out->done = true;
          out->value = v;
        },
        [out](caf::error& e) {
          out->done = true;
          out->error = troupe::render(e);
        });
  });
  return out;
}

} // namespace

TEST_CASE("detector: a 3-actor request cycle is reported with names and "
          "types, and failed") {
  detector_fixture f{troupe::deadlock_policy::fail};
  auto ring = std::make_shared<std::vector<caf::actor>>();
  for (size_t i = 0; i < 3; ++i)
    ring->push_back(f.sys().spawn(ring_member, ring, i));
  f.owned.insert(f.owned.end(), ring->begin(), ring->end());
  const char* names[] = {"a", "b", "c"};
  for (size_t i = 0; i < 3; ++i)
    troupe::deadlock::name_actor(
      f.sys(), caf::actor_cast<caf::abstract_actor*>((*ring)[i])->ctrl(),
      names[i], false);
  auto out = ask_from_client(f.sys(), (*ring)[0], 3);
  f.sched->run();
  CHECK_FALSE(out->done);
  CHECK(f.notices->empty());
  // Formed at t0; the first probe at t0 + 1 interval sees it.
  f.advance(interval);
  REQUIRE(f.notices->size() == 1);
  auto& n = f.notices->front();
  CHECK(n.kind == "cycle");
  CHECK(n.members == std::vector<std::string>{"a", "b", "c"});
  CHECK(n.message_types == std::vector<std::string>{"get", "get", "get"});
  CHECK(n.text == "cycle a →(get) b →(get) c →(get) a");
  CHECK(n.resolution == "failed 3 requests");
  // The client sees the deadlock, not a timeout after 30 s.
  REQUIRE(out->done);
  CHECK(out->error.find("deadlock") != std::string::npos);
  auto s = f.stats();
  CHECK(s.cycles == 1);
  CHECK(s.failed_requests == 3);
  // The members are free again: nothing more is reported.
  f.advance(5 * interval);
  CHECK(f.notices->size() == 1);
}

TEST_CASE("detector: policy report leaves the requests waiting") {
  detector_fixture f{troupe::deadlock_policy::report};
  auto ring = std::make_shared<std::vector<caf::actor>>();
  for (size_t i = 0; i < 2; ++i)
    ring->push_back(f.sys().spawn(ring_member, ring, i));
  f.owned.insert(f.owned.end(), ring->begin(), ring->end());
  auto out = ask_from_client(f.sys(), (*ring)[0], 2);
  f.sched->run();
  f.advance(3 * interval);
  REQUIRE(f.notices->size() == 1);
  CHECK(f.notices->front().resolution == "reported");
  CHECK(f.notices->front().members.size() == 2);
  CHECK(f.notices->front().members[0].rfind("#", 0) == 0); // unnamed: #id
  CHECK_FALSE(out->done);
  // Reported once while it stands.
  f.advance(10 * interval);
  CHECK(f.notices->size() == 1);
}

TEST_CASE("detector: tracked_mutex reports reach its subscribers") {
  detector_fixture f{troupe::deadlock_policy::fail};
  troupe::deadlock::tracked_mutex first{"ledger"}, second{"journal"};
  {
    std::lock_guard<troupe::deadlock::tracked_mutex> a{first};
    std::lock_guard<troupe::deadlock::tracked_mutex> b{second};
  }
  f.sched->run();
  CHECK(f.notices->empty());
  {
    std::lock_guard<troupe::deadlock::tracked_mutex> b{second};
    std::lock_guard<troupe::deadlock::tracked_mutex> a{first}; // inverted
  }
  f.sched->run();
  REQUIRE(f.notices->size() == 1);
  CHECK(f.notices->front().kind == "lock_inversion");
  CHECK(f.notices->front().members
        == std::vector<std::string>{"ledger", "journal"});
  CHECK(f.notices->front().text.find("lock order inversion")
        != std::string::npos);
  CHECK(f.stats().lock_reports == 1);
}
