#include "troupe/actors/record_format.hpp"

#include <charconv>
#include <cstring>
#include <string_view>

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
  if (r.attrs.empty() && json_plain(r.key) && json_plain(r.body)) {
    // The common line in one piece: no escapes, no attributes.
    static constexpr std::string_view a = "{\"seq\":", b = ",\"key\":\"",
                                      c = "\",\"body\":\"",
                                      d = "\",\"attrs\":{}}\n";
    auto digits = static_cast<size_t>(seq_end - seq);
    auto at = out.size();
    out.resize(at + a.size() + digits + b.size() + r.key.size() + c.size()
               + r.body.size() + d.size());
    auto* p = out.data() + at;
    auto put = [&p](const char* x, size_t n) {
      std::memcpy(p, x, n);
      p += n;
    };
    put(a.data(), a.size());
    put(seq, digits);
    put(b.data(), b.size());
    put(r.key.data(), r.key.size());
    put(c.data(), c.size());
    put(r.body.data(), r.body.size());
    put(d.data(), d.size());
    return;
  }
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
