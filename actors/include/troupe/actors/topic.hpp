// The `topic` service's protocol (the seed's CopyOnWriteList used as a
// subscriber list): publish/subscribe of record batches.
//
// Contract:
//   subscribe(subscriber) -> uint64_t subscribers now. Idempotent. The topic
//     monitors the subscriber: a dead one is dropped (stats.removed_dead).
//   unsubscribe(subscriber) -> uint64_t subscribers now. Unknown: no-op.
//   publish(batch) -> uint64_t subscribers it was delivered to. Each
//     subscriber gets deliver(topic, batch) (the batch's storage is shared,
//     not copied). A publish goes to the subscribers of that moment (the
//     actor handles one message at a time: a subscribe or unsubscribe is
//     before or after a publish, never half-way through it); a subscriber
//     that unsubscribes afterwards still gets what was already sent to it.
//   stats() -> topic_stats.
// Bounded (credit per subscriber): a delivery is a request the subscriber
// answers when it handled the batch; a subscriber with `max_pending`
// deliveries unanswered gets no more until it answers: later publishes skip
// it and count the batch in stats.dropped (drop-newest for slow
// subscribers). So a slow subscriber costs at most max_pending batches in
// its mailbox, and a fast publisher is never held back. A delivery not
// answered within `deliver_timeout` is given up (stats.timed_out) and its
// credit returns.
//
// Subscribers are actors speaking topic_subscriber_actor (any actor with a
// handler for deliver(std::string, record_batch) qualifies; cast a dynamically
// typed actor with caf::actor_cast).
//
// From YAML:
//   resources: { events: { type: topic, max_pending: 16 } }
//   nodes:
//     pub: { type: topic, topic: events, inputs: [up] }   # sink: publishes
//
// Example (a C++ subscriber):
//   auto sub = sys.spawn([](troupe::topic_subscriber_actor::pointer) ->
//       troupe::topic_subscriber_actor::behavior_type {
//     return {[](troupe::topic_deliver_atom, const std::string& topic,
//                const troupe::record_batch& b) { ... }};
//   });
//   self->request(rt.resource<troupe::topic_actor>("events"), 5s,
//                 troupe::topic_subscribe_atom_v, sub);
#pragma once

#include <cstdint>
#include <string>

#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "troupe/actors/type_ids.hpp"
#include "troupe/record.hpp"
#include "troupe/units.hpp"
#include "troupe/waiting.hpp"

namespace troupe {

// The subscriber side: answer each delivery once the batch is handled (that
// answer is the topic's credit back).
using topic_subscriber_actor = caf::typed_actor<
  caf::reacts_to<topic_deliver_atom, std::string, record_batch>>;

struct topic_stats {
  uint64_t subscribers = 0;
  uint64_t published = 0;    // batches published
  uint64_t delivered = 0;    // deliveries sent (batch x subscriber)
  uint64_t dropped = 0;      // deliveries skipped: the subscriber had no credit
  uint64_t timed_out = 0;    // deliveries unanswered within deliver_timeout
  uint64_t removed_dead = 0; // subscribers dropped because they died
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, topic_stats& x) {
  return f(caf::meta::type_name("troupe.topic_stats"), x.subscribers,
           x.published, x.delivered, x.dropped, x.timed_out, x.removed_dead);
}

using topic_actor = caf::typed_actor<
  caf::replies_to<topic_subscribe_atom, topic_subscriber_actor>::with<uint64_t>,
  caf::replies_to<topic_unsubscribe_atom,
                  topic_subscriber_actor>::with<uint64_t>,
  caf::replies_to<topic_publish_atom, record_batch>::with<uint64_t>,
  caf::replies_to<stats_atom>::with<topic_stats>>;

// The YAML parameters, for embedders spawning a topic themselves.
struct topic_config {
  std::string name = "topic";   // sent with each delivery
  uint64_t max_pending = 16;    // unanswered deliveries per subscriber (>= 1)
  uint64_t max_subscribers = 4096; // more subscribe requests are refused
  duration deliver_timeout = std::chrono::seconds(30);
};

// Spawns a topic. Throws std::invalid_argument on max_pending 0.
topic_actor spawn_topic(caf::actor_system& sys, const topic_config& cfg);

// What a node's logic sees of a topic resource (`topic: NAME`), CAF-free.
class topic_client : public slot_client {
public:
  // The value is the number of subscribers the batch went to.
  virtual void publish(record_batch batch, completion<uint64_t> done) = 0;
};

} // namespace troupe
