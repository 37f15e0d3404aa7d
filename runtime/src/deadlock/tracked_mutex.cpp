// tracked_mutex: lock-order checking and acquire timeouts (see
// troupe/deadlock.hpp).
#include "troupe/deadlock.hpp"

#include <algorithm>
#include <atomic>
#include <iostream>
#include <sstream>
#include <utility>

namespace troupe::deadlock {

namespace {

std::string describe(std::thread::id t, const std::string& name) {
  std::ostringstream s;
  s << "thread " << t;
  if (!name.empty()) s << " (" << name << ')';
  return s.str();
}

// Where an order edge was first seen.
struct edge_site {
  std::thread::id thread;
  std::string thread_name;
};

struct mutex_info {
  std::string name;
  bool held = false;
  std::thread::id owner;
  std::string owner_name;
};

// Process-wide state, under its own mutex. Edges: before → after ("after was
// taken while holding before").
struct registry {
  std::mutex m;
  std::unordered_map<std::uint64_t, mutex_info> mutexes;
  std::unordered_map<std::uint64_t, std::map<std::uint64_t, edge_site>> after;
  std::set<std::pair<std::uint64_t, std::uint64_t>> reported;
  lock_reporter reporter;
  std::atomic<std::uint64_t> next_id{1};

  // Is `to` reachable from `from` along order edges? (Caller holds m.)
  bool reaches(std::uint64_t from, std::uint64_t to) const {
    std::vector<std::uint64_t> todo{from};
    std::set<std::uint64_t> seen{from};
    while (!todo.empty()) {
      auto v = todo.back();
      todo.pop_back();
      if (v == to) return true;
      auto it = after.find(v);
      if (it == after.end()) continue;
      for (auto& [w, site] : it->second)
        if (seen.insert(w).second) todo.push_back(w);
    }
    return false;
  }
};

registry& reg() {
  static registry r; // never destroyed before the mutexes using it
  return r;
}

thread_local std::vector<std::uint64_t> held_here;
thread_local std::string this_thread_name;

void emit(const lock_report& r, const lock_reporter& fn) {
  if (fn)
    fn(r);
  else
    std::cerr << r.text << '\n';
}

} // namespace

lock_reporter set_lock_reporter(lock_reporter r) {
  auto& g = reg();
  std::lock_guard<std::mutex> guard{g.m};
  std::swap(g.reporter, r);
  return r;
}

void set_thread_name(std::string name) { this_thread_name = std::move(name); }

tracked_mutex::tracked_mutex(std::string name)
  : name_(std::move(name)), id_(reg().next_id++) {
  auto& g = reg();
  std::lock_guard<std::mutex> guard{g.m};
  g.mutexes[id_].name = name_;
}

tracked_mutex::~tracked_mutex() {
  auto& g = reg();
  std::lock_guard<std::mutex> guard{g.m};
  g.mutexes.erase(id_);
  g.after.erase(id_);
  for (auto& [from, tos] : g.after) tos.erase(id_);
}

void tracked_mutex::before_blocking() {
  std::vector<lock_report> found;
  lock_reporter fn;
  {
    auto& g = reg();
    std::lock_guard<std::mutex> guard{g.m};
    for (auto h : held_here) {
      if (h == id_) continue; // recursive lock: std::mutex would deadlock; not an order
      auto& tos = g.after[h];
      if (tos.count(id_) > 0) continue; // edge known, checked when first seen
      // New edge h → this. A path this → … → h means the reverse order was
      // taken before: an inversion.
      if (g.reaches(id_, h) && g.reported.insert({id_, h}).second) {
        lock_report r;
        r.what = lock_report::kind::inversion;
        r.first = name_;
        r.second = g.mutexes[h].name;
        r.this_thread = std::this_thread::get_id();
        r.this_thread_name = this_thread_name;
        // The site that took them the other way: the first edge out of this
        // mutex on the path (the direct edge this → h when there is one).
        auto& mine = g.after[id_];
        auto direct = mine.find(h);
        auto& site = direct != mine.end() ? direct->second : mine.begin()->second;
        r.other_thread = site.thread;
        r.other_thread_name = site.thread_name;
        r.text = "lock order inversion: " + describe(r.this_thread, r.this_thread_name) +
                 " takes '" + r.first + "' while holding '" + r.second + "', but " +
                 describe(r.other_thread, r.other_thread_name) + " took '" + r.first +
                 "' before '" + r.second + "'";
        found.push_back(std::move(r));
      }
      tos.emplace(id_, edge_site{std::this_thread::get_id(), this_thread_name});
    }
    if (!found.empty()) fn = g.reporter;
  }
  for (auto& r : found) emit(r, fn);
}

void tracked_mutex::acquired() {
  held_here.push_back(id_);
  auto& g = reg();
  std::lock_guard<std::mutex> guard{g.m};
  auto& info = g.mutexes[id_];
  info.held = true;
  info.owner = std::this_thread::get_id();
  info.owner_name = this_thread_name;
}

void tracked_mutex::lock() {
  before_blocking();
  m_.lock();
  acquired();
}

bool tracked_mutex::try_lock() {
  // try_lock never blocks, so it cannot close a deadlock: no order edge.
  if (!m_.try_lock()) return false;
  acquired();
  return true;
}

bool tracked_mutex::lock_for(std::chrono::steady_clock::duration timeout) {
  before_blocking();
  if (m_.try_lock_for(timeout)) {
    acquired();
    return true;
  }
  lock_report r;
  lock_reporter fn;
  {
    auto& g = reg();
    std::lock_guard<std::mutex> guard{g.m};
    auto& info = g.mutexes[id_];
    r.what = lock_report::kind::timeout;
    r.first = name_;
    r.this_thread = std::this_thread::get_id();
    r.this_thread_name = this_thread_name;
    if (info.held) {
      r.other_thread = info.owner;
      r.other_thread_name = info.owner_name;
    }
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
    r.text = "lock timeout: " + describe(r.this_thread, r.this_thread_name) +
             " gave up on '" + name_ + "' after " + std::to_string(ms) + " ms; held by " +
             (info.held ? describe(r.other_thread, r.other_thread_name)
                        : std::string{"nobody (released meanwhile)"});
    fn = g.reporter;
  }
  emit(r, fn);
  return false;
}

void tracked_mutex::unlock() {
  {
    auto& g = reg();
    std::lock_guard<std::mutex> guard{g.m};
    g.mutexes[id_].held = false;
  }
  // Locks may be released out of order: drop the most recent entry.
  auto it = std::find(held_here.rbegin(), held_here.rend(), id_);
  if (it != held_here.rend()) held_here.erase(std::next(it).base());
  m_.unlock();
}

} // namespace troupe::deadlock
