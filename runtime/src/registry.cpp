#include "troupe/registry.hpp"

#include <set>
#include <stdexcept>

namespace troupe {

const char* to_string(actor_kind x) {
  switch (x) {
    case actor_kind::source:
      return "source";
    case actor_kind::stage:
      return "stage";
    case actor_kind::sink:
      return "sink";
    default:
      return "service";
  }
}

void registry::add(actor_type type) {
  if (type.name.empty())
    throw std::invalid_argument("actor type without a name");
  bool is_service = type.kind == actor_kind::service;
  if (is_service ? !type.service.spawn || !type.service.handle_type
                 : !type.make_node)
    throw std::invalid_argument("actor type '" + type.name
                                + "' has no factory for its kind");
  std::set<std::string> seen;
  for (auto& p : type.params) {
    if (!seen.insert(p.name).second)
      throw std::invalid_argument("actor type '" + type.name
                                  + "' declares parameter '" + p.name
                                  + "' twice");
    // A default that does not parse would fail every graph using the type.
    param_value pv;
    if (!p.default_value.empty())
      if (auto msg = parse_param(p, p.default_value, pv); !msg.empty())
        throw std::invalid_argument("actor type '" + type.name
                                    + "': the default of '" + p.name
                                    + "' does not parse: " + msg);
  }
  // Slots are checked against the registered ones at validation time:
  // an extender may register its slots after its types.
  if (!type.calls.empty() && !is_service)
    throw std::invalid_argument("actor type '" + type.name
                                + "' lists 'calls' but is a "
                                + to_string(type.kind)
                                + "; a node names what it asks in 'slots'");
  seen.clear();
  for (auto& c : type.calls)
    if (!seen.insert(c).second)
      throw std::invalid_argument("actor type '" + type.name
                                  + "' lists slot '" + c
                                  + "' twice in 'calls'");
  if (type.protocol.empty())
    type.protocol = "record_stream";
  // One name may have a source, a stage or sink, and a service (`queue`
  // is all three); a second of one of these replaces the first.
  auto& same_name = types_[type.name];
  auto role = [](actor_kind k) {
    return k == actor_kind::source ? 0 : k == actor_kind::service ? 2 : 1;
  };
  for (auto& t : same_name)
    if (role(t.kind) == role(type.kind)) {
      t = std::move(type);
      return;
    }
  same_name.push_back(std::move(type));
}

void registry::add_function(std::string name, std::string doc,
                            record_fn_factory make) {
  if (functions_.count(name))
    throw std::invalid_argument("function '" + name
                                + "' is already registered (replace_function "
                                  "replaces it on purpose)");
  replace_function(std::move(name), std::move(doc), std::move(make));
}

void registry::replace_function(std::string name, std::string doc,
                                record_fn_factory make) {
  if (name.empty())
    throw std::invalid_argument("function without a name");
  if (!make)
    throw std::invalid_argument("function '" + name + "' has no factory");
  auto key = name;
  functions_[key] = function_entry{std::move(name), std::move(doc),
                                   std::move(make)};
}

void registry::add_resource_slot(std::string slot, std::string protocol,
                                 std::string doc) {
  slots_[std::move(slot)] = {std::move(protocol), std::move(doc)};
}

void registry::add_message_types(
  std::function<void(caf::actor_system_config&)> f) {
  if (!f)
    throw std::invalid_argument("registry::add_message_types: empty function");
  message_types_.push_back(std::move(f));
}

const actor_type* registry::find(const std::string& name,
                                 actor_kind kind) const {
  auto i = types_.find(name);
  if (i == types_.end())
    return nullptr;
  for (auto& t : i->second)
    if (t.kind == kind)
      return &t;
  return nullptr;
}

std::vector<const actor_type*>
registry::find_all(const std::string& name) const {
  std::vector<const actor_type*> out;
  auto i = types_.find(name);
  if (i != types_.end())
    for (auto& t : i->second)
      out.push_back(&t);
  return out;
}

const function_entry* registry::find_function(const std::string& name) const {
  auto i = functions_.find(name);
  return i == functions_.end() ? nullptr : &i->second;
}

const std::string* registry::slot_protocol(const std::string& slot) const {
  auto i = slots_.find(slot);
  return i == slots_.end() ? nullptr : &i->second.first;
}

std::vector<const actor_type*> registry::types() const {
  std::vector<const actor_type*> out;
  for (auto& [_, same_name] : types_)
    for (auto& t : same_name)
      out.push_back(&t);
  return out;
}

std::vector<const function_entry*> registry::functions() const {
  std::vector<const function_entry*> out;
  for (auto& [_, f] : functions_)
    out.push_back(&f);
  return out;
}

std::vector<std::string> registry::type_names() const {
  std::vector<std::string> out;
  for (auto& [n, _] : types_)
    out.push_back(n);
  return out;
}

std::vector<std::string> registry::function_names() const {
  std::vector<std::string> out;
  for (auto& [n, _] : functions_)
    out.push_back(n);
  return out;
}

const source_location& node_spec::at(const std::string& field) const {
  auto i = field_where.find(field);
  return i == field_where.end() ? where : i->second;
}

const source_location& resource_spec::at(const std::string& field) const {
  auto i = field_where.find(field);
  return i == field_where.end() ? where : i->second;
}

namespace {

// Where a parameter's value was written (YAML), else `fallback`.
const source_location& value_or(const param_set& ps, const std::string& name,
                                const source_location& fallback) {
  if (ps.has(name) && ps.get(name).where.line > 0)
    return ps.get(name).where;
  return fallback;
}

} // namespace

const source_location& node_spec::value_at(const std::string& param) const {
  return value_or(params, param, at(""));
}

const source_location&
resource_spec::value_at(const std::string& param) const {
  return value_or(params, param, at(""));
}

const node_spec* graph_spec::find_node(const std::string& wanted) const {
  for (auto& n : nodes)
    if (n.name == wanted)
      return &n;
  return nullptr;
}

fn_result apply_with_retries(const record_fn& fn, record& r,
                             uint32_t max_attempts) {
  for (;;) {
    try {
      return fn(r);
    } catch (const std::exception& e) {
      if (r.ctx.attempt >= max_attempts)
        return fn_result::fail(e.what());
    } catch (...) {
      if (r.ctx.attempt >= max_attempts)
        return fn_result::fail("unknown exception");
    }
    ++r.ctx.attempt;
  }
}

record_batch apply_to_batch(const record_fn& fn, record_batch batch,
                            uint32_t max_attempts, emitter& out) {
  auto& rs = batch.mutable_records();
  size_t kept = 0;
  for (auto& r : rs) {
    auto res = apply_with_retries(fn, r, max_attempts);
    if (res.what == fn_result::outcome::keep) {
      if (&rs[kept] != &r)
        rs[kept] = std::move(r);
      ++kept;
    } else if (res.what == fn_result::outcome::drop) {
      out.drop(1);
    } else {
      out.fail(std::move(r), res.error);
    }
  }
  rs.resize(kept);
  return batch;
}

emitter::~emitter() = default;

std::chrono::steady_clock::time_point emitter::now() const {
  return std::chrono::steady_clock::now();
}
node_logic::~node_logic() = default;

node_memory::~node_memory() = default;

produce_status node_logic::produce(size_t, emitter&) {
  return produce_status::done;
}
void node_logic::acknowledged(const record_batch&) {
}
node_logic::progress_mark node_logic::progress() const {
  return {};
}
duration node_logic::idle_delay() const {
  return std::chrono::milliseconds(10);
}
void node_logic::consume(record_batch batch, emitter& out) {
  out.emit(std::move(batch));
}
size_t node_logic::buffered() const {
  return 0;
}
size_t node_logic::held() const {
  return buffered();
}
void node_logic::starved(emitter&) {
}
duration node_logic::tick_interval() const {
  return duration{0};
}
void node_logic::tick(emitter&) {
}
void node_logic::finish(emitter&) {
}

} // namespace troupe
