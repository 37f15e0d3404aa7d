#include "troupe/actors/type_ids.hpp"

#include <caf/actor_system_config.hpp>

// Every protocol header whose structs the block names (complete types here).
#include "troupe/actors/cache.hpp"
#include "troupe/actors/counter.hpp"
#include "troupe/actors/once.hpp"
#include "troupe/actors/queue.hpp"
#include "troupe/actors/rate_limiter.hpp"
#include "troupe/actors/topic.hpp"
#include "troupe/actors/worker_pool.hpp"

namespace troupe::actors {

void add_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_types<caf::id_block::troupe_actors>();
}

} // namespace troupe::actors
