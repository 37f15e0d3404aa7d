// map: applies a registered record function to every record. With
// `workers: N` the node runs N copies of this logic on worker actors.
#include "troupe/actors/builtin_types.hpp"
#include "troupe/loader.hpp"

namespace troupe::actors {

namespace {

class map_logic : public node_logic {
public:
  explicit map_logic(const node_context& ctx)
    : fn_name_(ctx.spec.params.str("fn")), max_attempts_(ctx.max_attempts) {
    fn_ = ctx.reg.find_function(fn_name_)->make();
  }

  void consume(record_batch batch, emitter& out) override {
    // identity forwards the shared batch untouched: no copy at all.
    if (fn_name_ == "identity") {
      out.emit(std::move(batch));
      return;
    }
    auto& rs = batch.mutable_records();
    size_t kept = 0;
    for (auto& r : rs) {
      auto res = apply_with_retries(fn_, r, max_attempts_);
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
    out.emit(std::move(batch));
  }

private:
  std::string fn_name_;
  uint32_t max_attempts_;
  record_fn fn_;
};

void check_function(const node_spec& n, const graph_spec&, const registry& reg,
                    std::vector<diagnostic>& errors) {
  if (!n.params.has("fn"))
    return;
  auto& v = n.params.get("fn");
  if (!reg.find_function(v.text)) {
    auto msg = "unknown function '" + v.text + "'";
    auto guess = did_you_mean(v.text, reg.function_names());
    if (!guess.empty())
      msg += " (did you mean '" + guess + "'?)";
    errors.push_back({v.where, msg + "; `troupe types map` lists them"});
  }
}

} // namespace

actor_type map_type() {
  actor_type t;
  t.name = "map";
  t.kind = actor_kind::stage;
  t.parallel = true;
  t.doc = "Applies a record function (fn) to each record; workers: N runs N "
          "in parallel, ordered: false lets results overtake each other.";
  t.params = {{"fn", param_type::string, true, "",
               "record function: sha256, identity, upper, lower, trim, "
               "square, or one registered in C++",
               {}, 0}};
  t.make_node = [](const node_context& ctx) {
    return std::make_unique<map_logic>(ctx);
  };
  t.validate = check_function;
  return t;
}

} // namespace troupe::actors
