#include "troupe/actors/builtin_types.hpp"
#include "troupe/actors/type_ids.hpp"

namespace troupe {

void register_builtins(registry& reg) {
  using namespace troupe::actors;
  for (auto make : {generate_type, file_source_type, stdin_type, map_type,
                    filter_type, batch_type, reduce_type, chaos_type, dedupe_type, file_sink_type,
                    stdout_type, null_type, counter_type, cache_type,
                    worker_pool_type, rate_limiter_type, once_type})
    reg.add(make());
  for (auto make : {queue_service_type, queue_source_type, queue_sink_type,
                    topic_service_type, topic_sink_type, http_fetch_type,
                    paginate_type})
    reg.add(make());
  register_functions(reg);
  reg.add_message_types(
    [](caf::actor_system_config& cfg) { actors::add_message_types(cfg); });
  // Resource slots any node may name (slot -> protocol). What a slot does
  // for a node is the slot hook of the service type behind it (the counter's
  // in counter/); the services behind cache and rate_limit arrive with their
  // own actor types.
  reg.add_resource_slot("counter", "counter",
                        "counts the records this node passes on");
  reg.add_resource_slot("cache", "cache", "a cache service for this node");
  reg.add_resource_slot("rate_limit", "rate_limiter",
                        "a rate limiter this node takes permits from");
  reg.add_resource_slot("pool", "worker_pool",
                        "a worker pool this node submits its batches to");
  reg.add_resource_slot("queue", "queue",
                        "the queue a `queue` source pops or a `queue` sink "
                        "pushes into");
  reg.add_resource_slot("topic", "topic",
                        "the topic a `topic` sink publishes to");
}

} // namespace troupe
