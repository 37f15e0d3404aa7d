// The actor-type registry: every type a YAML graph may name, with its kind,
// the protocol it speaks, its parameter schema and its factory.
//
// Registration is explicit (never static self-registration, which silently
// registers nothing when linked statically): the runtime registers the
// built-ins, and an embedder or extender adds its own before loading graphs.
// `troupe types` prints this registry; it is the reference documentation.
//
// A registry is filled during start-up and read-only afterwards; it is not
// synchronised for concurrent writers.
//
// Example:
//   troupe::registry reg;
//   troupe::register_builtins(reg);
//   reg.add_function("shout", "upper-cases and adds !", [] {
//     return [](troupe::record& r) { r.body += "!"; return fn_result::keep(); };
//   });
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <typeinfo>
#include <vector>

#include <caf/fwd.hpp>

#include "troupe/graph_spec.hpp"
#include "troupe/node_logic.hpp"
#include "troupe/params.hpp"
#include "troupe/record_fn.hpp"

namespace troupe {

class registry;
struct node_metrics;
class node_calls;
class slot_client;
class call_context;

// What a node factory gets: its validated spec and the registry (to look up
// record functions). `worker` is 0..workers-1 for parallel stages.
struct node_context {
  const node_spec& spec;
  const registry& reg;
  size_t worker = 0;
  uint32_t incarnation = 0; // 0 at start, +1 per restart (e.g. append, not truncate)
  uint32_t max_attempts = 3; // runtime.max_attempts: tries per record
  // Survives restarts of this node (see node_memory); empty at the first
  // start. A logic that needs it creates it: `if (!memory) memory = ...;`.
  // Null for parallel workers, which keep nothing across restarts.
  std::unique_ptr<node_memory>* memory = nullptr;
  // runtime.delivery: a restarted source replays what it sent but was not
  // acknowledged only under at_least_once.
  delivery_mode delivery = delivery_mode::at_least_once;
  // Where a stage that waits starts calls to the services in its slots
  // (waiting.hpp). Null for parallel workers, which run synchronously.
  node_calls* calls = nullptr;
  // What the runtime stamps on a source's records (record_context::origin).
  // A source that sets it itself spares the runtime a copy of each batch.
  uint32_t origin = 0;
  // The node's counters, for figures of its own (node_metrics::events: get
  // them once, at construction). Null outside a run (a logic made by hand).
  node_metrics* metrics = nullptr;
};

using node_factory
  = std::function<std::unique_ptr<node_logic>(const node_context&)>;

// What a node tells the services in its resource slots (CAF-free). A slot
// hook (service_ops::on_node_event) turns it into messages to its service.
struct slot_event {
  enum class kind : uint8_t {
    passed_on, // `records` left the node on its data output (one batch)
  };
  kind what = kind::passed_on;
  uint64_t records = 0;
};

// One of a service's own figures for /metrics (a cache's hits, a queue's
// depth): exposed as troupe_service_NAME{graph, resource, type}.
struct service_sample {
  std::string name;  // snake_case; counters end in _total
  std::string help;  // one line
  bool counter = false; // else a gauge
  double value = 0;
};

// How a service type spawns its actor and what its slot does for a node.
// Filled from a typed protocol by troupe::typed_service<Handle> (service.hpp),
// which also records the handle type, so a resource is only ever handed out
// as the caf::typed_actor it speaks (runtime::resource<Handle>).
struct service_ops {
  // typeid of the caf::typed_actor alias the service speaks.
  const std::type_info* handle_type = nullptr;
  std::function<caf::strong_actor_ptr(caf::actor_system&,
                                      const resource_spec&)>
    spawn;
  // Optional. Called by a node whose slot names a resource of this type, on
  // the node's actor: it must not block (send, never request and wait).
  std::function<void(const caf::strong_actor_ptr&, const slot_event&)>
    on_node_event;
  // Optional. The client a node's logic uses to call this service
  // (node_calls::client<C>(slot)); made once per node incarnation, on the
  // node's actor. Filled by typed_client<Handle> (service.hpp).
  std::function<std::unique_ptr<slot_client>(const caf::strong_actor_ptr&,
                                             call_context&)>
    make_client;
  // Optional. The service's own figures, read for a scrape from a thread
  // that is no actor's: it may ask the service and wait, at most `timeout`.
  // nullopt: no answer in time. Filled by stats_reader (service_stats.hpp).
  std::function<std::optional<std::vector<service_sample>>(
    const caf::strong_actor_ptr&, std::chrono::milliseconds timeout)>
    read_stats;
};

struct actor_type {
  std::string name;
  actor_kind kind = actor_kind::stage;
  // "record_stream" for pipeline nodes; a service's protocol name, which a
  // resource slot names (add_resource_slot) and the validator checks.
  std::string protocol;
  std::string doc;
  std::vector<param_spec> params;
  bool parallel = false; // a stage that accepts `workers: N` and `ordered`
  // The resource slots a node of this type uses (`cache`, `pool`, ...);
  // `counter` is taken by every node. Another slot on such a node is an
  // error: it would do nothing.
  std::vector<std::string> slots;
  // Services: the resource slots (registered with add_resource_slot) a
  // resource of this type may name, e.g. `next` for
  // `resources: { a: { type: relay, next: b } }`. Each is a service this
  // one asks and waits for: an edge of the request graph, which the
  // validator (and so `troupe lint`) rejects when it closes a cycle
  // (`request cycle a → b → a`). The runtime spawns the named resources
  // first and hands their handles to this type's spawn
  // (slot_handle<Handle>(spec, slot), service.hpp). A slot listed here but
  // never registered is reported when a resource of the type is validated
  // (slots may be registered after the types).
  std::vector<std::string> calls;
  node_factory make_node; // sources, stages, sinks
  service_ops service;    // services: typed_service<Handle>(...)
  // Optional checks beyond the schema (a function name, a regex, a limit
  // against the runtime settings or the rest of the graph), run by the loader
  // once all nodes are known; append located diagnostics.
  std::function<void(const node_spec&, const graph_spec&, const registry&,
                     std::vector<diagnostic>&)>
    validate;
  // Services: optional checks of a resource's parameters beyond the schema
  // (impossible combinations: burst 0 with a rate, min_workers above
  // max_workers), run once its parameters parsed; append located diagnostics
  // (resource_spec::at(param) says where a parameter was written).
  std::function<void(const resource_spec&, const registry&,
                     std::vector<diagnostic>&)>
    validate_resource;
  // False for a node whose state cannot be rebuilt by redelivery (reduce
  // acknowledges what it folds): a crash of it fails the run loudly instead
  // of restarting it into a wrong result.
  bool restartable = true;
};

struct function_entry {
  std::string name;
  std::string doc;
  record_fn_factory make;
};

class registry {
public:
  // Adds or replaces a type. Throws std::invalid_argument on an inconsistent
  // entry (no factory, duplicate parameter names, a default that does not
  // parse as its parameter's type, `calls` on a type that is not a service
  // or naming a slot twice).
  void add(actor_type type);
  // Adds a record function. Throws std::invalid_argument when the name is
  // taken (a built-in such as `upper` included) or the factory is empty. A
  // factory returning an empty record_fn is reported when a graph using it is
  // validated (validate.hpp).
  void add_function(std::string name, std::string doc, record_fn_factory make);
  // Adds or replaces a record function: the explicit way to override one.
  void replace_function(std::string name, std::string doc,
                        record_fn_factory make);
  // A node field that references a resource, e.g. slot "cache" needs a
  // resource whose protocol is "cache".
  void add_resource_slot(std::string slot, std::string protocol,
                         std::string doc);

  // Registers message types a custom service's protocol needs on the
  // actor system of every runtime built from this registry (CAF needs each
  // type announced before the system starts). E.g. for an ID block:
  //   reg.add_message_types([](caf::actor_system_config& cfg) {
  //     cfg.add_message_types<caf::id_block::my_app>(); });
  void add_message_types(std::function<void(caf::actor_system_config&)> f);
  const std::vector<std::function<void(caf::actor_system_config&)>>&
  message_types() const {
    return message_types_;
  }

  // The type of exactly this name and kind, or nullptr. A name has at most
  // one source, one stage or sink, and one service (`file` reads or writes;
  // `queue` is a service, a source and a sink);
  // validate() resolves which one a node means (node_spec::kind), and
  // everything after it asks for that one.
  const actor_type* find(const std::string& name, actor_kind kind) const;
  // Every type of this name (none, one, or a source and another kind).
  std::vector<const actor_type*> find_all(const std::string& name) const;
  const function_entry* find_function(const std::string& name) const;
  // Protocol name for a slot, or nullptr when `slot` is not a slot.
  const std::string* slot_protocol(const std::string& slot) const;

  std::vector<const actor_type*> types() const; // sorted by name
  std::vector<const function_entry*> functions() const;
  const std::map<std::string, std::pair<std::string, std::string>>&
  slots() const {
    return slots_;
  }
  std::vector<std::string> type_names() const;
  std::vector<std::string> function_names() const;

private:
  std::map<std::string, std::vector<actor_type>> types_;
  std::map<std::string, function_entry> functions_;
  std::map<std::string, std::pair<std::string, std::string>> slots_;
  std::vector<std::function<void(caf::actor_system_config&)>> message_types_;
};

// The built-in sources, stages, sinks, services and functions.
void register_builtins(registry& reg);

} // namespace troupe
