// The wait-for graph of the deadlock detector (see troupe/deadlock.hpp for
// the detection rule).
#include "troupe/deadlock.hpp"

#include <algorithm>
#include <limits>
#include <utility>

namespace troupe::deadlock {

const char* to_string(report_kind k) {
  switch (k) {
    case report_kind::cycle: return "cycle";
    case report_kind::self_wait: return "self-wait";
    case report_kind::dead_holder: return "dead holder";
  }
  return "?";
}

std::string report::to_string() const {
  std::string s = deadlock::to_string(kind);
  if (names.empty()) return s;
  s += ' ';
  s += names.front();
  for (std::size_t i = 0; i < message_types.size(); ++i) {
    s += " →(" + message_types[i] + ") ";
    if (kind == report_kind::dead_holder)
      s += (names.size() > 1 ? names[1] : std::string{"?"}) + " (dead)";
    else
      s += names[(i + 1) % names.size()];
  }
  return s;
}

wait_graph::wait_graph(duration probe_interval) : interval_(probe_interval) {}

bool wait_graph::add_wait(wait_id id, actor_id waiter, actor_id holder,
                          std::string message_type, time_point now,
                          time_point deadline) {
  if (deadline <= now) return false;
  clear_wait(id);
  edges_.emplace(id, wait_edge{id, waiter, holder, std::move(message_type),
                               now, deadline});
  out_[waiter].push_back(id);
  return true;
}

void wait_graph::clear_wait(wait_id id) {
  auto it = edges_.find(id);
  if (it == edges_.end()) return;
  auto o = out_.find(it->second.waiter);
  if (o != out_.end()) {
    auto& v = o->second;
    v.erase(std::remove(v.begin(), v.end(), id), v.end());
    if (v.empty()) out_.erase(o);
  }
  edges_.erase(it);
  forget_reported(id);
}

void wait_graph::forget_reported(wait_id id) {
  reported_dead_.erase(id);
  auto it = reported_by_wait_.find(id);
  if (it == reported_by_wait_.end()) return;
  // A cycle one of whose waits ended has dissolved: if it forms again it is
  // a new deadlock and is reported again.
  for (auto& key : it->second) reported_.erase(key);
  reported_by_wait_.erase(it);
}

void wait_graph::actor_died(actor_id id) {
  // Its own waits end with it.
  if (auto o = out_.find(id); o != out_.end()) {
    auto ids = o->second;
    for (auto w : ids) clear_wait(w);
  }
  if (dead_.insert(id).second) {
    dead_order_.push_back(id);
    if (dead_order_.size() > max_dead) {
      auto old = dead_order_.front();
      dead_order_.pop_front();
      dead_.erase(old);
      names_.erase(old);
      ++dead_forgotten_;
    }
  }
}

void wait_graph::name(actor_id id, std::string text) {
  names_[id] = std::move(text);
}

std::string wait_graph::display_name(actor_id id) const {
  if (auto it = names_.find(id); it != names_.end() && !it->second.empty())
    return it->second;
  return "#" + std::to_string(id);
}

std::vector<wait_edge> wait_graph::snapshot() const {
  std::vector<wait_edge> out;
  out.reserve(edges_.size());
  for (auto& [id, e] : edges_) out.push_back(e);
  return out;
}

std::vector<report> wait_graph::probe(time_point now) {
  // Waits past their deadline have timed out at the requester.
  for (auto it = edges_.begin(); it != edges_.end();) {
    auto next = std::next(it);
    if (it->second.deadline <= now) {
      ++expired_;
      clear_wait(it->first);
    }
    it = next;
  }
  std::vector<report> out;
  find_cycles(now, out);
  for (auto& [id, e] : edges_) {
    auto mark = [&](report_kind kind, std::vector<actor_id> members) {
      report r;
      r.kind = kind;
      r.members = std::move(members);
      for (auto m : r.members) r.names.push_back(display_name(m));
      r.message_types.push_back(e.message_type);
      r.waits.push_back(id);
      r.detected = now;
      out.push_back(std::move(r));
    };
    if (dead_.count(e.holder) > 0) {
      if (reported_dead_.insert(id).second)
        mark(report_kind::dead_holder, {e.waiter, e.holder});
    } else if (e.waiter == e.holder && now - e.since >= interval_) {
      std::vector<wait_id> key{id};
      if (reported_.insert(key).second) {
        reported_by_wait_[id].push_back(key);
        mark(report_kind::self_wait, {e.waiter});
      }
    }
  }
  // Cycles first, then self-waits, then dead holders (each already in order).
  std::stable_sort(out.begin(), out.end(), [](const report& a, const report& b) {
    return static_cast<int>(a.kind) < static_cast<int>(b.kind);
  });
  return out;
}

void wait_graph::find_cycles(time_point now, std::vector<report>& out) {
  // The graph of mature edges between live actors, without self-loops; node
  // indices in order of first appearance by wait id, edges by wait id.
  constexpr std::size_t none = std::numeric_limits<std::size_t>::max();
  std::unordered_map<actor_id, std::size_t> index;
  std::vector<actor_id> ids;
  struct arc {
    std::size_t to;
    wait_id wait;
  };
  std::vector<std::vector<arc>> adj;
  auto node = [&](actor_id a) {
    auto [it, fresh] = index.emplace(a, ids.size());
    if (fresh) {
      ids.push_back(a);
      adj.emplace_back();
    }
    return it->second;
  };
  for (auto& [id, e] : edges_) {
    if (e.waiter == e.holder || now - e.since < interval_ ||
        dead_.count(e.holder) > 0)
      continue;
    auto w = node(e.waiter);
    auto h = node(e.holder);
    adj[w].push_back({h, id});
  }
  auto n = ids.size();
  if (n == 0) return;

  // Tarjan's SCC, iterative (chains can be long).
  std::vector<std::size_t> idx(n, none), low(n, 0), comp(n, none);
  std::vector<bool> on_stack(n, false);
  std::vector<std::size_t> stack;
  std::vector<std::pair<std::size_t, std::size_t>> call; // node, next arc
  std::size_t counter = 0, comps = 0;
  std::vector<std::vector<std::size_t>> members;
  for (std::size_t root = 0; root < n; ++root) {
    if (idx[root] != none) continue;
    call.push_back({root, 0});
    idx[root] = low[root] = counter++;
    stack.push_back(root);
    on_stack[root] = true;
    while (!call.empty()) {
      auto& [v, next] = call.back();
      if (next < adj[v].size()) {
        auto w = adj[v][next++].to;
        if (idx[w] == none) {
          idx[w] = low[w] = counter++;
          stack.push_back(w);
          on_stack[w] = true;
          call.push_back({w, 0});
        } else if (on_stack[w]) {
          low[v] = std::min(low[v], idx[w]);
        }
        continue;
      }
      auto done = v;
      call.pop_back();
      if (!call.empty())
        low[call.back().first] = std::min(low[call.back().first], low[done]);
      if (low[done] == idx[done]) {
        members.emplace_back();
        std::size_t w;
        do {
          w = stack.back();
          stack.pop_back();
          on_stack[w] = false;
          comp[w] = comps;
          members.back().push_back(w);
        } while (w != done);
        ++comps;
      }
    }
  }

  std::vector<report> found;
  for (std::size_t c = 0; c < comps; ++c) {
    auto& ms = members[c];
    if (ms.size() < 2) continue;
    // The shortest cycle through the smallest actor id: deterministic, so a
    // standing cycle gets the same key at every probe.
    auto start = *std::min_element(ms.begin(), ms.end(), [&](auto a, auto b) {
      return ids[a] < ids[b];
    });
    std::unordered_map<std::size_t, arc> parent; // node → arc that reached it
    std::deque<std::size_t> queue{start};
    std::size_t last = none;
    wait_id closing = 0;
    while (!queue.empty() && last == none) {
      auto u = queue.front();
      queue.pop_front();
      for (auto& a : adj[u]) {
        if (comp[a.to] != c) continue;
        if (a.to == start) {
          last = u;
          closing = a.wait;
          break;
        }
        if (parent.count(a.to) == 0) {
          parent.emplace(a.to, arc{u, a.wait});
          queue.push_back(a.to);
        }
      }
    }
    if (last == none) continue; // cannot happen in an SCC of size >= 2
    std::vector<std::size_t> path{last};
    std::vector<wait_id> waits{closing};
    for (auto v = last; v != start;) {
      auto& p = parent.at(v);
      waits.push_back(p.wait);
      v = p.to;
      path.push_back(v);
    }
    std::reverse(path.begin(), path.end());
    std::reverse(waits.begin(), waits.end());
    auto key = waits;
    std::sort(key.begin(), key.end());
    if (!reported_.insert(key).second) continue;
    for (auto w : key) reported_by_wait_[w].push_back(key);
    report r;
    r.kind = report_kind::cycle;
    r.detected = now;
    for (auto v : path) {
      r.members.push_back(ids[v]);
      r.names.push_back(display_name(ids[v]));
    }
    for (auto w : waits) r.message_types.push_back(edges_.at(w).message_type);
    r.waits = std::move(waits);
    found.push_back(std::move(r));
  }
  std::sort(found.begin(), found.end(), [](const report& a, const report& b) {
    return a.members.front() < b.members.front();
  });
  for (auto& r : found) out.push_back(std::move(r));
}

} // namespace troupe::deadlock
