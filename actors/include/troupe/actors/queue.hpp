// The `queue` service's protocol (the seed's AsyncQueue): a bounded FIFO of
// records between producers and consumers that never blocks a thread.
//
// The actor is the lock. push(records, wait) answers once the records are in
// (a full queue delays the answer: backpressure to the producer, never a
// growing buffer); pop(max, wait) answers once at least one record is there
// (a consumer asking an empty queue waits); close() ends the stream.
//
// Contract (what it answers, what it never answers):
//   push(batch, wait) -> uint64_t accepted (the batch's size). The whole batch
//     goes in at once, in order, when capacity allows. Full: the producer
//     waits up to `wait` (clamped to the queue's max_wait) in FIFO order
//     among waiting producers, then gets errc::timeout. More than
//     max_waiting_producers already waiting, a batch larger than the
//     capacity, or a closed queue: errc::refused at once. wait 0: try_push.
//   push(record, wait): the same for one record.
//   pop(max, wait) -> queue_items: 1..max records in FIFO order. Empty: the
//     consumer waits up to `wait` (clamped), FIFO among waiting consumers;
//     when the wait ends with nothing, the reply is an EMPTY queue_items
//     (closed = false): "nothing yet, ask again" (not an error). Closed and
//     drained: closed = true with no records, at once, for every pop. More
//     than max_waiting_consumers already waiting: errc::refused.
//   lease(max, wait) -> queue_items with a `lease` id: a pop whose records
//     stay the queue's until ack(lease) says the popper has them safe. If the
//     popper dies first (the queue monitors it), they go back to the front
//     of the queue, in order (stats.requeued): a consumer crashing with a
//     reply in flight loses nothing. Leased records count toward the
//     capacity. The queue source pops this way.
//   ack(lease): the leased records are the popper's now.
//   close() -> uint64_t records still queued. Later pushes are refused;
//     waiting producers get errc::refused; consumers drain what is queued,
//     then get closed = true. Closing twice is fine.
//   stats() -> queue_stats.
// Memory: at most `capacity` records plus the waiting lists (both capped).
// Records are held in the actor: a crash of the queue loses them (it is not
// supervised by a graph; a graph's queue source replays what it popped and
// was not acknowledged, see below).
//
// Ask with a request timeout longer than `wait`, or the request times out
// first (the queue then still delivers: a push may have been accepted).
//
// From YAML:
//   resources: { jobs: { type: queue, capacity: 1000 }, done: { type: queue } }
//   nodes:
//     in:   { type: queue, queue: jobs }                 # source: pops until closed
//     up:   { type: map, fn: upper, inputs: [in] }
//     out:  { type: queue, queue: done, inputs: [up] }   # sink: pushes, closes at end
//
// Example (an embedder feeding a long-running graph, by typed handle):
//   rt.add_resource({"jobs", "queue"});
//   auto q = rt.resource<troupe::queue_actor>("jobs");
//   self->request(q, 10s, troupe::queue_push_atom_v, batch, caf::timespan{5s})
//     .then([](uint64_t accepted) {...}, [](caf::error& e) {...});
#pragma once

#include <cstdint>
#include <string>

#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/timespan.hpp>
#include <caf/typed_actor.hpp>

#include "troupe/actors/type_ids.hpp"
#include "troupe/record.hpp"
#include "troupe/units.hpp"
#include "troupe/waiting.hpp"

namespace troupe {

// What pop answers: records (1..max), none (the wait ended: ask again), or
// none with `closed` (the queue was closed and is drained: end of stream).
struct queue_items {
  record_batch records;
  bool closed = false;
  uint64_t lease = 0; // lease(): ack this; 0 for a plain pop or no records
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, queue_items& x) {
  return f(caf::meta::type_name("troupe.queue_items"), x.records, x.closed,
           x.lease);
}

struct queue_stats {
  uint64_t size = 0;              // records queued now
  uint64_t capacity = 0;
  uint64_t pushed = 0;            // records accepted
  uint64_t popped = 0;            // records handed to consumers
  uint64_t waiting_producers = 0; // pushes waiting for room now
  uint64_t waiting_consumers = 0; // pops waiting for records now
  uint64_t refused = 0;           // pushes and pops refused
  uint64_t timed_out = 0;         // pushes whose wait ended (pops: empty replies)
  uint64_t leased = 0;            // records leased and not acknowledged now
  uint64_t requeued = 0;          // leased records returned: the popper died
  bool closed = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, queue_stats& x) {
  return f(caf::meta::type_name("troupe.queue_stats"), x.size, x.capacity,
           x.pushed, x.popped, x.waiting_producers, x.waiting_consumers,
           x.refused, x.timed_out, x.leased, x.requeued, x.closed);
}

using queue_actor = caf::typed_actor<
  caf::replies_to<queue_push_atom, record_batch, caf::timespan>::with<uint64_t>,
  caf::replies_to<queue_push_atom, record, caf::timespan>::with<uint64_t>,
  caf::replies_to<queue_pop_atom, uint64_t, caf::timespan>::with<queue_items>,
  caf::replies_to<queue_lease_atom, uint64_t, caf::timespan>::with<queue_items>,
  caf::reacts_to<queue_ack_atom, uint64_t>,
  caf::replies_to<queue_close_atom>::with<uint64_t>,
  caf::replies_to<stats_atom>::with<queue_stats>,
  // Internal: the queue's own timer for a waiter's deadline (its id).
  caf::reacts_to<queue_wake_atom, uint64_t>>;

// The YAML parameters, for embedders spawning a queue themselves.
struct queue_config {
  uint64_t capacity = 1000;              // records queued or leased at most (>= 1)
  uint64_t max_waiting_producers = 1024; // pushes waiting for room at most
  uint64_t max_waiting_consumers = 1024; // pops waiting for records at most
  duration max_wait = std::chrono::seconds(60); // a push/pop waits at most this
};

// Spawns a queue (unsupervised: stop it with caf::exit_reason::user_shutdown
// or let its last handle go). Throws std::invalid_argument on capacity 0.
queue_actor spawn_queue(caf::actor_system& sys, const queue_config& cfg);

// What a node's logic sees of a queue resource (`queue: NAME`), CAF-free:
// calls->client<queue_client>("queue"). Completions run on the node's thread.
class queue_client : public slot_client {
public:
  // Up to `max` records; waits at most `wait` (clamped below the node's call
  // timeout) for the first; an empty, unclosed reply means "ask again".
  // Leased: acknowledged once `done` returned, so records whose node died
  // before its completion ran go back to the queue.
  virtual void pop(size_t max, duration wait, completion<queue_items> done) = 0;
  // Pushes a batch, waiting at most `wait` for room (clamped likewise);
  // the value is the number accepted.
  virtual void push(record_batch batch, duration wait,
                    completion<uint64_t> done) = 0;
  // Closes the queue; the value is what was still queued.
  virtual void close(completion<uint64_t> done) = 0;
};

} // namespace troupe
