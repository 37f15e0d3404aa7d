#include "troupe/loader.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <sys/stat.h>
#include <type_traits>

#include "troupe/registry.hpp"
#include "troupe/validate.hpp"
#include "yaml_tree.hpp"

namespace troupe {

using detail::yaml_node;
using kind = yaml_node::kind;

std::string did_you_mean(const std::string& word,
                         const std::vector<std::string>& candidates) {
  auto distance = [](const std::string& a, const std::string& b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j)
      row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      size_t diag = row[0];
      row[0] = i;
      for (size_t j = 1; j <= b.size(); ++j) {
        auto up = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1,
                           diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
        diag = up;
      }
    }
    return row[b.size()];
  };
  std::string best;
  size_t best_d = std::max<size_t>(2, word.size() / 3) + 1;
  for (auto& c : candidates) {
    auto d = distance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

namespace {

bool valid_name(const std::string& s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_'))
    return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'))
      return false;
  return true;
}

// Upper bounds of the runtime and supervision numbers: generous, but far
// from where credit arithmetic (batch_size * 4, window - used) overflows
// or a window of records exhausts memory.
constexpr int64_t max_batch_size = 1 << 20;
constexpr int64_t max_window = 1 << 24;
constexpr uint64_t max_window_bytes = uint64_t{1} << 40;
constexpr int64_t max_max_attempts = 1000;
constexpr int64_t max_intensity = 1000000;

std::optional<duration> positive_duration(const std::string& text) {
  auto d = parse_duration(text);
  return d && d->count() > 0 ? d : std::nullopt;
}

class graph_loader {
public:
  graph_loader(const registry& reg, const load_options& opts,
               std::vector<diagnostic>& errors)
    : reg_(reg), opts_(opts), errors_(errors) {
  }

  void apply_overrides(yaml_node& root) {
    for (auto& o : opts_.overrides) {
      source_location cli{"<command line>", 0, 0};
      auto eq = o.find('=');
      if (eq == std::string::npos || eq == 0) {
        error(cli, "--set expects key=value, got '" + o + "'");
        continue;
      }
      auto path = o.substr(0, eq);
      yaml_node* cur = &root;
      std::stringstream parts(path);
      std::string part;
      bool ok = true;
      while (std::getline(parts, part, '.')) {
        if (cur->what == kind::null) {
          cur->what = kind::map;
        } else if (cur->what != kind::map) {
          error(cli, "--set " + path + ": '" + part
                       + "' is inside a value that is not a map");
          ok = false;
          break;
        }
        auto* next = cur->find(part);
        if (!next) {
          yaml_node key;
          key.what = kind::scalar;
          key.value = part;
          key.where = cli;
          yaml_node val;
          val.where = cli;
          cur->entries.emplace_back(std::move(key), std::move(val));
          next = &cur->entries.back().second;
        }
        cur = next;
      }
      if (!ok)
        continue;
      cur->what = kind::scalar;
      cur->value = o.substr(eq + 1);
      cur->quoted = false;
      cur->items.clear();
      cur->entries.clear();
      cur->where = cli;
    }
  }

  std::optional<graph_spec> load(yaml_node& root, const std::string& file) {
    apply_overrides(root);
    graph_spec g;
    g.file = file;
    if (root.what != kind::map) {
      error(root.where, "a graph file must be a map with version, nodes, ...");
      return std::nullopt;
    }
    check_fields(root, {"version", "name", "runtime", "resources", "nodes",
                        "supervision", "groups"});
    if (auto* v = root.find("version")) {
      auto s = scalar(*v, "version");
      if (s && *s != "1")
        error(v->where, "unsupported version '" + *s + "'; this troupe reads "
                                                     "version: 1");
    } else {
      error(root.where, "missing field 'version' (add `version: 1`)");
    }
    g.name = stem(file);
    if (auto* n = root.find("name"))
      if (auto s = scalar(*n, "name"))
        g.name = *s;
    if (auto* r = root.find("runtime"))
      load_runtime(*r, g.runtime);
    if (auto* s = root.find("supervision"))
      load_supervision(*s, g.supervision);
    if (auto* r = root.find("resources"))
      load_resources(*r, g);
    auto* nodes = root.find("nodes");
    if (!nodes || nodes->what == kind::null
        || (nodes->what == kind::map && nodes->entries.empty())) {
      error(nodes ? nodes->where : root.where,
            "the graph has no nodes; add at least a source and a sink under "
            "'nodes:'");
    } else if (nodes->what != kind::map) {
      error(nodes->where, std::string{"'nodes' must be a map, got "}
                            + nodes->kind_name());
    } else {
      load_nodes(*nodes, g);
      if (auto* gs = root.find("groups"))
        load_groups(*gs, g);
      // References, names, values, cycles, the topological order, the
      // types' own checks and files: the validator runtime::start() uses too.
      detail::validate_options vo;
      vo.broken = broken_;
      vo.deep = errors_.empty();
      for (auto& d : detail::validate(g, reg_, vo))
        errors_.push_back(std::move(d));
    }
    if (!errors_.empty())
      return std::nullopt;
    return g;
  }

private:
  static std::string stem(const std::string& path) {
    auto s = path.substr(path.find_last_of('/') + 1);
    return s.substr(0, s.find('.'));
  }

  void error(const source_location& where, std::string msg) {
    errors_.push_back({where, std::move(msg)});
  }

  void check_fields(const yaml_node& map, std::vector<std::string> allowed) {
    for (auto& [k, v] : map.entries)
      if (std::find(allowed.begin(), allowed.end(), k.value) == allowed.end())
        unknown_field(k, allowed);
  }

  void unknown_field(const yaml_node& key,
                     const std::vector<std::string>& allowed) {
    auto msg = "unknown field '" + key.value + "'";
    auto guess = did_you_mean(key.value, allowed);
    if (!guess.empty())
      msg += " (did you mean '" + guess + "'?)";
    error(key.where, msg);
  }

  // Resolves ${VAR} and ${VAR:-default} in a string value; a default may
  // itself hold ${...} (`${A:-${B:-x}}`), expanded only when it is used.
  std::optional<std::string> interpolate(const yaml_node& n) {
    return expand(n.value, n, 0);
  }

  std::optional<std::string> expand(const std::string& s, const yaml_node& n,
                                    int depth) {
    constexpr int max_nesting = 16;
    if (depth > max_nesting) {
      error(n.where, "${...} nested deeper than "
                       + std::to_string(max_nesting) + " levels in '"
                       + n.value + "'");
      return std::nullopt;
    }
    std::string out;
    size_t i = 0;
    while (i < s.size()) {
      if (s.compare(i, 2, "${") != 0) {
        out += s[i++];
        continue;
      }
      // The matching '}', skipping those of nested ${...}.
      size_t end = std::string::npos;
      int open = 0;
      for (size_t j = i + 2; j < s.size(); ++j) {
        if (s.compare(j, 2, "${") == 0) {
          ++open;
          ++j;
        } else if (s[j] == '}' && open-- == 0) {
          end = j;
          break;
        }
      }
      if (end == std::string::npos) {
        error(n.where, "unterminated ${...} in '" + n.value + "'");
        return std::nullopt;
      }
      auto expr = s.substr(i + 2, end - i - 2);
      std::optional<std::string> fallback;
      auto sep = expr.find(":-");
      if (sep != std::string::npos) {
        fallback = expr.substr(sep + 2);
        expr = expr.substr(0, sep);
      }
      if (!valid_name(expr)) {
        error(n.where, "bad variable name '" + expr + "' in '" + n.value + "'");
        return std::nullopt;
      }
      std::optional<std::string> val;
      if (opts_.env) {
        val = opts_.env(expr);
      } else if (auto* e = std::getenv(expr.c_str())) {
        val = std::string{e};
      }
      if (!val || (val->empty() && fallback)) {
        if (fallback) {
          val = expand(*fallback, n, depth + 1);
          if (!val)
            return std::nullopt;
        }
      }
      if (!val) {
        error(n.where, "environment variable '" + expr
                         + "' is not set (write ${" + expr
                         + ":-default} to give a default)");
        return std::nullopt;
      }
      out += *val;
      i = end + 1;
    }
    return out;
  }

  std::optional<std::string> scalar(const yaml_node& n,
                                    const std::string& field) {
    if (n.what != kind::scalar) {
      error(n.where, "'" + field + "' expects a single value, got "
                       + n.kind_name());
      return std::nullopt;
    }
    return interpolate(n);
  }

  template <class T, class Parse>
  void typed(const yaml_node& map, const std::string& field, T& out,
             Parse parse, const std::string& expected) {
    auto* n = map.find(field);
    if (!n)
      return;
    auto s = scalar(*n, field);
    if (!s)
      return;
    auto v = parse(*s);
    if (!v) {
      error(n->where, "'" + field + "' expects " + expected + ", got '" + *s
                        + "'");
      return;
    }
    out = static_cast<T>(*v);
  }

  // An integer field in [lo, hi]; `hi` never exceeds what T holds, so the
  // value is never truncated on its way into the spec.
  template <class T>
  void bounded(const yaml_node& map, const std::string& field, T& out,
               int64_t lo, int64_t hi, const std::string& expected) {
    static_assert(std::is_integral_v<T>);
    hi = static_cast<int64_t>(std::min<uint64_t>(
      static_cast<uint64_t>(hi),
      static_cast<uint64_t>(std::numeric_limits<T>::max())));
    typed(map, field, out,
          [lo, hi](const std::string& s) -> std::optional<int64_t> {
            auto v = parse_integer(s);
            if (v && *v >= lo && *v <= hi)
              return v;
            return std::nullopt;
          },
          expected + ", at most " + std::to_string(hi));
  }

  void load_runtime(const yaml_node& r, runtime_spec& rt) {
    if (!expect_map(r, "runtime"))
      return;
    check_fields(r, {"threads", "delivery", "shutdown_timeout", "batch_size",
                     "window", "window_bytes", "max_attempts",
                     "request_timeout"});
    if (auto* t = r.find("threads")) {
      auto s = scalar(*t, "threads");
      if (s && *s != "auto") {
        auto v = parse_integer(*s);
        if (!v || *v < 1 || *v > 256)
          error(t->where, "'threads' expects auto or 1..256, got '" + *s + "'");
        else
          rt.threads = static_cast<size_t>(*v);
      }
    }
    if (auto* d = r.find("delivery")) {
      auto s = scalar(*d, "delivery");
      if (s && *s == "at_least_once")
        rt.delivery = delivery_mode::at_least_once;
      else if (s && *s == "at_most_once")
        rt.delivery = delivery_mode::at_most_once;
      else if (s)
        error(d->where, "'delivery' expects at_least_once or at_most_once, "
                        "got '" + *s + "'");
    }
    // Zero would mean "wait forever" to some readers: troupe never does.
    typed(r, "shutdown_timeout", rt.shutdown_timeout, positive_duration,
          "a positive duration such as 20s");
    // Below a millisecond no request between actors can be answered: every
    // one would fail and burn the restart budget.
    typed(r, "request_timeout", rt.request_timeout,
          [](const std::string& x) -> std::optional<duration> {
            auto v = positive_duration(x);
            return v && *v >= std::chrono::milliseconds(1) ? v : std::nullopt;
          },
          "a duration of at least 1ms such as 30s");
    bounded(r, "batch_size", rt.batch_size, 1, max_batch_size,
            "a positive integer");
    bounded(r, "window", rt.window, 1, max_window, "a positive integer");
    typed(r, "window_bytes", rt.window_bytes,
          [](const std::string& x) -> std::optional<uint64_t> {
            auto v = parse_size(x);
            return v && *v > 0 && *v <= max_window_bytes ? v : std::nullopt;
          },
          "a positive size up to 1TiB such as 8MiB");
    bounded(r, "max_attempts", rt.max_attempts, 1, max_max_attempts,
            "a positive integer");
  }

  void load_supervision(const yaml_node& s, supervision_spec& sv) {
    if (!expect_map(s, "supervision"))
      return;
    check_fields(s, {"strategy", "intensity", "period", "backoff"});
    if (auto* st = s.find("strategy")) {
      auto v = scalar(*st, "strategy");
      if (v && !parse_strategy(*v, sv.strategy))
        error(st->where, "'strategy' expects one_for_one, one_for_all or "
                         "rest_for_one, got '" + *v + "'");
    }
    bounded(s, "intensity", sv.intensity, 0, max_intensity,
            "a whole number of restarts (0: never restart)");
    typed(s, "period", sv.period, positive_duration,
          "a positive duration such as 5s");
    if (auto* b = s.find("backoff")) {
      if (expect_map(*b, "backoff")) {
        check_fields(*b, {"min", "max", "jitter"});
        typed(*b, "min", sv.backoff.min, parse_duration, "a duration");
        typed(*b, "max", sv.backoff.max, parse_duration, "a duration");
        if (sv.backoff.max < sv.backoff.min)
          error(b->where, "backoff 'max' is shorter than 'min'");
        typed(*b, "jitter", sv.backoff.jitter,
              [](const std::string& x) -> std::optional<double> {
                auto v = parse_number(x);
                return v && *v >= 0 && *v <= 1 ? v : std::nullopt;
              },
              "a number between 0 and 1");
      }
    }
  }

  bool expect_map(const yaml_node& n, const std::string& field) {
    if (n.what == kind::map)
      return true;
    error(n.where, "'" + field + "' must be a map, got " + n.kind_name());
    return false;
  }

  // Parses `fields` (a node's or resource's map) against the type's schema.
  // `reserved` are the generic fields the caller handles itself.
  param_set load_params(const yaml_node& fields, const actor_type& type,
                        const std::vector<std::string>& reserved) {
    param_set ps;
    std::vector<std::string> allowed = reserved;
    for (auto& p : type.params)
      allowed.push_back(p.name);
    for (auto& [k, v] : fields.entries) {
      if (std::find(allowed.begin(), allowed.end(), k.value) == allowed.end()) {
        auto msg = "unknown field '" + k.value + "' for type '" + type.name
                   + "'";
        auto guess = did_you_mean(k.value, allowed);
        if (!guess.empty())
          msg += " (did you mean '" + guess + "'?)";
        error(k.where, msg);
      }
    }
    for (auto& p : type.params) {
      auto* n = fields.find(p.name);
      param_value pv;
      if (!n) {
        if (p.required) {
          error(fields.where, "missing required field '" + p.name + "' for type '"
                                + type.name + "' (" + p.doc + ")");
          continue;
        }
        if (p.default_value.empty())
          continue;
        parse_param(p, p.default_value, pv);
        ps.set(p.name, std::move(pv));
        continue;
      }
      pv.where = n->where;
      if (p.type == param_type::strings && n->what == kind::sequence) {
        pv.type = p.type;
        for (auto& item : n->items)
          if (auto s = scalar(item, p.name))
            pv.strings.push_back(*s);
        ps.set(p.name, std::move(pv));
        continue;
      }
      if (n->what != kind::scalar) {
        auto tn = std::string{to_string(p.type)};
        auto article = std::string{"aeiou"}.find(tn[0]) != std::string::npos
                         ? "an "
                         : "a ";
        error(n->where, "'" + p.name + "' expects " + article + tn + ", got "
                          + n->kind_name());
        continue;
      }
      auto s = interpolate(*n);
      if (!s)
        continue;
      if (auto msg = parse_param(p, *s, pv); !msg.empty()) {
        error(n->where, "'" + p.name + "': " + msg);
        continue;
      }
      ps.set(p.name, std::move(pv));
    }
    return ps;
  }

  const actor_type* lookup_type(const yaml_node& fields,
                                const std::string& owner) {
    auto* t = fields.find("type");
    if (!t) {
      error(fields.where, "'" + owner + "' has no 'type'");
      return nullptr;
    }
    auto name = scalar(*t, "type");
    if (!name)
      return nullptr;
    const actor_type* at = nullptr;
    for (auto* t : reg_.find_all(*name))
      if (!at || at->kind == actor_kind::source)
        at = t;
    if (at && !fields.find("inputs"))
      if (auto* src = reg_.find(*name, actor_kind::source);
          src && !fits_other_kind(fields, *src, *at))
        at = src;
    if (!at) {
      auto msg = "unknown actor type '" + *name + "'";
      auto guess = did_you_mean(*name, reg_.type_names());
      if (!guess.empty())
        msg += " (did you mean '" + guess + "'?)";
      msg += "; `troupe types` lists them";
      error(t->where, msg);
    }
    return at;
  }

  // True when `fields` name a parameter only `other` has: e.g. a `file` with
  // `format:` but no `inputs` is a sink that forgot its inputs, not a source.
  static bool fits_other_kind(const yaml_node& fields, const actor_type& self,
                              const actor_type& other) {
    auto has = [](const actor_type& t, const std::string& name) {
      for (auto& p : t.params)
        if (p.name == name)
          return true;
      return false;
    };
    for (auto& [k, _] : fields.entries)
      if (!has(self, k.value) && has(other, k.value))
        return true;
    return false;
  }

  void load_resources(const yaml_node& rs, graph_spec& g) {
    if (rs.what == kind::null)
      return;
    if (!expect_map(rs, "resources"))
      return;
    for (auto& [k, v] : rs.entries) {
      if (!valid_name(k.value))
        error(k.where, "bad resource name '" + k.value
                         + "' (letters, digits, _ and -)");
      if (!expect_map(v, k.value))
        continue;
      auto* type = lookup_type(v, k.value);
      if (!type)
        continue;
      if (type->kind != actor_kind::service) {
        error(v.find("type")->where,
              "'" + type->name + "' is a " + to_string(type->kind)
                + ", not a service; declare it under 'nodes:'");
        continue;
      }
      resource_spec r;
      r.name = k.value;
      r.type = type->name;
      r.where = k.where;
      r.params = load_params(v, *type, {"type"});
      g.resources.push_back(std::move(r));
    }
  }

  void load_nodes(const yaml_node& ns, graph_spec& g) {
    std::vector<node_spec> nodes;
    std::map<std::string, const actor_type*> types;
    std::vector<std::string> reserved{"type", "inputs", "workers", "ordered",
                                      "restart"};
    for (auto& [slot, _] : reg_.slots())
      reserved.push_back(slot);
    std::set<std::string> declared;
    for (auto& [k, v] : ns.entries) {
      declared.insert(k.value);
      if (!valid_name(k.value))
        error(k.where, "bad node name '" + k.value
                         + "' (letters, digits, _ and -; '.' is reserved for "
                           "ports such as hash.errors)");
      if (!expect_map(v, k.value))
        continue;
      auto* type = lookup_type(v, k.value);
      if (!type)
        continue;
      if (type->kind == actor_kind::service) {
        error(v.find("type")->where,
              "'" + type->name + "' is a service; declare it under "
                                 "'resources:' and reference it by name");
        continue;
      }
      node_spec n;
      n.name = k.value;
      n.type = type->name;
      n.is_source = type->kind == actor_kind::source;
      n.kind = type->kind;
      n.where = k.where;
      n.params = load_params(v, *type, reserved);
      load_inputs(v, n);
      if (auto* w = v.find("workers")) {
        if (auto s = scalar(*w, "workers")) {
          auto x = parse_integer(*s);
          if (!x || *x < 1 || *x > 1024)
            error(w->where, "'workers' expects 1..1024, got '" + *s + "'");
          else if (*x > 1 && !type->parallel)
            error(w->where, "type '" + type->name
                              + "' runs on one actor; 'workers' applies to "
                                "map and filter");
          else
            n.workers = static_cast<size_t>(*x);
        }
      }
      if (auto* rs = v.find("restart")) {
        auto x = scalar(*rs, "restart");
        if (x && !parse_restart_type(*x, n.restart))
          error(rs->where, "'restart' expects permanent, transient or "
                           "temporary, got '" + *x + "'");
      }
      if (auto* o = v.find("ordered")) {
        if (auto s = scalar(*o, "ordered")) {
          auto b = parse_bool(*s);
          if (!b)
            error(o->where, "'ordered' expects true or false, got '" + *s + "'");
          else
            n.ordered = *b;
        }
      }
      for (auto& [slot, proto] : reg_.slots()) {
        auto* ref = v.find(slot);
        if (!ref)
          continue;
        auto s = scalar(*ref, slot);
        if (!s)
          continue;
        auto r = std::find_if(g.resources.begin(), g.resources.end(),
                              [&](auto& x) { return x.name == *s; });
        if (r == g.resources.end()) {
          std::vector<std::string> names;
          for (auto& x : g.resources)
            names.push_back(x.name);
          auto msg = "'" + slot + "' refers to unknown resource '" + *s + "'";
          auto guess = did_you_mean(*s, names);
          if (!guess.empty())
            msg += " (did you mean '" + guess + "'?)";
          error(ref->where, msg);
          continue;
        }
        auto* rt = reg_.find(r->type, actor_kind::service);
        if (rt && rt->protocol != proto.first) {
          error(ref->where, "'" + slot + "' needs a resource speaking '"
                              + proto.first + "', but '" + *s + "' is a "
                              + r->type + " (protocol '" + rt->protocol + "')");
          continue;
        }
        n.resources[slot] = *s;
      }
      if (type->kind == actor_kind::source && !n.inputs.empty())
        error(v.find("inputs")->where,
              "'" + n.name + "' is a source (" + type->name
                + ") and takes no inputs");
      if (type->kind != actor_kind::source && n.inputs.empty()
          && !v.find("inputs"))
        error(k.where, "'" + n.name + "' is a " + to_string(type->kind) + " ("
                         + type->name + ") and needs 'inputs'");
      types[n.name] = type;
      nodes.push_back(std::move(n));
    }
    for (auto& n : nodes)
      g.nodes.push_back(std::move(n));
    for (auto& name : declared)
      if (!types.count(name))
        broken_.insert(name);
  }

  // groups: { NAME: { nodes: [...], supervision: {...}, parent: GROUP } }
  void load_groups(const yaml_node& gs, graph_spec& g) {
    if (gs.what == kind::null || !expect_map(gs, "groups"))
      return;
    std::map<std::string, std::string> owner; // node -> group
    for (auto& [k, v] : gs.entries) {
      if (!valid_name(k.value))
        error(k.where, "bad group name '" + k.value + "'");
      if (!expect_map(v, k.value))
        continue;
      check_fields(v, {"nodes", "supervision", "parent"});
      group_spec grp;
      grp.name = k.value;
      grp.where = k.where;
      grp.supervision = g.supervision;
      if (auto* sv = v.find("supervision"))
        load_supervision(*sv, grp.supervision);
      if (auto* p = v.find("parent"))
        if (auto s = scalar(*p, "parent")) {
          grp.parent = *s;
          if (!gs.find(*s) || *s == k.value)
            error(p->where, "'parent' of group '" + k.value
                              + "' must name another group, got '" + *s
                              + "'");
        }
      auto* ns = v.find("nodes");
      if (!ns || ns->what != kind::sequence || ns->items.empty()) {
        error(ns ? ns->where : v.where,
              "group '" + k.value + "' needs 'nodes', a list of node names");
      } else {
        for (auto& item : ns->items) {
          auto s = scalar(item, "nodes");
          if (!s)
            continue;
          auto n = std::find_if(g.nodes.begin(), g.nodes.end(),
                                 [&](auto& x) { return x.name == *s; });
          if (n == g.nodes.end()) {
            error(item.where, "group '" + k.value + "' names unknown node '"
                                + *s + "'");
            continue;
          }
          auto [it, fresh] = owner.emplace(*s, k.value);
          if (!fresh) {
            error(item.where, "node '" + *s + "' is already in group '"
                                + it->second + "'; a node has one supervisor");
            continue;
          }
          n->group = k.value;
          grp.nodes.push_back(*s);
        }
      }
      g.groups.push_back(std::move(grp));
    }
    // Parents must form a tree.
    for (auto& grp : g.groups) {
      std::set<std::string> seen{grp.name};
      auto parent = grp.parent;
      while (!parent.empty()) {
        if (!seen.insert(parent).second) {
          error(grp.where, "groups '" + grp.name
                             + "' and its parents form a cycle");
          break;
        }
        auto it = std::find_if(g.groups.begin(), g.groups.end(),
                               [&](auto& x) { return x.name == parent; });
        parent = it == g.groups.end() ? "" : it->parent;
      }
    }
  }

  void load_inputs(const yaml_node& v, node_spec& n) {
    auto* in = v.find("inputs");
    if (!in)
      return;
    std::vector<const yaml_node*> items;
    if (in->what == kind::scalar) {
      items.push_back(in);
    } else if (in->what == kind::sequence) {
      for (auto& i : in->items)
        items.push_back(&i);
      if (items.empty())
        error(in->where, "'inputs' is empty");
    } else {
      error(in->where, std::string{"'inputs' expects a list of node names, got "}
                         + in->kind_name());
      return;
    }
    for (auto* i : items) {
      auto s = scalar(*i, "inputs");
      if (!s)
        continue;
      input_ref ref;
      ref.where = i->where;
      auto dot = s->find('.');
      ref.node = s->substr(0, dot);
      if (dot != std::string::npos) {
        ref.port = s->substr(dot + 1);
        if (ref.port != "errors") {
          error(i->where, "unknown output '" + ref.port + "' in '" + *s
                            + "'; a node has its data output ('"
                            + ref.node + "') and '" + ref.node + ".errors'");
          continue;
        }
      }
      n.inputs.push_back(std::move(ref));
    }
  }

  const registry& reg_;
  const load_options& opts_;
  std::vector<diagnostic>& errors_;
  std::set<std::string> broken_; // declared nodes whose definition failed
};

} // namespace

load_result load_graph_text(const std::string& text, const std::string& file,
                            const registry& reg, const load_options& opts) {
  load_result res;
  auto tree = detail::parse_yaml(text, file, res.errors);
  if (!tree)
    return res;
  graph_loader loader(reg, opts, res.errors);
  res.graph = loader.load(*tree, file);
  if (!res.errors.empty())
    res.graph.reset();
  return res;
}

load_result load_graph_file(const std::string& path, const registry& reg,
                            const load_options& opts) {
  auto fail = [&](std::string msg) {
    load_result res;
    res.errors.push_back({{path, 1, 1}, std::move(msg)});
    return res;
  };
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return fail(std::string{"cannot read file: "} + std::strerror(errno));
  if (S_ISDIR(st.st_mode))
    return fail("is a directory, not a configuration file");
  bool regular = S_ISREG(st.st_mode);
  // A regular file's size is known: refuse a huge one before reading it.
  if (regular && static_cast<uint64_t>(st.st_size) > detail::max_config_bytes)
    return fail("file is " + std::to_string(st.st_size)
                + " bytes; configuration files are limited to 1 MiB");
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return fail("cannot read file");
  // Pipes (`<(cat x.yaml)`, /dev/stdin) have no size: read in chunks and
  // stop one byte past the limit, so an endless stream costs nothing.
  std::string text;
  char chunk[16384];
  while (text.size() <= detail::max_config_bytes) {
    in.read(chunk, sizeof(chunk));
    auto got = in.gcount();
    if (got <= 0)
      break;
    text.append(chunk, static_cast<size_t>(got));
  }
  if (in.bad())
    return fail("cannot read file");
  if (text.size() > detail::max_config_bytes)
    return fail("file is larger than 1 MiB; configuration files are limited "
                "to 1 MiB");
  return load_graph_text(text, path, reg, opts);
}

} // namespace troupe
