// The waiting map (waiting_map.cpp): what `map` becomes when its node names
// a cache, a pool or a rate limiter in its slots.
#pragma once

#include <memory>

#include "troupe/registry.hpp"

namespace troupe::actors {

// Whether this map node waits for services (a `cache`, `pool` or
// `rate_limit` slot).
bool map_waits(const node_spec& n);

std::unique_ptr<node_logic> make_waiting_map(const node_context& ctx);

} // namespace troupe::actors
