// The built-in node types' logic, driven directly through node_logic with a
// fake emitter (what was emitted, failed, dropped, created) and a fake clock:
// no actor system, no threads, time moves only when the test says so.
#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "troupe/loader.hpp"
#include "troupe/node_logic.hpp"
#include "troupe/registry.hpp"

namespace {

using namespace troupe;
using namespace std::chrono_literals;
using clock_point = std::chrono::steady_clock::time_point;

// Records every call; now() is a clock the test advances.
class fake_emitter : public emitter {
public:
  void emit(record_batch batch) override {
    emitted.push_back(std::move(batch));
  }
  void fail(record rec, std::string reason) override {
    failed.emplace_back(std::move(rec), std::move(reason));
  }
  void drop(size_t n) override {
    dropped += n;
  }
  void create(size_t n) override {
    created += n;
  }
  clock_point now() const override {
    return time;
  }

  // Every emitted record, in order, flattened over batches.
  std::vector<record> records() const {
    std::vector<record> out;
    for (auto& b : emitted)
      for (auto& r : b.records())
        out.push_back(r);
    return out;
  }
  std::vector<std::string> bodies() const {
    std::vector<std::string> out;
    for (auto& r : records())
      out.push_back(r.body);
    return out;
  }
  std::vector<uint64_t> seqs() const {
    std::vector<uint64_t> out;
    for (auto& r : records())
      out.push_back(r.seq);
    return out;
  }
  size_t emitted_records() const {
    return records().size();
  }

  std::vector<record_batch> emitted;
  std::vector<std::pair<record, std::string>> failed;
  size_t dropped = 0;
  size_t created = 0;
  clock_point time{}; // virtual; starts at the clock's epoch
};

enum class role { source, stage, sink };

// One node of a real graph (loaded from YAML, so its parameters are parsed
// and defaulted as in a run) and a fresh logic for it.
class node_under_test {
public:
  // `node` is the flow mapping of node `n` without `inputs`; a stage or sink
  // gets a generate source in front, a source or stage a null sink behind.
  explicit node_under_test(const std::string& node, role r = role::stage,
                           void (*extra)(registry&) = nullptr) {
    register_builtins(reg_);
    if (extra)
      extra(reg_);
    std::string text = "version: 1\nnodes:\n";
    if (r == role::source) {
      text += "  n: { " + node + " }\n";
    } else {
      text += "  src: { type: generate, count: 1 }\n";
      text += "  n: { " + node + ", inputs: [src] }\n";
    }
    if (r != role::sink)
      text += "  out: { type: null, inputs: [n] }\n";
    loaded_ = load_graph_text(text, "logic.yaml", reg_);
    std::string errors;
    for (auto& d : loaded_.errors)
      errors += d.str() + "\n";
    REQUIRE_MESSAGE(loaded_.ok(), errors);
    spec_ = loaded_.graph->find_node("n");
    REQUIRE(spec_ != nullptr);
    type_ = reg_.find(spec_->type, spec_->kind);
    REQUIRE(type_ != nullptr);
  }

  std::unique_ptr<node_logic> make(std::unique_ptr<node_memory>* memory = nullptr,
                                   uint32_t incarnation = 0) const {
    node_context ctx{*spec_, reg_};
    ctx.memory = memory;
    ctx.incarnation = incarnation;
    return type_->make_node(ctx);
  }

private:
  registry reg_;
  load_result loaded_;
  const node_spec* spec_ = nullptr;
  const actor_type* type_ = nullptr;
};

record rec(uint64_t seq, std::string body, std::string key = "",
           uint32_t origin = 1) {
  record r;
  r.seq = seq;
  r.body = std::move(body);
  r.key = std::move(key);
  r.ctx.origin = origin;
  return r;
}

record_batch batch_of(std::vector<record> rs) {
  return record_batch{std::move(rs)};
}

// Seqs first..first+n-1 with bodies "b<seq>".
record_batch seq_batch(uint64_t first, size_t n) {
  std::vector<record> rs;
  for (uint64_t s = first; s < first + n; ++s)
    rs.push_back(rec(s, "b" + std::to_string(s)));
  return batch_of(std::move(rs));
}

} // namespace

// -- map ----------------------------------------------------------------------

TEST_CASE("map applies its function to every record") {
  node_under_test n{"type: map, fn: upper"};
  auto logic = n.make();
  fake_emitter out;
  logic->consume(batch_of({rec(0, "ab"), rec(1, "Cd")}), out);
  CHECK(out.bodies() == std::vector<std::string>{"AB", "CD"});
  CHECK(out.emitted.size() == 1); // one batch in, one batch out
  CHECK(out.dropped == 0);
  CHECK(out.failed.empty());
  CHECK(logic->buffered() == 0);
}

TEST_CASE("map identity forwards the very batch, without a copy") {
  node_under_test n{"type: map, fn: identity"};
  auto logic = n.make();
  fake_emitter out;
  auto in = seq_batch(0, 3);
  auto* first = &in.records()[0];
  logic->consume(in, out);
  REQUIRE(out.emitted.size() == 1);
  CHECK(&out.emitted[0].records()[0] == first);
}

namespace {
void register_flaky(registry& reg) {
  // Throws for seq 1 on every attempt; drops seq 2; keeps the rest.
  reg.add_function("flaky", "test", [] {
    return record_fn{[](record& r) {
      if (r.seq == 1)
        throw std::runtime_error("broken record");
      return r.seq == 2 ? fn_result::drop() : fn_result::keep();
    }};
  });
}
} // namespace

TEST_CASE("map: a record that fails every attempt goes to errors, dropped "
          "ones are counted") {
  node_under_test n{"type: map, fn: flaky", role::stage, register_flaky};
  auto logic = n.make();
  fake_emitter out;
  logic->consume(seq_batch(0, 4), out);
  CHECK(out.seqs() == std::vector<uint64_t>{0, 3});
  CHECK(out.dropped == 1);
  REQUIRE(out.failed.size() == 1);
  CHECK(out.failed[0].first.seq == 1);
  CHECK(out.failed[0].first.ctx.attempt == 3); // runtime.max_attempts
  CHECK(out.failed[0].second == "broken record");
}

// -- filter -------------------------------------------------------------------

TEST_CASE("filter contains: keeps matches, counts the rest as dropped") {
  node_under_test n{"type: filter, contains: x"};
  auto logic = n.make();
  fake_emitter out;
  logic->consume(batch_of({rec(0, "axb"), rec(1, "ab"), rec(2, "x")}), out);
  CHECK(out.seqs() == std::vector<uint64_t>{0, 2});
  CHECK(out.dropped == 1);
}

TEST_CASE("filter invert keeps the non-matching records") {
  node_under_test n{"type: filter, contains: x, invert: true"};
  auto logic = n.make();
  fake_emitter out;
  logic->consume(batch_of({rec(0, "axb"), rec(1, "ab"), rec(2, "x")}), out);
  CHECK(out.seqs() == std::vector<uint64_t>{1});
  CHECK(out.dropped == 2);
}

TEST_CASE("filter regex searches anywhere; all kept is the same batch") {
  node_under_test n{"type: filter, regex: \"^a[0-9]+$\""};
  auto logic = n.make();
  fake_emitter out;
  logic->consume(batch_of({rec(0, "a12"), rec(1, "a1b"), rec(2, "ba1")}), out);
  CHECK(out.seqs() == std::vector<uint64_t>{0});
  CHECK(out.dropped == 2);
  auto all = batch_of({rec(3, "a7"), rec(4, "a8")});
  auto* first = &all.records()[0];
  logic->consume(all, out);
  REQUIRE(out.emitted.size() == 2);
  CHECK(&out.emitted[1].records()[0] == first);
}

TEST_CASE("filter fn: the function decides, a failing record goes to errors "
          "unchanged") {
  node_under_test n{"type: filter, fn: flaky", role::stage, register_flaky};
  auto logic = n.make();
  fake_emitter out;
  logic->consume(seq_batch(0, 4), out);
  CHECK(out.seqs() == std::vector<uint64_t>{0, 3});
  CHECK(out.dropped == 1);
  REQUIRE(out.failed.size() == 1);
  CHECK(out.failed[0].first.seq == 1);
  CHECK(out.failed[0].second == "broken record");
}

// -- batch --------------------------------------------------------------------

TEST_CASE("batch regroups by size; the rest leaves at finish") {
  node_under_test n{"type: batch, size: 3"};
  auto logic = n.make();
  fake_emitter out;
  logic->consume(seq_batch(0, 2), out);
  CHECK(out.emitted.empty());
  CHECK(logic->buffered() == 2);
  logic->consume(seq_batch(2, 5), out); // 2..6: fills 0..2 and 3..5
  REQUIRE(out.emitted.size() == 2);
  CHECK(out.emitted[0].size() == 3);
  CHECK(out.emitted[1].size() == 3);
  CHECK(logic->buffered() == 1);
  logic->finish(out);
  REQUIRE(out.emitted.size() == 3);
  CHECK(out.emitted[2].size() == 1);
  CHECK(out.seqs() == std::vector<uint64_t>{0, 1, 2, 3, 4, 5, 6});
  CHECK(logic->buffered() == 0);
  logic->finish(out); // never an empty batch
  CHECK(out.emitted.size() == 3);
}

TEST_CASE("batch: a group within one input batch is a slice of it") {
  node_under_test n{"type: batch, size: 2"};
  auto logic = n.make();
  fake_emitter out;
  auto in = seq_batch(0, 4);
  auto* third = &in.records()[2];
  logic->consume(in, out);
  REQUIRE(out.emitted.size() == 2);
  CHECK(&out.emitted[1].records()[0] == third);
}

TEST_CASE("batch flushes a partial group `timeout` after its first record") {
  node_under_test n{"type: batch, size: 10, timeout: 100ms"};
  auto logic = n.make();
  fake_emitter out;
  CHECK(logic->tick_interval() == duration{25ms});
  out.time += 5s;
  logic->consume(seq_batch(0, 2), out);
  out.time += 60ms;
  logic->consume(seq_batch(2, 1), out); // the age counts from the first
  out.time += 39ms;
  logic->tick(out);
  CHECK(out.emitted.empty());
  out.time += 1ms;
  logic->tick(out);
  REQUIRE(out.emitted.size() == 1);
  CHECK(out.seqs() == std::vector<uint64_t>{0, 1, 2});
  out.time += 1s;
  logic->tick(out); // nothing held: nothing sent
  CHECK(out.emitted.size() == 1);
}

TEST_CASE("batch sends its partial group when upstream is starved") {
  node_under_test n{"type: batch, size: 10"};
  auto logic = n.make();
  fake_emitter out;
  logic->consume(seq_batch(0, 4), out);
  logic->starved(out);
  REQUIRE(out.emitted.size() == 1);
  CHECK(out.emitted[0].size() == 4);
  CHECK(logic->buffered() == 0);
}

TEST_CASE("batch by bytes flushes when the bodies reach the limit") {
  node_under_test n{"type: batch, size: 100, bytes: 4B"};
  auto logic = n.make();
  fake_emitter out;
  logic->consume(batch_of({rec(0, "ab"), rec(1, "c"), rec(2, "d"),
                           rec(3, "efgh"), rec(4, "i")}),
                 out);
  REQUIRE(out.emitted.size() == 2);
  CHECK(out.emitted[0].size() == 3); // 2 + 1 + 1 bytes
  CHECK(out.emitted[1].size() == 1); // 4 bytes at once
  CHECK(logic->buffered() == 1);
}

// -- dedupe -------------------------------------------------------------------

TEST_CASE("dedupe by seq drops redelivered records; sources are told apart") {
  node_under_test n{"type: dedupe"};
  auto logic = n.make();
  fake_emitter out;
  logic->consume(batch_of({rec(0, "a"), rec(1, "b")}), out);
  logic->consume(batch_of({rec(1, "b"), rec(2, "c"), rec(1, "x", "", 2)}), out);
  CHECK(out.seqs() == std::vector<uint64_t>{0, 1, 2, 1});
  CHECK(out.records().back().ctx.origin == 2);
  CHECK(out.dropped == 1);
}

TEST_CASE("dedupe by key within a bounded window") {
  node_under_test n{"type: dedupe, by: key, window: 2"};
  auto logic = n.make();
  fake_emitter out;
  logic->consume(batch_of({rec(0, "", "a"), rec(1, "", "b"), rec(2, "", "a")}),
                 out);
  CHECK(out.seqs() == std::vector<uint64_t>{0, 1});
  CHECK(out.dropped == 1);
  // A third key pushes "a" out of the window: it counts as new again.
  logic->consume(batch_of({rec(3, "", "c"), rec(4, "", "a"), rec(5, "", "c")}),
                 out);
  CHECK(out.seqs() == std::vector<uint64_t>{0, 1, 3, 4});
  CHECK(out.dropped == 2);
}

// -- reduce -------------------------------------------------------------------

TEST_CASE("reduce counts per key and emits the totals at finish") {
  node_under_test n{"type: reduce"};
  auto logic = n.make();
  fake_emitter out;
  logic->consume(batch_of({rec(0, "", "b"), rec(1, "", "a"), rec(2, "", "b")}),
                 out);
  CHECK(out.emitted.empty());
  CHECK(out.dropped == 3); // folded into the totals
  logic->finish(out);
  CHECK(out.created == 2);
  auto rs = out.records();
  REQUIRE(rs.size() == 2);
  CHECK(rs[0].key == "a"); // by key, in key order
  CHECK(rs[0].body == "1");
  CHECK(rs[1].key == "b");
  CHECK(rs[1].body == "2");
}

TEST_CASE("reduce sum: exact integers, a non-number fails, a redelivery is "
          "not folded twice") {
  node_under_test n{"type: reduce, op: sum, by: all"};
  auto logic = n.make();
  fake_emitter out;
  logic->consume(batch_of({rec(0, "9223372036854775807"),
                           rec(1, "9223372036854775807"), rec(2, "2"),
                           rec(3, "x1")}),
                 out);
  auto again = rec(2, "2");
  again.ctx.attempt = 2;
  logic->consume(batch_of({again}), out);
  CHECK(out.dropped == 4);
  REQUIRE(out.failed.size() == 1);
  CHECK(out.failed[0].first.seq == 3);
  CHECK(out.failed[0].second
        == "sum: body is not a decimal number: 'x1'");
  logic->finish(out);
  REQUIRE(out.emitted_records() == 1);
  CHECK(out.records()[0].body == "18446744073709551616"); // 2^64: no overflow
  CHECK(out.created == 1);
}

TEST_CASE("reduce: nothing consumed, nothing emitted") {
  node_under_test n{"type: reduce"};
  auto logic = n.make();
  fake_emitter out;
  logic->finish(out);
  CHECK(out.emitted.empty());
  CHECK(out.created == 0);
}

// -- generate -----------------------------------------------------------------

TEST_CASE("generate makes `count` records from its templates") {
  node_under_test n{"type: generate, count: 5, start: 10, template: \"r{i}-{i}\", "
                    "key: \"k{i}\"",
                    role::source};
  auto logic = n.make();
  fake_emitter out;
  CHECK(logic->produce(2, out) == produce_status::more);
  CHECK(out.created == 2);
  CHECK(logic->produce(10, out) == produce_status::done);
  CHECK(out.created == 5);
  CHECK(out.seqs() == std::vector<uint64_t>{10, 11, 12, 13, 14});
  CHECK(out.bodies()
        == std::vector<std::string>{"r10-10", "r11-11", "r12-12", "r13-13",
                                    "r14-14"});
  CHECK(out.records()[0].key == "k10");
  CHECK(out.emitted.size() == 2);
}

TEST_CASE("generate's rate paces by the emitter's clock, exactly") {
  node_under_test n{"type: generate, count: 10, rate: 4/s", role::source};
  auto logic = n.make();
  fake_emitter out;
  CHECK(logic->idle_delay() == duration{250ms});
  // Driven like the node actor: produce, and when idle wait idle_delay().
  std::vector<std::pair<duration, size_t>> made; // (time, records emitted)
  auto start = out.time;
  for (int step = 0; step < 100; ++step) {
    auto before = out.emitted_records();
    auto status = logic->produce(1000, out);
    if (out.emitted_records() > before)
      made.emplace_back(out.time - start, out.emitted_records() - before);
    if (status == produce_status::done)
      break;
    REQUIRE(status == produce_status::idle);
    out.time += logic->idle_delay();
  }
  // One record at once, then one per 250ms: the 10th at 2.25s.
  REQUIRE(made.size() == 10);
  for (size_t k = 0; k < made.size(); ++k) {
    CHECK(made[k].first == duration{250ms} * static_cast<int64_t>(k));
    CHECK(made[k].second == 1);
  }
  CHECK(out.created == 10);
}

TEST_CASE("generate's rate: a late call makes up for the time passed, no "
          "more") {
  node_under_test n{"type: generate, count: 10, rate: 4/s", role::source};
  auto logic = n.make();
  fake_emitter out;
  CHECK(logic->produce(1000, out) == produce_status::idle);
  CHECK(out.emitted_records() == 1);
  CHECK(logic->produce(1000, out) == produce_status::idle); // same instant
  CHECK(out.emitted_records() == 1);
  out.time += 249ms;
  CHECK(logic->produce(1000, out) == produce_status::idle);
  CHECK(out.emitted_records() == 1);
  out.time += 751ms; // 1s after the first: 4 more are due
  CHECK(logic->produce(1000, out) == produce_status::idle);
  CHECK(out.emitted_records() == 5);
  CHECK(logic->produce(2, out) == produce_status::idle); // none due
  CHECK(out.emitted_records() == 5);
  out.time += 10s;
  CHECK(logic->produce(3, out) == produce_status::idle); // credit caps it
  CHECK(out.emitted_records() == 8);
  CHECK(logic->produce(1000, out) == produce_status::done);
  CHECK(out.seqs()
        == std::vector<uint64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
}

TEST_CASE("generate: a restart replays what was not acknowledged, then goes "
          "on") {
  node_under_test n{"type: generate, count: 6", role::source};
  std::unique_ptr<node_memory> memory;
  fake_emitter out;
  {
    auto logic = n.make(&memory);
    CHECK(logic->produce(2, out) == produce_status::more);
    CHECK(logic->produce(2, out) == produce_status::more);
    REQUIRE(out.emitted.size() == 2);
    logic->acknowledged(out.emitted[0]); // seqs 0, 1; 2 and 3 are not
  }
  fake_emitter again;
  auto logic = n.make(&memory, 1);
  for (int i = 0; i < 10; ++i)
    if (logic->produce(10, again) == produce_status::done)
      break;
  CHECK(again.seqs() == std::vector<uint64_t>{2, 3, 4, 5});
  auto rs = again.records();
  CHECK(rs[0].ctx.attempt == 2); // a replay
  CHECK(rs[2].ctx.attempt == 1); // new
}

// -- chaos --------------------------------------------------------------------

TEST_CASE("chaos: poison keys fail after every attempt, the rest passes") {
  node_under_test n{"type: chaos, keys: [bad]"};
  auto logic = n.make();
  fake_emitter out;
  logic->consume(batch_of({rec(0, "a", "ok"), rec(1, "b", "bad"),
                           rec(2, "c", "ok")}),
                 out);
  CHECK(out.seqs() == std::vector<uint64_t>{0, 2});
  REQUIRE(out.failed.size() == 1);
  CHECK(out.failed[0].first.seq == 1);
  CHECK(out.failed[0].first.ctx.attempt == 3);
  CHECK(out.failed[0].second == "chaos: poison key 'bad'");
}

TEST_CASE("chaos every: the first attempt fails, the retry passes") {
  node_under_test n{"type: chaos, every: 2"};
  auto logic = n.make();
  fake_emitter out;
  logic->consume(seq_batch(0, 4), out);
  CHECK(out.seqs() == std::vector<uint64_t>{0, 1, 2, 3});
  CHECK(out.failed.empty());
  auto rs = out.records();
  CHECK(rs[1].ctx.attempt == 2);
  CHECK(rs[3].ctx.attempt == 2);
  CHECK(rs[0].ctx.attempt == 1);
}

TEST_CASE("chaos kill: a first delivery crashes the node, a redelivery "
          "passes") {
  node_under_test n{"type: chaos, kill: 1"};
  auto logic = n.make();
  fake_emitter out;
  CHECK_THROWS_WITH(logic->consume(seq_batch(0, 2), out),
                    "chaos: actor killed by fault injection");
  auto redelivered = seq_batch(0, 2).take();
  for (auto& r : redelivered)
    r.ctx.attempt = 2;
  logic->consume(batch_of(std::move(redelivered)), out);
  CHECK(out.seqs() == std::vector<uint64_t>{0, 1});
}

TEST_CASE("chaos delay holds each batch that long on the emitter's clock") {
  node_under_test n{"type: chaos, delay: 1s"};
  auto logic = n.make();
  fake_emitter out;
  CHECK(logic->tick_interval() == duration{250ms});
  logic->consume(seq_batch(0, 2), out);
  out.time += 500ms;
  logic->consume(seq_batch(2, 3), out);
  CHECK(logic->held() == 5);
  CHECK(logic->buffered() == 5);
  out.time += 499ms;
  logic->tick(out);
  CHECK(out.emitted.empty());
  out.time += 1ms; // the first is 1s old
  logic->tick(out);
  CHECK(out.seqs() == std::vector<uint64_t>{0, 1});
  CHECK(logic->held() == 3);
  out.time += 500ms;
  logic->tick(out);
  CHECK(out.seqs() == std::vector<uint64_t>{0, 1, 2, 3, 4});
  CHECK(logic->held() == 0);
  CHECK(logic->buffered() == 0);
}

// -- null ---------------------------------------------------------------------

TEST_CASE("null passes every batch on to be counted") {
  node_under_test n{"type: null", role::sink};
  auto logic = n.make();
  fake_emitter out;
  logic->consume(seq_batch(0, 3), out);
  CHECK(out.emitted_records() == 3);
  CHECK(logic->buffered() == 0);
  CHECK(logic->tick_interval() == duration{0});
}

TEST_CASE("null with delay takes one batch per tick") {
  node_under_test n{"type: null, delay: 200ms", role::sink};
  auto logic = n.make();
  fake_emitter out;
  CHECK(logic->tick_interval() == duration{200ms});
  logic->consume(seq_batch(0, 2), out);
  logic->consume(seq_batch(2, 1), out);
  CHECK(out.emitted.empty());
  CHECK(logic->buffered() == 3);
  logic->tick(out);
  CHECK(out.seqs() == std::vector<uint64_t>{0, 1});
  CHECK(logic->buffered() == 1);
  logic->tick(out);
  logic->tick(out); // nothing left
  CHECK(out.seqs() == std::vector<uint64_t>{0, 1, 2});
  CHECK(logic->buffered() == 0);
}
