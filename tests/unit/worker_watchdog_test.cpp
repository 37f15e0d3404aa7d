// Map workers answer their node by a plain message, and one watchdog timer
// per node bounds the wait by runtime.request_timeout (node_actor.cpp
// on_watchdog). Two parts:
// - worker_dispatch's bookkeeping for it, without an actor system: dispatch
//   times (oldest_unanswered), dispatch numbers back to their input
//   (token_of), and the order results leave in, ordered and not;
// - graphs on CAF's test coordinator (one thread, virtual time). A worker
//   stuck in a record function is a worker whose job the test scheduler
//   does not run: for its node the two are the same (no answer comes), and
//   it needs no thread and no sleep.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <caf/resumable.hpp>
#include <caf/scheduled_actor.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include "graph_harness.hpp"
#include "internal_protocols.hpp"
#include "node/commands.hpp"
#include "node/worker_dispatch.hpp"

using namespace troupe;
using namespace troupe::detail;
using namespace troupe_test;
using namespace std::chrono_literals;

namespace {

using time_point = std::chrono::steady_clock::time_point;
using kind = node_command::kind;

const time_point t0 = time_point{} + 1h; // any origin but the epoch

// `n` records with one-byte bodies, seq from `first`.
record_batch batch_of(size_t n, uint64_t first = 0) {
  std::vector<record> rs(n);
  for (size_t i = 0; i < n; ++i) {
    rs[i].seq = first + i;
    rs[i].body = "x";
  }
  return record_batch{std::move(rs)};
}

struct exec_cmd {
  uint32_t worker;
  uint64_t seq;
  uint64_t token;
  size_t records;
};

// The exec commands of `todo`; clears it.
std::vector<exec_cmd> execs(node_commands& todo) {
  std::vector<exec_cmd> out;
  for (auto& c : todo.list()) {
    REQUIRE(c.what == kind::exec);
    out.push_back({c.edge, c.id, c.token, todo.batch(c).size()});
  }
  todo.clear();
  return out;
}

// A result that names the input it belongs to.
stage_result result_for(uint64_t token) {
  stage_result r;
  r.created = token * 10;
  return r;
}

struct applied_result {
  uint64_t token;
  uint64_t created;
  size_t records;
  bool last;
};

// Everything next_ready hands out now, marked applied.
std::vector<applied_result> drain(worker_dispatch& d) {
  std::vector<applied_result> out;
  uint64_t token = 0;
  stage_result r;
  size_t records = 0;
  bool last = false;
  while (d.next_ready(token, r, records, last)) {
    out.push_back({token, r.created, records, last});
    d.applied(records);
  }
  return out;
}

std::vector<uint64_t> tokens_of(const std::vector<applied_result>& rs) {
  std::vector<uint64_t> out;
  for (auto& r : rs)
    out.push_back(r.token);
  return out;
}

} // namespace

// -- worker_dispatch: the watchdog's bookkeeping ----------------------------------

TEST_CASE("worker dispatch: oldest_unanswered is the earliest dispatch "
          "still unanswered, none when all are answered") {
  worker_dispatch d{2, true}; // room for 4 batches in flight
  node_commands todo;
  CHECK_FALSE(d.oldest_unanswered().has_value()); // nothing sent yet
  for (uint64_t t = 1; t <= 3; ++t)
    d.enqueue(t, false, batch_of(1), 1);
  CHECK_FALSE(d.oldest_unanswered().has_value()); // waiting is not sent
  d.dispatch(todo, t0);
  auto first = execs(todo);
  REQUIRE(first.size() == 3);
  REQUIRE(d.oldest_unanswered().has_value());
  CHECK(*d.oldest_unanswered() == t0);
  d.enqueue(4, false, batch_of(1), 1);
  d.enqueue(5, false, batch_of(1), 1);
  d.dispatch(todo, t0 + 1s); // one more fits: seq 3 at t0 + 1s
  auto cs = execs(todo);
  REQUIRE(cs.size() == 1);
  CHECK(cs[0].seq == 3);
  CHECK(*d.oldest_unanswered() == t0);
  // Answer the three of t0 (out of order): the oldest is then seq 3's.
  d.complete(first[1].worker, 1, d.token_of(1), result_for(2));
  CHECK(*d.oldest_unanswered() == t0); // seq 0 and 2 still out
  d.complete(first[0].worker, 0, d.token_of(0), result_for(1));
  CHECK(*d.oldest_unanswered() == t0); // seq 2 still out
  d.complete(first[2].worker, 2, d.token_of(2), result_for(3));
  REQUIRE(d.oldest_unanswered().has_value());
  CHECK(*d.oldest_unanswered() == t0 + 1s);
  CHECK(tokens_of(drain(d)) == std::vector<uint64_t>{1, 2, 3});
  d.complete(cs[0].worker, 3, d.token_of(3), result_for(4));
  // Token 5 still waits for dispatch: not unanswered, since never sent.
  CHECK_FALSE(d.oldest_unanswered().has_value());
  CHECK(tokens_of(drain(d)) == std::vector<uint64_t>{4});
  d.dispatch(todo, t0 + 5s);
  REQUIRE(execs(todo).size() == 1);
  CHECK(*d.oldest_unanswered() == t0 + 5s);
}

TEST_CASE("worker dispatch: an answered batch held back for order does not "
          "count as unanswered") {
  // Ordered: seq 1 answered first waits for seq 0, but the watchdog must
  // look past it to the oldest batch a worker still owes.
  worker_dispatch d{3, true};
  node_commands todo;
  for (uint64_t t = 0; t < 3; ++t) {
    d.enqueue(100 + t, false, batch_of(1), 1);
    d.dispatch(todo, t0 + std::chrono::seconds(t)); // seq t at t0 + t s
  }
  auto cs = execs(todo);
  REQUIRE(cs.size() == 3);
  d.complete(cs[1].worker, 1, d.token_of(1), result_for(101));
  CHECK(*d.oldest_unanswered() == t0); // seq 0
  CHECK(drain(d).empty());             // seq 1 waits for seq 0
  d.complete(cs[0].worker, 0, d.token_of(0), result_for(100));
  REQUIRE(d.oldest_unanswered().has_value());
  CHECK(*d.oldest_unanswered() == t0 + 2s); // seq 2; seq 1 is answered
  CHECK(tokens_of(drain(d)) == std::vector<uint64_t>{100, 101});
  d.complete(cs[2].worker, 2, d.token_of(2), result_for(102));
  CHECK_FALSE(d.oldest_unanswered().has_value());
  CHECK(tokens_of(drain(d)) == std::vector<uint64_t>{102});
  CHECK(d.idle());
}

TEST_CASE("worker dispatch: unordered, an early answer leaves at once and "
          "the watchdog still sees the older unanswered batch") {
  worker_dispatch d{3, false};
  node_commands todo;
  for (uint64_t t = 0; t < 3; ++t) {
    d.enqueue(100 + t, false, batch_of(2), 2);
    d.dispatch(todo, t0 + std::chrono::seconds(t));
  }
  auto cs = execs(todo);
  REQUIRE(cs.size() == 3);
  d.complete(cs[2].worker, 2, d.token_of(2), result_for(102));
  auto out = drain(d);
  REQUIRE(out.size() == 1);
  CHECK(out[0].token == 102);
  CHECK(out[0].created == 1020);
  CHECK(out[0].records == 2);
  CHECK(*d.oldest_unanswered() == t0);
  d.complete(cs[0].worker, 0, d.token_of(0), result_for(100));
  CHECK(*d.oldest_unanswered() == t0 + 1s);
  CHECK(tokens_of(drain(d)) == std::vector<uint64_t>{100});
  // token_of still knows seq 1 after its neighbours left.
  CHECK(d.token_of(1) == 101);
  d.complete(cs[1].worker, 1, d.token_of(1), result_for(101));
  CHECK_FALSE(d.oldest_unanswered().has_value());
  CHECK(tokens_of(drain(d)) == std::vector<uint64_t>{101});
  CHECK(d.idle());
  CHECK(d.records() == 0);
}

TEST_CASE("worker dispatch: token_of maps each dispatch number to its input "
          "over many rounds and a growing queue of flights") {
  // 6 workers, 2 each: 12 in flight, more than the flights ring's first
  // 8 slots; answered in rounds, so numbering moves on (flights_base_).
  worker_dispatch d{6, true};
  node_commands todo;
  uint64_t next_token = 1000;
  std::vector<uint64_t> expected_order;
  std::vector<applied_result> got;
  for (int round = 0; round < 5; ++round) {
    for (int k = 0; k < 12; ++k) {
      expected_order.push_back(next_token);
      d.enqueue(next_token, false, batch_of(3), 3);
      next_token += 7;
    }
    d.dispatch(todo, t0 + std::chrono::seconds(round));
    auto cs = execs(todo);
    REQUIRE(cs.size() == 12);
    for (auto& c : cs) {
      CHECK(d.token_of(c.seq) == c.token);
      CHECK(c.records == 3);
    }
    // Answer newest first: nothing leaves before the oldest is answered.
    for (size_t i = cs.size(); i-- > 0;) {
      CHECK(*d.oldest_unanswered() == t0 + std::chrono::seconds(round));
      if (i > 0)
        for (size_t j = 0; j < i; ++j) // earlier ones still resolvable
          CHECK(d.token_of(cs[j].seq) == cs[j].token);
      d.complete(cs[i].worker, cs[i].seq, d.token_of(cs[i].seq),
                 result_for(cs[i].token));
      if (i > 0)
        CHECK(drain(d).empty());
    }
    CHECK_FALSE(d.oldest_unanswered().has_value());
    auto out = drain(d);
    CHECK(out.size() == 12);
    got.insert(got.end(), out.begin(), out.end());
  }
  REQUIRE(got.size() == expected_order.size());
  CHECK(tokens_of(got) == expected_order);
  for (auto& r : got) {
    CHECK(r.created == r.token * 10); // each result with its own input
    CHECK(r.records == 3);
    CHECK(r.last);
  }
  CHECK(d.idle());
}

TEST_CASE("worker dispatch: every completion order of 5 batches, ordered and "
          "unordered") {
  std::vector<size_t> perm{0, 1, 2, 3, 4};
  int orders = 0;
  do {
    for (bool ordered : {true, false}) {
      CAPTURE(ordered);
      CAPTURE(perm);
      worker_dispatch d{3, ordered}; // 6 slots: all five go at once
      node_commands todo;
      for (uint64_t t = 0; t < 5; ++t)
        d.enqueue(50 + t, false, batch_of(t + 1), t + 1);
      d.dispatch(todo, t0);
      auto cs = execs(todo);
      REQUIRE(cs.size() == 5);
      std::vector<applied_result> got;
      std::set<size_t> answered;
      for (auto i : perm) {
        d.complete(cs[i].worker, cs[i].seq, d.token_of(cs[i].seq),
                   result_for(cs[i].token));
        answered.insert(i);
        auto out = drain(d);
        got.insert(got.end(), out.begin(), out.end());
        // The watchdog's view: the first dispatch not answered yet.
        size_t first_open = 0;
        while (answered.count(first_open))
          ++first_open;
        CHECK(d.oldest_unanswered().has_value() == (first_open < 5));
      }
      std::vector<uint64_t> want;
      if (ordered)
        want = {50, 51, 52, 53, 54};
      else
        for (auto i : perm)
          want.push_back(50 + i);
      CHECK(tokens_of(got) == want);
      for (auto& r : got) {
        CHECK(r.created == r.token * 10);
        CHECK(r.records == r.token - 50 + 1);
      }
      CHECK(d.idle());
      CHECK(d.records() == 0);
    }
    ++orders;
  } while (std::next_permutation(perm.begin(), perm.end()));
  CHECK(orders == 120);
}

TEST_CASE("worker dispatch: partitioned by key, every part's dispatch number "
          "leads back to its input") {
  worker_dispatch d{2, true, true};
  node_commands todo;
  std::string a = "a", b;
  for (int i = 0; b.empty() || d.worker_of(b) == d.worker_of(a); ++i)
    b = "k" + std::to_string(i);
  auto keyed = [](std::vector<std::string> keys) {
    std::vector<record> rs;
    for (auto& k : keys) {
      record r;
      r.key = k;
      rs.push_back(std::move(r));
    }
    return record_batch{std::move(rs)};
  };
  d.enqueue(7, false, keyed({a, b, b}), 3); // two parts
  d.enqueue(8, false, keyed({b}), 1);
  d.dispatch(todo, t0);
  auto cs = execs(todo);
  REQUIRE(cs.size() == 3);
  for (auto& c : cs)
    CHECK(d.token_of(c.seq) == c.token);
  CHECK(cs[0].token == 7);
  CHECK(cs[1].token == 7);
  CHECK(cs[2].token == 8);
  // Answer the last first: partitioned results leave as they come.
  d.complete(cs[2].worker, cs[2].seq, d.token_of(cs[2].seq), result_for(8));
  CHECK(*d.oldest_unanswered() == t0);
  auto out = drain(d);
  REQUIRE(out.size() == 1);
  CHECK(out[0].token == 8);
  CHECK(out[0].last);
  d.complete(cs[1].worker, cs[1].seq, d.token_of(cs[1].seq), result_for(7));
  out = drain(d);
  REQUIRE(out.size() == 1);
  CHECK_FALSE(out[0].last); // the other part of 7 is still out
  d.complete(cs[0].worker, cs[0].seq, d.token_of(cs[0].seq), result_for(7));
  out = drain(d);
  REQUIRE(out.size() == 1);
  CHECK(out[0].token == 7);
  CHECK(out[0].last);
  CHECK_FALSE(d.oldest_unanswered().has_value());
  CHECK(d.idle());
}

// -- graphs: the watchdog in a running node ---------------------------------------

namespace {

// What the test scheduler may run while workers are held: every job but
// that of a worker with mail which `release` does not let go (by actor
// id). A held worker never answers, like one stuck in its record function.
// (Workers are told apart by their state's name; their mail is not peeked
// at: CAF 0.17's mailbox peek() trips UBSan in its intrusive queue.)
struct worker_gate {
  caf::scheduler::test_coordinator* sched;
  std::function<bool(caf::actor_id)> release = [](caf::actor_id) {
    return false;
  };
  std::vector<caf::actor_id> held; // workers held, in the order first seen

  bool may_run(caf::resumable* job) {
    auto* a = dynamic_cast<caf::scheduled_actor*>(job);
    if (!a || std::strcmp(a->name(), "troupe.worker") != 0)
      return true;
    if (a->mailbox().empty() || release(a->id()))
      return true; // no mail: its start, not an answer
    if (std::find(held.begin(), held.end(), a->id()) == held.end())
      held.push_back(a->id());
    return false;
  }

  void run() {
    sched->run_jobs_filtered([this](caf::resumable* job) {
      return may_run(job);
    });
  }

  // Moves virtual time on by `dt`, then runs what may run.
  void step(caf::timespan dt) {
    sched->advance_time(dt);
    run();
  }
};

std::vector<std::string> bodies(const collected& c) {
  std::vector<std::string> out;
  for (auto& r : c.records)
    out.push_back(r.body);
  return out;
}

} // namespace

TEST_CASE("watchdog: workers that answer keep a node alive across many "
          "request_timeouts; every record arrives in order") {
  // A paced source: the run lasts ~10 s of virtual time with 1 s
  // request_timeout, so the watchdog fires many times, each time with
  // nothing unanswered (or only fresh work), and must never crash the node.
  harness h;
  auto run = h.start(R"(version: 1
runtime: { request_timeout: 1s }
nodes:
  src: { type: generate, count: 40, rate: 4/s, template: "r{i}" }
  m:   { type: map, fn: upper, workers: 2, inputs: [src] }
  out: { type: collect, inputs: [m] }
)");
  REQUIRE(h.drive(run, 60s, 10ms));
  auto rep = run.report();
  CHECK(rep.status == "completed");
  CHECK(restarts_of(rep, "m") == 0);
  auto& got = h.sinks["out"];
  REQUIRE(got.records.size() == 40);
  for (uint64_t i = 0; i < 40; ++i) {
    CHECK(got.records[i].seq == i);
    CHECK(got.records[i].body == "R" + std::to_string(i));
  }
  check_balanced(rep);
  // The run took several request_timeouts of virtual time: the watchdog
  // really had the chance to fire while the node worked.
  CHECK(rep.nodes[0].batches >= 10);
  // Long after the end, nothing is left to fire and nothing changes.
  for (int i = 0; i < 10; ++i) {
    h.sched->advance_time(5s);
    h.sched->run();
  }
  auto after = run.report();
  CHECK(after.status == "completed");
  CHECK(restarts_of(after, "m") == 0);
  CHECK(h.sinks["out"].records.size() == 40);
}

TEST_CASE("watchdog: a fast run with workers takes every record; time well "
          "past request_timeout afterwards fails nothing") {
  harness h;
  auto run = h.start(R"(version: 1
runtime: { request_timeout: 1s, batch_size: 16 }
nodes:
  src: { type: generate, count: 1000, template: "r{i}" }
  m:   { type: map, fn: upper, workers: 2, inputs: [src] }
  out: { type: collect, inputs: [m] }
)");
  REQUIRE(h.drive(run));
  auto& got = h.sinks["out"];
  REQUIRE(got.records.size() == 1000);
  auto order = seqs(got);
  CHECK(std::is_sorted(order.begin(), order.end()));
  CHECK(got.records[999].body == "R999");
  for (int i = 0; i < 20; ++i) {
    h.sched->advance_time(1s);
    h.sched->run();
  }
  auto rep = run.report();
  CHECK(rep.status == "completed");
  CHECK(restarts_of(rep, "m") == 0);
  CHECK(rep.sink_records == 1000);
  check_balanced(rep);
}

TEST_CASE("watchdog: a worker that never answers crashes its node after "
          "request_timeout, not before; the restarted node loses nothing") {
  harness h;
  auto run = h.start(R"(version: 1
runtime: { request_timeout: 2s }
supervision: { backoff: { min: 1ms, max: 1ms, jitter: 0 } }
nodes:
  src: { type: generate, count: 100, template: "r{i}" }
  m:   { type: map, fn: upper, workers: 2, inputs: [src] }
  out: { type: collect, inputs: [m] }
)");
  worker_gate gate{h.sched};
  gate.run(); // everything but the workers: batches go out, none come back
  REQUIRE_FALSE(gate.held.empty()); // the node did hand out work
  // Up to just before the timeout: the node waits.
  for (int i = 0; i < 199; ++i) {
    gate.step(10ms); // to 1.99 s
    REQUIRE(restarts_of(run.report(), "m") == 0);
  }
  CHECK(h.sinks["out"].records.empty());
  CHECK_FALSE(run.finished());
  // At 2 s the watchdog crashes it; the supervisor restarts it (1 ms
  // backoff). The new incarnation's workers are let run from here on.
  gate.step(10ms);
  gate.step(10ms);
  CHECK(restarts_of(run.report(), "m") == 1);
  REQUIRE(h.drive(run));
  auto rep = run.report();
  CHECK(rep.status == "completed");
  CHECK(restarts_of(rep, "m") == 1); // once: answered workers never crash
  auto got = unique_seqs(h.sinks["out"]);
  CHECK(got.size() == 100);
  CHECK(rep.nodes[0].redelivered > 0);
  for (auto& b : bodies(h.sinks["out"]))
    CHECK(b.front() == 'R'); // all went through the function
  check_balanced(rep);
}

TEST_CASE("watchdog: the wait is measured from the oldest unanswered batch, "
          "not from when the timer was armed") {
  // One record per batch, paced: batch 0 goes out at ~0 s and arms the
  // timer; batch 1 goes out at ~1 s to the other worker. Batch 0's worker
  // answers from 1.2 s on (batch 2 too, at ~2 s), batch 1's never. At 1.5 s
  // (0's timeout) the node must live on, and crash only 1.5 s after batch
  // 1 went out.
  harness h;
  auto run = h.start(R"(version: 1
runtime: { request_timeout: 1500ms }
supervision: { backoff: { min: 1ms, max: 1ms, jitter: 0 } }
nodes:
  src: { type: generate, count: 3, rate: 1/s }
  m:   { type: map, fn: upper, workers: 2, inputs: [src] }
  out: { type: collect, inputs: [m] }
)");
  worker_gate gate{h.sched};
  bool answer_first = false;
  // Batch 0 goes to the first worker to get mail, batch 1 (the other one
  // is idle) to the second.
  gate.release = [&](caf::actor_id id) {
    return answer_first && !gate.held.empty() && id == gate.held[0];
  };
  auto elapsed = 0ms;
  std::optional<std::chrono::milliseconds> sent_1; // second worker got mail
  gate.run();
  REQUIRE(gate.held.size() == 1); // batch 0 only, so far
  while (elapsed < 1200ms) {
    gate.step(10ms);
    elapsed += 10ms;
    if (!sent_1 && gate.held.size() == 2)
      sent_1 = elapsed;
  }
  REQUIRE(sent_1.has_value()); // the source paced batch 1 at about 1 s
  CHECK(*sent_1 >= 900ms);
  CHECK(*sent_1 <= 1100ms);
  answer_first = true; // batch 0 is answered now (and what comes after it
  gate.run();          // to the same worker)
  REQUIRE(h.sinks["out"].records.size() == 1);
  CHECK(h.sinks["out"].records[0].body == "0");
  // Up to just before batch 1's deadline: alive, though 1.5 s passed since
  // the timer was first armed.
  auto deadline = *sent_1 + 1500ms;
  while (elapsed + 10ms < deadline) {
    gate.step(10ms);
    elapsed += 10ms;
    REQUIRE(restarts_of(run.report(), "m") == 0);
  }
  // Past it: crashed and restarted.
  for (int i = 0; i < 3; ++i)
    gate.step(10ms);
  CHECK(restarts_of(run.report(), "m") == 1);
  REQUIRE(h.drive(run));
  auto rep = run.report();
  CHECK(rep.status == "completed");
  CHECK(unique_seqs(h.sinks["out"]) == std::vector<uint64_t>{0, 1, 2});
  check_balanced(rep);
}
