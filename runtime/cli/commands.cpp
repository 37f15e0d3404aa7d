#include "commands.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <set>
#include <sstream>
#include <system_error>
#include <thread>

#include "progress.hpp"
#include "troupe/graph_picture.hpp"
#include "troupe/json.hpp"
#include "troupe/loader.hpp"
#include "troupe/log.hpp"
#include "troupe/observe.hpp"
#include "troupe/registry.hpp"
#include "troupe/report_html.hpp"
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

// Runs `f` on a detached thread; false when none can be started (a memory
// or pids limit): a finished run is not aborted for a helper thread.
bool start_detached(std::function<void()> f) {
  try {
    std::thread(std::move(f)).detach();
    return true;
  } catch (const std::system_error&) {
    return false;
  }
}

// Leaves the process after `after` even if a thread is stuck in a call
// (a FIFO with no writer, a slow read) that teardown would wait on.
// Without a thread to spare there is no watchdog, and teardown goes on
// unguarded.
void arm_exit_watchdog(int code, std::chrono::nanoseconds after) {
  start_detached([code, after] {
    std::this_thread::sleep_for(after);
    std::fflush(nullptr);
    std::_Exit(code);
  });
}

// What the CLI tells the user on stderr whatever the log level (where a
// server listens): "troupe: TEXT", or a JSON log line under --log-format
// json, so every stderr line still parses.
void say(const std::string& text, log_level level = log_level::info) {
  if (get_log_options().format == log_format::json)
    std::cerr << format_log_line({std::chrono::system_clock::now(),
                                  level, "", text},
                                 log_format::json)
              << '\n';
  else
    std::cerr << "troupe: " << text << '\n';
}

// Writes the report; false when it cannot be written.
bool write_report(const run_report& report, const std::string& file) {
  if (get_log_options().format == log_format::json) {
    // Every stderr line parses as JSON: the summary is logged too, whatever
    // the level (it is the run's outcome, not chatter).
    std::istringstream lines{report_summary(report)};
    auto level = report.status == "completed" ? log_level::info
                                              : log_level::error;
    std::string line;
    while (std::getline(lines, line))
      say(line.rfind("troupe: ", 0) == 0 ? line.substr(8) : line, level);
  } else {
    std::cerr << report_summary(report) << std::flush;
  }
  if (file.empty())
    return true;
  std::ofstream out(file);
  out << report_json(report);
  out.flush();
  if (!out) {
    say("cannot write report " + file, log_level::error);
    return false;
  }
  return true;
}

// --report-html: the report as a self-contained page (report_html.hpp); a
// picture Graphviz cannot render leaves the page without it, said so.
bool write_report_html(const graph_spec& g, const registry& reg,
                       const run_report& report, const run_metrics* metrics,
                       const std::string& file) {
  if (file.empty())
    return true;
  std::string svg, picture_error;
  try {
    svg = svg_element(graph_svg(g, &report, &reg));
  } catch (const std::exception& e) {
    picture_error = e.what();
    say("report picture: " + picture_error, log_level::warn);
  }
  std::vector<dead_letter> dead;
  if (metrics)
    dead = recent_dead_letters(*metrics);
  std::ofstream out(file);
  out << report_html(g, report, dead, svg, picture_error);
  out.flush();
  if (!out) {
    say("cannot write report " + file, log_level::error);
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

// Columns of the terminal on stderr (the progress line must not wrap).
size_t terminal_width() {
  struct winsize w {};
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &w) == 0 && w.ws_col > 0)
    return w.ws_col;
  return 120;
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
                  const registry& reg,
                  std::vector<std::unique_ptr<web_server>>& servers) {
  auto start = [&](const std::string& listen, bool live) {
    web_server::options o;
    o.listen = listen;
    o.live_view = live;
    o.types = &reg;
    o.svg = "<svg xmlns=\"http://www.w3.org/2000/svg\"/>";
    if (live)
      // Drawn once, when a page first asks; a picture Graphviz cannot draw
      // leaves the page without one (the figures still update).
      o.make_svg = [&graph, &reg] {
        try {
          return graph_svg(graph, nullptr, &reg);
        } catch (const std::exception& e) {
          say(std::string("live view picture: ") + e.what(), log_level::warn);
          return std::string("<svg xmlns=\"http://www.w3.org/2000/svg\"/>");
        }
      };
    servers.push_back(std::make_unique<web_server>(graph, o));
    return servers.back()->address();
  };
  try {
    bool same = false;
    if (given(flags.metrics) && given(flags.http)) {
      auto m = parse_listen_address(flags.metrics);
      auto h = parse_listen_address(flags.http);
      same = m.host == h.host && m.port == h.port && h.port != 0;
    }
    if (given(flags.http)) {
      auto at = start(flags.http, true);
      say("live view at http://" + at + "/");
      if (same)
        say("metrics at http://" + at + "/metrics");
    }
    if (given(flags.metrics) && !same) {
      auto at = start(flags.metrics, false);
      say("metrics at http://" + at + "/metrics");
    }
  } catch (const std::exception& e) {
    say(e.what(), log_level::error); // a JSON line under --log-format json
    return false;
  }
  return true;
}

// Stops the servers, waiting at most `bound`; false when they are still
// stopping (the caller must then leave without destroying them).
bool stop_servers(std::vector<std::unique_ptr<web_server>>& servers,
                  std::chrono::milliseconds bound) {
  if (servers.empty())
    return true;
  auto done = std::make_shared<std::promise<void>>();
  auto stopped = done->get_future();
  auto stopper = [&servers, done] {
    for (auto& s : servers)
      s->stop();
    done->set_value();
  };
  if (!start_detached(stopper))
    return false; // no thread to stop them with: leave them as they are
  return stopped.wait_for(bound) == std::future_status::ready;
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
  std::string file, report_file, report_html_file;
  load_options opts;
  bool progress = isatty(STDERR_FILENO);
  observe_flags observe;
  duration linger{0}; // --linger: serve the final figures this long
  // Flags that take one value (--set takes many): given twice, which one
  // was meant?
  const std::set<std::string> one_value{"--report", "--report-html",
                                        "--metrics", "--http", "--linger",
                                        "--log-level", "--log-format"};
  std::set<std::string> seen;
  for (size_t i = 0; i < args.size(); ++i) {
    auto& a = args[i];
    auto flag = a.substr(0, a.find('='));
    if (one_value.count(flag) && !seen.insert(flag).second) {
      std::cerr << "troupe run: " << flag << " given twice\n";
      return usage;
    }
    if (a == "--set" && i + 1 < args.size())
      opts.overrides.push_back(args[++i]);
    else if (a.rfind("--set=", 0) == 0)
      opts.overrides.push_back(a.substr(6));
    else if ((a == "--report" || a == "--report-html") && i + 1 < args.size()) {
      // An empty name (an unset $REPORT) would mean no report, silently.
      if (args[i + 1].empty()) {
        std::cerr << "troupe run: " << a << " needs a file name\n";
        return usage;
      }
      (a == "--report" ? report_file : report_html_file) = args[++i];
    }
    else if (a == "--no-progress")
      progress = false;
    else if ((a == "--log-level" || a == "--log-format") && i + 1 < args.size()) {
      auto v = args[++i];
      auto opts_now = get_log_options();
      if (a == "--log-level") {
        auto l = parse_log_level(v);
        if (!l) {
          std::cerr << "troupe run: --log-level takes error|warn|info|debug, "
                       "not '" << v << "'\n";
          return usage;
        }
        opts_now.level = *l;
      } else {
        auto f = parse_log_format(v);
        if (!f) {
          std::cerr << "troupe run: --log-format takes text|json, not '" << v
                    << "'\n";
          return usage;
        }
        opts_now.format = *f;
      }
      set_log_options(opts_now);
    }
    else if (a == "--linger" && i + 1 < args.size()) {
      auto d = parse_duration(args[++i]);
      if (!d || *d < duration{0} || *d > std::chrono::hours(24)) {
        std::cerr << "troupe run: --linger takes a duration such as 30s (at "
                     "most 24h), not '" << args[i] << "'\n";
        return usage;
      }
      linger = *d;
    }
    else if ((a == "--metrics" || a == "--http") && i + 1 < args.size())
      (a == "--metrics" ? observe.metrics : observe.http) = args[++i];
    else if (a.rfind("--metrics=", 0) == 0)
      observe.metrics = a.substr(10);
    else if (a.rfind("--http=", 0) == 0)
      observe.http = a.substr(7);
    else if (!a.empty() && a[0] != '-' && file.empty())
      file = a;
    else if (i + 1 == args.size() && (a == "--set" || one_value.count(a))) {
      std::cerr << "troupe run: " << a << " needs a value\n";
      return usage;
    } else {
      std::cerr << "troupe run: unexpected argument '" << a << "'\n";
      return usage;
    }
  }
  if (file.empty()) {
    std::cerr << "troupe run: missing FILE\n";
    return usage;
  }
  if (linger > duration{0} && !given(observe.metrics) && !given(observe.http)) {
    std::cerr << "troupe run: --linger serves the final figures: it needs "
                 "--metrics or --http\n";
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
  // The reports must not overwrite the input or a sink's output.
  for (auto [path, what] : {std::pair{&report_file, "--report"},
                            std::pair{&report_html_file, "--report-html"}}) {
    if (path->empty())
      continue;
    auto bad = check_extra_output(*graph, *path, what);
    for (auto& d : bad)
      std::cerr << d.str() << '\n';
    if (!bad.empty())
      return config_invalid;
  }
  if (!report_file.empty() && !report_html_file.empty()
      && same_output_file(report_file, report_html_file)) {
    std::cerr << "troupe run: --report and --report-html name the same file "
              << report_file << '\n';
    return usage;
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
    bool written = write_report(r, report_file);
    written = write_report_html(*graph, reg, r, nullptr, report_html_file)
              && written;
    return written ? interrupted : run_failed;
  }
  auto shutdown_timeout = graph->runtime.shutdown_timeout;
  runtime_options rt_opts;
  rt_opts.threads = graph->runtime.threads;
  rt_opts.deadlock = graph->runtime.deadlock;
  // --metrics / --http listen before anything runs: a port in use is an
  // error with nothing started.
  std::vector<std::unique_ptr<web_server>> servers;
  if (!bind_observe(observe, *graph, reg, servers))
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
  auto started = std::chrono::steady_clock::now();
  auto last_time = started;
  progress_meter meter{started};
  TROUPE_LOG(info, "", "run of '" << graph->name << "' started ("
                                  << graph->nodes.size() << " nodes)");
  while (!run.wait_for(std::chrono::milliseconds(100))) {
    if (signals_seen > 0 && !stop_sent) {
      stop_sent = true;
      stop_time = std::chrono::steady_clock::now();
      if (progress)
        std::cerr << '\n';
      TROUPE_LOG(warn, "", "stopping: sources stop, in-flight records drain "
                           "(at most "
                             << format_duration(shutdown_timeout) << ")");
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
        last_time = now;
        std::cerr << meter.line(run.report(), run.metrics(), now,
                                terminal_width())
                  << std::flush;
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
  TROUPE_LOG(info, "", "run of '" << report.graph << "' ended: "
                                    << report.status);
  int code = report.status == "completed" ? ok
             : report.status == "interrupted" || report.status == "timed_out"
                 || signals_seen > 0
               ? interrupted
               : run_failed;
  if (!write_report(report, report_file))
    code = run_failed;
  if (!write_report_html(*graph, reg, report, &run.metrics(),
                         report_html_file))
    code = run_failed;
  // Serve the final state a moment longer: live-view clients get `end`.
  for (auto& s : servers)
    s->finish(std::chrono::seconds(1));
  if (!servers.empty() && linger > duration{0} && signals_seen == 0) {
    // A scraper polling every 15 s would otherwise never see the final
    // figures (troupe_run_up 0): keep serving them, until a signal. A run
    // a signal stopped was asked to leave: it does not linger.
    say("serving the final figures for " + format_duration(linger)
        + " (--linger; Ctrl-C to leave now)");
    auto until = std::chrono::steady_clock::now() + linger;
    while (std::chrono::steady_clock::now() < until && signals_seen == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!stop_servers(servers, std::chrono::seconds(2))) {
    // A client trickling a request holds a server thread that stop() waits
    // for (or no thread was left to stop them); the run and its reports are
    // done: leave without it.
    say("a web client did not let go within 2s; not waiting for it",
        log_level::warn);
    std::cout.flush();
    std::fflush(nullptr);
    std::_Exit(code);
  }
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
  for (auto& f : args)
    if (f.size() > 1 && f[0] == '-') {
      std::cerr << "troupe lint: unknown option '" << f
                << "' (lint takes only files)\n";
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
  std::string file, format = "dot";
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--format" && i + 1 < args.size()) {
      format = args[++i];
      if (format != "dot" && format != "svg") {
        std::cerr << "troupe graph: unknown --format '" << format
                  << "' (dot or svg)\n";
        return usage;
      }
    } else if (args[i] == "--format") {
      std::cerr << "troupe graph: --format needs a value (dot or svg)\n";
      return usage;
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
  if (format == "dot") {
    std::cout << graph_dot(*g, nullptr, &reg);
    return ok;
  }
  try {
    std::cout << graph_svg(*g, nullptr, &reg);
  } catch (const std::exception& e) {
    std::cerr << "troupe graph: " << e.what() << '\n';
    return run_failed;
  }
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
