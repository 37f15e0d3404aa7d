// queue: the seed's AsyncQueue as an actor. The actor is the lock; a full
// queue answers a push late (backpressure), an empty one answers a pop late,
// each wait bounded by a deadline and each list of waiters capped.
// Protocol and contract: troupe/actors/queue.hpp.
#include "troupe/actors/queue.hpp"

#include <algorithm>
#include <deque>
#include <iterator>
#include <map>
#include <set>
#include <stdexcept>
#include <utility>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/send.hpp>
#include <caf/system_messages.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include "troupe/actors/builtin_types.hpp"
#include "troupe/call_context.hpp"
#include "troupe/errors.hpp"
#include "troupe/hygiene.hpp"
#include "troupe/service.hpp"
#include "troupe/service_stats.hpp"

namespace troupe {

namespace {

struct producer {
  uint64_t id;
  std::vector<record> records;
  caf::typed_response_promise<uint64_t> rp;
};

struct consumer {
  uint64_t id;
  size_t max;
  caf::typed_response_promise<queue_items> rp;
  caf::actor_addr leased_to; // lease(): who must ack; null for a plain pop
};

// Records handed out by lease() and not acknowledged yet.
struct lease_entry {
  caf::actor_addr holder;
  record_batch records;
};

struct queue_state {
  static inline const char* name = "troupe.queue";
  queue_config cfg;
  std::deque<record> items;
  std::deque<producer> producers; // FIFO, at most cfg.max_waiting_producers
  std::deque<consumer> consumers; // FIFO, at most cfg.max_waiting_consumers
  std::map<uint64_t, lease_entry> leases; // by lease id: oldest first
  std::set<caf::actor_addr> monitored;    // holders of leases
  uint64_t leased = 0;                    // records in `leases`
  uint64_t next_id = 0;
  uint64_t next_lease = 1;
  queue_stats stats;

  // Records the queue answers for: queued and leased.
  uint64_t used() const {
    return items.size() + leased;
  }
};

using queue_pointer = queue_actor::stateful_pointer<queue_state>;

// Up to `max` records off the front; leased to `holder` when it is set.
queue_items take(queue_pointer self, size_t max,
                 const caf::actor_addr& holder) {
  auto& st = self->state;
  auto n = std::min(max, st.items.size());
  std::vector<record> out;
  out.reserve(n);
  for (size_t k = 0; k < n; ++k) {
    out.push_back(std::move(st.items.front()));
    st.items.pop_front();
  }
  st.stats.popped += n;
  queue_items it{record_batch{std::move(out)}, false, 0};
  if (holder && n > 0) {
    it.lease = st.next_lease++;
    st.leases.emplace(it.lease, lease_entry{holder, it.records});
    st.leased += n;
    if (st.monitored.insert(holder).second)
      self->monitor(holder);
  }
  return it;
}

void append(queue_state& st, std::vector<record>& rs) {
  for (auto& r : rs)
    st.items.push_back(std::move(r));
  st.stats.pushed += rs.size();
}

// Hands records to waiting consumers and room to waiting producers until
// neither can go on (an admitted producer may feed another consumer).
void settle(queue_pointer self) {
  auto& st = self->state;
  for (;;) {
    bool moved = false;
    while (!st.items.empty() && !st.consumers.empty()) {
      auto c = std::move(st.consumers.front());
      st.consumers.pop_front();
      c.rp.deliver(take(self, c.max, c.leased_to));
      moved = true;
    }
    while (!st.producers.empty()
           && st.used() + st.producers.front().records.size()
                <= st.cfg.capacity) {
      auto p = std::move(st.producers.front());
      st.producers.pop_front();
      auto n = static_cast<uint64_t>(p.records.size());
      append(st, p.records);
      p.rp.deliver(n);
      moved = true;
    }
    if (!moved)
      break;
  }
  if (st.stats.closed && st.items.empty()) {
    // End of stream for everyone still waiting.
    for (auto& c : st.consumers)
      c.rp.deliver(queue_items{record_batch{}, true});
    st.consumers.clear();
  }
}

caf::timespan clamp_wait(const queue_state& st, caf::timespan wait) {
  auto most = std::chrono::duration_cast<caf::timespan>(st.cfg.max_wait);
  return std::min(wait, most);
}

caf::typed_response_promise<uint64_t>
push(queue_pointer self, std::vector<record> rs, caf::timespan wait) {
  auto& st = self->state;
  auto rp = self->make_response_promise<uint64_t>();
  auto refuse = [&](std::string why) {
    ++st.stats.refused;
    rp.deliver(make_error(errc::refused, "queue: " + why));
    return rp;
  };
  auto n = rs.size();
  if (st.stats.closed)
    return refuse("closed");
  if (n > st.cfg.capacity)
    return refuse("a push of " + std::to_string(n)
                  + " records exceeds the capacity of "
                  + std::to_string(st.cfg.capacity));
  if (st.producers.empty() && st.used() + n <= st.cfg.capacity) {
    append(st, rs);
    settle(self);
    rp.deliver(static_cast<uint64_t>(n));
    return rp;
  }
  wait = clamp_wait(st, wait);
  if (wait <= caf::timespan{0})
    return refuse("full (" + std::to_string(st.items.size()) + " of "
                  + std::to_string(st.cfg.capacity) + ")");
  if (st.producers.size() >= st.cfg.max_waiting_producers)
    return refuse("full, and " + std::to_string(st.producers.size())
                  + " producers already wait (max_waiting_producers)");
  auto id = st.next_id++;
  st.producers.push_back(producer{id, std::move(rs), rp});
  self->delayed_send(self, wait, queue_wake_atom_v, id);
  return rp;
}

caf::typed_response_promise<queue_items>
pop(queue_pointer self, uint64_t max, caf::timespan wait, bool lease) {
  auto& st = self->state;
  auto holder = lease ? self->current_sender() : nullptr;
  auto holder_addr = holder ? holder->address() : caf::actor_addr{};
  auto rp = self->make_response_promise<queue_items>();
  if (max == 0) {
    ++st.stats.refused;
    rp.deliver(make_error(errc::refused, "queue: a pop of 0 records"));
    return rp;
  }
  if (!st.items.empty()) {
    // Records queued means nobody waits for them (settle ran).
    rp.deliver(take(self, static_cast<size_t>(max), holder_addr));
    settle(self);
    return rp;
  }
  if (st.stats.closed) {
    rp.deliver(queue_items{record_batch{}, true});
    return rp;
  }
  wait = clamp_wait(st, wait);
  if (wait <= caf::timespan{0}) {
    rp.deliver(queue_items{});
    return rp;
  }
  if (st.consumers.size() >= st.cfg.max_waiting_consumers) {
    ++st.stats.refused;
    rp.deliver(make_error(errc::refused,
                          "queue: empty, and "
                            + std::to_string(st.consumers.size())
                            + " consumers already wait (max_waiting_consumers)"));
    return rp;
  }
  auto id = st.next_id++;
  st.consumers.push_back(
    consumer{id, static_cast<size_t>(max), rp, holder_addr});
  self->delayed_send(self, wait, queue_wake_atom_v, id);
  return rp;
}

// A waiter's deadline: a producer gets errc::timeout, a consumer an empty
// reply. Already served waiters are not found and nothing happens.
void wake(queue_pointer self, uint64_t id) {
  auto& st = self->state;
  auto p = std::find_if(st.producers.begin(), st.producers.end(),
                        [id](auto& x) { return x.id == id; });
  if (p != st.producers.end()) {
    ++st.stats.timed_out;
    p->rp.deliver(make_error(errc::timeout,
                             "queue: still full when the push's wait ended"));
    st.producers.erase(p);
    settle(self); // the next producer may fit
    return;
  }
  auto c = std::find_if(st.consumers.begin(), st.consumers.end(),
                        [id](auto& x) { return x.id == id; });
  if (c != st.consumers.end()) {
    ++st.stats.timed_out;
    c->rp.deliver(queue_items{});
    st.consumers.erase(c);
  }
}

// A lease holder died before it acknowledged: its records go back to the
// front of the queue, oldest lease first, in their order.
void requeue(queue_pointer self, const caf::actor_addr& holder) {
  auto& st = self->state;
  st.monitored.erase(holder);
  std::vector<record> back;
  for (auto i = st.leases.begin(); i != st.leases.end();) {
    if (i->second.holder != holder) {
      ++i;
      continue;
    }
    for (auto& r : i->second.records.records())
      back.push_back(r);
    st.leased -= i->second.records.size();
    i = st.leases.erase(i);
  }
  st.stats.requeued += back.size();
  st.stats.popped -= back.size();
  st.items.insert(st.items.begin(), std::make_move_iterator(back.begin()),
                  std::make_move_iterator(back.end()));
  settle(self);
}

queue_actor::behavior_type queue_fn(queue_pointer self, queue_config cfg) {
  self->state.cfg = cfg;
  self->state.stats.capacity = cfg.capacity;
  install_exception_handler(self, "queue");
  install_default_handler(self, "queue");
  self->set_down_handler([self](caf::down_msg& dm) { requeue(self, dm.source); });
  return {
    [=](queue_push_atom, record_batch& b, caf::timespan wait) {
      return push(self, b.take(), wait);
    },
    [=](queue_push_atom, record& r, caf::timespan wait) {
      std::vector<record> rs;
      rs.push_back(std::move(r));
      return push(self, std::move(rs), wait);
    },
    [=](queue_pop_atom, uint64_t max, caf::timespan wait) {
      return pop(self, max, wait, false);
    },
    [=](queue_lease_atom, uint64_t max, caf::timespan wait) {
      return pop(self, max, wait, true);
    },
    [=](queue_ack_atom, uint64_t lease) {
      auto& st = self->state;
      auto i = st.leases.find(lease);
      if (i == st.leases.end())
        return;
      st.leased -= i->second.records.size();
      st.leases.erase(i);
      settle(self); // room for waiting producers
    },
    [=](queue_close_atom) -> uint64_t {
      auto& st = self->state;
      if (!st.stats.closed) {
        st.stats.closed = true;
        for (auto& p : st.producers) {
          ++st.stats.refused;
          p.rp.deliver(make_error(errc::refused, "queue: closed"));
        }
        st.producers.clear();
        settle(self);
      }
      return st.items.size();
    },
    [=](stats_atom) {
      auto& st = self->state;
      auto s = st.stats;
      s.size = st.items.size();
      s.waiting_producers = st.producers.size();
      s.waiting_consumers = st.consumers.size();
      s.leased = st.leased;
      return s;
    },
    [=](queue_wake_atom, uint64_t id) { wake(self, id); },
  };
}

// What a node's logic calls (queue_client), through the node's calls.
class queue_client_impl final : public queue_client {
public:
  queue_client_impl(queue_actor h, call_context& ctx) : h_(std::move(h)), ctx_(ctx) {
  }

  void pop(size_t max, duration wait, completion<queue_items> done) override {
    using result = call_result<queue_items>;
    typed_call<queue_items>(
      ctx_, h_, ctx_.timeout(),
      [done, h = h_](queue_items& v, emitter& out) {
        auto lease = v.lease;
        done(result::success(std::move(v)), out);
        if (lease != 0) // the node has them now (its completion ran)
          caf::anon_send(h, queue_ack_atom_v, lease);
      },
      [done](call_status s, const std::string& why, emitter& out) {
        done(result::failure(s, why), out);
      },
      queue_lease_atom_v, static_cast<uint64_t>(max), clamp(wait));
  }

  void push(record_batch batch, duration wait,
            completion<uint64_t> done) override {
    using result = call_result<uint64_t>;
    typed_call<uint64_t>(
      ctx_, h_, ctx_.timeout(),
      [done](uint64_t& n, emitter& out) { done(result::success(n), out); },
      [done](call_status s, const std::string& why, emitter& out) {
        done(result::failure(s, why), out);
      },
      queue_push_atom_v, std::move(batch), clamp(wait));
  }

  void close(completion<uint64_t> done) override {
    using result = call_result<uint64_t>;
    typed_call<uint64_t>(
      ctx_, h_, ctx_.timeout(),
      [done](uint64_t& n, emitter& out) { done(result::success(n), out); },
      [done](call_status s, const std::string& why, emitter& out) {
        done(result::failure(s, why), out);
      },
      queue_close_atom_v);
  }

private:
  // A wait ends well before the call's own timeout, so the queue answers
  // (an empty pop, a push timeout) instead of the call timing out.
  caf::timespan clamp(duration wait) const {
    auto most = ctx_.timeout() * 3 / 4;
    return std::chrono::duration_cast<caf::timespan>(std::min(wait, most));
  }

  queue_actor h_;
  call_context& ctx_;
};

} // namespace

queue_actor spawn_queue(caf::actor_system& sys, const queue_config& cfg) {
  if (cfg.capacity == 0)
    throw std::invalid_argument("queue: capacity must be at least 1");
  return sys.spawn(queue_fn, cfg);
}

namespace actors {

actor_type queue_service_type() {
  actor_type t;
  t.name = "queue";
  t.kind = actor_kind::service;
  t.protocol = "queue";
  t.doc
    = "A bounded FIFO of records (AsyncQueue); the actor is the lock. "
      "Protocol queue_actor (troupe/actors/queue.hpp): "
      "push(record_batch|record, wait) -> accepted, answered once the records "
      "are in (full: the producer waits up to `wait`, then errc::timeout; "
      "too many waiting producers, a batch over the capacity or a closed queue: "
      "errc::refused); pop(max, wait) -> queue_items{records, closed}, "
      "answered once a record is there (empty: waits up to `wait`, then an "
      "empty reply; closed and drained: closed = true); lease(max, wait) + "
      "ack(lease): a pop whose records return to the front if the popper dies "
      "before its ack (the queue source pops this way); close -> records left "
      "(consumers drain them, then get end-of-stream); stats -> queue_stats. "
      "Nodes use it with `queue: NAME`: the `queue` source pops until the queue "
      "is closed, the `queue` sink pushes (and closes it when its inputs end).";
  t.params = {
    {"capacity", param_type::integer, false, "1000",
     "records queued (or leased and not acknowledged) at most; a full queue "
     "delays pushes (backpressure)", {}, 0,
     int64_t{1} << 32},
    {"max_waiting_producers", param_type::integer, false, "1024",
     "pushes waiting for room at most; more are refused", {}, 0, 1 << 20},
    {"max_waiting_consumers", param_type::integer, false, "1024",
     "pops waiting for records at most; more are refused", {}, 0, 1 << 20},
    {"max_wait", param_type::time_span, false, "60s",
     "the longest a push or pop may wait (a caller's longer wait is cut to "
     "this)", {}, 0},
  };
  t.service = typed_client<queue_actor>(
    typed_service<queue_actor>([](caf::actor_system& sys,
                                  const resource_spec& r) {
      queue_config cfg;
      cfg.capacity = static_cast<uint64_t>(r.params.integer("capacity"));
      cfg.max_waiting_producers
        = static_cast<uint64_t>(r.params.integer("max_waiting_producers"));
      cfg.max_waiting_consumers
        = static_cast<uint64_t>(r.params.integer("max_waiting_consumers"));
      cfg.max_wait = r.params.dur("max_wait");
      return spawn_queue(sys, cfg);
    }),
    [](const queue_actor& h, call_context& ctx) {
      return std::make_unique<queue_client_impl>(h, ctx);
    });
  t.validate_resource = [](const resource_spec& r, const registry&,
                           std::vector<diagnostic>& errors) {
    if (r.params.integer("capacity") == 0)
      errors.push_back({r.value_at("capacity"),
                        "'capacity' must be at least 1: a queue of capacity 0 "
                        "could never accept a record"});
  };
  t.service.read_stats = stats_reader<queue_actor, queue_stats>(
    stats_atom_v, [](const queue_stats& s) {
      return std::vector<service_sample>{
          {"queue_pushed_total", "Records accepted.", true, static_cast<double>(s.pushed)},
          {"queue_popped_total", "Records handed to consumers.", true, static_cast<double>(s.popped)},
          {"queue_refused_total", "Pushes and pops refused.", true, static_cast<double>(s.refused)},
          {"queue_depth", "Records queued now.", false, static_cast<double>(s.size)},
          {"queue_capacity", "Records the queue holds at most.", false, static_cast<double>(s.capacity)},
          {"queue_waiting_producers", "Pushes waiting for room now.", false, static_cast<double>(s.waiting_producers)},
          {"queue_waiting_consumers", "Pops waiting for records now.", false, static_cast<double>(s.waiting_consumers)},
          {"queue_leased", "Records leased and not acknowledged now.", false, static_cast<double>(s.leased)}};
    });
  return t;
}

} // namespace actors

} // namespace troupe
