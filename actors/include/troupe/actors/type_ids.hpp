// The one place where the built-in services' message types and atoms are
// registered with CAF (the runtime's own are in troupe/type_ids.hpp).
// register_builtins() adds them to every runtime built from its registry
// (registry::add_message_types); an embedder with its own
// caf::actor_system_config calls troupe::actors::add_message_types(cfg).
//
// The block starts where troupe's ends (troupe::type_id_end) and reserves
// 200 IDs. Each protocol header (cache.hpp, worker_pool.hpp, ...) declares
// its structs with an inspect(); add them here, never in a second place.
// Atom texts must not repeat CAF's own (caf/type_id.hpp) or troupe's.
#pragma once

#include <caf/fwd.hpp>
#include <caf/type_id.hpp>

#include "troupe/type_ids.hpp"

namespace troupe::actors {

constexpr caf::type_id_t type_id_offset = ::troupe::type_id_end;
constexpr caf::type_id_t type_id_end = type_id_offset + 200;

void add_message_types(caf::actor_system_config& cfg);

} // namespace troupe::actors

namespace troupe {
struct queue_items; // queue.hpp
struct queue_stats; // queue.hpp
struct topic_stats; // topic.hpp
} // namespace troupe

CAF_BEGIN_TYPE_ID_BLOCK(troupe_actors, ::troupe::actors::type_id_offset)

  // A service's statistics (cache, worker_pool, rate_limiter): reply is the
  // service's own stats struct.
  CAF_ADD_ATOM(troupe_actors, troupe, stats_atom, "t_stats")

  // queue (queue.hpp)
  CAF_ADD_TYPE_ID(troupe_actors, (troupe::queue_items))
  CAF_ADD_TYPE_ID(troupe_actors, (troupe::queue_stats))
  CAF_ADD_ATOM(troupe_actors, troupe, queue_push_atom, "t_qpush")
  CAF_ADD_ATOM(troupe_actors, troupe, queue_pop_atom, "t_qpop")
  CAF_ADD_ATOM(troupe_actors, troupe, queue_close_atom, "t_qclose")
  CAF_ADD_ATOM(troupe_actors, troupe, queue_wake_atom, "t_qwake")
  CAF_ADD_ATOM(troupe_actors, troupe, queue_lease_atom, "t_qlease")
  CAF_ADD_ATOM(troupe_actors, troupe, queue_ack_atom, "t_qack")
  // topic (topic.hpp)
  CAF_ADD_TYPE_ID(troupe_actors, (troupe::topic_stats))
  CAF_ADD_ATOM(troupe_actors, troupe, topic_subscribe_atom, "t_tsub")
  CAF_ADD_ATOM(troupe_actors, troupe, topic_unsubscribe_atom, "t_tunsub")
  CAF_ADD_ATOM(troupe_actors, troupe, topic_publish_atom, "t_tpub")
  CAF_ADD_ATOM(troupe_actors, troupe, topic_deliver_atom, "t_tdeliver")
  // race (race.hpp): asks a loser to stop working for the sender
  CAF_ADD_ATOM(troupe_actors, troupe, cancel_atom, "t_cancel")

CAF_END_TYPE_ID_BLOCK(troupe_actors)

static_assert(caf::id_block::troupe_actors::end
                <= ::troupe::actors::type_id_end,
              "the services' type IDs outgrew their reserved range");
