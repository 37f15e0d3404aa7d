// The graph supervisor: spawns the nodes of one run, restarts a crashed node
// with its scope's strategy (one_for_one, one_for_all or rest_for_one; the
// root and each supervision group are scopes) within the scope's restart
// budget, escalating to the parent scope when it is exhausted, and drives an
// ordered, bounded shutdown (internal).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

#include "run_plan.hpp"
#include "troupe/protocols.hpp"

namespace troupe {

struct run_outcome {
  enum class status { completed, failed, interrupted, timed_out };
  status what = status::completed;
  std::string message;
  std::vector<std::string> unfinished; // nodes still running at the end
};

const char* to_string(run_outcome::status x);

} // namespace troupe

namespace troupe::detail {

using done_callback = std::function<void(run_outcome)>;

graph_supervisor_actor spawn_graph_supervisor(caf::actor_system& sys,
                                  std::shared_ptr<const run_plan> plan,
                                  done_callback done);

} // namespace troupe::detail
