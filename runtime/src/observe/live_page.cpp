#include "live_page.hpp"

namespace troupe::observe {

// Placeholder until the page lands: a title and the picture.
std::string live_page_html(const std::string& graph_name) {
  return "<!doctype html><html><head><meta charset=\"utf-8\"><title>troupe: "
         + graph_name + "</title></head><body><img src=\"/graph.svg\"></body>"
           "</html>\n";
}

} // namespace troupe::observe
