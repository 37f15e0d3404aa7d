// A located YAML tree built from yaml-cpp's event stream (internal).
//
// yaml-cpp's own node tree loses positions of missing keys, keeps duplicate
// keys silently, resolves self-referencing aliases into cyclic graphs and
// inserts keys on read. Building our own tree from parser events lets us
// reject anchors, aliases, duplicate keys, deep nesting and extra documents
// with exact positions before anything walks the tree.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "troupe/source_location.hpp"

namespace troupe::detail {

struct yaml_node {
  enum class kind { null, scalar, sequence, map };
  kind what = kind::null;
  std::string value;  // scalars
  bool quoted = false; // written in quotes: always a string
  std::vector<yaml_node> items; // sequences
  std::vector<std::pair<yaml_node, yaml_node>> entries; // maps
  source_location where;

  const yaml_node* find(const std::string& key) const;
  yaml_node* find(const std::string& key);
  const char* kind_name() const;
};

constexpr size_t max_config_bytes = 1024 * 1024;
constexpr size_t max_config_depth = 64;

// Parses one YAML document. Appends every problem found to `errors`; returns
// the tree when the text is well-formed enough to walk.
std::optional<yaml_node> parse_yaml(const std::string& text,
                                    const std::string& file,
                                    std::vector<diagnostic>& errors);

} // namespace troupe::detail
