#include "troupe/supervisor.hpp"

#include <algorithm>
#include <deque>
#include <exception>
#include <iostream>
#include <random>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/exit_reason.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "troupe/errors.hpp"
#include "troupe/hygiene.hpp"

namespace troupe {

namespace {

struct slot {
  child_spec spec;
  caf::actor handle;
  caf::actor_addr previous; // the incarnation before: its exit may be late
  bool alive = false;
  bool removed = false; // temporary (or finished transient): not restarted
};

struct sup_state {
  static inline const char* name = "troupe.supervisor";
  supervisor_config cfg;
  std::vector<slot> slots;
  restart_budget budget{0, duration{1}};
  std::minstd_rand rng{7};
  // Children being stopped one at a time, last started first.
  std::deque<size_t> stop_queue;
  size_t stopping = SIZE_MAX; // the child we wait for
  uint32_t stop_epoch = 0;    // tells a stale stop timeout from a live one
  // What happens once the stop queue is empty.
  std::vector<size_t> restart_after_stop;
  caf::error quit_after_stop;
  bool quitting = false;
  bool restarts_pending = false;
};

using pointer = supervisor_actor::stateful_pointer<sup_state>;

// Starts one incarnation; "" on success, else why it failed. A factory that
// throws or returns no actor is a failed start, counted against the budget.
std::string start_slot(pointer self, size_t i) {
  auto& s = self->state.slots[i];
  if (s.handle)
    s.previous = s.handle.address();
  s.handle = nullptr;
  s.alive = false;
  try {
    s.handle = s.spec.start(*self);
  } catch (const std::exception& e) {
    return std::string{"its start function threw: "} + e.what();
  } catch (...) {
    return "its start function threw";
  }
  if (!s.handle)
    return "its start function returned no actor";
  s.alive = true;
  // A child spawned `linked` must not take us down when it dies (a kill is
  // never trappable): we watch children by monitor only.
  self->unlink_from(s.handle);
  self->monitor(s.handle);
  return {};
}

void on_failure(pointer self, size_t i, const std::string& reason);

// Starts `which` in order; after a failed start the rest waits for the
// restart that failure schedules (or for the shutdown it causes).
void start_slots(pointer self, const std::vector<size_t>& which) {
  auto& st = self->state;
  for (size_t k = 0; k < which.size(); ++k) {
    auto why = start_slot(self, which[k]);
    if (why.empty())
      continue;
    if (st.slots[which[k]].spec.restart == restart_type::temporary) {
      st.slots[which[k]].removed = true; // never restarted, failed or not
      continue;
    }
    for (size_t rest = k + 1; rest < which.size(); ++rest)
      st.restart_after_stop.push_back(which[rest]);
    on_failure(self, which[k], "failed to start: " + why);
    return;
  }
}

void stop_next(pointer self);

void after_stops(pointer self) {
  auto& st = self->state;
  if (st.quitting) {
    self->quit(st.quit_after_stop);
    return;
  }
  if (!st.restart_after_stop.empty()) {
    std::uniform_real_distribution<double> u(-1, 1);
    auto delay = backoff_delay(st.cfg.policy.backoff, st.budget.recent(),
                               u(st.rng));
    st.restarts_pending = true;
    if (delay.count() > 0)
      self->delayed_send(self, delay, restart_atom_v, uint32_t{0});
    else
      self->send(self, restart_atom_v, uint32_t{0});
  }
}

void stop_next(pointer self) {
  auto& st = self->state;
  while (!st.stop_queue.empty()) {
    auto i = st.stop_queue.front();
    st.stop_queue.pop_front();
    if (!st.slots[i].alive)
      continue;
    st.stopping = i;
    ++st.stop_epoch;
    self->send_exit(st.slots[i].handle, caf::exit_reason::user_shutdown);
    self->delayed_send(self, st.cfg.shutdown_timeout, timeout_atom_v,
                       st.stop_epoch);
    return;
  }
  st.stopping = SIZE_MAX;
  after_stops(self);
}

// Stops `which` (start-order indexes) in reverse start order, one by one.
void stop_children(pointer self, std::vector<size_t> which) {
  auto& st = self->state;
  std::sort(which.rbegin(), which.rend());
  for (auto i : which)
    st.stop_queue.push_back(i);
  if (st.stopping == SIZE_MAX)
    stop_next(self);
}

void shut_down(pointer self, caf::error reason) {
  auto& st = self->state;
  st.quitting = true;
  st.quit_after_stop = std::move(reason);
  std::vector<size_t> all;
  for (size_t i = 0; i < st.slots.size(); ++i)
    all.push_back(i);
  stop_children(self, all);
}

void on_failure(pointer self, size_t i, const std::string& reason) {
  auto& st = self->state;
  if (!st.budget.admit(self->clock().now())) {
    std::cerr << "troupe: " << st.cfg.name << ": child '" << st.slots[i].spec.name
              << "' failed beyond the restart budget; stopping all children\n";
    shut_down(self, make_error(errc::restart_budget,
                               st.cfg.name + ": child '" + st.slots[i].spec.name
                                 + "' failed: " + reason));
    return;
  }
  std::vector<size_t> set;
  for (auto k : restart_set(st.cfg.policy.strategy, i, st.slots.size()))
    if (!st.slots[k].removed)
      set.push_back(k);
  for (auto k : set)
    st.restart_after_stop.push_back(k);
  stop_children(self, set); // i is down already: skipped
}

void on_down(pointer self, caf::down_msg& dm) {
  auto& st = self->state;
  size_t i = 0;
  for (; i < st.slots.size(); ++i)
    if (st.slots[i].alive && st.slots[i].handle.address() == dm.source)
      break;
  if (i == st.slots.size())
    return;
  auto& s = st.slots[i];
  s.alive = false;
  if (i == st.stopping) {
    stop_next(self);
    return;
  }
  if (st.quitting)
    return;
  // OTP treats `shutdown` like a normal exit: a transient child asked to
  // shut down is not restarted.
  bool normal = !dm.reason || dm.reason == caf::exit_reason::user_shutdown;
  if (s.spec.restart == restart_type::temporary
      || (normal && s.spec.restart == restart_type::transient)) {
    s.removed = true;
    return;
  }
  on_failure(self, i, normal ? "exited" : render(dm.reason));
}

supervisor_actor::behavior_type supervisor_fn(pointer self,
                                              supervisor_config cfg) {
  auto& st = self->state;
  st.budget = restart_budget{cfg.policy.intensity, cfg.policy.period};
  st.cfg = std::move(cfg);
  for (auto& c : st.cfg.children)
    st.slots.push_back({c, {}, {}, false, false});
  install_default_handler(self, st.cfg.name);
  install_exception_handler(self, st.cfg.name);
  self->set_down_handler([self](caf::down_msg& dm) { on_down(self, dm); });
  // An exit from a linked parent: stop the children first. Exits from our
  // own children (spawned linked) are handled by their down messages.
  self->set_exit_handler([self](caf::exit_msg& em) {
    for (auto& s : self->state.slots)
      if (em.source == s.handle.address() || em.source == s.previous)
        return;
    if (!self->state.quitting)
      shut_down(self, em.reason);
  });
  std::vector<size_t> all(st.slots.size());
  for (size_t i = 0; i < all.size(); ++i)
    all[i] = i;
  start_slots(self, all);
  return {
    [=](get_atom, const std::string& name) -> caf::actor {
      for (auto& s : self->state.slots)
        if (s.spec.name == name && s.alive)
          return s.handle;
      return {};
    },
    [=](stop_atom) {
      if (!self->state.quitting)
        shut_down(self, caf::error{});
    },
    [=, &st = self->state](restart_atom, uint32_t) {
      // Only our own timer restarts children.
      if (self->current_sender() != self->ctrl() || st.quitting
          || !st.restarts_pending)
        return;
      st.restarts_pending = false;
      auto set = std::move(st.restart_after_stop);
      st.restart_after_stop.clear();
      std::sort(set.begin(), set.end());
      set.erase(std::unique(set.begin(), set.end()), set.end());
      std::vector<size_t> to_start;
      for (auto k : set) {
        auto& s = st.slots[k];
        if (s.alive || s.removed)
          continue;
        if (s.spec.restart == restart_type::temporary)
          s.removed = true;
        else
          to_start.push_back(k);
      }
      start_slots(self, to_start);
    },
    [=, &st = self->state](timeout_atom, uint32_t epoch) {
      // Only the timer we armed may kill a child: a timeout sent by anyone
      // else would cut its shutdown_timeout short.
      if (self->current_sender() == self->ctrl() && epoch == st.stop_epoch && st.stopping != SIZE_MAX
          && st.slots[st.stopping].alive)
        self->send_exit(st.slots[st.stopping].handle, caf::exit_reason::kill);
    },
  };
}

} // namespace

supervisor_actor spawn_supervisor(caf::actor_system& sys,
                                  supervisor_config cfg) {
  return sys.spawn(supervisor_fn, std::move(cfg));
}

child_spec supervisor_child(std::string name, supervisor_config cfg,
                            restart_type restart) {
  cfg.name = name;
  return {name, restart, [cfg](caf::local_actor& parent) {
            return caf::actor_cast<caf::actor>(parent.spawn(supervisor_fn, cfg));
          }};
}

} // namespace troupe
