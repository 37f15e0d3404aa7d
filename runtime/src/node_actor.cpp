#include "node_actor.hpp"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <mutex>
#include <unordered_map>

#include <caf/actor_cast.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/local_actor.hpp>
#include <caf/scheduled_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "troupe/ask.hpp"
#include "troupe/call_context.hpp"
#include "troupe/errors.hpp"
#include "troupe/hygiene.hpp"

#include "node/commands.hpp"
#include "node/input_ledger.hpp"
#include "node/node_lifecycle.hpp"
#include "node/outbox.hpp"
#include "node/worker_dispatch.hpp"
#include "troupe/log.hpp"

namespace troupe::detail {

namespace {

using clock_type = std::chrono::steady_clock;

static_assert(data_port == out_data_port && errors_port == out_errors_port,
              "the outbox numbers output ports as run_plan does");

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
    if (b.empty())
      return;
    if (result.first.empty())
      result.first = std::move(b);
    else
      result.more.push_back(std::move(b));
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
  node_context ctx{spec, *plan->reg, worker, incarnation,
                   plan->graph.runtime.max_attempts, nullptr,
                   plan->graph.runtime.delivery};
  ctx.metrics = plan->metrics->nodes[index].get();
  self->state.logic = plan->types[index]->make_node(ctx);
  install_exception_handler(self, spec.name + " worker");
  install_default_handler(self, spec.name + " worker",
                          &plan->metrics->nodes[index]->unexpected);
  auto max_attempts = plan->graph.runtime.max_attempts;
  auto id = static_cast<uint32_t>(worker);
  return {
    [=](exec_atom, uint64_t seq, bool redelivery, record_batch& batch) {
      collecting_emitter out;
      if (redelivery)
        consume_carefully(*self->state.logic, std::move(batch), out,
                          max_attempts, spec.name);
      else
        self->state.logic->consume(std::move(batch), out);
      // Only its node sends exec.
      self->send(caf::actor_cast<node_actor>(self->current_sender()),
                 exec_atom_v, id, seq, std::move(out.result));
    },
  };
}

// -- the node actor -------------------------------------------------------------
//
// A shell around the delivery ledger (node/): each handler runs the node's
// logic where a message calls for it, asks the ledger classes what follows,
// and carries out the commands they return (carry_out) at once.

// Counter changes made while handling one message, published when the
// handler returns. A handler that throws publishes none of them: what it
// emitted never left the node, and the supervisor accounts for what the
// incarnation held (the `held` and `processing` gauges) instead. (`out`,
// `batches` and `unsent` accumulate in the outbox the same way.)
struct tally {
  uint64_t filtered = 0, dead_lettered = 0, errors = 0, created = 0;
};

// The producer incarnations whose batches the input ledger holds, numbered
// for it (it knows no actor handles). A slot lets go of its handle once
// every batch of its incarnation was acknowledged, and is reused.
class sender_table {
public:
  uint32_t acquire(const node_actor& from) {
    if (last_ < slots_.size() && slots_[last_].handle == from) {
      ++slots_[last_].refs;
      return last_;
    }
    auto free = static_cast<uint32_t>(slots_.size());
    for (uint32_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].handle == from) {
        free = i;
        break;
      }
      if (slots_[i].refs == 0 && free == slots_.size())
        free = i;
    }
    if (free == slots_.size())
      slots_.emplace_back();
    if (slots_[free].handle != from)
      slots_[free].handle = from;
    ++slots_[free].refs;
    last_ = free;
    return free;
  }
  const node_actor& operator[](uint32_t i) const {
    return slots_[i].handle;
  }
  void release(uint32_t i) {
    if (--slots_[i].refs == 0)
      slots_[i].handle = nullptr;
  }

private:
  struct slot {
    node_actor handle;
    size_t refs = 0;
  };
  std::vector<slot> slots_;
  uint32_t last_ = 0;
};

class node_call_context;

struct node_state {
  static inline const char* name = "troupe.node";

  std::shared_ptr<const run_plan> plan;
  const node_spec* spec = nullptr;
  node_metrics* metrics = nullptr;
  // Declared before the logic, so the logic's destructor (a checkpoint
  // save) still finds its memory.
  std::shared_ptr<std::unique_ptr<node_memory>> memory; // across restarts
  // The calls a waiting logic starts (its slot clients); declared before the
  // logic, which holds pointers to them.
  std::unique_ptr<node_call_context> calls;
  std::unique_ptr<node_logic> logic;
  size_t index = 0;    // in the graph
  uint32_t origin = 0; // index + 1: stamped on a source's records
  // Ids of timers and external calls, unique across incarnations: a wake-up
  // meant for a crashed incarnation never runs a later one's continuation.
  uint64_t next_call_id = 0;
  bool is_source = false;
  tally counts; // unpublished counter changes of the current message

  // The ledger: every decision about credit, acknowledgement, redelivery,
  // workers and the node's phase is taken there.
  node_lifecycle life;
  input_ledger inputs;
  outbox outs;
  worker_dispatch pool;
  node_commands todo; // what they decided, carried out at once

  std::vector<node_actor> consumers; // by reply tag
  std::vector<worker_actor> workers;
  bool watchdog_armed = false; // a timeout message is on its way
  std::vector<uint64_t> spare_lineage; // see node_emitter
  sender_table senders;
};

using node_pointer = node_actor::stateful_pointer<node_state>;

// -- calls of a stage that waits (waiting.hpp, call_context.hpp) ---------------

void on_call_complete(node_pointer self,
                      const std::function<void(emitter&)>& then);

// An external call's hand-over: the finishing thread leaves the
// continuation here and wakes the node, which takes it on its own thread.
class node_external_call final : public external_call {
public:
  node_external_call(caf::weak_actor_ptr node, uint64_t id)
    : node_(std::move(node)), id_(id) {
  }

  void finish(std::function<void(emitter&)> then) override {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (finished_)
        return;
      finished_ = true;
      then_ = std::move(then);
    }
    if (auto node = node_.lock())
      caf::anon_send(caf::actor_cast<caf::actor>(node), wake_atom_v, id_);
  }

  std::function<void(emitter&)> take() {
    std::lock_guard<std::mutex> guard{mtx_};
    return std::move(then_);
  }

private:
  std::mutex mtx_;
  bool finished_ = false;
  std::function<void(emitter&)> then_;
  caf::weak_actor_ptr node_;
  uint64_t id_;
};

// The node's side of node_calls: requests from the node actor under finite
// timeouts, each continuation run on the node's thread followed by the same
// bookkeeping as a consumed batch. One per incarnation: a crashed node's
// continuations die with it, and upstream redelivers their records.
class node_call_context final : public node_calls, public call_context {
public:
  explicit node_call_context(node_pointer self) : self_(self) {
  }

  // The incarnation ends with calls outstanding: nobody waits any more.
  ~node_call_context() override {
    for (auto& [_, t] : waits_)
      deadlock::end_wait(t);
  }

  void add_client(const std::string& slot, std::unique_ptr<slot_client> c) {
    clients_[slot] = std::move(c);
  }

  caf::actor_system& system() override {
    return self_->system();
  }

  duration timeout() const override {
    return self_->state.plan->graph.runtime.request_timeout;
  }

  size_t outstanding() const override {
    return outstanding_;
  }

  void request(const caf::strong_actor_ptr& to, caf::message msg,
               duration timeout, caf::behavior handlers) override {
    if (timeout <= duration{0})
      throw std::invalid_argument("a call's timeout must be positive");
    ++outstanding_;
    auto* label = deadlock::label_of(msg);
    auto h = self_->request(caf::actor_cast<caf::actor>(to),
                            std::chrono::duration_cast<caf::timespan>(timeout),
                            std::move(msg));
    self_->add_multiplexed_response_handler(h.id(), std::move(handlers));
    // The deadlock detector sees the call as a wait on `to` until its
    // reply, error or timeout (all of which end in complete()).
    if (to) {
      auto t = deadlock::begin_wait(self_->system(), self_->ctrl(), to.get(),
                                    label, timeout, h.id().integer_value());
      if (t.id != 0)
        waits_.emplace(h.id().integer_value(), t);
    }
  }

  void complete(const std::function<void(emitter&)>& then) override {
    --outstanding_;
    // Inside a reply's handler: the wait of that request ends.
    if (!waits_.empty())
      if (auto* e = self_->current_mailbox_element())
        if (auto i = waits_.find(e->mid.integer_value()); i != waits_.end()) {
          deadlock::end_wait(i->second);
          waits_.erase(i);
        }
    on_call_complete(self_, then);
  }

  uint64_t after(duration delay,
                 std::function<void(emitter&)> then) override {
    ++outstanding_;
    auto id = self_->state.next_call_id++;
    timers_.emplace(id, std::move(then));
    self_->delayed_send(self_, std::max(delay, duration{1000}), wake_atom_v,
                        id);
    return id;
  }

  void cancel_after(uint64_t id) override {
    if (timers_.erase(id) > 0)
      --outstanding_; // its wake-up finds nothing
  }

  std::shared_ptr<external_call> external() override {
    ++outstanding_;
    auto id = self_->state.next_call_id++;
    auto call = std::make_shared<node_external_call>(
      caf::actor_cast<caf::weak_actor_ptr>(self_), id);
    externals_.emplace(id, call);
    return call;
  }

  // A timer fired or an external call finished.
  void wake(uint64_t id) {
    if (auto i = timers_.find(id); i != timers_.end()) {
      auto then = std::move(i->second);
      timers_.erase(i);
      complete(then);
      return;
    }
    if (auto i = externals_.find(id); i != externals_.end()) {
      auto then = i->second->take();
      externals_.erase(i);
      complete(then);
    }
  }

protected:
  slot_client* find_client(const std::string& slot) override {
    auto i = clients_.find(slot);
    return i == clients_.end() ? nullptr : i->second.get();
  }

private:
  node_pointer self_;
  std::map<std::string, std::unique_ptr<slot_client>> clients_;
  std::unordered_map<uint64_t, std::function<void(emitter&)>> timers_;
  std::unordered_map<uint64_t, std::shared_ptr<node_external_call>> externals_;
  // Calls the deadlock detector tracks, by response id.
  std::unordered_map<uint64_t, deadlock::ticket> waits_;
  size_t outstanding_ = 0;
};

// The emitter the node actor hands to inline logic: every output entry it
// creates derives from the given lineage.
struct node_emitter : emitter {
  node_pointer self;
  std::vector<uint64_t> lineage;
  // The lineage vector is the node's spare one, handed back when done: an
  // emitter per message then allocates nothing.
  explicit node_emitter(node_pointer s)
    : self(s), lineage(std::move(s->state.spare_lineage)) {
    lineage.clear();
  }
  ~node_emitter() override {
    self->state.spare_lineage = std::move(lineage);
  }
  node_emitter(node_emitter&& other) noexcept
    : self(other.self), lineage(std::move(other.lineage)) {
  }
  node_emitter(const node_emitter&) = delete;
  node_emitter& operator=(const node_emitter&) = delete;
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
  auto o = st.outs.take_counts();
  auto publish = [&m](std::atomic<uint64_t>& to, uint64_t n) {
    if (n)
      m.add(to, n);
  };
  publish(m.out, o.out);
  publish(m.filtered, c.filtered);
  publish(m.dead_lettered, c.dead_lettered);
  publish(m.errors, c.errors);
  publish(m.created, c.created);
  publish(m.batches, o.batches);
  publish(m.unsent, static_cast<uint64_t>(o.unsent)); // wraps for negatives
  c = tally{};
  auto held = (st.logic ? st.logic->held() : 0) + st.pool.records();
  m.held.store(held, std::memory_order_relaxed);
  m.processing.store(0, std::memory_order_relaxed);
}

// Sends the batch of command `k` to its consumer, with the commands right
// after it that are batches for the same consumer as one train. Returns the
// last command sent.
size_t send_batches(node_pointer self, size_t k) {
  using kind = node_command::kind;
  auto& st = self->state;
  auto& todo = st.todo;
  const auto& c = todo[k];
  size_t last = k;
  while (last + 1 < todo.size() && last + 1 - k < batch_train::capacity
         && todo[last + 1].what == kind::send_batch
         && todo[last + 1].edge == c.edge
         && todo[last + 1].redelivery == c.redelivery)
    ++last;
  for (size_t j = k; j <= last; ++j)
    st.metrics->sent_out[c.edge].fetch_add(todo[j].records,
                                           std::memory_order_relaxed);
  auto& h = st.consumers[c.edge];
  if (!h)
    return last;
  if (last == k) {
    self->send(h, batch_atom_v, c.port, c.edge, c.id, c.redelivery,
               std::move(todo.batch(c)));
    return last;
  }
  batch_train train;
  train.redelivery = c.redelivery;
  for (size_t j = k; j <= last; ++j) {
    train.ids[train.size] = todo[j].id;
    train.batches[train.size] = std::move(todo.batch(todo[j]));
    ++train.size;
  }
  self->send(h, batch_atom_v, c.port, c.edge, std::move(train));
  return last;
}

// Carries out what the ledger decided, in order.
void carry_out_all(node_pointer self) {
  using kind = node_command::kind;
  auto& st = self->state;
  auto& todo = st.todo;
  // Consecutive acknowledgements to one producer edge leave as one message
  // (a sink that wrote a chunk acknowledges its batches at once).
  struct {
    node_actor to; // a copy: release() below may clear the table's slot
    uint32_t tag = 0;
    uint64_t first = 0;
    uint32_t count = 0;
  } acks;
  auto send_acks = [&] {
    if (acks.count > 0)
      self->send(acks.to, ack_atom_v, acks.tag, acks.first, acks.count);
    acks.count = 0;
  };
  for (size_t k = 0; k < todo.size(); ++k) {
    const auto& c = todo[k];
    if (c.what != kind::ack && c.what != kind::latency
        && c.what != kind::redelivered)
      send_acks(); // keeps every other send in order behind them
    switch (c.what) {
      case kind::send_batch:
        k = send_batches(self, k);
        break;
      case kind::send_starved:
        if (auto& h = st.consumers[c.edge])
          self->send(h, starved_atom_v);
        break;
      case kind::send_eof:
        if (auto& h = st.consumers[c.edge])
          self->send(h, eof_atom_v, c.port);
        break;
      case kind::ack:
        if (auto& h = st.senders[c.sender]) {
          if (acks.count > 0
              && (acks.to != h || acks.tag != c.tag
                  || acks.first + acks.count != c.id
                  || acks.count == UINT32_MAX))
            send_acks();
          if (acks.count == 0) {
            acks.to = h;
            acks.tag = c.tag;
            acks.first = c.id;
          }
          ++acks.count;
        }
        st.senders.release(c.sender);
        st.metrics->unacked_in[c.port].fetch_sub(c.records,
                                                 std::memory_order_relaxed);
        break;
      case kind::received:
        self->send(st.senders[c.sender], received_atom_v, c.tag, c.id);
        break;
      case kind::latency:
        st.metrics->record_latency(elapsed_ns(c.since));
        break;
      case kind::lost_at: {
        // The consumer is gone, its counters are final: counted there. So a
        // fan-out that loses one branch accounts for that branch's share.
        auto consumer = st.plan->out_edges[st.index][c.edge].consumer;
        st.plan->metrics->nodes[consumer]->lose_unreceived(c.records);
        break;
      }
      case kind::redelivered:
        st.metrics->add(st.metrics->redelivered, c.records);
        break;
      case kind::source_acked:
        st.logic->acknowledged(todo.batch(c));
        break;
      case kind::exec:
        self->send(st.workers[c.edge], exec_atom_v, c.id, c.redelivery,
                   std::move(todo.batch(c)));
        if (!st.watchdog_armed) {
          st.watchdog_armed = true;
          self->delayed_send(self, st.plan->graph.runtime.request_timeout,
                             timeout_atom_v);
        }
        break;
    }
  }
  send_acks();
  todo.clear();
}

// Most ledger calls on the record path decide nothing to send.
inline void carry_out(node_pointer self) {
  if (!self->state.todo.empty())
    carry_out_all(self);
}

// Sends what credit allows; quits once draining and everything is through.
void flush(node_pointer self) {
  auto& st = self->state;
  // A call still outstanding (a stopped source's pop) may emit: no eof yet.
  st.outs.flush(st.inputs.pressing(),
                st.life.input_done() && st.calls->outstanding() == 0, st.todo);
  carry_out(self);
  if (st.life.quit(st.outs.drained()))
    self->quit();
}

// Creates an output entry on `port` and queues it for every consumer.
void push_output(node_pointer self, uint32_t port, record_batch batch,
                 const std::vector<uint64_t>& lineage) {
  auto& st = self->state;
  auto n = batch.size();
  if (n == 0)
    return;
  if (st.is_source && port == data_port) {
    // Written only where needed: a batch the logic also keeps (a replay
    // log) would be copied by the write.
    auto rs = batch.records();
    if (std::any_of(rs.begin(), rs.end(), [&](const record& r) {
          return r.ctx.origin != st.origin;
        }))
      for (auto& r : batch.mutable_records())
        r.ctx.origin = st.origin;
  }
  if (port == data_port) {
    report_to_slots(*st.spec, st.plan->resources,
                    {slot_event::kind::passed_on, n});
  }
  st.outs.emit(port, std::move(batch), lineage, st.inputs, st.todo);
  carry_out(self);
}

void dead_letter(node_pointer self, record r, const std::string& reason,
                 const std::vector<uint64_t>& lineage) {
  auto& st = self->state;
  st.counts.dead_lettered += 1;
  st.counts.errors += 1;
  st.metrics->failures.note(false, r.seq, reason);
  if (!st.outs.has_consumers(errors_port)) {
    // Nobody reads `NODE.errors`: the log and the report are the record.
    auto n = st.metrics->dead_lettered.load(std::memory_order_relaxed)
             + st.counts.dead_lettered;
    if (n <= 10)
      TROUPE_LOG(warn, st.spec->name,
                 "record seq=" << r.seq << " failed: " << reason
                               << (n == 10 ? " (further failures only counted)"
                                           : ""));
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
  st.inputs.release_open(st.logic ? st.logic->buffered() : 0, st.todo);
  carry_out(self);
}

node_emitter inline_emitter(node_pointer self) {
  node_emitter out{self};
  auto& open = self->state.inputs.open_tokens();
  out.lineage.assign(open.begin(), open.end());
  return out;
}

void arm_tick(node_pointer self) {
  auto& st = self->state;
  auto every = st.logic->tick_interval();
  if (st.life.arm_tick(every.count() > 0))
    self->delayed_send(self, every, tick_atom_v);
}

void schedule_produce(node_pointer self) {
  if (self->state.life.want_produce())
    self->send(self, produce_atom_v);
}

// All inputs ended: let the logic flush, then keep ticking until it holds
// nothing (a slow sink or a delay stage drains at its own pace, bounded by
// the supervisor's shutdown_timeout).
void maybe_finish(node_pointer self) {
  auto& st = self->state;
  if (!st.life.may_finish(st.inputs.all_ended(), st.pool.idle()))
    return;
  if (st.life.begin_finish()) {
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
  if (st.calls->outstanding() > 0) {
    // Each call ends (reply or timeout) and its completion comes back here.
    flush(self);
    return;
  }
  if (auto n = st.logic->held(); n > 0)
    // Ending now would acknowledge records nobody emitted: never silently.
    throw unrecoverable_error(
      std::to_string(n) + " records still held after all inputs ended, and "
      "the logic has no tick to release them");
  // Nothing will tick any more: what the logic still claims is released.
  st.inputs.release_all_open(st.todo);
  carry_out(self);
  st.life.finished();
  flush(self);
}

void produce(node_pointer self) {
  auto& st = self->state;
  switch (st.life.begin_produce()) {
    case node_lifecycle::produce_step::skip:
      return;
    case node_lifecycle::produce_step::stop:
      flush(self);
      return;
    case node_lifecycle::produce_step::run:
      break;
  }
  // A few batches per produce message while credit lasts: a message (and a
  // scheduling) per batch cost as much as making its records.
  auto batch_size = st.plan->graph.runtime.batch_size;
  auto status = produce_status::more;
  for (int round = 0; round < 4 && status == produce_status::more; ++round) {
    auto room = st.outs.room(batch_size * 4);
    if (room == 0)
      return; // an ack will call us again
    node_emitter out{self};
    status = st.logic->produce(std::min(room, batch_size), out);
    flush(self);
  }
  if (auto p = st.logic->progress(); p.total > 0) {
    st.metrics->work_total.store(p.total, std::memory_order_relaxed);
    st.metrics->work_done.store(p.done, std::memory_order_relaxed);
  }
  switch (status) {
    case produce_status::more:
      schedule_produce(self);
      break;
    case produce_status::idle:
      self->delayed_send(self, st.logic->idle_delay(), produce_atom_v,
                         st.life.produce_later());
      break;
    case produce_status::done:
      st.life.exhausted();
      flush(self);
      break;
  }
}

// Applies a worker's result as if the logic had run inline. `records` were
// in the batch (or, partitioned by key, the part) it ran on; `last`: no
// other part of its input is left, so the input is released.
void apply_result(node_pointer self, uint64_t token, stage_result& r,
                  size_t records, bool last) {
  auto& st = self->state;
  node_emitter out{self};
  out.lineage = {token};
  st.counts.filtered += r.dropped;
  st.counts.created += r.created;
  if (!r.first.empty())
    out.emit(std::move(r.first));
  for (auto& b : r.more)
    out.emit(std::move(b));
  for (size_t k = 0; k < r.failed.size(); ++k)
    out.fail(std::move(r.failed[k]), k < r.reasons.size() ? r.reasons[k] : "");
  if (last) {
    if (auto* in = st.inputs.find(token))
      st.metrics->record_latency(elapsed_ns(in->received));
    st.inputs.release(token, st.todo);
    carry_out(self);
  }
  st.pool.applied(records);
}

void dispatch(node_pointer self) {
  auto& st = self->state;
  st.pool.dispatch(st.todo, self->clock().now());
  carry_out(self);
}

// The one timer over all workers: a batch unanswered for
// runtime.request_timeout leaves this incarnation in an unknown state.
// Crash it; the supervisor restarts it and upstream redelivers.
void on_watchdog(node_pointer self) {
  auto& st = self->state;
  st.watchdog_armed = false;
  auto oldest = st.pool.oldest_unanswered();
  if (!oldest)
    return; // armed again by the next dispatch
  auto limit = st.plan->graph.runtime.request_timeout;
  auto now = self->clock().now();
  if (now - *oldest >= limit) {
    self->quit(make_error(errc::worker_failed,
                          st.spec->name
                            + ": a worker gave no result within "
                              "runtime.request_timeout"));
    return;
  }
  st.watchdog_armed = true;
  self->delayed_send(self, *oldest + limit - now, timeout_atom_v);
}

void on_worker_result(node_pointer self, size_t w, uint64_t seq,
                      stage_result& r) {
  auto& st = self->state;
  if (w >= st.workers.size() || !st.pool.awaiting(seq))
    return; // not an answer this incarnation waits for
  st.pool.complete(w, seq, st.pool.token_of(seq), std::move(r));
  uint64_t ready = 0;
  stage_result result;
  size_t records = 0;
  bool last = false;
  while (st.pool.next_ready(ready, result, records, last))
    apply_result(self, ready, result, records, last);
  dispatch(self);
  flush(self);
  maybe_finish(self);
  commit(self); // a reply, not a message of the behaviour: publish here too
}

void let_go(node_pointer self) {
  auto& st = self->state;
  if (st.pool.enabled() || st.logic->held() == 0)
    return; // workers always finish what they hold
  auto out = inline_emitter(self);
  st.logic->starved(out);
  release_open(self);
}

// A producer is starved and waits for us.
void on_starved(node_pointer self) {
  auto& st = self->state;
  if (!st.inputs.starve())
    return; // we hold nothing of anyone's: it is not waiting for us
  let_go(self);
  st.outs.forget_starved_told(); // pass it on, even without anything new
  flush(self);
}

void on_batch(node_pointer self, uint32_t in_port, uint32_t tag, uint64_t id,
              bool redelivery, record_batch& batch) {
  auto& st = self->state;
  if (in_port >= st.inputs.ports())
    return;
  // More data after an end: a restarted producer replays what was not
  // acknowledged. The input reopens (receive), and if this node had
  // finished, it resumes: its consumers get another eof once this is
  // through.
  if (st.life.reopen())
    st.outs.reopen();
  auto n = batch.size();
  st.metrics->add(st.metrics->in, n);
  st.metrics->unacked_in[in_port].fetch_add(n, std::memory_order_relaxed);
  st.metrics->received_in[in_port].fetch_add(n, std::memory_order_relaxed);
  auto sender
    = st.senders.acquire(caf::actor_cast<node_actor>(self->current_sender()));
  auto token = st.inputs.receive(in_port, tag, id, sender, n,
                                 batch.payload_bytes(), clock_type::now(),
                                 st.todo);
  carry_out(self);
  if (st.pool.enabled()) {
    st.pool.enqueue(token, redelivery, std::move(batch), n);
    dispatch(self);
    if (st.inputs.pressing())
      flush(self); // tells consumers holding our earlier output
    return;
  }
  st.inputs.open(token);
  st.metrics->processing.store(n, std::memory_order_relaxed);
  {
    auto out = inline_emitter(self);
    if (redelivery)
      consume_carefully(*st.logic, std::move(batch), out,
                        st.plan->graph.runtime.max_attempts, st.spec->name);
    else
      st.logic->consume(std::move(batch), out);
  } // its lineage vector is the node's spare again (let_go needs one)
  release_open(self);
  if (st.inputs.pressing())
    let_go(self);
  flush(self);
}

// A call a waiting logic started ended: its continuation runs like a
// consumed batch (it may emit, fail, drop, or start more calls).
void on_call_complete(node_pointer self,
                      const std::function<void(emitter&)>& then) {
  auto& st = self->state;
  auto node_out = inline_emitter(self);
  // A continuation that completes records one by one (a batched lookup
  // answering per key) passes them on as one batch, not one per record.
  coalescing_emitter out{node_out};
  then(out);
  out.flush();
  release_open(self);
  if (st.inputs.pressing())
    let_go(self);
  flush(self);
  maybe_finish(self);
  // A source idle while its call ran (a queue source's pop) goes on now.
  if (st.is_source && st.life.wake())
    self->send(self, produce_atom_v);
  commit(self); // a reply or a timer, not a message of the behaviour
}

void on_ack(node_pointer self, uint32_t tag, uint64_t id) {
  auto& st = self->state;
  if (!st.outs.ack(tag, id, st.inputs, st.todo))
    return; // a consumer incarnation we moved past
  carry_out(self);
  flush(self);
  if (st.is_source)
    schedule_produce(self);
}

void on_input_end(node_pointer self, uint32_t in_port) {
  auto& st = self->state;
  if (in_port >= st.inputs.ports())
    return;
  st.inputs.end(in_port);
  maybe_finish(self);
}

void on_rewire(node_pointer self, uint32_t tag, caf::strong_actor_ptr h) {
  auto& st = self->state;
  if (tag >= st.outs.edge_count())
    return;
  st.consumers[tag] = caf::actor_cast<node_actor>(h);
  // A new consumer incarnation: what we send from now on counts for it
  // (the supervisor sends one rewire per restart of the consumer).
  st.metrics->sent_out[tag].store(0, std::memory_order_relaxed);
  st.metrics->sent_to[tag].fetch_add(1, std::memory_order_relaxed);
  st.outs.rewire(tag, static_cast<bool>(st.consumers[tag]), st.inputs, st.todo);
  carry_out(self);
  flush(self);
  if (st.is_source)
    schedule_produce(self);
}

// Forgets an edge whose consumer will never come back: it finished (it had
// everything we sent before; anything more would be a duplicate), or it was
// a temporary node removed after a crash.
void on_drop(node_pointer self, uint32_t tag, bool finished) {
  auto& st = self->state;
  if (tag >= st.outs.edge_count())
    return;
  // What the removed consumer had received and not acknowledged: what we
  // sent beyond that died in its mailbox.
  auto& e = st.plan->out_edges[st.index][tag];
  auto received = st.plan->metrics->nodes[e.consumer]->unacked_in[e.in_port].load(
    std::memory_order_relaxed);
  if (!st.outs.drop(tag, finished, received, st.inputs, st.todo))
    return;
  st.consumers[tag] = nullptr;
  // What we sent it is settled here (lost_at above, or it finished): a
  // crash of ours later must not count it again (the supervisor's transit
  // book reads this gauge when we go down).
  st.metrics->sent_out[tag].store(0, std::memory_order_relaxed);
  carry_out(self);
  flush(self);
  if (st.is_source)
    schedule_produce(self);
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
  st.index = index;
  st.origin = static_cast<uint32_t>(index + 1);
  install_exception_handler(self, st.spec->name);
  install_default_handler(self, st.spec->name, &st.metrics->unexpected);
  st.memory = std::move(wiring.memory);
  st.calls = std::make_unique<node_call_context>(self);
  for (auto& [slot, name] : st.spec->resources)
    if (auto i = plan->resources.find(name);
        i != plan->resources.end() && i->second->make_client)
      st.calls->add_client(slot,
                           i->second->make_client(i->second->handle, *st.calls));
  node_context ctx{*st.spec, *plan->reg, 0, wiring.incarnation,
                   plan->graph.runtime.max_attempts,
                   st.memory ? st.memory.get() : nullptr,
                   plan->graph.runtime.delivery};
  ctx.calls = st.calls.get();
  ctx.origin = st.origin;
  ctx.metrics = st.metrics;
  st.logic = type->make_node(ctx);
  const auto& rt = plan->graph.runtime;
  st.life = node_lifecycle{st.is_source};
  auto n_inputs = plan->in_edges[index].size();
  st.inputs = input_ledger{n_inputs, rt.window, rt.window_bytes,
                           rt.delivery == delivery_mode::at_most_once};
  for (size_t k = 0; k < wiring.closed_inputs.size() && k < n_inputs; ++k)
    if (wiring.closed_inputs[k])
      st.inputs.end(static_cast<uint32_t>(k));
  std::vector<outbox::edge_config> edges;
  for (auto& e : plan->out_edges[index]) {
    auto tag = st.consumers.size();
    st.consumers.push_back(caf::actor_cast<node_actor>(wiring.consumers.at(e.tag)));
    outbox::edge_config c;
    c.port = e.port;
    c.in_port = e.in_port;
    c.connected = static_cast<bool>(st.consumers.back());
    c.finished = tag < wiring.finished_consumers.size()
                 && wiring.finished_consumers[tag];
    edges.push_back(c);
  }
  st.outs = outbox{edges, rt.window, rt.window_bytes, st.is_source};
  if (st.spec->workers > 1 || st.spec->blocking) {
    st.pool = worker_dispatch{st.spec->workers, st.spec->ordered,
                              st.spec->partition_by_key};
    for (size_t w = 0; w < st.spec->workers; ++w)
      // blocking: each worker gets a thread of its own (CAF's detached
      // actors), so what it runs never holds a scheduler thread.
      st.workers.push_back(
        st.spec->blocking
          ? self->spawn<caf::linked + caf::detached>(worker_fn, plan, index, w,
                                                     wiring.incarnation)
          : self->spawn<caf::linked>(worker_fn, plan, index, w,
                                     wiring.incarnation));
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
    [=](batch_atom, uint32_t in_port, uint32_t tag, batch_train& train) {
      // Each batch is committed as if it came alone: if a later one crashes
      // the node, what the earlier ones emitted has left and is counted.
      for (uint32_t k = 0; k < train.size && k < batch_train::capacity; ++k) {
        on_batch(self, in_port, tag, train.ids[k], train.redelivery,
                 train.batches[k]);
        commit(self);
      }
    },
    [=](ack_atom, uint32_t tag, uint64_t first, uint32_t count) {
      for (uint32_t k = 0; k < count; ++k)
        on_ack(self, tag, first + k);
      commit(self);
    },
    [=](received_atom, uint32_t tag, uint64_t id) {
      self->state.outs.received(tag, id);
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
      // A source ends at its next produce, sent now: that also cuts short
      // an idle wait (a rate pause, a quiet stdin).
      if (self->state.life.stop())
        self->send(self, produce_atom_v);
    },
    [=, &st = self->state](tick_atom) {
      if (st.life.tick()) {
        auto out = inline_emitter(self);
        st.logic->tick(out);
        release_open(self);
        flush(self);
      }
      arm_tick(self);
      maybe_finish(self);
      commit(self);
    },
    [=](produce_atom) {
      produce(self);
      commit(self);
    },
    [=](produce_atom, uint64_t idle) {
      if (self->state.life.idle_ended(idle))
        produce(self);
      commit(self);
    },
    [=](wake_atom, uint64_t id) {
      self->state.calls->wake(id); // commits itself
    },
    [=](exec_atom, uint32_t worker, uint64_t seq, stage_result& r) {
      on_worker_result(self, worker, seq, r); // commits itself
    },
    [=](timeout_atom) {
      on_watchdog(self);
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
