// rate_limiter: a token bucket per key plus one semaphore, as an actor.
// Protocol and contract: troupe/actors/rate_limiter.hpp.
//
// The bucket is kept as GCRA (a theoretical arrival time per key): a key
// admits when now >= tat - (burst - 1) * interval, and a grant moves tat to
// max(tat, now) + interval. That is a token bucket of size `burst` refilled
// at `rate`, with one number per key and no refill loop. Waiters queue per
// key in arrival order; when a max_in_flight slot frees, the oldest waiter
// whose bucket allows goes first. One wake-up timer is pending at a time, at
// the earliest moment a waiting key's bucket allows again.
#include "troupe/actors/rate_limiter.hpp"

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <caf/actor_addr.hpp>
#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/system_messages.hpp>
#include <caf/result.hpp>
#include <caf/send.hpp>
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

std::string check(const rate_limiter_config& c) {
  if (c.rate <= 0 && c.max_in_flight <= 0)
    return "a rate_limiter needs a 'rate', a 'max_in_flight' or both";
  if (c.rate > 0 && (c.rate < min_rate || c.rate > max_rate))
    return "'rate' is out of range";
  if (c.rate > 0 && c.burst < 1)
    return "'burst' must be at least 1 with a 'rate' (a bucket of "
           + std::to_string(c.burst) + " tokens never admits)";
  if (c.max_in_flight < 0)
    return "'max_in_flight' must not be negative";
  if (c.max_wait <= duration{0})
    return "'max_wait' must be positive (a request that may never wait is "
           "refused whenever the bucket is empty; use a short max_wait)";
  if (c.max_wait > max_duration)
    return "'max_wait' is out of range";
  if (c.key_idle <= duration{0} || c.key_idle > max_duration)
    return "'key_idle' must be positive";
  if (c.max_waiting < 1)
    return "'max_waiting' must be at least 1";
  return {};
}

namespace {

using time_point = caf::actor_clock::time_point;

struct waiter {
  uint64_t id = 0;
  caf::typed_response_promise<uint64_t> rp;
  caf::actor_addr who; // null for a request without a sender
  duration wait{0};    // how long it may wait
};

struct bucket {
  double tat = 0; // GCRA theoretical arrival time, ns since state::start
  time_point last_used;
  std::deque<waiter> queue;
};

// What one requester holds and waits for: the limiter monitors it while
// either is non-zero, so its death gives its permits back.
struct holder {
  std::unordered_set<uint64_t> permits;
  size_t waiting = 0;
};

struct limiter_state {
  static inline const char* name = "troupe.rate_limiter";
  rate_limiter_config cfg;
  time_point start;
  double interval_ns = 0; // per token
  double tau_ns = 0;      // (burst - 1) * interval: how far tat may lead now
  std::unordered_map<std::string, bucket> buckets;
  std::set<std::string> keys_waiting; // keys whose queue is not empty
  std::unordered_map<uint64_t, std::string> waiter_key; // waiter id -> key
  std::unordered_map<uint64_t, caf::actor_addr> permits; // in flight
  std::map<caf::actor_addr, holder> holders;
  uint64_t next_permit = 1;
  uint64_t next_waiter = 1;
  std::optional<time_point> wake_at; // the pending wake-up
  bool sweep_pending = false;
  limiter_stats stats;

  // The limiter stops (released, killed): every waiting request gets an
  // answer now, not at its caller's timeout.
  ~limiter_state() {
    for (auto& [key, b] : buckets)
      for (auto& w : b.queue)
        if (w.rp.pending())
          w.rp.deliver(make_error(errc::unavailable,
                                  "rate_limiter '" + cfg.name + "' stopped"));
  }
};

using self_ptr = rate_limiter_actor::stateful_pointer<limiter_state>;

double since_start_ns(self_ptr self, time_point t) {
  return static_cast<double>(
    std::chrono::duration_cast<duration>(t - self->state.start).count());
}

bool bucket_allows(self_ptr self, const bucket& b, time_point now) {
  auto& st = self->state;
  return st.cfg.rate <= 0 || since_start_ns(self, now) >= b.tat - st.tau_ns;
}

bool slot_free(self_ptr self) {
  auto& st = self->state;
  return st.cfg.max_in_flight <= 0
         || st.stats.in_flight < static_cast<uint64_t>(st.cfg.max_in_flight);
}

void forget_if_idle(self_ptr self, const caf::actor_addr& who) {
  auto& st = self->state;
  auto i = st.holders.find(who);
  if (i != st.holders.end() && i->second.permits.empty()
      && i->second.waiting == 0) {
    self->demonitor(who);
    st.holders.erase(i);
  }
}

holder& holder_of(self_ptr self, const caf::strong_actor_ptr& who_ptr) {
  auto& st = self->state;
  auto who = caf::actor_cast<caf::actor_addr>(who_ptr);
  auto [i, added] = st.holders.try_emplace(who);
  if (added)
    self->monitor(who_ptr);
  return i->second;
}

// Takes a token (and a slot) for `key` now and returns the permit.
// `queued`: granted to a waiter by a wake-up. Timers fire a little late
// (~0.15 ms here); counting the interval from the late `now` would lose that
// lateness on every grant (3 % of the rate at 200/s, burst 1). So a queue
// served back to back keeps its schedule: tat may trail now by up to one
// interval. Any window still sees at most rate * T + burst + 1 grants.
uint64_t take(self_ptr self, bucket& b, const caf::actor_addr& who,
              time_point now, bool queued = false) {
  auto& st = self->state;
  if (st.cfg.rate > 0) {
    auto now_ns = since_start_ns(self, now);
    auto floor_ns = queued ? now_ns - st.interval_ns : now_ns;
    b.tat = std::max(b.tat, floor_ns) + st.interval_ns;
  }
  b.last_used = now;
  auto id = st.next_permit++;
  ++st.stats.granted;
  if (st.cfg.max_in_flight > 0) {
    ++st.stats.in_flight;
    st.permits.emplace(id, who);
    if (who) {
      // A holder entry exists: its request registered it (acquire).
      st.holders[who].permits.insert(id);
    }
  }
  return id;
}

void schedule_sweep(self_ptr self) {
  auto& st = self->state;
  if (st.sweep_pending || st.buckets.empty())
    return;
  st.sweep_pending = true;
  self->delayed_send(self, st.cfg.key_idle, limiter_sweep_atom_v);
}

// Arms the wake-up for the earliest waiting key its bucket holds back (keys
// held back by max_in_flight wake on release instead).
void schedule_wake(self_ptr self, time_point now) {
  auto& st = self->state;
  if (st.cfg.rate <= 0 || !slot_free(self))
    return;
  std::optional<double> earliest;
  for (auto& key : st.keys_waiting) {
    auto& b = st.buckets[key];
    auto at = b.tat - st.tau_ns;
    if (!earliest || at < *earliest)
      earliest = at;
  }
  if (!earliest)
    return;
  auto delay_ns = std::max(0.0, std::ceil(*earliest - since_start_ns(self, now)));
  auto delay = duration{static_cast<int64_t>(delay_ns)};
  auto at = now + delay;
  if (st.wake_at && *st.wake_at <= at && *st.wake_at >= now)
    return; // an earlier (or equal) wake-up is pending
  st.wake_at = at;
  self->delayed_send(self, delay, limiter_wake_atom_v);
}

void leave_queue(self_ptr self, const waiter& w) {
  auto& st = self->state;
  st.waiter_key.erase(w.id);
  --st.stats.waiting;
  if (w.who) {
    auto i = st.holders.find(w.who);
    if (i != st.holders.end() && i->second.waiting > 0)
      --i->second.waiting;
  }
}

// Grants what the buckets and the semaphore allow, oldest waiter first.
void pump(self_ptr self) {
  auto& st = self->state;
  auto now = self->clock().now();
  while (slot_free(self)) {
    bucket* best = nullptr;
    const std::string* best_key = nullptr;
    for (auto& key : st.keys_waiting) {
      auto& b = st.buckets[key];
      if (bucket_allows(self, b, now)
          && (!best || b.queue.front().id < best->queue.front().id)) {
        best = &b;
        best_key = &key;
      }
    }
    if (!best)
      break;
    auto w = std::move(best->queue.front());
    best->queue.pop_front();
    if (best->queue.empty()) {
      auto emptied = *best_key; // (a copy: erase destroys the set's own)
      st.keys_waiting.erase(emptied);
    }
    leave_queue(self, w);
    ++st.stats.waited;
    auto permit = take(self, *best, w.who, now, true);
    w.rp.deliver(permit);
    if (w.who)
      forget_if_idle(self, w.who);
  }
  schedule_wake(self, now);
}

void give_back(self_ptr self, uint64_t permit) {
  auto& st = self->state;
  auto i = st.permits.find(permit);
  if (i == st.permits.end())
    return; // a token-only permit, or released already
  auto who = i->second;
  st.permits.erase(i);
  --st.stats.in_flight;
  if (who) {
    auto h = st.holders.find(who);
    if (h != st.holders.end())
      h->second.permits.erase(permit);
    forget_if_idle(self, who);
  }
}

std::string refusal(const limiter_state& st, const std::string& key,
                    duration waited, const char* why) {
  auto k = key.empty() ? std::string{} : " for key '" + key + "'";
  return "rate_limiter '" + st.cfg.name + "': no permit" + k + " within "
         + format_duration(waited) + " (" + why + ")";
}

caf::result<uint64_t> acquire(self_ptr self, const std::string& key,
                              duration wait) {
  auto& st = self->state;
  auto now = self->clock().now();
  wait = std::min(wait, st.cfg.max_wait);
  auto [bi, fresh] = st.buckets.try_emplace(key);
  auto& b = bi->second;
  if (fresh) {
    b.tat = since_start_ns(self, now); // a new bucket is full
    b.last_used = now;
    ++st.stats.keys;
    schedule_sweep(self);
  }
  auto sender = self->current_sender();
  auto who = caf::actor_cast<caf::actor_addr>(sender);
  // Fast path: nobody of this key waits, the bucket and a slot allow.
  if (b.queue.empty() && slot_free(self) && bucket_allows(self, b, now)) {
    if (st.cfg.max_in_flight > 0 && sender)
      holder_of(self, sender);
    return take(self, b, who, now);
  }
  if (wait <= duration{0}) {
    ++st.stats.refused;
    return make_error(errc::refused,
                      refusal(st, key, wait, "the caller allowed no wait"));
  }
  if (st.stats.waiting >= static_cast<uint64_t>(st.cfg.max_waiting)) {
    ++st.stats.refused;
    ++st.stats.overflowed;
    return make_error(errc::refused,
                      "rate_limiter '" + st.cfg.name + "': "
                        + std::to_string(st.cfg.max_waiting)
                        + " requests already wait (max_waiting)");
  }
  waiter w;
  w.id = st.next_waiter++;
  w.rp = self->make_response_promise<uint64_t>();
  w.who = who;
  w.wait = wait;
  if (sender)
    ++holder_of(self, sender).waiting;
  auto rp = w.rp;
  st.waiter_key.emplace(w.id, key);
  self->delayed_send(self, wait, limiter_expire_atom_v, w.id);
  b.queue.push_back(std::move(w));
  st.keys_waiting.insert(key);
  ++st.stats.waiting;
  schedule_wake(self, now);
  return rp;
}

void expire(self_ptr self, uint64_t waiter_id) {
  auto& st = self->state;
  auto k = st.waiter_key.find(waiter_id);
  if (k == st.waiter_key.end())
    return; // granted already
  auto key = k->second;
  auto& b = st.buckets[key];
  auto i = std::find_if(b.queue.begin(), b.queue.end(),
                        [&](const waiter& w) { return w.id == waiter_id; });
  if (i == b.queue.end())
    return;
  auto w = std::move(*i);
  b.queue.erase(i);
  if (b.queue.empty())
    st.keys_waiting.erase(key);
  leave_queue(self, w);
  ++st.stats.refused;
  auto why = w.wait < st.cfg.max_wait ? "the caller's wait"
                                       : "max_wait";
  auto held = st.cfg.rate <= 0         ? "max_in_flight permits out"
              : st.cfg.max_in_flight > 0 ? "rate or max_in_flight"
                                         : "rate";
  w.rp.deliver(make_error(
    errc::refused, refusal(st, key, w.wait,
                           (std::string{why} + "; held back by " + held)
                             .c_str())));
  if (w.who)
    forget_if_idle(self, w.who);
}

// The holder `who` died: its permits come back, its waiting requests go.
void holder_down(self_ptr self, const caf::actor_addr& who) {
  auto& st = self->state;
  auto h = st.holders.find(who);
  if (h == st.holders.end())
    return;
  for (auto permit : h->second.permits) {
    st.permits.erase(permit);
    --st.stats.in_flight;
    ++st.stats.released_by_monitor;
  }
  if (h->second.waiting > 0) {
    for (auto k = st.keys_waiting.begin(); k != st.keys_waiting.end();) {
      auto& q = st.buckets[*k].queue;
      for (auto i = q.begin(); i != q.end();) {
        if (i->who == who) {
          st.waiter_key.erase(i->id);
          --st.stats.waiting;
          i = q.erase(i); // its promise goes nowhere: the requester is gone
        } else {
          ++i;
        }
      }
      k = q.empty() ? st.keys_waiting.erase(k) : std::next(k);
    }
  }
  st.holders.erase(h);
  pump(self);
}

void sweep(self_ptr self) {
  auto& st = self->state;
  st.sweep_pending = false;
  auto now = self->clock().now();
  auto now_ns = since_start_ns(self, now);
  for (auto i = st.buckets.begin(); i != st.buckets.end();) {
    auto& b = i->second;
    if (b.queue.empty() && now - b.last_used >= st.cfg.key_idle
        && (st.cfg.rate <= 0 || now_ns >= b.tat)) {
      i = st.buckets.erase(i);
      --st.stats.keys;
      ++st.stats.evicted;
    } else {
      ++i;
    }
  }
  schedule_sweep(self);
}

rate_limiter_actor::behavior_type
limiter_fn(self_ptr self, rate_limiter_config cfg) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.start = self->clock().now();
  if (st.cfg.rate > 0) {
    st.interval_ns = 1e9 / st.cfg.rate;
    st.tau_ns = static_cast<double>(st.cfg.burst - 1) * st.interval_ns;
  }
  install_exception_handler(self, "rate_limiter " + st.cfg.name);
  install_default_handler(self, "rate_limiter " + st.cfg.name);
  self->set_down_handler(
    [self](caf::down_msg& dm) { holder_down(self, dm.source); });
  return {
    [self](acquire_atom, const std::string& key) {
      return acquire(self, key, self->state.cfg.max_wait);
    },
    [self](acquire_atom, const std::string& key, duration wait) {
      return acquire(self, key, wait);
    },
    [self](release_atom, uint64_t permit) {
      give_back(self, permit);
      pump(self);
    },
    [self](stats_atom) { return self->state.stats; },
    [self](limiter_wake_atom) {
      auto& wake_at = self->state.wake_at;
      if (wake_at && *wake_at <= self->clock().now())
        wake_at.reset();
      pump(self);
    },
    [self](limiter_expire_atom, uint64_t id) {
      expire(self, id);
      pump(self); // the queue head may have changed
    },
    [self](limiter_sweep_atom) { sweep(self); },
  };
}

// The client a waiting stage gets for its `rate_limit:` slot.
class limiter_client_impl final : public limiter_client {
public:
  limiter_client_impl(rate_limiter_actor h, call_context& ctx)
    : h_(std::move(h)), ctx_(ctx) {
  }

  void acquire(std::string key, completion<uint64_t> done) override {
    using result = call_result<uint64_t>;
    auto timeout = ctx_.timeout();
    // The limiter gives up a tenth earlier than the call does, so it never
    // grants a permit to a call that already timed out.
    auto wait = timeout - timeout / 10;
    typed_call<uint64_t>(
      ctx_, h_, timeout,
      [done](uint64_t& permit, emitter& out) {
        done(result::success(permit), out);
      },
      [done](call_status s, const std::string& why, emitter& out) {
        done(result::failure(s, why), out);
      },
      acquire_atom_v, std::move(key), wait);
  }

  void release(uint64_t permit) override {
    caf::anon_send(h_, release_atom_v, permit);
  }

private:
  rate_limiter_actor h_;
  call_context& ctx_;
};

} // namespace

rate_limiter_actor spawn_rate_limiter(caf::actor_system& sys,
                                      const rate_limiter_config& cfg) {
  if (auto why = check(cfg); !why.empty())
    throw std::invalid_argument("rate_limiter '" + cfg.name + "': " + why);
  return sys.spawn(limiter_fn, cfg);
}

namespace actors {

namespace {

rate_limiter_config config_of(const resource_spec& r) {
  rate_limiter_config c;
  c.name = r.name;
  auto& p = r.params;
  if (p.has("rate"))
    c.rate = p.number("rate");
  c.burst = p.integer("burst");
  c.max_in_flight = p.integer("max_in_flight");
  c.max_wait = p.dur("max_wait");
  c.key_idle = p.dur("key_idle");
  c.max_waiting = p.integer("max_waiting");
  return c;
}

} // namespace

// Records a node starts at once wait for permits one after another: past
// the limiter's max_wait the last ones would be refused, to errors, not
// slowed down. (Per-key buckets, rate_by: key, share the load; not here.)
void check_limiter_wait(const node_spec& n, const graph_spec& g,
                        int64_t records, const std::string& param,
                        std::vector<diagnostic>& errors) {
  if (auto slot = n.resources.find("rate_limit");
      slot != n.resources.end()
      && !(n.params.has("rate_by") && n.params.str("rate_by") == "key")) {
    auto r = std::find_if(g.resources.begin(), g.resources.end(),
                          [&](auto& x) { return x.name == slot->second; });
    if (r != g.resources.end() && r->type == "rate_limiter"
        && r->params.has("rate") && r->params.has("max_wait")
        && r->params.has("burst")) {
      auto rate = r->params.number("rate");
      auto burst = static_cast<double>(r->params.integer("burst"));
      auto wait = std::chrono::duration<double>(r->params.dur("max_wait")).count();
      auto in_flight = static_cast<double>(records);
      // The last of them waits (records - burst) / rate; at max_wait
      // exactly it is refused too. The most that fit: below rate*wait+burst.
      if (rate > 0 && (in_flight - burst) / rate >= wait) {
        auto fits = static_cast<int64_t>(std::ceil(rate * wait + burst)) - 1;
        errors.push_back(
          {n.params.has(param) && n.params.get(param).where.line > 0
             ? n.params.get(param).where
             : n.at("rate_limit"),
           "'" + param + "' " + std::to_string(static_cast<int64_t>(in_flight))
             + " records would wait up to "
             + std::to_string(static_cast<int64_t>((in_flight - burst) / rate))
             + "s for permits from '" + r->name + "', beyond its max_wait: "
               "the last would be refused, not slowed down; lower "
             + param + " to "
             + std::to_string(std::max<int64_t>(fits, 1))
             + " or raise max_wait"});
      }
    }
  }
}

actor_type rate_limiter_type() {
  actor_type t;
  t.name = "rate_limiter";
  t.kind = actor_kind::service;
  t.protocol = "rate_limiter";
  t.doc
    = "Permits by token bucket (rate, burst; one bucket per key) and/or a "
      "semaphore (max_in_flight). Protocol: acquire(key) -> permit, replied "
      "once granted (key \"\" is the shared bucket), refused "
      "(troupe.refused) after max_wait or when max_waiting already wait; "
      "acquire(key, wait) waits at most min(max_wait, wait); "
      "release(permit) gives a max_in_flight permit back (a no-op without "
      "max_in_flight); permits of a holder that dies are released; stats -> "
      "granted, refused, overflowed, waited, in_flight, released_by_monitor, "
      "waiting, keys, evicted. Nodes use it through `rate_limit: NAME`.";
  t.params = {
    {"rate", param_type::rate, false, "",
     "tokens per key and time (2/s, 100/m); omit for no token bucket"},
    {"burst", param_type::integer, false, "1",
     "bucket size: permits a rested key grants at once (>= 1 with a rate)",
     {}, 0, 1'000'000'000},
    {"max_in_flight", param_type::integer, false, "0",
     "permits out at once over all keys, until released or their holder "
     "dies; 0: no cap",
     {}, 0, 1'000'000'000},
    {"max_wait", param_type::time_span, false, "30s",
     "longest a request waits before it is refused (> 0)"},
    {"key_idle", param_type::time_span, false, "5m",
     "a key's bucket unused this long (and full) is forgotten"},
    {"max_waiting", param_type::integer, false, "10000",
     "requests waiting at once; one more is refused at once (overflowed)",
     {}, 0, 100'000'000},
  };
  t.validate_resource = [](const resource_spec& r, const registry&,
                           std::vector<diagnostic>& out) {
    auto c = config_of(r);
    auto why = check(c);
    if (why.empty())
      return;
    // Point at the parameter the message is about.
    std::string at;
    for (auto* p : {"max_in_flight", "burst", "max_wait", "key_idle",
                    "max_waiting", "rate"})
      if (why.find(std::string{"'"} + p + "'") != std::string::npos) {
        at = p;
        break;
      }
    auto where = r.at("");
    if (!at.empty() && r.params.has(at) && r.params.get(at).where.line > 0)
      where = r.params.get(at).where; // written in the YAML, not a default
    out.push_back({where, why});
  };
  t.service = typed_client<rate_limiter_actor>(
    typed_service<rate_limiter_actor>(
      [](caf::actor_system& sys, const resource_spec& r) {
        return spawn_rate_limiter(sys, config_of(r));
      }),
    [](const rate_limiter_actor& h, call_context& ctx) {
      return std::make_unique<limiter_client_impl>(h, ctx);
    });
  t.service.read_stats = stats_reader<rate_limiter_actor, limiter_stats>(
    stats_atom_v, [](const limiter_stats& s) {
      return std::vector<service_sample>{
          {"limiter_granted_total", "Permits handed out.", true, static_cast<double>(s.granted)},
          {"limiter_waited_total", "Permits granted after waiting.", true, static_cast<double>(s.waited)},
          {"limiter_refused_total", "Requests refused (max_wait or a full queue).", true, static_cast<double>(s.refused)},
          {"limiter_waiting", "Requests waiting for a permit now.", false, static_cast<double>(s.waiting)},
          {"limiter_in_flight", "max_in_flight permits out now.", false, static_cast<double>(s.in_flight)},
          {"limiter_keys", "Token buckets alive now.", false, static_cast<double>(s.keys)}};
    });
  return t;
}

} // namespace actors

} // namespace troupe
