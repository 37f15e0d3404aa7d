// Per-node counters of one run.
//
// The one piece of state actors share, on purpose: each node incarnation
// writes only its own node's counters (relaxed atomics, once per batch), the
// supervisor only its own section (`supervised`), and the reporter and
// progress line only read them (snapshot() combines the two). Counters survive a crash of
// the node, which is what lets the report account for every record.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "troupe/graph_spec.hpp"

namespace troupe {

// The last few failures of one node (records sent to `errors` or the log,
// and crashes), newest last, for the live view and the HTML report. Written
// only when something fails, so a mutex costs nothing on the record path.
class recent_failures {
public:
  static constexpr size_t capacity = 16;
  struct entry {
    bool crash = false;  // a crash of the node, not one failed record
    uint64_t seq = 0;    // the record's seq (0 for a crash)
    std::string reason;  // trimmed to 512 bytes
    std::chrono::system_clock::time_point at;
  };
  void note(bool crash, uint64_t seq, std::string_view reason);
  std::vector<entry> list() const; // oldest first
  uint64_t total() const;          // every note ever made

private:
  mutable std::mutex mutex_;
  std::array<entry, capacity> ring_;
  uint64_t total_ = 0;
};

// Figures a node's logic keeps of its own (an http_fetch's responses by
// status class), each named once, then bumped lock-free: exposed as
// troupe_node_events_total{..., event="NAME"} and in the live view.
class event_counters {
public:
  static constexpr size_t capacity = 16;
  // The counter named `name`, registered on first use (a restarted node
  // gets the same one back, so it never goes down); nullptr when all
  // `capacity` names are taken.
  std::atomic<uint64_t>* get(std::string_view name);
  std::vector<std::pair<std::string, uint64_t>> list() const; // first-named first

private:
  mutable std::mutex mutex_;
  std::array<std::string, capacity> names_;
  std::array<std::atomic<uint64_t>, capacity> values_{};
  size_t used_ = 0;
};

struct node_metrics {
  std::string name;
  std::string type;
  actor_kind kind = actor_kind::stage;
  std::atomic<uint64_t> in{0};       // records received (redeliveries too)
  std::atomic<uint64_t> created{0};  // records this node made
  std::atomic<uint64_t> out{0};      // records passed on (or written)
  std::atomic<uint64_t> filtered{0}; // dropped by a filter or aggregated
  std::atomic<uint64_t> dead_lettered{0}; // failed: to `errors` or the log
  std::atomic<uint64_t> retried{0};  // held by a crashed incarnation
  std::atomic<uint64_t> lost{0};     // at_most_once: dropped after a crash
  std::atomic<uint64_t> redelivered{0}; // records this node sent again
  std::atomic<uint64_t> restarts{0};
  std::atomic<uint64_t> batches{0};  // batches emitted
  std::atomic<uint64_t> errors{0};   // crashes and failed records
  std::atomic<uint64_t> unexpected{0}; // messages no handler matched
  // Emitted (counted in `out`) but not yet handed to every consumer: what a
  // crash of this incarnation would take with it.
  std::atomic<uint64_t> unsent{0};
  // Measured, not derived: records the live incarnation holds (inside its
  // logic, waiting for or at its workers), published after each message it
  // handles, and the records of the batch its logic is handling right now.
  // A crash leaves both as they were: the supervisor moves them to
  // `retried` or `lost`.
  std::atomic<uint64_t> held{0};
  std::atomic<uint64_t> processing{0};
  // Per input port: records received and not acknowledged yet. When a
  // consumer is removed for good, what its producer sent but it never
  // received (its mailbox died with it) is the difference.
  std::vector<std::atomic<uint64_t>> unacked_in;
  // Per input port: records this incarnation received; per output edge:
  // records sent to the consumer's current incarnation. When a producer and
  // its consumer die together, the difference is what died in the
  // consumer's mailbox.
  std::vector<std::atomic<uint64_t>> received_in;
  std::vector<std::atomic<uint64_t>> sent_out;
  // Per output edge: which incarnation of the consumer `sent_out` counts
  // for. Set by the supervisor when this node starts, advanced by the node
  // when it is rewired to the consumer's next incarnation: a producer that
  // dies before it saw a rewire had sent to the dead incarnation.
  std::vector<std::atomic<uint32_t>> sent_to;
  // The supervisor's account of the node's dead incarnations: written by
  // the supervisor only (the node never touches it, and the supervisor
  // never writes the node's counters); the report adds it to them.
  struct supervisor_account {
    std::atomic<uint64_t> retried{0};    // held by a crashed incarnation
    std::atomic<uint64_t> lost{0};       // held, and never delivered again
    // Counted in `out` by an incarnation that died before handing them
    // over, and never emitted again: not out, lost.
    std::atomic<uint64_t> withdrawn{0};
    // Sent to an incarnation that never received them (they died in its
    // mailbox): in, and lost.
    std::atomic<uint64_t> unreceived{0};
    std::atomic<uint64_t> restarts{0};
    std::atomic<uint64_t> crashes{0}; // in `errors`
  } supervised;
  // How far a source is, in its own unit (records for generate, bytes for a
  // file), when it knows its size: the progress line's ETA. 0 total: unknown.
  std::atomic<uint64_t> work_total{0};
  std::atomic<uint64_t> work_done{0};
  recent_failures failures;
  event_counters events;
  // Processing latency per batch, log2 buckets of nanoseconds: bucket i
  // counts batches that took less than 2^(i+1) ns (and at least 2^i).
  std::array<std::atomic<uint64_t>, 48> latency{};
  // The batches' total latency (the Prometheus histogram's _sum).
  std::atomic<uint64_t> latency_sum_ns{0};

  void add(std::atomic<uint64_t>& c, uint64_t n) {
    c.fetch_add(n, std::memory_order_relaxed);
  }
  // Records sent to this node that it never received (they died in a
  // mailbox with it): they arrived, as far as the books go, and were lost.
  void lose_unreceived(uint64_t n) {
    add(in, n);
    add(lost, n);
  }
  void record_latency(uint64_t ns);
  // Upper bound of the bucket holding quantile q (0..1), in nanoseconds.
  uint64_t latency_quantile(double q) const;
  // held + processing: what the node holds now, measured (the accounting
  // identity checks it against the counters; it is not derived from them).
  int64_t in_flight() const;
};

struct run_metrics {
  std::vector<std::unique_ptr<node_metrics>> nodes; // in graph order
  node_metrics* find(const std::string& name);
  const node_metrics* find(const std::string& name) const;
  // Zeroed counters for each node of `g`, in graph order.
  static std::shared_ptr<run_metrics> of(const graph_spec& g);
};

} // namespace troupe
