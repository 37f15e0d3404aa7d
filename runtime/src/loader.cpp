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
#include <tuple>
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

// A ${VAR} name.
bool valid_name(const std::string& s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_'))
    return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'))
      return false;
  return true;
}

// The parser: YAML tree -> graph_spec with the position of every field.
// It reports only what is about the YAML itself (a map where a list is
// expected, unknown fixed keys, ${VAR}, values that do not even parse or fit
// their field, enum spellings); everything that could be wrong in a spec
// built in code too is validate()'s (validate.hpp).
class graph_parser {
public:
  graph_parser(const registry& reg, const load_options& opts,
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
      error(nodes ? nodes->where : root.where, detail::no_nodes_message);
    } else if (nodes->what != kind::map) {
      error(nodes->where, std::string{"'nodes' must be a map, got "}
                            + nodes->kind_name());
    } else {
      load_nodes(*nodes, g);
      if (auto* gs = root.find("groups"))
        load_groups(*gs, g);
      // Everything else, for YAML and code alike. After errors here it
      // checks what it can without repeating them (validate.hpp).
      detail::validate_options vo;
      vo.broken = broken_;
      vo.reported = reported_;
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

  // A runtime or supervision setting: parsed here, its range checked by
  // validate(). A value that does not parse, or does not fit its field
  // (a negative count, one beyond 32 bits), gets validate()'s message.
  template <class T, class Parse>
  void setting(const yaml_node& map, const std::string& field, T& out,
               field_positions& where, Parse parse) {
    auto* n = map.find(field);
    if (!n)
      return;
    auto s = scalar(*n, field);
    if (!s)
      return;
    where[field] = n->where;
    auto v = parse(*s);
    if (!v) {
      error(n->where, detail::bad_setting(field, *s));
      return;
    }
    out = static_cast<T>(*v);
  }

  // An integer setting that must fit T (and be at least `lo`).
  template <class T>
  void count(const yaml_node& map, const std::string& field, T& out,
             field_positions& where, int64_t lo = 0) {
    static_assert(std::is_integral_v<T>);
    setting(map, field, out, where,
            [lo](const std::string& s) -> std::optional<int64_t> {
              auto v = parse_integer(s);
              if (v && *v >= lo
                  && static_cast<uint64_t>(*v)
                       <= static_cast<uint64_t>(std::numeric_limits<T>::max()))
                return v;
              return std::nullopt;
            });
  }

  void load_runtime(const yaml_node& r, runtime_spec& rt) {
    if (!expect_map(r, "runtime"))
      return;
    check_fields(r, {"threads", "delivery", "shutdown_timeout", "batch_size",
                     "window", "window_bytes", "max_attempts",
                     "request_timeout", "deadlock"});
    // `auto` is how YAML spells 0 (one thread per core); 0 is no spelling.
    setting(r, "threads", rt.threads, rt.where,
            [](const std::string& s) -> std::optional<size_t> {
              if (s == "auto")
                return size_t{0};
              auto v = parse_integer(s);
              if (v && *v >= 1)
                return static_cast<size_t>(*v);
              return std::nullopt;
            });
    if (auto* d = r.find("delivery")) {
      auto s = scalar(*d, "delivery");
      rt.where["delivery"] = d->where;
      if (s && *s == "at_least_once")
        rt.delivery = delivery_mode::at_least_once;
      else if (s && *s == "at_most_once")
        rt.delivery = delivery_mode::at_most_once;
      else if (s)
        error(d->where, "'delivery' expects at_least_once or at_most_once, "
                        "got '" + *s + "'");
    }
    setting(r, "shutdown_timeout", rt.shutdown_timeout, rt.where,
            parse_duration);
    setting(r, "request_timeout", rt.request_timeout, rt.where,
            parse_duration);
    count(r, "batch_size", rt.batch_size, rt.where);
    count(r, "window", rt.window, rt.where);
    setting(r, "window_bytes", rt.window_bytes, rt.where, parse_size);
    count(r, "max_attempts", rt.max_attempts, rt.where);
    if (auto* d = r.find("deadlock")) {
      rt.where["deadlock"] = d->where;
      if (expect_map(*d, "deadlock"))
        load_deadlock(*d, rt);
    }
  }

  void load_deadlock(const yaml_node& d, runtime_spec& rt) {
    check_fields(d, {"detect", "probe_interval", "policy"});
    setting(d, "detect", rt.deadlock.detect, rt.where, parse_bool);
    setting(d, "probe_interval", rt.deadlock.probe_interval, rt.where,
            parse_duration);
    if (auto* p = d.find("policy")) {
      auto s = scalar(*p, "policy");
      rt.where["policy"] = p->where;
      if (s && !parse_deadlock_policy(*s, rt.deadlock.policy))
        error(p->where, "'policy' expects report, fail or restart, got '"
                          + *s + "'");
    }
  }

  void load_supervision(const yaml_node& s, supervision_spec& sv) {
    if (!expect_map(s, "supervision"))
      return;
    check_fields(s, {"strategy", "intensity", "period", "backoff"});
    if (auto* st = s.find("strategy")) {
      auto v = scalar(*st, "strategy");
      sv.where["strategy"] = st->where;
      if (v && !parse_strategy(*v, sv.strategy))
        error(st->where, "'strategy' expects one_for_one, one_for_all or "
                         "rest_for_one, got '" + *v + "'");
    }
    count(s, "intensity", sv.intensity, sv.where);
    setting(s, "period", sv.period, sv.where, parse_duration);
    if (auto* b = s.find("backoff")) {
      sv.where["backoff"] = b->where;
      if (expect_map(*b, "backoff")) {
        check_fields(*b, {"min", "max", "jitter"});
        setting(*b, "min", sv.backoff.min, sv.where, parse_duration);
        setting(*b, "max", sv.backoff.max, sv.where, parse_duration);
        setting(*b, "jitter", sv.backoff.jitter, sv.where, parse_number);
      }
    }
  }

  bool expect_map(const yaml_node& n, const std::string& field) {
    if (n.what == kind::map)
      return true;
    error(n.where, "'" + field + "' must be a map, got " + n.kind_name());
    return false;
  }

  // One parameter as written, for validate() to parse against the schema.
  void raw_param(const yaml_node& key, const yaml_node& v, param_set& ps) {
    param_value pv;
    pv.where = v.where;
    pv.name_where = key.where;
    pv.unparsed = v.kind_name();
    if (v.what == kind::scalar) {
      auto s = interpolate(v);
      if (s)
        pv.text = *s;
      else
        pv.unparsed = "reported";
    } else if (v.what == kind::sequence) {
      for (auto& item : v.items) {
        auto s = scalar(item, key.value);
        if (!s) {
          pv.unparsed = "reported";
          continue;
        }
        pv.strings.push_back(*s);
      }
    }
    ps.set(key.value, std::move(pv));
  }

  // A field of resource `v` that names another resource (`next: b`): a
  // registered slot, unless the resource's service type has a parameter of
  // that name. The validator says when its type does not call through it.
  bool is_resource_slot(const yaml_node& v, const std::string& field) const {
    if (!reg_.slot_protocol(field))
      return false;
    auto* type = v.find("type");
    if (!type || type->what != kind::scalar)
      return true;
    auto* t = reg_.find(type->value, actor_kind::service);
    return !t
           || std::none_of(t->params.begin(), t->params.end(),
                           [&](const param_spec& p) { return p.name == field; });
  }

  void load_resources(const yaml_node& rs, graph_spec& g) {
    if (rs.what == kind::null)
      return;
    if (!expect_map(rs, "resources"))
      return;
    for (auto& [k, v] : rs.entries) {
      if (!expect_map(v, k.value))
        continue;
      resource_spec r;
      r.name = k.value;
      r.where = k.where;
      r.field_where[""] = v.where;
      for (auto& [fk, fv] : v.entries) {
        if (fk.value == "type") {
          r.field_where["type"] = fv.where;
          if (auto s = scalar(fv, "type"))
            r.type = *s;
        } else if (is_resource_slot(v, fk.value)) {
          r.field_where[fk.value] = fv.where;
          if (auto s = scalar(fv, fk.value))
            r.resources[fk.value] = *s;
        } else {
          raw_param(fk, fv, r.params);
        }
      }
      g.resources.push_back(std::move(r));
    }
  }

  void load_nodes(const yaml_node& ns, graph_spec& g) {
    for (auto& [k, v] : ns.entries) {
      if (!expect_map(v, k.value)) {
        broken_.insert(k.value);
        continue;
      }
      node_spec n;
      n.name = k.value;
      n.where = k.where;
      n.field_where[""] = v.where;
      bool ok = true;
      for (auto& [fk, fv] : v.entries) {
        auto& field = fk.value;
        if (field == "type") {
          n.field_where["type"] = fv.where;
          if (auto s = scalar(fv, "type"))
            n.type = *s;
          else
            ok = false;
        } else if (field == "inputs") {
          n.field_where["inputs"] = fv.where;
          load_inputs(fv, n);
        } else if (field == "workers") {
          n.field_where["workers"] = fv.where;
          if (auto s = scalar(fv, "workers")) {
            auto x = parse_integer(*s);
            if (!x || *x < 0)
              error(fv.where, detail::bad_setting("workers", *s));
            else
              n.workers = static_cast<size_t>(*x);
          }
        } else if (field == "restart") {
          n.field_where["restart"] = fv.where;
          auto x = scalar(fv, "restart");
          if (x && !parse_restart_type(*x, n.restart))
            error(fv.where, "'restart' expects permanent, transient or "
                            "temporary, got '" + *x + "'");
        } else if (field == "ordered") {
          n.field_where["ordered"] = fv.where;
          if (auto s = scalar(fv, "ordered")) {
            auto b = parse_bool(*s);
            if (!b)
              error(fv.where, "'ordered' expects true or false, got '" + *s
                                + "'");
            else
              n.ordered = *b;
          }
        } else if (field == "blocking") {
          n.field_where["blocking"] = fv.where;
          if (auto s = scalar(fv, "blocking")) {
            auto b = parse_bool(*s);
            if (!b)
              error(fv.where, "'blocking' expects true or false, got '" + *s
                                + "'");
            else
              n.blocking = *b;
          }
        } else if (field == "partition_by") {
          n.field_where["partition_by"] = fv.where;
          if (auto s = scalar(fv, "partition_by")) {
            if (*s == "key")
              n.partition_by_key = true;
            else if (*s != "none")
              error(fv.where, "'partition_by' expects key or none, got '" + *s
                                + "'");
          }
        } else if (reg_.slot_protocol(field)) {
          n.field_where[field] = fv.where;
          if (auto s = scalar(fv, field))
            n.resources[field] = *s;
        } else {
          raw_param(fk, fv, n.params);
        }
      }
      if (!ok) {
        broken_.insert(n.name);
        continue;
      }
      g.nodes.push_back(std::move(n));
    }
  }

  // groups: { NAME: { nodes: [...], supervision: {...}, parent: GROUP } }
  void load_groups(const yaml_node& gs, graph_spec& g) {
    if (gs.what == kind::null || !expect_map(gs, "groups"))
      return;
    for (auto& [k, v] : gs.entries) {
      if (!expect_map(v, k.value)) {
        broken_.insert(k.value);
        continue;
      }
      check_fields(v, {"nodes", "supervision", "parent"});
      group_spec grp;
      grp.name = k.value;
      grp.where = k.where;
      grp.field_where[""] = v.where;
      grp.supervision = g.supervision;
      // Inherited values keep the root's positions: a problem with one is
      // reported once, there.
      if (auto* sv = v.find("supervision"))
        load_supervision(*sv, grp.supervision);
      if (auto* p = v.find("parent")) {
        grp.field_where["parent"] = p->where;
        if (auto s = scalar(*p, "parent"))
          grp.parent = *s;
      }
      if (auto* ns = v.find("nodes")) {
        grp.field_where["nodes"] = ns->where;
        if (ns->what == kind::sequence) {
          for (auto& item : ns->items)
            if (auto s = scalar(item, "nodes")) {
              grp.nodes.push_back(*s);
              grp.nodes_where.push_back(item.where);
            }
        } else if (ns->what != kind::null) {
          error(ns->where, "group '" + k.value
                             + "' needs 'nodes', a list of node names");
          broken_.insert(k.value);
          continue;
        }
      }
      g.groups.push_back(std::move(grp));
    }
  }

  void load_inputs(const yaml_node& in, node_spec& n) {
    std::vector<const yaml_node*> items;
    if (in.what == kind::scalar) {
      items.push_back(&in);
    } else if (in.what == kind::sequence) {
      for (auto& i : in.items)
        items.push_back(&i);
    } else {
      error(in.where, std::string{"'inputs' expects a list of node names, got "}
                        + in.kind_name());
      reported_.insert(n.name + ".inputs");
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
      if (dot != std::string::npos)
        ref.port = s->substr(dot + 1);
      n.inputs.push_back(std::move(ref));
    }
  }

  const registry& reg_;
  const load_options& opts_;
  std::vector<diagnostic>& errors_;
  // Nodes and groups declared but not parsed (reported here): references
  // to them are not reported again.
  std::set<std::string> broken_;
  std::set<std::string> reported_; // "node.field" reported here
};

} // namespace

load_result load_graph_text(const std::string& text, const std::string& file,
                            const registry& reg, const load_options& opts) {
  load_result res;
  auto tree = detail::parse_yaml(text, file, res.errors);
  if (!tree)
    return res;
  graph_parser loader(reg, opts, res.errors);
  res.graph = loader.load(*tree, file);
  if (!res.errors.empty())
    res.graph.reset();
  // Parser and validator find problems in their own order: report them in
  // the order they appear in the file.
  std::stable_sort(res.errors.begin(), res.errors.end(),
                   [](const diagnostic& a, const diagnostic& b) {
                     return std::tie(a.where.line, a.where.column)
                            < std::tie(b.where.line, b.where.column);
                   });
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
