// Where something was written: a YAML file position or the command line.
#pragma once

#include <string>

namespace troupe {

struct source_location {
  std::string file; // file path, or "<command line>" for --set values
  int line = 0;     // 1-based; 0 when unknown
  int column = 0;   // 1-based; 0 when unknown

  // "file:line:col" (or just "file" when the position is unknown).
  std::string str() const;
};

// One located problem found while loading configuration.
struct diagnostic {
  source_location where;
  std::string message;

  // "file:line:col: error: message", the format editors and CI parse.
  std::string str() const;
};

} // namespace troupe
