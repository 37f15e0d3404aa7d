// troupe: run, lint, draw and document actor graphs written in YAML.
#include <caf/config.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "commands.hpp"

namespace {

const char* help_text = R"(troupe — actor graphs from YAML, on CAF

usage:
  troupe run FILE [--set key=value]... [--report FILE] [--report-html FILE]
             [--metrics HOST:PORT] [--http HOST:PORT] [--linger DURATION]
             [--no-progress]
             [--log-level error|warn|info|debug] [--log-format text|json]
  troupe lint FILE...
  troupe graph FILE [--format dot|svg]
  troupe types [NAME] [--json]
  troupe --help | --version

commands:
  run    run the graph to completion (SIGINT/SIGTERM: stop sources, drain,
         write the report, exit 130)
         --metrics HOST:PORT  serve Prometheus metrics at /metrics
         --http HOST:PORT     serve the live view at / (and /metrics)
         (HOST defaults to 127.0.0.1; port 0 picks a free port)
  lint   parse and validate only; every problem as file:line:col: error: ...
  graph  print the graph in Graphviz DOT, or as SVG (rendered in process)
  types  list the registered actor types, their protocols and parameters

logs go to stderr, one line per event: level, node, message; warnings and
errors only unless --log-level says more (--log-format json: one JSON object
per line).

exit codes: 0 ok, 1 run failed, 64 usage, 78 configuration invalid,
            130 interrupted
)";

// A standard descriptor the parent closed (`>&-`) would be reused by the
// next open(): a stdout sink would then write into that file. Park the
// wrong-way end of /dev/null there, so using it fails with EBADF instead.
void hold_closed_std_fds() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
      continue;
    int x = open("/dev/null", fd == 0 ? O_WRONLY : O_RDONLY);
    if (x >= 0 && x != fd) {
      dup2(x, fd);
      close(x);
    }
  }
}

} // namespace

static int dispatch(std::vector<std::string> args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h"
      || args[0] == "help") {
    std::cout << help_text;
    return args.empty() ? troupe::cli::usage : troupe::cli::ok;
  }
  if (args[0] == "--version") {
    std::cout << "troupe " << TROUPE_VERSION << " (CAF "
              << CAF_MAJOR_VERSION << '.' << CAF_MINOR_VERSION << '.'
              << CAF_PATCH_VERSION << ")\n";
    return troupe::cli::ok;
  }
  auto cmd = args[0];
  args.erase(args.begin());
  if (cmd == "run")
    return troupe::cli::cmd_run(args);
  if (cmd == "lint")
    return troupe::cli::cmd_lint(args);
  if (cmd == "graph")
    return troupe::cli::cmd_graph(args);
  if (cmd == "types")
    return troupe::cli::cmd_types(args);
  std::cerr << "troupe: unknown command '" << cmd << "'; see troupe --help\n";
  return troupe::cli::usage;
}

int main(int argc, char** argv) {
  // First, before any allocation or loading: a signal in the first
  // millisecond must reach our handler, not the default action.
  troupe::cli::install_signal_handlers(argc > 1
                                       && std::strcmp(argv[1], "run") == 0);
  hold_closed_std_fds();
  auto rc = dispatch(std::vector<std::string>(argv + 1, argv + argc));
  // What `graph`, `types` or `--version` printed must have reached stdout.
  std::cout.flush();
  if (!std::cout && rc == troupe::cli::ok) {
    std::cerr << "troupe: cannot write to stdout\n";
    return troupe::cli::run_failed;
  }
  return rc;
}
