// One validator for graphs from YAML and graphs built in code.
//
// The loader calls it once a file is parsed, runtime::start() calls it on
// every spec it is given, so a graph built in code gets the same errors as the
// same graph written in YAML. It checks what can be known before anything
// runs and normalises the spec so that every later stage can rely on it:
//
// - the graph has nodes; node, resource and group names are well formed and
//   unique;
// - every type is registered and not a service (resources: a service); each
//   node's type and kind are resolved once (node_spec::kind; for a name that
//   is a source and a sink, the source when the node has no inputs or
//   `is_source`, unless it names a parameter only the other has), and its
//   parameters match the schema: unknown ones rejected (with "did you
//   mean"), values the YAML parser left as text parsed, values built in code
//   checked (type, integer bounds, finite numbers, rates, choices), required
//   ones present, defaults filled;
// - inputs name existing nodes and ports, never the same input twice, never
//   a sink's data output; sources have no inputs, stages and sinks have some;
// - resource slots name resources speaking the slot's protocol: a node's
//   slots (a client slot only on types listing it in actor_type::slots), a
//   resource's slots only those its type lists in actor_type::calls;
// - the request graph (a node asks the resources in its client slots, a
//   resource the ones in its `calls` slots) has no cycle: each is one error
//   at the slot field that closes it, `request cycle a → b → c → a`;
//   `g.resources` is put into spawn order (what a resource calls first);
// - runtime and supervision values are in range (batch_size 1..2^20, window
//   1..2^24, positive timeouts, intensity <= 10^6, workers 1..1024 on
//   parallel types only, ...), in the words the YAML parser uses;
// - groups name existing nodes and parents, a node is in one group, and the
//   parents form a tree (node_spec::group and group_spec::nodes are made to
//   agree);
// - the data graph has no cycle; `g.nodes` is put into topological order
//   (inputs first) — a code-built spec may list its nodes in any order;
// - each type's own validate hook; a `fn` parameter names a registered
//   function whose factory returns a callable;
// - files: a parameter `path` is the file a source reads (it must exist and
//   not be a directory) or a sink writes (not a directory, its nearest
//   existing folder writable); `checkpoint` is a file a source keeps. After
//   ${VAR} expansion no path may be empty, and no two of them may name the
//   same file (compared as weakly canonical paths): a source's input and a
//   sink's output, two sinks, a sink and the configuration file, two sources'
//   checkpoints. Devices such as /dev/null may be shared.
//
// Each diagnostic is located at the spec's `where`/`field_where` positions; a
// spec built in code has none, so its diagnostics fall back to the graph's
// file (or "<graph>") at 1:1 and start with what they concern ("node 'x': ",
// "runtime: ", "group 'g': ", "resource 'r': "); the message after that is
// the one the same graph in YAML gets.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "troupe/graph_spec.hpp"
#include "troupe/source_location.hpp"

namespace troupe {

class registry;

// Checks `g` against `reg`, completes it (parameters parsed, defaults, kinds,
// group membership) and sorts its nodes topologically. Empty when the graph
// can run; runtime::start() refuses a graph for which it is not.
std::vector<diagnostic> validate(graph_spec& g, const registry& reg);

// The same checks for one resource outside any graph (a runtime's own
// resources): a well-formed name, a registered service type, its parameters
// against the schema (defaults filled), its slots naming resources among
// `running` (validated before, not checked again) and no request cycle.
// Empty when it can be spawned.
std::vector<diagnostic> validate(resource_spec& r, const registry& reg,
                                 const std::vector<resource_spec>& running = {});

// Problems with one more file the caller writes next to the graph's outputs
// (the CLI's --report FILE): it must not be a file the graph reads or writes,
// nor the configuration file. `what` names it in messages ("--report").
std::vector<diagnostic> check_extra_output(const graph_spec& g,
                                           const std::string& path,
                                           const std::string& what,
                                           const source_location& where = {});

// Whether two files the caller writes are one: the same real path after
// symlinks, or hard links of one file. Devices (/dev/null) may be shared.
bool same_output_file(const std::string& a, const std::string& b);

namespace detail {

// How the loader calls the validator once it parsed a file.
struct validate_options {
  // Nodes and groups the parser saw but could not parse (and reported):
  // references to them are not reported again.
  std::set<std::string> broken;
  // "node.field" whose value the parser reported (inputs: a map).
  std::set<std::string> reported;
  // False when the parser already found errors: no cycle, hook, function
  // or file checks, which need a sound graph.
  bool deep = true;
};

// "'field' expects ..., got 'got'" for a runtime or supervision setting (or
// `workers`): the parser says it of a value that does not parse or fit,
// the validator of one out of range, in the same words.
std::string bad_setting(const std::string& field, const std::string& got);

extern const char* const no_nodes_message;

std::vector<diagnostic> validate(graph_spec& g, const registry& reg,
                                 const validate_options& opts);

} // namespace detail

} // namespace troupe
