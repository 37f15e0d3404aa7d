// The graph as a picture: one DOT builder (`troupe graph`, the HTML report,
// the live view) and an in-process SVG rendering through Graphviz's libgvc.
// Part of troupe::observe (links Graphviz), not of the runtime.
#pragma once

#include <string>

#include "troupe/graph_spec.hpp"
#include "troupe/report.hpp"

namespace troupe {

class registry;

// DOT for `g`: sources, stages and sinks by shape and colour, data edges
// labelled with the producer's protocol (when `types` is given), `errors`
// edges red and dashed, supervision groups as clusters, resources with the
// nodes (and services) that use them by slot. Every node carries
// `id="node-NAME"` (resources `resource-NAME`, groups `group-NAME`), which
// the SVG keeps as the element id. With `counts`, each node's label carries
// its counters (in, out, errors, restarts) and latency p50/p99.
std::string graph_dot(const graph_spec& g, const run_report* counts = nullptr,
                      const registry* types = nullptr);

// graph_dot rendered to an SVG document by libgvc ("dot" layout), in
// process. Throws std::runtime_error with Graphviz's own messages when it
// cannot lay out or render. Safe to call from any thread (one at a time
// inside: Graphviz is not thread-safe).
std::string graph_svg(const graph_spec& g, const run_report* counts = nullptr,
                      const registry* types = nullptr);

// Renders any DOT text to SVG (what graph_svg does after building the DOT).
std::string dot_to_svg(const std::string& dot);

// The `<svg ...>...</svg>` element of an SVG document (no XML prolog, no
// DOCTYPE, no xlink namespace when nothing uses it), to inline in HTML.
std::string svg_element(const std::string& svg_document);

} // namespace troupe
