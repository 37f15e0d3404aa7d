// The embeddable supervisor: an actor shell around the supervision engine
// (supervision/engine.hpp), which decides; this file starts, stops and
// kills children and arms the timers the engine asks for.
#include "troupe/supervisor.hpp"

#include <exception>
#include <iostream>
#include <set>
#include <stdexcept>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/exit_reason.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "supervision/engine.hpp"
#include "troupe/deadlock_detector.hpp"
#include "troupe/errors.hpp"
#include "troupe/hygiene.hpp"
#include "troupe/log.hpp"

namespace troupe {

namespace {

namespace sv = supervision;

// The public interface plus the supervisor's own timers, which only it
// sends to itself (restart_due, stop_timeout): not part of supervisor_actor.
using supervisor_impl
  = supervisor_actor::extend<caf::reacts_to<restart_atom, uint64_t>,
                             caf::reacts_to<timeout_atom, uint64_t>>;

struct slot {
  child_spec spec;
  caf::actor handle;
  caf::actor_addr previous; // the incarnation before: its exit may be late
};

struct sup_state {
  static inline const char* name = "troupe.supervisor";
  supervisor_config cfg;
  std::vector<slot> slots;
  // A fixed seed keeps the backoff jitter repeatable.
  sv::engine engine{sv::stop_mode::one_by_one, {}, "", 7};
  caf::error quit_reason; // set when the budget is exhausted
};

using pointer = supervisor_impl::stateful_pointer<sup_state>;

void run(pointer self, const sv::commands& cmds);

// Starts one incarnation; "" on success, else why it failed. A factory that
// throws or returns no actor is a failed start, counted against the budget.
std::string start_slot(pointer self, size_t i) {
  auto& s = self->state.slots[i];
  if (s.handle)
    s.previous = s.handle.address();
  s.handle = nullptr;
  try {
    s.handle = s.spec.start(*self);
  } catch (const std::exception& e) {
    return std::string{"its start function threw: "} + e.what();
  } catch (...) {
    return "its start function threw";
  }
  if (!s.handle)
    return "its start function returned no actor";
  // A child spawned `linked` must not take us down when it dies (a kill is
  // never trappable): we watch children by monitor only.
  self->unlink_from(s.handle);
  self->monitor(s.handle);
  deadlock::name_actor(self->system(),
                       caf::actor_cast<caf::abstract_actor*>(s.handle)->ctrl(),
                       s.spec.name, s.spec.restart != restart_type::temporary);
  return {};
}

void shut_down(pointer self) {
  run(self, self->state.engine.shutdown());
}

void run(pointer self, const sv::commands& cmds) {
  auto& st = self->state;
  for (auto& c : cmds) {
    switch (c.what) {
      case sv::command::op::start:
        for (auto i : c.units) {
          auto why = start_slot(self, i);
          if (why.empty()) {
            st.engine.started(i);
            continue;
          }
          // The engine restarts the rest with this failure's restart set.
          run(self, st.engine.start_failed(i, why, self->clock().now()));
          break;
        }
        break;
      case sv::command::op::stop:
        self->send_exit(st.slots[c.units[0]].handle,
                        caf::exit_reason::user_shutdown);
        self->delayed_send(self, st.cfg.shutdown_timeout, timeout_atom_v,
                           c.token);
        break;
      case sv::command::op::kill:
        for (auto i : c.units)
          self->send_exit(st.slots[i].handle, caf::exit_reason::kill);
        break;
      case sv::command::op::schedule:
        if (c.delay.count() > 0)
          self->delayed_send(self, c.delay, restart_atom_v, c.token);
        else
          self->send(self, restart_atom_v, c.token);
        break;
      case sv::command::op::fail: {
        auto& name = st.slots[c.units[0]].spec.name;
        TROUPE_LOG(error, st.cfg.name,
                   "child '" << name
                             << "' failed beyond the restart budget; "
                                "stopping all children");
        st.quit_reason = make_error(errc::restart_budget,
                                    st.cfg.name + ": child '" + name
                                      + "' failed: " + c.reason);
        shut_down(self);
        break;
      }
      case sv::command::op::all_stopped:
        self->quit(st.quit_reason);
        return;
      default: // remove, restart, escalate: nothing to carry out here
        break;
    }
  }
}

size_t find_child(pointer self, const caf::actor_addr& who) {
  auto& st = self->state;
  for (size_t i = 0; i < st.slots.size(); ++i)
    if (st.engine.up(i) && st.slots[i].handle.address() == who)
      return i;
  return SIZE_MAX;
}

void on_down(pointer self, caf::down_msg& dm) {
  auto i = find_child(self, dm.source);
  if (i == SIZE_MAX)
    return;
  // OTP treats `shutdown` like a normal exit: a transient child asked to
  // shut down is not restarted.
  bool normal = !dm.reason || dm.reason == caf::exit_reason::user_shutdown;
  auto r = self->state.engine.child_down(
    i, normal ? sv::exit_kind::normal : sv::exit_kind::crash,
    normal ? "" : render(dm.reason), self->clock().now());
  run(self, r.cmds);
}

supervisor_impl::behavior_type supervisor_fn(pointer self,
                                             supervisor_config cfg) {
  auto& st = self->state;
  st.engine = sv::engine{sv::stop_mode::one_by_one, cfg.policy, cfg.name, 7};
  st.cfg = std::move(cfg);
  for (auto& c : st.cfg.children) {
    st.slots.push_back({c, {}, {}});
    st.engine.add_child(c.name, c.restart);
  }
  install_default_handler(self, st.cfg.name);
  install_exception_handler(self, st.cfg.name);
  self->set_down_handler([self](caf::down_msg& dm) { on_down(self, dm); });
  // An exit from a linked parent: stop the children first. Exits from our
  // own children (spawned linked) are handled by their down messages.
  self->set_exit_handler([self](caf::exit_msg& em) {
    for (auto& s : self->state.slots)
      if (em.source == s.handle.address() || em.source == s.previous)
        return;
    if (!self->state.engine.shutting_down()) {
      self->state.quit_reason = em.reason;
      shut_down(self);
    }
  });
  run(self, st.engine.start_all());
  return {
    [=, &st = self->state](get_atom, const std::string& name) -> caf::actor {
      for (size_t i = 0; i < st.slots.size(); ++i)
        if (st.slots[i].spec.name == name && st.engine.up(i))
          return st.slots[i].handle;
      return {};
    },
    [=](stop_atom) { shut_down(self); },
    // Timers: only our own restart or kill children; the same message
    // from anyone else would cut a backoff or a shutdown_timeout short.
    [=](restart_atom, uint64_t token) {
      if (self->current_sender() == self->ctrl())
        run(self, self->state.engine.restart_due(token, self->clock().now()));
    },
    [=](timeout_atom, uint64_t token) {
      if (self->current_sender() == self->ctrl())
        run(self, self->state.engine.stop_timeout(token));
    },
  };
}

} // namespace

namespace {

// What the YAML validator refuses for a graph's supervision, refused here
// too: a zero period would never exhaust the budget (an endless crash loop).
void check_config(const supervisor_config& cfg) {
  auto bad = [&](const std::string& why) {
    throw std::invalid_argument("supervisor '" + cfg.name + "': " + why);
  };
  auto& p = cfg.policy;
  if (p.period.count() <= 0)
    bad("policy.period must be positive");
  if (p.backoff.min.count() < 0 || p.backoff.max < p.backoff.min)
    bad("policy.backoff needs 0 <= min <= max");
  if (!(p.backoff.jitter >= 0.0 && p.backoff.jitter <= 1.0))
    bad("policy.backoff.jitter must be within 0..1");
  if (cfg.shutdown_timeout.count() <= 0)
    bad("shutdown_timeout must be positive");
  std::set<std::string> names;
  for (auto& c : cfg.children)
    if (c.name.empty() || !names.insert(c.name).second)
      bad("child names must be unique and not empty ('" + c.name + "')");
}

} // namespace

supervisor_actor spawn_supervisor(caf::actor_system& sys,
                                  supervisor_config cfg) {
  check_config(cfg);
  return sys.spawn(supervisor_fn, std::move(cfg));
}

child_spec supervisor_child(std::string name, supervisor_config cfg,
                            restart_type restart) {
  cfg.name = name;
  check_config(cfg);
  return {name, restart, [cfg](caf::local_actor& parent) {
            return caf::actor_cast<caf::actor>(parent.spawn(supervisor_fn, cfg));
          }};
}

} // namespace troupe
