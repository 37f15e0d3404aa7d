// What the delivery ledger asks its node actor to do (internal, CAF-free).
//
// The ledger classes (input_ledger, outbox, worker_dispatch) decide and
// never send: each operation appends the sends and counter updates it
// decided to a node_commands buffer, in the order they must happen, and the
// node actor carries them out right after the call (before any other code
// runs, so the order relative to the node's logic is what it always was).
// The buffer is reused across messages: once warm, the record path
// allocates nothing for it.
//
// Example:
//   node_commands todo;
//   outbox.ack(tag, id, inputs, todo); // may append `ack` commands
//   for (auto& c : todo.list()) ...    // the node actor sends them
//   todo.clear();
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "troupe/record.hpp"

namespace troupe::detail {

struct node_command {
  enum class kind : uint8_t {
    // batch(port, edge, id, redelivery, batch) to the consumer of `edge`
    // (if connected); `records` more were sent to its incarnation.
    send_batch,
    send_starved, // starved to the consumer of `edge`
    send_eof,     // eof(port) to the consumer of `edge`
    // ack(tag, id) to producer incarnation `sender`; `records` leave our
    // unacknowledged count on in-port `port`.
    ack,
    received,     // received(tag, id) to producer `sender` (at_most_once)
    latency,      // a batch was handled: now - `since` into the histogram
    // `records` meant for the consumer of `edge`, a temporary node removed
    // for good, that it never receives: counted lost where they would
    // have arrived.
    lost_at,
    redelivered,  // `records` queued again for a restarted consumer
    // Every consumer is done with `batch` a source emitted: its logic may
    // forget it (node_logic::acknowledged).
    source_acked,
    // Run `batch` on worker `edge` (dispatch order `id`, input `token`).
    exec,
  };

  kind what = kind::send_batch;
  bool redelivery = false;
  uint32_t edge = 0;   // send_*, lost_at: our output edge; exec: the worker
  uint32_t port = 0;   // send_batch, send_eof: consumer's in-port; ack: ours
  uint32_t tag = 0;    // ack, received: the producer's reply tag
  uint32_t sender = 0; // ack, received: the producer incarnation
  uint32_t batch = 0;  // send_batch, source_acked, exec: see batch()
  uint64_t id = 0;     // send_batch: out id; ack, received: batch id;
                       // exec: dispatch sequence number
  uint64_t token = 0;  // exec: the input
  uint64_t records = 0;
  std::chrono::steady_clock::time_point since{};
};

class node_commands {
public:
  using kind = node_command::kind;

  bool empty() const noexcept {
    return list_.empty();
  }
  size_t size() const noexcept {
    return list_.size();
  }
  const std::vector<node_command>& list() const noexcept {
    return list_;
  }
  const node_command& operator[](size_t i) const noexcept {
    return list_[i];
  }
  // The batch a send_batch, source_acked or exec command carries; the node
  // actor may move it out.
  record_batch& batch(const node_command& c) noexcept {
    return batches_[c.batch];
  }
  // Forgets the commands, keeping the capacity.
  void clear() noexcept {
    list_.clear();
    batches_.clear();
  }

  // -- appended by the ledger classes ----------------------------------------

  void send_batch(uint32_t edge, uint32_t port, uint64_t id, bool redelivery,
                  uint64_t records, const record_batch& b) {
    auto& c = add(kind::send_batch);
    c.edge = edge;
    c.port = port;
    c.id = id;
    c.redelivery = redelivery;
    c.records = records;
    c.batch = keep(b);
  }
  void send_starved(uint32_t edge) {
    add(kind::send_starved).edge = edge;
  }
  void send_eof(uint32_t edge, uint32_t port) {
    auto& c = add(kind::send_eof);
    c.edge = edge;
    c.port = port;
  }
  void ack(uint32_t sender, uint32_t tag, uint64_t batch_id, uint32_t in_port,
           uint64_t records) {
    auto& c = add(kind::ack);
    c.sender = sender;
    c.tag = tag;
    c.id = batch_id;
    c.port = in_port;
    c.records = records;
  }
  void received(uint32_t sender, uint32_t tag, uint64_t batch_id) {
    auto& c = add(kind::received);
    c.sender = sender;
    c.tag = tag;
    c.id = batch_id;
  }
  void latency(std::chrono::steady_clock::time_point since) {
    add(kind::latency).since = since;
  }
  void lost_at(uint32_t edge, uint64_t records) {
    auto& c = add(kind::lost_at);
    c.edge = edge;
    c.records = records;
  }
  void redelivered(uint64_t records) {
    add(kind::redelivered).records = records;
  }
  void source_acked(record_batch b) {
    auto& c = add(kind::source_acked);
    c.records = b.size();
    c.batch = keep(std::move(b));
  }
  void exec(uint32_t worker, uint64_t seq, uint64_t token, bool redelivery,
            record_batch b) {
    auto& c = add(kind::exec);
    c.edge = worker;
    c.id = seq;
    c.token = token;
    c.redelivery = redelivery;
    c.records = b.size();
    c.batch = keep(std::move(b));
  }

private:
  node_command& add(kind k) {
    list_.emplace_back();
    list_.back().what = k;
    return list_.back();
  }
  uint32_t keep(record_batch b) {
    batches_.push_back(std::move(b));
    return static_cast<uint32_t>(batches_.size() - 1);
  }

  std::vector<node_command> list_;
  std::vector<record_batch> batches_;
};

} // namespace troupe::detail
