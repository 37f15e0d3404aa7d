#include "troupe/json.hpp"

namespace troupe {

namespace {

// true for bytes JSON strings must escape: control characters, '"', '\\'.
struct escape_table {
  bool needs[256] = {};
  constexpr escape_table() {
    for (int c = 0; c < 0x20; ++c)
      needs[c] = true;
    needs[static_cast<unsigned char>('"')] = true;
    needs[static_cast<unsigned char>('\\')] = true;
  }
};
constexpr escape_table escapes;

} // namespace

void append_json_string(std::string& out, const std::string& s) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  // Copy runs of plain bytes in one go; most bodies have no escapes at all.
  const char* run = s.data();
  const char* end = s.data() + s.size();
  for (const char* p = run; p != end; ++p) {
    auto c = static_cast<unsigned char>(*p);
    if (!escapes.needs[c])
      continue;
    out.append(run, static_cast<size_t>(p - run));
    run = p + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += "\\u00";
        out += hex[c >> 4];
        out += hex[c & 0xF];
    }
  }
  out.append(run, static_cast<size_t>(end - run));
  out += '"';
}

} // namespace troupe
