// Which worker runs which input batch, and in what order the results are
// applied (internal, CAF-free): for map/filter nodes with `workers: N`.
//
// Input batches wait in arrival order and go to the least busy worker, at
// most two at a time per worker (one running, one in its mailbox). With
// `ordered` the results are applied in dispatch order whatever order they
// come back in; otherwise as they come.
//
// Not thread-safe: one node actor owns it. dispatch() appends `exec`
// commands (the batch moves into the command buffer); complete() stores a
// result and next_ready() hands back those that may be applied now.
//
// Example:
//   worker_dispatch d{2, true};
//   d.enqueue(token, false, batch, batch.size());
//   d.dispatch(todo);                       // exec(worker 0, seq 0)
//   d.complete(0, 0, token, std::move(r));  // the worker answered
//   while (d.next_ready(token, r)) { apply(r); d.applied(records); }
#pragma once

#include <cstddef>
#include <cstdint>
#include <chrono>
#include <climits>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "commands.hpp"
#include "ring.hpp"
#include "troupe/record.hpp"
#include "../stage_result.hpp"

namespace troupe::detail {

class worker_dispatch {
public:
  worker_dispatch() = default;
  worker_dispatch(size_t workers, bool ordered, bool by_key = false);

  // Whether this node runs its logic on workers at all.
  bool enabled() const noexcept {
    return !busy_.empty();
  }
  size_t workers() const noexcept {
    return busy_.size();
  }
  size_t busy(size_t worker) const {
    return busy_[worker];
  }

  // Input `token` (`records` records) waits for a worker.
  void enqueue(uint64_t token, bool redelivery, record_batch batch,
               size_t records);
  // Hands waiting batches to workers with room (exec commands), sent at
  // `now`.
  void dispatch(node_commands& out,
                std::chrono::steady_clock::time_point now = {});
  // Whether number `seq` was dispatched and is not answered yet (so an
  // answer for it is expected, once).
  bool awaiting(uint64_t seq) const {
    return seq >= flights_base_ && seq - flights_base_ < flights_.size()
           && !flights_[seq - flights_base_].answered;
  }
  // The input a batch dispatched as number `seq` came from.
  uint64_t token_of(uint64_t seq) const;
  // Worker `worker` answered the batch it got as number `seq`.
  void complete(size_t worker, uint64_t seq, uint64_t token,
                stage_result result);
  // When the oldest batch still unanswered by its worker was dispatched.
  std::optional<std::chrono::steady_clock::time_point>
  oldest_unanswered() const;
  // The next result that may be applied now, if any: `records` were in its
  // batch (or part), and `last` says its input has no other part left.
  bool next_ready(uint64_t& token, stage_result& result, size_t& records,
                  bool& last);
  // A result was applied; `records` were in its batch (or part).
  void applied(size_t records);

  // The worker a key belongs to when partitioned (stable across runs).
  size_t worker_of(const std::string& key) const;

  // Nothing waits for, runs on, or came back from a worker unapplied.
  bool idle() const noexcept {
    return outstanding_ == 0 && waiting_.empty();
  }
  // Records waiting for or at workers (the node holds them).
  size_t records() const noexcept {
    return records_;
  }
  size_t outstanding() const noexcept {
    return outstanding_;
  }

private:
  struct waiting {
    uint64_t token;
    bool redelivery;
    record_batch batch;
    size_t worker = any_worker; // pinned when partitioned
  };
  struct finished {
    uint64_t token = 0;
    stage_result result;
    size_t records = 0;
  };
  // A dispatched batch, until its result is handed on (next_ready).
  struct flight {
    uint64_t token = 0;
    size_t records = 0;
    std::chrono::steady_clock::time_point sent{};
    bool answered = false;
    bool handed_on = false; // unordered: its result is in ready_ already
    stage_result result;
  };
  static constexpr size_t any_worker = SIZE_MAX;

  bool ordered_ = true;
  bool by_key_ = false;
  std::vector<size_t> busy_;  // per worker: batches dispatched, unanswered
  std::deque<waiting> waiting_; // not dispatched yet
  uint64_t next_dispatch_ = 0;  // order of dispatch
  // Dispatch number flights_base_ + i is flights_[i]. Rings, not maps: the
  // record path allocates nothing per batch here.
  ring<flight> flights_;
  uint64_t flights_base_ = 0;
  ring<finished> ready_;
  std::map<uint64_t, size_t> parts_left_; // by input token, partitioned
  size_t outstanding_ = 0; // enqueued, not applied
  size_t records_ = 0;
};

} // namespace troupe::detail
