// The node actor: runs one node's logic with credit-based flow control,
// acknowledgements and redelivery (internal; see internal_protocols.hpp for the
// protocol it speaks and node_logic.hpp for what a node type supplies).
// It is a shell: the decisions are taken by the CAF-free delivery ledger
// in node/ (input_ledger, outbox, worker_dispatch, node_lifecycle), and the
// actor carries out the commands they return.
#pragma once

#include <memory>
#include <vector>

#include <caf/fwd.hpp>

#include "internal_protocols.hpp"
#include "run_plan.hpp"

namespace troupe::detail {

struct node_wiring {
  std::vector<caf::strong_actor_ptr> consumers; // by reply tag
  std::vector<bool> closed_inputs;              // by in_port: upstream gone
  // By reply tag: the consumer finished; send it nothing (see on_drop).
  std::vector<bool> finished_consumers;
  uint32_t incarnation = 0;                     // restarts so far
  // Kept by the supervisor across incarnations (node_context::memory).
  std::shared_ptr<std::unique_ptr<node_memory>> memory;
};

// Spawns an incarnation of node `index` as a child of `parent`.
node_actor spawn_node(caf::local_actor* parent,
                      std::shared_ptr<const run_plan> plan, size_t index,
                      node_wiring wiring);

// Renders an exception for error records and crash reasons.
std::string describe(std::exception_ptr e);

} // namespace troupe::detail
