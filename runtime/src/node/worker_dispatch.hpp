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
#include <deque>
#include <map>
#include <utility>
#include <vector>

#include "commands.hpp"
#include "troupe/record.hpp"
#include "../stage_result.hpp"

namespace troupe::detail {

class worker_dispatch {
public:
  worker_dispatch() = default;
  worker_dispatch(size_t workers, bool ordered);

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
  // Hands waiting batches to workers with room (exec commands).
  void dispatch(node_commands& out);
  // Worker `worker` answered the batch it got as number `seq`.
  void complete(size_t worker, uint64_t seq, uint64_t token,
                stage_result result);
  // The next result that may be applied now, if any.
  bool next_ready(uint64_t& token, stage_result& result);
  // A result was applied; `records` were in its input batch.
  void applied(size_t records);

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
  };

  bool ordered_ = true;
  std::vector<size_t> busy_;  // per worker: batches dispatched, unanswered
  std::deque<waiting> waiting_; // not dispatched yet
  uint64_t next_dispatch_ = 0;  // order of dispatch
  uint64_t next_apply_ = 0;     // ordered: next to apply
  std::map<uint64_t, std::pair<uint64_t, stage_result>> done_; // ordered
  std::deque<std::pair<uint64_t, stage_result>> ready_;
  size_t outstanding_ = 0; // enqueued, not applied
  size_t records_ = 0;
};

} // namespace troupe::detail
