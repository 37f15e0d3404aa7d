#include "engine.hpp"

#include <algorithm>

namespace troupe::supervision {

namespace {

command cmd(command::op what, std::vector<unit_id> units) {
  command c;
  c.what = what;
  c.units = std::move(units);
  return c;
}

} // namespace

const char* to_string(unit_state x) {
  switch (x) {
    case unit_state::idle:
      return "idle";
    case unit_state::running:
      return "running";
    case unit_state::stopping:
      return "stopping";
    case unit_state::down:
      return "down";
    case unit_state::finished:
      return "finished";
    default:
      return "removed";
  }
}

const char* to_string(command::op x) {
  switch (x) {
    case command::op::start:
      return "start";
    case command::op::remove:
      return "remove";
    case command::op::stop:
      return "stop";
    case command::op::kill:
      return "kill";
    case command::op::schedule:
      return "schedule";
    case command::op::restart:
      return "restart";
    case command::op::escalate:
      return "escalate";
    case command::op::fail:
      return "fail";
    default:
      return "all_stopped";
  }
}

engine::engine(stop_mode mode, const supervision_spec& root,
               std::string root_name, uint64_t seed)
  : mode_(mode), rng_(static_cast<std::minstd_rand::result_type>(seed)) {
  scopes_.push_back({std::move(root_name), root_scope, root,
                     restart_budget{root.intensity, root.period}, {}, true});
}

scope_id engine::add_scope(std::string name, const supervision_spec& policy) {
  scopes_.push_back({std::move(name), root_scope, policy,
                     restart_budget{policy.intensity, policy.period}, {},
                     false});
  return scopes_.size() - 1;
}

void engine::set_parent(scope_id s, scope_id parent) {
  scopes_[s].parent = parent;
}

unit_id engine::add_child(std::string name, restart_type restart,
                          scope_id s) {
  auto id = units_.size();
  units_.push_back({std::move(name), restart, s, unit_state::idle, 0});
  scopes_[s].members.push_back({false, id});
  for (auto t = s; t != root_scope && !scopes_[t].placed;
       t = scopes_[t].parent) {
    scopes_[t].placed = true;
    scopes_[scopes_[t].parent].members.push_back({true, t});
  }
  return id;
}

bool engine::within(unit_id u, scope_id s) const {
  for (auto t = units_[u].scope;; t = scopes_[t].parent) {
    if (t == s)
      return true;
    if (t == root_scope)
      return false;
  }
}

commands engine::start_all() {
  starting_.clear();
  for (unit_id u = 0; u < units_.size(); ++u)
    starting_.push_back(u);
  if (starting_.empty())
    return {};
  return {cmd(command::op::start, starting_)};
}

void engine::started(unit_id u) {
  units_[u].state = unit_state::running;
  units_[u].batch = 0;
}

commands engine::start_failed(unit_id u, const std::string& reason,
                              time_point now) {
  // The units after `u` in the same start command never started.
  std::vector<unit_id> rest;
  auto it = std::find(starting_.begin(), starting_.end(), u);
  if (it != starting_.end())
    for (++it; it != starting_.end(); ++it)
      if (!up(*it) && units_[*it].state != unit_state::removed
          && units_[*it].state != unit_state::finished) {
        units_[*it].state = unit_state::down;
        rest.push_back(*it);
      }
  starting_.clear();
  commands out;
  if (shutting_down_)
    return out;
  if (units_[u].restart == restart_type::temporary) {
    units_[u].state = unit_state::removed; // never restarted, failed or not
    out.push_back(cmd(command::op::remove, {u}));
    if (!rest.empty()) {
      starting_ = rest;
      out.push_back(cmd(command::op::start, rest));
    }
    return out;
  }
  units_[u].state = unit_state::down;
  disposition ignored;
  return fail_unit(u, "failed to start: " + reason, now, std::move(rest),
                   ignored);
}

down_result engine::child_down(unit_id u, exit_kind k,
                               const std::string& reason, time_point now) {
  down_result r;
  auto& x = units_[u];
  if (!up(u))
    return r; // already down: a late or duplicate report
  if (x.state == unit_state::stopping || shutting_down_) {
    x.state = k == exit_kind::finished ? unit_state::finished
                                       : unit_state::down;
    r.what = k == exit_kind::finished && !shutting_down_
               ? disposition::finished
               : disposition::stopped;
    stopped(u, r.cmds);
    check_all_stopped(r.cmds);
    return r;
  }
  switch (k) {
    case exit_kind::finished:
      x.state = unit_state::finished;
      r.what = disposition::finished;
      return r;
    case exit_kind::fatal:
      x.state = unit_state::down;
      r.what = disposition::fatal;
      return r;
    default:
      break;
  }
  bool normal = k == exit_kind::normal;
  if (x.restart == restart_type::temporary
      || (normal && x.restart == restart_type::transient)) {
    x.state = unit_state::removed;
    r.what = disposition::removed;
    r.cmds.push_back(cmd(command::op::remove, {u}));
    return r;
  }
  x.state = unit_state::down;
  r.cmds = fail_unit(u, normal ? "exited" : reason, now, {}, r.what);
  return r;
}

commands engine::fail_unit(unit_id u, const std::string& reason,
                           time_point now, std::vector<unit_id> extra,
                           disposition& what) {
  commands out;
  auto s = units_[u].scope;
  member failed{false, u};
  while (!scopes_[s].budget.admit(now)) {
    if (s == root_scope) {
      what = disposition::failed;
      command c = cmd(command::op::fail, {u});
      c.reason = reason;
      out.push_back(std::move(c));
      return out;
    }
    command c = cmd(command::op::escalate, {});
    c.scope = s;
    out.push_back(std::move(c));
    scopes_[s].budget.reset();
    failed = {true, s};
    s = scopes_[s].parent;
  }
  auto& sc = scopes_[s];
  size_t pos = 0;
  for (; pos < sc.members.size(); ++pos)
    if (sc.members[pos].is_scope == failed.is_scope
        && sc.members[pos].index == failed.index)
      break;
  batch b;
  for (auto k : restart_set(sc.policy.strategy, pos, sc.members.size())) {
    auto& m = sc.members[k];
    if (!m.is_scope) {
      b.members.push_back(m.index);
      continue;
    }
    for (unit_id i = 0; i < units_.size(); ++i)
      if (within(i, m.index))
        b.members.push_back(i);
  }
  b.members.insert(b.members.end(), extra.begin(), extra.end());
  std::sort(b.members.begin(), b.members.end());
  b.members.erase(std::unique(b.members.begin(), b.members.end()),
                  b.members.end());
  std::uniform_real_distribution<double> jitter(-1.0, 1.0);
  b.delay = backoff_delay(sc.policy.backoff, sc.budget.recent(), jitter(rng_));
  auto id = next_batch_++;
  std::vector<unit_id> to_stop(b.members.rbegin(), b.members.rend());
  batches_.emplace(id, std::move(b));
  // The others in reverse start order; all restart once they are down.
  stop_units(to_stop, id, out);
  schedule_if_ready(id, out);
  what = disposition::restarting;
  return out;
}

void engine::stop_units(const std::vector<unit_id>& reverse_order,
                        uint64_t batch_id, commands& out) {
  std::vector<unit_id> now_stopping;
  for (auto u : reverse_order) {
    auto& x = units_[u];
    if (x.state != unit_state::running)
      continue; // down already, or stopping for another batch
    x.state = unit_state::stopping;
    x.batch = batch_id;
    if (auto it = batches_.find(batch_id); it != batches_.end())
      ++it->second.pending_down;
    now_stopping.push_back(u);
  }
  if (now_stopping.empty())
    return;
  if (mode_ == stop_mode::together) {
    out.push_back(cmd(command::op::kill, now_stopping));
    return;
  }
  for (auto u : now_stopping)
    stop_queue_.push_back(u);
  if (current_stop_ == SIZE_MAX)
    stop_next(out);
}

void engine::stopped(unit_id u, commands& out) {
  auto& x = units_[u];
  auto id = x.batch;
  x.batch = 0;
  if (auto it = batches_.find(id);
      it != batches_.end() && it->second.pending_down > 0) {
    --it->second.pending_down;
    schedule_if_ready(id, out);
  }
  if (mode_ == stop_mode::one_by_one && u == current_stop_) {
    current_stop_ = SIZE_MAX;
    stop_next(out);
  }
}

void engine::stop_next(commands& out) {
  while (!stop_queue_.empty()) {
    auto u = stop_queue_.front();
    stop_queue_.pop_front();
    if (units_[u].state != unit_state::stopping)
      continue; // went down on its own meanwhile
    current_stop_ = u;
    command c = cmd(command::op::stop, {u});
    c.token = ++stop_token_;
    out.push_back(std::move(c));
    return;
  }
  current_stop_ = SIZE_MAX;
  check_all_stopped(out);
}

void engine::check_all_stopped(commands& out) {
  if (!shutting_down_ || all_stopped_ || current_stop_ != SIZE_MAX)
    return;
  for (unit_id u = 0; u < units_.size(); ++u)
    if (up(u))
      return;
  all_stopped_ = true;
  out.push_back(cmd(command::op::all_stopped, {}));
}

void engine::schedule_if_ready(uint64_t id, commands& out) {
  auto it = batches_.find(id);
  if (it == batches_.end() || it->second.pending_down > 0 || shutting_down_)
    return;
  command c = cmd(command::op::schedule, {});
  c.token = id;
  c.delay = it->second.delay;
  out.push_back(std::move(c));
}

commands engine::restart_due(uint64_t token, time_point) {
  commands out;
  auto it = batches_.find(token);
  if (shutting_down_ || it == batches_.end())
    return out;
  auto members = std::move(it->second.members);
  batches_.erase(it);
  std::vector<unit_id> gone, removed, starts;
  for (auto u : members) {
    auto s = units_[u].state;
    if (s == unit_state::down || s == unit_state::removed)
      gone.push_back(u);
    if (s != unit_state::down)
      continue; // up again, finished or removed meanwhile
    if (units_[u].restart == restart_type::temporary) {
      units_[u].state = unit_state::removed;
      removed.push_back(u);
    } else {
      starts.push_back(u);
    }
  }
  command r = cmd(command::op::restart, std::move(gone));
  r.token = token;
  out.push_back(std::move(r));
  if (!removed.empty())
    out.push_back(cmd(command::op::remove, std::move(removed)));
  if (!starts.empty()) {
    starting_ = starts;
    out.push_back(cmd(command::op::start, std::move(starts)));
  }
  return out;
}

commands engine::stop_timeout(uint64_t token) {
  if (mode_ != stop_mode::one_by_one || token != stop_token_
      || current_stop_ == SIZE_MAX
      || units_[current_stop_].state != unit_state::stopping)
    return {};
  return {cmd(command::op::kill, {current_stop_})};
}

commands engine::shutdown() {
  commands out;
  if (shutting_down_)
    return out;
  shutting_down_ = true;
  batches_.clear(); // their timers fire into nothing
  starting_.clear();
  std::vector<unit_id> order;
  for (auto u = units_.size(); u > 0; --u)
    if (up(u - 1) && u - 1 != current_stop_) {
      units_[u - 1].state = unit_state::stopping;
      units_[u - 1].batch = 0;
      order.push_back(u - 1);
    }
  if (mode_ == stop_mode::together) {
    if (!order.empty())
      out.push_back(cmd(command::op::kill, order));
  } else {
    stop_queue_.assign(order.begin(), order.end());
    if (current_stop_ == SIZE_MAX)
      stop_next(out);
  }
  check_all_stopped(out);
  return out;
}

} // namespace troupe::supervision
