#include "text.hpp"

#include <cstdio>

namespace troupe::observe {

std::string kind_of(const graph_spec& graph, const std::string& name) {
  for (auto& spec : graph.nodes)
    if (spec.name == name)
      return to_string(spec.kind);
  return "stage";
}

std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string ns_text(uint64_t ns, const char* space) {
  char buf[48];
  if (ns < 1000)
    std::snprintf(buf, sizeof buf, "%llu%sns",
                  static_cast<unsigned long long>(ns), space);
  else if (ns < 1000000)
    std::snprintf(buf, sizeof buf, "%.1f%sus", ns / 1e3, space);
  else if (ns < 1000000000)
    std::snprintf(buf, sizeof buf, "%.1f%sms", ns / 1e6, space);
  else
    std::snprintf(buf, sizeof buf, "%.2f%ss", ns / 1e9, space);
  return buf;
}

} // namespace troupe::observe
