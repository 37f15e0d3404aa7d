// The supervision-tree engine, free of CAF: one decision procedure for both
// supervisors (the graph supervisor and the embeddable one).
//
// Children ("units") live in scopes; each scope has its policy (strategy,
// restart budget, backoff) and may be nested in a parent scope, where it is
// one unit in start order (placed where its first child starts). The engine
// takes events with an explicit `now` and answers commands for its actor
// shell to carry out: it has no clock, no timer and no hidden randomness (the
// backoff jitter comes from a seeded generator), so a test can drive it
// event by event.
//
// The shell's side of the contract:
//   - start: start each unit in order, calling started(u) after each; when
//     one fails to start, call start_failed(u, ...) and start no more of
//     that command (the engine reschedules the rest).
//   - stop: ask the unit to stop; after the stop timeout call
//     stop_timeout(token). kill: kill the units now, in order.
//   - schedule: call restart_due(token) after `delay`.
//   - fail: the root scope gave up; the shell shuts down (shutdown()).
//   - all_stopped: after shutdown(), no child runs any more.
//   - report every down of a child with child_down(u, ...).
//
// Example:
//   engine e{stop_mode::one_by_one, policy, "sup", 7};
//   auto a = e.add_child("a", restart_type::permanent);
//   run(e.start_all());                      // start{a}; then e.started(a)
//   run(e.child_down(a, exit_kind::crash, "boom", now).cmds); // schedule
//   run(e.restart_due(token, now + delay));  // restart{a}, start{a}
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "troupe/graph_spec.hpp"
#include "troupe/supervision.hpp"

namespace troupe::supervision {

using time_point = std::chrono::steady_clock::time_point;
using unit_id = size_t;
using scope_id = size_t;
constexpr scope_id root_scope = 0;

enum class stop_mode {
  together,   // kill a restart set at once (the graph's nodes)
  one_by_one, // ask one child at a time, kill it after a timeout (OTP)
};

enum class exit_kind {
  crash,    // failed: restarted per its restart type and the budget
  normal,   // exited normally or asked to shut down (OTP's normal/shutdown)
  finished, // done for good (a graph node that ended): never restarted
  fatal,    // a failure no restart can fix: not restarted, no budget used
};

enum class unit_state {
  idle,     // not started yet
  running,  // started, not down
  stopping, // we stopped or killed it; its down is expected
  down,     // down, waiting for a restart (or for nothing, after shutdown)
  finished, // exited for good, successfully
  removed,  // gone for good: temporary, or transient after a normal exit
};

const char* to_string(unit_state x);

struct command {
  enum class op {
    start,       // start `units`, in this order
    remove,      // `units` are gone for good and will not be restarted
    stop,        // ask units[0] to stop; stop_timeout(token) after the timeout
    kill,        // kill `units` now, in this order
    schedule,    // restart_due(token) after `delay`
    restart,     // batch `token` fires: `units` are its members that are
                 // down or removed (the start and remove commands follow)
    escalate,    // `scope` exhausted its budget; its parent takes over
    fail,        // the root gave up: `units[0]` failed with `reason`
    all_stopped, // after shutdown(): no child runs any more
  };
  op what = op::start;
  std::vector<unit_id> units;
  uint64_t token = 0;
  duration delay{0};
  scope_id scope = root_scope;
  std::string reason;
};

using commands = std::vector<command>;

const char* to_string(command::op x);

// What the engine made of a child's down.
enum class disposition {
  ignored,    // not a running child (already down, or never started)
  stopped,    // stopped by us (a restart set or a shutdown)
  finished,   // exited for good (exit_kind::finished)
  removed,    // not restarted: temporary, or transient after a normal exit
  restarting, // a failure within the budget: a restart is scheduled
  failed,     // a failure beyond the root's budget: `fail` follows
  fatal,      // exit_kind::fatal: the shell decides (it fails the run)
};

struct down_result {
  disposition what = disposition::ignored;
  commands cmds;
};

class engine {
public:
  // `root` is the root scope's policy; `seed` seeds the backoff jitter.
  engine(stop_mode mode, const supervision_spec& root, std::string root_name,
         uint64_t seed);

  // -- building the tree (before start_all) ----------------------------------

  // A nested scope, a child of the root until set_parent moves it.
  scope_id add_scope(std::string name, const supervision_spec& policy);
  void set_parent(scope_id s, scope_id parent);
  // Units start in the order they are added; a scope is placed in its
  // parent where its first unit starts.
  unit_id add_child(std::string name, restart_type restart,
                    scope_id scope = root_scope);

  // -- events ----------------------------------------------------------------

  // start{every unit}, in start order.
  commands start_all();
  void started(unit_id u);
  // The start of `u` failed; the units after it in the same start command
  // were not started and restart with its failure's restart set.
  commands start_failed(unit_id u, const std::string& reason, time_point now);
  down_result child_down(unit_id u, exit_kind k, const std::string& reason,
                         time_point now);
  commands restart_due(uint64_t token, time_point now);
  commands stop_timeout(uint64_t token);
  // Stops every child still up in reverse start order, then all_stopped.
  // Pending restarts are dropped. Only the first call does anything.
  commands shutdown();

  // -- queries ---------------------------------------------------------------

  size_t size() const {
    return units_.size();
  }
  unit_state state(unit_id u) const {
    return units_[u].state;
  }
  // Running or stopping: its actor may still be up.
  bool up(unit_id u) const {
    auto s = units_[u].state;
    return s == unit_state::running || s == unit_state::stopping;
  }
  bool shutting_down() const {
    return shutting_down_;
  }
  const std::string& name(unit_id u) const {
    return units_[u].name;
  }
  restart_type restart(unit_id u) const {
    return units_[u].restart;
  }
  const std::string& scope_name(scope_id s) const {
    return scopes_[s].name;
  }
  scope_id scope_parent(scope_id s) const {
    return scopes_[s].parent;
  }
  const supervision_spec& scope_policy(scope_id s) const {
    return scopes_[s].policy;
  }
  // Restart timers armed and not yet fired (or dropped by a shutdown).
  size_t pending_restarts() const {
    return batches_.size();
  }

private:
  struct member {
    bool is_scope = false;
    size_t index = 0;
  };
  struct scope {
    std::string name;
    scope_id parent = root_scope;
    supervision_spec policy;
    restart_budget budget;
    std::vector<member> members; // in start order
    bool placed = false;         // in its parent's members
  };
  struct unit {
    std::string name;
    restart_type restart = restart_type::permanent;
    scope_id scope = root_scope;
    unit_state state = unit_state::idle;
    uint64_t batch = 0; // the restart batch that stopped it
  };
  // Units stopped together, restarted together after a backoff.
  struct batch {
    std::vector<unit_id> members; // in start order
    size_t pending_down = 0;
    duration delay{0};
  };

  bool within(unit_id u, scope_id s) const;
  // Applies the strategy to a failed unit, escalating while budgets are
  // exhausted; `extra` joins the restart set (units a failed start skipped).
  commands fail_unit(unit_id u, const std::string& reason, time_point now,
                     std::vector<unit_id> extra, disposition& what);
  void stop_units(const std::vector<unit_id>& reverse_order, uint64_t batch_id,
                  commands& out);
  void stopped(unit_id u, commands& out);
  void stop_next(commands& out);
  void check_all_stopped(commands& out);
  void schedule_if_ready(uint64_t id, commands& out);

  stop_mode mode_;
  std::vector<scope> scopes_;
  std::vector<unit> units_;
  std::map<uint64_t, batch> batches_;
  uint64_t next_batch_ = 1;
  std::minstd_rand rng_;
  std::vector<unit_id> starting_; // the last start command
  // one_by_one: children waiting to be stopped, and the one we wait for.
  std::deque<unit_id> stop_queue_;
  unit_id current_stop_ = SIZE_MAX;
  uint64_t stop_token_ = 0;
  bool shutting_down_ = false;
  bool all_stopped_ = false;
};

} // namespace troupe::supervision
