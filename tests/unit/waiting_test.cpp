// Stages that wait (issue 8, part 1): a node's logic starts calls to a service
// through its slot client and completes records when the replies come, out of
// order, late or never. On CAF's test coordinator: replies are delayed in
// virtual time, so every case is deterministic and sleeps nowhere.
#include <doctest/doctest.h>

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/replies_to.hpp>
#include <caf/response_promise.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>

#include "troupe/ask.hpp"
#include "troupe/call_context.hpp"
#include "troupe/deadlock_detector.hpp"
#include "troupe/report.hpp"
#include "troupe/type_ids.hpp"
#include "troupe/service.hpp"
#include "troupe/waiting.hpp"

#include "graph_harness.hpp"

using namespace troupe_test;

namespace {

// -- a test service: echo(text) answers text + "!" after a delay ---------------
//
// The delay in ms is the text's number modulo 10, reversed (9 - n % 10), so
// later records come back first. "never" is never answered.
using echo_actor = caf::typed_actor<
  caf::replies_to<get_atom, std::string>::with<std::string>,
  caf::reacts_to<tick_atom, uint64_t>>;

struct echo_state {
  static inline const char* name = "test.echo";
  std::map<uint64_t, std::pair<caf::response_promise, std::string>> waiting;
  uint64_t next = 0;
};

struct echo_log {
  size_t requests = 0;
  size_t in_service = 0; // asked and not answered
  size_t peak = 0;
};

echo_actor::behavior_type
echo_fn(echo_actor::stateful_pointer<echo_state> self,
        std::shared_ptr<echo_log> log) {
  return {
    [=](get_atom, std::string& text) -> caf::result<std::string> {
      ++log->requests;
      if (text == "never")
        return self->make_response_promise<std::string>(); // left pending
      ++log->in_service;
      log->peak = std::max(log->peak, log->in_service);
      auto n = std::stoul(text);
      auto id = self->state.next++;
      self->state.waiting.emplace(
        id, std::make_pair(self->make_response_promise(), text + "!"));
      self->delayed_send(self, std::chrono::milliseconds(9 - n % 10),
                         tick_atom_v, id);
      return caf::delegated<std::string>{};
    },
    [=](tick_atom, uint64_t id) {
      auto i = self->state.waiting.find(id);
      --log->in_service;
      i->second.first.deliver(i->second.second);
      self->state.waiting.erase(i);
    },
  };
}

// Its CAF-free client, as a service would offer it to nodes.
class echo_client : public slot_client {
public:
  virtual void echo(std::string text, completion<std::string> done) = 0;
};

class echo_client_impl : public echo_client {
public:
  echo_client_impl(echo_actor h, call_context& ctx, duration timeout)
    : h_(std::move(h)), ctx_(ctx), timeout_(timeout) {
  }
  void echo(std::string text, completion<std::string> done) override {
    using result = call_result<std::string>;
    typed_call<std::string>(
      ctx_, h_, timeout_,
      [done](std::string& v, emitter& out) {
        done(result::success(std::move(v)), out);
      },
      [done](call_status s, const std::string& why, emitter& out) {
        done(result::failure(s, why), out);
      },
      get_atom_v, std::move(text));
  }

private:
  echo_actor h_;
  call_context& ctx_;
  duration timeout_;
};

// What the waiting stage saw, across incarnations.
struct stage_log {
  size_t peak_outstanding = 0;
  int crashes_left = 0; // crash this many times when seq 5 completes
  size_t completions = 0;
};

// A waiting stage: one echo call per record; `cap` calls at most.
class echo_stage : public node_logic {
public:
  echo_stage(const node_context& ctx, stage_log* log)
    : pending_(ctx.spec.params.boolean("ordered_out"),
               static_cast<size_t>(ctx.spec.params.integer("cap"))),
      calls_(ctx.calls), log_(log) {
    client_ = calls_->client<echo_client>("echo");
    REQUIRE(client_ != nullptr);
  }

  void consume(record_batch batch, emitter&) override {
    for (auto& r : batch.take())
      pending_.hold(std::move(r));
    start();
  }
  size_t buffered() const override {
    return pending_.buffered();
  }
  size_t held() const override {
    return pending_.held();
  }

private:
  void start() {
    while (auto t = pending_.next_to_start()) {
      auto& r = pending_.at(*t);
      auto text = r.body == "never" ? r.body : std::to_string(r.seq);
      client_->echo(text, [this, t = *t](call_result<std::string> v,
                                         emitter& out) {
        ++log_->completions;
        if (pending_.at(t).seq == 5 && log_->crashes_left > 0) {
          --log_->crashes_left;
          throw std::runtime_error("crash while completing");
        }
        if (v.ok()) {
          pending_.at(t).body = v.value();
          pending_.complete(t, pending_records::outcome::emit);
        } else {
          pending_.fail(t, std::string{to_string(v.status())} + ": "
                             + v.error());
        }
        pending_.flush(out);
        start();
      });
      log_->peak_outstanding
        = std::max(log_->peak_outstanding, calls_->outstanding());
    }
  }

  pending_records pending_;
  node_calls* calls_;
  echo_client* client_ = nullptr;
  stage_log* log_;
};

// A source of `count` records whose body is `body` ("" keeps seq-based).
class body_source : public node_logic {
public:
  body_source(uint64_t count, std::string body)
    : count_(count), body_(std::move(body)) {
  }
  produce_status produce(size_t max, emitter& out) override {
    std::vector<record> rs;
    while (next_ < count_ && rs.size() < max) {
      record r;
      r.seq = next_++;
      r.body = body_;
      rs.push_back(std::move(r));
    }
    out.create(rs.size());
    out.emit(record_batch{std::move(rs)});
    return next_ < count_ ? produce_status::more : produce_status::done;
  }

private:
  uint64_t count_;
  uint64_t next_ = 0;
  std::string body_;
};

struct waiting_harness : harness {
  std::shared_ptr<echo_log> echo = std::make_shared<echo_log>();
  stage_log stage;

  waiting_harness() {
    actor_type svc;
    svc.name = "echo";
    svc.kind = actor_kind::service;
    svc.protocol = "echo";
    svc.params = {{"timeout", param_type::time_span, false, "1s", "", {}, 0}};
    auto log = echo;
    svc.service = typed_client<echo_actor>(
      typed_service<echo_actor>(
        [log](caf::actor_system& sys, const resource_spec&) {
          return sys.spawn(echo_fn, log);
        }),
      [](const echo_actor& h, call_context& ctx) {
        return std::make_unique<echo_client_impl>(h, ctx, ctx.timeout());
      });
    reg.add(svc);
    reg.add_resource_slot("echo", "echo", "an echo service");
    actor_type st;
    st.name = "echo_stage";
    st.slots = {"echo"};
    st.kind = actor_kind::stage;
    st.params = {{"cap", param_type::integer, false, "4", "", {}, 1},
                 {"ordered_out", param_type::boolean, false, "true", "", {}, 0}};
    st.make_node = [this](const node_context& ctx) {
      return std::make_unique<echo_stage>(ctx, &stage);
    };
    reg.add(st);
    actor_type src;
    src.name = "bodies";
    src.kind = actor_kind::source;
    src.params = {{"count", param_type::integer, false, "10", "", {}, 0},
                  {"body", param_type::string, false, "", "", {}, 0}};
    src.make_node = [](const node_context& ctx) {
      return std::make_unique<body_source>(
        static_cast<uint64_t>(ctx.spec.params.integer("count")),
        ctx.spec.params.has("body") ? ctx.spec.params.str("body") : "");
    };
    reg.add(src);
  }

  std::string graph(int count, int cap, bool ordered,
                    const std::string& extra = "") {
    return "version: 1\nname: w\n" + extra
           + "resources:\n  e: { type: echo }\n"
             "nodes:\n"
             "  src: { type: bodies, count: "
           + std::to_string(count)
           + " }\n"
             "  wait: { type: echo_stage, echo: e, cap: "
           + std::to_string(cap) + ", ordered_out: "
           + (ordered ? "true" : "false")
           + ", inputs: [src] }\n"
             "  out: { type: collect, inputs: [wait] }\n"
             "  bad: { type: collect, inputs: [wait.errors] }\n";
  }
};

} // namespace

TEST_CASE("a waiting stage keeps input order while replies come out of order") {
  waiting_harness h;
  auto run = h.start(h.graph(100, 8, true));
  REQUIRE(h.drive(run));
  auto rep = run.report();
  CHECK(rep.status == "completed");
  check_balanced(rep);
  auto got = seqs(h.sinks["out"]);
  REQUIRE(got.size() == 100);
  for (uint64_t i = 0; i < 100; ++i)
    CHECK(got[i] == i);
  CHECK(h.sinks["out"].records[7].body == "7!");
  CHECK(h.echo->requests == 100);
  // The cap held: never more than 8 calls out, and the service saw 8 at once.
  CHECK(h.stage.peak_outstanding == 8);
  CHECK(h.echo->peak == 8);
}

TEST_CASE("an unordered waiting stage passes on replies as they come") {
  waiting_harness h;
  auto run = h.start(h.graph(20, 10, false));
  REQUIRE(h.drive(run));
  CHECK(run.report().status == "completed");
  auto got = seqs(h.sinks["out"]);
  REQUIRE(got.size() == 20);
  CHECK(got != std::vector<uint64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
                                     12, 13, 14, 15, 16, 17, 18, 19});
  std::sort(got.begin(), got.end());
  for (uint64_t i = 0; i < 20; ++i)
    CHECK(got[i] == i);
}

TEST_CASE("a call that is never answered ends at its timeout, to errors") {
  waiting_harness h;
  auto run = h.start("version: 1\nname: w\n"
                     "runtime: { request_timeout: 2s }\n"
                     "resources:\n  e: { type: echo }\n"
                     "nodes:\n"
                     "  src: { type: bodies, count: 3, body: never }\n"
                     "  wait: { type: echo_stage, echo: e, inputs: [src] }\n"
                     "  out: { type: collect, inputs: [wait] }\n"
                     "  bad: { type: collect, inputs: [wait.errors] }\n");
  h.sched->run();
  h.sched->advance_time(std::chrono::milliseconds(1900));
  h.sched->run();
  CHECK_FALSE(run.finished()); // still waiting, within its timeout
  CHECK(h.sinks["bad"].records.empty());
  REQUIRE(h.drive(run));
  auto rep = run.report();
  CHECK(rep.status == "completed");
  check_balanced(rep);
  CHECK(h.sinks["out"].records.empty());
  REQUIRE(h.sinks["bad"].records.size() == 3);
  auto err = h.sinks["bad"].records[0].attr("error");
  REQUIRE(err);
  CHECK(std::string{*err}.rfind("timeout: ", 0) == 0);
}

TEST_CASE("records whose calls were outstanding at a crash are redelivered") {
  waiting_harness h;
  h.stage.crashes_left = 2;
  auto run = h.start(h.graph(50, 6, true));
  REQUIRE(h.drive(run));
  auto rep = run.report();
  CHECK(rep.status == "completed");
  check_balanced(rep);
  auto wait = std::find_if(rep.nodes.begin(), rep.nodes.end(),
                           [](auto& n) { return n.name == "wait"; });
  REQUIRE(wait != rep.nodes.end());
  CHECK(wait->restarts == 2);
  // Every record arrives; duplicates are possible (at least once), losses not.
  auto got = unique_seqs(h.sinks["out"]);
  REQUIRE(got.size() == 50);
  CHECK(got.back() == 49);
  CHECK(h.sinks["bad"].records.empty());
}

TEST_CASE("a node finishes only once its calls ended") {
  waiting_harness h;
  auto run = h.start(h.graph(5, 5, true));
  h.sched->run(); // the source is done; five calls are out
  CHECK_FALSE(run.finished());
  CHECK(h.echo->in_service == 5);
  REQUIRE(h.drive(run));
  CHECK(run.report().status == "completed");
  CHECK(h.sinks["out"].records.size() == 5);
}

TEST_CASE("a stage's slot without a client is null, and after() counts") {
  // node_calls::after runs on the node's thread after a delay.
  struct timer_stage : node_logic {
    node_calls* calls;
    size_t held_ = 0;
    explicit timer_stage(const node_context& ctx) : calls(ctx.calls) {
      CHECK(calls->client<echo_client>("echo") == nullptr);
    }
    void consume(record_batch b, emitter&) override {
      held_ += b.size();
      auto keep = std::make_shared<record_batch>(std::move(b));
      calls->after(std::chrono::seconds(3), [this, keep](emitter& out) {
        held_ -= keep->size();
        out.emit(std::move(*keep));
      });
      CHECK(calls->outstanding() >= 1);
    }
    size_t buffered() const override {
      return held_;
    }
  };
  waiting_harness h;
  actor_type t;
  t.name = "timer_stage";
  t.kind = actor_kind::stage;
  t.make_node = [](const node_context& ctx) {
    return std::make_unique<timer_stage>(ctx);
  };
  h.reg.add(t);
  auto run = h.start("version: 1\nname: w\nnodes:\n"
                     "  src: { type: bodies, count: 4 }\n"
                     "  t: { type: timer_stage, inputs: [src] }\n"
                     "  out: { type: collect, inputs: [t] }\n");
  h.sched->run();
  h.sched->advance_time(std::chrono::seconds(2));
  h.sched->run();
  CHECK(h.sinks["out"].records.empty());
  REQUIRE(h.drive(run));
  CHECK(run.report().status == "completed");
  CHECK(h.sinks["out"].records.size() == 4);
}

TEST_CASE("pending_records: order, cap, and exact held/buffered") {
  struct sink : emitter {
    std::vector<uint64_t> emitted;
    size_t dropped = 0, failed = 0;
    void emit(record_batch b) override {
      for (auto& r : b.records())
        emitted.push_back(r.seq);
    }
    void fail(record, std::string) override {
      ++failed;
    }
    void drop(size_t n) override {
      dropped += n;
    }
    void create(size_t) override {
    }
  } out;
  pending_records p{true, 2};
  for (uint64_t i = 0; i < 5; ++i) {
    record r;
    r.seq = i;
    p.hold(std::move(r));
  }
  auto a = p.next_to_start();
  auto b = p.next_to_start();
  CHECK_FALSE(p.next_to_start()); // the cap
  REQUIRE(a);
  REQUIRE(b);
  CHECK(*a == 0);
  CHECK(*b == 1);
  p.complete(*b, pending_records::outcome::emit);
  p.flush(out);
  CHECK(out.emitted.empty()); // 0 is still out: order
  CHECK(p.held() == 5);
  CHECK(p.buffered() == 5);
  auto c = p.next_to_start();
  REQUIRE(c);
  CHECK(*c == 2);
  p.fail(*a, "no");
  p.complete(*c, pending_records::outcome::drop);
  p.flush(out);
  CHECK(out.emitted == std::vector<uint64_t>{1});
  CHECK(out.failed == 1);
  CHECK(out.dropped == 1);
  CHECK(p.held() == 2);
  CHECK(p.buffered() == 2);
  CHECK_THROWS(p.complete(*a, pending_records::outcome::emit));
}

// -- external calls: completed by another thread (the HTTP engine's) -------------

namespace {

struct external_log {
  struct started {
    std::shared_ptr<external_call> call;
    uint64_t seq;
    uint32_t incarnation;
  };
  std::vector<started> calls;
  std::vector<std::pair<uint64_t, uint32_t>> ran; // (seq, incarnation)
  bool crash_on_first_completion = false;
};

// One external call per record; the test finishes them.
class external_stage : public node_logic {
public:
  external_stage(const node_context& ctx, external_log* log)
    : calls_(ctx.calls), incarnation_(ctx.incarnation), log_(log) {
  }
  void consume(record_batch batch, emitter&) override {
    for (auto& r : batch.take()) {
      auto seq = r.seq;
      auto t = pending_.hold(std::move(r));
      pending_.next_to_start();
      log_->calls.push_back({calls_->external(), seq, incarnation_});
      pending_tickets_.emplace(seq, t);
    }
  }
  // Called by the test through the call's continuation.
  void complete(uint64_t seq, emitter& out) {
    log_->ran.emplace_back(seq, incarnation_);
    if (log_->crash_on_first_completion) {
      log_->crash_on_first_completion = false;
      throw std::runtime_error("crash in an external continuation");
    }
    pending_.complete(pending_tickets_.at(seq),
                      pending_records::outcome::emit);
    pending_.flush(out);
  }
  size_t buffered() const override {
    return pending_.buffered();
  }
  size_t held() const override {
    return pending_.held();
  }

private:
  node_calls* calls_;
  uint32_t incarnation_;
  external_log* log_;
  pending_records pending_{true, 1000};
  std::map<uint64_t, pending_records::ticket> pending_tickets_;
};

struct external_harness : harness {
  external_log log;
  std::vector<external_stage*> live; // the current incarnation's logic

  external_harness() {
    actor_type st;
    st.name = "external_stage";
    st.kind = actor_kind::stage;
    st.make_node = [this](const node_context& ctx) {
      auto s = std::make_unique<external_stage>(ctx, &log);
      live.assign(1, s.get());
      return s;
    };
    reg.add(st);
    actor_type src; // the waiting harness's source, without its echo service
    src.name = "bodies";
    src.kind = actor_kind::source;
    src.params = {{"count", param_type::integer, false, "10", "", {}, 0}};
    src.make_node = [](const node_context& ctx) {
      return std::make_unique<body_source>(
        static_cast<uint64_t>(ctx.spec.params.integer("count")), "");
    };
    reg.add(src);
  }

  // Finishes call i as the engine would: from any thread, with a
  // continuation that reaches the logic that started it.
  void finish(size_t i) {
    auto& c = log.calls.at(i);
    auto* logic = live.at(0);
    auto seq = c.seq;
    c.call->finish([logic, seq](emitter& out) { logic->complete(seq, out); });
  }

  static std::string graph() {
    return "version: 1\nname: x\nnodes:\n"
           "  src: { type: bodies, count: 6 }\n"
           "  wait: { type: external_stage, inputs: [src] }\n"
           "  out: { type: collect, inputs: [wait] }\n";
  }
};

} // namespace

TEST_CASE("external calls finished by another thread complete on the node") {
  external_harness h;
  auto run = h.start(external_harness::graph());
  h.sched->run();
  REQUIRE(h.log.calls.size() == 6);
  CHECK_FALSE(run.finished()); // six calls outstanding: the node waits
  CHECK(h.sinks["out"].records.empty());
  // From another thread, in reverse order, one of them twice.
  std::thread other{[&] {
    for (size_t i = 6; i-- > 0;)
      h.finish(i);
    h.finish(2); // a second finish is ignored
  }};
  other.join();
  REQUIRE(h.drive(run));
  auto rep = run.report();
  CHECK(rep.status == "completed");
  check_balanced(rep);
  CHECK(seqs(h.sinks["out"]) == std::vector<uint64_t>{0, 1, 2, 3, 4, 5});
  CHECK(h.log.ran.size() == 6);
}

TEST_CASE("an external call of a crashed incarnation never runs") {
  external_harness h;
  h.log.crash_on_first_completion = true;
  auto run = h.start(external_harness::graph());
  h.sched->run();
  REQUIRE(h.log.calls.size() == 6);
  h.finish(0); // crashes the node: its other five calls die with it
  for (int i = 0; i < 100 && h.log.calls.size() < 12; ++i) {
    h.sched->run();
    h.sched->advance_time(std::chrono::milliseconds(100)); // restart backoff
  }
  REQUIRE(h.log.calls.size() == 12); // restarted, records redelivered
  CHECK(h.log.calls[6].incarnation == 1);
  // The dead incarnation's calls finish late, pointing at the new logic:
  // their ids belong to the old incarnation, so nothing runs.
  for (size_t i = 1; i < 6; ++i)
    h.finish(i);
  h.sched->run();
  CHECK(h.log.ran.size() == 1);
  for (size_t i = 6; i < 12; ++i)
    h.finish(i);
  REQUIRE(h.drive(run));
  auto rep = run.report();
  CHECK(rep.status == "completed");
  check_balanced(rep);
  CHECK(unique_seqs(h.sinks["out"]).size() == 6);
  for (size_t i = 1; i < h.log.ran.size(); ++i)
    CHECK(h.log.ran[i].second == 1);
}

// -- the deadlock detector sees a waiting stage's calls ------------------------

namespace {

std::vector<deadlock_wait> detector_waits(waiting_harness& h) {
  auto out = std::make_shared<std::vector<deadlock_wait>>();
  auto det = h.rt->deadlock_detector();
  h.rt->system().spawn([det, out](caf::event_based_actor* self, int) {
    ask(self, det, std::chrono::seconds(1), get_atom_v)
      .then(
        [out, det](std::vector<deadlock_wait>& w) {
          // Without the query's own wait on the detector.
          for (auto& x : w)
            if (x.holder != det.id())
              out->push_back(x);
        },
        [](caf::error&) {});
  }, 0);
  h.sched->run();
  return *out;
}

// get(n): n == 0 answers 0, else asks the next member get(n - 1) and waits
// with .await: get(2) on a ring of two is a request cycle.
caf::behavior awaiting_member(caf::event_based_actor* self,
                              std::shared_ptr<std::vector<caf::actor>> ring,
                              size_t me) {
  return {
    [=](get_atom, int64_t n) -> caf::result<int64_t> {
      if (n == 0)
        return int64_t{0};
      auto rp = self->make_response_promise<int64_t>();
      ask(self, (*ring)[(me + 1) % ring->size()], std::chrono::seconds(30),
          get_atom_v, n - 1)
        .await([rp](int64_t v) mutable { rp.deliver(v + 1); },
               [rp](caf::error& e) mutable { rp.deliver(std::move(e)); });
      return rp;
    },
  };
}

const char* never_graph = "version: 1\nname: w\n"
                          "resources:\n  e: { type: echo }\n"
                          "nodes:\n"
                          "  src: { type: bodies, count: 1, body: never }\n"
                          "  wait: { type: echo_stage, echo: e, cap: 1, "
                          "inputs: [src] }\n"
                          "  out: { type: collect, inputs: [wait] }\n"
                          "  bad: { type: collect, inputs: [wait.errors] }\n";

} // namespace

TEST_CASE("the deadlock detector lists a waiting stage's call to its service "
          "by YAML names while it waits, and nothing after") {
  waiting_harness h;
  auto run = h.start(never_graph);
  h.sched->run();
  for (int i = 0; i < 30; ++i) {
    h.sched->advance_time(10ms);
    h.sched->run();
  }
  REQUIRE_FALSE(run.finished());
  auto ws = detector_waits(h);
  bool seen = false;
  for (auto& w : ws) {
    MESSAGE("wait " << w.waiter_name << " -> " << w.holder_name << " ("
                    << w.message_type << ", " << w.age_ns / 1000000
                    << " ms)");
    if (w.waiter_name == "wait" && w.holder_name == "e") {
      seen = true;
      CHECK(w.message_type == std::string{"get"});
      CHECK(w.age_ns >= 290'000'000);
    }
  }
  CHECK(seen);
  REQUIRE(h.drive(run));
  CHECK(h.sinks["bad"].records.size() == 1); // the call timed out
  CHECK(detector_waits(h).empty());
}

TEST_CASE("a deadlock found while a graph runs is in its run report") {
  waiting_harness h;
  auto run = h.start(never_graph);
  h.sched->run();
  // A request cycle among plain actors of the same runtime, during the run.
  auto ring = std::make_shared<std::vector<caf::actor>>();
  for (size_t i = 0; i < 2; ++i)
    ring->push_back(h.rt->system().spawn(awaiting_member, ring, i));
  auto got = std::make_shared<std::string>();
  auto first = ring->front();
  h.rt->system().spawn([first, got](caf::event_based_actor* self, int) {
    ask(self, first, std::chrono::seconds(60), get_atom_v, int64_t{2})
      .then([got](int64_t) { *got = "value"; },
            [got](caf::error& e) { *got = render(e); });
  }, 0);
  REQUIRE(h.drive(run));
  // Policy fail (the default): the cycle's client saw the deadlock error.
  CHECK(got->find("deadlock") != std::string::npos);
  auto rep = run.report();
  CHECK(rep.deadlocks == 1);
  REQUIRE(rep.deadlock_texts.size() == 1);
  CHECK(rep.deadlock_texts[0].rfind("cycle ", 0) == 0);
  auto json = report_json(rep);
  CHECK_MESSAGE(json.find("\"deadlocks\": [\"cycle ") != std::string::npos,
                json);
  for (auto& a : *ring)
    caf::anon_send_exit(a, caf::exit_reason::kill);
  h.sched->run();
}
