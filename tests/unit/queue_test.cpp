// The queue service (AsyncQueue) and the queue source and sink (issue 8,
// part 5): backpressure to producers, waiting consumers, close and
// end-of-stream, every wait bounded; and a long-running graph fed and
// drained by C++ code through queues. All on CAF's test coordinator, in
// virtual time.
#include <doctest/doctest.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/send.hpp>

#include "troupe/actors/queue.hpp"
#include "troupe/call_context.hpp"
#include "troupe/errors.hpp"
#include "troupe/loader.hpp"
#include "troupe/registry.hpp"
#include "troupe/runtime.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

// A request's outcome, written by the asking actor (one thread: the test
// coordinator runs every actor here).
template <class T>
struct outcome {
  std::optional<T> value;
  std::optional<call_status> error;
  bool done() const {
    return value || error;
  }
};

record rec(std::string body) {
  record r;
  r.body = std::move(body);
  return r;
}

record_batch batch_of(size_t from, size_t n) {
  std::vector<record> rs;
  for (size_t i = from; i < from + n; ++i)
    rs.push_back(rec("r" + std::to_string(i)));
  return record_batch{std::move(rs)};
}

std::vector<std::string> bodies(const queue_items& it) {
  std::vector<std::string> out;
  for (auto& r : it.records.records())
    out.push_back(r.body);
  return out;
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

  queue_actor make(uint64_t capacity, uint64_t max_producers = 8,
                   uint64_t max_consumers = 8) {
    queue_config cfg;
    cfg.capacity = capacity;
    cfg.max_waiting_producers = max_producers;
    cfg.max_waiting_consumers = max_consumers;
    cfg.max_wait = 10s;
    spawned.push_back(spawn_queue(rt.system(), cfg));
    return spawned.back();
  }

  // A queue with a waiter's timer pending is referenced by the clock: stop
  // the test's queues, or the actor system would wait for them forever.
  std::vector<queue_actor> spawned;
  ~fixture() {
    for (auto& q : spawned)
      caf::anon_send_exit(q, caf::exit_reason::user_shutdown);
    sched.run();
    // Requests still waiting for a reply (a failed check) end on their
    // timeouts, so nothing keeps the actor system from shutting down.
    sched.advance_time(std::chrono::seconds(60));
    sched.run();
  }

  // Sends one request from a fresh actor; the outcome fills in when the
  // reply comes (run the scheduler).
  template <class T, class... Ts>
  std::shared_ptr<outcome<T>> ask(const queue_actor& q, Ts... xs) {
    auto out = std::make_shared<outcome<T>>();
    rt.system().spawn(
      [out, q](caf::event_based_actor* self, Ts... ys) {
        self->request(q, std::chrono::seconds(30), ys...)
          .then([out](T& v) { out->value = std::move(v); },
                [out](caf::error& e) { out->error = classify(e); });
      },
      xs...);
    sched.run();
    return out;
  }

  auto push(const queue_actor& q, record_batch b, caf::timespan wait = 5s) {
    return ask<uint64_t>(q, queue_push_atom_v, std::move(b), wait);
  }
  auto pop(const queue_actor& q, uint64_t max, caf::timespan wait = 5s) {
    return ask<queue_items>(q, queue_pop_atom_v, max, wait);
  }
  queue_stats stats(const queue_actor& q) {
    auto s = ask<queue_stats>(q, stats_atom_v);
    REQUIRE(s->value);
    return *s->value;
  }
  void advance(caf::timespan d) {
    sched.advance_time(d);
    sched.run();
  }
};

} // namespace

TEST_CASE("queue: FIFO, pop takes at most max, push of one record") {
  fixture f;
  auto q = f.make(10);
  auto a = f.push(q, batch_of(0, 3));
  REQUIRE(a->value);
  CHECK(*a->value == 3);
  auto one = f.ask<uint64_t>(q, queue_push_atom_v, rec("solo"), caf::timespan{0});
  REQUIRE(one->value);
  auto p = f.pop(q, 2);
  REQUIRE(p->value);
  CHECK(bodies(*p->value) == std::vector<std::string>{"r0", "r1"});
  p = f.pop(q, 10);
  REQUIRE(p->value);
  CHECK(bodies(*p->value) == std::vector<std::string>{"r2", "solo"});
  CHECK_FALSE(p->value->closed);
  auto s = f.stats(q);
  CHECK(s.pushed == 4);
  CHECK(s.popped == 4);
  CHECK(s.size == 0);
}

TEST_CASE("queue: a full queue answers a push only once there is room") {
  fixture f;
  auto q = f.make(4);
  REQUIRE(f.push(q, batch_of(0, 4))->value);
  auto late = f.push(q, batch_of(4, 2)); // needs 2 of 4: full
  CHECK_FALSE(late->done());              // backpressure: no answer yet
  CHECK(f.stats(q).waiting_producers == 1);
  auto p = f.pop(q, 1);
  REQUIRE(p->value);
  CHECK_FALSE(late->done()); // one free slot is not enough for 2
  p = f.pop(q, 1);
  REQUIRE(p->value);
  REQUIRE(late->value); // now it went in, whole and in order
  CHECK(*late->value == 2);
  p = f.pop(q, 10);
  CHECK(bodies(*p->value) == std::vector<std::string>{"r2", "r3", "r4", "r5"});
}

TEST_CASE("queue: a producer's wait is finite, and the waiting list is capped") {
  fixture f;
  auto q = f.make(2, /*max_producers*/ 1);
  REQUIRE(f.push(q, batch_of(0, 2))->value);
  auto waits = f.push(q, batch_of(2, 1), 1s);
  auto refused = f.push(q, batch_of(3, 1), 1s); // a second waiter: over the cap
  REQUIRE(refused->error);
  CHECK(*refused->error == call_status::refused);
  CHECK_FALSE(waits->done());
  f.advance(999ms);
  CHECK_FALSE(waits->done());
  f.advance(1ms);
  REQUIRE(waits->error);
  CHECK(*waits->error == call_status::timeout);
  auto try_push = f.push(q, batch_of(4, 1), caf::timespan{0}); // no wait
  REQUIRE(try_push->error);
  CHECK(*try_push->error == call_status::refused);
  auto too_big = f.push(q, batch_of(0, 3));
  REQUIRE(too_big->error);
  CHECK(*too_big->error == call_status::refused);
  auto s = f.stats(q);
  CHECK(s.timed_out == 1);
  CHECK(s.refused == 3);
  CHECK(s.size == 2);
  CHECK(s.waiting_producers == 0);
}

TEST_CASE("queue: consumers of an empty queue wait; a finite wait ends empty") {
  fixture f;
  auto q = f.make(10, 8, /*max_consumers*/ 2);
  auto c1 = f.pop(q, 5, 2s);
  auto c2 = f.pop(q, 5, 1s);
  auto c3 = f.pop(q, 5, 1s);
  REQUIRE(c3->error); // the waiting list is capped
  CHECK(*c3->error == call_status::refused);
  CHECK_FALSE(c1->done());
  CHECK(f.stats(q).waiting_consumers == 2);
  REQUIRE(f.push(q, batch_of(0, 3))->value);
  REQUIRE(c1->value); // the first waiter gets what came, FIFO
  CHECK(bodies(*c1->value) == std::vector<std::string>{"r0", "r1", "r2"});
  CHECK_FALSE(c2->done());
  f.advance(1s);
  REQUIRE(c2->value); // the wait ended: an empty reply, not end-of-stream
  CHECK(c2->value->records.empty());
  CHECK_FALSE(c2->value->closed);
  auto now = f.pop(q, 1, caf::timespan{0}); // try_pop of an empty queue
  REQUIRE(now->value);
  CHECK(now->value->records.empty());
}

TEST_CASE("queue: close refuses producers, drains, then ends the stream") {
  fixture f;
  auto q = f.make(2);
  auto waiting_consumer = f.pop(q, 1, 5s);
  REQUIRE(f.push(q, batch_of(0, 1))->value);
  REQUIRE(waiting_consumer->value);
  REQUIRE(f.push(q, batch_of(1, 2))->value);
  auto blocked = f.push(q, batch_of(3, 1));
  CHECK_FALSE(blocked->done());
  auto left = f.ask<uint64_t>(q, queue_close_atom_v);
  REQUIRE(left->value);
  CHECK(*left->value == 2);
  REQUIRE(blocked->error); // a producer waiting at close is refused
  CHECK(*blocked->error == call_status::refused);
  auto after = f.push(q, batch_of(9, 1));
  REQUIRE(after->error);
  CHECK(*after->error == call_status::refused);
  auto p = f.pop(q, 10); // what was queued is still delivered
  REQUIRE(p->value);
  CHECK(bodies(*p->value) == std::vector<std::string>{"r1", "r2"});
  CHECK_FALSE(p->value->closed);
  p = f.pop(q, 10);
  REQUIRE(p->value);
  CHECK(p->value->closed); // end of stream
  CHECK(p->value->records.empty());
  // A consumer waiting when the last record goes and the queue is closed
  // gets end-of-stream too.
  auto q2 = f.make(2);
  auto w = f.pop(q2, 1, 5s);
  CHECK_FALSE(w->done());
  f.ask<uint64_t>(q2, queue_close_atom_v);
  REQUIRE(w->value);
  CHECK(w->value->closed);
}

TEST_CASE("queue: an impossible capacity is refused at spawn") {
  fixture f;
  queue_config cfg;
  cfg.capacity = 0;
  CHECK_THROWS_AS(spawn_queue(f.rt.system(), cfg), std::invalid_argument);
}

// -- a long-running graph fed and drained through queues ----------------------

namespace {

// Pushes `total` records in batches of `chunk`, one push at a time (each
// after the previous was accepted), then closes the queue.
struct feeder_state {
  size_t sent = 0, refused = 0;
  bool closed = false;
};

void feed(caf::event_based_actor* self, queue_actor q, size_t total,
          size_t chunk, std::shared_ptr<feeder_state> st) {
  if (st->sent >= total) {
    self->request(q, std::chrono::seconds(30), queue_close_atom_v)
      .then([st](uint64_t) { st->closed = true; },
            [st](caf::error&) { ++st->refused; });
    return;
  }
  auto n = std::min(chunk, total - st->sent);
  self
    ->request(q, std::chrono::seconds(30), queue_push_atom_v,
              batch_of(st->sent, n), caf::timespan{std::chrono::seconds(10)})
    .then(
      [=](uint64_t accepted) {
        st->sent += accepted;
        feed(self, q, total, chunk, st);
      },
      [=](caf::error&) {
        ++st->refused;
        feed(self, q, total, chunk, st); // timed out: again
      });
}

// Pops until end-of-stream, keeping the bodies.
struct drainer_state {
  std::vector<std::string> got;
  bool ended = false;
  size_t errors = 0;
};

void drain(caf::event_based_actor* self, queue_actor q,
           std::shared_ptr<drainer_state> st) {
  self
    ->request(q, std::chrono::seconds(30), queue_pop_atom_v, uint64_t{64},
              caf::timespan{std::chrono::seconds(5)})
    .then(
      [=](queue_items& it) {
        for (auto& r : it.records.records())
          st->got.push_back(r.body);
        if (it.closed) {
          st->ended = true;
          return;
        }
        drain(self, q, st);
      },
      [=](caf::error&) {
        ++st->errors;
        drain(self, q, st);
      });
}

} // namespace

TEST_CASE("queue source and sink: C++ feeds a graph and pulls its results") {
  fixture f;
  auto loaded = load_graph_text(R"(version: 1
runtime: { batch_size: 50 }
resources:
  jobs: { type: queue, capacity: 100 }
  done: { type: queue, capacity: 50 }
nodes:
  in:  { type: queue, queue: jobs }
  up:  { type: map, fn: upper, inputs: [in] }
  out: { type: queue, queue: done, inputs: [up] }
)",
                                "t.yaml", f.reg);
  REQUIRE(loaded.ok());
  auto run = f.rt.start(*loaded.graph);
  auto jobs = run.resource<queue_actor>("jobs");
  auto done = run.resource<queue_actor>("done");
  auto fed = std::make_shared<feeder_state>();
  auto pulled = std::make_shared<drainer_state>();
  f.rt.system().spawn(
    [=](caf::event_based_actor* self, int) { feed(self, jobs, 1000, 37, fed); }, 0);
  f.rt.system().spawn(
    [=](caf::event_based_actor* self, int) { drain(self, done, pulled); }, 0);
  f.sched.run();
  for (int i = 0; i < 20000 && !(run.finished() && pulled->ended); ++i)
    f.advance(1ms);
  REQUIRE(run.finished());
  CHECK(fed->sent == 1000);
  CHECK(fed->closed);
  CHECK(fed->refused == 0);
  REQUIRE(pulled->ended); // the sink closed `done` once its inputs ended
  REQUIRE(pulled->got.size() == 1000);
  for (size_t i = 0; i < 1000; ++i)
    if (pulled->got[i] != "R" + std::to_string(i)) {
      FAIL("result " << i << " is " << pulled->got[i]);
    }
  auto rep = run.report();
  CHECK(rep.status == "completed");
  CHECK(rep.balanced());
  CHECK(rep.source_records == 1000);
  CHECK(rep.sink_records == 1000);
  for (auto& n : rep.nodes) {
    CHECK_MESSAGE(n.balanced(), n.name);
    CHECK(n.in_flight == 0);
  }
  // Backpressure held: neither queue ever grew past its capacity (the
  // stats are the queue's own view; both are empty and closed now).
  auto fed_stats = f.stats(jobs);
  CHECK(fed_stats.pushed == 1000);
  CHECK(fed_stats.popped == 1000);
  CHECK(fed_stats.closed);
  CHECK(f.stats(done).popped == 1000);
}

TEST_CASE("queue source: an idle source wakes at its pop's reply, not on a poll") {
  fixture f;
  auto loaded = load_graph_text(R"(version: 1
resources:
  jobs: { type: queue }
  done: { type: queue }
nodes:
  in:  { type: queue, queue: jobs, wait: 10s }
  out: { type: queue, queue: done, inputs: [in] }
)",
                                "t.yaml", f.reg);
  REQUIRE(loaded.ok());
  auto run = f.rt.start(*loaded.graph);
  auto jobs = run.resource<queue_actor>("jobs");
  auto done = run.resource<queue_actor>("done");
  f.sched.run();
  f.advance(1ms); // the source's pop now waits in the queue
  for (size_t round = 0; round < 3; ++round) {
    REQUIRE(f.push(jobs, batch_of(round, 1))->value);
    // No virtual time passes: the pop's reply alone moves the record
    // through (no idle_delay poll, which would need 10s).
    auto p = f.pop(done, 10, caf::timespan{0});
    REQUIRE(p->value);
    CHECK(bodies(*p->value) == std::vector<std::string>{"r" + std::to_string(round)});
  }
  f.ask<uint64_t>(jobs, queue_close_atom_v);
  for (int i = 0; i < 100 && !run.finished(); ++i)
    f.advance(10ms);
  REQUIRE(run.finished());
  CHECK(run.report().status == "completed");
  CHECK(run.report().balanced());
}

TEST_CASE("queue: YAML resources and nodes are validated") {
  fixture f;
  auto errors_of = [&](const std::string& yaml) {
    auto loaded = load_graph_text(yaml, "t.yaml", f.reg);
    std::string all;
    for (auto& d : loaded.errors)
      all += d.str() + "\n";
    return all;
  };
  auto e = errors_of(R"(version: 1
resources:
  jobs: { type: queue, capacity: 0 }
nodes:
  in:  { type: queue, queue: jobs }
  out: { type: null, inputs: [in] }
)");
  CHECK(e.find("t.yaml:3:34: error:") != std::string::npos);
  CHECK(e.find("capacity") != std::string::npos);
  e = errors_of(R"(version: 1
resources:
  seen: { type: counter }
nodes:
  in:  { type: queue, queue: seen }
  out: { type: null, inputs: [in] }
)");
  CHECK(e.find("needs a resource speaking 'queue'") != std::string::npos);
  e = errors_of(R"(version: 1
nodes:
  in:  { type: queue }
  out: { type: null, inputs: [in] }
)");
  CHECK(e.find("needs 'queue: NAME'") != std::string::npos);
}

// -- the node actor's source path for sources that wait on calls -------------

#include "node/node_lifecycle.hpp"

TEST_CASE("node lifecycle: a source's call ending cuts its idle wait short, "
          "and the delayed produce it replaced is stale") {
  using troupe::detail::node_lifecycle;
  using step = node_lifecycle::produce_step;
  node_lifecycle l{true};
  CHECK(l.want_produce());
  CHECK(l.begin_produce() == step::run);
  auto first = l.produce_later(); // idle: its pop is outstanding
  CHECK_FALSE(l.want_produce());
  CHECK(l.idle_ended(first)); // (were it to arrive now, it would run)
  CHECK(l.wake());            // the pop answered: produce now
  CHECK_FALSE(l.wake());      // once
  CHECK_FALSE(l.idle_ended(first)); // the delayed one comes late: ignored
  CHECK(l.begin_produce() == step::run);
  auto second = l.produce_later();
  CHECK(second != first);
  CHECK_FALSE(l.idle_ended(first));
  CHECK(l.idle_ended(second));
  CHECK(l.begin_produce() == step::run); // the delayed produce ran
  CHECK_FALSE(l.wake()); // not idle: a produce is already running
  node_lifecycle stage{false};
  stage.produce_later();
  CHECK_FALSE(stage.wake()); // stages never produce
  node_lifecycle stopped{true};
  CHECK(stopped.want_produce());
  CHECK(stopped.begin_produce() == step::run);
  stopped.produce_later();
  CHECK(stopped.stop());
  CHECK(stopped.begin_produce() == step::stop);
  CHECK_FALSE(stopped.wake()); // draining: nothing more to produce
}

TEST_CASE("queue source: a stop with a pop in flight delivers what it popped") {
  fixture f;
  auto loaded = load_graph_text(R"(version: 1
resources:
  jobs: { type: queue }
  done: { type: queue }
nodes:
  in:  { type: queue, queue: jobs, wait: 5s }
  out: { type: queue, queue: done, inputs: [in], close: false }
)",
                                "t.yaml", f.reg);
  REQUIRE(loaded.ok());
  auto run = f.rt.start(*loaded.graph);
  auto jobs = run.resource<queue_actor>("jobs");
  auto done = run.resource<queue_actor>("done");
  f.sched.run();
  f.advance(1ms); // the source's pop waits in the queue
  CHECK(f.stats(jobs).waiting_consumers == 1);
  run.stop();
  f.sched.run(); // the source is draining, its pop still outstanding
  CHECK_FALSE(run.finished());
  REQUIRE(f.push(jobs, batch_of(0, 3))->value); // answers the pop
  for (int i = 0; i < 100 && !run.finished(); ++i)
    f.advance(10ms);
  REQUIRE(run.finished());
  auto rep = run.report();
  CHECK(rep.balanced());
  CHECK(rep.source_records == 3);
  CHECK(rep.sink_records == 3); // popped, so delivered: none lost
  auto p = f.pop(done, 10, caf::timespan{0});
  REQUIRE(p->value);
  CHECK(p->value->records.size() == 3);
  CHECK_FALSE(f.stats(done).closed); // close: false
}

TEST_CASE("queue source: restarted with its group, it replays what it popped "
          "and was not acknowledged") {
  fixture f;
  auto loaded = load_graph_text(R"(version: 1
runtime: { batch_size: 64 }
resources:
  jobs: { type: queue, capacity: 64 }
  done: { type: queue, capacity: 64 }
nodes:
  in:    { type: queue, queue: jobs }
  chaos: { type: chaos, seed: 7, kill: 0.2, inputs: [in] }
  dedup: { type: dedupe, by: seq, inputs: [chaos] }
  out:   { type: queue, queue: done, inputs: [dedup] }
groups:
  fragile:
    nodes: [in, chaos]
    supervision: { strategy: one_for_all, intensity: 100, period: 10s,
                   backoff: { min: 1ms, max: 2ms } }
)",
                                "t.yaml", f.reg);
  if (!loaded.ok())
    for (auto& d : loaded.errors)
      FAIL(d.str());
  auto run = f.rt.start(*loaded.graph);
  auto jobs = run.resource<queue_actor>("jobs");
  auto done = run.resource<queue_actor>("done");
  auto fed = std::make_shared<feeder_state>();
  auto pulled = std::make_shared<drainer_state>();
  f.rt.system().spawn(
    [=](caf::event_based_actor* self, int) { feed(self, jobs, 300, 16, fed); }, 0);
  f.rt.system().spawn(
    [=](caf::event_based_actor* self, int) { drain(self, done, pulled); }, 0);
  f.sched.run();
  for (int i = 0; i < 20000 && !(run.finished() && pulled->ended); ++i)
    f.advance(1ms);
  REQUIRE(run.finished());
  auto rep = run.report();
  CHECK(rep.status == "completed");
  CHECK(rep.balanced());
  uint64_t restarts = 0;
  for (auto& n : rep.nodes) {
    CHECK_MESSAGE(n.balanced(), n.name);
    restarts += n.restarts;
  }
  CHECK(restarts > 0); // the source was restarted with chaos
  REQUIRE(pulled->ended);
  // Every record the queue handed out reached the end, exactly once after
  // the dedupe, although the source that popped them was restarted.
  std::sort(pulled->got.begin(), pulled->got.end());
  CHECK(pulled->got.size() == 300);
  CHECK(std::unique(pulled->got.begin(), pulled->got.end()) == pulled->got.end());
  // Some pops were in flight when the source died: their records went back.
  auto s = f.stats(jobs);
  CHECK(s.requeued > 0);
  CHECK(s.leased == 0);
}

TEST_CASE("queue: leased records return when their holder dies unacknowledged") {
  fixture f;
  auto q = f.make(4);
  REQUIRE(f.push(q, batch_of(0, 4))->value);
  // A holder that leases 2 and acknowledges them.
  auto acked = std::make_shared<std::optional<queue_items>>();
  f.rt.system().spawn(
    [=](caf::event_based_actor* self, int) {
      self->request(q, std::chrono::seconds(5), queue_lease_atom_v, uint64_t{2},
                    caf::timespan{0})
        .then(
          [=](queue_items& it) {
            *acked = it;
            self->send(q, queue_ack_atom_v, it.lease);
          },
          [](caf::error&) {});
    },
    0);
  f.sched.run();
  REQUIRE(*acked);
  CHECK((*acked)->lease != 0);
  CHECK(bodies(**acked) == std::vector<std::string>{"r0", "r1"});
  // A holder that leases 2 and dies before it acknowledges.
  f.rt.system().spawn(
    [=](caf::event_based_actor* self, int) {
      self->request(q, std::chrono::seconds(5), queue_lease_atom_v, uint64_t{2},
                    caf::timespan{0})
        .then([=](queue_items&) { self->quit(); }, [](caf::error&) {});
    },
    0);
  f.sched.run();
  auto s = f.stats(q);
  CHECK(s.leased == 0);
  CHECK(s.requeued == 2);
  auto p = f.pop(q, 10); // back at the front, in order
  REQUIRE(p->value);
  CHECK(bodies(*p->value) == std::vector<std::string>{"r2", "r3"});
  // Leased records count toward the capacity until acknowledged.
  REQUIRE(f.push(q, batch_of(4, 4))->value);
  auto held = std::make_shared<uint64_t>(0);
  auto holder = f.rt.system().spawn(
    [=](caf::event_based_actor* self, int) -> caf::behavior {
      self->request(q, std::chrono::seconds(5), queue_lease_atom_v, uint64_t{4},
                    caf::timespan{0})
        .then([=](queue_items& it) { *held = it.lease; }, [](caf::error&) {});
      return {[](int) {}}; // stays alive, holding its lease
    },
    0);
  f.sched.run();
  REQUIRE(*held != 0);
  auto blocked = f.push(q, batch_of(8, 1));
  CHECK_FALSE(blocked->done()); // 4 leased of 4: full
  caf::anon_send(q, queue_ack_atom_v, *held);
  f.sched.run();
  CHECK(blocked->value);
  caf::anon_send_exit(holder, caf::exit_reason::user_shutdown);
  f.sched.run();
  CHECK(f.stats(q).requeued == 2); // acknowledged leases never come back
}
