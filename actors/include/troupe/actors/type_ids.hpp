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

#include <vector>

#include "troupe/type_ids.hpp"

// The structs below are defined in their protocol headers.
namespace troupe {
struct cache_stats;         // cache.hpp
struct cache_value;         // cache.hpp
struct cache_answer;        // cache.hpp
struct cache_lookup_result; // cache.hpp
struct pool_task;           // worker_pool.hpp
struct pool_result;         // worker_pool.hpp
struct pool_stats;          // worker_pool.hpp
struct limiter_stats;       // rate_limiter.hpp
struct counter_keys;        // counter.hpp
struct once_init;           // once.hpp
struct once_stats;          // once.hpp
struct queue_items;         // queue.hpp
struct queue_stats;         // queue.hpp
struct topic_stats;         // topic.hpp
} // namespace troupe

namespace troupe::actors {

constexpr caf::type_id_t type_id_offset = ::troupe::type_id_end;
constexpr caf::type_id_t type_id_end = type_id_offset + 200;

void add_message_types(caf::actor_system_config& cfg);

} // namespace troupe::actors

CAF_BEGIN_TYPE_ID_BLOCK(troupe_actors, ::troupe::actors::type_id_offset)

  // A service's statistics (cache, worker_pool, rate_limiter): reply is the
  // service's own stats struct.
  CAF_ADD_ATOM(troupe_actors, troupe, stats_atom, "t_stats")

  // cache (troupe/actors/cache.hpp)
  CAF_ADD_TYPE_ID(troupe_actors, (troupe::cache_stats))
  CAF_ADD_TYPE_ID(troupe_actors, (troupe::cache_value))
  CAF_ADD_TYPE_ID(troupe_actors, (troupe::cache_answer))
  CAF_ADD_TYPE_ID(troupe_actors, (troupe::cache_lookup_result))
  CAF_ADD_TYPE_ID(troupe_actors, (std::vector<troupe::cache_lookup_result>))
  CAF_ADD_ATOM(troupe_actors, troupe, put_atom, "t_put")
  CAF_ADD_ATOM(troupe_actors, troupe, erase_atom, "t_erase")
  CAF_ADD_ATOM(troupe_actors, troupe, lookup_atom, "t_lookup")
  CAF_ADD_ATOM(troupe_actors, troupe, await_atom, "t_await")
  CAF_ADD_ATOM(troupe_actors, troupe, fulfil_atom, "t_fulfil")
  CAF_ADD_ATOM(troupe_actors, troupe, abandon_atom, "t_abandon")
  // internal to actors/cache/: a router's lookup on a caller's behalf, a
  // lease's timer
  CAF_ADD_ATOM(troupe_actors, troupe, lookup_as_atom, "t_lookupas")
  CAF_ADD_ATOM(troupe_actors, troupe, lease_timeout_atom, "t_leaseto")
  // worker_pool: the protocol (submit, replies) and its workers' messages.
  CAF_ADD_TYPE_ID(troupe_actors, (troupe::pool_task))
  CAF_ADD_TYPE_ID(troupe_actors, (troupe::pool_result))
  CAF_ADD_TYPE_ID(troupe_actors, (troupe::pool_stats))
  CAF_ADD_ATOM(troupe_actors, troupe, pool_submit_atom, "t_submit")
  CAF_ADD_ATOM(troupe_actors, troupe, pool_run_atom, "t_prun")
  CAF_ADD_ATOM(troupe_actors, troupe, pool_done_atom, "t_pdone")
  CAF_ADD_ATOM(troupe_actors, troupe, pool_tick_atom, "t_ptick")
  // rate_limiter (rate_limiter.hpp): acquire(key) -> permit, release(permit),
  // and its own timers.
  CAF_ADD_ATOM(troupe_actors, troupe, acquire_atom, "t_acquire")
  CAF_ADD_ATOM(troupe_actors, troupe, release_atom, "t_release")
  CAF_ADD_ATOM(troupe_actors, troupe, limiter_wake_atom, "t_lim_wake")
  CAF_ADD_ATOM(troupe_actors, troupe, limiter_expire_atom, "t_lim_exp")
  CAF_ADD_ATOM(troupe_actors, troupe, limiter_sweep_atom, "t_lim_swp")
  CAF_ADD_TYPE_ID(troupe_actors, (troupe::limiter_stats))

  // counter (counter.hpp): reset, per-key counters.
  CAF_ADD_ATOM(troupe_actors, troupe, reset_atom, "t_reset")
  CAF_ADD_ATOM(troupe_actors, troupe, keys_atom, "t_keys")
  CAF_ADD_TYPE_ID(troupe_actors, (troupe::counter_keys))

  // once (once.hpp): get / do(init) -> value, and its internal messages.
  CAF_ADD_ATOM(troupe_actors, troupe, once_do_atom, "t_once_do")
  CAF_ADD_ATOM(troupe_actors, troupe, once_done_atom, "t_once_fin")
  CAF_ADD_ATOM(troupe_actors, troupe, once_timeout_atom, "t_once_to")
  CAF_ADD_TYPE_ID(troupe_actors, (troupe::once_init))
  CAF_ADD_TYPE_ID(troupe_actors, (troupe::once_stats))
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
