#include "troupe/validate.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include <unistd.h>

#include "request_graph.hpp"
#include "troupe/loader.hpp"
#include "troupe/registry.hpp"

namespace troupe {

namespace fs = std::filesystem;

namespace {

// One file a graph touches, from a `path` or `checkpoint` parameter.
struct path_use {
  enum role_type { input, output, checkpoint } role;
  std::string node;
  std::string text;
  fs::path real; // weakly canonical, absolute
  bool shared_ok = false; // a device or pipe: may be named twice
  source_location where;
};

const char* verb(path_use::role_type r) {
  switch (r) {
    case path_use::input:
      return "reads";
    case path_use::output:
      return "writes";
    default:
      return "keeps its checkpoint in";
  }
}

fs::path real_path(const std::string& text) {
  std::error_code ec;
  auto abs = fs::absolute(text, ec);
  if (ec)
    return fs::path{text}.lexically_normal();
  // A symlink whose target does not exist yet (a sink's file before the
  // run) is still that target: weakly_canonical would keep the link's own
  // name, and writing through it would land on the sink's output.
  for (int hops = 0; hops < 40 && fs::is_symlink(abs, ec); ++hops) {
    auto target = fs::read_symlink(abs, ec);
    if (ec)
      break;
    abs = target.is_absolute() ? target : abs.parent_path() / target;
  }
  auto real = fs::weakly_canonical(abs, ec);
  return ec ? abs.lexically_normal() : real;
}

// Two names of one file: the same real path, or (hard links) the same
// device and inode.
bool same_file(const fs::path& a, const fs::path& b) {
  if (a == b)
    return true;
  std::error_code ec;
  return fs::equivalent(a, b, ec) && !ec;
}

bool is_device(const fs::path& p) {
  std::error_code ec;
  auto st = fs::status(p, ec);
  return !ec && fs::exists(st) && !fs::is_regular_file(st)
         && !fs::is_directory(st);
}

std::vector<path_use> collect_paths(const graph_spec& g) {
  std::vector<path_use> out;
  for (auto& n : g.nodes) {
    auto add = [&](const std::string& param, path_use::role_type role) {
      if (!n.params.has(param))
        return;
      auto& pv = n.params.get(param);
      path_use u{role, n.name, pv.text, {}, false,
                 pv.where.file.empty() ? n.where : pv.where};
      if (!u.text.empty()) {
        u.real = real_path(u.text);
        u.shared_ok = is_device(u.real);
      }
      out.push_back(std::move(u));
    };
    if (n.is_source) {
      add("path", path_use::input);
      add("checkpoint", path_use::checkpoint);
    } else {
      add("path", path_use::output);
    }
  }
  return out;
}

// Why `a` and `b` (the later one) may not name one file, or "".
std::string overlap(const path_use& a, const path_use& b) {
  using r = path_use::role_type;
  if (a.shared_ok || a.text.empty() || b.text.empty()
      || !same_file(a.real, b.real))
    return {};
  if (a.role == r::input && b.role == r::input)
    return {}; // two readers of one file are fine
  std::string why;
  if (a.role == r::output && b.role == r::output)
    why = "two sinks on one file overwrite each other";
  else if (a.role == r::checkpoint && b.role == r::checkpoint)
    why = "two sources would overwrite each other's checkpoint";
  else if (a.role == r::input || b.role == r::input)
    why = "writing the file a source reads destroys the input";
  else
    why = "a checkpoint and an output in one file corrupt each other";
  return "'" + b.node + "' " + verb(b.role) + " '" + b.text + "', which '"
         + a.node + "' " + verb(a.role) + " too"
         + (a.text != b.text ? " (as '" + a.text + "')" : std::string{})
         + ": " + why;
}

// The closest folder of `p` that exists (p itself when it exists).
fs::path existing_ancestor(fs::path p) {
  std::error_code ec;
  while (!p.empty() && !fs::exists(p, ec)) {
    auto parent = p.parent_path();
    if (parent == p)
      break;
    p = parent;
  }
  return p;
}

} // namespace

namespace detail {

const char* const no_nodes_message
  = "the graph has no nodes; add at least a source and a sink under "
    "'nodes:'";

std::string bad_setting(const std::string& field, const std::string& got) {
  static const std::map<std::string, std::string> expects{
    {"threads", "auto or 1..256"},
    {"shutdown_timeout", "a positive duration such as 20s"},
    {"request_timeout", "a duration of at least 1ms such as 30s"},
    {"batch_size", "a positive integer, at most 1048576"},
    {"window", "a positive integer, at most 16777216"},
    {"window_bytes", "a positive size up to 1TiB such as 8MiB"},
    {"max_attempts", "a positive integer, at most 1000"},
    {"probe_interval", "a duration of at least 1ms such as 500ms"},
    {"detect", "true or false"},
    {"intensity", "a whole number of restarts (0: never restart), at most "
                  "1000000"},
    {"period", "a positive duration such as 5s"},
    {"min", "a duration"},
    {"max", "a duration"},
    {"jitter", "a number between 0 and 1"},
    {"workers", "1..1024"},
  };
  auto i = expects.find(field);
  return "'" + field + "' expects "
         + (i == expects.end() ? std::string{"a valid value"} : i->second)
         + ", got '" + got + "'";
}

namespace {

// Upper bounds of the runtime and supervision numbers: generous, but far
// from where credit arithmetic (batch_size * 4, window - used) overflows
// or a window of records exhausts memory.
constexpr size_t max_batch_size = 1 << 20;
constexpr size_t max_window = 1 << 24;
constexpr uint64_t max_window_bytes = uint64_t{1} << 40;
constexpr uint32_t max_max_attempts = 1000;
constexpr uint32_t max_intensity = 1000000;

class validator {
public:
  // `g.resources` from index `own` on are already running (a runtime's
  // own): their slots may be named, they are not checked again.
  validator(graph_spec& g, const registry& reg, const validate_options& opts,
            size_t own = SIZE_MAX)
    : g_(g), reg_(reg), opts_(opts),
      own_(std::min(own, g.resources.size())) {
  }

  // A resource outside any graph (runtime resources): its name, its type,
  // its parameters and its slots, as in a graph.
  std::vector<diagnostic> run_resources() {
    names();
    request_vertices();
    resources();
    request_cycles();
    return finish();
  }

  std::vector<diagnostic> run() {
    if (g_.nodes.empty()) {
      error({}, "", no_nodes_message);
      return std::move(out_);
    }
    names();
    resolve_types(true);
    request_vertices();
    references();
    node_fields();
    resources();
    request_cycles();
    values();
    groups();
    if (!out_.empty() || !opts_.deep)
      return finish(); // cycles, hooks and files need a sound graph
    order();
    if (!out_.empty())
      return finish();
    resources_in_order();
    hooks();
    functions();
    files();
    return finish();
  }

private:
  // Once, in the order found: a group inheriting the root's supervision
  // must not repeat the root's problem at the root's position.
  std::vector<diagnostic> finish() {
    std::vector<diagnostic> out;
    for (auto& d : out_) {
      auto same = [&](const diagnostic& x) {
        return x.message == d.message && x.where.str() == d.where.str();
      };
      if (std::find_if(out.begin(), out.end(), same) == out.end())
        out.push_back(std::move(d));
    }
    return out;
  }

  source_location at(const source_location& w) const {
    if (!w.file.empty())
      return w;
    return {g_.file.empty() ? "<graph>" : g_.file, 1, 1};
  }

  // `who` prefixes messages about code-built specs, which have no position.
  void error(const source_location& w, const std::string& who,
             std::string msg) {
    if (w.file.empty() && !who.empty())
      msg = who + ": " + msg;
    out_.push_back({at(w), std::move(msg)});
  }

  static std::string who(const node_spec& n) {
    return "node '" + n.name + "'";
  }

  static const source_location& pos(const field_positions& where,
                                    const std::string& field) {
    static const source_location none;
    auto i = where.find(field);
    return i == where.end() ? none : i->second;
  }

  const node_spec* find(const std::string& name) const {
    auto i = index_.find(name);
    return i == index_.end() ? nullptr : &g_.nodes[i->second];
  }

  static bool valid_name(const std::string& s) {
    if (s.empty()
        || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_'))
      return false;
    for (char c : s)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_'
            || c == '-'))
        return false;
    return true;
  }

  // Well-formed and unique names of nodes, resources and groups.
  void names() {
    std::map<std::string, int> nodes, resources, groups;
    for (auto& n : g_.nodes) {
      if (n.name.empty())
        error(n.where, "", "a node has no name");
      else if (!valid_name(n.name))
        error(n.where, "", "bad node name '" + n.name
                             + "' (letters, digits, _ and -; '.' is reserved "
                               "for ports such as hash.errors)");
      if (nodes[n.name]++ == 1)
        error(n.where, who(n), "node name '" + n.name + "' is used twice");
    }
    for (size_t i = 0; i < own_; ++i) {
      auto& r = g_.resources[i];
      if (!valid_name(r.name))
        error(r.where, "", "bad resource name '" + r.name
                             + "' (letters, digits, _ and -)");
      if (resources[r.name]++ == 1)
        error(r.where, "resource '" + r.name + "'",
              "resource name '" + r.name + "' is used twice");
    }
    for (auto& grp : g_.groups) {
      if (!valid_name(grp.name))
        error(grp.where, "", "bad group name '" + grp.name + "'");
      if (groups[grp.name]++ == 1)
        error(grp.where, "group '" + grp.name + "'",
              "group name '" + grp.name + "' is used twice");
    }
  }

  // Each node's type and kind, resolved once: the only type of its name,
  // or of a source and another kind of one name, the source when the node
  // has no inputs (or `is_source` says so), unless it names a parameter only
  // the other kind has (a `file` with `format:` and no inputs is a sink that
  // forgot its inputs, not a source). Sets `kind` and `is_source`.
  void resolve_types(bool report) {
    types_.assign(g_.nodes.size(), nullptr);
    index_.clear();
    for (size_t i = 0; i < g_.nodes.size(); ++i) {
      auto& n = g_.nodes[i];
      index_.emplace(n.name, i);
      if (n.type.empty()) {
        if (report)
          error(n.at(""), "", "'" + n.name + "' has no 'type'");
        continue;
      }
      const actor_type* src = nullptr;
      const actor_type* other = nullptr;
      const actor_type* service = nullptr; // named by a node only by mistake
      for (auto* t : reg_.find_all(n.type))
        (t->kind == actor_kind::source    ? src
         : t->kind == actor_kind::service ? service
                                          : other)
          = t;
      if (!src && !other)
        other = service;
      if (!src && !other) {
        if (report) {
          auto msg = "unknown actor type '" + n.type + "'";
          auto guess = did_you_mean(n.type, reg_.type_names());
          if (!guess.empty())
            msg += " (did you mean '" + guess + "'?)";
          error(n.at("type"), who(n), msg + "; `troupe types` lists them");
        }
        continue;
      }
      // No inputs (and none written) asks for the source, as in YAML.
      bool wants_source = n.is_source
                          || (n.inputs.empty() && !n.field_where.count("inputs"));
      bool source = src && (!other || (wants_source
                                       && !fits_other_kind(n, *src, *other)));
      auto* t = source ? src : other;
      if (t->kind == actor_kind::service) {
        if (report)
          error(n.at("type"), who(n),
                "'" + n.type + "' is a service; declare it under "
                               "'resources:' and reference it by name");
        continue;
      }
      types_[i] = t;
      n.kind = t->kind;
      n.is_source = source;
    }
  }

  // True when `n` names a parameter only `other` has.
  static bool fits_other_kind(const node_spec& n, const actor_type& self,
                              const actor_type& other) {
    auto has = [](const actor_type& t, const std::string& name) {
      for (auto& p : t.params)
        if (p.name == name)
          return true;
      return false;
    };
    for (auto& name : n.params.names())
      if (!has(self, name) && has(other, name))
        return true;
    return false;
  }

  void references() {
    std::vector<std::string> names;
    for (auto& n : g_.nodes)
      names.push_back(n.name);
    for (size_t i = 0; i < g_.nodes.size(); ++i) {
      auto& n = g_.nodes[i];
      std::vector<std::pair<std::string, std::string>> seen;
      for (auto& in : n.inputs) {
        if (!in.port.empty() && in.port != "errors") {
          error(in.where, who(n),
                "unknown output '" + in.port + "' in '" + in.node + "."
                  + in.port + "'; a node has its data output ('" + in.node
                  + "') and '" + in.node + ".errors'");
          continue;
        }
        auto j = index_.find(in.node);
        if (j == index_.end()) {
          if (opts_.broken.count(in.node))
            continue; // its own definition was already reported broken
          auto msg = "'" + n.name + "' reads from unknown node '" + in.node
                     + "'";
          auto guess = did_you_mean(in.node, names);
          if (!guess.empty())
            msg += " (did you mean '" + guess + "'?)";
          error(in.where, who(n), msg);
          continue;
        }
        auto* t = types_[j->second];
        if (t && t->kind == actor_kind::sink && in.port.empty())
          error(in.where, who(n),
                "'" + in.node + "' is a sink and has no data output (only '"
                  + in.node + ".errors')");
        auto key = std::make_pair(in.node, in.port);
        if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
          auto ref = in.node + (in.port.empty() ? "" : "." + in.port);
          error(in.where, who(n),
                "'" + n.name + "' lists input '" + ref
                  + "' twice; every record would arrive twice (list each "
                    "input once)");
        }
        seen.push_back(key);
      }
    }
    // A source or stage whose data output nobody reads would discard every
    // record it passes on while the run reports success: refuse, and say
    // how to discard on purpose.
    std::set<std::string> read;
    for (auto& n : g_.nodes)
      for (auto& in : n.inputs)
        if (in.port.empty())
          read.insert(in.node);
    for (size_t i = 0; i < g_.nodes.size(); ++i) {
      auto& n = g_.nodes[i];
      auto* t = types_[i];
      if (!t || t->kind == actor_kind::sink || read.count(n.name))
        continue;
      error(n.where, who(n),
            "nobody reads the output of '" + n.name
              + "': its records would be discarded (give it a consumer, or "
                "a `type: null` sink to discard them on purpose)");
    }
  }

  // The schema: unknown names, values the parser left as text parsed,
  // values built in code checked (type, range, choice), required ones
  // present, defaults filled. `w` is where the node's or resource's fields
  // are; `reserved` the fields that are not parameters (type, inputs, ...).
  void params(param_set& ps, const actor_type& t, const source_location& w,
              const std::string& who_,
              const std::vector<std::string>& reserved) {
    std::vector<std::string> allowed = reserved;
    for (auto& p : t.params)
      allowed.push_back(p.name);
    for (auto& name : ps.names()) {
      if (std::find(allowed.begin(), allowed.end(), name) != allowed.end())
        continue;
      auto msg = "unknown field '" + name + "' for type '" + t.name + "'";
      auto guess = did_you_mean(name, allowed);
      if (!guess.empty())
        msg += " (did you mean '" + guess + "'?)";
      auto& pv = ps.get(name);
      error(pv.name_where.file.empty() ? w : pv.name_where, who_, msg);
    }
    for (auto& p : t.params) {
      auto* pv = ps.find(p.name);
      if (!pv) {
        if (p.required) {
          error(w, who_, "missing required field '" + p.name
                           + "' for type '" + t.name + "' (" + p.doc + ")");
        } else if (!p.default_value.empty()) {
          param_value dv;
          parse_param(p, p.default_value, dv);
          ps.set(p.name, std::move(dv));
        }
        continue;
      }
      auto at_value = pv->where.file.empty() ? w : pv->where;
      std::string msg;
      if (pv->unparsed == "reported") {
        continue; // the parser said what is wrong with it
      } else if (pv->unparsed.empty()) {
        msg = check_param(p, *pv);
      } else if (pv->unparsed == "a list" && p.type == param_type::strings) {
        pv->type = p.type;
      } else if (pv->unparsed != "a scalar") {
        auto tn = std::string{to_string(p.type)};
        auto article = std::string{"aeiou"}.find(tn[0]) != std::string::npos
                         ? "an "
                         : "a ";
        error(at_value, who_, "'" + p.name + "' expects " + article + tn
                                + ", got " + pv->unparsed);
        continue;
      } else {
        param_value parsed;
        msg = parse_param(p, pv->text, parsed);
        parsed.where = pv->where;
        parsed.name_where = pv->name_where;
        *pv = std::move(parsed);
      }
      pv->unparsed.clear();
      if (!msg.empty())
        error(at_value, who_, "'" + p.name + "': " + msg);
    }
  }

  // A node's fields that are not parameters of its type.
  std::vector<std::string> node_fields_reserved() const {
    std::vector<std::string> out{"type",     "inputs",       "workers",
                                 "ordered",  "restart",      "blocking",
                                 "partition_by"};
    for (auto& [slot, _] : reg_.slots())
      out.push_back(slot);
    return out;
  }

  // A slot field (`cache: memo`, `next: b`) of a node or resource: the slot
  // is registered and names a resource speaking its protocol. Returns that
  // resource's service type and sets `vertex` to the resource's vertex, or
  // reports and returns null (also for a resource whose type is unknown,
  // reported where it is declared).
  const actor_type* slot_target(const std::string& slot,
                                const std::string& res,
                                const source_location& w,
                                const std::string& who_, size_t& vertex) {
    auto* proto = reg_.slot_protocol(slot);
    if (!proto) {
      error(w, who_, "unknown resource slot '" + slot + "'");
      return nullptr;
    }
    auto r = std::find_if(g_.resources.begin(), g_.resources.end(),
                          [&](auto& x) { return x.name == res; });
    if (r == g_.resources.end()) {
      std::vector<std::string> names;
      for (auto& x : g_.resources)
        names.push_back(x.name);
      auto msg = "'" + slot + "' refers to unknown resource '" + res + "'";
      auto guess = did_you_mean(res, names);
      if (!guess.empty())
        msg += " (did you mean '" + guess + "'?)";
      error(w, who_, msg);
      return nullptr;
    }
    auto* rt = reg_.find(r->type, actor_kind::service);
    if (!rt)
      return nullptr;
    if (rt->protocol != *proto) {
      error(w, who_, "'" + slot + "' needs a resource speaking '" + *proto
                       + "', but '" + res + "' is a " + r->type
                       + " (protocol '" + rt->protocol + "')");
      return nullptr;
    }
    vertex = resource_vertex_[static_cast<size_t>(r - g_.resources.begin())];
    return rt;
  }

  void node_fields() {
    for (size_t i = 0; i < g_.nodes.size(); ++i) {
      auto& n = g_.nodes[i];
      auto* t = types_[i];
      if (!t)
        continue;
      bool inputs_reported = opts_.reported.count(n.name + ".inputs") > 0;
      if (t->kind == actor_kind::source && !n.inputs.empty())
        error(n.at("inputs"), who(n), "'" + n.name + "' is a source ("
                                        + t->name + ") and takes no inputs");
      if (n.inputs.empty() && n.field_where.count("inputs")
          && !inputs_reported)
        error(n.at("inputs"), who(n), "'inputs' is empty");
      else if (t->kind != actor_kind::source && n.inputs.empty()
               && !inputs_reported)
        error(n.where, who(n), "'" + n.name + "' is a " + to_string(t->kind)
                                 + " (" + t->name + ") and needs 'inputs'");
      params(n.params, *t, n.at(""), who(n), node_fields_reserved());
      if (n.workers < 1 || n.workers > 1024)
        error(n.at("workers"), who(n),
              bad_setting("workers", std::to_string(n.workers)));
      else if (n.workers > 1 && !t->parallel)
        error(n.at("workers"), who(n),
              "type '" + t->name + "' runs on one actor; 'workers' applies "
                                   "to map and filter");
      for (const char* f : {"blocking", "partition_by"})
        if (n.field_where.count(f) && !t->parallel)
          error(n.at(f), who(n),
                "type '" + t->name + "' runs on one actor; '" + f
                  + "' applies to map and filter");
      if (t->parallel && n.partition_by_key) {
        if (n.workers < 2)
          error(n.at("partition_by"), who(n),
                "'partition_by: key' spreads keys over workers; it needs "
                "'workers' of 2 or more");
        if (n.field_where.count("ordered") && n.ordered)
          error(n.at("ordered"), who(n),
                "'partition_by: key' keeps order per key, not across keys; "
                "drop 'ordered: true'");
      }
      for (auto& [slot, res] : n.resources) {
        auto& w = n.at(slot);
        size_t target = 0;
        auto* rt = slot_target(slot, res, w, who(n), target);
        if (!rt)
          continue;
        bool asks = std::find(t->slots.begin(), t->slots.end(), slot)
                    != t->slots.end();
        // Its logic asks the service through the slot's client and waits.
        if (asks)
          request_edge(node_vertex_[i], target, w, who(n));
        // A slot acts through the service's hook on any node (counter), or
        // through a client the node's logic must use: then only types that
        // say they use it (actor_type::slots) may name it.
        if (!rt->service.on_node_event && !asks) {
          std::string takes;
          for (auto& x : t->slots)
            takes += (takes.empty() ? "" : ", ") + x;
          error(w, who(n), "'" + slot + "' does nothing on a " + t->name
                             + (takes.empty()
                                  ? std::string{" (it uses no such slot)"}
                                  : " (it uses " + takes + ")"));
        }
      }
    }
  }

  void resources() {
    for (size_t i = 0; i < own_; ++i) {
      auto& r = g_.resources[i];
      auto w = "resource '" + r.name + "'";
      if (r.type.empty()) {
        error(r.at(""), "", "'" + r.name + "' has no 'type'");
        continue;
      }
      auto* t = reg_.find(r.type, actor_kind::service);
      if (!t) {
        auto all = reg_.find_all(r.type);
        if (!all.empty()) {
          error(r.at("type"), w,
                "'" + r.type + "' is a " + to_string(all.back()->kind)
                  + ", not a service; declare it under 'nodes:'");
        } else {
          auto msg = "unknown actor type '" + r.type + "'";
          auto guess = did_you_mean(r.type, reg_.type_names());
          if (!guess.empty())
            msg += " (did you mean '" + guess + "'?)";
          error(r.at("type"), w, msg + "; `troupe types` lists them");
        }
        continue;
      }
      auto before = out_.size();
      resource_slots(i, *t);
      std::vector<std::string> reserved{"type"}; // for "did you mean"
      reserved.insert(reserved.end(), t->calls.begin(), t->calls.end());
      params(r.params, *t, r.at(""), w, reserved);
      if (t->validate_resource && out_.size() == before) {
        std::vector<diagnostic> found;
        // A hook is extension code: what it throws is one more diagnostic.
        try {
          t->validate_resource(r, reg_, found);
        } catch (const std::exception& e) {
          found.push_back({r.at(""), "type '" + t->name
                                       + "': its validate hook threw: "
                                       + e.what()});
        }
        for (auto& d : found)
          error(d.where, w, d.message);
      }
    }
  }

  // The slots of resource `i` (of type `t`): each one its type calls
  // through, naming a resource of the slot's protocol; each an edge of the
  // request graph.
  void resource_slots(size_t i, const actor_type& t) {
    auto& r = g_.resources[i];
    auto w = "resource '" + r.name + "'";
    for (auto& slot : t.calls)
      if (!reg_.slot_protocol(slot))
        error(r.at("type"), w,
              "type '" + t.name + "' calls through slot '" + slot
                + "', which is not registered (registry::add_resource_slot)");
    for (auto& [slot, res] : r.resources) {
      auto& at = r.at(slot);
      if (reg_.slot_protocol(slot)
          && std::find(t.calls.begin(), t.calls.end(), slot)
               == t.calls.end()) {
        std::string calls;
        for (auto& x : t.calls)
          calls += (calls.empty() ? "" : ", ") + x;
        error(at, w, "'" + slot + "' does nothing on a " + t.name
                       + (calls.empty()
                            ? std::string{" (it calls no other service)"}
                            : " (it calls through " + calls + ")"));
        continue;
      }
      size_t target = 0;
      if (slot_target(slot, res, at, w, target))
        request_edge(resource_vertex_[i], target, at, w);
    }
  }

  // The request graph's vertices: resources first (in the order declared,
  // the running ones with their edges), then nodes; so a cycle among
  // resources is reported at the edge that closes it in file order.
  void request_vertices() {
    resource_vertex_.clear();
    node_vertex_.clear();
    for (auto& r : g_.resources)
      resource_vertex_.push_back(requests_.add_vertex(r.name));
    for (auto& n : g_.nodes)
      node_vertex_.push_back(requests_.add_vertex(n.name));
    for (size_t i = own_; i < g_.resources.size(); ++i)
      for (auto& [slot, res] : g_.resources[i].resources)
        for (size_t j = 0; j < g_.resources.size(); ++j)
          if (g_.resources[j].name == res) {
            request_edge(resource_vertex_[i], resource_vertex_[j], {},
                         "resource '" + g_.resources[i].name + "'");
            break;
          }
  }

  void request_edge(size_t from, size_t to, const source_location& w,
                    const std::string& who_) {
    requests_.add_edge(from, to);
    request_at_.push_back({w, who_});
  }

  // A cycle of requests would deadlock: each member waits for the next.
  // Reported once, at the slot field that closes it.
  void request_cycles() {
    for (auto& c : requests_.cycles()) {
      auto& [w, who_] = request_at_[c.closing];
      error(w, who_, "request cycle " + requests_.describe(c)
                       + " (each asks the next and waits for its reply)");
    }
  }

  // Puts g.resources in spawn order: what a resource calls comes first,
  // otherwise the order declared.
  void resources_in_order() {
    std::map<size_t, size_t> by_vertex;
    for (size_t i = 0; i < g_.resources.size(); ++i)
      by_vertex.emplace(resource_vertex_[i], i);
    std::vector<resource_spec> sorted;
    for (auto v : requests_.callees_first())
      if (auto it = by_vertex.find(v); it != by_vertex.end())
        sorted.push_back(std::move(g_.resources[it->second]));
    g_.resources = std::move(sorted);
  }

  // A setting out of range, in the parser's words.
  void bad(const field_positions& where, const std::string& field,
           const std::string& who_, const std::string& got) {
    error(pos(where, field), who_, bad_setting(field, got));
  }

  // A duration as YAML would spell it: 0s, 20s, 250ms, 10us, 5ns.
  static std::string show(duration d) {
    auto n = d.count();
    if (n == 0)
      return "0s";
    if (n % 1000000000 == 0)
      return std::to_string(n / 1000000000) + "s";
    if (n % 1000000 == 0)
      return std::to_string(n / 1000000) + "ms";
    if (n % 1000 == 0)
      return std::to_string(n / 1000) + "us";
    return std::to_string(n) + "ns";
  }

  static std::string show(double x) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%g", x);
    return buf;
  }

  void supervision(const supervision_spec& s, const std::string& w) {
    if (s.intensity > max_intensity)
      bad(s.where, "intensity", w, std::to_string(s.intensity));
    if (s.period.count() <= 0)
      bad(s.where, "period", w, show(s.period));
    if (s.backoff.min.count() < 0)
      bad(s.where, "min", w, show(s.backoff.min));
    if (s.backoff.max.count() < 0)
      bad(s.where, "max", w, show(s.backoff.max));
    else if (s.backoff.max < s.backoff.min)
      error(pos(s.where, "backoff"), w, "backoff 'max' is shorter than 'min'");
    if (!(s.backoff.jitter >= 0 && s.backoff.jitter <= 1))
      bad(s.where, "jitter", w, show(s.backoff.jitter));
  }

  void values() {
    auto& rt = g_.runtime;
    auto& w = rt.where;
    if (rt.threads > 256)
      bad(w, "threads", "runtime", std::to_string(rt.threads));
    if (rt.shutdown_timeout.count() <= 0)
      bad(w, "shutdown_timeout", "runtime", show(rt.shutdown_timeout));
    if (rt.request_timeout < std::chrono::milliseconds(1))
      bad(w, "request_timeout", "runtime", show(rt.request_timeout));
    if (rt.deadlock.probe_interval < std::chrono::milliseconds(1))
      bad(w, "probe_interval", "runtime.deadlock",
          show(rt.deadlock.probe_interval));
    if (rt.batch_size < 1 || rt.batch_size > max_batch_size)
      bad(w, "batch_size", "runtime", std::to_string(rt.batch_size));
    if (rt.window < 1 || rt.window > max_window)
      bad(w, "window", "runtime", std::to_string(rt.window));
    if (rt.window_bytes < 1 || rt.window_bytes > max_window_bytes)
      bad(w, "window_bytes", "runtime", std::to_string(rt.window_bytes));
    if (rt.max_attempts < 1 || rt.max_attempts > max_max_attempts)
      bad(w, "max_attempts", "runtime", std::to_string(rt.max_attempts));
    supervision(g_.supervision, "supervision");
    for (auto& grp : g_.groups)
      supervision(grp.supervision, "group '" + grp.name + "'");
  }

  // Makes node_spec::group and group_spec::nodes agree: a node is in the
  // group that lists it or that its `group` names, never in two; parents
  // name other groups and form a tree; every group has members.
  void groups() {
    std::map<std::string, group_spec*> by_name;
    for (auto& grp : g_.groups)
      by_name.emplace(grp.name, &grp);
    std::map<std::string, std::string> owner; // node -> group
    std::set<std::string> listed; // groups that list nodes, known or not
    for (auto& grp : g_.groups) {
      if (!grp.nodes.empty())
        listed.insert(grp.name);
      auto w = "group '" + grp.name + "'";
      if (!grp.parent.empty()
          && ((!by_name.count(grp.parent) && !opts_.broken.count(grp.parent))
              || grp.parent == grp.name))
        error(pos(grp.field_where, "parent"), w,
              "'parent' of group '" + grp.name
                + "' must name another group, got '" + grp.parent + "'");
      std::vector<std::string> kept;
      for (size_t k = 0; k < grp.nodes.size(); ++k) {
        auto& name = grp.nodes[k];
        auto& where = k < grp.nodes_where.size() ? grp.nodes_where[k]
                                                 : grp.where;
        if (!index_.count(name)) {
          if (!opts_.broken.count(name))
            error(where, w, "group '" + grp.name + "' names unknown node '"
                              + name + "'");
          continue;
        }
        auto [it, fresh] = owner.emplace(name, grp.name);
        if (!fresh) {
          error(where, w, "node '" + name + "' is already in group '"
                            + it->second + "'; a node has one supervisor");
          continue;
        }
        kept.push_back(name);
      }
      grp.nodes = std::move(kept);
      grp.nodes_where.clear();
    }
    for (auto& n : g_.nodes) {
      auto it = owner.find(n.name);
      if (n.group.empty()) {
        if (it != owner.end())
          n.group = it->second;
        continue;
      }
      auto grp = by_name.find(n.group);
      if (grp == by_name.end()) {
        error(n.where, who(n), "'" + n.name + "' names unknown group '"
                                 + n.group + "'");
        continue;
      }
      if (it != owner.end() && it->second != n.group) {
        error(n.where, who(n), "node '" + n.name + "' is already in group '"
                                 + it->second + "'; a node has one supervisor");
        continue;
      }
      if (it == owner.end())
        grp->second->nodes.push_back(n.name);
    }
    for (auto& grp : g_.groups)
      if (grp.nodes.empty() && !listed.count(grp.name))
        error(pos(grp.field_where, "nodes").file.empty()
                ? pos(grp.field_where, "")
                : pos(grp.field_where, "nodes"),
              "group '" + grp.name + "'",
              "group '" + grp.name + "' needs 'nodes', a list of node names");
    for (auto& grp : g_.groups) {
      std::vector<std::string> seen{grp.name};
      for (auto p = grp.parent; !p.empty();) {
        if (std::find(seen.begin(), seen.end(), p) != seen.end()) {
          error(grp.where, "group '" + grp.name + "'",
                "groups '" + grp.name + "' and its parents form a cycle");
          break;
        }
        seen.push_back(p);
        auto it = by_name.find(p);
        p = it == by_name.end() ? "" : it->second->parent;
      }
    }
  }

  // Depth-first: reports the first cycle, else sorts g.nodes inputs first.
  void order() {
    auto& nodes = g_.nodes;
    std::vector<int> state(nodes.size(), 0); // 0 new, 1 on stack, 2 done
    std::vector<size_t> stack;
    std::vector<size_t> sorted;
    bool cycle = false;
    std::function<void(size_t)> visit = [&](size_t i) {
      state[i] = 1;
      stack.push_back(i);
      for (auto& in : nodes[i].inputs) {
        if (cycle)
          return;
        auto j = index_.at(in.node);
        if (state[j] == 1) {
          std::string path;
          auto from = std::find(stack.begin(), stack.end(), j);
          for (auto it = from; it != stack.end(); ++it)
            path += nodes[*it].name + " <- ";
          path += nodes[j].name;
          error(in.where, who(nodes[i]),
                "cycle in the data graph: " + path
                  + " (each arrow reads from the next)");
          cycle = true;
          return;
        }
        if (state[j] == 0)
          visit(j);
      }
      stack.pop_back();
      state[i] = 2;
      sorted.push_back(i);
    };
    for (size_t i = 0; i < nodes.size() && !cycle; ++i)
      if (state[i] == 0)
        visit(i);
    if (cycle)
      return;
    std::vector<node_spec> out;
    std::vector<const actor_type*> types;
    for (auto i : sorted) {
      out.push_back(std::move(nodes[i]));
      types.push_back(types_[i]);
    }
    nodes = std::move(out);
    types_ = std::move(types);
    index_.clear();
    for (size_t i = 0; i < nodes.size(); ++i)
      index_.emplace(nodes[i].name, i);
  }

  void hooks() {
    for (size_t i = 0; i < g_.nodes.size(); ++i) {
      auto* t = types_[i];
      if (!t || !t->validate)
        continue;
      std::vector<diagnostic> found;
      // A hook is extension code: what it throws is one more diagnostic.
      try {
        t->validate(g_.nodes[i], g_, reg_, found);
      } catch (const std::exception& e) {
        found.push_back({g_.nodes[i].where, "type '" + t->name
                                              + "': its validate hook threw: "
                                              + e.what()});
      } catch (...) {
        found.push_back({g_.nodes[i].where,
                         "type '" + t->name
                           + "': its validate hook threw a non-standard exception"});
      }
      for (auto& d : found)
        error(d.where, who(g_.nodes[i]), d.message);
    }
  }

  // A `fn` naming a function whose factory gives nothing would dead-letter
  // every record of a run that still "completes": ask each factory once.
  void functions() {
    for (size_t i = 0; i < g_.nodes.size(); ++i) {
      auto& n = g_.nodes[i];
      if (!n.params.has("fn") || n.params.get("fn").type != param_type::string)
        continue;
      auto& pv = n.params.get("fn");
      auto* f = reg_.find_function(pv.text);
      if (!f)
        continue; // the type's hook reports unknown names
      std::string problem;
      try {
        if (!f->make())
          problem = "its factory returned an empty record_fn";
      } catch (const std::exception& e) {
        problem = std::string{"its factory threw: "} + e.what();
      } catch (...) {
        problem = "its factory threw";
      }
      if (!problem.empty())
        error(pv.where.file.empty() ? n.where : pv.where, who(n),
              "function '" + pv.text + "' cannot be used: " + problem);
    }
  }

  void files() {
    auto uses = collect_paths(g_);
    for (auto& u : uses) {
      auto w = "node '" + u.node + "'";
      auto param = u.role == path_use::checkpoint ? "checkpoint" : "path";
      if (u.text.empty()) {
        error(u.where, w, std::string{"'"} + param
                            + "' is empty (an unset ${VAR}?); name a file");
        continue;
      }
      std::error_code ec;
      auto st = fs::status(u.real, ec);
      bool exists = !ec && fs::exists(st);
      if (u.role == path_use::input) {
        if (!exists)
          error(u.where, w, "input file '" + u.text + "' does not exist");
        else if (fs::is_directory(st))
          error(u.where, w, "input '" + u.text
                              + "' is a directory, not a file");
        else if (::access(u.real.c_str(), R_OK) != 0)
          error(u.where, w, "input file '" + u.text + "' is not readable");
        continue;
      }
      if (exists && fs::is_directory(st)) {
        error(u.where, w, std::string{"'"} + param + "' names the directory '"
                            + u.text + "'; name a file");
        continue;
      }
      if (exists) {
        if (::access(u.real.c_str(), W_OK) != 0)
          error(u.where, w, "cannot write '" + u.text
                              + "': the file is read-only");
        continue;
      }
      auto folder = existing_ancestor(u.real.parent_path());
      if (folder.empty() || !fs::is_directory(folder, ec))
        error(u.where, w, "cannot create '" + u.text + "': '"
                            + folder.string() + "' is not a directory");
      else if (::access(folder.c_str(), W_OK | X_OK) != 0)
        error(u.where, w, "cannot create '" + u.text + "': the folder '"
                            + folder.string() + "' is not writable");
    }
    for (size_t b = 0; b < uses.size(); ++b)
      for (size_t a = 0; a < b; ++a)
        if (auto why = overlap(uses[a], uses[b]); !why.empty()) {
          error(uses[b].where, "node '" + uses[b].node + "'", why);
          break;
        }
    std::error_code ec;
    if (!g_.file.empty() && fs::is_regular_file(g_.file, ec)) {
      auto config = real_path(g_.file);
      for (auto& u : uses)
        if (u.role != path_use::input && !u.text.empty() && same_file(u.real, config))
          error(u.where, "node '" + u.node + "'",
                "'" + u.node + "' " + verb(u.role) + " '" + u.text
                  + "', the configuration file itself");
    }
  }

  graph_spec& g_;
  const registry& reg_;
  const validate_options& opts_;
  std::vector<diagnostic> out_;
  std::vector<const actor_type*> types_; // per node, null when unknown
  std::map<std::string, size_t> index_;  // node name -> first index
  size_t own_; // g_.resources[own_..] are running already
  request_graph requests_; // who asks whom, edges as validated
  std::vector<size_t> resource_vertex_; // per resource
  std::vector<size_t> node_vertex_;     // per node, before order()
  // Per request edge: where its slot field is, and whose it is.
  std::vector<std::pair<source_location, std::string>> request_at_;
};

} // namespace

std::vector<diagnostic> validate(graph_spec& g, const registry& reg,
                                 const validate_options& opts) {
  return validator{g, reg, opts}.run();
}

} // namespace detail

std::vector<diagnostic> validate(graph_spec& g, const registry& reg) {
  return detail::validate(g, reg, {});
}

std::vector<diagnostic> validate(resource_spec& r, const registry& reg,
                                 const std::vector<resource_spec>& running) {
  graph_spec g;
  g.file = "<resource>";
  g.resources.push_back(std::move(r));
  g.resources.insert(g.resources.end(), running.begin(), running.end());
  detail::validate_options opts;
  auto out = detail::validator{g, reg, opts, 1}.run_resources();
  r = std::move(g.resources.front());
  return out;
}

std::vector<diagnostic> check_extra_output(const graph_spec& g,
                                           const std::string& path,
                                           const std::string& what,
                                           const source_location& where) {
  std::vector<diagnostic> out;
  source_location w = where;
  if (w.file.empty())
    w = {"<command line>", 0, 0};
  if (path.empty()) {
    out.push_back({w, what + " needs a file name"});
    return out;
  }
  path_use self{path_use::output, what, path, real_path(path), false, w};
  self.shared_ok = is_device(self.real);
  if (self.shared_ok)
    return out;
  for (auto& u : collect_paths(g))
    if (!u.text.empty() && !u.shared_ok && same_file(u.real, self.real))
      out.push_back({w, what + " '" + path + "' is the file node '" + u.node
                          + "' " + verb(u.role) + "; choose another file"});
  std::error_code ec;
  if (!g.file.empty() && fs::is_regular_file(g.file, ec)
      && same_file(real_path(g.file), self.real))
    out.push_back({w, what + " '" + path + "' is the configuration file"});
  // Written after the run: find out now that it could not be.
  auto folder = self.real.parent_path();
  if (fs::is_directory(self.real, ec))
    out.push_back({w, what + " '" + path + "' is a directory; name a file"});
  else if (!fs::is_directory(folder, ec))
    out.push_back({w, what + " '" + path + "': the folder '" + folder.string()
                        + "' does not exist"});
  else if (::access(folder.c_str(), W_OK | X_OK) != 0
           || (fs::exists(self.real, ec)
               && ::access(self.real.c_str(), W_OK) != 0))
    out.push_back({w, what + " '" + path + "' is not writable"});
  return out;
}

bool same_output_file(const std::string& a, const std::string& b) {
  auto ra = real_path(a);
  return !is_device(ra) && same_file(ra, real_path(b));
}

} // namespace troupe
