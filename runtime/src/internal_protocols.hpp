// The protocols troupe's own actors speak among themselves (internal: not
// installed, not part of the embedding API). The public protocols are in
// troupe/protocols.hpp; the message types of both are registered in one
// place, troupe/type_ids.hpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/actor_control_block.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "troupe/protocols.hpp"
#include "troupe/record.hpp"
#include "troupe/type_ids.hpp"
#include "batch_train.hpp"
#include "stage_result.hpp"

namespace troupe {

// The record-stream protocol every pipeline node speaks.
//
// Data flows with credit: a producer keeps every batch it sent until the
// consumer acknowledges it, and never has more than `runtime.window` records
// unacknowledged per consumer, so no mailbox on the data path grows without
// bound. A consumer acknowledges a batch only when it no longer needs it
// redelivered: when everything derived from it was acknowledged downstream,
// or written by a sink. When a consumer crashes, its supervisor hands the
// producer the replacement (`rewire`) and the producer sends every
// unacknowledged batch again.
using node_actor = caf::typed_actor<
  // batch(in_port, reply_tag, batch_id, redelivery, records): data from an
  // upstream node; acknowledge with ack(reply_tag, first_id, count) to the
  // sender: batches first_id .. first_id + count - 1 (acknowledgements
  // decided together travel as one message).
  // `redelivery` marks a batch sent again after a crash: the consumer then
  // runs it record by record, so a record that crashes a node fails alone.
  caf::reacts_to<batch_atom, uint32_t, uint32_t, uint64_t, bool, record_batch>,
  // batch(in_port, reply_tag, train): several batches at once, each taken
  // (and acknowledged) as if it came alone (batch_train.hpp).
  caf::reacts_to<batch_atom, uint32_t, uint32_t, batch_train>,
  caf::reacts_to<ack_atom, uint32_t, uint64_t, uint32_t>,
  // received(reply_tag, batch_id): at_most_once only, the consumer has the
  // batch; after a crash of it, the producer does not send it again. Credit
  // still returns only with ack, so backpressure holds.
  caf::reacts_to<received_atom, uint32_t, uint64_t>,
  // eof(in_port): the sender has sent everything on this input.
  caf::reacts_to<eof_atom, uint32_t>,
  // close(in_port): from the supervisor, the upstream has finished and left.
  caf::reacts_to<close_atom, uint32_t>,
  // rewire(reply_tag, consumer): from the supervisor, a consumer restarted.
  caf::reacts_to<rewire_atom, uint32_t, caf::strong_actor_ptr>,
  // drop(reply_tag, finished): from the supervisor, a consumer is gone for
  // good. `finished`: it ended normally after receiving everything sent to
  // it, so what this producer emits from now on (a replay after a restart)
  // duplicates what it had. Otherwise a temporary consumer was removed
  // after a crash: what it never received is counted lost.
  caf::reacts_to<drop_atom, uint32_t, bool>,
  // starved: from a producer that holds a whole window of its own input
  // unacknowledged, all of it waiting for us: a consumer holding records
  // lets go of what it can (node_logic::starved), or passes the word on.
  caf::reacts_to<starved_atom>,
  // stop: sources stop producing; everything in flight drains.
  caf::reacts_to<stop_atom>,
  // Self-messages: timers, source pacing (produce(n): the end of an idle
  // wait, see node_lifecycle::produce_later), and a waiting stage's timers
  // (wake(id): node_calls::after).
  caf::reacts_to<tick_atom>, caf::reacts_to<produce_atom>,
  caf::reacts_to<produce_atom, uint64_t>,
  caf::reacts_to<wake_atom, uint64_t>,
  // exec(worker, seq, result): a worker's answer to exec (below).
  // timeout: the watchdog over the workers (no answer within
  // runtime.request_timeout crashes the node).
  caf::reacts_to<exec_atom, uint32_t, uint64_t, stage_result>,
  caf::reacts_to<timeout_atom>>;

// A map/filter worker: runs a node's logic on one batch, off the node actor.
// exec(seq, redelivery, records) from its node, which it answers with
// exec(worker, seq, result). A plain message both ways, not a request: a
// request arms a timer in CAF's clock thread, and waking that thread twice
// per batch cost more than the batch's work. The node's one watchdog timer
// bounds the wait instead (node_actor.cpp).
using worker_actor = caf::typed_actor<
  caf::reacts_to<exec_atom, uint64_t, bool, record_batch>>;

// The graph supervisor: spawns, watches and restarts the nodes of one run;
// stop drains the graph. Its timers are internal to it, not part of this
// interface; embedders stop a run through graph_run.
using graph_supervisor_actor = caf::typed_actor<caf::reacts_to<stop_atom>>;

} // namespace troupe
