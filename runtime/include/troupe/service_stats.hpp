// How a service type tells /metrics its own figures: service_ops::read_stats
// from the reply its protocol gives to a stats request.
//
// Example (the cache registers its hits and misses):
//   ops.read_stats = troupe::stats_reader<cache_actor, cache_stats>(
//     stats_atom_v, [](const cache_stats& s) {
//       return std::vector<troupe::service_sample>{
//         {"cache_hits_total", "Lookups answered from the cache.", true,
//          double(s.hits)}};
//     });
//
// The reader runs on the scraping thread (never an actor's): it asks the
// service through a caf::scoped_actor and waits for the reply at most the
// scrape's timeout, so a busy or dead service costs a scrape that long and
// shows as troupe_service_up 0, never a hang.
#pragma once

#include <chrono>
#include <optional>
#include <utility>
#include <vector>

#include <caf/actor_cast.hpp>
#include <caf/actor_control_block.hpp>
#include <caf/scoped_actor.hpp>

#include "troupe/registry.hpp"

namespace troupe {

template <class Handle, class Stats, class Atom, class ToSamples>
auto stats_reader(Atom atom, ToSamples to_samples) {
  return [atom, to_samples](const caf::strong_actor_ptr& ptr,
                            std::chrono::milliseconds timeout)
           -> std::optional<std::vector<service_sample>> {
    if (!ptr)
      return std::nullopt;
    caf::scoped_actor self{*ptr->home_system};
    std::optional<std::vector<service_sample>> out;
    self->request(caf::actor_cast<Handle>(ptr), timeout, atom)
      .receive([&](const Stats& s) { out = to_samples(s); },
               [&](const caf::error&) {});
    return out;
  };
}

} // namespace troupe
