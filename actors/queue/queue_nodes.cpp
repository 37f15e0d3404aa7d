// The `queue` source and sink: how C++ code feeds a long-running graph and
// pulls its results (`queue: NAME` names a queue resource).
//
// source: pops up to a batch (what credit allows) at a time, waits for the
// pop while idle, emits what it got (renumbered: seq counts this source's
// records), and ends when the queue is closed and drained. What it emitted
// and was not acknowledged is kept across restarts and replayed
// (at_least_once), since the queue has handed it out for good.
// sink: pushes each batch and counts it written only once the queue took it
// (forwarding_sink); when its inputs end it closes the queue, so a C++
// consumer sees end-of-stream.
#include <algorithm>
#include <chrono>
#include <memory>
#include <string>

#include "troupe/actors/builtin_types.hpp"
#include "troupe/actors/io.hpp"
#include "troupe/actors/queue.hpp"

#include "forwarding_sink.hpp"

namespace troupe::actors {

namespace {

queue_client& client_of(const node_context& ctx) {
  auto* c = ctx.calls ? ctx.calls->client<queue_client>("queue") : nullptr;
  if (c == nullptr)
    throw unrecoverable_error("node '" + ctx.spec.name
                              + "': its 'queue' slot names no queue resource");
  return *c;
}

struct queue_source_memory : node_memory {
  replay_log log;
  uint64_t next_seq = 0;
  bool closed = false; // the queue said end-of-stream
};

class queue_source : public node_logic {
public:
  queue_source(const node_context& ctx, duration wait)
    : client_(client_of(ctx)), wait_(wait) {
    if (ctx.memory && *ctx.memory)
      if (auto* m = dynamic_cast<queue_source_memory*>(ctx.memory->get())) {
        mem_ = m;
        mem_->log.restart(replays_sent(ctx));
        return;
      }
    auto m = std::make_unique<queue_source_memory>();
    mem_ = m.get();
    if (ctx.memory)
      *ctx.memory = std::move(m);
    else
      own_ = std::move(m);
  }

  produce_status produce(size_t max, emitter& out) override {
    if (mem_->log.replaying()) {
      mem_->log.replay(max, out);
      return produce_status::more;
    }
    if (popping_)
      return produce_status::idle;
    if (mem_->closed)
      return produce_status::done;
    if (out.now() < retry_at_)
      return produce_status::idle;
    popping_ = true;
    client_.pop(max, wait_, [this](call_result<queue_items> r, emitter& o) {
      popped(r, o);
    });
    return produce_status::idle; // the pop's completion wakes the node
  }

  duration idle_delay() const override {
    // A pop's completion cuts the wait short; this only bounds it.
    return popping_ ? wait_ : backoff;
  }

  void acknowledged(const record_batch& batch) override {
    mem_->log.acknowledged(batch);
  }

private:
  static constexpr duration backoff = std::chrono::milliseconds(10);

  void popped(call_result<queue_items>& r, emitter& out) {
    popping_ = false;
    if (!r.ok()) {
      if (r.status() == call_status::unavailable)
        throw unrecoverable_error("queue source: the queue is gone: "
                                  + r.error());
      // Refused (too many waiting consumers) or timed out: ask again soon.
      retry_at_ = out.now() + backoff;
      return;
    }
    auto& items = r.value();
    if (!items.records.empty()) {
      auto rs = items.records.take();
      for (auto& rec : rs) {
        rec.seq = mem_->next_seq++;
        rec.ctx = record_context{};
      }
      record_batch b{std::move(rs)};
      mem_->log.sent(b);
      out.create(b.size());
      out.emit(std::move(b));
    }
    if (items.closed)
      mem_->closed = true;
  }

  queue_client& client_;
  duration wait_;
  queue_source_memory* mem_ = nullptr;
  std::unique_ptr<queue_source_memory> own_; // without node_context::memory
  bool popping_ = false;
  std::chrono::steady_clock::time_point retry_at_{};
};

void needs_queue_slot(const node_spec& n, const graph_spec&, const registry&,
                      std::vector<diagnostic>& errors) {
  if (!n.resources.count("queue"))
    errors.push_back({n.at("type"), "node '" + n.name + "' of type 'queue' "
                                    "needs 'queue: NAME' naming a queue "
                                    "resource"});
  if (n.params.has("wait") && n.params.dur("wait") <= duration{0})
    errors.push_back({n.value_at("wait"),
                      "'wait' must be positive: a queue node "
                                    "that never waits would spin"});
}

// A sink's checks against the rest of the graph: its queue must hold a
// whole batch (a push is all or nothing), and one queue is closed by at most
// one sink (the first to finish would refuse the others' records).
void check_queue_sink(const node_spec& n, const graph_spec& g,
                      const registry& reg, std::vector<diagnostic>& errors) {
  needs_queue_slot(n, g, reg, errors);
  auto slot = n.resources.find("queue");
  if (slot == n.resources.end())
    return;
  auto res = std::find_if(g.resources.begin(), g.resources.end(),
                          [&](auto& r) { return r.name == slot->second; });
  if (res != g.resources.end() && res->params.has("capacity")) {
    auto capacity = static_cast<uint64_t>(res->params.integer("capacity"));
    uint64_t batch = g.runtime.batch_size;
    std::string from = "runtime.batch_size";
    for (auto& in : n.inputs)
      for (auto& m : g.nodes)
        if (m.name == in.node && m.type == "batch" && m.params.has("size")
            && static_cast<uint64_t>(m.params.integer("size")) > batch) {
          batch = static_cast<uint64_t>(m.params.integer("size"));
          from = "the batch stage '" + m.name + "'";
        }
    if (capacity < batch)
      errors.push_back({n.at("queue"),
                        "queue '" + res->name + "' holds " + std::to_string(capacity)
                          + " records, fewer than a batch of "
                          + std::to_string(batch) + " (" + from
                          + "): a push is all or nothing, so it could never "
                            "fit; raise its capacity or lower the batch"});
  }
  auto closes = [](const node_spec& m) {
    return !m.params.has("close") || m.params.boolean("close");
  };
  if (!closes(n))
    return;
  for (auto& m : g.nodes) {
    if (&m == &n || m.kind != actor_kind::sink || m.type != "queue")
      continue;
    auto other = m.resources.find("queue");
    if (other != m.resources.end() && other->second == slot->second
        && closes(m) && m.name < n.name) {
      errors.push_back({n.at("queue"),
                        "queue sinks '" + m.name + "' and '" + n.name
                          + "' both close queue '" + slot->second
                          + "': the first to finish would refuse the other's "
                            "records; set 'close: false' on all but one"});
      break;
    }
  }
}

} // namespace

actor_type queue_source_type() {
  actor_type t;
  t.name = "queue";
  t.kind = actor_kind::source;
  t.slots = {"queue"};
  t.doc = "Reads records that C++ code pushes into a queue resource "
          "(`queue: NAME`); ends when the queue is closed and drained. "
          "Records are renumbered (seq counts this source's records); key, "
          "body and attrs are kept.";
  t.params = {
    {"wait", param_type::time_span, false, "1s",
     "how long one pop waits on an empty queue before asking again (cut "
     "below runtime.request_timeout); also bounds how long a stop waits for "
     "a pop in flight", {}, 0},
  };
  t.make_node = [](const node_context& ctx) {
    auto wait = ctx.spec.params.dur("wait");
    return std::make_unique<queue_source>(ctx, wait);
  };
  t.validate = needs_queue_slot;
  return t;
}

actor_type queue_sink_type() {
  actor_type t;
  t.name = "queue";
  t.kind = actor_kind::sink;
  t.slots = {"queue"};
  t.doc = "Pushes its input into a queue resource (`queue: NAME`) for C++ "
          "code to pop; a record counts as written once the queue took it "
          "(a full queue holds the sink back: backpressure upstream). Closes "
          "the queue when its inputs end (`close: false` keeps it open).";
  t.params = {
    {"close", param_type::boolean, false, "true",
     "close the queue once everything was pushed and the inputs ended", {}, 0},
    {"wait", param_type::time_span, false, "10s",
     "how long one push waits for room before it is sent again", {}, 0},
  };
  t.make_node = [](const node_context& ctx) -> std::unique_ptr<node_logic> {
    auto* c = &client_of(ctx);
    auto wait = ctx.spec.params.dur("wait");
    forwarding_sink::end_fn at_end;
    if (ctx.spec.params.boolean("close"))
      at_end = [c](completion<uint64_t> done) { c->close(std::move(done)); };
    return std::make_unique<forwarding_sink>(
      "queue sink",
      [c, wait](record_batch b, completion<uint64_t> done) {
        c->push(std::move(b), wait, std::move(done));
      },
      std::move(at_end));
  };
  t.validate = check_queue_sink;
  return t;
}

} // namespace troupe::actors
