// The test harness for graphs on CAF's test coordinator (one thread,
// virtual time): a registry with test node types, a deterministic runtime,
// and helpers that drive a run and inspect what the sinks got.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <stdexcept>

#include <caf/actor_system.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include "troupe/loader.hpp"
#include "troupe/registry.hpp"
#include "troupe/runtime.hpp"

namespace troupe_test {

using namespace troupe;
using namespace std::chrono_literals;

// A sink that keeps what it receives, for the test to inspect. Tests run on
// one thread (the test coordinator), so a plain vector is safe here.
struct collected {
  std::vector<record> records;
  std::vector<size_t> batch_sizes;
};

class collect_sink : public node_logic {
public:
  explicit collect_sink(collected* out) : out_(out) {
  }
  void consume(record_batch batch, emitter& out) override {
    out_->batch_sizes.push_back(batch.size());
    for (auto& r : batch.records())
      out_->records.push_back(r);
    out.emit(std::move(batch));
  }

private:
  collected* out_;
};

// A stage whose logic throws the first time it sees seq 5 (per harness): a
// crash of the node itself, not of one record.
class crash_once_stage : public node_logic {
public:
  explicit crash_once_stage(int* crashes) : crashes_(crashes) {
  }
  void consume(record_batch batch, emitter& out) override {
    for (auto& r : batch.records())
      if (r.seq == 5 && (*crashes_)++ == 0)
        throw std::runtime_error("stage state corrupted");
    out.emit(std::move(batch));
  }

private:
  int* crashes_;
};

// A stage that throws on every batch: a node that can never succeed.
class always_crash_stage : public node_logic {
public:
  void consume(record_batch, emitter&) override {
    throw std::runtime_error("broken for good");
  }
};

// A source that emits `count` records, then stays idle until stopped.
class trickle_source : public node_logic {
public:
  explicit trickle_source(uint64_t count) : count_(count) {
  }
  produce_status produce(size_t, emitter& out) override {
    if (sent_)
      return produce_status::idle;
    std::vector<record> rs(count_);
    for (uint64_t i = 0; i < count_; ++i)
      rs[i].seq = i;
    out.create(count_);
    out.emit(record_batch{std::move(rs)});
    sent_ = true;
    return produce_status::idle;
  }
  duration idle_delay() const override {
    return std::chrono::hours(1);
  }

private:
  uint64_t count_;
  bool sent_ = false;
};

struct harness {
  // Shared with the runtime: tests add types after it started.
  std::shared_ptr<registry> shared_reg = std::make_shared<registry>();
  registry& reg = *shared_reg;
  std::map<std::string, collected> sinks;
  int flaky_throws = 0;
  int stage_crashes = 0;
  std::unique_ptr<runtime> rt;
  caf::scheduler::test_coordinator* sched = nullptr;

  harness() {
    register_builtins(reg);
    actor_type collect;
    collect.name = "collect";
    collect.kind = actor_kind::sink;
    collect.make_node = [this](const node_context& ctx) {
      return std::make_unique<collect_sink>(&sinks[ctx.spec.name]);
    };
    reg.add(collect);
    actor_type trickle;
    trickle.name = "trickle";
    trickle.kind = actor_kind::source;
    trickle.params = {{"count", param_type::integer, false, "3", "", {}, 0}};
    trickle.make_node = [](const node_context& ctx) {
      return std::make_unique<trickle_source>(
        static_cast<uint64_t>(ctx.spec.params.integer("count")));
    };
    reg.add(trickle);
    actor_type crash_once;
    crash_once.name = "crash_once";
    crash_once.kind = actor_kind::stage;
    crash_once.parallel = true;
    crash_once.make_node = [this](const node_context&) {
      return std::make_unique<crash_once_stage>(&stage_crashes);
    };
    reg.add(crash_once);
    actor_type always_crash;
    always_crash.name = "always_crash";
    always_crash.kind = actor_kind::stage;
    always_crash.make_node = [](const node_context&) {
      return std::make_unique<always_crash_stage>();
    };
    reg.add(always_crash);
    // Throws once, on the first record with seq 5 it ever sees.
    reg.add_function("flaky", "", [this] {
      return record_fn{[this](record& r) {
        if (r.seq == 5 && flaky_throws++ == 0)
          throw std::runtime_error("flaky failure");
        return fn_result::keep();
      }};
    });
    // Throws every time on seq 3: a poison record.
    reg.add_function("poison", "", [] {
      return record_fn{[](record& r) {
        if (r.seq == 3)
          throw std::runtime_error("poison record");
        return fn_result::keep();
      }};
    });
    rt = std::make_unique<runtime>(
      std::shared_ptr<const registry>(shared_reg), runtime_options{1, true});
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(
      rt->system().scheduler());
  }

  ~harness() {
    sched->run();
  }

  graph_run start(const std::string& yaml) {
    auto res = load_graph_text(yaml, "test.yaml", reg);
    std::string errs;
    for (auto& d : res.errors)
      errs += d.str() + "\n";
    REQUIRE_MESSAGE(res.ok(), errs);
    return rt->start(*res.graph);
  }

  // Runs all ready work, then moves virtual time in steps until the run ends
  // or `limit` of virtual time passed.
  bool drive(const graph_run& run, duration limit = 60s,
             duration step = 10ms) {
    sched->run();
    for (duration t{0}; t < limit && !run.finished(); t += step) {
      sched->advance_time(step);
      sched->run();
    }
    return run.finished();
  }
};

inline std::vector<uint64_t> seqs(const collected& c) {
  std::vector<uint64_t> out;
  for (auto& r : c.records)
    out.push_back(r.seq);
  return out;
}

// Sorted, without the duplicates at-least-once delivery may produce.
inline std::vector<uint64_t> unique_seqs(const collected& c) {
  auto out = seqs(c);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// The restarts of the node called `name` (fails the test if there is none).
inline uint64_t restarts_of(const run_report& rep, const std::string& name) {
  for (auto& n : rep.nodes)
    if (n.name == name)
      return n.restarts;
  FAIL("no node " << name);
  return 0;
}

inline void check_balanced(const run_report& rep) {
  for (auto& n : rep.nodes)
    CHECK_MESSAGE(n.balanced(), "node " << n.name << " is not balanced");
}

} // namespace troupe_test
