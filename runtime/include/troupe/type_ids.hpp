// The one place where troupe registers message types and atoms with CAF; a
// type missing here fails only at run time, so add new protocol types here
// and nowhere else.
//
// troupe::runtime registers these types on its own actor system itself; an
// embedder does nothing. Only an embedder who builds its own
// caf::actor_system_config (e.g. for spawn_supervisor, supervisor.hpp) calls
// troupe::add_message_types(cfg), beside its own blocks. It is a function,
// not cfg.add_message_types<caf::id_block::troupe>(), because the block holds
// internal types (stage_result, batch_train) that are declared here but defined only
// inside the runtime.
//
// ID ranges: troupe's block starts at troupe::type_id_offset (that is
// caf::first_custom_type_id + 1000) and reserves 100 IDs. An application's
// own block may use caf::first_custom_type_id up to
// caf::first_custom_type_id + 999 (or troupe::type_id_end onward), so both
// blocks can be visible in one translation unit:
//   CAF_BEGIN_TYPE_ID_BLOCK(my_app, caf::first_custom_type_id)
#pragma once

#include <vector>

#include <caf/atom.hpp>
#include <caf/fwd.hpp>
#include <caf/type_id.hpp>

#include "troupe/record.hpp"

namespace troupe {

constexpr caf::type_id_t type_id_offset = caf::first_custom_type_id + 1000;
constexpr caf::type_id_t type_id_end = type_id_offset + 100;

struct stage_result; // internal (runtime/src/internal_protocols.hpp)
struct batch_train;  // internal (runtime/src/batch_train.hpp)
struct deadlock_notice; // deadlock_detector.hpp
struct deadlock_wait;
struct deadlock_stats;

// Registers troupe's type-ID block and its error category on `cfg`.
void add_message_types(caf::actor_system_config& cfg);

} // namespace troupe

CAF_BEGIN_TYPE_ID_BLOCK(troupe, ::troupe::type_id_offset)

  CAF_ADD_TYPE_ID(troupe, (troupe::record))
  CAF_ADD_TYPE_ID(troupe, (troupe::record_batch))
  CAF_ADD_TYPE_ID(troupe, (troupe::stage_result))

  CAF_ADD_ATOM(troupe, troupe, batch_atom, "batch")
  CAF_ADD_ATOM(troupe, troupe, ack_atom, "ack")
  CAF_ADD_ATOM(troupe, troupe, received_atom, "received")
  CAF_ADD_ATOM(troupe, troupe, eof_atom, "eof")
  CAF_ADD_ATOM(troupe, troupe, close_atom, "close")
  CAF_ADD_ATOM(troupe, troupe, rewire_atom, "rewire")
  CAF_ADD_ATOM(troupe, troupe, drop_atom, "drop")
  CAF_ADD_ATOM(troupe, troupe, starved_atom, "starved")
  CAF_ADD_ATOM(troupe, troupe, stop_atom, "stop")
  CAF_ADD_ATOM(troupe, troupe, tick_atom, "tick")
  CAF_ADD_ATOM(troupe, troupe, produce_atom, "produce")
  CAF_ADD_ATOM(troupe, troupe, exec_atom, "exec")
  CAF_ADD_ATOM(troupe, troupe, restart_atom, "restart")
  CAF_ADD_ATOM(troupe, troupe, timeout_atom, "timeout")
  CAF_ADD_ATOM(troupe, troupe, add_atom, "add")
  CAF_ADD_ATOM(troupe, troupe, get_atom, "get")
  CAF_ADD_ATOM(troupe, troupe, wake_atom, "wake")

  // The deadlock detector (deadlock_detector.hpp).
  CAF_ADD_TYPE_ID(troupe, (troupe::deadlock_notice))
  CAF_ADD_TYPE_ID(troupe, (troupe::deadlock_wait))
  CAF_ADD_TYPE_ID(troupe, (std::vector<troupe::deadlock_wait>))
  CAF_ADD_TYPE_ID(troupe, (troupe::deadlock_stats))
  CAF_ADD_ATOM(troupe, troupe, wait_atom, "dl_wait")
  CAF_ADD_ATOM(troupe, troupe, clear_atom, "dl_clear")
  CAF_ADD_ATOM(troupe, troupe, name_atom, "dl_name")
  CAF_ADD_ATOM(troupe, troupe, deadlock_stats_atom, "dl_stats")
  CAF_ADD_ATOM(troupe, troupe, subscribe_atom, "dl_sub")
  CAF_ADD_ATOM(troupe, troupe, probe_atom, "dl_probe")
  CAF_ADD_ATOM(troupe, troupe, deadlock_atom, "deadlock")

  CAF_ADD_TYPE_ID(troupe, (troupe::batch_train))

CAF_END_TYPE_ID_BLOCK(troupe)

static_assert(caf::id_block::troupe::end <= ::troupe::type_id_end,
              "troupe's type IDs outgrew their reserved range");
