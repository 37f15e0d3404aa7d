// once: sync.Once / Singleton as an actor. Protocol and contract:
// troupe/actors/once.hpp.
//
// States: empty (no value; the next request starts an attempt), running (one
// attempt on a helper actor; requests queue, at most max_waiting), done (the
// value; every request answered at once). An attempt ends by its helper's
// reply or by its init_timeout, whichever comes first; the other is ignored
// by its attempt number.
#include "troupe/actors/once.hpp"

#include <exception>
#include <stdexcept>
#include <utility>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/result.hpp>
#include <caf/send.hpp>
#include <caf/spawn_options.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include "troupe/actors/builtin_types.hpp"
#include "troupe/hygiene.hpp"
#include "troupe/record.hpp"
#include "troupe/service.hpp"
#include "troupe/service_stats.hpp"

namespace troupe {

namespace {

enum class once_phase : uint8_t { empty, running, done };

struct once_state {
  static inline const char* name = "troupe.once";
  once_config cfg;
  once_phase phase = once_phase::empty;
  std::string value;
  uint64_t attempt = 0; // the running (or last) attempt's number
  std::vector<caf::typed_response_promise<std::string>> waiters;
  once_stats stats;

  // The once stops while an attempt runs: its waiters get an answer now.
  ~once_state() {
    for (auto& w : waiters)
      if (w.pending())
        w.deliver(make_error(errc::unavailable,
                             "once '" + cfg.name + "' stopped"));
  }
};

using self_ptr = once_actor::stateful_pointer<once_state>;

// Runs one initialiser and reports to the once actor; then ends.
void once_helper(caf::event_based_actor* self, once_actor parent,
                 uint64_t attempt, std::function<std::string()> fn) {
  bool ok = false;
  std::string text;
  try {
    text = fn();
    ok = true;
  } catch (const std::exception& e) {
    text = e.what();
  } catch (...) {
    text = "an exception that is not a std::exception";
  }
  self->send(parent, once_done_atom_v, attempt, ok, std::move(text));
}

caf::result<std::string> request(self_ptr self,
                                 const std::function<std::string()>& init) {
  auto& st = self->state;
  switch (st.phase) {
    case once_phase::done:
      ++st.stats.immediate;
      return st.value;
    case once_phase::running:
      if (st.waiters.size() >= static_cast<size_t>(st.cfg.max_waiting)) {
        ++st.stats.refused;
        return make_error(errc::refused,
                          "once '" + st.cfg.name + "': "
                            + std::to_string(st.cfg.max_waiting)
                            + " requests already wait (max_waiting)");
      }
      ++st.stats.coalesced;
      st.waiters.push_back(self->make_response_promise<std::string>());
      return st.waiters.back();
    case once_phase::empty:
      break;
  }
  if (!init) {
    ++st.stats.refused;
    return make_error(errc::refused, "once '" + st.cfg.name
                                       + "' has no initialiser: configure "
                                         "one, or ask with do(init)");
  }
  st.phase = once_phase::running;
  auto attempt = ++st.attempt;
  ++st.stats.attempts;
  auto me = caf::actor_cast<once_actor>(self);
  if (st.cfg.blocking)
    self->spawn<caf::detached>(once_helper, me, attempt, init);
  else
    self->spawn(once_helper, me, attempt, init);
  self->delayed_send(self, st.cfg.init_timeout, once_timeout_atom_v, attempt);
  st.waiters.push_back(self->make_response_promise<std::string>());
  return st.waiters.back();
}

// Ends the running attempt: the value for every waiter, or the error.
void settle(self_ptr self, bool ok, std::string text, errc code) {
  auto& st = self->state;
  auto waiters = std::move(st.waiters);
  st.waiters.clear();
  if (ok) {
    st.phase = once_phase::done;
    st.value = std::move(text);
    st.stats.done = true;
    for (auto& w : waiters)
      w.deliver(st.value);
    return;
  }
  st.phase = once_phase::empty; // the next request tries again
  ++st.stats.failures;
  auto err = make_error(code, text);
  for (auto& w : waiters)
    w.deliver(err);
}

once_actor::behavior_type once_fn(self_ptr self, once_config cfg) {
  self->state.cfg = std::move(cfg);
  auto who = "once " + self->state.cfg.name;
  install_exception_handler(self, who);
  install_default_handler(self, who);
  return {
    [self](get_atom) { return request(self, self->state.cfg.init); },
    [self](once_do_atom, const once_init& init) {
      // Like sync.Once.Do: the configured initialiser (if any) wins, else
      // this caller's; a caller joining a running attempt adds nothing.
      return request(self, self->state.cfg.init ? self->state.cfg.init
                                                : init.fn);
    },
    [self](stats_atom) { return self->state.stats; },
    [self](once_done_atom, uint64_t attempt, bool ok, std::string& text) {
      auto& st = self->state;
      if (st.phase != once_phase::running || attempt != st.attempt)
        return; // an abandoned attempt (timed out) answered late
      if (!ok)
        text = "once '" + st.cfg.name + "': initialiser failed: " + text;
      settle(self, ok, std::move(text), errc::failed);
    },
    [self](once_timeout_atom, uint64_t attempt) {
      auto& st = self->state;
      if (st.phase != once_phase::running || attempt != st.attempt)
        return; // that attempt ended in time
      ++st.stats.timeouts;
      settle(self, false,
             "once '" + st.cfg.name + "': initialiser took longer than "
               + format_duration(st.cfg.init_timeout)
               + " (init_timeout); abandoned",
             errc::timeout);
    },
  };
}

} // namespace

once_actor spawn_once(caf::actor_system& sys, const once_config& cfg) {
  if (cfg.init_timeout <= duration{0} || cfg.init_timeout > max_duration)
    throw std::invalid_argument("once '" + cfg.name
                                + "': init_timeout must be positive");
  if (cfg.max_waiting < 1)
    throw std::invalid_argument("once '" + cfg.name
                                + "': max_waiting must be at least 1");
  return sys.spawn(once_fn, cfg);
}

namespace actors {

namespace {

// The YAML initialiser: the record function `fn` applied to a record whose
// body is `value`; its body afterwards is the value. A failed or dropped
// record is a failed initialisation.
std::function<std::string()> record_initialiser(const function_entry& f,
                                                std::string value) {
  return [make = f.make, name = f.name, value = std::move(value)] {
    auto fn = make();
    if (!fn)
      throw std::runtime_error("function '" + name + "' made no function");
    record r;
    r.body = value;
    auto res = fn(r);
    if (res.what == fn_result::outcome::fail)
      throw std::runtime_error(name + ": " + res.error);
    if (res.what == fn_result::outcome::drop)
      throw std::runtime_error(name + " dropped the value");
    return r.body;
  };
}

} // namespace

actor_type once_type() {
  actor_type t;
  t.name = "once";
  t.kind = actor_kind::service;
  t.protocol = "once";
  t.doc
    = "A value computed once (sync.Once, a lazy Singleton). Protocol: get -> "
      "value: the first request runs the initialiser (the record function "
      "`fn` applied to `value`) on a helper actor, requests meanwhile wait "
      "for that one result, later ones get it at once; a failed or timed-out "
      "initialisation is not kept: its waiters get the error "
      "(troupe.failed / troupe.timeout) and the next request tries again. "
      "do(init) -> value: the same with a C++ initialiser (local only). "
      "stats -> attempts, failures, timeouts, coalesced, immediate, refused, "
      "done.";
  t.params = {
    {"fn", param_type::string, false, "",
     "record function computing the value from `value` (`troupe types` "
     "lists them); omit when C++ callers use do(init)"},
    {"value", param_type::string, false, "",
     "the body of the record `fn` is applied to"},
    {"init_timeout", param_type::time_span, false, "30s",
     "an initialisation taking longer fails with troupe.timeout"},
    {"blocking", param_type::boolean, false, "false",
     "run the initialiser on a thread of its own (for one that blocks)"},
    {"max_waiting", param_type::integer, false, "10000",
     "requests waiting for a running initialisation; more are refused",
     {}, 1, 100'000'000},
  };
  t.validate_resource = [](const resource_spec& r, const registry& reg,
                           std::vector<diagnostic>& out) {
    if (r.params.has("fn") && !r.params.str("fn").empty())
      check_function_name(r.params.get("fn"), reg, out);
    auto& to = r.params.get("init_timeout");
    if (to.dur <= duration{0})
      out.push_back({r.value_at("init_timeout"),
                     "'init_timeout' must be positive (an initialisation "
                     "needs time to run)"});
  };
  t.service = typed_service<once_actor>(
    [](caf::actor_system& sys, const resource_spec& r) {
      once_config c;
      c.name = r.name;
      if (r.params.has("fn") && !r.params.str("fn").empty()) {
        auto& fn = r.params.str("fn");
        // Resolved now: the initialiser keeps the factory, not the registry.
        auto* f = r.types ? r.types->find_function(fn) : nullptr;
        if (!f)
          throw std::invalid_argument("no record function '" + fn + "'");
        c.init = record_initialiser(*f, r.params.str("value"));
      }
      c.init_timeout = r.params.dur("init_timeout");
      c.blocking = r.params.boolean("blocking");
      c.max_waiting = r.params.integer("max_waiting");
      return spawn_once(sys, c);
    });
  t.service.read_stats = stats_reader<once_actor, once_stats>(
    stats_atom_v, [](const once_stats& s) {
      return std::vector<service_sample>{
          {"once_attempts_total", "Initialisations started.", true, static_cast<double>(s.attempts)},
          {"once_failures_total", "Initialisations that failed or timed out.", true, static_cast<double>(s.failures)},
          {"once_coalesced_total", "Requests that waited for a running attempt.", true, static_cast<double>(s.coalesced)},
          {"once_done", "1 once the value is there.", false, static_cast<double>(s.done)}};
    });
  return t;
}

} // namespace actors

} // namespace troupe
