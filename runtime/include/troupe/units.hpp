// Parsers for the units configuration values use: durations ("250ms", "5s",
// "10m", "1h"), rates ("2/s", "100/m", "1.5k/s") and sizes ("64KiB", "1MB").
// Each returns an empty optional on malformed input; callers add the location.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace troupe {

using duration = std::chrono::nanoseconds;

std::optional<duration> parse_duration(const std::string& text);
// Events per second.
std::optional<double> parse_rate(const std::string& text);
// Bytes.
std::optional<uint64_t> parse_size(const std::string& text);
std::optional<int64_t> parse_integer(const std::string& text);
std::optional<bool> parse_bool(const std::string& text);

// "1.5s", "250ms", "80us": the shortest exact-ish rendering for reports.
std::string format_duration(duration d);

} // namespace troupe
