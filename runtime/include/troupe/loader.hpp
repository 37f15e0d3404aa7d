// The strict YAML loader: text → validated graph_spec, or every problem found.
//
// Two steps. The parser turns YAML into a graph_spec with the position of
// every field (node_spec::field_where, param_value::where, ...) and reports
// only what is about the YAML itself: syntax, anchors, aliases, duplicate
// keys, deep nesting, oversized or non-UTF-8 files, unknown top-level,
// runtime, supervision and group keys, a map where a list is expected,
// ${VAR}, and values that do not parse or fit their field. Parameters are
// left as written (param_value::unparsed). Then validate() (validate.hpp),
// the same check runtime::start() makes on a graph built in code, parses
// the parameters against their schema and reports everything else: unknown
// types and fields (with "did you mean"), ranges, kinds and inputs, slots,
// groups, cycles, the types' own checks, files.
//
// Each problem is a diagnostic rendered as `file:line:col: error: message`
// (1-based). The loader never stops at the first error.
//
// Example:
//   auto res = troupe::load_graph_file("config/etl.yaml", reg);
//   if (!res.ok())
//     for (auto& d : res.errors) std::cerr << d.str() << '\n';
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "troupe/graph_spec.hpp"
#include "troupe/source_location.hpp"

namespace troupe {

class registry;

struct load_options {
  // `--set` overrides as "dotted.path=value", e.g. "nodes.extract.count=10".
  std::vector<std::string> overrides;
  // Looks up ${VAR}; defaults to the process environment.
  std::function<std::optional<std::string>(const std::string&)> env;
};

struct load_result {
  std::optional<graph_spec> graph;
  std::vector<diagnostic> errors;

  bool ok() const {
    return graph.has_value() && errors.empty();
  }
};

load_result load_graph_text(const std::string& text, const std::string& file,
                            const registry& reg, const load_options& opts = {});
load_result load_graph_file(const std::string& path, const registry& reg,
                            const load_options& opts = {});

// Closest candidate within a small edit distance, or "".
std::string did_you_mean(const std::string& word,
                         const std::vector<std::string>& candidates);

} // namespace troupe
