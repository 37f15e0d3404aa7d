// worker_pool (issue 8, part 2): routing, priorities, each on_full policy,
// crashed workers replaced and their tasks retried, resizing, stats, a node
// calling the pool through pool_client in a graph, and blocking workers on
// threads of their own. All on CAF's test coordinator (one thread, virtual
// time) except the last test, which needs real threads by its nature.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "graph_harness.hpp"
#include "troupe/actors/type_ids.hpp"
#include "troupe/actors/worker_pool.hpp"
#include "troupe/errors.hpp"
#include "troupe/waiting.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

struct outcome {
  bool done = false;
  bool ok = false;
  pool_result res;
  std::string error;
};

using outcomes = std::vector<std::shared_ptr<outcome>>;

struct fixture {
  std::shared_ptr<registry> reg = [] {
    auto r = std::make_shared<registry>();
    register_builtins(*r);
    // Keeps even seqs, drops odd ones, fails seq 4 (a record-level failure,
    // not a crash: map's semantics).
    r->add_function("evens", "", [] {
      return record_fn{[](record& rec) {
        if (rec.seq == 4)
          throw std::runtime_error("four is poison");
        if (rec.seq % 2)
          return fn_result::drop();
        rec.body += "!";
        return fn_result::keep();
      }};
    });
    return r;
  }();
  std::unique_ptr<runtime> rt
    = std::make_unique<runtime>(std::shared_ptr<const registry>(reg),
                                runtime_options{1, true});
  caf::scheduler::test_coordinator& sched
    = dynamic_cast<caf::scheduler::test_coordinator&>(
      rt->system().scheduler());
  std::vector<std::string> ran; // what callables ran, in order (one thread)
  caf::actor submitter;          // of the last submit()

  // Runs the last submitter (it sends its requests) and lets the pool take
  // the first; stats_now() has it take the rest. The workers run nothing.
  void deliver_submits(const worker_pool_actor& p) {
    REQUIRE(sched.prioritize(submitter));
    sched.run_once();
    REQUIRE(sched.prioritize(p));
    sched.run_once();
  }

  ~fixture() {
    sched.run();
  }

  worker_pool_actor pool(worker_pool_config cfg) {
    auto p = spawn_worker_pool(rt->system(), cfg, reg);
    sched.run();
    return p;
  }

  // A task that logs its name when it runs.
  pool_task logged(std::string name, int32_t priority = 0,
                   std::string key = {}) {
    return make_callable_task(
      [this, name] {
        ran.push_back(name);
        return name;
      },
      std::move(key), priority);
  }

  // Submits all tasks from one actor in one go (they reach the pool in this
  // order, in one mailbox), then runs everything ready.
  outcomes submit(const worker_pool_actor& p, std::vector<pool_task> tasks,
                  bool run = true) {
    outcomes outs;
    for (size_t i = 0; i < tasks.size(); ++i)
      outs.push_back(std::make_shared<outcome>());
    submitter = rt->system().spawn(
      [p, tasks, outs](caf::event_based_actor* self, int) {
        for (size_t i = 0; i < tasks.size(); ++i) {
          auto o = outs[i];
          self->request(p, std::chrono::seconds(3600), pool_submit_atom_v, tasks[i])
            .then(
              [o](pool_result& r) {
                o->done = o->ok = true;
                o->res = std::move(r);
              },
              [o](caf::error& e) {
                o->done = true;
                o->error = render(e);
              });
        }
      },
      0); // (the int: CAF 0.17 and argument-less function actors)
    if (run)
      sched.run();
    return outs;
  }

  // Stats now, before any other ready job runs: only the asker and the pool
  // are stepped.
  pool_stats stats_now(const worker_pool_actor& p) {
    auto out = std::make_shared<pool_stats>();
    auto got = std::make_shared<bool>(false);
    auto asker = rt->system().spawn(
      [p, out, got](caf::event_based_actor* self, int) {
        self->request(p, std::chrono::seconds(5), stats_atom_v)
          .then([out, got](pool_stats& s) {
            *out = s;
            *got = true;
          });
      },
      0);
    // (run_once handles one message: the pool may first take the submits
    // still in its mailbox, in order.)
    for (int i = 0; i < 1000 && !*got; ++i)
      if (sched.prioritize(asker) || sched.prioritize(p))
        sched.run_once();
    REQUIRE(*got);
    return *out;
  }

  pool_stats stats(const worker_pool_actor& p) {
    auto out = std::make_shared<pool_stats>();
    auto got = std::make_shared<bool>(false);
    rt->system().spawn(
      [p, out, got](caf::event_based_actor* self, int) {
        self->request(p, std::chrono::seconds(5), stats_atom_v)
          .then([out, got](pool_stats& s) {
            *out = s;
            *got = true;
          });
      },
      0);
    sched.run();
    REQUIRE(*got);
    return *out;
  }
};

std::vector<uint64_t> workers_of(const outcomes& outs) {
  std::vector<uint64_t> w;
  for (auto& o : outs)
    w.push_back(o->ok ? o->res.worker : 0);
  return w;
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

record_batch numbered(size_t n) {
  std::vector<record> rs(n);
  for (size_t i = 0; i < n; ++i) {
    rs[i].seq = i;
    rs[i].body = "r" + std::to_string(i);
  }
  return record_batch{std::move(rs)};
}

} // namespace

TEST_CASE("worker_pool: a callable's result comes back with the submit") {
  fixture f;
  worker_pool_config cfg;
  cfg.workers = 2;
  auto p = f.pool(cfg);
  auto outs = f.submit(p, {make_callable_task([] { return std::string{"42"}; })});
  REQUIRE(outs[0]->ok);
  CHECK(outs[0]->res.value == "42");
  CHECK(outs[0]->res.attempts == 1);
  auto st = f.stats(p);
  CHECK(st.submitted == 1);
  CHECK(st.completed == 1);
  CHECK(st.workers == 2);
  CHECK(st.busy == 0);
  CHECK(st.queued == 0);
  // The convenience for callables, from any actor.
  auto got = std::make_shared<std::string>();
  f.rt->system().spawn(
    [p, got](caf::event_based_actor* self, int) {
      submit_callable(self, p, std::chrono::seconds(5),
                      [] { return std::string{"43"}; })
        .then([got](pool_result& r) { *got = r.value; },
              [got](caf::error& e) { *got = render(e); });
    },
    0);
  f.sched.run();
  CHECK(*got == "43");
}

TEST_CASE("worker_pool: a registered function gives what map would: kept, "
          "dropped, failed with reasons") {
  fixture f;
  auto p = f.pool({});
  auto outs = f.submit(p, {make_function_task("evens", numbered(6)),
                           make_function_task("upper", numbered(2)),
                           make_function_task("no_such_fn", numbered(1))});
  REQUIRE(outs[0]->ok);
  auto& r = outs[0]->res;
  std::vector<std::string> kept;
  for (auto& rec : r.kept.records())
    kept.push_back(rec.body);
  CHECK(kept == std::vector<std::string>{"r0!", "r2!"});
  CHECK(r.dropped == 3); // 1, 3, 5
  REQUIRE(r.failed.size() == 1);
  CHECK(r.failed[0].rec.seq == 4);
  CHECK(r.failed[0].reason == "four is poison");
  REQUIRE(outs[1]->ok);
  CHECK(outs[1]->res.kept.records().begin()->body == "R0");
  REQUIRE(outs[2]->done);
  CHECK_FALSE(outs[2]->ok);
  CHECK(contains(outs[2]->error, "refused"));
  CHECK(contains(outs[2]->error, "unknown function 'no_such_fn'"));
}

TEST_CASE("worker_pool: round_robin spreads tasks over the workers in turn") {
  fixture f;
  worker_pool_config cfg;
  cfg.workers = 3;
  cfg.worker_queue = 4;
  auto p = f.pool(cfg);
  std::vector<pool_task> ts;
  for (int i = 0; i < 6; ++i)
    ts.push_back(f.logged("t" + std::to_string(i)));
  auto outs = f.submit(p, ts);
  CHECK(workers_of(outs) == std::vector<uint64_t>{1, 2, 3, 1, 2, 3});
}

TEST_CASE("worker_pool: least_loaded picks the worker with fewest in flight") {
  fixture f;
  worker_pool_config cfg;
  cfg.workers = 3;
  cfg.worker_queue = 4;
  cfg.routing = pool_routing::least_loaded;
  auto p = f.pool(cfg);
  std::vector<pool_task> ts;
  for (int i = 0; i < 7; ++i)
    ts.push_back(f.logged("t" + std::to_string(i)));
  auto outs = f.submit(p, ts);
  CHECK(workers_of(outs) == std::vector<uint64_t>{1, 2, 3, 1, 2, 3, 1});
}

TEST_CASE("worker_pool: key_hash keeps each key's order and spreads keys") {
  fixture f;
  worker_pool_config cfg;
  cfg.workers = 4;
  cfg.worker_queue = 1;
  cfg.routing = pool_routing::key_hash;
  auto p = f.pool(cfg);
  std::vector<pool_task> ts;
  std::vector<std::string> keys{"a", "b", "c", "d", "e", "f", "g", "h"};
  for (int i = 0; i < 5; ++i)
    for (auto& k : keys)
      ts.push_back(f.logged(k + std::to_string(i), 0, k));
  auto outs = f.submit(p, ts);
  for (auto& o : outs)
    REQUIRE(o->ok);
  // Each key ran in submission order, always on the same worker.
  for (auto& k : keys) {
    std::vector<std::string> order;
    std::set<uint64_t> on;
    for (auto& name : f.ran)
      if (name[0] == k[0])
        order.push_back(name);
    for (size_t i = 0; i < outs.size(); ++i)
      if (ts[i].key == k)
        on.insert(outs[i]->res.worker);
    CHECK(order
          == std::vector<std::string>{k + "0", k + "1", k + "2", k + "3",
                                      k + "4"});
    CHECK(on.size() == 1);
  }
  // Different keys ran on different workers.
  auto ws = workers_of(outs);
  std::set<uint64_t> all(ws.begin(), ws.end());
  CHECK(all.size() >= 2);
}

TEST_CASE("worker_pool: key_hash keeps a key's order across a crash and a "
          "retry") {
  fixture f;
  worker_pool_config cfg;
  cfg.workers = 2;
  cfg.worker_queue = 2;
  cfg.routing = pool_routing::key_hash;
  auto p = f.pool(cfg);
  auto crashed = std::make_shared<bool>(false);
  auto first = make_callable_task(
    [&f, crashed]() -> std::string {
      if (!*crashed) {
        *crashed = true;
        throw std::runtime_error("once");
      }
      f.ran.push_back("k0");
      return "k0";
    },
    "k");
  auto outs = f.submit(p, {first, f.logged("k1", 0, "k"), f.logged("k2", 0, "k")});
  for (auto& o : outs)
    REQUIRE(o->ok);
  CHECK(f.ran == std::vector<std::string>{"k0", "k1", "k2"});
  CHECK(outs[0]->res.attempts == 2);
}

TEST_CASE("worker_pool: higher priority first, FIFO within one priority") {
  fixture f;
  worker_pool_config cfg;
  cfg.workers = 1;
  cfg.worker_queue = 1; // exact priorities: nothing handed ahead
  auto p = f.pool(cfg);
  f.submit(p, {f.logged("a", 0), f.logged("b", 1), f.logged("c", 5),
               f.logged("d", 5), f.logged("e", 0), f.logged("f", 1)});
  // "a" went straight to the idle worker; the rest waited in the queue.
  CHECK(f.ran == std::vector<std::string>{"a", "c", "d", "b", "f", "e"});
}

TEST_CASE("worker_pool: on_full reject and drop_newest refuse the new task, "
          "counted apart") {
  for (auto policy : {pool_on_full::reject, pool_on_full::drop_newest}) {
    fixture f;
    worker_pool_config cfg;
    cfg.workers = 1;
    cfg.worker_queue = 1;
    cfg.queue_size = 2;
    cfg.on_full = policy;
    auto p = f.pool(cfg);
    auto outs = f.submit(p, {f.logged("1"), f.logged("2"), f.logged("3"),
                             f.logged("4"), f.logged("5")});
    CHECK(f.ran == std::vector<std::string>{"1", "2", "3"});
    CHECK_FALSE(outs[3]->ok);
    CHECK_FALSE(outs[4]->ok);
    CHECK(contains(outs[3]->error, "refused"));
    CHECK(contains(outs[3]->error, "queue full (queue_size 2)"));
    auto st = f.stats(p);
    CHECK(st.completed == 3);
    if (policy == pool_on_full::reject) {
      CHECK(st.rejected == 2);
      CHECK(st.dropped_newest == 0);
    } else {
      CHECK(st.dropped_newest == 2);
      CHECK(st.rejected == 0);
      CHECK(contains(outs[4]->error, "drop_newest"));
    }
  }
}

TEST_CASE("worker_pool: on_full drop_oldest evicts the oldest of the lowest "
          "priority") {
  fixture f;
  worker_pool_config cfg;
  cfg.workers = 1;
  cfg.worker_queue = 1;
  cfg.queue_size = 2;
  cfg.on_full = pool_on_full::drop_oldest;
  auto p = f.pool(cfg);
  auto outs = f.submit(p, {f.logged("1"), f.logged("2"), f.logged("3", 9),
                           f.logged("4"), f.logged("5", 9)});
  // Queue after "4": {3 (p9), 2, 4} -> 2 evicted; after "5": {3, 5, 4} -> 4.
  CHECK(f.ran == std::vector<std::string>{"1", "3", "5"});
  CHECK(contains(outs[1]->error, "drop_oldest"));
  CHECK_FALSE(outs[3]->ok);
  auto st = f.stats(p);
  CHECK(st.dropped_oldest == 2);
  CHECK(st.completed == 3);
}

TEST_CASE("worker_pool: on_full block holds the submit's reply until there "
          "is room; past max_blocked it is rejected") {
  fixture f;
  worker_pool_config cfg;
  cfg.workers = 1;
  cfg.worker_queue = 1;
  cfg.queue_size = 1;
  cfg.max_blocked = 1;
  auto p = f.pool(cfg);
  auto outs = f.submit(p, {f.logged("1"), f.logged("2"), f.logged("3"),
                           f.logged("4")},
                       false);
  f.deliver_submits(p);
  auto mid = f.stats_now(p);
  CHECK(mid.busy == 1);    // "1"
  CHECK(mid.queued == 1);  // "2"
  CHECK(mid.blocked == 1); // "3": its submitter's request stays pending
  CHECK(mid.rejected == 1); // "4": no room in the blocked list either
  CHECK_FALSE(outs[2]->done);
  f.sched.run();
  REQUIRE(outs[3]->done);
  CHECK(contains(outs[3]->error, "max_blocked"));
  CHECK(f.ran == std::vector<std::string>{"1", "2", "3"});
  CHECK(outs[2]->ok);
  auto st = f.stats(p);
  CHECK(st.blocked_total == 1);
  CHECK(st.rejected == 1);
  CHECK(st.blocked == 0);
  CHECK(st.completed == 3);
}

TEST_CASE("worker_pool: a crashing task's worker is replaced and the task "
          "retried; after max_attempts it fails with the reason") {
  fixture f;
  worker_pool_config cfg;
  cfg.workers = 1;
  cfg.worker_queue = 2;
  cfg.max_attempts = 3;
  auto p = f.pool(cfg);
  auto tries = std::make_shared<int>(0);
  auto twice = make_callable_task([tries]() -> std::string {
    if (++*tries <= 2)
      throw std::runtime_error("flaky");
    return "third time";
  });
  auto never = make_callable_task(
    []() -> std::string { throw std::runtime_error("disk on fire"); });
  // "behind" sits in the crashing worker's mailbox: it goes back to the
  // queue without an attempt counted.
  auto outs = f.submit(p, {twice, f.logged("behind"), never});
  REQUIRE(outs[0]->ok);
  CHECK(outs[0]->res.value == "third time");
  CHECK(outs[0]->res.attempts == 3);
  REQUIRE(outs[1]->ok);
  CHECK(outs[1]->res.attempts == 1);
  CHECK(f.ran == std::vector<std::string>{"behind"});
  REQUIRE(outs[2]->done);
  CHECK_FALSE(outs[2]->ok);
  CHECK(contains(outs[2]->error, "failed after 3 attempt(s)"));
  CHECK(contains(outs[2]->error, "disk on fire"));
  auto st = f.stats(p);
  CHECK(st.crashes == 5);  // 2 + 3 runs that threw
  CHECK(st.retried == 4);  // 2 for `twice`, 2 for `never`
  CHECK(st.failed == 1);
  CHECK(st.completed == 2);
  CHECK(st.workers == 1);  // each dead worker was replaced
  // The pool still works.
  auto more = f.submit(p, {f.logged("after")});
  CHECK(more[0]->ok);
}

TEST_CASE("worker_pool: a worker dying of a non-standard exception is "
          "replaced and its task retried") {
  fixture f;
  worker_pool_config cfg;
  cfg.workers = 1;
  cfg.worker_queue = 1;
  auto p = f.pool(cfg);
  // On its first run only, the task throws something that is not a
  // std::exception.
  auto first = std::make_shared<bool>(true);
  auto task = make_callable_task([first]() -> std::string {
    if (*first) {
      *first = false;
      throw caf::exit_reason::kill; // a non-standard exception
    }
    return "ok";
  });
  auto outs = f.submit(p, {task});
  REQUIRE(outs[0]->ok);
  CHECK(outs[0]->res.attempts == 2);
  CHECK(f.stats(p).crashes == 1);
}

TEST_CASE("worker_pool: grows by queue depth up to max_workers and shrinks "
          "after idle_timeout") {
  fixture f;
  worker_pool_config cfg;
  cfg.workers = 1;
  cfg.min_workers = 1;
  cfg.max_workers = 3;
  cfg.worker_queue = 1;
  cfg.idle_timeout = 10s;
  auto p = f.pool(cfg);
  std::vector<pool_task> ts;
  for (int i = 0; i < 6; ++i)
    ts.push_back(f.logged("t" + std::to_string(i)));
  auto outs = f.submit(p, ts);
  for (auto& o : outs)
    CHECK(o->ok);
  auto st = f.stats(p);
  CHECK(st.grown == 2);
  CHECK(st.peak_workers == 3);
  CHECK(st.workers == 3);
  auto ws = workers_of(outs);
  std::set<uint64_t> used(ws.begin(), ws.end());
  CHECK(used.size() == 3);
  // Not idle long enough yet.
  f.sched.advance_time(9s);
  f.sched.run();
  CHECK(f.stats(p).workers == 3);
  f.sched.advance_time(2s);
  f.sched.run();
  st = f.stats(p);
  CHECK(st.workers == 1); // min_workers
  CHECK(st.shrunk == 2);
  // No timer left once at min_workers: nothing more happens.
  f.sched.advance_time(60s);
  f.sched.run();
  CHECK(f.stats(p).workers == 1);
}

TEST_CASE("worker_pool: an impossible config is refused by spawn and by the "
          "YAML validator") {
  worker_pool_config c;
  c.workers = 2;
  c.min_workers = 3;
  c.max_workers = 2;
  CHECK(contains(check_worker_pool_config(c), "min_workers (3) is above "
                                              "max_workers (2)"));
  c = {};
  c.queue_size = 0;
  CHECK(contains(check_worker_pool_config(c), "queue_size 0 with on_full: block"));
  c.on_full = pool_on_full::reject;
  CHECK(check_worker_pool_config(c).empty());
  fixture f;
  CHECK_THROWS_AS(spawn_worker_pool(f.rt->system(),
                                    [] {
                                      worker_pool_config w;
                                      w.workers = 5;
                                      w.max_workers = 4;
                                      return w;
                                    }(),
                                    f.reg),
                  std::invalid_argument);
  auto loaded = load_graph_text(R"(version: 1
resources:
  p: { type: worker_pool, workers: 2, min_workers: 3, max_workers: 8 }
nodes:
  src: { type: generate, count: 1 }
  out: { type: null, inputs: [src] }
)",
                                "pool.yaml", *f.reg);
  REQUIRE_FALSE(loaded.ok());
  CHECK(contains(loaded.errors[0].str(), "pool.yaml:3:"));
  CHECK(contains(loaded.errors[0].str(), "workers (2) must lie between"));
}

TEST_CASE("worker_pool: a function task serialises; a C++ callable refuses "
          "to, clearly") {
  fixture f;
  auto t = make_function_task("upper", numbered(2), "k", 7);
  std::vector<char> buf;
  caf::binary_serializer sink{f.rt->system(), buf};
  auto err = sink(t);
  REQUIRE_FALSE(err);
  pool_task back;
  caf::binary_deserializer source{f.rt->system(), buf};
  REQUIRE_FALSE(source(back));
  CHECK(back.fn == "upper");
  CHECK(back.key == "k");
  CHECK(back.priority == 7);
  CHECK(back.records.size() == 2);
  CHECK_FALSE(back.call.fn);
  auto c = make_callable_task([] { return std::string{}; });
  std::vector<char> buf2;
  caf::binary_serializer sink2{f.rt->system(), buf2};
  auto err2 = sink2(c);
  REQUIRE(err2);
  CHECK(contains(render(err2), "local only and cannot be serialised"));
}

TEST_CASE("worker_pool: a runtime resource is handed out by typed handle; "
          "releasing it answers waiting submitters at once") {
  fixture f;
  f.rt->add_resource({"pool", "worker_pool"}); // the YAML defaults
  auto p = f.rt->resource<worker_pool_actor>("pool");
  auto st = f.stats(p);
  CHECK(st.workers == 4);
  auto outs = f.submit(p, {f.logged("1")});
  CHECK(outs[0]->ok);
  // Four workers each take two tasks ahead; ten more wait in the queue.
  std::vector<pool_task> ts;
  for (int i = 0; i < 18; ++i)
    ts.push_back(f.logged("w" + std::to_string(i)));
  auto waiting = f.submit(p, ts, false);
  f.deliver_submits(p);
  CHECK(f.stats_now(p).queued == 10);
  CHECK(f.rt->release_resource("pool"));
  f.sched.run();
  size_t stopped = 0;
  for (auto& o : waiting) {
    REQUIRE(o->done);
    if (!o->ok) {
      CHECK(contains(o->error, "unavailable"));
      ++stopped;
    }
  }
  CHECK(stopped >= 10); // at least the queued ones, none left waiting
}

// -- a node calling the pool through pool_client ------------------------------

namespace {

// Hands each batch to the pool named in its `pool:` slot and passes on what
// comes back: kept records emitted, failed ones to errors, dropped counted;
// an error reply fails the whole batch with the reason.
class pool_stage : public node_logic {
public:
  explicit pool_stage(const node_context& ctx)
    : client_(ctx.calls ? ctx.calls->client<pool_client>("pool") : nullptr),
      fn_(ctx.spec.params.str("fn")) {
    if (!client_)
      throw unrecoverable_error("pool_stage needs a `pool:` slot");
  }

  void consume(record_batch in, emitter&) override {
    held_ += in.size();
    waiting_.push_back({in, false});
    auto* w = &waiting_.back(); // deque: stays put while others come and go
    auto key = in.empty() ? std::string{} : in.records().begin()->key;
    client_->submit(fn_, std::move(in), key, 0,
                    [this, w](call_result<pool_result> r, emitter& out) {
                      done(*w, std::move(r), out);
                    });
  }

  size_t buffered() const override {
    size_t n = 0;
    for (auto& w : waiting_)
      n += w.batch.size();
    return n;
  }

  size_t held() const override {
    return held_;
  }

private:
  struct waiting {
    record_batch batch;
    bool done = false;
  };

  void done(waiting& w, call_result<pool_result> r, emitter& out) {
    if (r.ok()) {
      auto& v = r.value();
      for (auto& f : v.failed)
        out.fail(std::move(f.rec), std::move(f.reason));
      out.drop(v.dropped);
      if (!v.kept.empty())
        out.emit(std::move(v.kept));
    } else {
      for (auto& rec : w.batch.records())
        out.fail(rec, r.error());
    }
    held_ -= w.batch.size();
    w.done = true;
    while (!waiting_.empty() && waiting_.front().done)
      waiting_.pop_front();
  }

  pool_client* client_;
  std::string fn_;
  std::deque<waiting> waiting_;
  size_t held_ = 0;
};

void add_pool_stage(registry& reg) {
  actor_type t;
  t.name = "pool_stage";
  t.slots = {"pool"};
  t.kind = actor_kind::stage;
  t.params = {{"fn", param_type::string, true, "", "function"}};
  t.make_node = [](const node_context& ctx) {
    return std::make_unique<pool_stage>(ctx);
  };
  reg.add(std::move(t));
}

} // namespace

TEST_CASE("worker_pool: a node's records go through pool_client and come "
          "back, every one accounted for") {
  troupe_test::harness h;
  add_pool_stage(h.reg);
  h.reg.add_function("tens", "", [] {
    return record_fn{[](record& r) {
      if (r.seq % 10 == 3)
        return fn_result::fail("ends in 3");
      if (r.seq % 10 == 7)
        return fn_result::drop();
      for (auto& c : r.body)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      return fn_result::keep();
    }};
  });
  auto run = h.start(R"(version: 1
resources:
  p: { type: worker_pool, workers: 3, routing: least_loaded }
nodes:
  src: { type: generate, count: 1000, template: "raw_{i}" }
  st:  { type: pool_stage, fn: tens, pool: p, inputs: [src] }
  out: { type: collect, inputs: [st] }
)");
  REQUIRE(h.drive(run));
  auto rep = run.report();
  CHECK(rep.status == "completed");
  auto got = troupe_test::unique_seqs(h.sinks["out"]);
  CHECK(got.size() == 800);
  CHECK(h.sinks["out"].records.size() == 800);
  for (auto& r : h.sinks["out"].records)
    CHECK(r.body == "RAW_" + std::to_string(r.seq));
  CHECK(rep.nodes[1].errors == 100);
  CHECK(rep.nodes[1].filtered == 100);
  troupe_test::check_balanced(rep);
}

TEST_CASE("worker_pool: pool_client reports a refusal as call_status refused") {
  troupe_test::harness h;
  add_pool_stage(h.reg);
  auto run = h.start(R"(version: 1
resources:
  p: { type: worker_pool, workers: 1 }
nodes:
  src: { type: generate, count: 20 }
  st:  { type: pool_stage, fn: no_such_function, pool: p, inputs: [src] }
  out: { type: collect, inputs: [st] }
)");
  REQUIRE(h.drive(run));
  auto rep = run.report();
  CHECK(h.sinks["out"].records.empty());
  CHECK(rep.nodes[1].errors == 20);
  troupe_test::check_balanced(rep);
}

// -- blocking workers: real threads -----------------------------------------------

namespace {

// A latch for the test's own threads (the tasks wait on it).
struct gate {
  std::mutex mtx;
  std::condition_variable cv;
  bool open = false;
  int waiting = 0;

  void wait() {
    std::unique_lock<std::mutex> lk{mtx};
    ++waiting;
    cv.notify_all();
    // Bounded: a broken test must not hang the suite.
    cv.wait_for(lk, std::chrono::seconds(30), [this] { return open; });
  }
  bool wait_for_waiters(int n) {
    std::unique_lock<std::mutex> lk{mtx};
    return cv.wait_for(lk, std::chrono::seconds(30),
                       [&] { return waiting >= n; });
  }
  void release() {
    std::lock_guard<std::mutex> lk{mtx};
    open = true;
    cv.notify_all();
  }
};

caf::behavior pong(caf::event_based_actor*, int) {
  return {[](get_atom) { return std::string{"pong"}; }};
}

} // namespace

TEST_CASE("worker_pool: blocking tasks run on threads of their own and never "
          "stall other actors, even on a one-thread scheduler") {
  caf::actor_system_config cfg;
  troupe::add_message_types(cfg);
  troupe::actors::add_message_types(cfg);
  cfg.set("scheduler.max-threads", 1);
  caf::actor_system sys{cfg};
  worker_pool_config pc;
  pc.workers = 3;
  pc.blocking = true;
  auto pool = spawn_worker_pool(sys, pc);
  auto g = std::make_shared<gate>();
  auto finished = std::make_shared<std::atomic<int>>(0);
  sys.spawn(
    [pool, g, finished](caf::event_based_actor* self, int) {
      for (int i = 0; i < 3; ++i)
        self
          ->request(pool, std::chrono::seconds(60), pool_submit_atom_v,
                    make_callable_task([g] {
                      g->wait();
                      return std::string{"slept"};
                    }))
          .then([finished](pool_result& r) {
            if (r.value == "slept")
              ++*finished;
          });
    },
    0);
  // All three workers are inside their tasks, which wait on the gate.
  REQUIRE(g->wait_for_waiters(3));
  // Meanwhile the one scheduler thread still serves other actors.
  auto p = sys.spawn(pong, 0);
  caf::scoped_actor self{sys};
  std::string answer;
  self->request(p, std::chrono::seconds(10), get_atom_v)
    .receive([&](std::string& s) { answer = s; },
             [&](caf::error& e) { answer = render(e); });
  CHECK(answer == "pong");
  CHECK(*finished == 0); // the ping came back while every task still slept
  pool_stats st;
  self->request(pool, std::chrono::seconds(10), stats_atom_v)
    .receive([&](pool_stats& s) { st = s; }, [&](caf::error&) {});
  CHECK(st.busy == 3);
  g->release();
  for (int i = 0; i < 3000 && *finished < 3; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(*finished == 3);
  self->send_exit(pool, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(p, caf::exit_reason::user_shutdown);
}
