#include "node_actor.hpp"

#include <chrono>
#include <deque>
#include <iostream>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include <caf/actor_cast.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/local_actor.hpp>
#include <caf/scheduled_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "troupe/ask.hpp"
#include "troupe/errors.hpp"
#include "troupe/hygiene.hpp"

namespace troupe::detail {

namespace {

using clock_type = std::chrono::steady_clock;

uint64_t elapsed_ns(clock_type::time_point since) {
  return static_cast<uint64_t>(
    std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now()
                                                         - since)
      .count());
}

// Marks a record that failed so whoever reads `errors` sees why and where.
void annotate_failure(record& r, const std::string& stage,
                      const std::string& reason) {
  r.set_attr("error", reason);
  r.set_attr("stage", stage);
  r.set_attr("attempt", std::to_string(r.ctx.attempt));
}

// Collects a logic's effects for one batch; used by workers and by the node
// actor itself when it runs logic inline.
struct collecting_emitter : emitter {
  stage_result result;
  void emit(record_batch b) override {
    if (!b.empty())
      result.emitted.push_back(std::move(b));
  }
  void fail(record r, std::string reason) override {
    result.failed.push_back(std::move(r));
    result.reasons.push_back(std::move(reason));
  }
  void drop(size_t n) override {
    result.dropped += n;
  }
  void create(size_t n) override {
    result.created += n;
  }
};

// Passes emits through, but joins the one-record batches that per-record
// consumption produces into one batch, so a redelivery does not shred the
// downstream flow into single-record messages. Larger batches (a batch
// stage's groups) keep their boundaries.
struct coalescing_emitter : emitter {
  emitter& out;
  std::vector<record> singles;
  explicit coalescing_emitter(emitter& o) : out(o) {
  }
  void emit(record_batch b) override {
    if (b.size() == 1) {
      singles.push_back(b.records()[0]);
      return;
    }
    flush();
    out.emit(std::move(b));
  }
  void fail(record r, std::string reason) override {
    out.fail(std::move(r), std::move(reason));
  }
  void drop(size_t n) override {
    out.drop(n);
  }
  void create(size_t n) override {
    out.create(n);
  }
  std::chrono::steady_clock::time_point now() const override {
    return out.now();
  }
  void flush() {
    if (!singles.empty())
      out.emit(record_batch{std::move(singles)});
    singles.clear();
  }
};

// Runs `logic` on a redelivered batch one record at a time, so a record that
// crashed the node fails alone (to `errors`) instead of crashing it again.
// Retries a throwing record in place until its attempt count reaches
// `max_attempts`.
void consume_carefully(node_logic& logic, record_batch batch, emitter& sink,
                       uint32_t max_attempts, const std::string& stage) {
  coalescing_emitter out{sink};
  for (auto& r : batch.take()) {
    for (;;) {
      try {
        logic.consume(record_batch{std::vector<record>{r}}, out);
        break;
      } catch (const unrecoverable_error&) {
        throw; // not the record's fault: the run fails
      } catch (...) {
        auto why = describe(std::current_exception());
        if (r.ctx.attempt >= max_attempts) {
          annotate_failure(r, stage, why);
          out.fail(std::move(r), std::move(why));
          break;
        }
        ++r.ctx.attempt;
      }
    }
  }
  out.flush();
}

// -- workers ------------------------------------------------------------------

struct worker_state {
  std::unique_ptr<node_logic> logic;
  static inline const char* name = "troupe.worker";
};

worker_actor::behavior_type
worker_fn(worker_actor::stateful_pointer<worker_state> self,
          std::shared_ptr<const run_plan> plan, size_t index, size_t worker,
          uint32_t incarnation) {
  const auto& spec = plan->graph.nodes[index];
  self->state.logic = plan->types[index]->make_node(
    node_context{spec, *plan->reg, worker, incarnation,
                 plan->graph.runtime.max_attempts, nullptr,
                 plan->graph.runtime.delivery});
  install_exception_handler(self, spec.name + " worker");
  install_default_handler(self, spec.name + " worker",
                          &plan->metrics->nodes[index]->unexpected);
  auto max_attempts = plan->graph.runtime.max_attempts;
  return {
    [=](exec_atom, bool redelivery, record_batch& batch) -> stage_result {
      collecting_emitter out;
      if (redelivery)
        consume_carefully(*self->state.logic, std::move(batch), out,
                          max_attempts, spec.name);
      else
        self->state.logic->consume(std::move(batch), out);
      return std::move(out.result);
    },
  };
}

// -- the node actor -------------------------------------------------------------

struct input_entry {
  uint32_t tag = 0;        // the producer's reply tag for our edge
  uint32_t in_port = 0;
  uint64_t batch_id = 0;
  node_actor from;         // producer incarnation to acknowledge
  size_t refs = 0;         // output entries and logic holding it
  uint64_t end = 0;        // cumulative consumed count after this batch
  size_t size = 0;         // records
  size_t bytes = 0;        // payload bytes
  clock_type::time_point received;
};

struct out_entry {
  record_batch batch;
  std::vector<uint64_t> lineage; // input tokens it derives from
  size_t pending = 0;            // consumers yet to acknowledge
  size_t unsent = 0;             // consumers it was not sent to yet
  size_t bytes = 0;              // payload bytes
};

// Counter changes made while handling one message, published when the
// handler returns. A handler that throws publishes none of them: what it
// emitted never left the node, and the supervisor accounts for what the
// incarnation held (the `held` and `processing` gauges) instead.
struct tally {
  uint64_t out = 0, filtered = 0, dead_lettered = 0, errors = 0, created = 0;
  uint64_t lost = 0;
  uint64_t batches = 0;
  int64_t unsent = 0;
};

struct consumer_edge {
  node_actor handle;
  uint32_t in_port = 0;
  uint32_t port = data_port;
  size_t in_flight = 0; // records sent, unacknowledged
  size_t in_flight_bytes = 0;
  size_t queued = 0;    // records waiting for credit
  std::deque<uint64_t> queue;
  std::map<uint64_t, size_t> unacked; // out id -> records
  std::unordered_set<uint64_t> resent;   // queued again after a rewire
  std::unordered_set<uint64_t> received; // at_most_once: never resend these
  bool eof_sent = false;
  bool starved_told = false; // told it we are starved, this episode
  bool dropped = false;  // the consumer is gone for good
  bool finished = false; // ... because it finished: it had everything we
                         // emitted before; what we emit now are duplicates
};

struct worker_slot {
  worker_actor handle;
  size_t busy = 0;
};

struct node_state {
  static inline const char* name = "troupe.node";

  std::shared_ptr<const run_plan> plan;
  const node_spec* spec = nullptr;
  node_metrics* metrics = nullptr;
  // Declared before the logic, so the logic's destructor (a checkpoint
  // save) still finds its memory.
  std::shared_ptr<std::unique_ptr<node_memory>> memory; // across restarts
  std::unique_ptr<node_logic> logic;
  size_t index = 0;    // in the graph
  uint32_t origin = 0; // index + 1: stamped on a source's records
  bool is_source = false;
  size_t window = 0;
  size_t window_bytes = 0;
  tally counts; // unpublished counter changes of the current message

  // Inputs.
  std::vector<bool> ended;               // per in_port
  std::vector<size_t> unacked_bytes;     // per in_port: received, not acked
                                         // (records: metrics->unacked_in)
  // A producer told us it is out of input credit and waits for what it
  // sent us; lasts until we have acknowledged everything we received.
  bool upstream_starved = false;
  std::unordered_map<uint64_t, input_entry> inputs; // by token
  std::deque<uint64_t> open;             // tokens the inline logic may hold
  uint64_t consumed = 0;
  uint64_t next_token = 1;

  // Outputs.
  std::vector<consumer_edge> edges; // by reply tag
  std::unordered_map<uint64_t, out_entry> outs;
  uint64_t next_out = 1;
  bool has_consumers[2] = {false, false};

  // Parallel workers (map/filter with workers > 1).
  std::vector<worker_slot> workers;
  std::deque<uint64_t> waiting;             // tokens not dispatched yet
  std::unordered_map<uint64_t, std::pair<bool, record_batch>>
    waiting_batches; // token -> (redelivery, records)
  uint64_t next_dispatch = 0;               // order of dispatch
  uint64_t next_apply = 0;                  // ordered: next to apply
  std::map<uint64_t, std::pair<uint64_t, stage_result>> done; // ordered
  size_t outstanding = 0;                   // dispatched, not applied
  size_t worker_records = 0; // records waiting for or at workers

  bool producing_scheduled = false;
  bool finishing = false;  // finish() ran; ticks drain what the logic holds
  bool input_done = false;
  bool stop_requested = false;
  bool tick_armed = false;
};

using node_pointer = node_actor::stateful_pointer<node_state>;

// The emitter the node actor hands to inline logic: every output entry it
// creates derives from the given lineage.
struct node_emitter : emitter {
  node_pointer self;
  std::vector<uint64_t> lineage;
  explicit node_emitter(node_pointer s) : self(s) {
  }
  void emit(record_batch b) override;
  void fail(record r, std::string reason) override;
  void drop(size_t n) override {
    self->state.counts.filtered += n;
  }
  void create(size_t n) override {
    self->state.counts.created += n;
  }
  std::chrono::steady_clock::time_point now() const override {
    return self->clock().now();
  }
};

// Publishes the current message's counter changes and what the node holds.
void commit(node_pointer self) {
  auto& st = self->state;
  auto& m = *st.metrics;
  auto& c = st.counts;
  auto publish = [&m](std::atomic<uint64_t>& to, uint64_t n) {
    if (n)
      m.add(to, n);
  };
  publish(m.out, c.out);
  publish(m.filtered, c.filtered);
  publish(m.dead_lettered, c.dead_lettered);
  publish(m.errors, c.errors);
  publish(m.created, c.created);
  publish(m.lost, c.lost);
  publish(m.batches, c.batches);
  publish(m.unsent, static_cast<uint64_t>(c.unsent)); // wraps for negatives
  c = tally{};
  auto held = (st.logic ? st.logic->held() : 0) + st.worker_records;
  m.held.store(held, std::memory_order_relaxed);
  m.processing.store(0, std::memory_order_relaxed);
}

void acknowledge(node_pointer self, uint64_t token);

void release(node_pointer self, uint64_t token) {
  auto& st = self->state;
  auto i = st.inputs.find(token);
  if (i == st.inputs.end())
    return;
  if (--i->second.refs == 0)
    acknowledge(self, token);
}

void acknowledge(node_pointer self, uint64_t token) {
  auto& st = self->state;
  auto i = st.inputs.find(token);
  if (i == st.inputs.end())
    return;
  auto& in = i->second;
  if (in.from)
    self->send(in.from, ack_atom_v, in.tag, in.batch_id);
  st.unacked_bytes[in.in_port] -= in.bytes;
  st.metrics->unacked_in[in.in_port].fetch_sub(in.size,
                                               std::memory_order_relaxed);
  st.inputs.erase(i);
  if (st.inputs.empty())
    st.upstream_starved = false;
}

void flush(node_pointer self);
void arm_tick(node_pointer self);

// Records meant for the consumer of edge `e`, a temporary node removed for
// good, that it will never receive: counted where they would have arrived
// (the node is gone, its counters are final), as lost. So a fan-out that
// loses one branch accounts for that branch's share.
node_metrics& consumer_metrics(node_state& st, const consumer_edge& e) {
  auto tag = static_cast<size_t>(&e - st.edges.data());
  return *st.plan->metrics->nodes[st.plan->out_edges[st.index][tag].consumer];
}

void count_lost_at(node_state& st, const consumer_edge& e, uint64_t n) {
  if (n > 0)
    consumer_metrics(st, e).lose_unreceived(n);
}

// Creates an output entry on `port` and queues it for every consumer.
void push_output(node_pointer self, uint32_t port, record_batch batch,
                 const std::vector<uint64_t>& lineage) {
  auto& st = self->state;
  auto n = batch.size();
  if (n == 0)
    return;
  size_t consumers = 0;
  for (auto& e : st.edges) {
    if (e.port != port)
      continue;
    consumers += !e.dropped;
    if (e.dropped && !e.finished)
      count_lost_at(st, e, n); // its share would have gone to a removed node
  }
  if (st.is_source && port == data_port)
    for (auto& r : batch.mutable_records())
      r.ctx.origin = st.origin;
  if (port == data_port) {
    st.counts.out += n;
    st.counts.batches += 1;
    report_to_slots(*st.spec, st.plan->resources,
                    {slot_event::kind::passed_on, n});
  }
  if (consumers == 0) {
    // Nobody will acknowledge it (finished or removed consumers, or none):
    // a source may forget it now.
    if (st.is_source && port == data_port)
      st.logic->acknowledged(batch);
    return;
  }
  auto id = st.next_out++;
  auto& entry = st.outs[id];
  entry.bytes = batch.payload_bytes();
  entry.batch = std::move(batch);
  entry.lineage = lineage;
  for (auto t : lineage)
    if (auto i = st.inputs.find(t); i != st.inputs.end())
      ++i->second.refs;
  for (auto& e : st.edges) {
    if (e.port != port || e.dropped)
      continue;
    ++entry.pending;
    e.queue.push_back(id);
    e.queued += n;
  }
  entry.unsent = entry.pending;
  st.counts.unsent += static_cast<int64_t>(n);
}

// The entry went out on one more edge (or that edge is gone).
void mark_sent(node_state& st, out_entry& entry) {
  if (entry.unsent > 0 && --entry.unsent == 0)
    st.counts.unsent -= static_cast<int64_t>(entry.batch.size());
}

void dead_letter(node_pointer self, record r, const std::string& reason,
                 const std::vector<uint64_t>& lineage) {
  auto& st = self->state;
  st.counts.dead_lettered += 1;
  st.counts.errors += 1;
  if (!st.has_consumers[errors_port]) {
    // Nobody reads `NODE.errors`: the log and the report are the record.
    auto n = st.metrics->dead_lettered.load(std::memory_order_relaxed)
             + st.counts.dead_lettered;
    if (n <= 10)
      std::cerr << "troupe: " << st.spec->name << ": record seq=" << r.seq
                << " failed: " << reason
                << (n == 10 ? " (further failures only counted)" : "") << '\n';
    return;
  }
  push_output(self, errors_port, record_batch{std::vector<record>{std::move(r)}},
              lineage);
}

void node_emitter::emit(record_batch b) {
  push_output(self, data_port, std::move(b), lineage);
}

void node_emitter::fail(record r, std::string reason) {
  if (!r.attr("error"))
    annotate_failure(r, self->state.spec->name, reason);
  dead_letter(self, std::move(r), reason, lineage);
}

// Releases inputs whose records the inline logic no longer holds.
void release_open(node_pointer self) {
  auto& st = self->state;
  auto held = st.logic ? st.logic->buffered() : 0;
  auto threshold = st.consumed >= held ? st.consumed - held : 0;
  while (!st.open.empty()) {
    auto t = st.open.front();
    auto i = st.inputs.find(t);
    if (i != st.inputs.end() && i->second.end > threshold)
      break;
    st.open.pop_front();
    if (i != st.inputs.end())
      st.metrics->record_latency(elapsed_ns(i->second.received));
    release(self, t);
  }
}

node_emitter inline_emitter(node_pointer self) {
  node_emitter out{self};
  out.lineage.assign(self->state.open.begin(), self->state.open.end());
  return out;
}

bool all_inputs_ended(const node_state& st) {
  for (bool e : st.ended)
    if (!e)
      return false;
  return true;
}

void maybe_quit(node_pointer self) {
  auto& st = self->state;
  if (!st.input_done || !st.outs.empty())
    return;
  for (auto& e : st.edges)
    if (!e.eof_sent || !e.queue.empty())
      return;
  self->quit();
}

// All inputs ended: let the logic flush, then keep ticking until it holds
// nothing (a slow sink or a delay stage drains at its own pace, bounded by
// the supervisor's shutdown_timeout).
void maybe_finish(node_pointer self) {
  auto& st = self->state;
  if (st.input_done || st.is_source || !all_inputs_ended(st)
      || st.outstanding > 0 || !st.waiting.empty())
    return;
  if (!st.finishing) {
    st.finishing = true;
    auto out = inline_emitter(self);
    try {
      st.logic->finish(out);
    } catch (const unrecoverable_error&) {
      throw;
    } catch (...) {
      // Deterministic by then (no input will change it): a restart would
      // replay all the node's input only to fail here again.
      throw unrecoverable_error("finish() failed: "
                                + describe(std::current_exception()));
    }
    release_open(self);
  }
  bool holds = st.logic->buffered() > 0 || st.logic->held() > 0;
  if (holds && st.logic->tick_interval().count() > 0) {
    arm_tick(self);
    flush(self);
    return;
  }
  if (auto n = st.logic->held(); n > 0)
    // Ending now would acknowledge records nobody emitted: never silently.
    throw unrecoverable_error(
      std::to_string(n) + " records still held after all inputs ended, and "
      "the logic has no tick to release them");
  // Nothing will tick any more: what the logic still claims is released.
  while (!st.open.empty()) {
    auto t = st.open.front();
    st.open.pop_front();
    release(self, t);
  }
  st.input_done = true;
  flush(self);
}

bool pressing(const node_state& st);

void flush(node_pointer self) {
  auto& st = self->state;
  bool starved = pressing(st);
  for (auto& e : st.edges) {
    bool sent = false;
    while (!e.queue.empty() && e.in_flight < st.window
           && e.in_flight_bytes < st.window_bytes) {
      auto id = e.queue.front();
      e.queue.pop_front();
      auto i = st.outs.find(id);
      if (i == st.outs.end())
        continue;
      auto n = i->second.batch.size();
      e.queued -= n;
      e.in_flight += n;
      e.in_flight_bytes += i->second.bytes;
      st.metrics->sent_out[&e - st.edges.data()].fetch_add(
        n, std::memory_order_relaxed);
      e.unacked.emplace(id, n);
      bool redelivery = e.resent.erase(id) > 0;
      if (!redelivery)
        mark_sent(st, i->second);
      if (e.handle)
        self->send(e.handle, batch_atom_v, e.in_port,
                   static_cast<uint32_t>(&e - st.edges.data()), id, redelivery,
                   i->second.batch);
      sent = true;
    }
    // While we are starved, a consumer holding what we sent may be what
    // pins our input: tell it, after the batches it is about.
    if (!starved) {
      e.starved_told = false;
    } else if ((sent || !e.starved_told) && e.in_flight > 0 && e.handle
               && !e.dropped) {
      e.starved_told = true;
      self->send(e.handle, starved_atom_v);
    }
    if (st.input_done && e.queue.empty() && !e.eof_sent) {
      e.eof_sent = true;
      if (e.handle)
        self->send(e.handle, eof_atom_v, e.in_port);
    }
  }
  maybe_quit(self);
}

// Room for a source to produce: the smallest credit left on any data edge.
size_t source_room(const node_state& st) {
  size_t room = st.plan->graph.runtime.batch_size * 4;
  for (auto& e : st.edges) {
    if (e.port != data_port)
      continue;
    auto used = e.in_flight + e.queued;
    room = std::min(room, used >= st.window ? 0 : st.window - used);
    if (e.in_flight_bytes >= st.window_bytes)
      room = 0;
  }
  return room;
}

void schedule_produce(node_pointer self) {
  auto& st = self->state;
  if (st.producing_scheduled || st.input_done)
    return;
  st.producing_scheduled = true;
  self->send(self, produce_atom_v);
}

void produce(node_pointer self) {
  auto& st = self->state;
  st.producing_scheduled = false;
  if (st.input_done)
    return;
  if (st.stop_requested) {
    st.input_done = true;
    flush(self);
    return;
  }
  auto room = source_room(st);
  if (room == 0)
    return; // an ack will call us again
  auto max = std::min(room, st.plan->graph.runtime.batch_size);
  node_emitter out{self};
  auto status = st.logic->produce(max, out);
  flush(self);
  switch (status) {
    case produce_status::more:
      schedule_produce(self);
      break;
    case produce_status::idle:
      st.producing_scheduled = true;
      self->delayed_send(self, st.logic->idle_delay(), produce_atom_v);
      break;
    case produce_status::done:
      st.input_done = true;
      flush(self);
      break;
  }
}

// Applies a worker's result as if the logic had run inline.
void apply_result(node_pointer self, uint64_t token, stage_result& r) {
  auto& st = self->state;
  node_emitter out{self};
  out.lineage = {token};
  st.counts.filtered += r.dropped;
  st.counts.created += r.created;
  for (auto& b : r.emitted)
    out.emit(std::move(b));
  for (size_t k = 0; k < r.failed.size(); ++k)
    out.fail(std::move(r.failed[k]), k < r.reasons.size() ? r.reasons[k] : "");
  if (auto i = st.inputs.find(token); i != st.inputs.end()) {
    st.metrics->record_latency(elapsed_ns(i->second.received));
    st.worker_records -= i->second.size;
  }
  release(self, token);
  --st.outstanding;
}

void dispatch(node_pointer self);

void on_worker_result(node_pointer self, size_t w, uint64_t seq,
                      uint64_t token, stage_result& r) {
  auto& st = self->state;
  --st.workers[w].busy;
  if (!st.spec->ordered) {
    apply_result(self, token, r);
  } else {
    st.done.emplace(seq, std::make_pair(token, std::move(r)));
    while (!st.done.empty() && st.done.begin()->first == st.next_apply) {
      auto node = st.done.extract(st.done.begin());
      apply_result(self, node.mapped().first, node.mapped().second);
      ++st.next_apply;
    }
  }
  dispatch(self);
  flush(self);
  maybe_finish(self);
  commit(self); // a reply, not a message of the behaviour: publish here too
}

void dispatch(node_pointer self) {
  auto& st = self->state;
  while (!st.waiting.empty()) {
    size_t best = 0;
    for (size_t w = 1; w < st.workers.size(); ++w)
      if (st.workers[w].busy < st.workers[best].busy)
        best = w;
    if (st.workers[best].busy >= 2)
      return;
    auto token = st.waiting.front();
    st.waiting.pop_front();
    auto [redelivery, batch] = std::move(st.waiting_batches[token]);
    st.waiting_batches.erase(token);
    ++st.workers[best].busy;
    auto seq = st.next_dispatch++;
    ask(self, st.workers[best].handle, st.plan->graph.runtime.request_timeout,
        exec_atom_v, redelivery, std::move(batch))
      .then(
        [=](stage_result& r) { on_worker_result(self, best, seq, token, r); },
        [=](caf::error& err) {
          // A worker died or timed out: this incarnation is in an unknown
          // state. Crash it; the supervisor restarts it and upstream
          // redelivers.
          self->quit(make_error(errc::worker_failed,
                                self->state.spec->name + ": " + render(err)));
        });
  }
}

// Upstream can send us nothing more until we acknowledge something: our own
// input window is full, or a producer told us its is and it waits for what
// it sent us. Then a logic holding records must let go of them (a filling
// batch), and if what pins our input waits in our consumers instead (a
// batch behind a filter keeps one record of each of our inputs), flush()
// passes the word on with what we send them.
bool pressing(const node_state& st) {
  if (st.upstream_starved)
    return true;
  for (size_t p = 0; p < st.unacked_bytes.size(); ++p)
    if (st.metrics->unacked_in[p].load(std::memory_order_relaxed) >= st.window
        || st.unacked_bytes[p] >= st.window_bytes)
      return true;
  return false;
}

void let_go(node_pointer self) {
  auto& st = self->state;
  if (!st.workers.empty() || st.logic->held() == 0)
    return; // workers always finish what they hold
  auto out = inline_emitter(self);
  st.logic->starved(out);
  release_open(self);
}

// A producer is starved and waits for us.
void on_starved(node_pointer self) {
  auto& st = self->state;
  if (st.inputs.empty())
    return; // we hold nothing of anyone's: it is not waiting for us
  st.upstream_starved = true;
  let_go(self);
  for (auto& e : st.edges)
    e.starved_told = false; // pass it on, even without anything new
  flush(self);
}

void on_batch(node_pointer self, uint32_t in_port, uint32_t tag, uint64_t id,
              bool redelivery, record_batch& batch) {
  auto& st = self->state;
  auto from = caf::actor_cast<node_actor>(self->current_sender());
  if (in_port >= st.ended.size())
    return;
  // More data after an end: a restarted producer replays what was not
  // acknowledged. Reopen the input, and if this node had finished, resume:
  // its consumers get another eof once this is through.
  st.ended[in_port] = false;
  if (st.input_done || st.finishing) {
    st.input_done = false;
    st.finishing = false;
    for (auto& e : st.edges)
      if (!e.dropped)
        e.eof_sent = false;
  }
  auto n = batch.size();
  st.metrics->add(st.metrics->in, n);
  st.metrics->unacked_in[in_port].fetch_add(n, std::memory_order_relaxed);
  st.metrics->received_in[in_port].fetch_add(n, std::memory_order_relaxed);
  auto token = st.next_token++;
  auto& in = st.inputs[token];
  in.tag = tag;
  in.in_port = in_port;
  in.batch_id = id;
  in.from = from;
  in.refs = 1;
  in.size = n;
  in.bytes = batch.payload_bytes();
  in.received = clock_type::now();
  st.unacked_bytes[in_port] += in.bytes;
  if (st.plan->graph.runtime.delivery == delivery_mode::at_most_once) {
    // At most once: tell the producer we have it, so a crash of ours never
    // brings it back (what we held is counted lost); the ack, and with it
    // the credit, still waits until the records are released.
    self->send(from, received_atom_v, tag, id);
  }
  if (!st.workers.empty()) {
    ++st.outstanding;
    st.worker_records += n;
    st.waiting.push_back(token);
    st.waiting_batches.emplace(token, std::make_pair(redelivery, std::move(batch)));
    dispatch(self);
    if (pressing(st))
      flush(self); // tells consumers holding our earlier output
    return;
  }
  st.consumed += n;
  in.end = st.consumed;
  st.open.push_back(token);
  st.metrics->processing.store(n, std::memory_order_relaxed);
  auto out = inline_emitter(self);
  if (redelivery)
    consume_carefully(*st.logic, std::move(batch), out,
                      st.plan->graph.runtime.max_attempts, st.spec->name);
  else
    st.logic->consume(std::move(batch), out);
  release_open(self);
  if (pressing(st))
    let_go(self);
  flush(self);
}

// One consumer is done with output entry `id` (acknowledged, or gone for
// good). When none is left, the inputs it derives from are released.
void settle(node_pointer self, uint64_t id) {
  auto& st = self->state;
  auto o = st.outs.find(id);
  if (o == st.outs.end() || --o->second.pending > 0)
    return;
  if (st.is_source)
    st.logic->acknowledged(o->second.batch);
  auto lineage = std::move(o->second.lineage);
  st.outs.erase(o);
  for (auto t : lineage)
    release(self, t);
}

void on_ack(node_pointer self, uint32_t tag, uint64_t id) {
  auto& st = self->state;
  if (tag >= st.edges.size())
    return;
  auto& e = st.edges[tag];
  auto u = e.unacked.find(id);
  if (u == e.unacked.end())
    return; // acknowledgement from a consumer incarnation we moved past
  e.in_flight -= u->second;
  if (auto o = st.outs.find(id); o != st.outs.end())
    e.in_flight_bytes -= o->second.bytes;
  e.unacked.erase(u);
  e.received.erase(id);
  settle(self, id);
  flush(self);
  if (st.is_source)
    schedule_produce(self);
}

void on_input_end(node_pointer self, uint32_t in_port) {
  auto& st = self->state;
  if (in_port >= st.ended.size())
    return;
  st.ended[in_port] = true;
  maybe_finish(self);
}

void on_rewire(node_pointer self, uint32_t tag, caf::strong_actor_ptr h) {
  auto& st = self->state;
  if (tag >= st.edges.size())
    return;
  auto& e = st.edges[tag];
  e.handle = caf::actor_cast<node_actor>(h);
  e.in_flight = 0;
  st.metrics->sent_out[tag].store(0, std::memory_order_relaxed); // new consumer
  e.in_flight_bytes = 0;
  e.eof_sent = false;
  auto unacked = std::move(e.unacked);
  e.unacked.clear();
  auto received = std::move(e.received);
  e.received.clear();
  for (auto i = unacked.rbegin(); i != unacked.rend(); ++i) {
    if (received.count(i->first)) {
      // at_most_once: the dead consumer had it; its supervisor counted what
      // it held as lost. Forget it here.
      settle(self, i->first);
      continue;
    }
    auto o = st.outs.find(i->first);
    if (o == st.outs.end())
      continue;
    for (auto& r : o->second.batch.mutable_records())
      ++r.ctx.attempt;
    st.metrics->add(st.metrics->redelivered, i->second);
    e.resent.insert(i->first);
    e.queue.push_front(i->first);
    e.queued += i->second;
  }
  flush(self);
  if (st.is_source)
    schedule_produce(self);
}

// Forgets an edge whose consumer will never come back: it finished (it had
// everything we sent before; anything more would be a duplicate), or it was
// a temporary node removed after a crash.
void on_drop(node_pointer self, uint32_t tag, bool finished) {
  auto& st = self->state;
  if (tag >= st.edges.size() || st.edges[tag].dropped)
    return;
  auto& e = st.edges[tag];
  if (!finished) {
    // Sent but never received (it died in the removed node's mailbox), and
    // queued for it but never sent.
    auto received = consumer_metrics(st, e).unacked_in[e.in_port].load(
      std::memory_order_relaxed);
    count_lost_at(st, e,
                  e.queued + (e.in_flight > received ? e.in_flight - received
                                                     : 0));
  }
  for (auto id : e.queue)
    if (auto o = st.outs.find(id); o != st.outs.end() && !e.resent.count(id))
      mark_sent(st, o->second);
  std::vector<uint64_t> ids(e.queue.begin(), e.queue.end());
  for (auto& [id, _] : e.unacked)
    ids.push_back(id);
  e.resent.clear();
  e.queue.clear();
  e.unacked.clear();
  e.queued = e.in_flight = e.in_flight_bytes = 0;
  e.dropped = true;
  e.finished = finished;
  e.eof_sent = true;
  e.handle = nullptr;
  for (auto id : ids)
    settle(self, id);
  flush(self);
  if (st.is_source)
    schedule_produce(self);
}

void arm_tick(node_pointer self) {
  auto& st = self->state;

  auto every = st.logic->tick_interval();
  if (every.count() <= 0 || st.tick_armed || st.input_done)
    return;
  st.tick_armed = true;
  self->delayed_send(self, every, tick_atom_v);
}

node_actor::behavior_type
node_fn(node_pointer self, std::shared_ptr<const run_plan> plan, size_t index,
        node_wiring wiring) {
  auto& st = self->state;
  st.plan = plan;
  st.spec = &plan->graph.nodes[index];
  st.metrics = plan->metrics->nodes[index].get();
  auto* type = plan->types[index];
  st.is_source = type->kind == actor_kind::source;
  st.window = plan->graph.runtime.window;
  st.window_bytes = plan->graph.runtime.window_bytes;
  st.index = index;
  st.origin = static_cast<uint32_t>(index + 1);
  install_exception_handler(self, st.spec->name);
  install_default_handler(self, st.spec->name, &st.metrics->unexpected);
  st.memory = std::move(wiring.memory);
  st.logic = type->make_node(
    node_context{*st.spec, *plan->reg, 0, wiring.incarnation,
                 plan->graph.runtime.max_attempts,
                 st.memory ? st.memory.get() : nullptr,
                 plan->graph.runtime.delivery});
  auto n_inputs = plan->in_edges[index].size();
  st.ended.assign(n_inputs, false);
  st.unacked_bytes.assign(n_inputs, 0);
  for (size_t k = 0; k < wiring.closed_inputs.size() && k < n_inputs; ++k)
    st.ended[k] = wiring.closed_inputs[k];
  for (auto& e : plan->out_edges[index]) {
    consumer_edge ce;
    ce.handle = caf::actor_cast<node_actor>(wiring.consumers.at(e.tag));
    ce.in_port = e.in_port;
    ce.port = e.port;
    ce.finished = st.edges.size() < wiring.finished_consumers.size()
                  && wiring.finished_consumers[st.edges.size()];
    ce.dropped = !ce.handle || ce.finished; // removed, or finished
    ce.eof_sent = ce.dropped;
    st.has_consumers[e.port] = true;
    st.edges.push_back(std::move(ce));
  }
  if (st.spec->workers > 1) {
    for (size_t w = 0; w < st.spec->workers; ++w)
      st.workers.push_back(
        {self->spawn<caf::linked>(worker_fn, plan, index, w,
                                 wiring.incarnation),
         0});
  }
  if (st.is_source)
    schedule_produce(self);
  else
    self->send(self, tick_atom_v); // arms the timer and checks closed inputs
  commit(self);
  return {
    [=](batch_atom, uint32_t in_port, uint32_t tag, uint64_t id,
        bool redelivery, record_batch& batch) {
      on_batch(self, in_port, tag, id, redelivery, batch);
      commit(self);
    },
    [=](ack_atom, uint32_t tag, uint64_t id) {
      on_ack(self, tag, id);
      commit(self);
    },
    [=, &st = self->state](received_atom, uint32_t tag, uint64_t id) {
      if (tag < st.edges.size() && st.edges[tag].unacked.count(id))
        st.edges[tag].received.insert(id);
    },
    [=](eof_atom, uint32_t in_port) {
      on_input_end(self, in_port);
      commit(self);
    },
    [=](close_atom, uint32_t in_port) {
      on_input_end(self, in_port);
      commit(self);
    },
    [=](rewire_atom, uint32_t tag, caf::strong_actor_ptr& h) {
      on_rewire(self, tag, std::move(h));
      commit(self);
    },
    [=](drop_atom, uint32_t tag, bool finished) {
      on_drop(self, tag, finished);
      commit(self);
    },
    [=](starved_atom) {
      on_starved(self);
      commit(self);
    },
    [=](stop_atom) {
      self->state.stop_requested = true;
      if (self->state.is_source) {
        // Also cuts short an idle wait (a rate pause, a quiet stdin).
        self->state.producing_scheduled = false;
        schedule_produce(self);
      }
    },
    [=, &st = self->state](tick_atom) {
      if (st.tick_armed) {
        st.tick_armed = false;
        if (!st.input_done) {
          auto out = inline_emitter(self);
          st.logic->tick(out);
          release_open(self);
          flush(self);
        }
      }
      arm_tick(self);
      maybe_finish(self);
      commit(self);
    },
    [=](produce_atom) {
      produce(self);
      commit(self);
    },
  };
}

} // namespace

std::string describe(std::exception_ptr e) {
  try {
    if (e)
      std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "unknown exception";
  }
  return "no exception";
}

node_actor spawn_node(caf::local_actor* parent,
                      std::shared_ptr<const run_plan> plan, size_t index,
                      node_wiring wiring) {
  return parent->spawn(node_fn, std::move(plan), index, std::move(wiring));
}

} // namespace troupe::detail
