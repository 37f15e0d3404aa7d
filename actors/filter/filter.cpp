// filter: keeps the records that match (`contains`, `regex` or a record
// function `fn` that keeps or drops); `invert: true` keeps the others.
#include <regex>

#include "troupe/actors/builtin_types.hpp"

namespace troupe::actors {

namespace {

class filter_logic : public node_logic {
public:
  explicit filter_logic(const node_context& ctx)
    : invert_(ctx.spec.params.boolean("invert")),
      max_attempts_(ctx.max_attempts) {
    auto& p = ctx.spec.params;
    if (p.has("contains")) {
      auto needle = p.str("contains");
      match_ = [needle](const record& r) {
        return r.body.find(needle) != std::string::npos;
      };
    } else if (p.has("regex")) {
      auto re = std::make_shared<std::regex>(p.str("regex"));
      match_ = [re](const record& r) { return std::regex_search(r.body, *re); };
    } else {
      fn_ = ctx.reg.find_function(p.str("fn"))->make();
    }
  }

  void consume(record_batch batch, emitter& out) override {
    auto in = batch.records();
    std::vector<bool> keep(in.size(), false);
    size_t dropped = 0;
    for (size_t i = 0; i < in.size(); ++i) {
      bool match;
      if (match_) {
        match = match_(in[i]);
      } else {
        // The function decides on a copy: a filter never changes records.
        auto r = in[i];
        auto res = apply_with_retries(fn_, r, max_attempts_);
        if (res.what == fn_result::outcome::fail) {
          out.fail(std::move(r), res.error);
          continue;
        }
        match = res.what == fn_result::outcome::keep;
      }
      keep[i] = match != invert_;
      dropped += !keep[i];
    }
    out.drop(dropped);
    out.emit(batch.select(keep)); // unchanged batch when nothing went
  }

private:
  bool invert_;
  uint32_t max_attempts_;
  std::function<bool(const record&)> match_; // contains / regex
  record_fn fn_;                             // fn
};

void check(const node_spec& n, const graph_spec&, const registry& reg,
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
  if (n.params.has("fn"))
    check_function_name(n.params.get("fn"), reg, errors);
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
