// tracked_mutex: lock-order checking, acquire timeouts and misuse reports
// (see troupe/deadlock.hpp), and the lock listeners they go to.
#include "troupe/deadlock.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <exception>
#include <memory>
#include <sstream>
#include <system_error>
#include <utility>

namespace troupe::deadlock {

const char* to_string(lock_report::kind k) {
  switch (k) {
    case lock_report::kind::inversion: return "inversion";
    case lock_report::kind::timeout: return "timeout";
    case lock_report::kind::self_deadlock: return "self_deadlock";
    case lock_report::kind::unlock_not_owner: return "unlock_not_owner";
    case lock_report::kind::unlock_not_held: return "unlock_not_held";
    case lock_report::kind::destroyed_held: return "destroyed_held";
  }
  return "?";
}

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

// Process-wide state, under `m`: the order graph (edges before → after,
// "after was taken while holding before"), and, though they live elsewhere,
// every thread's held list and every tracked_mutex's held_/owner_ (the
// condition variables of waiting lock() calls use `m` too).
struct registry {
  std::mutex m;
  std::unordered_map<std::uint64_t, std::map<std::uint64_t, edge_site>> after;
  std::set<std::pair<std::uint64_t, std::uint64_t>> reported;
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
  // Never destroyed: a static tracked_mutex may outlive any static here.
  static auto* r = new registry;
  return *r;
}

} // namespace

namespace detail {

// A thread's held tracked mutexes, most recent last, and its name. The list
// is guarded by the registry mutex: another thread's unlock, or the
// destruction of a held mutex, takes a lock off it.
struct held_locks {
  std::vector<tracked_mutex*> locks;
  std::string name; // only its thread touches it

  ~held_locks() {
    // The thread ends holding locks (as with std::mutex, they stay held):
    // their owner's list goes away.
    auto& g = reg();
    std::lock_guard<std::mutex> guard{g.m};
    for (auto* m : locks) m->owner_locks_ = nullptr;
  }
};

} // namespace detail

namespace {

thread_local detail::held_locks here;

// --- listeners ---------------------------------------------------------------

// An entry is immutable once published except `running` (under
// listeners::m); delivery calls a snapshot of them outside every lock.
struct listener {
  lock_listener_token token = 0;
  lock_reporter fn; // empty in the reporter slot: the default stderr line
  int running = 0;  // deliveries in progress
};

struct listeners {
  std::mutex m;
  std::condition_variable idle; // a delivery finished
  std::shared_ptr<listener> slot = std::make_shared<listener>();
  std::vector<std::shared_ptr<listener>> added;
  lock_listener_token next_token = 1;

  // Waits until nobody runs `l`, unless this thread is inside a listener
  // (it might be `l` itself).
  void wait_idle(std::unique_lock<std::mutex>& lk, const listener& l);
};

listeners& subs() {
  static auto* s = new listeners; // never destroyed, like the registry
  return *s;
}

thread_local int delivering = 0;

void listeners::wait_idle(std::unique_lock<std::mutex>& lk, const listener& l) {
  if (delivering > 0) return;
  idle.wait(lk, [&] { return l.running == 0; });
}

void call(const listener& l, const lock_report& r) {
  try {
    if (l.fn) {
      l.fn(r);
    } else {
      auto line = r.text + '\n';
      std::fputs(line.c_str(), stderr); // one write: lines from threads do not mix
    }
  } catch (...) {
    // A listener may run inside unlock() or a destructor: never let it throw.
    std::fputs("troupe: a lock listener threw; its exception is ignored\n", stderr);
  }
}

void deliver(const std::vector<lock_report>& reports) {
  if (reports.empty()) return;
  auto& s = subs();
  std::vector<std::shared_ptr<listener>> targets;
  {
    std::lock_guard<std::mutex> guard{s.m};
    targets.reserve(s.added.size() + 1);
    targets.push_back(s.slot);
    targets.insert(targets.end(), s.added.begin(), s.added.end());
    for (auto& l : targets) ++l->running;
  }
  ++delivering;
  for (auto& r : reports)
    for (auto& l : targets) call(*l, r);
  --delivering;
  {
    std::lock_guard<std::mutex> guard{s.m};
    for (auto& l : targets) --l->running;
  }
  s.idle.notify_all();
}

lock_report make_report(lock_report::kind what, const std::string& mutex,
                        std::thread::id other, const std::string& other_name) {
  lock_report r;
  r.what = what;
  r.first = mutex;
  r.this_thread = std::this_thread::get_id();
  r.this_thread_name = here.name;
  r.other_thread = other;
  r.other_thread_name = other_name;
  return r;
}

} // namespace

lock_reporter set_lock_reporter(lock_reporter r) {
  auto& s = subs();
  auto next = std::make_shared<listener>();
  next->fn = std::move(r);
  std::unique_lock<std::mutex> lk{s.m};
  auto previous = std::exchange(s.slot, std::move(next));
  s.wait_idle(lk, *previous);
  return previous->fn;
}

lock_listener_token add_lock_listener(lock_reporter fn) {
  auto& s = subs();
  auto l = std::make_shared<listener>();
  l->fn = std::move(fn);
  std::lock_guard<std::mutex> guard{s.m};
  l->token = s.next_token++;
  s.added.push_back(std::move(l));
  return s.added.back()->token;
}

bool remove_lock_listener(lock_listener_token token) {
  auto& s = subs();
  std::unique_lock<std::mutex> lk{s.m};
  auto it = std::find_if(s.added.begin(), s.added.end(),
                         [&](const auto& l) { return l->token == token; });
  if (it == s.added.end()) return false;
  auto l = std::move(*it);
  s.added.erase(it);
  s.wait_idle(lk, *l);
  return true;
}

void set_thread_name(std::string name) { here.name = std::move(name); }

// --- tracked_mutex -----------------------------------------------------------

tracked_mutex::tracked_mutex(std::string name)
  : name_(std::move(name)), id_(reg().next_id++) {
}

tracked_mutex::~tracked_mutex() {
  auto& g = reg();
  std::vector<lock_report> found;
  {
    std::lock_guard<std::mutex> guard{g.m};
    if (held_) {
      auto r = make_report(lock_report::kind::destroyed_held, name_, owner_, owner_name_);
      r.text = "lock misuse: '" + name_ + "' destroyed while held by " +
               describe(owner_, owner_name_);
      found.push_back(std::move(r));
      release_from_owner();
    }
    g.after.erase(id_);
    for (auto& [from, tos] : g.after) tos.erase(id_);
    for (auto it = g.reported.begin(); it != g.reported.end();)
      it = it->first == id_ || it->second == id_ ? g.reported.erase(it) : std::next(it);
  }
  deliver(found);
}

// Caller holds the registry mutex.
void tracked_mutex::take(detail::held_locks& mine) {
  held_ = true;
  owner_ = std::this_thread::get_id();
  owner_name_ = mine.name;
  owner_locks_ = &mine;
  mine.locks.push_back(this);
}

// Caller holds the registry mutex. Off its owner's list (the latest entry:
// locks may be released out of order), then free.
void tracked_mutex::release_from_owner() {
  if (owner_locks_ != nullptr) {
    auto& list = owner_locks_->locks;
    auto pos = std::find(list.rbegin(), list.rend(), this);
    if (pos != list.rend()) list.erase(std::next(pos).base());
  }
  held_ = false;
  owner_ = {};
  owner_name_.clear();
  owner_locks_ = nullptr;
}

bool tracked_mutex::acquire(const duration* timeout, const time_point* deadline) {
  const auto me = std::this_thread::get_id();
  auto& g = reg();
  std::unique_lock<std::mutex> lk{g.m};
  if (held_ && owner_ == me) {
    auto r = make_report(lock_report::kind::self_deadlock, name_, me, here.name);
    r.text = "lock self-deadlock: " + describe(me, here.name) + " locks '" + name_ +
             "', which it already holds";
    lk.unlock();
    deliver({r});
    throw std::system_error(std::make_error_code(std::errc::resource_deadlock_would_occur),
                            "tracked_mutex '" + name_ + "' locked twice by one thread");
  }
  std::vector<lock_report> found;
  for (const auto* held : here.locks) {
    const auto h = held->id_;
    auto& tos = g.after[h];
    if (tos.count(id_) > 0) continue; // edge known, checked when first seen
    // New edge h → this. A path this → … → h means the reverse order was
    // taken before: an inversion.
    if (g.reaches(id_, h) && g.reported.insert({id_, h}).second) {
      // The site that took them the other way: the first edge out of this
      // mutex on the path (the direct edge this → h when there is one).
      auto& outs = g.after[id_];
      auto direct = outs.find(h);
      auto& site = direct != outs.end() ? direct->second : outs.begin()->second;
      auto r = make_report(lock_report::kind::inversion, name_, site.thread,
                           site.thread_name);
      r.second = held->name_;
      r.text = "lock order inversion: " + describe(me, here.name) + " takes '" +
               r.first + "' while holding '" + r.second + "', but " +
               describe(r.other_thread, r.other_thread_name) + " took '" + r.first +
               "' before '" + r.second + "'";
      found.push_back(std::move(r));
    }
    tos.emplace(id_, edge_site{me, here.name});
  }
  if (!found.empty()) {
    // Reported before blocking, outside the internal mutex.
    lk.unlock();
    deliver(found);
    lk.lock();
  }
  auto is_free = [this] { return !held_; };
  if (timeout == nullptr) {
    free_.wait(lk, is_free);
  } else if (!free_.wait_until(lk, *deadline, is_free)) {
    auto r = make_report(lock_report::kind::timeout, name_, owner_, owner_name_);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*timeout).count();
    r.text = "lock timeout: " + describe(me, here.name) + " gave up on '" + name_ +
             "' after " + std::to_string(ms) + " ms; held by " +
             describe(owner_, owner_name_);
    lk.unlock();
    deliver({r});
    return false;
  }
  take(here);
  return true;
}

void tracked_mutex::lock() { acquire(nullptr, nullptr); }

bool tracked_mutex::lock_for(std::chrono::steady_clock::duration timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  return acquire(&timeout, &deadline);
}

bool tracked_mutex::try_lock() {
  // try_lock never blocks, so it cannot close a deadlock: no order edge.
  auto& g = reg();
  std::lock_guard<std::mutex> guard{g.m};
  if (held_) return false;
  take(here);
  return true;
}

void tracked_mutex::unlock() {
  const auto me = std::this_thread::get_id();
  auto& g = reg();
  std::vector<lock_report> found;
  {
    std::lock_guard<std::mutex> guard{g.m};
    if (!held_) {
      auto r = make_report(lock_report::kind::unlock_not_held, name_, {}, {});
      r.text = "lock misuse: " + describe(me, here.name) + " unlocks '" + name_ +
               "', which nobody holds";
      found.push_back(std::move(r));
    } else {
      if (owner_ != me) {
        auto r = make_report(lock_report::kind::unlock_not_owner, name_, owner_, owner_name_);
        r.text = "lock misuse: " + describe(me, here.name) + " unlocks '" + name_ +
                 "', held by " + describe(owner_, owner_name_);
        found.push_back(std::move(r));
      }
      release_from_owner();
      // Under the internal mutex: once it is released, a waiter may take
      // this mutex and destroy it.
      free_.notify_one();
    }
  }
  deliver(found);
}

} // namespace troupe::deadlock
