#include "run_plan.hpp"

#include <map>
#include <stdexcept>

#include "troupe/node_logic.hpp"

namespace troupe::detail {

std::shared_ptr<const run_plan>
run_plan::make(const graph_spec& g, std::shared_ptr<const registry> shared,
               std::shared_ptr<run_metrics> metrics,
               resource_map resources) {
  auto p = std::make_shared<run_plan>();
  p->resources = std::move(resources);
  p->graph = g;
  p->shared_reg = std::move(shared);
  p->reg = p->shared_reg.get();
  auto& reg = *p->reg;
  p->metrics = std::move(metrics);
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    index[g.nodes[i].name] = i;
    auto& n = g.nodes[i];
    // The kind validate() resolved; start() validates every graph first.
    auto* t = reg.find(n.type, n.kind);
    if (!t)
      throw std::invalid_argument("unknown actor type " + g.nodes[i].type
                                  + " (" + to_string(n.kind) + ")");
    auto& checked = p->checked_types.emplace_back(*t);
    checked.make_node = [make = t->make_node, name = t->name](
                          const node_context& ctx) {
      auto logic = make(ctx);
      if (!logic)
        throw unrecoverable_error("the factory of type '" + name
                                  + "' returned no node logic");
      return logic;
    };
    p->types.push_back(&checked);
  }
  p->out_edges.resize(g.nodes.size());
  p->in_edges.resize(g.nodes.size());
  for (size_t c = 0; c < g.nodes.size(); ++c) {
    auto& ins = g.nodes[c].inputs;
    for (uint32_t k = 0; k < ins.size(); ++k) {
      auto it = index.find(ins[k].node);
      if (it == index.end())
        throw std::invalid_argument("dangling input " + ins[k].node);
      edge e;
      e.producer = it->second;
      e.port = ins[k].port == "errors" ? errors_port : data_port;
      e.consumer = c;
      e.in_port = k;
      e.tag = static_cast<uint32_t>(p->out_edges[e.producer].size());
      p->out_edges[e.producer].push_back(e);
      p->in_edges[c].push_back(e);
    }
  }
  if (!p->metrics)
    p->metrics = run_metrics::of(g);
  for (size_t c = 0; c < g.nodes.size(); ++c)
  {
    p->metrics->nodes[c]->unacked_in
      = std::vector<std::atomic<uint64_t>>(p->in_edges[c].size());
    p->metrics->nodes[c]->received_in
      = std::vector<std::atomic<uint64_t>>(p->in_edges[c].size());
    p->metrics->nodes[c]->sent_out
      = std::vector<std::atomic<uint64_t>>(p->out_edges[c].size());
    p->metrics->nodes[c]->sent_to
      = std::vector<std::atomic<uint32_t>>(p->out_edges[c].size());
  }
  return p;
}

} // namespace troupe::detail
