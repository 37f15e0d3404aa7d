#include "commands.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "troupe/json.hpp"
#include "troupe/loader.hpp"
#include "troupe/observe.hpp"
#include "troupe/registry.hpp"
#include "troupe/runtime.hpp"
#include "troupe/validate.hpp"

namespace troupe::cli {

namespace {

volatile std::sig_atomic_t signals_seen = 0;
volatile std::sig_atomic_t defer_signals = 0;

void on_signal(int) {
  signals_seen = signals_seen + 1;
  // Outside `run` there is nothing to drain; in `run` the user insists on
  // the third signal: the drain is not finishing.
  if (!defer_signals || signals_seen >= 3)
    _exit(interrupted);
}

// Leaves the process after `after` even if a thread is stuck in a call
// (a FIFO with no writer, a slow read) that teardown would wait on.
void arm_exit_watchdog(int code, std::chrono::nanoseconds after) {
  std::thread([code, after] {
    std::this_thread::sleep_for(after);
    std::fflush(nullptr);
    std::_Exit(code);
  }).detach();
}

// Writes the report; false when it cannot be written.
bool write_report(const run_report& report, const std::string& file) {
  std::cerr << report_summary(report) << std::flush;
  if (file.empty())
    return true;
  std::ofstream out(file);
  out << report_json(report);
  out.flush();
  if (!out) {
    std::cerr << "troupe: cannot write report " << file << '\n';
    return false;
  }
  return true;
}

registry builtin_registry() {
  registry reg;
  register_builtins(reg);
  return reg;
}

// Loads a graph, printing every diagnostic; nullopt when invalid.
std::optional<graph_spec> load_or_report(const std::string& file,
                                         const registry& reg,
                                         const load_options& opts = {}) {
  auto res = load_graph_file(file, reg, opts);
  for (auto& d : res.errors)
    std::cerr << d.str() << '\n';
  if (!res.ok())
    return std::nullopt;
  return std::move(res.graph);
}

std::string progress_line(const run_report& r, uint64_t rate) {
  std::ostringstream o;
  o << "\r\033[K" << r.graph << ": " << r.source_records << " in, "
    << r.sink_records << " out, " << rate << " rec/s, " << r.in_flight
    << " in flight |";
  for (auto& n : r.nodes)
    o << ' ' << n.name << '=' << n.out;
  auto s = o.str();
  return s.size() > 200 ? s.substr(0, 200) : s;
}

// --metrics / --http: the addresses asked for, checked before anything runs.
// The value of a flag not given (an empty value given is an error).
const std::string not_given = "\x01";
bool given(const std::string& v) {
  return v != not_given;
}
struct observe_flags {
  std::string metrics = not_given, http = not_given;
};

// Binds the servers `flags` ask for (one when both name the same address)
// before the run starts; prints where they listen. False (after a message)
// when one cannot listen: then nothing runs.
bool bind_observe(const observe_flags& flags, const graph_spec& graph,
                  std::vector<std::unique_ptr<web_server>>& servers) {
  auto start = [&](const std::string& listen, bool live) {
    web_server::options o;
    o.listen = listen;
    o.live_view = live;
    // Until the picture lands (graph_svg()), an empty one.
    o.svg = "<svg xmlns=\"http://www.w3.org/2000/svg\"/>";
    servers.push_back(std::make_unique<web_server>(graph, o));
    return servers.back()->address();
  };
  try {
    bool same = given(flags.metrics) && given(flags.http)
                && parse_listen_address(flags.metrics).host
                     == parse_listen_address(flags.http).host
                && parse_listen_address(flags.metrics).port
                     == parse_listen_address(flags.http).port
                && parse_listen_address(flags.http).port != 0;
    if (given(flags.http)) {
      auto at = start(flags.http, true);
      std::cerr << "troupe: live view at http://" << at << "/\n";
      if (same)
        std::cerr << "troupe: metrics at http://" << at << "/metrics\n";
    }
    if (given(flags.metrics) && !same) {
      auto at = start(flags.metrics, false);
      std::cerr << "troupe: metrics at http://" << at << "/metrics\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "troupe run: " << e.what() << '\n';
    return false;
  }
  return true;
}

} // namespace

void install_signal_handlers(bool defer) {
  defer_signals = defer ? 1 : 0;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART; // a signal must not make reading the config fail
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  // A closed pipe is a write error the sinks report (EPIPE), not a silent
  // death of the whole process.
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  sigemptyset(&ign.sa_mask);
  sigaction(SIGPIPE, &ign, nullptr);
}

int cmd_run(const std::vector<std::string>& args) {
  std::string file, report_file;
  load_options opts;
  bool progress = isatty(STDERR_FILENO);
  observe_flags observe;
  for (size_t i = 0; i < args.size(); ++i) {
    auto& a = args[i];
    if (a == "--set" && i + 1 < args.size())
      opts.overrides.push_back(args[++i]);
    else if (a.rfind("--set=", 0) == 0)
      opts.overrides.push_back(a.substr(6));
    else if (a == "--report" && i + 1 < args.size())
      report_file = args[++i];
    else if (a == "--no-progress")
      progress = false;
    else if ((a == "--metrics" || a == "--http") && i + 1 < args.size())
      (a == "--metrics" ? observe.metrics : observe.http) = args[++i];
    else if (a.rfind("--metrics=", 0) == 0)
      observe.metrics = a.substr(10);
    else if (a.rfind("--http=", 0) == 0)
      observe.http = a.substr(7);
    else if (!a.empty() && a[0] != '-' && file.empty())
      file = a;
    else {
      std::cerr << "troupe run: unexpected argument '" << a << "'\n";
      return usage;
    }
  }
  if (file.empty()) {
    std::cerr << "troupe run: missing FILE\n";
    return usage;
  }
  for (auto [flag, value] : {std::pair{"--metrics", &observe.metrics},
                              std::pair{"--http", &observe.http}}) {
    if (!given(*value))
      continue;
    try {
      parse_listen_address(*value);
    } catch (const std::invalid_argument& e) {
      std::cerr << "troupe run: " << flag << ": " << e.what() << '\n';
      return usage;
    }
  }
  auto reg = builtin_registry();
  auto graph = load_or_report(file, reg, opts);
  if (!graph)
    return signals_seen > 0 ? interrupted : config_invalid;
  if (!report_file.empty()) {
    // The report must not overwrite the input or a sink's output.
    auto bad = check_extra_output(*graph, report_file, "--report");
    for (auto& d : bad)
      std::cerr << d.str() << '\n';
    if (!bad.empty())
      return config_invalid;
  }
  if (signals_seen > 0) {
    // Stopped before anything started: nothing ran, nothing is missing.
    run_report r;
    r.graph = graph->name;
    r.status = "interrupted";
    r.message = "interrupted before the run started";
    for (auto& n : graph->nodes) {
      node_report nr;
      nr.name = n.name;
      nr.type = n.type;
      r.nodes.push_back(std::move(nr));
    }
    return write_report(r, report_file) ? interrupted : run_failed;
  }
  auto shutdown_timeout = graph->runtime.shutdown_timeout;
  runtime_options rt_opts;
  rt_opts.threads = graph->runtime.threads;
  rt_opts.deadlock = graph->runtime.deadlock;
  // --metrics / --http listen before anything runs: a port in use is an
  // error with nothing started.
  std::vector<std::unique_ptr<web_server>> servers;
  if (!bind_observe(observe, *graph, servers))
    return run_failed;
  runtime rt{reg, rt_opts};
  graph_run run;
  try {
    run = rt.start(*graph); // validates again: files may change after lint
  } catch (const std::invalid_argument& e) {
    std::cerr << e.what() << '\n';
    return config_invalid;
  }
  for (auto& s : servers)
    s->serve(run);
  bool stop_sent = false;
  auto stop_time = std::chrono::steady_clock::now();
  bool gave_up = false;
  uint64_t last_count = 0;
  auto last_time = std::chrono::steady_clock::now();
  while (!run.wait_for(std::chrono::milliseconds(100))) {
    if (signals_seen > 0 && !stop_sent) {
      stop_sent = true;
      stop_time = std::chrono::steady_clock::now();
      std::cerr << (progress ? "\n" : "")
                << "troupe: stopping: sources stop, in-flight records drain "
                   "(at most "
                << format_duration(shutdown_timeout) << ")\n";
      run.stop();
    }
    // The supervisor ends the run at the shutdown timeout; should it be
    // unable to (its threads stuck too), stop waiting a little later.
    if (stop_sent
        && std::chrono::steady_clock::now() - stop_time
             > shutdown_timeout + std::chrono::seconds(5)) {
      gave_up = true;
      break;
    }
    if (progress) {
      auto now = std::chrono::steady_clock::now();
      auto secs = std::chrono::duration<double>(now - last_time).count();
      if (secs >= 0.25) {
        auto r = run.report();
        auto rate = static_cast<uint64_t>((r.source_records - last_count)
                                          / secs);
        last_count = r.source_records;
        last_time = now;
        std::cerr << progress_line(r, rate) << std::flush;
      }
    }
  }
  if (progress)
    std::cerr << "\r\033[K";
  auto report = run.report();
  if (gave_up) {
    report.status = "timed_out";
    report.message = "the run did not end within shutdown_timeout";
  }
  int code = report.status == "completed" ? ok
             : report.status == "interrupted" || report.status == "timed_out"
                 || signals_seen > 0
               ? interrupted
               : run_failed;
  if (!write_report(report, report_file))
    code = run_failed;
  // Serve the final state a moment longer: live-view clients get `end`.
  for (auto& s : servers)
    s->finish(std::chrono::seconds(1));
  for (auto& s : servers)
    s->stop();
  if (report.status == "timed_out") {
    // Nodes still running were abandoned, possibly inside a call that never
    // returns: tearing the actor system down would wait for them forever.
    // A node stuck inside fwrite(stdout) holds its lock: if flushing
    // blocks, the watchdog still ends the process.
    arm_exit_watchdog(code, std::chrono::seconds(2));
    std::cout.flush();
    std::fflush(nullptr);
    std::_Exit(code);
  }
  // Teardown waits for every actor; bound it all the same.
  arm_exit_watchdog(code, shutdown_timeout + std::chrono::seconds(5));
  return code;
}

int cmd_lint(const std::vector<std::string>& args) {
  if (args.empty()) {
    std::cerr << "troupe lint: missing FILE\n";
    return usage;
  }
  auto reg = builtin_registry();
  bool all_ok = true;
  for (auto& f : args) {
    auto g = load_or_report(f, reg);
    if (g)
      std::cerr << f << ": ok (" << g->nodes.size() << " nodes, "
                << g->resources.size() << " resources)\n";
    all_ok = all_ok && g.has_value();
  }
  return all_ok ? ok : config_invalid;
}

int cmd_graph(const std::vector<std::string>& args) {
  std::string file;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--format" && i + 1 < args.size()) {
      if (args[++i] != "dot") {
        std::cerr << "troupe graph: only --format dot is built in (pipe it "
                     "to `dot -Tsvg` for a picture)\n";
        return usage;
      }
    } else if (file.empty()) {
      file = args[i];
    } else {
      std::cerr << "troupe graph: unexpected argument '" << args[i] << "'\n";
      return usage;
    }
  }
  if (file.empty()) {
    std::cerr << "troupe graph: missing FILE\n";
    return usage;
  }
  auto reg = builtin_registry();
  auto g = load_or_report(file, reg);
  if (!g)
    return config_invalid;
  auto q = [](const std::string& s) { return json_string(s); };
  std::cout << "digraph " << q(g->name) << " {\n  rankdir=LR;\n";
  for (auto& r : g->resources)
    std::cout << "  " << q(r.name) << " [shape=component, style=dashed, label="
              << q(r.name + "\n" + r.type) << "];\n";
  for (auto& n : g->nodes) {
    auto shape = n.kind == actor_kind::source ? "invhouse"
                 : n.kind == actor_kind::sink ? "house"
                                              : "box";
    auto label = n.name + "\n" + n.type;
    if (n.workers > 1)
      label += " x" + std::to_string(n.workers);
    std::cout << "  " << q(n.name) << " [shape=" << shape
              << ", label=" << q(label) << "];\n";
  }
  for (auto& r : g->resources) // a service asking another (actor_type::calls)
    for (auto& [slot, res] : r.resources)
      std::cout << "  " << q(r.name) << " -> " << q(res)
                << " [style=dotted, label=" << q(slot) << "];\n";
  for (auto& n : g->nodes) {
    for (auto& in : n.inputs)
      std::cout << "  " << q(in.node) << " -> " << q(n.name)
                << (in.port == "errors" ? " [style=dashed, color=red, "
                                          "label=\"errors\"]"
                                        : "")
                << ";\n";
    for (auto& [slot, res] : n.resources)
      std::cout << "  " << q(n.name) << " -> " << q(res)
                << " [style=dotted, arrowhead=none, label=" << q(slot)
                << "];\n";
  }
  std::cout << "}\n";
  return ok;
}

int cmd_types(const std::vector<std::string>& args) {
  std::string name;
  bool json = false;
  for (auto& a : args) {
    if (a == "--json")
      json = true;
    else
      name = a;
  }
  auto reg = builtin_registry();
  std::vector<const actor_type*> types;
  for (auto* t : reg.types())
    if (name.empty() || t->name == name)
      types.push_back(t);
  if (types.empty()) {
    std::cerr << "troupe types: no type '" << name << "'";
    auto guess = did_you_mean(name, reg.type_names());
    if (!guess.empty())
      std::cerr << " (did you mean '" << guess << "'?)";
    std::cerr << '\n';
    return usage;
  }
  if (json) {
    std::cout << "[";
    for (size_t i = 0; i < types.size(); ++i) {
      auto* t = types[i];
      std::cout << (i ? "," : "") << "\n  {\"name\": " << json_string(t->name)
                << ", \"kind\": " << json_string(to_string(t->kind))
                << ", \"protocol\": " << json_string(t->protocol)
                << ", \"parallel\": " << (t->parallel ? "true" : "false")
                << ", \"doc\": " << json_string(t->doc) << ", \"params\": [";
      for (size_t k = 0; k < t->params.size(); ++k) {
        auto& p = t->params[k];
        std::cout << (k ? ", " : "") << "{\"name\": " << json_string(p.name)
                  << ", \"type\": " << json_string(to_string(p.type))
                  << ", \"required\": " << (p.required ? "true" : "false")
                  << ", \"default\": " << json_string(p.default_value)
                  << ", \"doc\": " << json_string(p.doc) << "}";
      }
      std::cout << "]}";
    }
    std::cout << "\n]\n";
    return ok;
  }
  for (auto* t : types) {
    std::cout << t->name << " (" << to_string(t->kind) << ", protocol "
              << t->protocol << ")\n    " << t->doc << '\n';
    for (auto& slot : t->calls) // the services a resource of it may ask
      std::cout << "    " << slot << ": NAME of a resource this one asks\n";
    {
      for (auto& p : t->params) {
        std::cout << "    " << p.name << ": " << to_string(p.type);
        if (p.type == param_type::choice) {
          std::cout << " (";
          for (size_t k = 0; k < p.choices.size(); ++k)
            std::cout << (k ? "|" : "") << p.choices[k];
          std::cout << ")";
        }
        if (p.required)
          std::cout << ", required";
        else if (!p.default_value.empty())
          std::cout << ", default " << p.default_value;
        std::cout << " — " << p.doc << '\n';
      }
      if (t->parallel)
        std::cout
          << "    workers: integer, default 1 — parallel copies\n"
             "    ordered: boolean, default true — keep input order\n"
             "    partition_by: key|none, default none — key: each record goes "
             "to the worker its key hashes to (order kept per key)\n"
             "    blocking: boolean, default false — workers on threads of "
             "their own, for blocking or CPU-heavy functions\n";
    }
  }
  if (name.empty() || name == "map" || name == "filter") {
    std::cout << "\nrecord functions (map fn:, filter fn:):\n";
    for (auto* f : reg.functions())
      std::cout << "    " << f->name << " — " << f->doc << '\n';
    std::cout << "\nresource slots (counter: any node; the others: the "
                 "types that take them):\n";
    for (auto& [slot, v] : reg.slots())
      std::cout << "    " << slot << ": NAME of a '" << v.first
                << "' resource — " << v.second << '\n';
  }
  return ok;
}

} // namespace troupe::cli
