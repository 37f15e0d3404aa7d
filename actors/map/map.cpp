// map: applies a registered record function to every record. With
// `workers: N` the node runs N copies of this logic on worker actors.
#include "troupe/actors/builtin_types.hpp"

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
    out.emit(apply_to_batch(fn_, std::move(batch), max_attempts_, out));
  }

private:
  std::string fn_name_;
  uint32_t max_attempts_;
  record_fn fn_;
};

void check(const node_spec& n, const graph_spec&, const registry& reg,
           std::vector<diagnostic>& errors) {
  if (n.params.has("fn"))
    check_function_name(n.params.get("fn"), reg, errors);
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
  t.validate = check;
  return t;
}

} // namespace troupe::actors
