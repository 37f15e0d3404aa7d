// The delivery ledger, message by message, without an actor system: the
// input ledger (what may be acknowledged upstream), the outbox (per-edge
// credit, redelivery, eof, drop, starvation), the worker dispatch and the
// node lifecycle. Each operation's commands are what the node actor would
// send; the tests read them instead.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include "node/commands.hpp"
#include "node/input_ledger.hpp"
#include "node/node_lifecycle.hpp"
#include "node/outbox.hpp"
#include "node/worker_dispatch.hpp"

using namespace troupe;
using namespace troupe::detail;
using kind = node_command::kind;

namespace {

using time_point = std::chrono::steady_clock::time_point;

// `n` records with `bytes` body bytes each, seq from `first`.
record_batch batch_of(size_t n, size_t bytes = 1, uint64_t first = 0) {
  std::vector<record> rs(n);
  for (size_t i = 0; i < n; ++i) {
    rs[i].seq = first + i;
    rs[i].body.assign(bytes, 'x');
  }
  return record_batch{std::move(rs)};
}

struct taken {
  node_command cmd;
  record_batch batch;
};

// The commands so far (with copies of their batches); clears the buffer.
std::vector<taken> take(node_commands& todo) {
  std::vector<taken> result;
  for (auto& c : todo.list()) {
    taken t{c, {}};
    if (c.what == kind::send_batch || c.what == kind::source_acked
        || c.what == kind::exec)
      t.batch = todo.batch(c);
    result.push_back(std::move(t));
  }
  todo.clear();
  return result;
}

std::vector<taken> only(const std::vector<taken>& cs, kind k) {
  std::vector<taken> result;
  for (auto& c : cs)
    if (c.cmd.what == k)
      result.push_back(c);
  return result;
}

std::vector<uint64_t> ids_of(const std::vector<taken>& cs) {
  std::vector<uint64_t> result;
  for (auto& c : cs)
    result.push_back(c.cmd.id);
  return result;
}

outbox::edge_config data_edge(uint32_t in_port = 0) {
  return {out_data_port, in_port, true, false};
}

outbox::edge_config errors_edge(uint32_t in_port = 0) {
  return {out_errors_port, in_port, true, false};
}

} // namespace

// -- input ledger ---------------------------------------------------------------

TEST_CASE("input ledger: a batch the logic is done with is acknowledged to "
          "the incarnation that sent it") {
  input_ledger in{1, 100, 1 << 20, false};
  node_commands todo;
  auto now = time_point{} + std::chrono::seconds(7);
  auto t = in.receive(0, 3, 42, 7, 5, 50, now, todo);
  CHECK(todo.empty()); // at_least_once: nothing to say on receipt
  CHECK(in.unacked_records(0) == 5);
  CHECK(in.unacked_bytes(0) == 50);
  in.open(t);
  CHECK(in.consumed() == 5);
  in.release_open(0, todo);
  auto cs = take(todo);
  REQUIRE(cs.size() == 2);
  CHECK(cs[0].cmd.what == kind::latency);
  CHECK(cs[0].cmd.since == now);
  CHECK(cs[1].cmd.what == kind::ack);
  CHECK(cs[1].cmd.sender == 7);
  CHECK(cs[1].cmd.tag == 3);
  CHECK(cs[1].cmd.id == 42);
  CHECK(cs[1].cmd.port == 0);
  CHECK(cs[1].cmd.records == 5);
  CHECK(in.unacked_records(0) == 0);
  CHECK(in.unacked_bytes(0) == 0);
  CHECK(in.empty());
}

TEST_CASE("input ledger: batches stay open while the logic holds their "
          "records, and are acknowledged in arrival order") {
  input_ledger in{1, 100, 1 << 20, false};
  node_commands todo;
  auto a = in.receive(0, 0, 1, 0, 3, 3, {}, todo);
  in.open(a);
  auto b = in.receive(0, 0, 2, 0, 2, 2, {}, todo);
  in.open(b);
  auto c = in.receive(0, 0, 3, 0, 4, 4, {}, todo);
  in.open(c);
  CHECK(in.open_tokens().size() == 3);
  // The logic holds the newest 5 records: b's 2 and c's... b ends at 5,
  // beyond the first 9 - 5 = 4 records, so only a goes.
  in.release_open(5, todo);
  CHECK(ids_of(only(take(todo), kind::ack)) == std::vector<uint64_t>{1});
  in.release_open(4, todo);
  CHECK(ids_of(only(take(todo), kind::ack)) == std::vector<uint64_t>{2});
  in.release_open(0, todo);
  CHECK(ids_of(only(take(todo), kind::ack)) == std::vector<uint64_t>{3});
  CHECK(in.open_tokens().empty());

  // Held by an output too: the logic letting go is not enough.
  auto d = in.receive(0, 0, 4, 0, 1, 1, {}, todo);
  in.open(d);
  in.hold(d);
  in.release_open(0, todo);
  auto cs = take(todo);
  CHECK(only(cs, kind::latency).size() == 1);
  CHECK(only(cs, kind::ack).empty());
  in.release(d, todo);
  CHECK(ids_of(only(take(todo), kind::ack)) == std::vector<uint64_t>{4});
  in.release(d, todo); // gone: nothing twice
  CHECK(todo.empty());
}

TEST_CASE("input ledger: release_all_open lets go of what a finished logic "
          "claims, without latency samples") {
  input_ledger in{1, 100, 1 << 20, false};
  node_commands todo;
  for (uint64_t id = 1; id <= 3; ++id)
    in.open(in.receive(0, 0, id, 0, 2, 2, {}, todo));
  in.release_all_open(todo);
  auto cs = take(todo);
  CHECK(only(cs, kind::latency).empty());
  CHECK(ids_of(only(cs, kind::ack)) == std::vector<uint64_t>{1, 2, 3});
  CHECK(in.empty());
}

TEST_CASE("input ledger: upstream presses when a port's window of records or "
          "bytes is full, or a producer starves") {
  input_ledger in{2, 10, 100, false};
  node_commands todo;
  auto a = in.receive(0, 0, 1, 0, 9, 10, {}, todo);
  CHECK_FALSE(in.pressing());
  auto b = in.receive(0, 0, 2, 0, 1, 10, {}, todo);
  CHECK(in.pressing()); // 10 records: the window
  in.release(b, todo);
  CHECK_FALSE(in.pressing());
  auto c = in.receive(1, 0, 1, 0, 1, 100, {}, todo);
  CHECK(in.pressing()); // 100 bytes on port 1
  in.release(c, todo);
  CHECK_FALSE(in.pressing());

  // A starved producer waits for us only if we hold something of its.
  in.release(a, todo);
  CHECK(in.empty());
  CHECK_FALSE(in.starve());
  CHECK_FALSE(in.pressing());
  auto d = in.receive(0, 0, 3, 0, 1, 1, {}, todo);
  auto e = in.receive(1, 0, 2, 0, 1, 1, {}, todo);
  CHECK(in.starve());
  CHECK(in.pressing());
  in.release(d, todo);
  CHECK(in.pressing()); // until everything is acknowledged
  in.release(e, todo);
  CHECK_FALSE(in.pressing());
  CHECK_FALSE(in.upstream_starved());
}

TEST_CASE("input ledger: at_most_once tells the producer on receipt and "
          "returns the credit only on release") {
  input_ledger in{1, 10, 100, true};
  node_commands todo;
  auto t = in.receive(0, 5, 9, 2, 4, 4, {}, todo);
  auto cs = take(todo);
  REQUIRE(cs.size() == 1);
  CHECK(cs[0].cmd.what == kind::received);
  CHECK(cs[0].cmd.sender == 2);
  CHECK(cs[0].cmd.tag == 5);
  CHECK(cs[0].cmd.id == 9);
  CHECK(in.unacked_records(0) == 4);
  in.release(t, todo);
  cs = take(todo);
  REQUIRE(cs.size() == 1);
  CHECK(cs[0].cmd.what == kind::ack);
  CHECK(in.unacked_records(0) == 0);
}

TEST_CASE("input ledger: ports end, and reopen when a restarted producer "
          "replays") {
  input_ledger in{2, 10, 100, false};
  node_commands todo;
  CHECK_FALSE(in.all_ended());
  in.end(0);
  CHECK_FALSE(in.all_ended());
  in.end(1);
  CHECK(in.all_ended());
  in.receive(0, 0, 1, 0, 1, 1, {}, todo);
  CHECK_FALSE(in.ended(0));
  CHECK(in.ended(1));
  CHECK_FALSE(in.all_ended());
  CHECK(input_ledger{0, 10, 100, false}.all_ended()); // a source
}

// -- outbox: credit -------------------------------------------------------------

TEST_CASE("outbox: a batch goes out only while its edge is under the window, "
          "in records and in bytes") {
  input_ledger in{1, 100, 1 << 20, false};
  node_commands todo;
  SUBCASE("records") {
    outbox o{{data_edge(2)}, 10, 1 << 20, false};
    for (int i = 0; i < 4; ++i)
      o.emit(out_data_port, batch_of(4), {}, in, todo);
    CHECK(todo.empty());
    o.flush(false, false, todo);
    auto sent = only(take(todo), kind::send_batch);
    // 0, 4 and 8 records in flight before each: under 10; 12 after.
    CHECK(ids_of(sent) == std::vector<uint64_t>{1, 2, 3});
    for (auto& s : sent) {
      CHECK(s.cmd.edge == 0);
      CHECK(s.cmd.port == 2);
      CHECK(s.cmd.records == 4);
      CHECK_FALSE(s.cmd.redelivery);
    }
    CHECK(o.edge(0).in_flight == 12);
    CHECK(o.edge(0).queued == 4);
    o.flush(false, false, todo);
    CHECK(todo.empty()); // no credit
    REQUIRE(o.ack(0, 1, in, todo));
    CHECK(o.edge(0).in_flight == 8);
    o.flush(false, false, todo);
    CHECK(ids_of(only(take(todo), kind::send_batch))
          == std::vector<uint64_t>{4});
  }
  SUBCASE("bytes") {
    outbox o{{data_edge()}, 1000, 10, false};
    for (int i = 0; i < 3; ++i)
      o.emit(out_data_port, batch_of(1, 6), {}, in, todo);
    o.flush(false, false, todo);
    CHECK(ids_of(only(take(todo), kind::send_batch))
          == std::vector<uint64_t>{1, 2});
    CHECK(o.edge(0).in_flight_bytes == 12);
    REQUIRE(o.ack(0, 2, in, todo));
    o.flush(false, false, todo);
    CHECK(ids_of(only(take(todo), kind::send_batch))
          == std::vector<uint64_t>{3});
  }
}

TEST_CASE("outbox: room for a source is the smallest credit left on any data "
          "edge") {
  input_ledger in{0, 10, 100, false};
  node_commands todo;
  outbox o{{data_edge(), data_edge(), errors_edge()}, 10, 100, true};
  CHECK(o.room(1024) == 10);
  CHECK(o.room(3) == 3);
  o.emit(out_data_port, batch_of(4), {}, in, todo);
  CHECK(o.room(1024) == 6); // queued counts
  o.flush(false, false, todo);
  take(todo);
  CHECK(o.room(1024) == 6); // now in flight
  REQUIRE(o.ack(0, 1, in, todo));
  CHECK(o.room(1024) == 6); // edge 1 still has it
  REQUIRE(o.ack(1, 1, in, todo));
  CHECK(o.room(1024) == 10);
  o.emit(out_errors_port, batch_of(9), {}, in, todo);
  CHECK(o.room(1024) == 10); // the errors edge does not pace a source
  o.emit(out_data_port, batch_of(1, 100), {}, in, todo);
  o.flush(false, false, todo);
  CHECK(o.room(1024) == 0); // a window of bytes in flight
}

TEST_CASE("outbox: out, batches and unsent are counted for the report") {
  input_ledger in{0, 10, 100, false};
  node_commands todo;
  outbox o{{data_edge(), data_edge(), errors_edge()}, 10, 100, false};
  o.emit(out_data_port, batch_of(5), {}, in, todo);
  o.emit(out_errors_port, batch_of(1), {}, in, todo);
  auto c = o.take_counts();
  CHECK(c.out == 5); // errors are not `out`
  CHECK(c.batches == 1);
  CHECK(c.unsent == 6); // a crash now would take all of it
  o.flush(false, false, todo);
  c = o.take_counts();
  CHECK(c.out == 0);
  CHECK(c.unsent == -6); // handed to every consumer
  CHECK(o.has_consumers(out_errors_port));
}

// -- outbox: acknowledgement order ----------------------------------------------

TEST_CASE("outbox: an input is acknowledged only when everything derived from "
          "it was acknowledged downstream") {
  input_ledger in{1, 100, 1 << 20, false};
  node_commands todo;
  outbox o{{data_edge(), data_edge(), errors_edge()}, 100, 1 << 20, false};
  auto a = in.receive(0, 0, 1, 0, 2, 2, {}, todo);
  auto b = in.receive(0, 0, 2, 0, 2, 2, {}, todo);
  o.emit(out_data_port, batch_of(1), {a}, in, todo);     // out 1
  o.emit(out_data_port, batch_of(2), {a, b}, in, todo);  // out 2
  o.emit(out_errors_port, batch_of(1), {b}, in, todo);   // out 3
  in.release(a, todo); // the logic is done with both
  in.release(b, todo);
  CHECK(todo.empty());
  o.flush(false, false, todo);
  take(todo);
  auto acks = [&] { return ids_of(only(take(todo), kind::ack)); };
  REQUIRE(o.ack(0, 1, in, todo));
  CHECK(acks().empty()); // edge 1 has not acknowledged out 1
  REQUIRE(o.ack(1, 1, in, todo));
  CHECK(acks().empty()); // out 2 derives from a too
  REQUIRE(o.ack(1, 2, in, todo));
  REQUIRE(o.ack(0, 2, in, todo));
  CHECK(acks() == std::vector<uint64_t>{1}); // a; b waits for out 3
  REQUIRE(o.ack(2, 3, in, todo));
  CHECK(acks() == std::vector<uint64_t>{2});
  CHECK(in.empty());
  CHECK(o.entries() == 0);
  CHECK_FALSE(o.ack(2, 3, in, todo)); // twice: ignored
}

TEST_CASE("outbox: a source's batch is handed back once every consumer is "
          "done with it, at once when there is none") {
  input_ledger in{0, 10, 100, false};
  node_commands todo;
  outbox o{{data_edge(), data_edge()}, 100, 1 << 20, true};
  o.emit(out_data_port, batch_of(3, 1, 100), {}, in, todo);
  o.flush(false, false, todo);
  take(todo);
  REQUIRE(o.ack(0, 1, in, todo));
  CHECK(todo.empty());
  REQUIRE(o.ack(1, 1, in, todo));
  auto cs = take(todo);
  REQUIRE(cs.size() == 1);
  CHECK(cs[0].cmd.what == kind::source_acked);
  CHECK(cs[0].batch.size() == 3);
  CHECK(cs[0].batch.records()[0].seq == 100);

  outbox none{{}, 100, 1 << 20, true};
  none.emit(out_data_port, batch_of(2), {}, in, todo);
  cs = take(todo);
  REQUIRE(cs.size() == 1);
  CHECK(cs[0].cmd.what == kind::source_acked);
  CHECK(none.entries() == 0);
  CHECK(none.take_counts().out == 2); // emitted all the same
}

// -- outbox: redelivery -----------------------------------------------------------

TEST_CASE("outbox: after a rewire every unacknowledged batch is sent again, "
          "oldest first, flagged, with attempt + 1") {
  input_ledger in{0, 10, 100, false};
  node_commands todo;
  outbox o{{data_edge(), data_edge(1)}, 100, 1 << 20, false};
  o.emit(out_data_port, batch_of(1), {}, in, todo);
  o.emit(out_data_port, batch_of(2), {}, in, todo);
  o.emit(out_data_port, batch_of(3), {}, in, todo);
  o.emit(out_data_port, batch_of(4), {}, in, todo);
  o.flush(false, false, todo);
  take(todo);
  o.take_counts();
  REQUIRE(o.ack(0, 2, in, todo));
  REQUIRE(o.rewire(0, true, in, todo));
  auto cs = take(todo);
  auto re = only(cs, kind::redelivered);
  REQUIRE(re.size() == 3); // newest first: 4, 3, 1 records
  CHECK(re[0].cmd.records == 4);
  CHECK(re[1].cmd.records == 3);
  CHECK(re[2].cmd.records == 1);
  CHECK(o.edge(0).in_flight == 0);
  CHECK(o.edge(0).queued == 8);
  CHECK(o.edge(0).eof_sent == false);
  // An ack from the dead incarnation is ignored.
  CHECK_FALSE(o.ack(0, 1, in, todo));
  o.flush(false, false, todo);
  auto sent = only(take(todo), kind::send_batch);
  CHECK(ids_of(sent) == std::vector<uint64_t>{1, 3, 4});
  for (auto& s : sent) {
    CHECK(s.cmd.edge == 0);
    CHECK(s.cmd.redelivery);
    for (auto& r : s.batch.records())
      CHECK(r.ctx.attempt == 2);
  }
  CHECK(o.take_counts().unsent == 0); // sent before: not unsent again
  // The other edge was not touched.
  CHECK(o.edge(1).in_flight == 10);
  CHECK(o.edge(1).queued == 0);
  // Now acknowledged by the new incarnation: all entries settle.
  for (uint64_t id : {1, 3, 4}) {
    REQUIRE(o.ack(0, id, in, todo));
    REQUIRE(o.ack(1, id, in, todo));
  }
  REQUIRE(o.ack(1, 2, in, todo));
  CHECK(o.entries() == 0);
}

TEST_CASE("outbox: a batch queued again is sent once more even when it had "
          "not gone out to the crashed consumer") {
  input_ledger in{0, 10, 100, false};
  node_commands todo;
  outbox o{{data_edge()}, 2, 1 << 20, false};
  o.emit(out_data_port, batch_of(2), {}, in, todo);
  o.emit(out_data_port, batch_of(2), {}, in, todo);
  o.flush(false, false, todo); // 1 sent, 2 waits for credit
  take(todo);
  REQUIRE(o.rewire(0, true, in, todo));
  take(todo);
  CHECK(std::vector<uint64_t>(o.edge(0).queue.begin(), o.edge(0).queue.end())
        == std::vector<uint64_t>{1, 2});
  o.flush(false, false, todo);
  auto sent = only(take(todo), kind::send_batch);
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].cmd.id == 1);
  CHECK(sent[0].cmd.redelivery);
  REQUIRE(o.ack(0, 1, in, todo));
  o.flush(false, false, todo);
  sent = only(take(todo), kind::send_batch);
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].cmd.id == 2);
  CHECK_FALSE(sent[0].cmd.redelivery); // its first time out
}

TEST_CASE("outbox: at_most_once: what a crashed consumer had received is "
          "never sent again, and its input is acknowledged") {
  input_ledger in{1, 100, 1 << 20, true};
  node_commands todo;
  outbox o{{data_edge()}, 100, 1 << 20, false};
  auto a = in.receive(0, 0, 10, 0, 1, 1, {}, todo);
  auto b = in.receive(0, 0, 11, 0, 1, 1, {}, todo);
  CHECK(only(take(todo), kind::received).size() == 2);
  o.emit(out_data_port, batch_of(1), {a}, in, todo); // out 1
  o.emit(out_data_port, batch_of(1), {b}, in, todo); // out 2
  in.release(a, todo);
  in.release(b, todo);
  o.flush(false, false, todo);
  take(todo);
  o.received(0, 1); // the consumer has out 1; out 2 died in its mailbox
  o.received(0, 99); // unknown: ignored
  REQUIRE(o.rewire(0, true, in, todo));
  auto cs = take(todo);
  CHECK(ids_of(only(cs, kind::ack)) == std::vector<uint64_t>{10});
  auto re = only(cs, kind::redelivered);
  REQUIRE(re.size() == 1);
  CHECK(re[0].cmd.records == 1);
  o.flush(false, false, todo);
  CHECK(ids_of(only(take(todo), kind::send_batch)) == std::vector<uint64_t>{2});
  CHECK(o.entries() == 1);
}

// -- outbox: eof, drop ------------------------------------------------------------

TEST_CASE("outbox: eof goes to each live consumer once its queue is empty, "
          "and again after the node reopens") {
  input_ledger in{0, 10, 100, false};
  node_commands todo;
  outbox o{{data_edge(3), {out_data_port, 0, false, false}}, 2, 1 << 20,
           false};
  o.emit(out_data_port, batch_of(2), {}, in, todo);
  o.emit(out_data_port, batch_of(2), {}, in, todo);
  o.flush(false, true, todo);
  auto cs = take(todo);
  CHECK(only(cs, kind::send_batch).size() == 1);
  CHECK(only(cs, kind::send_eof).empty()); // batch 2 still queued
  CHECK_FALSE(o.drained());
  REQUIRE(o.ack(0, 1, in, todo));
  o.flush(false, true, todo);
  cs = take(todo);
  REQUIRE(cs.size() == 2);
  CHECK(cs[0].cmd.what == kind::send_batch); // eof after the last batch
  CHECK(cs[1].cmd.what == kind::send_eof);
  CHECK(cs[1].cmd.edge == 0);
  CHECK(cs[1].cmd.port == 3);
  CHECK_FALSE(o.drained()); // batch 2 unacknowledged
  o.flush(false, true, todo);
  CHECK(todo.empty()); // once
  REQUIRE(o.ack(0, 2, in, todo));
  CHECK(o.drained());
  o.reopen();
  CHECK_FALSE(o.drained());
  o.flush(false, true, todo);
  cs = take(todo);
  REQUIRE(cs.size() == 1);
  CHECK(cs[0].cmd.what == kind::send_eof);
  CHECK(o.drained());
  // The unconnected edge (a removed consumer) was dropped from the start.
  CHECK(o.edge(1).dropped);
  CHECK(o.edge(1).eof_sent);
}

TEST_CASE("outbox: a stage sends eof only once no other edge holds its "
          "output; the consumers that hold it are told it is starved") {
  // One input batch: part to the data consumer, one record to `errors`.
  input_ledger in{1, 100, 1 << 20, false};
  node_commands todo;
  outbox o{{data_edge(), errors_edge()}, 100, 1 << 20, false};
  auto a = in.receive(0, 0, 1, 0, 4, 4, {}, todo);
  o.emit(out_data_port, batch_of(3), {a}, in, todo);
  o.emit(out_errors_port, batch_of(1, 1, 3), {a}, in, todo);
  in.release(a, todo);
  o.flush(false, true, todo); // input done: the node drains
  auto cs = take(todo);
  CHECK(only(cs, kind::send_batch).size() == 2);
  // Each edge's queue is empty, but the other edge holds output derived
  // from `a`: if we crashed now, `a` would come back and its records might
  // go another way. No eof yet; both consumers hear we are starved.
  CHECK(only(cs, kind::send_eof).empty());
  CHECK(only(cs, kind::send_starved).size() == 2);
  // The data consumer acknowledges: the errors consumer may have its eof
  // (nothing else holds output), the data consumer not yet.
  REQUIRE(o.ack(0, 1, in, todo));
  o.flush(false, true, todo);
  cs = take(todo);
  auto eofs = only(cs, kind::send_eof);
  REQUIRE(eofs.size() == 1);
  CHECK(eofs[0].cmd.edge == 1);
  CHECK(only(cs, kind::ack).empty()); // `a` is still held by edge 1
  // The errors consumer acknowledges: `a` goes upstream, and the data
  // consumer has everything, whatever a replay would make of `a`.
  REQUIRE(o.ack(1, 2, in, todo));
  o.flush(false, true, todo);
  cs = take(todo);
  CHECK(ids_of(only(cs, kind::ack)) == std::vector<uint64_t>{1});
  eofs = only(cs, kind::send_eof);
  REQUIRE(eofs.size() == 1);
  CHECK(eofs[0].cmd.edge == 0);
  CHECK(o.drained());
  // A source replays exactly what it emitted: its eof does not wait.
  outbox src{{data_edge(), data_edge()}, 100, 1 << 20, true};
  src.emit(out_data_port, batch_of(2), {}, in, todo);
  src.flush(false, true, todo);
  cs = take(todo);
  CHECK(only(cs, kind::send_eof).size() == 2);
  CHECK(only(cs, kind::send_starved).empty());
}

TEST_CASE("outbox: a finished consumer is dropped without loss; what we emit "
          "later goes nowhere") {
  input_ledger in{1, 100, 1 << 20, false};
  node_commands todo;
  outbox o{{data_edge(), data_edge()}, 4, 1 << 20, false};
  auto a = in.receive(0, 0, 1, 0, 1, 1, {}, todo);
  o.emit(out_data_port, batch_of(4), {a}, in, todo);
  o.emit(out_data_port, batch_of(4), {a}, in, todo);
  in.release(a, todo);
  o.flush(false, false, todo);
  take(todo);
  o.take_counts();
  REQUIRE(o.drop(0, true, 0, in, todo));
  auto cs = take(todo);
  CHECK(only(cs, kind::lost_at).empty());
  CHECK(only(cs, kind::ack).empty()); // edge 1 still holds both
  CHECK(o.edge(0).dropped);
  CHECK(o.edge(0).finished);
  CHECK(o.edge(0).eof_sent);
  CHECK(o.edge(0).in_flight == 0);
  CHECK(o.take_counts().unsent == 0); // entry 2 went out to edge 1 only...
  CHECK_FALSE(o.drop(0, true, 0, in, todo)); // once
  CHECK_FALSE(o.ack(0, 1, in, todo));        // late ack: ignored
  o.emit(out_data_port, batch_of(2), {}, in, todo);
  CHECK(only(take(todo), kind::lost_at).empty());
  CHECK(o.edge(0).queue.empty());
  // Edge 1 acknowledges: a is released.
  REQUIRE(o.ack(1, 1, in, todo));
  o.flush(false, false, todo);
  take(todo);
  REQUIRE(o.ack(1, 2, in, todo));
  CHECK(ids_of(only(take(todo), kind::ack)) == std::vector<uint64_t>{1});
}

TEST_CASE("outbox: a removed temporary consumer counts as lost what was "
          "queued for it and what died in its mailbox") {
  input_ledger in{1, 100, 1 << 20, false};
  node_commands todo;
  outbox o{{data_edge(), data_edge()}, 8, 1 << 20, false};
  auto a = in.receive(0, 0, 1, 0, 1, 1, {}, todo);
  for (int i = 0; i < 4; ++i)
    o.emit(out_data_port, batch_of(4), {a}, in, todo);
  in.release(a, todo);
  o.flush(false, false, todo); // 8 in flight, 8 queued per edge
  take(todo);
  o.take_counts();
  // The consumer of edge 1 had received 5 of the 8 in flight.
  REQUIRE(o.drop(1, false, 5, in, todo));
  auto lost = only(take(todo), kind::lost_at);
  REQUIRE(lost.size() == 1);
  CHECK(lost[0].cmd.edge == 1);
  CHECK(lost[0].cmd.records == 8 + 3);
  // The queued entries count as handed over (nothing unsent for edge 1).
  CHECK(o.take_counts().unsent == 0);
  // Its share of what we emit from now on is lost too.
  o.emit(out_data_port, batch_of(2), {}, in, todo);
  lost = only(take(todo), kind::lost_at);
  REQUIRE(lost.size() == 1);
  CHECK(lost[0].cmd.records == 2);
  // Edge 0 alone now decides when a is acknowledged: with the last entry
  // derived from it (4; entry 5 derives from nothing).
  for (uint64_t id = 1; id <= 5; ++id) {
    o.flush(false, false, todo);
    take(todo);
    REQUIRE(o.ack(0, id, in, todo));
    CHECK(ids_of(only(take(todo), kind::ack))
          == (id == 4 ? std::vector<uint64_t>{1} : std::vector<uint64_t>{}));
  }
  CHECK(o.entries() == 0);
}

// -- outbox: starvation -----------------------------------------------------------

TEST_CASE("outbox: a starved node tells each consumer holding its output, "
          "once per episode, after the batches it is about") {
  input_ledger in{0, 10, 100, false};
  node_commands todo;
  outbox o{{data_edge(), data_edge()}, 100, 1 << 20, false};
  o.emit(out_data_port, batch_of(1), {}, in, todo);
  o.flush(true, false, todo);
  auto cs = take(todo);
  REQUIRE(cs.size() == 4);
  CHECK(cs[0].cmd.what == kind::send_batch);
  CHECK(cs[1].cmd.what == kind::send_starved);
  CHECK(cs[1].cmd.edge == 0);
  CHECK(cs[2].cmd.what == kind::send_batch);
  CHECK(cs[3].cmd.what == kind::send_starved);
  CHECK(cs[3].cmd.edge == 1);
  o.flush(true, false, todo);
  CHECK(todo.empty()); // told already
  REQUIRE(o.ack(1, 1, in, todo));
  o.emit(out_data_port, batch_of(1), {}, in, todo);
  o.flush(true, false, todo);
  cs = take(todo);
  // Edge 0 gets the new batch and the word again; edge 1 as well (it holds
  // the new batch).
  CHECK(only(cs, kind::send_starved).size() == 2);
  o.forget_starved_told(); // a producer starved again
  o.flush(true, false, todo);
  CHECK(only(take(todo), kind::send_starved).size() == 2);
  o.flush(false, false, todo); // the episode ends
  o.flush(true, false, todo);  // a new one
  CHECK(only(take(todo), kind::send_starved).size() == 2);
  // Nothing in flight: nothing to say.
  outbox idle{{data_edge()}, 100, 1 << 20, false};
  idle.flush(true, false, todo);
  CHECK(todo.empty());
}

// -- worker dispatch --------------------------------------------------------------

TEST_CASE("worker dispatch: the least busy worker gets the next batch, at "
          "most two each") {
  worker_dispatch d{2, true};
  node_commands todo;
  CHECK(d.enabled());
  CHECK_FALSE(worker_dispatch{}.enabled());
  for (uint64_t t = 1; t <= 5; ++t)
    d.enqueue(t, t == 3, batch_of(t), t);
  CHECK(d.records() == 15);
  CHECK(d.outstanding() == 5);
  d.dispatch(todo);
  auto cs = take(todo);
  REQUIRE(cs.size() == 4);
  std::vector<uint32_t> to;
  for (size_t i = 0; i < cs.size(); ++i) {
    CHECK(cs[i].cmd.what == kind::exec);
    CHECK(cs[i].cmd.id == i);        // dispatch order
    CHECK(cs[i].cmd.token == i + 1); // arrival order
    CHECK(cs[i].batch.size() == i + 1);
    to.push_back(cs[i].cmd.edge);
  }
  CHECK(to == std::vector<uint32_t>{0, 1, 0, 1});
  CHECK(cs[2].cmd.redelivery);
  CHECK(d.busy(0) == 2);
  CHECK(d.busy(1) == 2);
  d.complete(1, 1, 2, stage_result{});
  d.dispatch(todo);
  cs = take(todo);
  REQUIRE(cs.size() == 1);
  CHECK(cs[0].cmd.edge == 1);
  CHECK(cs[0].cmd.id == 4);
  CHECK(cs[0].cmd.token == 5);
}

TEST_CASE("worker dispatch: ordered results are applied in dispatch order, "
          "whatever order they come back in") {
  worker_dispatch d{3, true};
  node_commands todo;
  for (uint64_t t = 10; t < 13; ++t)
    d.enqueue(t, false, batch_of(1), 1);
  d.dispatch(todo);
  take(todo);
  uint64_t token = 0;
  stage_result r;
  size_t n = 0;
  bool last = false;
  stage_result two;
  two.dropped = 2;
  d.complete(2, 2, 12, std::move(two));
  CHECK_FALSE(d.next_ready(token, r, n, last));
  stage_result one;
  one.created = 1;
  d.complete(1, 1, 11, std::move(one));
  CHECK_FALSE(d.next_ready(token, r, n, last)); // 0 is still out
  d.complete(0, 0, 10, stage_result{});
  std::vector<uint64_t> order;
  while (d.next_ready(token, r, n, last)) {
    order.push_back(token);
    if (token == 11)
      CHECK(r.created == 1);
    if (token == 12)
      CHECK(r.dropped == 2);
    d.applied(1);
  }
  CHECK(order == std::vector<uint64_t>{10, 11, 12});
  CHECK(d.idle());
  CHECK(d.records() == 0);
}

TEST_CASE("worker dispatch: unordered results are applied as they come") {
  worker_dispatch d{3, false};
  node_commands todo;
  for (uint64_t t = 10; t < 13; ++t)
    d.enqueue(t, false, batch_of(2), 2);
  d.dispatch(todo);
  take(todo);
  uint64_t token = 0;
  stage_result r;
  size_t n = 0;
  bool last = false;
  d.complete(2, 2, 12, stage_result{});
  REQUIRE(d.next_ready(token, r, n, last));
  CHECK(token == 12);
  d.applied(2);
  CHECK_FALSE(d.idle());
  CHECK(d.records() == 4);
  d.complete(0, 0, 10, stage_result{});
  REQUIRE(d.next_ready(token, r, n, last));
  CHECK(token == 10);
  d.applied(2);
  d.complete(1, 1, 11, stage_result{});
  REQUIRE(d.next_ready(token, r, n, last));
  d.applied(2);
  CHECK(d.idle());
}

TEST_CASE("worker dispatch: partitioned by key, each key keeps its worker "
          "and its order; the input is released with its last part") {
  worker_dispatch d{2, true, true};
  node_commands todo;
  // Two keys that hash to different workers.
  std::string a = "a", b;
  for (int i = 0; b.empty() || d.worker_of(b) == d.worker_of(a); ++i)
    b = "k" + std::to_string(i);
  auto batch = [&](std::vector<std::string> keys) {
    std::vector<record> rs;
    for (auto& k : keys) {
      record r;
      r.key = k;
      rs.push_back(std::move(r));
    }
    return record_batch{std::move(rs)};
  };
  d.enqueue(1, false, batch({a, b, a}), 3); // two parts
  d.enqueue(2, false, batch({a}), 1);
  d.enqueue(3, false, batch({a}), 1); // a's worker is full: waits
  d.enqueue(4, false, batch({b}), 1); // b's worker has room: overtakes 3
  d.dispatch(todo);
  auto cs = take(todo);
  REQUIRE(cs.size() == 4);
  auto wa = d.worker_of(a), wb = d.worker_of(b);
  CHECK(cs[0].cmd.edge == wa);
  CHECK(cs[0].batch.size() == 2); // both a's of input 1, in order
  CHECK(cs[1].cmd.edge == wb);
  CHECK(cs[2].cmd.token == 2);
  CHECK(cs[3].cmd.token == 4);
  CHECK(cs[3].cmd.edge == wb);
  uint64_t token = 0;
  stage_result r;
  size_t n = 0;
  bool last = false;
  d.complete(wb, cs[1].cmd.id, 1, stage_result{});
  REQUIRE(d.next_ready(token, r, n, last));
  CHECK(token == 1);
  CHECK(n == 1);
  CHECK_FALSE(last); // a's part of input 1 is still out
  d.applied(n);
  d.complete(wa, cs[0].cmd.id, 1, stage_result{});
  REQUIRE(d.next_ready(token, r, n, last));
  CHECK(token == 1);
  CHECK(n == 2);
  CHECK(last);
  d.applied(n);
  d.dispatch(todo); // a's worker has room again: input 3 goes
  cs = take(todo);
  REQUIRE(cs.size() == 1);
  CHECK(cs[0].cmd.token == 3);
  CHECK(cs[0].cmd.edge == wa);
}

// -- lifecycle --------------------------------------------------------------------

TEST_CASE("node lifecycle: a source produces until it is stopped or "
          "exhausted, one produce message at a time") {
  using step = node_lifecycle::produce_step;
  SUBCASE("stopped") {
    node_lifecycle l{true};
    CHECK(l.want_produce());
    CHECK_FALSE(l.want_produce()); // one pending
    CHECK(l.begin_produce() == step::run);
    l.produce_later(); // idle: a delayed produce is pending
    CHECK_FALSE(l.want_produce());
    CHECK(l.stop()); // cuts the wait short: produce now
    CHECK(l.phase() == node_phase::stopping);
    CHECK(l.begin_produce() == step::stop);
    CHECK(l.phase() == node_phase::draining);
    CHECK(l.input_done());
    CHECK(l.begin_produce() == step::skip); // the delayed one, late
    CHECK_FALSE(l.want_produce());
    CHECK_FALSE(l.stop());
    CHECK_FALSE(l.quit(false));
    CHECK(l.quit(true));
    CHECK(l.phase() == node_phase::done);
    CHECK_FALSE(l.quit(true)); // once
  }
  SUBCASE("exhausted") {
    node_lifecycle l{true};
    CHECK(l.want_produce());
    CHECK(l.begin_produce() == step::run);
    l.exhausted();
    CHECK(l.phase() == node_phase::draining);
    CHECK_FALSE(l.want_produce());
    CHECK_FALSE(l.may_finish(true, true)); // sources do not finish()
  }
}

TEST_CASE("node lifecycle: a stage finishes once, drains, and runs again when "
          "a restarted producer replays") {
  node_lifecycle l{false};
  CHECK_FALSE(l.stop()); // stages ignore stop
  CHECK(l.phase() == node_phase::running);
  CHECK_FALSE(l.may_finish(false, true));
  CHECK_FALSE(l.may_finish(true, false)); // workers busy
  CHECK(l.may_finish(true, true));
  CHECK(l.begin_finish());
  CHECK(l.phase() == node_phase::finishing);
  CHECK_FALSE(l.begin_finish()); // finish() runs once
  CHECK(l.may_finish(true, true)); // ticks drain what it holds
  CHECK_FALSE(l.input_done());
  CHECK_FALSE(l.quit(true)); // not before draining
  l.finished();
  CHECK(l.phase() == node_phase::draining);
  CHECK_FALSE(l.may_finish(true, true));
  CHECK(l.reopen()); // a replay
  CHECK(l.phase() == node_phase::running);
  CHECK_FALSE(l.reopen());
  CHECK(l.begin_finish()); // finish() again after the replay
  CHECK(l.reopen());       // from finishing too
  CHECK(l.phase() == node_phase::running);
}

TEST_CASE("node lifecycle: one tick timer at a time, none once input is "
          "done") {
  node_lifecycle l{false};
  CHECK_FALSE(l.tick()); // the first self-tick: not armed, no logic tick
  CHECK_FALSE(l.arm_tick(false)); // no interval
  CHECK(l.arm_tick(true));
  CHECK_FALSE(l.arm_tick(true)); // armed already
  CHECK(l.tick());
  CHECK(l.arm_tick(true));
  l.begin_finish();
  l.finished();
  CHECK_FALSE(l.tick()); // fired after the end: the logic does not tick
  CHECK_FALSE(l.arm_tick(true));
  CHECK(std::string{to_string(node_phase::draining)} == "draining");
}
