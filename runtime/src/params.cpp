#include "troupe/params.hpp"

#include <cmath>
#include <stdexcept>

namespace troupe {

const char* to_string(param_type x) {
  switch (x) {
    case param_type::string:
      return "string";
    case param_type::integer:
      return "integer";
    case param_type::number:
      return "number";
    case param_type::boolean:
      return "boolean";
    case param_type::time_span:
      return "duration";
    case param_type::rate:
      return "rate";
    case param_type::size:
      return "size";
    case param_type::choice:
      return "choice";
    default:
      return "list of strings";
  }
}

std::string parse_param(const param_spec& spec, const std::string& text,
                        param_value& out) {
  out.type = spec.type;
  out.text = text;
  switch (spec.type) {
    case param_type::string:
      return {};
    case param_type::integer: {
      auto v = parse_integer(text);
      if (!v)
        return "expected an integer, got '" + text + "'";
      out.integer = *v;
      return check_param(spec, out);
    }
    case param_type::number: {
      auto v = parse_number(text);
      if (!v)
        return "expected a finite number such as 0.5, got '" + text + "'";
      out.number = *v;
      return {};
    }
    case param_type::boolean: {
      auto v = parse_bool(text);
      if (!v)
        return "expected true or false, got '" + text + "'";
      out.boolean = *v;
      return {};
    }
    case param_type::time_span: {
      auto v = parse_duration(text);
      if (!v)
        return "expected a duration such as 250ms, 5s or 10m (at most "
               "1000000000s, no fraction of a nanosecond), got '" + text + "'";
      out.dur = *v;
      return {};
    }
    case param_type::rate: {
      auto v = parse_rate(text);
      if (!v)
        return "expected a rate such as 2/s or 100/m (between 1/1000000000s "
               "and 1000M/s), got '" + text + "'";
      out.number = *v;
      return {};
    }
    case param_type::size: {
      auto v = parse_size(text);
      if (!v)
        return "expected a size such as 512, 64KiB or 1MiB (at most 4 EiB), "
               "got '" + text + "'";
      out.bytes = *v;
      return {};
    }
    case param_type::choice:
      return check_param(spec, out);
    case param_type::strings:
      out.strings.push_back(text);
      return {};
  }
  return "unsupported parameter type";
}

namespace {

// How a code-built value reads in a message: its text, else its value.
std::string spelling(const param_value& v) {
  if (!v.text.empty())
    return v.text;
  switch (v.type) {
    case param_type::integer:
      return std::to_string(v.integer);
    case param_type::number:
      return std::to_string(v.number);
    case param_type::time_span:
      return std::to_string(v.dur.count()) + "ns";
    case param_type::rate:
      return std::to_string(v.number) + "/s";
    case param_type::size:
      return std::to_string(v.bytes);
    case param_type::boolean:
      return v.boolean ? "true" : "false";
    default:
      return v.text;
  }
}

} // namespace

std::string check_param(const param_spec& spec, const param_value& v) {
  if (v.type != spec.type) {
    auto want = std::string{to_string(spec.type)};
    auto got = std::string{to_string(v.type)};
    auto article = [](const std::string& w) {
      return std::string{"aeiou"}.find(w[0]) != std::string::npos ? "an "
                                                                   : "a ";
    };
    return std::string{"expects "} + article(want) + want + " value, got " + article(got)
           + got;
  }
  auto text = spelling(v);
  switch (spec.type) {
    case param_type::integer:
      if (v.integer < spec.min)
        return "must be at least " + std::to_string(spec.min) + ", got "
               + text;
      if (v.integer > spec.max)
        return "must be at most " + std::to_string(spec.max) + ", got "
               + text;
      return {};
    case param_type::number:
      if (!std::isfinite(v.number))
        return "expected a finite number such as 0.5, got '" + text + "'";
      return {};
    case param_type::time_span:
      if (v.dur.count() < 0 || v.dur > max_duration)
        return "expected a duration such as 250ms, 5s or 10m (at most "
               "1000000000s, no fraction of a nanosecond), got '" + text + "'";
      return {};
    case param_type::rate:
      if (!std::isfinite(v.number) || v.number < min_rate
          || v.number > max_rate)
        return "expected a rate such as 2/s or 100/m (between 1/1000000000s "
               "and 1000M/s), got '" + text + "'";
      return {};
    case param_type::choice: {
      for (auto& c : spec.choices)
        if (c == v.text)
          return {};
      std::string all;
      for (auto& c : spec.choices)
        all += (all.empty() ? "" : ", ") + c;
      return "expected one of " + all + ", got '" + v.text + "'";
    }
    default:
      return {};
  }
}

param_value* param_set::find(const std::string& name) {
  auto i = values_.find(name);
  return i == values_.end() ? nullptr : &i->second;
}

std::vector<std::string> param_set::names() const {
  std::vector<std::string> out;
  for (auto& [k, _] : values_)
    out.push_back(k);
  return out;
}

bool param_set::has(const std::string& name) const {
  return values_.count(name) > 0;
}

const param_value& param_set::get(const std::string& name) const {
  auto i = values_.find(name);
  if (i == values_.end())
    throw std::out_of_range("no parameter '" + name + "'");
  return i->second;
}

const std::string& param_set::str(const std::string& name) const {
  return get(name).text;
}
int64_t param_set::integer(const std::string& name) const {
  return get(name).integer;
}
double param_set::number(const std::string& name) const {
  return get(name).number;
}
bool param_set::boolean(const std::string& name) const {
  return get(name).boolean;
}
duration param_set::dur(const std::string& name) const {
  return get(name).dur;
}
uint64_t param_set::bytes(const std::string& name) const {
  return get(name).bytes;
}
const std::vector<std::string>&
param_set::strings(const std::string& name) const {
  return get(name).strings;
}
void param_set::set(const std::string& name, param_value v) {
  values_[name] = std::move(v);
}

} // namespace troupe
