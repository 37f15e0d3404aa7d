// JSON string escaping, shared by the run report and the jsonl sinks.
#pragma once

#include <string>

namespace troupe {

// Appends `s` to `out` as a JSON string literal (with quotes). The result
// is always valid JSON: bytes of `s` that are not well-formed UTF-8 are each
// replaced by U+FFFD (the replacement character), valid UTF-8 is kept.
void append_json_string(std::string& out, const std::string& s);

// Whether `s` goes into a JSON string unchanged: printable ASCII without
// '"' or '\\'. A fast path for writers (most bodies and keys are).
bool json_plain(const std::string& s);

// Whether `s` is well-formed UTF-8 (what append_json_string keeps as is).
bool is_utf8(const std::string& s);

// Appends `bytes` in base64 (RFC 4648, padded): how a JSON field carries
// bytes that are not text.
void append_base64(std::string& out, const std::string& bytes);

inline std::string json_string(const std::string& s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

} // namespace troupe
