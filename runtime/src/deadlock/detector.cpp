// The deadlock detector actor (troupe/deadlock_detector.hpp): every probe
// interval it moves the waits of its wait table that are at least 0.9
// intervals old into its wait_graph (deadlock.hpp), probes the graph and
// resolves what it finds by policy.
#include "detector.hpp"

#include <algorithm>
#include <set>
#include <unordered_set>
#include <utility>

#include <caf/actor_cast.hpp>
#include <caf/actor_clock.hpp>
#include <caf/actor_system.hpp>
#include <caf/exit_reason.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "troupe/deadlock.hpp"
#include "troupe/errors.hpp"
#include "troupe/hygiene.hpp"

namespace troupe {

const char* to_string(deadlock_policy x) {
  switch (x) {
    case deadlock_policy::report:
      return "report";
    case deadlock_policy::fail:
      return "fail";
    case deadlock_policy::restart:
      return "restart";
  }
  return "?";
}

bool parse_deadlock_policy(const std::string& text, deadlock_policy& out) {
  for (auto p : {deadlock_policy::report, deadlock_policy::fail,
                 deadlock_policy::restart})
    if (text == to_string(p)) {
      out = p;
      return true;
    }
  return false;
}

namespace deadlock {

namespace {

using entry = wait_table::entry;

struct detector_state {
  static inline const char* name = "troupe.deadlock_detector";
  std::shared_ptr<wait_table> table;
  deadlock_spec spec;
  std::unique_ptr<wait_graph> graph;
  // The waits in the graph (old enough), with what resolving them needs.
  std::unordered_map<wait_id, entry> in_graph;
  // Holders of those waits, monitored: how many waits each has.
  std::unordered_map<actor_id, size_t> watched;
  std::vector<caf::actor> subscribers;
  std::function<void(const deadlock_notice&)> on_notice;
  deadlock_stats stats;
  std::set<std::string> type_names; // message types registered by protocol
  std::vector<entry> scratch;
  // A probe put off for one message so that the down messages of holders
  // it just found dead come first (see probe()).
  bool reprobe_pending = false;
};

using detector_pointer
  = deadlock_detector_actor::stateful_pointer<detector_state>;

constexpr size_t max_type_names = 1024;
constexpr size_t max_subscribers = 1024;

void name_in_graph(detector_state& st, actor_id id) {
  wait_table::name_entry n;
  if (st.table->name_of(id, n))
    st.graph->name(id, n.name);
}

// True when it started monitoring a live holder (whose down message, if it
// is already dead, is now in the mailbox).
bool watch(detector_pointer self, const entry& e) {
  auto& st = self->state;
  auto& n = st.watched[e.holder_id];
  if (n++ > 0)
    return false;
  if (auto h = e.holder.lock()) {
    self->monitor(h); // a down message comes at once for a dead one
    return true;
  }
  st.graph->actor_died(e.holder_id);
  return false;
}

void unwatch(detector_pointer self, const entry& e) {
  auto& st = self->state;
  auto i = st.watched.find(e.holder_id);
  if (i == st.watched.end() || --i->second > 0)
    return;
  st.watched.erase(i);
  if (auto h = e.holder.lock())
    self->demonitor(caf::actor_cast<caf::actor_addr>(h));
}

// The graph gets the waits that are one interval old and loses the ones
// that ended. True when it monitored a new holder.
bool sync(detector_pointer self, time_point now) {
  bool monitored = false;
  auto& st = self->state;
  st.scratch.clear();
  auto maturity = st.graph->probe_interval();
  st.table->collect(now - maturity, now - maturity, st.scratch,
                    st.stats.waits_expired);
  std::unordered_set<wait_id> current;
  current.reserve(st.scratch.size());
  for (auto& e : st.scratch) {
    if (st.graph->is_dead(e.waiter_id))
      continue; // it died waiting: nobody waits any more
    current.insert(e.id);
    if (st.in_graph.count(e.id) > 0)
      continue;
    name_in_graph(st, e.waiter_id);
    name_in_graph(st, e.holder_id);
    if (!st.graph->add_wait(e.id, e.waiter_id, e.holder_id, e.type, e.since,
                            e.deadline))
      continue;
    ++st.stats.waits_seen;
    monitored = watch(self, e) || monitored;
    st.in_graph.emplace(e.id, e);
  }
  for (auto i = st.in_graph.begin(); i != st.in_graph.end();) {
    if (current.count(i->first) > 0) {
      ++i;
      continue;
    }
    st.graph->clear_wait(i->first);
    unwatch(self, i->second);
    i = st.in_graph.erase(i);
  }
  return monitored;
}

// Sends `err` to the waiter of `e` as the reply it waits for, by its
// response id: the handler of a request(...).then or .await (or a blocking
// receive) runs with the error; the real reply, should it ever come, finds no
// handler and is dropped. False when nobody can be answered (a wait
// registered by message, or a waiter that is gone).
bool answer(const entry& e, caf::error err, caf::execution_unit* ctx) {
  if (e.response_id == 0)
    return false;
  auto waiter = e.waiter.lock();
  if (!waiter)
    return false;
  waiter->enqueue(caf::make_mailbox_element(nullptr,
                                            caf::message_id{e.response_id},
                                            {}, std::move(err)),
                  ctx);
  return true;
}

// Answers the wait `id` for its waiter with a deadlock error. False when it
// ended meanwhile or nobody can be answered (a wait registered by message).
bool fail_wait(detector_pointer self, wait_id id, const std::string& why) {
  auto& st = self->state;
  // A wait registered by message has nobody to answer: it stays in the table
  // (and the graph) until its registrant clears it, so queries still list it
  // and a cycle it keeps standing is not forgotten.
  if (auto g = st.in_graph.find(id);
      g != st.in_graph.end() && g->second.response_id == 0)
    return false;
  entry e;
  bool had = st.table->take(id, e);
  if (auto i = st.in_graph.find(id); i != st.in_graph.end()) {
    st.graph->clear_wait(id);
    unwatch(self, i->second);
    st.in_graph.erase(i);
  }
  if (!had || !answer(e, make_error(errc::deadlock, why), self->context()))
    return false;
  ++st.stats.failed_requests;
  return true;
}

std::string plural(size_t n, const char* what) {
  return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
}

// Fails every wait of the report; returns how many waiters were answered.
size_t fail_all(detector_pointer self, const report& r,
                const std::string& why) {
  size_t n = 0;
  for (auto w : r.waits)
    n += fail_wait(self, w, why) ? 1 : 0;
  return n;
}

std::string resolve(detector_pointer self, const report& r,
                    const std::string& text) {
  auto& st = self->state;
  auto why = "deadlock: " + text;
  switch (st.spec.policy) {
    case deadlock_policy::report:
      return "reported";
    case deadlock_policy::restart:
      if (r.kind != report_kind::dead_holder) {
        for (size_t i = 0; i < r.members.size(); ++i) {
          wait_table::name_entry n;
          auto m = r.members[i];
          if (!st.table->name_of(m, n) || !n.restartable)
            continue;
          // Its own wait and the wait on it: it will answer neither.
          auto own = st.in_graph.find(r.waits[i]);
          if (own == st.in_graph.end())
            continue;
          auto victim = own->second.waiter.lock();
          if (!victim)
            continue;
          size_t failed = 0;
          auto before = (i + r.waits.size() - 1) % r.waits.size();
          failed += fail_wait(self, r.waits[i], why) ? 1 : 0;
          if (before != i)
            failed += fail_wait(self, r.waits[before], why) ? 1 : 0;
          // Killed after its reply is queued: an actor in .await handles
          // the reply first, then the kill; its supervisor restarts it.
          caf::anon_send_exit(caf::actor_cast<caf::actor>(victim),
                              caf::exit_reason::kill);
          ++st.stats.restarts;
          return "restarted " + n.name + " (failed "
                 + plural(failed, "request") + ")";
        }
      }
      [[fallthrough]];
    case deadlock_policy::fail: {
      auto n = fail_all(self, r, why);
      auto text_n = "failed " + plural(n, "request");
      return st.spec.policy == deadlock_policy::restart
               ? text_n + " (no supervised member to restart)"
               : text_n;
    }
  }
  return "reported";
}

deadlock_notice notice_of(const report& r) {
  deadlock_notice n;
  switch (r.kind) {
    case report_kind::cycle:
      n.kind = "cycle";
      break;
    case report_kind::self_wait:
      n.kind = "self_wait";
      break;
    case report_kind::dead_holder:
      n.kind = "dead_holder";
      break;
  }
  n.members = r.names;
  n.member_ids.assign(r.members.begin(), r.members.end());
  n.message_types = r.message_types;
  n.text = r.to_string();
  n.detected_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                    r.detected.time_since_epoch())
                    .count();
  return n;
}

void probe(detector_pointer self) {
  auto& st = self->state;
  auto now = self->clock().now();
  // A holder that died before its wait entered the graph is known dead only
  // by the down message its new monitor enqueued: probe once more after it,
  // or its dead-holder report would come one interval late.
  if (sync(self, now) && !st.reprobe_pending) {
    st.reprobe_pending = true;
    self->send(caf::actor_cast<deadlock_detector_actor>(self), probe_atom_v);
    return;
  }
  st.reprobe_pending = false;
  ++st.stats.probes;
  for (auto& r : st.graph->probe(now)) {
    // Nobody in it is blocked: each can still answer (see "what is a
    // deadlock" in the header). The graph keeps it as seen; it is not
    // reported unless it forms again.
    auto blocks = [&](wait_id w) {
      auto i = st.in_graph.find(w);
      return i != st.in_graph.end() && i->second.blocking;
    };
    if (std::none_of(r.waits.begin(), r.waits.end(), blocks))
      continue;
    auto n = notice_of(r);
    switch (r.kind) {
      case report_kind::cycle:
        ++st.stats.cycles;
        break;
      case report_kind::self_wait:
        ++st.stats.self_waits;
        break;
      case report_kind::dead_holder:
        ++st.stats.dead_holders;
        break;
    }
    ++st.stats.reports;
    n.resolution = resolve(self, r, n.text);
    if (st.on_notice)
      st.on_notice(n);
    for (auto& s : st.subscribers)
      caf::anon_send(s, deadlock_atom_v, n);
  }
}

deadlock_detector_actor::behavior_type
detector_fn(detector_pointer self, std::shared_ptr<wait_table> table,
            deadlock_spec spec,
            std::function<void(const deadlock_notice&)> on_notice) {
  auto& st = self->state;
  st.table = std::move(table);
  st.spec = spec;
  // A wait counts once it is 0.9 intervals old, not a whole one: probes
  // fire a little late (timer latency), and a cycle that closed just after a
  // probe must still be seen at the second probe after it, within two
  // intervals of forming.
  st.graph = std::make_unique<wait_graph>(spec.probe_interval * 9 / 10);
  st.on_notice = std::move(on_notice);
  install_exception_handler(self, "deadlock_detector");
  install_default_handler(self, "deadlock_detector");
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& s = self->state;
    auto id = dm.source.id();
    auto sub = std::find_if(s.subscribers.begin(), s.subscribers.end(),
                            [&](auto& a) { return a.address() == dm.source; });
    if (sub != s.subscribers.end())
      s.subscribers.erase(sub);
    if (s.watched.erase(id) > 0)
      s.graph->actor_died(id);
  });
  self->delayed_send(self, spec.probe_interval, tick_atom_v);
  return {
    [self](wait_atom, caf::strong_actor_ptr& waiter,
           caf::strong_actor_ptr& holder, std::string& type,
           caf::timespan timeout) -> caf::result<uint64_t> {
      auto& s = self->state;
      if (!waiter || !holder)
        return make_error(errc::refused,
                          "deadlock_detector: a wait needs a waiter and a "
                          "holder");
      if (timeout <= caf::timespan{0})
        return make_error(errc::refused,
                          "deadlock_detector: a wait needs a positive "
                          "timeout");
      if (s.type_names.size() >= max_type_names && !s.type_names.count(type))
        type = "other";
      auto* label = s.type_names.insert(std::move(type)).first->c_str();
      auto now = self->clock().now();
      return s.table->add(waiter.get(), holder.get(), label, now,
                          now + timeout, 0, true);
    },
    [self](clear_atom, uint64_t id) { self->state.table->remove(id); },
    [self](name_atom, caf::strong_actor_ptr& who, std::string& name,
           bool restartable) {
      name_actor(self->system(), who.get(), std::move(name), restartable);
    },
    [self](get_atom) {
      auto& s = self->state;
      std::vector<entry> all;
      s.table->collect_all(all);
      auto now = self->clock().now();
      std::vector<deadlock_wait> out;
      out.reserve(all.size());
      for (auto& e : all) {
        deadlock_wait w;
        w.id = e.id;
        w.waiter = e.waiter_id;
        w.holder = e.holder_id;
        wait_table::name_entry n;
        w.waiter_name = s.table->name_of(e.waiter_id, n)
                          ? n.name
                          : "#" + std::to_string(e.waiter_id);
        w.holder_name = s.table->name_of(e.holder_id, n)
                          ? n.name
                          : "#" + std::to_string(e.holder_id);
        w.message_type = e.type;
        w.age_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                     now - e.since)
                     .count();
        out.push_back(std::move(w));
      }
      std::sort(out.begin(), out.end(),
                [](auto& x, auto& y) { return x.id < y.id; });
      return out;
    },
    [self](deadlock_stats_atom) { return self->state.stats; },
    [self](subscribe_atom, caf::actor& who) {
      auto& s = self->state;
      if (!who || s.subscribers.size() >= max_subscribers)
        return;
      self->monitor(who);
      s.subscribers.push_back(std::move(who));
    },
    [self](probe_atom) { probe(self); },
    [self](deadlock_atom, deadlock_notice& n) {
      auto& s = self->state;
      ++s.stats.lock_reports;
      ++s.stats.reports;
      if (s.on_notice)
        s.on_notice(n);
      for (auto& sub : s.subscribers)
        caf::anon_send(sub, deadlock_atom_v, n);
    },
    [self](tick_atom) {
      probe(self);
      self->delayed_send(self, self->state.spec.probe_interval, tick_atom_v);
    },
  };
}

} // namespace

size_t answer_all(wait_table& table, const std::string& why) {
  std::vector<entry> all;
  table.take_all(all);
  size_t n = 0;
  for (auto& e : all) {
    if (answer(e, make_error(errc::cancelled, why), nullptr))
      ++n;
  }
  return n;
}

deadlock_notice notice_of(const lock_report& r) {
  deadlock_notice n;
  n.kind = std::string{"lock_"} + to_string(r.what);
  n.members.push_back(r.first);
  if (!r.second.empty())
    n.members.push_back(r.second);
  n.text = r.text;
  n.resolution = "reported";
  n.detected_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::chrono::steady_clock::now().time_since_epoch())
                    .count();
  return n;
}

deadlock_detector_actor
spawn_detector(caf::actor_system& sys, std::shared_ptr<wait_table> table,
               deadlock_spec spec,
               std::function<void(const deadlock_notice&)> on_notice) {
  return sys.spawn(detector_fn, std::move(table), spec, std::move(on_notice));
}

} // namespace deadlock

} // namespace troupe
