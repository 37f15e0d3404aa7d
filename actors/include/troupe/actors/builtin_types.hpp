// The registry entries of troupe's built-in actor types, one per folder under
// actors/. register_builtins() (registry.hpp) adds them all; an extender who
// wants only some can add these one by one.
#pragma once

#include "troupe/registry.hpp"

namespace troupe::actors {

// sources
actor_type generate_type();    // generate/
actor_type file_source_type(); // file/
actor_type stdin_type();       // stdin/
actor_type queue_source_type(); // queue/ (pops a queue resource)
actor_type paginate_type();     // http/ (pages of an HTTP API)
// stages
actor_type map_type();    // map/
actor_type filter_type(); // filter/
actor_type batch_type();  // batch/
actor_type reduce_type(); // reduce/
actor_type chaos_type();  // chaos/
actor_type dedupe_type(); // dedupe/
actor_type http_fetch_type(); // http/
// sinks
actor_type file_sink_type(); // file/
actor_type stdout_type();    // stdout/
actor_type null_type();      // null/
actor_type queue_sink_type(); // queue/ (pushes into a queue resource)
actor_type topic_sink_type(); // topic/ (publishes to a topic resource)
// services
actor_type counter_type(); // counter/
actor_type cache_type();   // cache/
actor_type worker_pool_type(); // worker_pool/
actor_type rate_limiter_type(); // rate_limiter/
actor_type once_type();         // once/
actor_type queue_service_type(); // queue/
actor_type topic_service_type(); // topic/
// record functions for map and filter: sha256, identity, upper, ...
void register_functions(registry& reg); // functions/
// Reports a node whose `param` records would wait for permits of its
// `rate_limit:` resource beyond the limiter's max_wait (rate_limiter/).
void check_limiter_wait(const node_spec& n, const graph_spec& g,
                        int64_t records, const std::string& param,
                        std::vector<diagnostic>& errors);
// Reports a `fn:` naming no registered function (with a "did you mean").
void check_function_name(const param_value& fn, const registry& reg,
                         std::vector<diagnostic>& errors); // functions/

} // namespace troupe::actors
