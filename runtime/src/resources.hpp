// Resources as the runtime holds them (internal): a spawned service actor
// with what its type said about it, and how a node reports to its slots.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <typeinfo>

#include <caf/actor_control_block.hpp>

#include "troupe/graph_spec.hpp"
#include "troupe/registry.hpp"

namespace troupe::detail {

// One running service. Copied out of its actor_type at spawn time, so it
// never points into a registry that may change.
struct resource_entry {
  resource_spec spec;   // name, service type and validated parameters
  std::string protocol; // its type's protocol name, e.g. "counter"
  const std::type_info* handle_type = nullptr;
  caf::strong_actor_ptr handle;
  std::function<void(const caf::strong_actor_ptr&, const slot_event&)>
    on_node_event;
  std::function<std::unique_ptr<slot_client>(const caf::strong_actor_ptr&,
                                             call_context&)>
    make_client;
  // Set when a runtime resource is released (release_resource, ~runtime):
  // the runs that still map it then refuse to hand out its dead handle.
  mutable std::atomic<bool> released{false};
};

// By resource name. Entries are immutable and shared: a run's plan keeps the
// ones its nodes use, whoever releases them.
using resource_map = std::map<std::string, std::shared_ptr<const resource_entry>>;

// Calls the slot hook of every resource `node` names in a slot. Runs on the
// node's actor; a resource released meanwhile just drops what it is sent.
inline void report_to_slots(const node_spec& node,
                            const resource_map& resources,
                            const slot_event& event) {
  for (auto& [slot, name] : node.resources)
    if (auto i = resources.find(name);
        i != resources.end() && i->second->on_node_event)
      i->second->on_node_event(i->second->handle, event);
}

} // namespace troupe::detail
