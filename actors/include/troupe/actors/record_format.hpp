// How sinks write records: `jsonl` (one JSON object per line with seq, key,
// body and attrs) or `lines` (the body alone). Shared by the file and stdout
// sinks so both write byte-identical output.
#pragma once

#include <string>

#include "troupe/record.hpp"

namespace troupe::actors {

enum class record_format { jsonl, lines };

record_format parse_record_format(const std::string& name);

// Appends `r` and a newline to `out`.
void append_record(std::string& out, const record& r, record_format fmt);

} // namespace troupe::actors
