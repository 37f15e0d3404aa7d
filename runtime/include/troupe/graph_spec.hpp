// An actor graph: what the YAML parser produces (loader.hpp), what an
// embedder may build in code, what validate() (validate.hpp) checks and
// completes, and what the graph builder spawns. Plain structs, no CAF inside,
// so it can be built, inspected and tested without an actor system.
//
// Every `where`/`field_where` is a YAML position, filled by the parser so
// that diagnostics point at the field; a spec built in code leaves them
// empty and its diagnostics name the node (group, resource) and field.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "troupe/params.hpp"
#include "troupe/source_location.hpp"
#include "troupe/supervision.hpp"
#include "troupe/units.hpp"

namespace troupe {

// Positions of a struct's fields by name; empty in code.
using field_positions = std::map<std::string, source_location>;

enum class delivery_mode { at_least_once, at_most_once };

// What a registered type is. A name may be registered once as a source and
// once as another kind (`file` reads or writes).
enum class actor_kind { source, stage, sink, service };

const char* to_string(actor_kind x);

// What the deadlock detector (deadlock_detector.hpp) does with a finding:
// only report it, fail the waiting requests with a `deadlock` error, or
// restart one supervised member.
enum class deadlock_policy { report, fail, restart };

const char* to_string(deadlock_policy x);
bool parse_deadlock_policy(const std::string& text, deadlock_policy& out);

// `runtime: { deadlock: { detect, probe_interval, policy } }`; the runtime
// embedders build has the same (runtime_options::deadlock).
struct deadlock_spec {
  bool detect = true;
  duration probe_interval = std::chrono::milliseconds(500);
  deadlock_policy policy = deadlock_policy::fail;
};

struct runtime_spec {
  size_t threads = 0;           // 0: one per hardware thread
  delivery_mode delivery = delivery_mode::at_least_once;
  duration shutdown_timeout = std::chrono::seconds(20);
  size_t batch_size = 256;      // records per batch a source emits
  size_t window = 16384;        // unacknowledged records per edge (credit)
  // ... and unacknowledged payload bytes (keys and bodies) per edge, so a
  // window of large records stays bounded in memory too.
  size_t window_bytes = 8 * 1024 * 1024;
  uint32_t max_attempts = 3;    // deliveries of one record before it fails
  duration request_timeout = std::chrono::seconds(30); // every ask()
  deadlock_spec deadlock;
  field_positions where; // by field name ("window", ..., "deadlock",
                         // "detect", "probe_interval", "policy")
};

struct supervision_spec {
  troupe::strategy strategy = strategy::one_for_one;
  uint32_t intensity = 10;      // restarts allowed ...
  duration period = std::chrono::seconds(5); // ... within this window
  backoff_spec backoff;
  field_positions where; // "strategy", ..., "backoff", "min", "max", "jitter"
};

// A supervision group: its member nodes (and subgroups, via `parent`) are
// supervised with their own policy, so a fragile branch fails on its own.
struct group_spec {
  std::string name;
  std::string parent; // "" : the graph's root supervision
  supervision_spec supervision;
  std::vector<std::string> nodes;
  source_location where;              // the group's name
  field_positions field_where;        // "" (its map), "parent", "nodes"
  std::vector<source_location> nodes_where; // parallel to `nodes` (YAML)
};

// `inputs: [hash]` reads hash's data output; `[hash.errors]` its failures.
struct input_ref {
  std::string node;
  std::string port; // "" (data) or "errors"
  source_location where;
};

struct node_spec {
  std::string name;
  std::string type;
  // Which of two types of one name is meant (`file`): the source, or the
  // other kind. Only a hint; validate() resolves the kind once (when a
  // name has one kind, that one; a source named with a parameter only the
  // other kind has is the other one) and sets `kind` and `is_source`.
  bool is_source = false;
  actor_kind kind = actor_kind::stage; // set by validate()
  param_set params;
  std::vector<input_ref> inputs;
  size_t workers = 1;
  bool ordered = true;
  // `partition_by: key`: each record goes to the worker its key hashes to,
  // so records of one key stay in order while other keys run in parallel.
  bool partition_by_key = false;
  // `blocking: true`: the workers run on threads of their own, so a slow or
  // blocking function never stalls the scheduler's threads.
  bool blocking = false;
  restart_type restart = restart_type::permanent;
  std::string group; // "" : supervised by the root
  // Resource slots (`cache: pages`, `rate_limit: api_limit`) by slot name.
  std::map<std::string, std::string> resources;
  source_location where; // the node's name
  // Where the YAML wrote each field ("type", "inputs", "workers", "ordered",
  // "restart", a slot name; "" the node's map): diagnostics point there.
  field_positions field_where;

  // Where `field` was written, else where the node was ({} in code).
  const source_location& at(const std::string& field) const;
  // Where the value of parameter `param` was written, else at("").
  const source_location& value_at(const std::string& param) const;
};

class registry;
struct slot_handles; // service.hpp

struct resource_spec {
  std::string name;
  std::string type;
  param_set params;
  source_location where;       // the resource's name
  field_positions field_where; // "" (its map), "type", a slot name
  // Resource slots (`next: b`) by slot name: the services this one asks,
  // each a slot its type lists in actor_type::calls. (After the fields
  // above, so aggregate initialisers written before it still compile.)
  std::map<std::string, std::string> resources;
  // Set by the runtime for the service's spawn function only: the registry
  // the resource was validated against (to find a record function by
  // name); a service may keep it for its lifetime. Null elsewhere.
  std::shared_ptr<const registry> types;
  // Set by the runtime for the service's spawn function only: the running
  // services its slots (`resources`) name, read with
  // slot_handle<Handle>(spec, slot) (service.hpp). Null elsewhere.
  std::shared_ptr<const slot_handles> handles;

  const source_location& at(const std::string& field) const;
  // Where the value of parameter `param` was written, else at("").
  const source_location& value_at(const std::string& param) const;
};

struct graph_spec {
  std::string name;
  std::string file;
  runtime_spec runtime;
  supervision_spec supervision; // the root's policy
  std::vector<group_spec> groups;
  std::vector<resource_spec> resources;
  std::vector<node_spec> nodes; // in topological order: inputs come first

  const node_spec* find_node(const std::string& name) const;
};

} // namespace troupe
