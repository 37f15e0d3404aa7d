// The input side of a node's delivery ledger (internal, CAF-free): every
// batch received and not acknowledged yet, and when it may be.
//
// A received batch gets a token and is held once by whoever handles it (the
// inline logic or a worker); every output entry derived from it holds it
// again (hold). It is acknowledged to its producer when the last holder
// lets go (release): so an input batch is acknowledged only when
// everything derived from it was acknowledged downstream, and a crash
// before that makes its producer send it again.
//
// Inline logic may keep records (a filling batch): the batches it was
// handed stay "open" in arrival order, and release_open(buffered) lets go
// of those older than the records the logic says it still holds.
//
// It also keeps the per-in-port credit our producers see (records and
// payload bytes received, not acknowledged) and decides when upstream is
// pressing: it can send us nothing more until we acknowledge something.
//
// Not thread-safe: one node actor owns it. Operations append what is to be
// sent (ack, received, latency samples) to a node_commands buffer.
//
// Example:
//   input_ledger in{1, 16384, 8 << 20, false};
//   auto t = in.receive(0, tag, batch_id, sender, 10, 100, now, todo);
//   in.open(t);             // the inline logic consumes it
//   in.release_open(0, todo); // it holds nothing: `ack` in todo
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <unordered_map>
#include <vector>

#include "commands.hpp"
#include "troupe/pool_allocator.hpp"

namespace troupe::detail {

class input_ledger {
public:
  using time_point = std::chrono::steady_clock::time_point;

  struct entry {
    uint32_t tag = 0;     // the producer's reply tag for our edge
    uint32_t in_port = 0;
    uint32_t sender = 0;  // the producer incarnation that sent it
    uint64_t batch_id = 0;
    size_t refs = 0;      // output entries and logic holding it
    uint64_t end = 0;     // cumulative consumed count after this batch
    size_t size = 0;      // records
    size_t bytes = 0;     // payload bytes
    time_point received;
  };

  input_ledger() = default;
  // `ports` inputs, each with a credit of `window` records and
  // `window_bytes` payload bytes. `at_most_once`: tell a producer on
  // receipt that we have its batch (see protocols.hpp, received).
  input_ledger(size_t ports, size_t window, size_t window_bytes,
               bool at_most_once);

  size_t ports() const noexcept {
    return ended_.size();
  }

  // -- input ports -------------------------------------------------------------

  // eof or close on `in_port`: its producer has sent everything.
  void end(uint32_t in_port);
  bool ended(uint32_t in_port) const {
    return ended_[in_port];
  }
  bool all_ended() const;

  // -- batches -----------------------------------------------------------------

  // A batch of `records` (`bytes` of payload) arrived on `in_port` from
  // producer incarnation `sender` (reopening the port if it had ended: a
  // restarted producer replays). Returns its token, held once.
  uint64_t receive(uint32_t in_port, uint32_t tag, uint64_t batch_id,
                   uint32_t sender, size_t records, size_t bytes,
                   time_point now, node_commands& out);
  // The inline logic was handed the batch: it stays open until the logic
  // no longer holds any of its records (release_open).
  void open(uint64_t token);
  // The tokens of the open batches, oldest first: what inline logic output
  // derives from.
  const std::deque<uint64_t>& open_tokens() const noexcept {
    return open_;
  }
  // One more holder (an output entry derived from it).
  void hold(uint64_t token);
  // One holder less; acknowledges the batch when none is left.
  void release(uint64_t token, node_commands& out);
  // Releases the open batches whose records the logic no longer holds: all
  // but those covering the newest `buffered` consumed records. Samples
  // their latency.
  void release_open(size_t buffered, node_commands& out);
  // Releases every open batch (the logic will never run again).
  void release_all_open(node_commands& out);

  const entry* find(uint64_t token) const;
  bool empty() const noexcept {
    return inputs_.empty();
  }
  size_t size() const noexcept {
    return inputs_.size();
  }

  // -- credit ------------------------------------------------------------------

  // A producer told us it is starved and waits for what it sent us. False
  // when we hold nothing of anyone's (it is not waiting for us); otherwise
  // upstream counts as starved until we have acknowledged everything.
  bool starve();
  bool upstream_starved() const noexcept {
    return upstream_starved_;
  }
  // Upstream can send us nothing more until we acknowledge something: a
  // port's window is full (records or bytes), or a producer is starved.
  bool pressing() const;
  size_t unacked_records(uint32_t in_port) const {
    return unacked_records_[in_port];
  }
  size_t unacked_bytes(uint32_t in_port) const {
    return unacked_bytes_[in_port];
  }
  uint64_t consumed() const noexcept {
    return consumed_;
  }

private:
  // Pooled nodes: no malloc per batch.
  using map_type
    = std::unordered_map<uint64_t, entry, std::hash<uint64_t>,
                         std::equal_to<uint64_t>,
                         pool_allocator<std::pair<const uint64_t, entry>>>;
  void acknowledge(map_type::iterator i, node_commands& out);

  size_t window_ = 0;
  size_t window_bytes_ = 0;
  bool at_most_once_ = false;
  bool upstream_starved_ = false;
  std::vector<bool> ended_;              // per in-port
  std::vector<size_t> unacked_records_;  // per in-port
  std::vector<size_t> unacked_bytes_;    // per in-port
  map_type inputs_;                      // by token
  std::deque<uint64_t> open_;            // tokens the inline logic may hold
  uint64_t consumed_ = 0;
  uint64_t next_token_ = 1;
};

} // namespace troupe::detail
