// Deadlock detection, free of CAF: the state of the wait-for graph the
// deadlock detector keeps, and tracked_mutex, a std::mutex that checks lock
// order. The detector actor (later) owns one wait_graph and calls probe()
// every probe interval; everything timed takes an explicit `now`, so the
// graph reads no clock and is tested in virtual time.
//
// wait_graph: one edge per outstanding request, waiter → holder, carrying the
// message type and the time it was added (`since`). probe(now) reports
//   - cycles (a → b → c → a, the message type on each edge),
//   - self-waits (a → a),
//   - waits on dead holders (actor_died(holder) while someone waits on it).
//
// The detection rule. An edge is *mature* at `now` when now - since >=
// probe_interval. probe(now) looks only at mature edges (Tarjan SCC, then the
// shortest cycle through the smallest member of each strongly connected
// component). Hence, when probe() runs every probe interval:
//   - a cycle is never reported before each of its edges is one interval old
//     (a slow but progressing chain, whose edges come and go, is never seen),
//   - a cycle that stands is reported at the first probe at least one
//     interval after its last edge was added: within two probe intervals of
//     forming.
// A cycle is identified by its set of wait ids: reported once while it
// stands; when one of its waits is cleared (it dissolved) the key is dropped,
// so a cycle that forms again (new requests) is reported again. A strongly
// connected component gives one report per probe at most (its shortest cycle
// through its smallest actor id, found by BFS: the same cycle at every probe
// while the component stands), not one per elementary cycle. The caller
// (the detector actor) must probe every interval for the two-interval bound. Waits on dead holders are reported at the next probe,
// without waiting an interval (the holder will never answer). Waits past
// their deadline are dropped by probe() (the requester sees its timeout).
//
// Thread safety: none; one owner (the detector actor) calls it.
//
// Example:
//   wait_graph g{100ms};
//   g.add_wait(1, a, b, "lookup", t0, t0 + 5s);   // a asks b
//   g.add_wait(2, b, a, "fetch", t0, t0 + 5s);    // b asks a
//   g.probe(t0 + 50ms);    // {} : edges younger than one interval
//   g.probe(t0 + 100ms);   // one cycle report: a →(lookup) b →(fetch) a
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace troupe::deadlock {

using actor_id = std::uint64_t;
using wait_id = std::uint64_t;
using time_point = std::chrono::steady_clock::time_point;
using duration = std::chrono::steady_clock::duration;

// One outstanding request: `waiter` waits for `holder`'s reply to a
// `message_type` message since `since`, until `deadline` at the latest.
struct wait_edge {
  wait_id id = 0;
  actor_id waiter = 0;
  actor_id holder = 0;
  std::string message_type;
  time_point since;
  time_point deadline;
};

enum class report_kind { cycle, self_wait, dead_holder };

const char* to_string(report_kind k);

// What probe() found. members[i] waits on members[(i+1) % n] with
// message_types[i] (for a cycle; a self-wait has one member and one type; a
// dead holder has members {waiter, holder} and one type). names[i] is the
// display name of members[i] (YAML node name) or "#<id>" without one.
struct report {
  report_kind kind = report_kind::cycle;
  std::vector<actor_id> members;
  std::vector<std::string> names;
  std::vector<std::string> message_types;
  std::vector<wait_id> waits; // the requests involved, in edge order
  time_point detected;

  // "cycle a →(lookup) b →(fetch) c →(put) a",
  // "self-wait a →(get) a", "dead holder a →(get) b (dead)".
  std::string to_string() const;
};

class wait_graph {
public:
  // Actors remembered as dead (for waits added after the death). Oldest
  // forgotten first; dead_forgotten() counts them.
  static constexpr std::size_t max_dead = 4096;

  explicit wait_graph(duration probe_interval);

  duration probe_interval() const noexcept { return interval_; }

  // Registers a request. A second add with an id already present replaces
  // the edge (and restarts its age). Returns false (and adds nothing) for a
  // deadline not after `now`.
  bool add_wait(wait_id id, actor_id waiter, actor_id holder,
                std::string message_type, time_point now, time_point deadline);

  // The reply (or error) arrived. Unknown ids are ignored.
  void clear_wait(wait_id id);

  // The actor is gone: its own waits end; waits on it become dead-holder
  // reports at the next probe; later waits on it too.
  void actor_died(actor_id id);
  void holder_died(actor_id id) { actor_died(id); }

  // Display name for reports (the YAML node name).
  void name(actor_id id, std::string text);
  std::string display_name(actor_id id) const;

  // Reports new since the last probe, cycles first (ordered by smallest
  // member), then self-waits, then dead holders (by wait id).
  std::vector<report> probe(time_point now);

  // Current edges, ordered by wait id.
  std::vector<wait_edge> snapshot() const;

  std::size_t size() const noexcept { return edges_.size(); }
  std::uint64_t expired() const noexcept { return expired_; }
  std::uint64_t dead_forgotten() const noexcept { return dead_forgotten_; }
  // Seen dying (actor_died) and not yet forgotten.
  bool is_dead(actor_id id) const { return dead_.count(id) > 0; }

private:
  void forget_reported(wait_id id);
  void find_cycles(time_point now, std::vector<report>& out);

  duration interval_;
  std::map<wait_id, wait_edge> edges_;
  // waiter → its outgoing wait ids (a few per actor).
  std::unordered_map<actor_id, std::vector<wait_id>> out_;
  std::unordered_map<actor_id, std::string> names_;
  std::unordered_set<actor_id> dead_;
  std::deque<actor_id> dead_order_;
  // Reported cycles/self-waits, keyed by their sorted wait ids; and which
  // keys each wait belongs to, so clearing a wait drops its keys.
  std::set<std::vector<wait_id>> reported_;
  std::unordered_map<wait_id, std::vector<std::vector<wait_id>>> reported_by_wait_;
  std::unordered_set<wait_id> reported_dead_;
  std::uint64_t expired_ = 0;
  std::uint64_t dead_forgotten_ = 0;
};

// ---------------------------------------------------------------------------
// tracked_mutex: a drop-in for std::mutex (lock/unlock/try_lock, so
// std::lock_guard and std::unique_lock work) for legacy code inside services.
// It records the locks each thread holds and a process-wide lock-order graph
// (taking A while holding B adds the edge B → A), and reports to the lock
// listeners (below):
//   - inversion: a lock() or lock_for() that would add an edge closing a
//     cycle (A → B seen earlier, now B → A, or a longer chain) is reported
//     before blocking, i.e. before it can deadlock, once per pair;
//   - timeout: lock_for(timeout) gave up; the report names the holder;
//   - self_deadlock: lock() or lock_for() by the thread that holds it. A
//     std::mutex would hang forever; this one reports, then throws
//     std::system_error(resource_deadlock_would_occur), as the standard
//     allows when a deadlock is detected. (try_lock by the holder returns
//     false, no report: it cannot hang.)
//   - unlock_not_owner: unlock() by a thread that does not hold it, while
//     another does (undefined for std::mutex). Reported, naming the holder,
//     then the mutex is released anyway, as glibc's std::mutex does, so code
//     that hands a lock between threads behaves as before: the tool
//     observes, it does not change the program.
//   - unlock_not_held: unlock() of a mutex nobody holds: reported, no effect.
//   - destroyed_held: the mutex is destroyed while held (reported, naming the
//     holder). Threads still waiting on it then are undefined, as for any
//     mutex.
// A thread that ends holding a tracked mutex leaves it held, as with
// std::mutex (not reported at exit; a lock_for names it as the holder).
// unlock() never throws: it runs in lock_guard's destructor, where a throw
// would terminate the program.
//
// Implementation: one process-wide internal std::mutex guards every tracked
// mutex's state (held, owner) and the order graph; a waiting lock() sleeps on
// the tracked mutex's condition variable. So no real lock is ever taken in
// the program's (possibly inverted) order, and a ThreadSanitizer build sees
// plain mutex/condition-variable synchronisation: its own lock-order checker
// has nothing to report, and data guarded by a tracked_mutex is seen as
// guarded.
//
// Cost: every lock() and unlock() takes that internal mutex once and scans
// the calling thread's held locks; a new order edge costs a DFS over the
// order graph (once per edge for the mutexes' lifetime). Meant for legacy
// code with a handful of locks, not for hot paths.
//
// Thread safety: all members are thread-safe like std::mutex's. Listeners run
// on the thread that found the problem, outside the internal mutex, before
// it blocks (and before the throw of a self-deadlock). So a listener may use
// tracked mutexes, but its locks count like any others on that thread.
//
// Example:
//   tracked_mutex accounts{"accounts"}, audit{"audit"};
//   { std::lock_guard a{accounts}; std::lock_guard b{audit}; }   // accounts → audit
//   { std::lock_guard b{audit}; std::lock_guard a{accounts}; }   // reported: inversion
struct lock_report {
  enum class kind {
    inversion,
    timeout,
    self_deadlock,
    unlock_not_owner,
    unlock_not_held,
    destroyed_held,
  };
  kind what = kind::inversion;
  // inversion: `first` was taken before `second` earlier (by other_thread),
  // now this_thread takes `first` while holding `second`.
  // Every other kind: `first` is the mutex, `second` is empty, and
  // other_thread is its holder (default id when nobody holds it; for a
  // self-deadlock, this_thread).
  std::string first;
  std::string second;
  std::thread::id this_thread;
  std::string this_thread_name;
  std::thread::id other_thread;
  std::string other_thread_name;
  std::string text; // one line, what the default reporter prints
};

// "inversion", "timeout", "self_deadlock", ...
const char* to_string(lock_report::kind k);

using lock_reporter = std::function<void(const lock_report&)>;

// Where reports go: first the reporter slot (one line on stderr unless
// replaced), then each listener in the order added (the deadlock detector
// adds one, the stderr line stays). All of these are thread-safe. A listener
// must not throw (an exception is caught and noted on stderr: it may run
// inside unlock() or a destructor). When set_lock_reporter or
// remove_lock_listener returns, the function it took out is not running on
// any thread and is never called again, so its captures may go; except when
// called from inside a listener (it could be waiting for itself), where it
// returns at once.

// Replaces the reporter slot (nullptr: the default stderr line) and returns
// the previous one (empty for the default).
lock_reporter set_lock_reporter(lock_reporter r);

// Adds a listener beside the reporter slot (a deadlock detector, a metric);
// returns the token for remove_lock_listener. Tokens are never 0.
using lock_listener_token = std::uint64_t;
lock_listener_token add_lock_listener(lock_reporter fn);

// Removes a listener; false for an unknown token.
bool remove_lock_listener(lock_listener_token token);

// Names the calling thread in lock reports (thread-local).
void set_thread_name(std::string name);

namespace detail {
struct held_locks; // a thread's held tracked mutexes (tracked_mutex.cpp)
} // namespace detail

class tracked_mutex {
public:
  explicit tracked_mutex(std::string name);
  ~tracked_mutex();
  tracked_mutex(const tracked_mutex&) = delete;
  tracked_mutex& operator=(const tracked_mutex&) = delete;

  void lock();
  bool try_lock();
  // Like try_lock_for; on timeout reports the holder and returns false.
  bool lock_for(std::chrono::steady_clock::duration timeout);
  void unlock();

  const std::string& name() const noexcept { return name_; }
  std::uint64_t id() const noexcept { return id_; }

private:
  friend struct detail::held_locks;

  // Checks order, waits until free (until `deadline` when given), takes it.
  bool acquire(const duration* timeout, const time_point* deadline);
  void take(detail::held_locks& mine);
  void release_from_owner();

  std::string name_;
  std::uint64_t id_;
  // Guarded by the process-wide internal mutex.
  bool held_ = false;
  std::thread::id owner_;
  std::string owner_name_;
  detail::held_locks* owner_locks_ = nullptr; // null once the owner exited
  std::condition_variable free_; // notified by unlock()
};

} // namespace troupe::deadlock
