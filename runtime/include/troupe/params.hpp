// Parameter schemas and validated parameter values.
//
// Every actor type declares its parameters as a list of param_spec. The
// validator (validate.hpp) checks a node's parameters against that schema
// (types, units, ranges, required fields, unknown names), parses the values
// the YAML parser left as text, fills defaults, and hands the type's factory a
// param_set whose values are parsed and in range: a factory never sees raw
// YAML nor a value its schema forbids.
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
  source_location where;      // of the value (YAML)
  source_location name_where; // of its name (YAML)
  // Set by the YAML parser, which does not know the schema: what it saw
  // ("a scalar", "a list", "a map", "null"; "reported" when it already
  // reported the value, e.g. an unset ${VAR}), with `text` (or `strings` for
  // a list) as written. validate() parses it against the schema and clears
  // it. Empty for a value built in code, whose `type` and member are set.
  std::string unparsed;
};

// Parses `text` as `spec.type`. Returns an error message on failure.
std::string parse_param(const param_spec& spec, const std::string& text,
                        param_value& out);

// Checks a parsed value (one built in code) against `spec`: its type, the
// integer bounds, a finite number, a rate and duration in range, a choice
// among the choices. Returns the message parse_param gives for the same
// value written as text, or "" when it fits.
std::string check_param(const param_spec& spec, const param_value& v);

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
  // Values the validator parses in place.
  param_value* find(const std::string& name);
  std::vector<std::string> names() const; // sorted

private:
  std::map<std::string, param_value> values_;
};

} // namespace troupe
