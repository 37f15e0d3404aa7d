// map's `partition_by: key` and `blocking: true` (issue 8, part 2): records of
// one key keep their order across parallel workers, and workers that block
// do not hold the scheduler's threads.
#include <doctest/doctest.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "troupe/loader.hpp"

#include "graph_harness.hpp"

using namespace troupe_test;

namespace {

// `count` records whose key is "k" + (i % keys), seq i.
class keyed_source : public node_logic {
public:
  keyed_source(uint64_t count, uint64_t keys) : count_(count), keys_(keys) {
  }
  produce_status produce(size_t max, emitter& out) override {
    std::vector<record> rs;
    while (next_ < count_ && rs.size() < std::min<size_t>(max, 7)) {
      record r;
      r.seq = next_;
      r.key = "k" + std::to_string(next_ % keys_);
      r.body = std::to_string(next_);
      ++next_;
      rs.push_back(std::move(r));
    }
    out.create(rs.size());
    out.emit(record_batch{std::move(rs)});
    return next_ < count_ ? produce_status::more : produce_status::done;
  }

private:
  uint64_t count_, keys_, next_ = 0;
};

void add_keyed(registry& reg) {
  actor_type t;
  t.name = "keyed";
  t.kind = actor_kind::source;
  t.params = {{"count", param_type::integer, false, "100", "", {}, 0},
              {"keys", param_type::integer, false, "5", "", {}, 1}};
  t.make_node = [](const node_context& ctx) {
    return std::make_unique<keyed_source>(
      static_cast<uint64_t>(ctx.spec.params.integer("count")),
      static_cast<uint64_t>(ctx.spec.params.integer("keys")));
  };
  reg.add(t);
}

} // namespace

TEST_CASE("partition_by: key keeps each key's order across parallel workers") {
  harness h;
  add_keyed(h.reg);
  // A function whose cost differs per key would reorder keys; per key the
  // order must hold anyway.
  auto run = h.start("version: 1\nname: p\nnodes:\n"
                     "  src: { type: keyed, count: 500, keys: 7 }\n"
                     "  m: { type: map, fn: upper, workers: 4, "
                     "partition_by: key, inputs: [src] }\n"
                     "  out: { type: collect, inputs: [m] }\n");
  REQUIRE(h.drive(run));
  auto rep = run.report();
  CHECK(rep.status == "completed");
  check_balanced(rep);
  auto& got = h.sinks["out"].records;
  REQUIRE(got.size() == 500);
  std::map<std::string, uint64_t> last;
  for (auto& r : got) {
    auto i = last.find(r.key);
    if (i != last.end())
      CHECK(r.seq > i->second);
    last[r.key] = r.seq;
  }
  CHECK(last.size() == 7);
}

TEST_CASE("partition_by and blocking are checked by lint") {
  registry reg;
  register_builtins(reg);
  auto lint = [&](const std::string& node) {
    auto res = load_graph_text("version: 1\nname: p\nnodes:\n"
                               "  src: { type: generate, count: 3 }\n"
                               "  m: "
                                 + node
                                 + "\n"
                                   "  out: { type: null, inputs: [m] }\n",
                               "p.yaml", reg);
    std::string all;
    for (auto& d : res.errors)
      all += d.str() + "\n";
    return all;
  };
  CHECK(lint("{ type: map, fn: upper, workers: 2, partition_by: key, "
             "inputs: [src] }")
          .empty());
  CHECK(lint("{ type: map, fn: upper, partition_by: key, inputs: [src] }")
          .find("p.yaml:5:") != std::string::npos);
  CHECK(lint("{ type: map, fn: upper, workers: 2, partition_by: key, "
             "ordered: true, inputs: [src] }")
          .find("keeps order per key") != std::string::npos);
  CHECK(lint("{ type: map, fn: upper, workers: 2, partition_by: seq, "
             "inputs: [src] }")
          .find("'partition_by' expects key or none") != std::string::npos);
  CHECK(lint("{ type: batch, size: 2, blocking: true, inputs: [src] }")
          .find("'blocking' applies to map and filter") != std::string::npos);
  CHECK(lint("{ type: map, fn: upper, blocking: maybe, inputs: [src] }")
          .find("'blocking' expects true or false") != std::string::npos);
}

// Real threads here: the point is what the scheduler's threads are doing. The
// bound is generous and only guards against a hang, it measures nothing.
TEST_CASE("blocking workers do not hold the scheduler: another graph runs "
          "while every worker blocks") {
  auto reg = std::make_shared<registry>();
  register_builtins(*reg);
  std::mutex m;
  std::condition_variable cv;
  bool open = false;
  std::atomic<int> inside{0};
  reg->add_function("wait_gate", "blocks until the test opens the gate",
                    [&] {
                      return record_fn{[&](record&) {
                        ++inside;
                        std::unique_lock<std::mutex> lock{m};
                        cv.wait_for(lock, std::chrono::seconds(60),
                                    [&] { return open; });
                        return fn_result::keep();
                      }};
                    });
  // Two scheduler threads, two blocking workers: without `blocking`, both
  // threads would sit in wait_gate and nothing else could run.
  runtime rt{std::shared_ptr<const registry>(reg), runtime_options{2, false}};
  auto load = [&](const std::string& yaml) {
    auto res = load_graph_text(yaml, "b.yaml", *reg);
    REQUIRE(res.ok());
    return rt.start(*res.graph);
  };
  auto blocked = load("version: 1\nname: blocked\n"
                      "runtime: { batch_size: 1 }\nnodes:\n"
                      "  src: { type: generate, count: 2 }\n"
                      "  m: { type: map, fn: wait_gate, workers: 2, "
                      "blocking: true, inputs: [src] }\n"
                      "  out: { type: null, inputs: [m] }\n");
  // One record per batch: each worker gets one and blocks in the gate.
  for (int i = 0; i < 6000 && inside.load() < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  REQUIRE(inside.load() == 2);
  auto other = load("version: 1\nname: other\nnodes:\n"
                    "  src: { type: generate, count: 5000 }\n"
                    "  m: { type: map, fn: sha256, workers: 2, inputs: [src] }\n"
                    "  out: { type: null, inputs: [m] }\n");
  CHECK(other.wait_for(std::chrono::seconds(30)));
  CHECK(other.report().status == "completed");
  CHECK_FALSE(blocked.finished());
  {
    std::lock_guard<std::mutex> lock{m};
    open = true;
  }
  cv.notify_all();
  REQUIRE(blocked.wait_for(std::chrono::seconds(30)));
  CHECK(blocked.report().status == "completed");
}
