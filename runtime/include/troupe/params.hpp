// Parameter schemas and validated parameter values.
//
// Every actor type declares its parameters as a list of param_spec. The YAML
// loader checks a node's fields against that schema (types, units, required
// fields, unknown names) and hands the type's factory a param_set whose values
// are already parsed: a factory never sees raw YAML.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "troupe/source_location.hpp"
#include "troupe/units.hpp"

namespace troupe {

enum class param_type {
  string,
  integer,
  number,
  boolean,
  time_span, // a duration: "250ms", "5s" (not `duration`: troupe::duration)
  rate,     // "2/s", "100/m"
  size,     // "64KiB"
  choice,   // one of param_spec::choices
  strings,  // a list of strings
};

const char* to_string(param_type x);

struct param_spec {
  std::string name;
  param_type type = param_type::string;
  bool required = false;
  std::string default_value; // in YAML notation; empty: no default
  std::string doc;
  std::vector<std::string> choices; // for param_type::choice
  int64_t min = 0;                  // for integer: smallest accepted value
  // For integer: largest accepted value. Set it where a factory narrows the
  // value or a huge one would exhaust memory or time.
  int64_t max = std::numeric_limits<int64_t>::max();
};

// One parsed value. Only the member matching `type` is meaningful.
struct param_value {
  param_type type = param_type::string;
  std::string text; // string, choice, and the original spelling of all others
  int64_t integer = 0;
  double number = 0; // number; rate in events per second
  bool boolean = false;
  troupe::duration dur{0};
  uint64_t bytes = 0;
  std::vector<std::string> strings;
  source_location where;
};

// Parses `text` as `spec.type`. Returns an error message on failure.
std::string parse_param(const param_spec& spec, const std::string& text,
                        param_value& out);

// The validated parameters of one node or resource, defaults filled in.
class param_set {
public:
  bool has(const std::string& name) const;
  const param_value& get(const std::string& name) const; // throws if absent
  const std::string& str(const std::string& name) const;
  int64_t integer(const std::string& name) const;
  double number(const std::string& name) const;
  bool boolean(const std::string& name) const;
  troupe::duration dur(const std::string& name) const;
  uint64_t bytes(const std::string& name) const;
  const std::vector<std::string>& strings(const std::string& name) const;
  void set(const std::string& name, param_value v);

private:
  std::map<std::string, param_value> values_;
};

} // namespace troupe
