// Small text helpers the observe pages share (internal).
#pragma once

#include <cstdint>
#include <string>

#include "troupe/graph_spec.hpp"

namespace troupe::observe {

// "source", "stage" or "sink": the kind `graph` gives node `name` ("stage"
// when it has no such node).
std::string kind_of(const graph_spec& graph, const std::string& name);

// `s` safe inside HTML text and attribute values.
std::string html_escape(const std::string& s);

// "512ns", "1.5us", "16.8ms", "2.00s"; `space` goes between number and unit
// ("" in a picture's tight labels, " " in tables).
std::string ns_text(uint64_t ns, const char* space = "");

} // namespace troupe::observe
