// worker_pool: tasks on supervised workers behind one actor. The pool actor
// owns the queue (priority, then FIFO), routes tasks to workers, counts every
// overflow, replaces a worker that dies and runs its tasks again, and grows
// or shrinks between min_workers and max_workers. Workers are plain actors
// (detached ones, on threads of their own, with `blocking`); they run one
// task per message and report back. Protocol: troupe/actors/worker_pool.hpp.
//
// Bookkeeping is in the pool actor only (no locks): a task lives in `tasks`
// from its submit to its reply, and is queued, blocked (waiting for queue
// room, with on_full: block) or in flight on exactly one worker.
#include <algorithm>
#include <cstddef>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <stdexcept>
#include <unordered_map>

#include <caf/actor_system.hpp>
#include <caf/system_messages.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/response_promise.hpp>
#include <caf/send.hpp>
#include <caf/spawn_options.hpp>
#include <caf/stateful_actor.hpp>

#include "troupe/actors/builtin_types.hpp"
#include "troupe/actors/worker_pool.hpp"
#include "troupe/call_context.hpp"
#include "troupe/hygiene.hpp"
#include "troupe/service.hpp"
#include "troupe/service_stats.hpp"

namespace troupe {

pool_task make_callable_task(std::function<std::string()> f, std::string key,
                             int32_t priority) {
  pool_task t;
  t.call.fn = std::make_shared<const std::function<std::string()>>(std::move(f));
  t.key = std::move(key);
  t.priority = priority;
  return t;
}

pool_task make_function_task(std::string fn, record_batch records,
                             std::string key, int32_t priority) {
  pool_task t;
  t.fn = std::move(fn);
  t.records = std::move(records);
  t.key = std::move(key);
  t.priority = priority;
  return t;
}

std::string check_worker_pool_config(const worker_pool_config& c) {
  auto lo = c.min_workers.value_or(c.workers);
  auto hi = c.max_workers.value_or(c.workers);
  if (lo > hi)
    return "min_workers (" + std::to_string(lo) + ") is above max_workers ("
           + std::to_string(hi) + ")";
  if (c.workers < lo || c.workers > hi)
    return "workers (" + std::to_string(c.workers)
           + ") must lie between min_workers (" + std::to_string(lo)
           + ") and max_workers (" + std::to_string(hi) + ")";
  if (hi == 0)
    return "a pool needs at least one worker (max_workers is 0)";
  if (c.queue_size == 0 && c.on_full == pool_on_full::block)
    return "queue_size 0 with on_full: block: a submit would wait for queue "
           "room that never exists; give the queue room or choose reject, "
           "drop_newest or drop_oldest";
  if (c.queue_size == 0 && c.on_full == pool_on_full::drop_oldest)
    return "queue_size 0 with on_full: drop_oldest: there is no queued task "
           "to drop; give the queue room or choose reject or drop_newest";
  if (c.worker_queue == 0)
    return "worker_queue must be at least 1";
  if (c.max_attempts == 0 || c.record_attempts == 0)
    return "max_attempts must be at least 1";
  if (lo < hi && c.idle_timeout <= duration{0})
    return "idle_timeout must be positive when the pool resizes "
           "(min_workers below max_workers)";
  if (c.blocking && hi > 256)
    return "blocking workers are threads of their own: at most 256 "
           "(max_workers is " + std::to_string(hi) + ")";
  return {};
}

namespace {

// -- workers ------------------------------------------------------------------

// What apply_to_batch reports besides the kept records.
struct result_emitter final : emitter {
  explicit result_emitter(pool_result& r) : res(r) {
  }
  void emit(record_batch) override {
  }
  void fail(record rec, std::string reason) override {
    res.failed.push_back({std::move(rec), std::move(reason)});
  }
  void drop(size_t n) override {
    res.dropped += n;
  }
  void create(size_t) override {
  }
  pool_result& res;
};

struct worker_state {
  static inline const char* name = "troupe.pool_worker";
  // Made once per worker from the registry's factory (as map does), so a
  // function's private state needs no lock.
  std::unordered_map<std::string, record_fn> fns;
};

using worker_pointer = caf::stateful_actor<worker_state>*;

// Runs tasks one at a time and answers the pool. A task that throws kills
// this worker (its exit reason is the exception): the pool replaces it and
// runs the task again. Holds only the pool's address, so the pool ends when
// its last user lets go; the worker follows it (monitor).
caf::behavior pool_worker(worker_pointer self, caf::actor_addr pool,
                          std::shared_ptr<const registry> reg,
                          uint32_t record_attempts, uint64_t id) {
  self->monitor(pool);
  self->set_down_handler([self](caf::down_msg&) { self->quit(); });
  install_default_handler(self, "worker_pool worker");
  self->set_exception_handler(
    [](caf::scheduled_actor*, std::exception_ptr& e) -> caf::error {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        return make_error(errc::failed, x.what());
      } catch (...) {
        return make_error(errc::failed, "a task threw a non-standard exception");
      }
    });
  return {
    [=](pool_run_atom, uint64_t task, pool_task& t) {
      pool_result res;
      res.worker = id;
      if (t.call.fn) {
        res.value = (*t.call.fn)();
      } else {
        auto& fn = self->state.fns[t.fn];
        if (!fn) {
          auto* entry = reg ? reg->find_function(t.fn) : nullptr;
          if (!entry)
            throw std::runtime_error("unknown function '" + t.fn + "'");
          fn = entry->make();
          if (!fn)
            throw std::runtime_error("function '" + t.fn
                                     + "': its factory made nothing");
        }
        result_emitter out{res};
        res.kept = apply_to_batch(fn, std::move(t.records), record_attempts,
                                  out);
      }
      self->send(caf::actor_cast<caf::actor>(self->current_sender()),
                 pool_done_atom_v, id, task, std::move(res));
    },
  };
}

// -- the pool -------------------------------------------------------------------

struct task_rec {
  pool_task task;
  caf::response_promise rp;
  uint32_t attempts = 0; // runs started
  uint64_t worker = 0;   // in flight on this worker; 0: not
};

struct worker_rec {
  uint64_t id = 0;
  caf::actor handle;
  std::deque<uint64_t> inflight; // task IDs in the order sent
  caf::actor_clock::time_point idle_since;
};

using queue_key = std::pair<int64_t, uint64_t>; // (-priority, task id)

struct pool_state {
  static inline const char* name = "troupe.worker_pool";
  worker_pool_config cfg;
  size_t min_workers = 0, max_workers = 0, max_blocked = 0;
  std::shared_ptr<const registry> reg;
  std::unordered_map<uint64_t, task_rec> tasks;
  std::map<queue_key, uint64_t> queue; // highest priority, oldest first
  std::deque<uint64_t> blocked;        // with on_full: block, capped
  std::vector<worker_rec> workers;     // in spawn order: routing indexes it
  // key_hash: a key with tasks in flight stays on their worker, so a resize
  // or a replacement never runs one key's tasks on two workers at once.
  std::unordered_map<std::string, std::pair<uint64_t, size_t>> pins;
  size_t rr_next = 0;
  uint64_t next_task = 1;
  uint64_t next_worker = 1;
  bool tick_armed = false;
  pool_stats st;
};

using pool_pointer = caf::stateful_actor<pool_state>*;

worker_rec* find_worker(pool_state& s, uint64_t id) {
  for (auto& w : s.workers)
    if (w.id == id)
      return &w;
  return nullptr;
}

void spawn_worker(pool_pointer self) {
  auto& s = self->state;
  auto id = s.next_worker++;
  auto ra = s.cfg.record_attempts;
  caf::actor h = s.cfg.blocking
                   ? self->spawn<caf::detached>(pool_worker, self->address(),
                                                s.reg, ra, id)
                   : self->spawn(pool_worker, self->address(), s.reg, ra, id);
  self->monitor(h);
  s.workers.push_back({id, h, {}, self->clock().now()});
  s.st.peak_workers
    = std::max<uint64_t>(s.st.peak_workers, s.workers.size());
}

void arm_tick(pool_pointer self, duration delay) {
  auto& s = self->state;
  if (s.tick_armed || s.workers.size() <= s.min_workers)
    return;
  s.tick_armed = true;
  self->delayed_send(self, std::max(delay, duration{1000}), pool_tick_atom_v);
}

void went_idle(pool_pointer self, worker_rec& w) {
  w.idle_since = self->clock().now();
  arm_tick(self, self->state.cfg.idle_timeout);
}

// The worker a task goes to, or nullptr when it must wait.
worker_rec* pick(pool_state& s, const task_rec& t) {
  auto cap = s.cfg.worker_queue;
  auto n = s.workers.size();
  if (n == 0)
    return nullptr;
  auto least = [&]() -> worker_rec* {
    worker_rec* best = nullptr;
    for (auto& w : s.workers)
      if (w.inflight.size() < cap
          && (!best || w.inflight.size() < best->inflight.size()))
        best = &w;
    return best;
  };
  switch (s.cfg.routing) {
    case pool_routing::round_robin:
      for (size_t i = 0; i < n; ++i) {
        auto& w = s.workers[(s.rr_next + i) % n];
        if (w.inflight.size() < cap) {
          s.rr_next = (s.rr_next + i + 1) % n;
          return &w;
        }
      }
      return nullptr;
    case pool_routing::least_loaded:
      return least();
    case pool_routing::key_hash: {
      if (t.task.key.empty())
        return least();
      worker_rec* w = nullptr;
      if (auto i = s.pins.find(t.task.key); i != s.pins.end())
        w = find_worker(s, i->second.first);
      if (!w)
        w = &s.workers[std::hash<std::string>{}(t.task.key) % n];
      return w->inflight.size() < cap ? w : nullptr;
    }
  }
  return nullptr;
}

void send_to(pool_pointer self, worker_rec& w, uint64_t id, task_rec& t) {
  auto& s = self->state;
  t.worker = w.id;
  ++t.attempts;
  w.inflight.push_back(id);
  if (s.cfg.routing == pool_routing::key_hash && !t.task.key.empty()) {
    auto& pin = s.pins[t.task.key];
    pin.first = w.id;
    ++pin.second;
  }
  // A copy: the pool keeps the task to run it again if this worker dies
  // (records are shared copy-on-write; the worker's first write copies).
  self->send(w.handle, pool_run_atom_v, id, t.task);
}

void unpin(pool_state& s, const task_rec& t) {
  if (s.cfg.routing != pool_routing::key_hash || t.task.key.empty())
    return;
  auto i = s.pins.find(t.task.key);
  if (i != s.pins.end() && --i->second.second == 0)
    s.pins.erase(i);
}

void enqueue(pool_state& s, uint64_t id) {
  s.queue.emplace(queue_key{-static_cast<int64_t>(s.tasks[id].task.priority),
                            id},
                  id);
}

// Moves blocked submits into the queue while it has room.
bool unblock(pool_state& s) {
  bool moved = false;
  while (!s.blocked.empty() && s.queue.size() < s.cfg.queue_size) {
    enqueue(s, s.blocked.front());
    s.blocked.pop_front();
    moved = true;
  }
  return moved;
}

// Hands queued tasks to workers while any can take one; grows the pool when
// more than grow_above tasks still wait.
void dispatch(pool_pointer self) {
  auto& s = self->state;
  for (bool progress = true; progress;) {
    progress = false;
    for (auto i = s.queue.begin(); i != s.queue.end();) {
      auto& t = s.tasks[i->second];
      auto* w = pick(s, t);
      if (!w) {
        if (s.cfg.routing != pool_routing::key_hash || t.task.key.empty())
          break; // no worker has room
        ++i;     // this key's worker is full; other keys may go on
        continue;
      }
      send_to(self, *w, i->second, t);
      i = s.queue.erase(i);
      progress = true;
    }
    if (unblock(s))
      progress = true;
    if (s.queue.size() > s.cfg.grow_above && s.workers.size() < s.max_workers) {
      spawn_worker(self);
      ++s.st.grown;
      progress = true;
    }
  }
}

void refuse(pool_state& s, uint64_t id, std::string why) {
  auto i = s.tasks.find(id);
  i->second.rp.deliver(make_error(errc::refused, std::move(why)));
  s.tasks.erase(i);
}

// The queue is over queue_size after a submit: apply on_full to it.
void overflow(pool_pointer self, uint64_t newest) {
  auto& s = self->state;
  auto key = queue_key{-static_cast<int64_t>(s.tasks[newest].task.priority),
                       newest};
  // Tasks a dead worker had go back to the queue even past queue_size (they
  // were admitted already); a new task that went straight to a worker
  // overflows nothing.
  if (s.queue.count(key) == 0)
    return;
  auto full = "worker_pool queue full (queue_size "
              + std::to_string(s.cfg.queue_size) + ")";
  switch (s.cfg.on_full) {
    case pool_on_full::reject:
      s.queue.erase(key);
      ++s.st.rejected;
      refuse(s, newest, full + ": rejected (on_full: reject)");
      return;
    case pool_on_full::drop_newest:
      s.queue.erase(key);
      ++s.st.dropped_newest;
      refuse(s, newest, full + ": dropped (on_full: drop_newest)");
      return;
    case pool_on_full::drop_oldest: {
      // The oldest task of the lowest priority waiting: the one that would
      // run last among the oldest, never a more urgent one.
      auto last = std::prev(s.queue.end());
      auto victim = s.queue.lower_bound(queue_key{last->first.first, 0});
      auto id = victim->second;
      s.queue.erase(victim);
      ++s.st.dropped_oldest;
      refuse(s, id, full + ": evicted by a newer task (on_full: drop_oldest)");
      return;
    }
    case pool_on_full::block:
      s.queue.erase(key);
      if (s.blocked.size() >= s.max_blocked) {
        ++s.st.rejected;
        refuse(s, newest,
               full + " and " + std::to_string(s.max_blocked)
                 + " submits already wait for room (max_blocked): rejected");
        return;
      }
      ++s.st.blocked_total;
      s.blocked.push_back(newest); // its reply waits: backpressure
      return;
  }
}

caf::result<pool_result> submit(pool_pointer self, pool_task& t) {
  auto& s = self->state;
  ++s.st.submitted;
  if (t.call.fn && !t.fn.empty()) {
    ++s.st.rejected;
    return make_error(errc::refused,
                      "a pool task is a function or a callable, not both");
  }
  if (!t.call.fn) {
    if (t.fn.empty()) {
      ++s.st.rejected;
      return make_error(errc::refused,
                        "a pool task needs a function name or a callable");
    }
    if (!s.reg || !s.reg->find_function(t.fn)) {
      ++s.st.rejected;
      return make_error(errc::refused,
                        "worker_pool: unknown function '" + t.fn + "'");
    }
  }
  auto id = s.next_task++;
  auto rp = self->make_response_promise();
  s.tasks.emplace(id, task_rec{std::move(t), rp, 0, 0});
  enqueue(s, id);
  dispatch(self);
  if (s.queue.size() > s.cfg.queue_size)
    overflow(self, id);
  return caf::delegated<pool_result>{};
}

void on_done(pool_pointer self, uint64_t wid, uint64_t tid, pool_result& r) {
  auto& s = self->state;
  auto* w = find_worker(s, wid);
  auto i = s.tasks.find(tid);
  if (!w || i == s.tasks.end() || i->second.worker != wid)
    return; // a report that lost its race against the worker's death
  auto pos = std::find(w->inflight.begin(), w->inflight.end(), tid);
  if (pos != w->inflight.end())
    w->inflight.erase(pos);
  unpin(s, i->second);
  r.attempts = i->second.attempts;
  i->second.rp.deliver(std::move(r));
  s.tasks.erase(i);
  ++s.st.completed;
  if (w->inflight.empty())
    went_idle(self, *w);
  dispatch(self);
}

// A worker died: the task it was running counts one attempt and runs again
// (or fails after max_attempts); the tasks behind it go back to the queue
// as they were. A replacement takes the dead worker's place.
void on_worker_down(pool_pointer self, caf::down_msg& dm) {
  auto& s = self->state;
  auto it = std::find_if(s.workers.begin(), s.workers.end(),
                         [&](const worker_rec& w) {
                           return w.handle.address() == dm.source;
                         });
  if (it == s.workers.end())
    return;
  auto inflight = std::move(it->inflight);
  auto index = static_cast<size_t>(it - s.workers.begin());
  s.workers.erase(it);
  ++s.st.crashes;
  auto why = dm.reason ? render(dm.reason) : std::string{"the worker ended"};
  bool first = true;
  for (auto tid : inflight) {
    auto i = s.tasks.find(tid);
    if (i == s.tasks.end())
      continue;
    auto& t = i->second;
    unpin(s, t);
    t.worker = 0;
    if (!first)
      --t.attempts; // sent, never started
    if (first && t.attempts >= s.cfg.max_attempts) {
      ++s.st.failed;
      t.rp.deliver(make_error(
        errc::failed, "worker_pool: task failed after "
                        + std::to_string(t.attempts) + " attempt(s): " + why));
      s.tasks.erase(i);
    } else {
      if (first)
        ++s.st.retried;
      enqueue(s, tid);
    }
    first = false;
  }
  if (s.rr_next > index && s.rr_next > 0)
    --s.rr_next;
  if (!s.workers.empty())
    s.rr_next %= s.workers.size();
  else
    s.rr_next = 0;
  spawn_worker(self); // the resizer retires it later if it stays idle
  dispatch(self);
}

// Retires workers idle for idle_timeout, down to min_workers.
void on_tick(pool_pointer self) {
  auto& s = self->state;
  s.tick_armed = false;
  auto now = self->clock().now();
  auto timeout = s.cfg.idle_timeout;
  duration next = duration::max();
  for (size_t i = s.workers.size(); i-- > 0 && s.workers.size() > s.min_workers;) {
    auto& w = s.workers[i];
    if (!w.inflight.empty())
      continue;
    auto idle = std::chrono::duration_cast<duration>(now - w.idle_since);
    if (idle < timeout) {
      next = std::min(next, timeout - idle);
      continue;
    }
    self->demonitor(w.handle);
    self->send_exit(w.handle, caf::exit_reason::user_shutdown);
    s.workers.erase(s.workers.begin() + static_cast<ptrdiff_t>(i));
    ++s.st.shrunk;
  }
  if (!s.workers.empty())
    s.rr_next %= s.workers.size();
  if (next != duration::max())
    arm_tick(self, next);
}

pool_stats current_stats(const pool_state& s) {
  auto st = s.st;
  st.queued = s.queue.size();
  st.blocked = s.blocked.size();
  st.workers = s.workers.size();
  st.busy = static_cast<uint64_t>(
    std::count_if(s.workers.begin(), s.workers.end(),
                  [](const worker_rec& w) { return !w.inflight.empty(); }));
  return st;
}

caf::behavior pool_fn(pool_pointer self, worker_pool_config cfg,
                      std::shared_ptr<const registry> reg) {
  auto& s = self->state;
  s.cfg = cfg;
  s.min_workers = cfg.min_workers.value_or(cfg.workers);
  s.max_workers = cfg.max_workers.value_or(cfg.workers);
  // Blocked submitters are bounded by their own caps (a waiting map's
  // max_in_flight): the default lets many of them wait, not queue_size.
  s.max_blocked = cfg.max_blocked ? cfg.max_blocked : default_max_blocked;
  s.reg = std::move(reg);
  install_default_handler(self, "worker_pool");
  install_exception_handler(self, "worker_pool");
  self->set_down_handler(
    [self](caf::down_msg& dm) { on_worker_down(self, dm); });
  // Stopped (a run or the runtime released it): every waiting submitter
  // hears so now instead of at its timeout.
  self->set_exit_handler([self](caf::exit_msg& em) {
    auto& st = self->state;
    for (auto& [id, t] : st.tasks)
      t.rp.deliver(make_error(errc::unavailable, "worker_pool stopped"));
    st.tasks.clear();
    for (auto& w : st.workers)
      self->send_exit(w.handle, caf::exit_reason::user_shutdown);
    self->quit(em.reason);
  });
  for (size_t i = 0; i < cfg.workers; ++i)
    spawn_worker(self);
  return {
    [self](pool_submit_atom, pool_task& t) { return submit(self, t); },
    [self](stats_atom) { return current_stats(self->state); },
    [self](pool_done_atom, uint64_t wid, uint64_t tid, pool_result& r) {
      on_done(self, wid, tid, r);
    },
    [self](pool_tick_atom) { on_tick(self); },
  };
}

// -- the slot client ------------------------------------------------------------

class pool_client_impl final : public pool_client {
public:
  pool_client_impl(worker_pool_actor h, call_context& ctx)
    : h_(std::move(h)), ctx_(ctx) {
  }

  void submit(std::string fn, record_batch records, std::string key,
              int priority, completion<pool_result> done) override {
    using result = call_result<pool_result>;
    typed_call<pool_result>(
      ctx_, h_, ctx_.timeout(),
      [done](pool_result& r, emitter& out) {
        done(result::success(std::move(r)), out);
      },
      [done](call_status st, const std::string& why, emitter& out) {
        done(result::failure(st, why), out);
      },
      pool_submit_atom_v,
      make_function_task(std::move(fn), std::move(records), std::move(key),
                         priority));
  }

private:
  worker_pool_actor h_;
  call_context& ctx_;
};

worker_pool_config config_of(const param_set& p) {
  worker_pool_config c;
  c.workers = static_cast<size_t>(p.integer("workers"));
  if (p.has("min_workers"))
    c.min_workers = static_cast<size_t>(p.integer("min_workers"));
  if (p.has("max_workers"))
    c.max_workers = static_cast<size_t>(p.integer("max_workers"));
  auto& r = p.str("routing");
  c.routing = r == "least_loaded" ? pool_routing::least_loaded
              : r == "key_hash"   ? pool_routing::key_hash
                                  : pool_routing::round_robin;
  auto& f = p.str("on_full");
  c.on_full = f == "drop_newest"   ? pool_on_full::drop_newest
              : f == "drop_oldest" ? pool_on_full::drop_oldest
              : f == "reject"      ? pool_on_full::reject
                                   : pool_on_full::block;
  c.queue_size = static_cast<size_t>(p.integer("queue_size"));
  c.max_blocked = static_cast<size_t>(p.integer("max_blocked"));
  c.worker_queue = static_cast<size_t>(p.integer("worker_queue"));
  c.max_attempts = static_cast<uint32_t>(p.integer("max_attempts"));
  c.blocking = p.boolean("blocking");
  c.idle_timeout = p.dur("idle_timeout");
  c.grow_above = static_cast<size_t>(p.integer("grow_above"));
  return c;
}

// The parameter a config message is about, for its location.
std::string blamed_param(const std::string& msg) {
  if (msg.rfind("blocking", 0) == 0)
    return "max_workers"; // the thread count is what is too large
  for (auto* p : {"min_workers", "queue_size", "idle_timeout", "blocking",
                  "worker_queue", "max_attempts", "workers"})
    if (msg.rfind(p, 0) == 0)
      return p;
  return "";
}

} // namespace

worker_pool_actor spawn_worker_pool(caf::actor_system& sys,
                                    const worker_pool_config& cfg,
                                    std::shared_ptr<const registry> reg) {
  if (auto why = check_worker_pool_config(cfg); !why.empty())
    throw std::invalid_argument("worker_pool: " + why);
  auto h = sys.spawn(pool_fn, cfg, std::move(reg));
  return caf::actor_cast<worker_pool_actor>(h);
}

namespace actors {

actor_type worker_pool_type() {
  actor_type t;
  t.name = "worker_pool";
  t.kind = actor_kind::service;
  t.protocol = "worker_pool";
  t.doc
    = "Runs tasks on supervised workers: a registered record function on a "
      "batch, or (from C++) a callable. Protocol (troupe/actors/"
      "worker_pool.hpp, worker_pool_actor): submit(pool_task{fn, records, "
      "key, priority}) -> pool_result{kept, failed, dropped, value, "
      "attempts} when the task finished, or an error: refused (queue full "
      "per on_full, unknown function), failed (the task crashed its worker "
      "max_attempts times; the reason says why), unavailable (pool "
      "stopped); stats -> pool_stats. Higher priority runs first, FIFO "
      "within one. A node's `pool:` slot names it (pool_client).";
  const auto i64max = std::numeric_limits<int64_t>::max();
  t.params = {
    {"workers", param_type::integer, false, "4", "workers at start", {}, 1,
     4096},
    {"min_workers", param_type::integer, false, "",
     "fewest workers when resizing (default: workers)", {}, 0, 4096},
    {"max_workers", param_type::integer, false, "",
     "most workers when resizing (default: workers, i.e. no resizing); the "
     "pool grows by one while more than grow_above tasks wait",
     {}, 1, 4096},
    {"grow_above", param_type::integer, false, "0",
     "grow when more tasks than this wait for a worker", {}, 0, i64max},
    {"idle_timeout", param_type::time_span, false, "30s",
     "a worker idle this long is retired (down to min_workers)"},
    {"routing", param_type::choice, false, "round_robin",
     "which worker takes a task: round_robin (in turn), least_loaded (fewest "
     "tasks in flight), key_hash (one key's tasks on one worker, in order; "
     "different keys in parallel)",
     {"round_robin", "least_loaded", "key_hash"}},
    {"worker_queue", param_type::integer, false, "2",
     "tasks handed to one worker ahead (1 keeps priorities exact)", {}, 1,
     1024},
    {"queue_size", param_type::integer, false, "1024",
     "tasks waiting for a worker, at most", {}, 0, 1 << 24},
    {"on_full", param_type::choice, false, "block",
     "when the queue is full: block (the submit's reply waits: "
     "backpressure; at most max_blocked wait, the rest are rejected), "
     "drop_newest (refuse the new task), drop_oldest (evict the oldest of "
     "the lowest priority), reject (refuse the new task); each counted",
     {"block", "drop_newest", "drop_oldest", "reject"}},
    {"max_blocked", param_type::integer, false, "0",
     "with on_full: block, submits waiting for queue room (0: 65536; their "
     "submitters' caps bound them); past it a submit is rejected",
     {}, 0, 1 << 24},
    {"max_attempts", param_type::integer, false, "3",
     "runs of a task whose worker crashes, then it fails with the reason",
     {}, 1, 100},
    {"blocking", param_type::boolean, false, "false",
     "run tasks on threads of their own (CPU-heavy or sleeping work never "
     "stalls the scheduler)"},
  };
  t.validate_resource = [](const resource_spec& r, const registry&,
                           std::vector<diagnostic>& out) {
    auto c = config_of(r.params);
    auto why = check_worker_pool_config(c);
    if (why.empty())
      return;
    // At the parameter the message starts with, where it was written (for
    // queue_size 0 with block left as the default: at queue_size).
    auto where = r.at("");
    auto p = blamed_param(why);
    if (!p.empty() && r.params.has(p) && r.params.get(p).where.line > 0)
      where = r.params.get(p).where;
    out.push_back({where, "worker_pool '" + r.name + "': " + why});
  };
  t.service = typed_client<worker_pool_actor>(
    typed_service<worker_pool_actor>(
      // r.types: the runtime's registry, shared with the pool for as long
      // as it runs (tasks name record functions in it).
      [](caf::actor_system& sys, const resource_spec& r) {
        return spawn_worker_pool(sys, config_of(r.params), r.types);
      }),
    [](const worker_pool_actor& h, call_context& ctx) {
      return std::make_unique<pool_client_impl>(h, ctx);
    });
  t.service.read_stats = stats_reader<worker_pool_actor, pool_stats>(
    stats_atom_v, [](const pool_stats& s) {
      return std::vector<service_sample>{
          {"pool_submitted_total", "Tasks submitted.", true, static_cast<double>(s.submitted)},
          {"pool_completed_total", "Tasks that ran to the end.", true, static_cast<double>(s.completed)},
          {"pool_failed_total", "Tasks given up after max_attempts crashes.", true, static_cast<double>(s.failed)},
          {"pool_retried_total", "Runs repeated after a worker crashed.", true, static_cast<double>(s.retried)},
          {"pool_rejected_total", "Submits refused (reject, or the blocked list full).", true, static_cast<double>(s.rejected)},
          {"pool_queue_depth", "Tasks waiting for a worker now.", false, static_cast<double>(s.queued)},
          {"pool_blocked", "Submits waiting for queue room now.", false, static_cast<double>(s.blocked)},
          {"pool_busy_workers", "Workers with a task now.", false, static_cast<double>(s.busy)},
          {"pool_workers", "Workers alive now.", false, static_cast<double>(s.workers)}};
    });
  return t;
}

} // namespace actors

} // namespace troupe
