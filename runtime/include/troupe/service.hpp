// Services with a typed protocol: how a service type tells the registry which
// caf::typed_actor it speaks and what its resource slot does for a node.
//
// A service is an actor shared by the nodes of a graph (and by several runs:
// runtime::add_resource). Its type registers like any actor type, with
// kind = actor_kind::service, a protocol name (what a slot asks for) and
// `service = typed_service<Handle>(spawn, on_node_event)`. The core knows no
// service by name: a node calls the hook of each resource in its slots with a
// slot_event, and the hook sends what the service needs.
//
// Example (a service counting what nodes pass on):
//   using tally_actor = caf::typed_actor<caf::reacts_to<troupe::add_atom, int64_t>,
//                                        caf::replies_to<troupe::get_atom>::with<int64_t>>;
//   troupe::actor_type t;
//   t.name = "tally";
//   t.kind = troupe::actor_kind::service;
//   t.protocol = "tally";
//   t.service = troupe::typed_service<tally_actor>(
//     [](caf::actor_system& sys, const troupe::resource_spec&) {
//       return sys.spawn(tally_fn, 0); // (see README: CAF 0.17 and no args)
//     },
//     [](const tally_actor& h, const troupe::slot_event& e) {
//       if (e.what == troupe::slot_event::kind::passed_on)
//         caf::anon_send(h, troupe::add_atom_v, static_cast<int64_t>(e.records));
//     });
//   reg.add(std::move(t));
//   reg.add_resource_slot("tally", "tally", "counts what this node passes on");
//
// A service that computes through other services lists their slots in
// actor_type::calls; its spawn reads their handles from the spec:
//   t.calls = {"next"};
//   t.service = troupe::typed_service<relay_actor>(
//     [](caf::actor_system& sys, const troupe::resource_spec& r) {
//       return sys.spawn(relay_fn, troupe::slot_handle<relay_actor>(r, "next"));
//     });
//   reg.add_resource_slot("next", "relay", "the relay this one forwards to");
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <typeinfo>
#include <utility>

#include <caf/actor_cast.hpp>
#include <caf/actor_control_block.hpp>

#include "troupe/call_context.hpp"
#include "troupe/registry.hpp"

namespace troupe {

// What the runtime hands a service's spawn (resource_spec::handles): for each
// slot in resource_spec::resources, the running service it names and the
// handle type that service registered. The runtime spawns what a resource
// names before the resource itself (the validator has ruled out cycles).
struct slot_handles {
  struct entry {
    std::string resource; // its name, for messages
    caf::strong_actor_ptr handle;
    const std::type_info* handle_type = nullptr;
  };
  std::map<std::string, entry> by_slot;
};

// For a service's spawn: the handle of the service its `slot` names, typed.
// Throws std::invalid_argument when the spec names nothing in that slot (or
// was not given handles: a spec outside the runtime's spawn) or the service
// there speaks another handle type. A slot the type may leave empty is
// tested with `spec.resources.count(slot)` first.
template <class Handle>
Handle slot_handle(const resource_spec& spec, const std::string& slot) {
  const slot_handles::entry* e = nullptr;
  if (spec.handles)
    if (auto i = spec.handles->by_slot.find(slot);
        i != spec.handles->by_slot.end())
      e = &i->second;
  if (!e || !e->handle)
    throw std::invalid_argument("resource '" + spec.name
                                + "': no running service in slot '" + slot
                                + "'");
  if (!e->handle_type || *e->handle_type != typeid(Handle))
    throw std::invalid_argument("resource '" + spec.name + "': slot '" + slot
                                + "' names '" + e->resource
                                + "', which speaks another handle type");
  return caf::actor_cast<Handle>(e->handle);
}

// Service operations for the protocol `Handle` (a caf::typed_actor alias):
// `spawn(caf::actor_system&, const resource_spec&) -> Handle` starts one
// resource; `on_node_event(const Handle&, const slot_event&)` is optional.
template <class Handle, class Spawn>
service_ops typed_service(Spawn spawn) {
  service_ops ops;
  ops.handle_type = &typeid(Handle);
  ops.spawn = [spawn = std::move(spawn)](caf::actor_system& sys,
                                         const resource_spec& r) {
    Handle h = spawn(sys, r);
    return caf::actor_cast<caf::strong_actor_ptr>(h);
  };
  return ops;
}

template <class Handle, class Spawn, class Hook>
service_ops typed_service(Spawn spawn, Hook on_node_event) {
  auto ops = typed_service<Handle>(std::move(spawn));
  ops.on_node_event = [hook = std::move(on_node_event)](
                        const caf::strong_actor_ptr& p, const slot_event& e) {
    // The handle was spawned as a Handle (above): the cast is exact.
    hook(caf::actor_cast<Handle>(p), e);
  };
  return ops;
}

// Adds a slot client to a service: `make(const Handle&, call_context&)`
// returns a std::unique_ptr to a class deriving from slot_client (usually
// the service's CAF-free client interface, implemented with typed_call).
template <class Handle, class Make>
service_ops typed_client(service_ops ops, Make make) {
  ops.make_client = [make = std::move(make)](const caf::strong_actor_ptr& p,
                                             call_context& ctx)
    -> std::unique_ptr<slot_client> {
    return make(caf::actor_cast<Handle>(p), ctx);
  };
  return ops;
}

} // namespace troupe
