// `troupe run --report-html FILE`: the run report as one self-contained HTML
// page (the picture with each node's counts inline as SVG, a table of every
// counter, the totals and the dead letters' last reasons), readable offline:
// no script, no style sheet or font fetched from anywhere.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "troupe/graph_spec.hpp"
#include "troupe/metrics.hpp"
#include "troupe/report.hpp"

namespace troupe {

class registry;

struct dead_letter {
  std::string node;
  bool crash = false;
  uint64_t seq = 0;
  std::string reason;
  std::string at; // ISO-8601 UTC
};

// The newest `max` failures over all nodes (recent_failures), newest last.
std::vector<dead_letter> recent_dead_letters(const run_metrics& m,
                                             size_t max = 50);

// The page. `svg` is graph_svg(g, &r) (an empty string: no picture, e.g.
// when Graphviz failed; `picture_error` then says why).
std::string report_html(const graph_spec& g, const run_report& r,
                        const std::vector<dead_letter>& dead_letters,
                        const std::string& svg,
                        const std::string& picture_error = {});

} // namespace troupe
