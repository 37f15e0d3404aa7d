// The one place where troupe registers message types and atoms with CAF.
// Load it with cfg.add_message_types<caf::id_block::troupe>() (the runtime
// does this); a type missing here fails only at run time, so add new protocol
// types here and nowhere else.
//
// ID ranges: troupe's block starts at troupe::type_id_offset (that is
// caf::first_custom_type_id + 1000) and reserves 100 IDs. An application's
// own block may use caf::first_custom_type_id up to
// caf::first_custom_type_id + 999 (or troupe::type_id_end onward), so both
// blocks can be visible in one translation unit:
//   CAF_BEGIN_TYPE_ID_BLOCK(my_app, caf::first_custom_type_id)
#pragma once

#include <caf/atom.hpp>
#include <caf/type_id.hpp>

#include "troupe/record.hpp"
#include "troupe/stage_result.hpp"

namespace troupe {

constexpr caf::type_id_t type_id_offset = caf::first_custom_type_id + 1000;
constexpr caf::type_id_t type_id_end = type_id_offset + 100;

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

CAF_END_TYPE_ID_BLOCK(troupe)

static_assert(caf::id_block::troupe::end <= ::troupe::type_id_end,
              "troupe's type IDs outgrew their reserved range");
