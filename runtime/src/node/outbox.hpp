// The output side of a node's delivery ledger (internal, CAF-free): what
// the node emitted, per consumer edge the credit it used and what waits for
// it, and what a restarted consumer must get again.
//
// An emitted batch becomes an output entry queued for every live consumer
// of its port (data or errors). flush() sends queued entries while the
// edge has credit: at most `window` records and `window_bytes` payload
// bytes unacknowledged per edge, never more. An entry stays until every
// consumer acknowledged it or is gone for good; then the input batches it
// derives from (its lineage) are released in the input_ledger, which
// acknowledges them upstream when nothing else holds them.
//
// When a consumer restarts (rewire), everything it had not acknowledged is
// queued again, first, with `attempt + 1`, flagged as a redelivery; under
// at_most_once what it reported `received` is forgotten instead. When a
// consumer is dropped for good it is sent nothing more: a finished one had
// everything (what we emit from now on duplicates it); a temporary one
// removed after a crash never gets what was queued or died in its mailbox,
// and that is counted lost at it.
//
// eof tells a consumer it has everything, so it may finish for good. A
// stage sends it only once no other edge holds output of ours: until then
// the inputs that output derives from are unacknowledged, and after a crash
// of ours they come back and may come out differently (a record that
// failed to `errors` passes on a later attempt), which a finished consumer
// would never get.
//
// Not thread-safe: one node actor owns it. Operations append the sends to
// make to a node_commands buffer; counter changes (out, batches, unsent)
// accumulate until take_counts().
//
// Example:
//   outbox o{{{out_data_port, 0, true, false}}, 16384, 8 << 20, false};
//   o.emit(out_data_port, batch, lineage, inputs, todo);
//   o.flush(false, false, todo);          // send_batch in todo
//   o.ack(0, 1, inputs, todo);            // the lineage is released
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "commands.hpp"
#include "troupe/pool_allocator.hpp"
#include "input_ledger.hpp"
#include "troupe/record.hpp"

namespace troupe::detail {

// Output ports of a node (the same numbers as run_plan's data_port and
// errors_port).
inline constexpr uint32_t out_data_port = 0;
inline constexpr uint32_t out_errors_port = 1;

class outbox {
public:
  // One consumer edge, by reply tag.
  struct edge_config {
    uint32_t port = out_data_port; // which of our outputs it reads
    uint32_t in_port = 0;          // its input the batches arrive on
    bool connected = false;        // it has a live incarnation
    bool finished = false;         // it finished before we started
  };

  struct edge_state {
    uint32_t port = out_data_port;
    uint32_t in_port = 0;
    bool connected = false;
    size_t in_flight = 0;       // records sent, unacknowledged
    size_t in_flight_bytes = 0;
    size_t queued = 0;          // records waiting for credit
    std::deque<uint64_t> queue;
    // out id -> records (pooled nodes: no malloc per batch)
    std::map<uint64_t, size_t, std::less<uint64_t>,
             pool_allocator<std::pair<const uint64_t, size_t>>>
      unacked;
    std::unordered_set<uint64_t> resent;   // queued again after a rewire
    std::unordered_set<uint64_t> received; // at_most_once: never resend
    bool eof_sent = false;
    bool starved_told = false; // told it we are starved, this episode
    bool dropped = false;      // the consumer is gone for good
    bool finished = false;     // ... because it finished: it had everything
                               // we emitted before; what we emit now are
                               // duplicates
  };

  struct out_entry {
    record_batch batch;
    // Input tokens it derives from (in the outbox's pool).
    std::vector<uint64_t, pool_allocator<uint64_t>> lineage;
    size_t pending = 0;            // consumers yet to acknowledge
    size_t unsent = 0;             // consumers it was not sent to yet
    size_t bytes = 0;              // payload bytes
  };

  // Counter changes since the last take_counts().
  struct counts {
    uint64_t out = 0;     // records emitted on the data port
    uint64_t batches = 0; // batches emitted on the data port
    int64_t unsent = 0;   // change of records not handed to every consumer
  };

  outbox() = default;
  // `is_source`: entries a source emitted are reported (source_acked) when
  // every consumer is done with them.
  outbox(const std::vector<edge_config>& edges, size_t window,
         size_t window_bytes, bool is_source);

  // Queues `batch` on `port` for its live consumers, derived from the input
  // tokens `lineage` (held in `inputs` until the entry settles).
  void emit(uint32_t port, record_batch batch,
            const std::vector<uint64_t>& lineage, input_ledger& inputs,
            node_commands& out);
  // Sends what credit allows. `starved`: upstream presses us (see
  // input_ledger::pressing), so consumers holding what we sent are told.
  // `input_done`: nothing more will be emitted, each edge gets eof once its
  // queue is empty and (for a stage) no other edge holds anything; the
  // consumers that then hold our output are told we are starved.
  void flush(bool starved, bool input_done, node_commands& out);
  // ack(tag, id) from a consumer. False when it is not for an entry that
  // consumer's incarnation has (a consumer we moved past): ignore it.
  bool ack(uint32_t tag, uint64_t id, input_ledger& inputs,
           node_commands& out);
  // received(tag, id) from a consumer (at_most_once).
  void received(uint32_t tag, uint64_t id);
  // The consumer of `tag` restarted (`connected`: the new incarnation is
  // live). False for an unknown tag.
  bool rewire(uint32_t tag, bool connected, input_ledger& inputs,
              node_commands& out);
  // The consumer of `tag` is gone for good. `consumer_unacked`: records it
  // had received and not acknowledged when it went (its unacked gauge for
  // this edge), so what we sent beyond that died in its mailbox. False when
  // unknown or dropped already.
  bool drop(uint32_t tag, bool finished, uint64_t consumer_unacked,
            input_ledger& inputs, node_commands& out);
  // The node reopened after its end (a replay arrived): every live edge
  // gets another eof later.
  void reopen();
  // Upstream is starved again: tell consumers even without new batches.
  void forget_starved_told();

  // Room for a source to produce: the smallest credit left on any data
  // edge, at most `max`.
  size_t room(size_t max) const;
  // Nothing left to send or to be acknowledged, every edge got its eof.
  bool drained() const;
  bool has_consumers(uint32_t port) const {
    return port < 2 && has_consumers_[port];
  }
  counts take_counts() {
    auto c = counts_;
    counts_ = {};
    return c;
  }

  size_t edge_count() const noexcept {
    return edges_.size();
  }
  const edge_state& edge(uint32_t tag) const {
    return edges_[tag];
  }
  size_t entries() const noexcept {
    return outs_.size();
  }
  const out_entry* find(uint64_t id) const;

private:
  void mark_sent(out_entry& entry);
  // Sends what credit allows on one edge; true if anything went out.
  bool send_queued(uint32_t tag, node_commands& out);
  // After the edge's batches: the starved word and eof, as due.
  void tell(uint32_t tag, bool sent, bool starved, bool eof,
            node_commands& out);
  // Output of ours the edge's consumer has not acknowledged yet.
  static size_t holds(const edge_state& e) {
    return !e.queue.empty() || !e.unacked.empty() ? 1 : 0;
  }
  void settle(uint64_t id, input_ledger& inputs, node_commands& out);

  std::vector<edge_state> edges_; // by reply tag
  using out_map
    = std::unordered_map<uint64_t, out_entry, std::hash<uint64_t>,
                         std::equal_to<uint64_t>,
                         pool_allocator<std::pair<const uint64_t, out_entry>>>;
  out_map outs_; // pooled nodes and lineages: no malloc per batch
  uint64_t next_out_ = 1;
  size_t window_ = 0;
  size_t window_bytes_ = 0;
  bool is_source_ = false;
  bool has_consumers_[2] = {false, false};
  counts counts_;
  std::vector<bool> sent_; // flush's scratch, kept for its capacity
};

} // namespace troupe::detail
