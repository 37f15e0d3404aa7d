// Spawning the runtime's deadlock detector (the actor is described in
// troupe/deadlock_detector.hpp).
#pragma once

#include <functional>
#include <memory>

#include <caf/fwd.hpp>

#include "troupe/deadlock.hpp"
#include "troupe/deadlock_detector.hpp"
#include "wait_table.hpp"

namespace troupe::deadlock {

// `on_notice` runs on the detector's thread for every finding (the runtime
// logs it and keeps it for run reports); it must not block.
deadlock_detector_actor
spawn_detector(caf::actor_system& sys, std::shared_ptr<wait_table> table,
               deadlock_spec spec,
               std::function<void(const deadlock_notice&)> on_notice);

// Answers every wait still in `table` for its waiter with a `cancelled`
// error saying `why`: at shutdown, an actor blocked in .await on a request
// nobody will answer (a standing cycle under policy report) is freed, so the
// actor system can stop. Returns how many were answered.
size_t answer_all(wait_table& table, const std::string& why);

// A tracked_mutex report as a notice (kind "lock_" + its kind; members are
// the mutexes' names).
deadlock_notice notice_of(const lock_report& r);

} // namespace troupe::deadlock
