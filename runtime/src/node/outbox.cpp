#include "outbox.hpp"

#include <algorithm>

namespace troupe::detail {

outbox::outbox(const std::vector<edge_config>& edges, size_t window,
               size_t window_bytes, bool is_source)
  : window_(window), window_bytes_(window_bytes), is_source_(is_source) {
  edges_.reserve(edges.size());
  for (auto& c : edges) {
    edge_state e;
    e.port = c.port;
    e.in_port = c.in_port;
    e.finished = c.finished;
    e.dropped = !c.connected || c.finished; // removed, or finished
    e.connected = c.connected;
    e.eof_sent = e.dropped;
    if (c.port < 2)
      has_consumers_[c.port] = true;
    edges_.push_back(std::move(e));
  }
}

void outbox::emit(uint32_t port, record_batch batch,
                  const std::vector<uint64_t>& lineage, input_ledger& inputs,
                  node_commands& out) {
  auto n = batch.size();
  if (n == 0)
    return;
  size_t consumers = 0;
  for (size_t tag = 0; tag < edges_.size(); ++tag) {
    auto& e = edges_[tag];
    if (e.port != port)
      continue;
    consumers += !e.dropped;
    if (e.dropped && !e.finished) // its share would have gone to a removed node
      out.lost_at(static_cast<uint32_t>(tag), n);
  }
  if (port == out_data_port) {
    counts_.out += n;
    counts_.batches += 1;
  }
  if (consumers == 0) {
    // Nobody will acknowledge it (finished or removed consumers, or none):
    // a source may forget it now.
    if (is_source_ && port == out_data_port)
      out.source_acked(std::move(batch));
    return;
  }
  auto id = next_out_++;
  auto bytes = batch.payload_bytes();
  auto& entry
    = outs_
        .emplace(id, out_entry{std::move(batch),
                               {lineage.begin(), lineage.end(),
                                outs_.get_allocator()},
                               0, 0, bytes})
        .first->second;
  for (auto t : lineage)
    inputs.hold(t);
  for (auto& e : edges_) {
    if (e.port != port || e.dropped)
      continue;
    ++entry.pending;
    e.queue.push_back(id);
    e.queued += n;
  }
  entry.unsent = entry.pending;
  counts_.unsent += static_cast<int64_t>(n);
}

// The entry went out on one more edge (or that edge is gone).
void outbox::mark_sent(out_entry& entry) {
  if (entry.unsent > 0 && --entry.unsent == 0)
    counts_.unsent -= static_cast<int64_t>(entry.batch.size());
}

bool outbox::send_queued(uint32_t tag, node_commands& out) {
  auto& e = edges_[tag];
  bool sent = false;
  while (!e.queue.empty() && e.in_flight < window_
         && e.in_flight_bytes < window_bytes_) {
    auto id = e.queue.front();
    e.queue.pop_front();
    auto i = outs_.find(id);
    if (i == outs_.end())
      continue;
    auto n = i->second.batch.size();
    e.queued -= n;
    e.in_flight += n;
    e.in_flight_bytes += i->second.bytes;
    e.unacked.emplace(id, n);
    bool redelivery = e.resent.erase(id) > 0;
    if (!redelivery)
      mark_sent(i->second);
    out.send_batch(tag, e.in_port, id, redelivery, n, i->second.batch);
    sent = true;
  }
  return sent;
}

void outbox::tell(uint32_t tag, bool sent, bool starved, bool eof,
                  node_commands& out) {
  auto& e = edges_[tag];
  // While we are starved, a consumer holding what we sent may be what
  // pins our input: tell it, after the batches it is about.
  if (!starved) {
    e.starved_told = false;
  } else if ((sent || !e.starved_told) && e.in_flight > 0 && e.connected
             && !e.dropped) {
    e.starved_told = true;
    out.send_starved(tag);
  }
  if (eof && e.queue.empty() && !e.eof_sent) {
    e.eof_sent = true;
    if (e.connected)
      out.send_eof(tag, e.in_port);
  }
}

void outbox::flush(bool starved, bool input_done, node_commands& out) {
  auto n = static_cast<uint32_t>(edges_.size());
  if (!input_done || is_source_) {
    // A source replays exactly what it emitted, so its eof needs no wait.
    for (uint32_t tag = 0; tag < n; ++tag)
      tell(tag, send_queued(tag, out), starved, input_done, out);
    return;
  }
  // A stage that will make nothing more. Its eof tells a consumer it has
  // everything, and the consumer may then finish for good. But while
  // another edge still holds output of ours, the inputs it derives from are
  // unacknowledged: if we crash, they come back, and their records may take
  // another way this time (a record that failed to `errors` now passes):
  // what we would then owe a finished consumer goes nowhere. So a consumer
  // gets eof only once no other edge holds anything; those that wait are
  // told we are starved, so a consumer holding our output until its input
  // ends (a filling batch) lets go and none waits for another.
  sent_.assign(n, false);
  for (uint32_t tag = 0; tag < n; ++tag)
    sent_[tag] = send_queued(tag, out);
  size_t holding = 0;
  for (auto& e : edges_)
    holding += holds(e);
  bool waiting = false;
  for (auto& e : edges_)
    if (!e.eof_sent && e.queue.empty() && holding > holds(e))
      waiting = true;
  for (uint32_t tag = 0; tag < n; ++tag)
    tell(tag, sent_[tag], starved || waiting, holding <= holds(edges_[tag]),
         out);
}

// One consumer is done with output entry `id` (acknowledged, or gone for
// good). When none is left, the inputs it derives from are released.
void outbox::settle(uint64_t id, input_ledger& inputs, node_commands& out) {
  auto o = outs_.find(id);
  if (o == outs_.end() || --o->second.pending > 0)
    return;
  if (is_source_)
    out.source_acked(std::move(o->second.batch));
  auto lineage = std::move(o->second.lineage);
  outs_.erase(o);
  for (auto t : lineage)
    inputs.release(t, out);
}

bool outbox::ack(uint32_t tag, uint64_t id, input_ledger& inputs,
                 node_commands& out) {
  if (tag >= edges_.size())
    return false;
  auto& e = edges_[tag];
  auto u = e.unacked.find(id);
  if (u == e.unacked.end())
    return false; // from a consumer incarnation we moved past
  e.in_flight -= u->second;
  if (auto o = outs_.find(id); o != outs_.end())
    e.in_flight_bytes -= o->second.bytes;
  e.unacked.erase(u);
  e.received.erase(id);
  settle(id, inputs, out);
  return true;
}

void outbox::received(uint32_t tag, uint64_t id) {
  if (tag < edges_.size() && edges_[tag].unacked.count(id))
    edges_[tag].received.insert(id);
}

bool outbox::rewire(uint32_t tag, bool connected, input_ledger& inputs,
                    node_commands& out) {
  if (tag >= edges_.size())
    return false;
  auto& e = edges_[tag];
  e.connected = connected;
  e.in_flight = 0;
  e.in_flight_bytes = 0;
  e.eof_sent = false;
  auto unacked = std::move(e.unacked);
  e.unacked.clear();
  auto received = std::move(e.received);
  e.received.clear();
  // Newest first, each to the front: the queue then starts with the oldest.
  for (auto i = unacked.rbegin(); i != unacked.rend(); ++i) {
    if (received.count(i->first)) {
      // at_most_once: the dead consumer had it; its supervisor counted what
      // it held as lost. Forget it here.
      settle(i->first, inputs, out);
      continue;
    }
    auto o = outs_.find(i->first);
    if (o == outs_.end())
      continue;
    for (auto& r : o->second.batch.mutable_records())
      ++r.ctx.attempt;
    out.redelivered(i->second);
    e.resent.insert(i->first);
    e.queue.push_front(i->first);
    e.queued += i->second;
  }
  return true;
}

bool outbox::drop(uint32_t tag, bool finished, uint64_t consumer_unacked,
                  input_ledger& inputs, node_commands& out) {
  if (tag >= edges_.size() || edges_[tag].dropped)
    return false;
  auto& e = edges_[tag];
  if (!finished) {
    // Sent but never received (it died in the removed node's mailbox), and
    // queued for it but never sent.
    auto lost = e.queued
                + (e.in_flight > consumer_unacked ? e.in_flight - consumer_unacked
                                                  : 0);
    if (lost > 0)
      out.lost_at(tag, lost);
  }
  for (auto id : e.queue)
    if (auto o = outs_.find(id); o != outs_.end() && !e.resent.count(id))
      mark_sent(o->second);
  std::vector<uint64_t> ids(e.queue.begin(), e.queue.end());
  for (auto& [id, _] : e.unacked)
    ids.push_back(id);
  e.resent.clear();
  e.queue.clear();
  e.unacked.clear();
  e.received.clear();
  e.queued = e.in_flight = e.in_flight_bytes = 0;
  e.dropped = true;
  e.finished = finished;
  e.eof_sent = true;
  e.connected = false;
  for (auto id : ids)
    settle(id, inputs, out);
  return true;
}

void outbox::reopen() {
  for (auto& e : edges_)
    if (!e.dropped)
      e.eof_sent = false;
}

void outbox::forget_starved_told() {
  for (auto& e : edges_)
    e.starved_told = false;
}

size_t outbox::room(size_t max) const {
  size_t room = max;
  for (auto& e : edges_) {
    if (e.port != out_data_port)
      continue;
    auto used = e.in_flight + e.queued;
    room = std::min(room, used >= window_ ? 0 : window_ - used);
    if (e.in_flight_bytes >= window_bytes_)
      room = 0;
  }
  return room;
}

bool outbox::drained() const {
  if (!outs_.empty())
    return false;
  for (auto& e : edges_)
    if (!e.eof_sent || !e.queue.empty())
      return false;
  return true;
}

const outbox::out_entry* outbox::find(uint64_t id) const {
  auto i = outs_.find(id);
  return i == outs_.end() ? nullptr : &i->second;
}

} // namespace troupe::detail
