// filter: keeps the records that match (`contains`, `regex` or a record
// function `fn` that keeps or drops); `invert: true` keeps the others.
#include <re2/re2.h>

#include "troupe/actors/builtin_types.hpp"

namespace troupe::actors {

namespace {

re2::RE2::Options regex_options() {
  re2::RE2::Options o;
  o.set_log_errors(false); // errors are reported at lint, located
  return o;
}

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
      // RE2 (linear time, bounded memory): no input can make a match
      // recurse deeply or backtrack exponentially, as std::regex did.
      auto re = std::make_shared<const re2::RE2>(p.str("regex"),
                                                 regex_options());
      if (!re->ok())
        throw unrecoverable_error("filter: invalid regex '" + p.str("regex")
                                  + "': " + re->error());
      match_ = [re](const record& r) {
        return re2::RE2::PartialMatch(r.body, *re);
      };
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
    re2::RE2 re(v.text, regex_options());
    if (!re.ok())
      errors.push_back({v.where, "invalid regex '" + v.text + "': "
                                   + re.error()
                                   + " (RE2 syntax; no backreferences or "
                                     "lookaround)"});
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
          "that a record function keeps.\n    regex syntax: RE2 "
          "(github.com/google/re2/wiki/Syntax), searched anywhere in the "
          "body; linear time whatever the pattern or input, so no "
          "backreferences (\\1) and no lookaround ((?=...), (?!...)).";
  t.params = {
    {"contains", param_type::string, false, "", "substring to look for", {}, 0},
    {"regex", param_type::string, false, "",
     "RE2 regex to search for (linear time; no backreferences)", {}, 0},
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
