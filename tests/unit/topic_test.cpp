// The topic service (CopyOnWriteList publish/subscribe) and the topic sink
// (issue 8, part 5): a publish goes to the subscribers of its moment, dead
// subscribers are dropped, a slow subscriber is bounded by credit (drops
// counted, a finite delivery timeout). On CAF's test coordinator.
#include <doctest/doctest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/response_promise.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/send.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "troupe/actors/topic.hpp"
#include "troupe/loader.hpp"
#include "troupe/registry.hpp"
#include "troupe/runtime.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

struct sub_log {
  std::vector<std::string> bodies;
  size_t batches = 0;
  std::string topic;
};

// Answers every delivery at once.
topic_subscriber_actor::behavior_type
fast_sub(topic_subscriber_actor::pointer, std::shared_ptr<sub_log> log) {
  return {
    [log](topic_deliver_atom, const std::string& topic, const record_batch& b) {
      ++log->batches;
      log->topic = topic;
      for (auto& r : b.records())
        log->bodies.push_back(r.body);
    },
  };
}

// Takes deliveries and never answers them (a subscriber stuck in work).
caf::behavior stuck_sub(caf::event_based_actor* self,
                        std::shared_ptr<sub_log> log) {
  auto held = std::make_shared<std::vector<caf::response_promise>>();
  return {
    [=](topic_deliver_atom, const std::string&, const record_batch&) {
      ++log->batches;
      held->push_back(self->make_response_promise());
    },
  };
}

record_batch batch_of(std::vector<std::string> bodies) {
  std::vector<record> rs;
  for (auto& b : bodies) {
    record r;
    r.body = b;
    rs.push_back(std::move(r));
  }
  return record_batch{std::move(rs)};
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
  std::vector<caf::actor> spawned;

  ~fixture() {
    for (auto& a : spawned)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    sched.run();
  }

  topic_actor make(uint64_t max_pending, duration deliver_timeout = 1s) {
    topic_config cfg;
    cfg.name = "news";
    cfg.max_pending = max_pending;
    cfg.deliver_timeout = deliver_timeout;
    auto t = spawn_topic(rt.system(), cfg);
    spawned.push_back(caf::actor_cast<caf::actor>(t));
    return t;
  }

  topic_subscriber_actor fast(std::shared_ptr<sub_log> log) {
    auto s = rt.system().spawn(fast_sub, log);
    spawned.push_back(caf::actor_cast<caf::actor>(s));
    return s;
  }

  topic_subscriber_actor stuck(std::shared_ptr<sub_log> log) {
    auto s = rt.system().spawn(stuck_sub, log);
    spawned.push_back(s);
    return caf::actor_cast<topic_subscriber_actor>(s);
  }

  // Sends one request now; the reply lands in *out when the scheduler runs.
  template <class... Ts>
  std::shared_ptr<std::optional<uint64_t>> ask(const topic_actor& t, Ts... xs) {
    auto out = std::make_shared<std::optional<uint64_t>>();
    rt.system().spawn(
      [out, t](caf::event_based_actor* self, Ts... ys) {
        self->request(t, std::chrono::seconds(30), ys...)
          .then([out](uint64_t n) { *out = n; }, [](caf::error&) {});
      },
      xs...);
    return out;
  }

  topic_stats stats(const topic_actor& t) {
    auto out = std::make_shared<topic_stats>();
    rt.system().spawn(
      [out, t](caf::event_based_actor* self, int) {
        self->request(t, std::chrono::seconds(30), stats_atom_v)
          .then([out](topic_stats& s) { *out = s; }, [](caf::error&) {});
      },
      0);
    sched.run();
    return *out;
  }
};

} // namespace

TEST_CASE("topic: a publish reaches the subscribers of its moment") {
  fixture f;
  auto t = f.make(16);
  auto a_log = std::make_shared<sub_log>();
  auto b_log = std::make_shared<sub_log>();
  auto a = f.fast(a_log);
  auto b = f.fast(b_log);
  auto n = f.ask(t, topic_subscribe_atom_v, a);
  f.sched.run();
  n = f.ask(t, topic_subscribe_atom_v, a); // twice: still one subscription
  f.sched.run();
  CHECK(**n == 1);
  // Publish, then b joins and a leaves, all queued before the topic runs:
  // the publish goes to {a} (its moment), the next one to {b}.
  auto first = f.ask(t, topic_publish_atom_v, batch_of({"one", "two"}));
  auto joined = f.ask(t, topic_subscribe_atom_v, b);
  auto left = f.ask(t, topic_unsubscribe_atom_v, a);
  auto second = f.ask(t, topic_publish_atom_v, batch_of({"three"}));
  f.sched.run();
  CHECK(**first == 1);
  CHECK(**joined == 2);
  CHECK(**left == 1);
  CHECK(**second == 1);
  CHECK(a_log->bodies == std::vector<std::string>{"one", "two"});
  CHECK(b_log->bodies == std::vector<std::string>{"three"});
  CHECK(a_log->topic == "news");
  auto s = f.stats(t);
  CHECK(s.published == 2);
  CHECK(s.delivered == 2);
  CHECK(s.subscribers == 1);
}

TEST_CASE("topic: dead subscribers are dropped through monitors") {
  fixture f;
  auto t = f.make(16);
  auto log = std::make_shared<sub_log>();
  auto a = f.fast(log);
  auto b = f.fast(std::make_shared<sub_log>());
  f.ask(t, topic_subscribe_atom_v, a);
  f.ask(t, topic_subscribe_atom_v, b);
  f.sched.run();
  caf::anon_send_exit(a, caf::exit_reason::kill);
  f.sched.run();
  auto s = f.stats(t);
  CHECK(s.subscribers == 1);
  CHECK(s.removed_dead == 1);
  auto n = f.ask(t, topic_publish_atom_v, batch_of({"x"}));
  f.sched.run();
  CHECK(**n == 1);
}

TEST_CASE("topic: a slow subscriber is bounded by credit, drops counted") {
  fixture f;
  auto t = f.make(/*max_pending*/ 2, /*deliver_timeout*/ 1s);
  auto slow_log = std::make_shared<sub_log>();
  auto fast_log = std::make_shared<sub_log>();
  f.ask(t, topic_subscribe_atom_v, f.stuck(slow_log));
  f.ask(t, topic_subscribe_atom_v, f.fast(fast_log));
  f.sched.run();
  std::vector<std::shared_ptr<std::optional<uint64_t>>> replies;
  for (int i = 0; i < 5; ++i) {
    replies.push_back(
      f.ask(t, topic_publish_atom_v, batch_of({"m" + std::to_string(i)})));
    f.sched.run();
  }
  CHECK(fast_log->batches == 5); // the fast one misses nothing
  CHECK(slow_log->batches == 2); // the stuck one holds 2: no more are sent
  CHECK(**replies[0] == 2);
  CHECK(**replies[4] == 1);
  auto s = f.stats(t);
  CHECK(s.dropped == 3);
  CHECK(s.delivered == 7);
  // Its deliveries time out (finite), and its credit comes back.
  f.sched.advance_time(1s);
  f.sched.run();
  s = f.stats(t);
  CHECK(s.timed_out == 2);
  auto again = f.ask(t, topic_publish_atom_v, batch_of({"later"}));
  f.sched.run();
  CHECK(**again == 2);
  CHECK(slow_log->batches == 3);
}

TEST_CASE("topic sink: a graph publishes its records to subscribers") {
  fixture f;
  auto loaded = load_graph_text(R"(version: 1
resources:
  events: { type: topic }
nodes:
  gen: { type: generate, count: 500, template: "e{i}" }
  pub: { type: topic, topic: events, inputs: [gen] }
)",
                                "t.yaml", f.reg);
  REQUIRE(loaded.ok());
  auto run = f.rt.start(*loaded.graph);
  auto events = run.resource<topic_actor>("events");
  auto log = std::make_shared<sub_log>();
  // Subscribed before anything runs: it sees every publish.
  f.ask(events, topic_subscribe_atom_v, f.fast(log));
  f.sched.run();
  for (int i = 0; i < 1000 && !run.finished(); ++i) {
    f.sched.advance_time(std::chrono::milliseconds(10));
    f.sched.run();
  }
  REQUIRE(run.finished());
  auto rep = run.report();
  CHECK(rep.status == "completed");
  CHECK(rep.balanced());
  CHECK(rep.sink_records == 500);
  REQUIRE(log->bodies.size() == 500);
  CHECK(log->bodies.front() == "e0");
  CHECK(log->bodies.back() == "e499");
  CHECK(log->topic == "events");
}

TEST_CASE("topic: impossible parameters are located errors") {
  fixture f;
  auto loaded = load_graph_text(R"(version: 1
resources:
  events: { type: topic, max_pending: 0 }
nodes:
  gen: { type: generate, count: 5 }
  pub: { type: topic, topic: events, inputs: [gen] }
)",
                                "t.yaml", f.reg);
  REQUIRE_FALSE(loaded.ok());
  REQUIRE(loaded.errors.size() == 1);
  CHECK(loaded.errors[0].str().find("t.yaml:3:39: error:") == 0);
  CHECK(loaded.errors[0].message.find("max_pending") != std::string::npos);
  CHECK_THROWS_AS(spawn_topic(f.rt.system(), topic_config{"t", 0}),
                  std::invalid_argument);
}
