// filter: keeps the records that match (`contains`, `regex` or a record
// function `fn` that keeps or drops); `invert: true` keeps the others.
#include <regex>

#include "troupe/actors/builtin_types.hpp"
#include "troupe/loader.hpp"

namespace troupe::actors {

namespace {

class filter_logic : public node_logic {
public:
  explicit filter_logic(const node_context& ctx)
    : invert_(ctx.spec.params.boolean("invert")) {
    auto& p = ctx.spec.params;
    if (p.has("contains")) {
      auto needle = p.str("contains");
      match_ = [needle](record& r) {
        return r.body.find(needle) != std::string::npos;
      };
    } else if (p.has("regex")) {
      auto re = std::make_shared<std::regex>(p.str("regex"));
      match_ = [re](record& r) { return std::regex_search(r.body, *re); };
    } else {
      auto fn = ctx.reg.find_function(p.str("fn"))->make();
      match_ = [fn](record& r) {
        return fn(r).what == fn_result::outcome::keep;
      };
    }
  }

  void consume(record_batch batch, emitter& out) override {
    size_t keep = 0, n = batch.size();
    auto in = batch.records();
    std::vector<bool> keeps(n);
    for (size_t i = 0; i < n; ++i) {
      auto copy_free = const_cast<record&>(in[i]); // match_ only reads
      keeps[i] = match_(copy_free) != invert_;
      keep += keeps[i];
    }
    if (keep == n) {
      out.emit(std::move(batch)); // nothing dropped: forward untouched
      return;
    }
    std::vector<record> kept;
    kept.reserve(keep);
    for (size_t i = 0; i < n; ++i)
      if (keeps[i])
        kept.push_back(in[i]);
    out.drop(n - keep);
    out.emit(record_batch{std::move(kept)});
  }

private:
  bool invert_;
  std::function<bool(record&)> match_;
};

void check(const node_spec& n, const registry& reg,
           std::vector<diagnostic>& errors) {
  int given = n.params.has("contains") + n.params.has("regex")
              + n.params.has("fn");
  if (given != 1) {
    errors.push_back({n.where, "filter '" + n.name
                                 + "' needs exactly one of contains, regex "
                                   "or fn"});
    return;
  }
  if (n.params.has("regex")) {
    auto& v = n.params.get("regex");
    try {
      std::regex re(v.text);
    } catch (const std::regex_error& e) {
      errors.push_back({v.where, "invalid regex '" + v.text + "': " + e.what()});
    }
  }
  if (n.params.has("fn")) {
    auto& v = n.params.get("fn");
    if (!reg.find_function(v.text)) {
      auto msg = "unknown function '" + v.text + "'";
      auto guess = did_you_mean(v.text, reg.function_names());
      if (!guess.empty())
        msg += " (did you mean '" + guess + "'?)";
      errors.push_back({v.where, msg});
    }
  }
}

} // namespace

actor_type filter_type() {
  actor_type t;
  t.name = "filter";
  t.kind = actor_kind::stage;
  t.parallel = true;
  t.doc = "Keeps records whose body contains a string, matches a regex, or "
          "that a record function keeps.";
  t.params = {
    {"contains", param_type::string, false, "", "substring to look for", {}, 0},
    {"regex", param_type::string, false, "", "ECMAScript regex to search", {},
     0},
    {"fn", param_type::string, false, "", "record function deciding", {}, 0},
    {"invert", param_type::boolean, false, "false", "keep non-matching", {}, 0},
  };
  t.make_node = [](const node_context& ctx) {
    return std::make_unique<filter_logic>(ctx);
  };
  t.validate = check;
  return t;
}

} // namespace troupe::actors
