// Regression tests for issue 6's findings in the delivery core: the report's
// accounting can fail, nothing is held or lost without being counted, and
// the shapes that used to hang or double-count now finish exactly. Virtual
// time on CAF's test coordinator; each case names its finding.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>

#include "graph_harness.hpp"

using namespace troupe;
using namespace troupe_test;
using namespace std::chrono_literals;

namespace {

// A buggy stage: takes records and neither emits, drops nor holds them.
class forgetful_stage : public node_logic {
public:
  void consume(record_batch, emitter&) override {
  }
};

// Passes records on, then fails in finish() every time.
class failing_finish_stage : public node_logic {
public:
  void consume(record_batch batch, emitter& out) override {
    out.emit(std::move(batch));
  }
  void finish(emitter&) override {
    throw std::runtime_error("cannot flush");
  }
};

// A sink that never lets go: everything it receives stays unacknowledged,
// so what reaches it is exactly what credit let through.
class hoarding_sink : public node_logic {
public:
  explicit hoarding_sink(collected* c) : c_(c) {
  }
  void consume(record_batch batch, emitter&) override {
    for (auto& r : batch.records())
      c_->records.push_back(r);
    held_ += batch.size();
  }
  size_t buffered() const override {
    return held_;
  }
  duration tick_interval() const override {
    return 1s; // keeps the node alive; never releases
  }

private:
  collected* c_;
  size_t held_ = 0;
};

template <class Logic>
void add_stage(harness& h, const std::string& name) {
  actor_type t;
  t.name = name;
  t.kind = actor_kind::stage;
  t.make_node = [](const node_context&) { return std::make_unique<Logic>(); };
  h.reg.add(t);
}

uint64_t body_sum(const collected& c) {
  uint64_t n = 0;
  for (auto& r : c.records)
    n += std::stoull(r.body);
  return n;
}

} // namespace

TEST_CASE("finding 2: a node that loses records fails the run, unbalanced") {
  harness h;
  add_stage<forgetful_stage>(h, "forgetful");
  auto run = h.start(R"(version: 1
nodes:
  src: { type: generate, count: 100 }
  bad: { type: forgetful, inputs: [src] }
  out: { type: collect, inputs: [bad] }
)");
  REQUIRE(h.drive(run));
  auto rep = run.report();
  CHECK(rep.status == "failed");
  CHECK(rep.message.find("'bad'") != std::string::npos);
  CHECK_FALSE(rep.balanced());
}

TEST_CASE("finding 1: chaos with a delay of a few nanoseconds delivers all") {
  harness h;
  auto run = h.start(R"(version: 1
nodes:
  src: { type: generate, count: 1000 }
  c:   { type: chaos, delay: 3ns, inputs: [src] }
  out: { type: collect, inputs: [c] }
)");
  REQUIRE(h.drive(run));
  auto rep = run.report();
  CHECK(rep.status == "completed");
  CHECK(h.sinks["out"].records.size() == 1000);
  CHECK(rep.in_flight == 0);
  check_balanced(rep);
}

TEST_CASE("finding 26: a finish() that throws fails the run once, no replay") {
  harness h;
  add_stage<failing_finish_stage>(h, "bad_finish");
  auto run = h.start(R"(version: 1
nodes:
  src: { type: generate, count: 1000 }
  f:   { type: bad_finish, inputs: [src] }
  out: { type: collect, inputs: [f] }
)");
  REQUIRE(h.drive(run));
  auto rep = run.report();
  CHECK(rep.status == "failed");
  CHECK(rep.message.find("cannot flush") != std::string::npos);
  CHECK(h.sinks["out"].records.size() == 1000); // not multiplied by restarts
  for (auto& n : rep.nodes)
    CHECK(n.restarts == 0);
}

TEST_CASE("finding 13: a batch larger than credit allows cannot stall") {
  harness h;
  SUBCASE("size 16200 with the default window") {
    auto run = h.start(R"(version: 1
nodes:
  src: { type: generate, count: 100000 }
  b:   { type: batch, size: 16200, inputs: [src] }
  out: { type: collect, inputs: [b] }
)");
    REQUIRE(h.drive(run));
    CHECK(run.report().status == "completed");
    CHECK(unique_seqs(h.sinks["out"]).size() == 100000);
  }
  SUBCASE("size 746, source batches of 512, window 1024") {
    auto run = h.start(R"(version: 1
runtime: { batch_size: 512, window: 1024 }
nodes:
  src: { type: generate, count: 20000 }
  b:   { type: batch, size: 746, inputs: [src] }
  out: { type: collect, inputs: [b] }
)");
    REQUIRE(h.drive(run));
    CHECK(run.report().status == "completed");
    CHECK(unique_seqs(h.sinks["out"]).size() == 20000);
  }
}

TEST_CASE("finding 14: a node restarted after its consumer finished ends") {
  harness h;
  auto run = h.start(R"(version: 1
runtime: {batch_size: 1}
supervision: {strategy: rest_for_one, intensity: 500, period: 10s}
groups: {g0: {nodes: [src1, sink2]}}
nodes:
  src1: {type: generate, count: 5000}
  src2: {type: generate, count: 5}
  st3:  {type: chaos, seed: 72, kill: 0.05, inputs: [src1]}
  st4:  {type: map, fn: identity, inputs: [src2]}
  sink2: {type: collect, inputs: [st4]}
  sink3: {type: collect, inputs: [st3]}
)");
  REQUIRE(h.drive(run));
  auto rep = run.report();
  CHECK(rep.status == "completed");
  CHECK(unique_seqs(h.sinks["sink2"]).size() == 5);
  CHECK(unique_seqs(h.sinks["sink3"]).size() == 5000);
  check_balanced(rep);
}

TEST_CASE("finding 5: what a removed temporary node never received is lost, "
          "counted") {
  harness h;
  auto run = h.start(R"(version: 1
runtime: {batch_size: 7, window: 1024}
nodes:
  src: {type: generate, count: 5000}
  c:   {type: chaos, seed: 75, kill: 0.1, restart: temporary, inputs: [src]}
  out: {type: collect, inputs: [c]}
)");
  REQUIRE(h.drive(run));
  auto rep = run.report();
  // Everything ran to the end, but at_least_once did not deliver it all.
  CHECK(rep.status == "failed");
  CHECK(rep.message.find("records lost") != std::string::npos);
  check_balanced(rep);
  uint64_t lost = 0;
  for (auto& n : rep.nodes)
    lost += n.lost;
  CHECK(lost > 0);
  CHECK(h.sinks["out"].records.size() + lost == 5000);
}

TEST_CASE("finding 6: reduce after a crashing stage is exact") {
  harness h;
  auto run = h.start(R"(version: 1
nodes:
  src: { type: generate, count: 20000 }
  c:   { type: chaos, seed: 3, kill: 0.05, inputs: [src] }
  r:   { type: reduce, op: count, by: all, inputs: [c] }
  out: { type: collect, inputs: [r] }
)");
  REQUIRE(h.drive(run));
  auto rep = run.report();
  REQUIRE(rep.status == "completed");
  uint64_t restarts = 0;
  for (auto& n : rep.nodes)
    restarts += n.restarts;
  CHECK(restarts > 0); // the shape that used to double-count
  REQUIRE(h.sinks["out"].records.size() == 1);
  CHECK(body_sum(h.sinks["out"]) == 20000);
  check_balanced(rep);
}

TEST_CASE("finding 6: lint rejects a reduce fed by one source on two paths") {
  registry reg;
  register_builtins(reg);
  auto res = load_graph_text(R"(version: 1
nodes:
  src: { type: generate, count: 10 }
  a:   { type: map, fn: upper, inputs: [src] }
  b:   { type: map, fn: lower, inputs: [src] }
  r:   { type: reduce, op: count, by: all, inputs: [a, b] }
  out: { type: null, inputs: [r] }
)",
                             "diamond.yaml", reg);
  REQUIRE_FALSE(res.ok());
  REQUIRE(res.errors.size() == 1);
  CHECK(res.errors[0].str().find("more than one path") != std::string::npos);
}

TEST_CASE("finding 20: credit is bounded in bytes as well as in records") {
  harness h;
  actor_type hoard;
  hoard.name = "hoard";
  hoard.kind = actor_kind::sink;
  hoard.make_node = [&h](const node_context& ctx) {
    return std::make_unique<hoarding_sink>(&h.sinks[ctx.spec.name]);
  };
  h.reg.add(hoard);
  std::string big(60 * 1024, 'x');
  auto run = h.start(R"(version: 1
runtime: { batch_size: 4, window_bytes: 1MiB, shutdown_timeout: 1s }
nodes:
  src: { type: generate, count: 10000, template: ")" + big + R"({i}" }
  out: { type: hoard, inputs: [src] }
)");
  h.sched->run();
  for (int i = 0; i < 10; ++i) {
    h.sched->advance_time(100ms);
    h.sched->run();
  }
  auto got = h.sinks["out"].records.size();
  CHECK(got > 0);
  // 1 MiB of 60 KiB records, plus at most the batch that crossed the line.
  CHECK(got <= 1024 / 60 + 1 + 4);
  run.stop();
  REQUIRE(h.drive(run));
  CHECK(run.report().status == "timed_out");
}

TEST_CASE("finding 13, wider: a batch behind a filter cannot stall") {
  // Each input batch of the filter keeps one record or none; those records
  // wait in the partial group, pinning the filter's whole input window.
  harness h;
  auto run = h.start(R"(version: 1
runtime: {window: 256, batch_size: 64}
nodes:
  src:   {type: generate, count: 2000}
  rare:  {type: filter, contains: "99", inputs: [src]}
  group: {type: batch, size: 64, inputs: [rare]}
  out:   {type: collect, inputs: [group]}
)");
  REQUIRE(h.drive(run));
  CHECK(run.report().status == "completed");
  CHECK(unique_seqs(h.sinks["out"]).size() == 38); // 99, 199, …, 1990–1999
  check_balanced(run.report());
}

TEST_CASE("at_most_once: what dies in the mailbox of a node restarted with "
          "its producer is counted lost") {
  harness h;
  auto run = h.start(R"(version: 1
runtime: {delivery: at_most_once, batch_size: 7}
supervision: {strategy: rest_for_one, intensity: 1000}
nodes:
  src:   {type: generate, count: 3000}
  flaky: {type: chaos, seed: 163, kill: 0.1, inputs: [src]}
  calm:  {type: map, fn: identity, inputs: [src]}
  out1:  {type: null, inputs: [flaky]}
  out2:  {type: collect, inputs: [calm]}
)");
  REQUIRE(h.drive(run));
  auto rep = run.report();
  REQUIRE(rep.status == "completed");
  check_balanced(rep);
  uint64_t lost = 0;
  for (auto& n : rep.nodes)
    if (n.name == "calm" || n.name == "out2")
      lost += n.lost;
  auto got = unique_seqs(h.sinks["out2"]).size();
  // On one thread nothing dies in a mailbox, so this pins that the count
  // never over-counts (records acknowledged just before both went down);
  // the fuzzer's regression new_at_most_once_sibling_restart runs the same
  // graph on real threads, where records do die there.
  CHECK(got == h.sinks["out2"].records.size()); // at most once: no copies
  CHECK(got + lost == 3000);                    // each one somewhere
}

TEST_CASE("a sink whose credit window is full writes at once, not at its "
          "next tick") {
  // window 16 of records waiting for the sink's next 20 ms chunk used to
  // pace a run at 16 records per tick; starved() writes them right away.
  harness h;
  auto path = std::filesystem::temp_directory_path()
              / ("troupe-starved-sink-" + std::to_string(::getpid()) + ".txt");
  auto run = h.start(R"(version: 1
runtime: {window: 16, batch_size: 16}
nodes:
  src: {type: generate, count: 1000}
  out: {type: file, path: ")" + path.string() + R"(", format: lines, inputs: [src]}
)");
  h.sched->run(); // no virtual time passes: no tick ever fires
  CHECK(run.finished());
  CHECK(run.report().status == "completed");
  std::ifstream in(path);
  size_t lines = 0;
  for (std::string l; std::getline(in, l);)
    ++lines;
  CHECK(lines == 1000);
  std::filesystem::remove(path);
}

TEST_CASE("starvation reaches a batch through another batch, workers and a "
          "delaying stage that restarts") {
  harness h;
  SUBCASE("two batches in a row, window_bytes smaller than a source batch") {
    auto run = h.start(R"(version: 1
runtime: {window_bytes: 1KiB}
nodes:
  g: {type: generate, count: 1000, key: "k{i}"}
  a: {type: batch, inputs: [g]}
  b: {type: batch, inputs: [a]}
  s: {type: collect, inputs: [b]}
)");
    REQUIRE(h.drive(run));
    CHECK(unique_seqs(h.sinks["s"]).size() == 1000);
  }
  SUBCASE("a filter on two workers, then a batch") {
    auto run = h.start(R"(version: 1
runtime: {window: 1024, batch_size: 1000}
nodes:
  g: {type: generate, count: 5000}
  f: {type: filter, contains: "0", workers: 2, inputs: [g]}
  b: {type: batch, inputs: [f]}
  s: {type: collect, inputs: [b]}
)");
    REQUIRE(h.drive(run));
    CHECK(unique_seqs(h.sinks["s"]).size() == 1265);
  }
  SUBCASE("chaos with kill and delay, then a batch without timeout") {
    auto run = h.start(R"(version: 1
nodes:
  g: {type: generate, count: 20000}
  c: {type: chaos, seed: 1, kill: 0.05, delay: 1ms, inputs: [g]}
  b: {type: batch, inputs: [c]}
  s: {type: collect, inputs: [b]}
)");
    REQUIRE(h.drive(run));
    CHECK(unique_seqs(h.sinks["s"]).size() == 20000);
  }
}

TEST_CASE("reduce sums integers exactly, past 64 bits") {
  harness h;
  auto run = h.start(R"(version: 1
nodes:
  src: {type: generate, count: 10, start: 9223372036854775000}
  r:   {type: reduce, op: sum, by: all, inputs: [src]}
  out: {type: collect, inputs: [r]}
)");
  REQUIRE(h.drive(run));
  REQUIRE(h.sinks["out"].records.size() == 1);
  // sum(range(9223372036854775000, 9223372036854775010)), from Python
  CHECK(h.sinks["out"].records[0].body == "92233720368547750045");
}

TEST_CASE("dedupe by seq tells two sources' records apart") {
  harness h;
  auto run = h.start(R"(version: 1
nodes:
  a:   {type: generate, count: 10}
  b:   {type: generate, count: 10}
  m:   {type: map, fn: identity, inputs: [a, b]}
  d:   {type: dedupe, by: seq, inputs: [m]}
  out: {type: collect, inputs: [d]}
)");
  REQUIRE(h.drive(run));
  CHECK(h.sinks["out"].records.size() == 20);
}

TEST_CASE("fuzz seed 4726: a consumer does not finish while a record it may "
          "still get waits on another edge of its producer") {
  // p sends seq 3 and 7 to `errors` on their first attempt; d holds them
  // for a second. Meanwhile k crashes (its first batch, at 500ms), and
  // one_for_all restarts every node still running: src replays its batch
  // with attempt 2, and p now passes 3 and 7 to c. c must still be there to
  // get them: it used to finish at once (p sent it eof while d still held
  // p's output), and the replayed 3 and 7 went nowhere — a completed run
  // with two records neither in c nor in e.
  harness h;
  auto run = h.start(R"(version: 1
runtime: {batch_size: 8, max_attempts: 1}
supervision: {strategy: one_for_all, intensity: 10, period: 10s}
nodes:
  src: {type: generate, count: 8}
  p:   {type: chaos, every: 4, inputs: [src]}
  c:   {type: collect, inputs: [p]}
  d:   {type: chaos, delay: 1s, inputs: [p.errors]}
  e:   {type: collect, inputs: [d]}
  dk:  {type: chaos, delay: 500ms, inputs: [src]}
  k:   {type: chaos, kill: 1, inputs: [dk]}
  ks:  {type: collect, inputs: [k]}
)");
  REQUIRE(h.drive(run));
  auto rep = run.report();
  CHECK(rep.status == "completed");
  check_balanced(rep);
  std::set<uint64_t> got;
  for (auto* s : {&h.sinks["c"], &h.sinks["e"]})
    for (auto q : unique_seqs(*s))
      got.insert(q);
  CHECK(got == std::set<uint64_t>{0, 1, 2, 3, 4, 5, 6, 7});
  CHECK(unique_seqs(h.sinks["ks"]).size() == 8);
  for (auto& n : rep.nodes)
    if (n.name == "k")
      CHECK(n.restarts == 1); // the scenario happened
}

namespace {

// Passes records on; the first time the node (any incarnation) sees record
// `seq`, its actor crashes (a crash of the node, not of one record).
class crash_at_stage : public node_logic {
public:
  crash_at_stage(uint64_t seq, int* crashes) : seq_(seq), crashes_(crashes) {
  }
  void consume(record_batch batch, emitter& out) override {
    for (auto& r : batch.records())
      if (r.seq == seq_ && (*crashes_)++ == 0)
        throw std::runtime_error("crash at seq " + std::to_string(seq_));
    out.emit(std::move(batch));
  }

private:
  uint64_t seq_;
  int* crashes_;
};

// `crash_at` with param `seq`; crashes counted per node name in `crashes`.
void add_crash_at(harness& h, std::map<std::string, int>& crashes) {
  actor_type t;
  t.name = "crash_at";
  t.kind = actor_kind::stage;
  t.params = {{"seq", param_type::integer, true, "", "", {}, 0}};
  t.make_node = [&crashes](const node_context& ctx) {
    return std::make_unique<crash_at_stage>(
      static_cast<uint64_t>(ctx.spec.params.integer("seq")),
      &crashes[ctx.spec.name]);
  };
  h.reg.add(t);
}

const node_report& node_named(const run_report& rep, const std::string& name) {
  for (auto& n : rep.nodes)
    if (n.name == name)
      return n;
  FAIL("no node " << name);
  return rep.nodes.front();
}

} // namespace

// The hostile review's finding (at_most_once, two chaos stages in a row,
// one_for_one): a producer stage and its consumer both restart, and the
// records the producer had sent that its consumer never received (they
// were in the consumer's mailbox when it died, or went to its dead
// incarnation) were neither delivered nor counted: exit 0, "completed",
// records missing (13,520 of 20,000 written, 5 lost). Here p crashes on
// seq 12 and c on seq 2, both before either restarts (the backoff is 1 s
// of virtual time): whatever p sent c after seq 2 is gone with p.
TEST_CASE("at_most_once: a producer and its consumer both restarting, one "
          "for one: every record is written or counted lost") {
  for (auto [p_seq, c_seq] : {std::pair{12, 2}, std::pair{2, 12},
                              std::pair{6, 5}, std::pair{7, 3}}) {
    CAPTURE(p_seq);
    CAPTURE(c_seq);
    harness h;
    std::map<std::string, int> crashes;
    add_crash_at(h, crashes);
    auto run = h.start(R"(version: 1
runtime: {delivery: at_most_once, batch_size: 1}
supervision: {strategy: one_for_one, intensity: 100,
              backoff: {min: 1s, max: 1s, jitter: 0}}
nodes:
  src: {type: generate, count: 40}
  p:   {type: crash_at, seq: )" + std::to_string(p_seq) + R"(, inputs: [src]}
  c:   {type: crash_at, seq: )" + std::to_string(c_seq) + R"(, inputs: [p]}
  out: {type: collect, inputs: [c]}
)");
    REQUIRE(h.drive(run));
    auto rep = run.report();
    CHECK(crashes["p"] >= 1);
    CHECK(crashes["c"] >= 1);
    CHECK(restarts_of(rep, "p") == 1);
    CHECK(restarts_of(rep, "c") == 1);
    CHECK(rep.status == "completed"); // at_most_once may lose, counted
    check_balanced(rep);
    auto written = h.sinks["out"].records.size();
    CHECK(unique_seqs(h.sinks["out"]).size() == written); // no copies
    // What p passed on, c took in (or it is counted lost at c).
    CHECK(node_named(rep, "p").out == node_named(rep, "c").in);
    CHECK(node_named(rep, "c").out == node_named(rep, "out").in);
    INFO("written " << written << ", lost " << rep.lost);
    CHECK(written + rep.lost + rep.dead_lettered == 40);
  }
}
