// The troupe CLI's subcommands (run, lint, graph, types). Each returns the
// process exit code; see exit_code.
#pragma once

#include <string>
#include <vector>

namespace troupe::cli {

enum exit_code : int {
  ok = 0,
  run_failed = 1,
  usage = 64,          // EX_USAGE
  config_invalid = 78, // EX_CONFIG
  interrupted = 130,
};

// Installs SIGINT/SIGTERM handling and ignores SIGPIPE. Called first thing
// in main, before anything slow: `defer` (for `run`) counts signals for a
// drain; otherwise a signal ends the process with 130 at once.
void install_signal_handlers(bool defer);

int cmd_run(const std::vector<std::string>& args);
int cmd_lint(const std::vector<std::string>& args);
int cmd_graph(const std::vector<std::string>& args);
int cmd_types(const std::vector<std::string>& args);

} // namespace troupe::cli
