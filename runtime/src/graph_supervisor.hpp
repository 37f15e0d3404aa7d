// The graph supervisor: spawns the nodes of one run, restarts crashed nodes
// as their group's policy says (the supervision engine decides, see
// supervision/engine.hpp), rewires, drops and closes the record graph
// around them, and drives an ordered, bounded end of the run (internal).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

#include "run_plan.hpp"
#include "internal_protocols.hpp"

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
