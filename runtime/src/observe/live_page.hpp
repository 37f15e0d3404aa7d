// The live view's page: one self-contained HTML document (styles and script
// inline, nothing fetched from the internet) that loads /graph.svg and
// follows /events. Served by the web server (web_server.cpp).
#pragma once

#include <string>

namespace troupe::observe {

std::string live_page_html(const std::string& graph_name);

} // namespace troupe::observe
