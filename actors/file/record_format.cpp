#include "troupe/actors/record_format.hpp"

#include <charconv>

#include "troupe/json.hpp"

namespace troupe::actors {

record_format parse_record_format(const std::string& name) {
  return name == "lines" ? record_format::lines : record_format::jsonl;
}

void append_record(std::string& out, const record& r, record_format fmt) {
  if (fmt == record_format::lines) {
    out += r.body;
    out += '\n';
    return;
  }
  char seq[24];
  auto seq_end = std::to_chars(seq, seq + sizeof(seq), r.seq).ptr;
  out += "{\"seq\":";
  out.append(seq, seq_end);
  out += ",\"key\":";
  append_json_string(out, r.key);
  out += ",\"body\":";
  append_json_string(out, r.body);
  out += ",\"attrs\":{";
  bool first = true;
  for (auto& [k, v] : r.attrs) {
    if (!first)
      out += ',';
    first = false;
    append_json_string(out, k);
    out += ':';
    append_json_string(out, v);
  }
  out += "}}\n";
}

} // namespace troupe::actors
