// troupe-bench: side-by-side measurements of troupe against its baselines.
//
//   1. ETL shape (config/etl.yaml): `troupe run` as a child process vs the
//      same work as a single-threaded C++ loop in-process vs the Python
//      asyncio twin (tests/bench/etl_twin.py) as a child process.
//   2. A 4-stage identity chain through troupe's embedding API vs a raw CAF
//      chain of 4 per-message relay actors.
//   3. Peak RSS of `troupe run` while a fast source floods a slow sink.
//   6. cache: a get round trip vs a raw CAF request().then to a trivial
//      actor; single flight: 10,000 concurrent requests over 100 keys.
//   pool: 1M tiny tasks through a worker_pool (batches of records per task)
//      vs a std::thread pool with a mutex+condvar queue vs Python's
//      ThreadPoolExecutor (measured inside Python).
//   limiter: permits per second from a rate_limiter (acquire + release, one
//      caller, sequential) vs a raw typed request round trip to an actor
//      that answers at once.
//
// Each benchmark runs its contenders interleaved (A,B,C,A,B,C,...) and reports
// medians, so drift on a shared machine hits every contender alike. This is a
// report, not a test: it exits 0 whether or not a target is met (1 only when a
// measurement itself failed, 2 on a usage error).
//
//   troupe-bench [--runs N] [--quick] [--etl-count N] [--chain-count N]
//                [--flood-count N] [--troupe PATH] [--python PATH]
//                [--raw-window CHUNKS] [--pool-count N] [--pool-batch N]
//                [--limiter-count N] [--only GROUP]
//   GROUP: etl chain flood faults supervision cache pool limiter waiting
//
// `caf/all.hpp` is allowed in this one file for simplicity.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <memory>
#include <functional>
#include <queue>
#include <mutex>
#include <condition_variable>
#include <sstream>
#include <stdexcept>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>

#include "troupe/actors/cache.hpp"
#include "troupe/actors/rate_limiter.hpp"
#include "troupe/actors/type_ids.hpp"
#include "troupe/loader.hpp"
#include "troupe/registry.hpp"
#include "troupe/report.hpp"
#include "troupe/runtime.hpp"
#include "troupe/supervisor.hpp"
#include "troupe/type_ids.hpp"
#include "troupe/actors/type_ids.hpp"
#include "troupe/actors/worker_pool.hpp"

extern char** environ;

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

namespace {

// -- options -----------------------------------------------------------------

struct options {
  size_t runs = 5;
  bool runs_given = false;
  uint64_t etl_count = 1'000'000;
  uint64_t chain_count = 2'000'000;
  uint64_t flood_count = 10'000'000;
  uint64_t limiter_count = 200'000;
  std::string troupe;  // default: <bench dir>/../troupe
  std::string python = "python3";
  uint64_t raw_window = 4; // raw CAF chain: chunks in flight, 0: send all
  uint64_t pool_count = 1'000'000; // tiny tasks through the pool
  uint64_t pool_batch = 1000;      // tiny tasks (records) per submit
  std::string only;        // "", or one of etl chain flood faults supervision
  std::string source_dir = TROUPE_SOURCE_DIR;
};

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "troupe-bench: " << why << "\n"
            << "usage: troupe-bench [--runs N] [--quick] [--etl-count N]\n"
               "                    [--chain-count N] [--flood-count N]\n"
               "                    [--troupe PATH] [--python PATH]\n"
               "                    [--raw-window CHUNKS (0: send all)]\n"
               "                    [--pool-count N] [--pool-batch N]\n"
               "                    [--limiter-count N] [--only GROUP]\n"
               "  GROUP: etl chain flood faults supervision cache pool "
               "limiter waiting\n";
  std::exit(2);
}

uint64_t parse_count(const std::string& flag, const std::string& text) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || v == 0)
    usage(flag + " wants a positive integer, got '" + text + "'");
  return v;
}

// build/tests/troupe-bench -> build/troupe
std::string default_troupe_path(const char* argv0) {
  std::error_code ec;
  auto self = fs::read_symlink("/proc/self/exe", ec);
  if (ec)
    self = fs::absolute(argv0);
  return (self.parent_path().parent_path() / "troupe").string();
}

options parse_options(int argc, char** argv) {
  options o;
  bool quick = false;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    auto& a = args[i];
    auto value = [&]() -> const std::string& {
      if (i + 1 >= args.size())
        usage(a + " needs a value");
      return args[++i];
    };
    if (a == "--quick") {
      quick = true;
    } else if (a == "--runs") {
      o.runs = parse_count(a, value());
      o.runs_given = true;
    } else if (a == "--etl-count") {
      o.etl_count = parse_count(a, value());
    } else if (a == "--chain-count") {
      o.chain_count = parse_count(a, value());
    } else if (a == "--flood-count") {
      o.flood_count = parse_count(a, value());
    } else if (a == "--limiter-count") {
      o.limiter_count = parse_count(a, value());
    } else if (a == "--troupe") {
      o.troupe = value();
    } else if (a == "--python") {
      o.python = value();
    } else if (a == "--pool-count") {
      o.pool_count = parse_count(a, value());
    } else if (a == "--pool-batch") {
      o.pool_batch = parse_count(a, value());
    } else if (a == "--only") {
      o.only = value();
      static const std::set<std::string> groups{
        "etl",   "chain", "flood",   "faults", "supervision",
        "cache", "pool",  "limiter", "waiting"};
      if (!groups.count(o.only))
        usage("--only wants one of etl, chain, flood, faults, supervision, "
              "cache, pool, limiter, waiting");
    } else if (a == "--raw-window") {
      auto& v = value();
      o.raw_window = v == "0" ? 0 : parse_count(a, v);
    } else if (a == "--help" || a == "-h") {
      usage("side-by-side benchmarks of troupe against its baselines");
    } else {
      usage("unknown argument '" + a + "'");
    }
  }
  if (quick) {
    // A smoke test: one run, small sizes (explicit flags still win).
    if (!o.runs_given)
      o.runs = 1;
    auto given = [&](const char* flag) {
      return std::find(args.begin(), args.end(), flag) != args.end();
    };
    if (!given("--etl-count"))
      o.etl_count = 20'000;
    if (!given("--chain-count"))
      o.chain_count = 100'000;
    if (!given("--flood-count"))
      o.flood_count = 200'000;
    if (!given("--pool-count"))
      o.pool_count = 100'000;
    if (!given("--limiter-count"))
      o.limiter_count = 20'000;
  }
  if (o.troupe.empty())
    o.troupe = default_troupe_path(argv[0]);
  if (access(o.troupe.c_str(), X_OK) != 0)
    usage("no troupe binary at " + o.troupe + " (build it, or pass --troupe)");
  return o;
}

// -- helpers -----------------------------------------------------------------

double median(std::vector<double> xs) {
  if (xs.empty())
    return 0;
  std::sort(xs.begin(), xs.end());
  auto n = xs.size();
  return n % 2 ? xs[n / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2;
}

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// "1M", "20k", "2.5M", "1234".
std::string human_count(uint64_t n) {
  char buf[32];
  if (n >= 1'000'000 && n % 100'000 == 0)
    std::snprintf(buf, sizeof buf, "%gM", n / 1e6);
  else if (n >= 1'000 && n % 100 == 0)
    std::snprintf(buf, sizeof buf, "%gk", n / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(n));
  return buf;
}

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// A temporary directory, removed with everything in it at scope exit.
class temp_dir {
public:
  explicit temp_dir(const char* tag) {
    auto base = fs::temp_directory_path() / (std::string{"troupe-bench-"} + tag
                                             + "-XXXXXX");
    auto s = base.string();
    if (!mkdtemp(s.data()))
      throw std::runtime_error("mkdtemp failed: " + std::string{strerror(errno)});
    path_ = s;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const fs::path& path() const {
    return path_;
  }
  std::string operator/(const std::string& name) const {
    return (path_ / name).string();
  }

private:
  fs::path path_;
};

std::string tail_of_file(const std::string& path, size_t max_chars = 2000) {
  std::ifstream in{path};
  std::stringstream ss;
  ss << in.rdbuf();
  auto s = ss.str();
  return s.size() > max_chars ? "..." + s.substr(s.size() - max_chars) : s;
}

struct child_result {
  double seconds = 0;
  double max_rss_mib = 0; // the child's peak resident set (ru_maxrss)
  int exit_code = -1;     // 128+signal when killed by a signal
  std::string stderr_tail;

  bool ok() const {
    return exit_code == 0;
  }
};

// Runs argv (looked up on PATH) in `cwd` with the environment plus `env`
// ("KEY=VALUE" entries, overriding), stdout to /dev/null, stderr kept. Times
// fork to reap, wall clock. Everything the child needs is prepared before the
// fork: the child only calls async-signal-safe functions and exec.
child_result time_child(const std::vector<std::string>& argv,
                        const std::vector<std::string>& env,
                        const std::string& cwd) {
  std::vector<char*> cargv;
  for (auto& a : argv)
    cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  std::vector<std::string> envs;
  for (char** e = environ; *e; ++e) {
    std::string entry{*e};
    auto key = entry.substr(0, entry.find('=') + 1);
    auto overridden = std::any_of(env.begin(), env.end(), [&](auto& x) {
      return x.compare(0, key.size(), key) == 0;
    });
    if (!overridden)
      envs.push_back(std::move(entry));
  }
  envs.insert(envs.end(), env.begin(), env.end());
  std::vector<char*> cenv;
  for (auto& e : envs)
    cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);
  auto err_path = cwd + "/.child-stderr";
  int err_fd = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                    0644);
  int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (err_fd < 0 || null_fd < 0)
    throw std::runtime_error("cannot open child output files");

  child_result res;
  auto t0 = clock_type::now();
  pid_t pid = fork();
  if (pid < 0)
    throw std::runtime_error("fork failed: " + std::string{strerror(errno)});
  if (pid == 0) {
    if (chdir(cwd.c_str()) != 0 || dup2(null_fd, 1) < 0 || dup2(err_fd, 2) < 0)
      _exit(126);
    execvpe(cargv[0], cargv.data(), cenv.data());
    _exit(127);
  }
  int status = 0;
  struct rusage ru {};
  while (wait4(pid, &status, 0, &ru) < 0)
    if (errno != EINTR)
      throw std::runtime_error("wait4 failed: " + std::string{strerror(errno)});
  res.seconds = seconds_since(t0);
  close(err_fd);
  close(null_fd);
  res.max_rss_mib = ru.ru_maxrss / 1024.0; // KiB on Linux
  res.exit_code = WIFEXITED(status) ? WEXITSTATUS(status)
                                    : 128 + WTERMSIG(status);
  if (!res.ok())
    res.stderr_tail = tail_of_file(err_path);
  return res;
}

// Checks a child run; prints why it failed. Returns ok().
bool check_child(const char* what, const child_result& r) {
  if (r.ok())
    return true;
  std::cerr << "  " << what << " failed with exit code " << r.exit_code
            << (r.exit_code == 127 ? " (not found?)" : "") << ":\n"
            << r.stderr_tail << '\n';
  return false;
}

// -- the final table ---------------------------------------------------------

struct row {
  std::string name, baseline, troupe, ratio, target;
  bool met = false;
  bool failed = false;
};

void print_table(const std::vector<row>& rows) {
  std::printf("\n%-40s %-16s %-16s %-9s %-11s %s\n", "benchmark", "baseline",
              "troupe", "ratio", "target", "met");
  for (auto& r : rows)
    std::printf("%-40s %-16s %-16s %-9s %-11s %s\n", r.name.c_str(),
                r.baseline.c_str(), r.troupe.c_str(), r.ratio.c_str(),
                r.target.c_str(),
                r.failed ? "FAILED" : (r.met ? "yes" : "no"));
}

// -- 1. ETL: troupe vs a single-threaded C++ loop vs the Python twin ---------

// What etl.yaml computes, as a plain loop: body "raw_i", SHA-256 hex with a
// reused context and a pre-fetched digest, one jsonl line per record exactly
// as the file sink writes it, through a 1 MiB buffered FILE*.
void etl_cpp_loop(uint64_t n, const std::string& out_path) {
  EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  FILE* f = std::fopen(out_path.c_str(), "wb");
  if (!md || !ctx || !f)
    throw std::runtime_error("C++ loop: setup failed");
  std::vector<char> buf(1 << 20);
  std::setvbuf(f, buf.data(), _IOFBF, buf.size());
  static constexpr char hex[] = "0123456789abcdef";
  std::string body, line;
  unsigned char digest[EVP_MAX_MD_SIZE];
  char num[24];
  for (uint64_t i = 0; i < n; ++i) {
    auto [nend, _] = std::to_chars(num, num + sizeof num, i);
    body.assign("raw_");
    body.append(num, nend);
    unsigned len = 0;
    if (!EVP_DigestInit_ex(ctx, md, nullptr)
        || !EVP_DigestUpdate(ctx, body.data(), body.size())
        || !EVP_DigestFinal_ex(ctx, digest, &len))
      throw std::runtime_error("C++ loop: SHA256 failed");
    line.assign("{\"seq\":");
    line.append(num, nend);
    line.append(",\"key\":\"\",\"body\":\"");
    for (unsigned k = 0; k < len; ++k) {
      line += hex[digest[k] >> 4];
      line += hex[digest[k] & 0xF];
    }
    line.append("\",\"attrs\":{}}\n");
    std::fwrite(line.data(), 1, line.size(), f);
  }
  std::fclose(f);
  EVP_MD_CTX_free(ctx);
  EVP_MD_free(md);
}

bool same_file(const std::string& a, const std::string& b) {
  std::ifstream fa{a, std::ios::binary}, fb{b, std::ios::binary};
  std::istreambuf_iterator<char> ia{fa}, ib{fb}, end;
  return fa && fb && std::equal(ia, end, ib, end);
}

void bench_etl(const options& o, std::vector<row>& rows) {
  auto n = o.etl_count;
  std::printf("ETL, %s records, %zu run(s): troupe | C++ loop | python twin\n",
              human_count(n).c_str(), o.runs);
  std::fflush(stdout);
  std::vector<double> t_troupe, t_loop, t_python;
  bool failed = false;
  for (size_t run = 0; run < o.runs && !failed; ++run) {
    temp_dir dir{"etl"};
    fs::create_directory(dir.path() / "out");
    // (a) troupe run config/etl.yaml, cwd and OUT_DIR in the temp dir.
    auto a = time_child({o.troupe, "run", o.source_dir + "/config/etl.yaml",
                         "--set", "nodes.extract.count=" + std::to_string(n),
                         "--no-progress"},
                        {"OUT_DIR=" + (dir / "out")}, dir.path().string());
    failed |= !check_child("troupe run etl.yaml", a);
    // (b) the single-threaded loop, in-process.
    auto loop_out = dir / "loop.jsonl";
    auto t0 = clock_type::now();
    etl_cpp_loop(n, loop_out);
    double loop_s = seconds_since(t0);
    // (c) the Python asyncio twin.
    auto py_out = dir / "python.jsonl";
    auto c = time_child({o.python, o.source_dir + "/tests/bench/etl_twin.py",
                         "--count", std::to_string(n), "--out", py_out},
                        {}, dir.path().string());
    failed |= !check_child("python3 etl_twin.py", c);
    if (failed)
      break;
    // The three must have written the same lines (troupe keeps order).
    auto troupe_out = dir / "out/etl.jsonl";
    if (!same_file(troupe_out, loop_out))
      std::printf("  warning: troupe's etl.jsonl differs from the C++ loop's\n");
    if (fs::file_size(py_out) != fs::file_size(loop_out))
      std::printf("  warning: the python twin wrote a different amount\n");
    t_troupe.push_back(a.seconds);
    t_loop.push_back(loop_s);
    t_python.push_back(c.seconds);
    std::printf("  run %zu: troupe %.3f s | loop %.3f s | python %.3f s\n",
                run + 1, a.seconds, loop_s, c.seconds);
    std::fflush(stdout);
  }
  auto label = "ETL " + human_count(n);
  if (failed) {
    rows.push_back({label + " vs python asyncio twin", "-", "-", "-", ">= 10x",
                    false, true});
    rows.push_back({label + " vs C++ 1-thread loop", "-", "-", "-", ">= 1.3x",
                    false, true});
    return;
  }
  auto tr = median(t_troupe), lp = median(t_loop), py = median(t_python);
  rows.push_back({label + " vs python asyncio twin", fmt("%.3f s", py),
                  fmt("%.3f s", tr), fmt("%.1fx", py / tr), ">= 10x",
                  py / tr >= 10});
  rows.push_back({label + " vs C++ 1-thread loop", fmt("%.3f s", lp),
                  fmt("%.3f s", tr), fmt("%.2fx", lp / tr), ">= 1.3x",
                  lp / tr >= 1.3});
}

// -- 4. the ETL shape under injected faults vs without ------------------------

// etl.yaml with a chaos stage after the source: `p` of record attempts fail
// (retried in place) and `kill` of batches kill the chaos actor (restart and
// redelivery).
std::string faults_yaml(uint64_t n, double p, double kill) {
  char buf[1024];
  std::snprintf(buf, sizeof(buf), R"(version: 1
runtime: { max_attempts: 6 }
supervision: { intensity: 1000, period: 10s, backoff: { min: 1ms, max: 10ms } }
nodes:
  extract: { type: generate, count: %llu, template: "raw_{i}" }
  chaos:   { type: chaos, seed: 1, p: %g, kill: %g, inputs: [extract] }
  hash:    { type: map, fn: sha256, workers: 8, inputs: [chaos] }
  batch:   { type: batch, size: 50, timeout: 1s, inputs: [hash] }
  load:    { type: file, path: out/etl.jsonl, inputs: [batch] }
)",
                static_cast<unsigned long long>(n), p, kill);
  return buf;
}

void bench_faults(const options& o, std::vector<row>& rows) {
  auto n = o.etl_count;
  std::printf("ETL with faults, %s records, %zu run(s): 0%% faults | 1%% of "
              "records fail + 0.1%% of batches kill the actor\n",
              human_count(n).c_str(), o.runs);
  std::vector<double> clean, faulty;
  for (size_t run = 0; run < o.runs; ++run) {
    double t[2] = {0, 0};
    for (int k = 0; k < 2; ++k) {
      temp_dir dir{"faults"};
      auto cfg = dir / "faults.yaml";
      std::ofstream(cfg) << (k == 0 ? faults_yaml(n, 0, 0)
                                    : faults_yaml(n, 0.01, 0.001));
      auto r = time_child({o.troupe, "run", cfg, "--no-progress"}, {},
                          dir.path().string());
      if (!check_child("troupe run (faults)", r)) {
        rows.push_back({"ETL, 1% faults vs none", "-", "-", "-", ">= 0.8",
                        false, true});
        return;
      }
      t[k] = r.seconds;
    }
    clean.push_back(t[0]);
    faulty.push_back(t[1]);
    std::printf("  run %zu: clean %.3f s | faulty %.3f s\n", run + 1, t[0],
                t[1]);
    std::fflush(stdout);
  }
  auto c = median(clean), f = median(faulty);
  rows.push_back({"ETL " + human_count(n) + ", 1% faults vs none (thr.)",
                  fmt("%.3f s", c), fmt("%.3f s", f), fmt("%.2f", c / f),
                  ">= 0.8", c / f >= 0.8});
}

// -- 5. supervision: restart latency, supervised vs raw spawn + terminate ----

struct cycle_state {
  uint64_t left = 0;
  clock_type::time_point t0;
  std::promise<double>* done = nullptr;
};

caf::behavior plain_child(caf::event_based_actor*) {
  return {[](int) {}};
}

// Raw CAF: spawn an actor, monitor it, kill it, wait for the down message.
caf::behavior raw_cycler(caf::stateful_actor<cycle_state>* self, uint64_t n,
                         std::promise<double>* done) {
  self->state.left = n;
  self->state.done = done;
  self->state.t0 = clock_type::now();
  auto cycle = [self] {
    auto c = self->spawn(plain_child);
    self->monitor(c);
    self->send_exit(c, caf::exit_reason::kill);
  };
  self->set_down_handler([self, cycle, n](caf::down_msg&) {
    if (--self->state.left == 0) {
      self->state.done->set_value(seconds_since(self->state.t0) / n);
      self->quit();
    } else {
      cycle();
    }
  });
  cycle();
  return {[](int) {}};
}

// Under a troupe supervisor: every incarnation reports itself; the driver
// kills it and the supervisor starts the next. One cycle = crash to
// replacement ready.
caf::behavior supervised_cycler(caf::stateful_actor<cycle_state>* self,
                                uint64_t n, std::promise<double>* done) {
  self->state.left = n + 1; // the first report is the initial start
  self->state.done = done;
  return {[self, n](caf::actor& child) {
    auto& st = self->state;
    if (st.left == n + 1)
      st.t0 = clock_type::now();
    if (--st.left == 0) {
      st.done->set_value(seconds_since(st.t0) / n);
      self->quit();
      return;
    }
    self->send_exit(child, caf::exit_reason::kill);
  }};
}

double supervised_cycles(uint64_t n) {
  caf::actor_system_config cfg;
  troupe::add_message_types(cfg);
  caf::actor_system sys{cfg};
  std::promise<double> done;
  auto result = done.get_future();
  auto driver = sys.spawn(supervised_cycler, n, &done);
  troupe::supervisor_config sc;
  sc.policy.intensity = static_cast<uint32_t>(n + 10);
  sc.policy.period = std::chrono::hours(1);
  sc.policy.backoff = {troupe::duration{0}, troupe::duration{0}, 0};
  sc.children.push_back(
    {"child", troupe::restart_type::permanent, [driver](caf::local_actor& p) {
       auto h = caf::actor_cast<caf::actor>(p.spawn(plain_child));
       caf::anon_send(driver, h);
       return h;
     }});
  auto sup = troupe::spawn_supervisor(sys, sc);
  auto per_cycle = result.get();
  caf::anon_send(sup, troupe::stop_atom_v);
  return per_cycle;
}

double raw_cycles(uint64_t n) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  std::promise<double> done;
  auto result = done.get_future();
  sys.spawn(raw_cycler, n, &done);
  return result.get();
}

void bench_supervision(const options& o, std::vector<row>& rows) {
  uint64_t n = o.etl_count >= 1'000'000 ? 20'000 : 2'000;
  std::printf("Supervision, %s spawn+terminate cycles, %zu run(s): raw CAF | "
              "troupe supervisor restart\n",
              human_count(n).c_str(), o.runs);
  std::vector<double> raw, sup;
  for (size_t run = 0; run < o.runs; ++run) {
    raw.push_back(raw_cycles(n));
    sup.push_back(supervised_cycles(n));
    std::printf("  run %zu: raw %.2f us | supervised %.2f us per cycle\n",
                run + 1, raw.back() * 1e6, sup.back() * 1e6);
    std::fflush(stdout);
  }
  auto r = median(raw), s = median(sup);
  rows.push_back({"restart latency (crash to ready), median", "-",
                  fmt("%.2f us", s * 1e6), "-", "-", true});
  rows.push_back({"supervised vs raw spawn+terminate", fmt("%.2f us", r * 1e6),
                  fmt("%.2f us", s * 1e6), fmt("%.2fx", s / r), "<= 2x",
                  s / r <= 2});
}

// -- 2. 4-stage identity chain: troupe embedded vs raw CAF relays ------------

std::string chain_yaml(uint64_t n) {
  return "version: 1\n"
         "name: chain\n"
         "nodes:\n"
         "  gen:  { type: generate, count: "
         + std::to_string(n)
         + ", template: \"raw_{i}\" }\n"
           "  m1:   { type: map, fn: identity, inputs: [gen] }\n"
           "  m2:   { type: map, fn: identity, inputs: [m1] }\n"
           "  m3:   { type: map, fn: identity, inputs: [m2] }\n"
           "  m4:   { type: map, fn: identity, inputs: [m3] }\n"
           "  sink: { type: \"null\", inputs: [m4] }\n";
}

// Seconds for one troupe run of the chain; the runtime (actor system) is built
// before the clock starts, as an embedder keeps one.
double troupe_chain_once(const troupe::registry& reg,
                         const troupe::graph_spec& graph, uint64_t n) {
  troupe::runtime rt{reg, {}};
  auto t0 = clock_type::now();
  auto run = rt.start(graph);
  if (!run.wait_for(std::chrono::minutes(10)))
    throw std::runtime_error("troupe chain: no result after 10 minutes");
  double s = seconds_since(t0);
  auto rep = run.report();
  if (rep.status != "completed" || rep.sink_records != n)
    throw std::runtime_error("troupe chain: " + rep.status + ", "
                             + std::to_string(rep.sink_records) + " of "
                             + std::to_string(n) + " records: " + rep.message);
  return s;
}

// The raw CAF baseline: producer -> relay x4 -> counting sink, one message per
// record, CAF's default scheduler settings. The producer sends in chunks of
// `raw_chunk` records and keeps at most `window` chunks unacknowledged (the
// sink acks every `raw_chunk` records), so no mailbox grows without bound;
// window 0 sends everything at once (the unbounded-mailbox blowup). Measured
// here on 2 cores, 2M records: 4 chunks of 1000 in flight (about troupe's
// default credit of 4096 records) ~2.15 M rec/s, windows of 1, 2, 8 and 16
// chunks 1.9-2.1 M rec/s, send-all ~2.0 M rec/s; so the baseline is the
// windowed one, the faster (`--raw-window 0` measures send-all).
constexpr uint64_t raw_chunk = 1000;

struct producer_state {
  caf::actor head;
  uint64_t next = 0;
  uint64_t outstanding = 0; // chunks sent, not yet acknowledged
};

caf::behavior raw_producer(caf::stateful_actor<producer_state>* self,
                           uint64_t n, uint64_t window) {
  auto pump = [self, n, window] {
    auto& st = self->state;
    while (st.next < n && (window == 0 || st.outstanding < window)) {
      auto end = std::min(n, st.next + raw_chunk);
      for (; st.next < end; ++st.next) {
        troupe::record r;
        r.seq = st.next;
        r.body = "raw_" + std::to_string(st.next);
        self->send(st.head, std::move(r));
      }
      ++st.outstanding;
    }
  };
  return {
    [self, pump](troupe::produce_atom, caf::actor head) {
      self->state.head = std::move(head);
      pump();
    },
    [self, pump](troupe::ack_atom) {
      --self->state.outstanding;
      pump();
    },
  };
}

caf::behavior raw_relay(caf::event_based_actor* self, caf::actor next) {
  return {
    [self, next](troupe::record& r) { self->send(next, std::move(r)); },
  };
}

struct counter_state {
  uint64_t seen = 0;
};

caf::behavior raw_sink(caf::stateful_actor<counter_state>* self, uint64_t n,
                       caf::actor producer,
                       std::shared_ptr<std::promise<void>> done) {
  return {
    [self, n, producer, done](const troupe::record&) {
      auto seen = ++self->state.seen;
      if (seen % raw_chunk == 0)
        self->send(producer, troupe::ack_atom_v);
      if (seen == n)
        done->set_value();
    },
  };
}

// Seconds for one raw run; the actor system and the actors exist before the
// clock starts.
double raw_chain_once(uint64_t n, uint64_t window) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads",
          std::max(1u, std::thread::hardware_concurrency()));
  troupe::add_message_types(cfg);
  caf::actor_system sys{cfg};
  auto done = std::make_shared<std::promise<void>>();
  auto finished = done->get_future();
  auto producer = sys.spawn(raw_producer, n, window);
  std::vector<caf::actor> actors{producer};
  caf::actor next = sys.spawn(raw_sink, n, producer, done);
  actors.push_back(next);
  for (int i = 0; i < 4; ++i) {
    next = sys.spawn(raw_relay, next);
    actors.push_back(next);
  }
  auto t0 = clock_type::now();
  caf::anon_send(producer, troupe::produce_atom_v, next);
  if (finished.wait_for(std::chrono::minutes(10)) != std::future_status::ready)
    throw std::runtime_error("raw chain: no result after 10 minutes");
  double s = seconds_since(t0);
  for (auto& a : actors)
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  return s;
}

void bench_chain(const options& o, std::vector<row>& rows) {
  auto n = o.chain_count;
  std::printf("4-stage identity chain, %s records, %zu run(s): troupe | raw "
              "CAF relays (%s)\n",
              human_count(n).c_str(), o.runs,
              o.raw_window ? ("window " + std::to_string(o.raw_window) + " x "
                              + std::to_string(raw_chunk))
                               .c_str()
                           : "send all");
  std::fflush(stdout);
  troupe::registry reg;
  troupe::register_builtins(reg);
  auto loaded = troupe::load_graph_text(chain_yaml(n), "<chain>", reg);
  if (!loaded.ok()) {
    for (auto& d : loaded.errors)
      std::cerr << d.str() << '\n';
    throw std::runtime_error("chain graph does not load");
  }
  std::vector<double> r_troupe, r_raw; // records per second
  for (size_t run = 0; run < o.runs; ++run) {
    double tt = troupe_chain_once(reg, *loaded.graph, n);
    double tr = raw_chain_once(n, o.raw_window);
    r_troupe.push_back(n / tt);
    r_raw.push_back(n / tr);
    std::printf("  run %zu: troupe %.3f s (%.2f M rec/s) | raw %.3f s "
                "(%.2f M rec/s)\n",
                run + 1, tt, n / tt / 1e6, tr, n / tr / 1e6);
    std::fflush(stdout);
  }
  auto t = median(r_troupe), r = median(r_raw);
  rows.push_back({"4-stage chain " + human_count(n) + ", records/s",
                  fmt("%.2f M/s", r / 1e6), fmt("%.2f M/s", t / 1e6),
                  fmt("%.1fx", t / r), ">= 8x", t / r >= 8});
}

// -- 3. Peak RSS: a fast source floods a slow sink ---------------------------

void bench_flood(const options& o, std::vector<row>& rows) {
  auto n = o.flood_count;
  // Long: one run unless --runs was given; the worst peak is reported.
  size_t runs = o.runs_given ? o.runs : 1;
  std::printf("Flood, %s records into a null sink with delay 20us, %zu "
              "run(s): idle run | flood\n",
              human_count(n).c_str(), runs);
  std::fflush(stdout);
  temp_dir dir{"flood"};
  auto write_yaml = [&](const std::string& name, uint64_t count) {
    auto path = dir / name;
    std::ofstream{path} << "version: 1\n"
                           "name: flood\n"
                           "nodes:\n"
                           "  gen:  { type: generate, count: "
                        << count
                        << ", template: \"raw_{i}\" }\n"
                           "  slow: { type: \"null\", delay: 20us, inputs: [gen] }\n";
    return path;
  };
  // The idle footprint for context: the same graph with one record.
  auto idle_yaml = write_yaml("idle.yaml", 1);
  auto flood_yaml = write_yaml("flood.yaml", n);
  double idle_peak = 0, flood_peak = 0;
  std::vector<double> times;
  bool failed = false;
  for (size_t run = 0; run < runs && !failed; ++run) {
    auto idle = time_child({o.troupe, "run", idle_yaml, "--no-progress"}, {},
                           dir.path().string());
    auto flood = time_child({o.troupe, "run", flood_yaml, "--no-progress"}, {},
                            dir.path().string());
    failed = !check_child("troupe run (idle)", idle)
             || !check_child("troupe run (flood)", flood);
    if (failed)
      break;
    idle_peak = std::max(idle_peak, idle.max_rss_mib);
    flood_peak = std::max(flood_peak, flood.max_rss_mib);
    times.push_back(flood.seconds);
    std::printf("  run %zu: idle %.1f MiB | flood %.1f MiB in %.2f s "
                "(%.2f M rec/s)\n",
                run + 1, idle.max_rss_mib, flood.max_rss_mib, flood.seconds,
                n / flood.seconds / 1e6);
    std::fflush(stdout);
  }
  auto label = "peak RSS, " + human_count(n) + " into slow sink";
  if (failed) {
    rows.push_back({label, "-", "-", "-", "<= 100 MiB", false, true});
    return;
  }
  rows.push_back({label, fmt("%.1f MiB idle", idle_peak),
                  fmt("%.1f MiB", flood_peak), "-", "<= 100 MiB",
                  flood_peak <= 100});
}


// -- 6. cache: get round trip vs raw CAF; single flight -----------------------

// The raw baseline: a trivial typed actor answering the same message with the
// same reply type, from a constant.
using echo_actor = caf::typed_actor<
  caf::replies_to<troupe::get_atom, std::string>::with<troupe::cache_value>>;

echo_actor::behavior_type echo_fn(echo_actor::pointer, std::string value) {
  return {[value](troupe::get_atom, std::string&) {
    return troupe::cache_value{true, value};
  }};
}

struct round_trip_state {
  uint64_t left = 0;
  std::string key;
  clock_type::time_point t0;
  std::promise<double>* done = nullptr;
};

// Sequential request().then round trips: the next starts in the reply handler.
template <class Handle>
void round_trip_next(caf::stateful_actor<round_trip_state>* self, Handle h) {
  self->request(h, std::chrono::seconds(10), troupe::get_atom_v,
                self->state.key)
    .then(
      [self, h](troupe::cache_value& v) {
        if (!v.found)
          throw std::runtime_error("cache bench: a get missed");
        if (--self->state.left == 0) {
          self->state.done->set_value(seconds_since(self->state.t0));
          self->quit();
          return;
        }
        round_trip_next(self, h);
      },
      [self](caf::error& e) {
        self->state.done->set_exception(std::make_exception_ptr(
          std::runtime_error("cache bench: " + caf::to_string(e))));
        self->quit();
      });
}

template <class Handle>
caf::behavior round_trip_driver(caf::stateful_actor<round_trip_state>* self,
                                Handle h, uint64_t n,
                                std::promise<double>* done) {
  self->state.left = n;
  self->state.key = "key-0042";
  self->state.done = done;
  self->state.t0 = clock_type::now();
  round_trip_next(self, h);
  return {[](int) {}};
}

// Seconds per round trip against `h`.
template <class Handle>
double round_trips(caf::actor_system& sys, Handle h, uint64_t n) {
  std::promise<double> done;
  auto f = done.get_future();
  sys.spawn(round_trip_driver<Handle>, h, n, &done);
  return f.get() / n;
}

double cache_get_once(uint64_t n, uint64_t shards) {
  caf::actor_system_config cfg;
  troupe::add_message_types(cfg);
  troupe::actors::add_message_types(cfg);
  caf::actor_system sys{cfg};
  troupe::cache_config cc;
  cc.shards = shards;
  auto cache = troupe::spawn_cache(sys, cc);
  {
    caf::scoped_actor self{sys};
    self->request(cache, std::chrono::seconds(10), troupe::put_atom_v,
                  std::string{"key-0042"}, std::string(64, 'v'))
      .receive([](bool) {},
               [](caf::error& e) {
                 throw std::runtime_error("cache bench: put: "
                                          + caf::to_string(e));
               });
  }
  auto s = round_trips(sys, cache, n);
  caf::anon_send_exit(cache, caf::exit_reason::user_shutdown);
  return s;
}

double raw_get_once(uint64_t n) {
  caf::actor_system_config cfg;
  troupe::add_message_types(cfg);
  troupe::actors::add_message_types(cfg);
  caf::actor_system sys{cfg};
  auto echo = sys.spawn(echo_fn, std::string(64, 'v'));
  auto s = round_trips(sys, echo, n);
  caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
  return s;
}

struct single_flight_result {
  uint64_t computed = 0; // by the backend
  troupe::cache_stats stats;
  double seconds = 0;
};

// `clients` actors each ask get_or_compute for `per_client` keys at once
// (client i asks keys i, i+1, ... mod `keys`): every key is asked by many
// callers concurrently. The backend burns ~20 us per computation.
single_flight_result single_flight_once(uint64_t clients, uint64_t per_client,
                                        uint64_t keys) {
  caf::actor_system_config cfg;
  troupe::add_message_types(cfg);
  troupe::actors::add_message_types(cfg);
  caf::actor_system sys{cfg};
  auto cache = troupe::spawn_cache(sys, {});
  std::atomic<uint64_t> computed{0};
  std::atomic<uint64_t> left{clients * per_client};
  std::atomic<uint64_t> wrong{0};
  std::promise<void> done;
  auto finished = done.get_future();
  auto t0 = clock_type::now();
  for (uint64_t i = 0; i < clients; ++i)
    sys.spawn(
      [&, i](caf::event_based_actor* self, int) {
        for (uint64_t j = 0; j < per_client; ++j) {
          auto key = "k" + std::to_string((i + j) % keys);
          troupe::get_or_compute(
            self, cache, key, std::chrono::seconds(30),
            [&computed](const std::string& k) {
              ++computed;
              auto until = clock_type::now() + std::chrono::microseconds(20);
              while (clock_type::now() < until) {
              }
              return "value of " + k;
            },
            [&, key](troupe::call_result<std::string> v) {
              if (!v.ok() || v.value() != "value of " + key)
                ++wrong;
              if (--left == 0)
                done.set_value();
            });
        }
      },
      0);
  if (finished.wait_for(std::chrono::minutes(5)) != std::future_status::ready)
    throw std::runtime_error("single flight: no result after 5 minutes");
  single_flight_result r;
  r.seconds = seconds_since(t0);
  r.computed = computed.load();
  if (wrong.load() > 0)
    throw std::runtime_error("single flight: " + std::to_string(wrong.load())
                             + " callers got a wrong value or an error");
  caf::scoped_actor self{sys};
  self->request(cache, std::chrono::seconds(10), troupe::stats_atom_v)
    .receive([&](troupe::cache_stats& s) { r.stats = s; },
             [](caf::error& e) {
               throw std::runtime_error("single flight: stats: "
                                        + caf::to_string(e));
             });
  caf::anon_send_exit(cache, caf::exit_reason::user_shutdown);
  return r;
}

void bench_cache(const options& o, std::vector<row>& rows) {
  uint64_t n = o.chain_count >= 1'000'000 ? 200'000 : 20'000;
  std::printf("Cache get round trip, %s sequential requests, %zu run(s): raw "
              "CAF request().then to a trivial actor | cache get | cache get "
              "(4 shards, via the router)\n",
              human_count(n).c_str(), o.runs);
  std::fflush(stdout);
  std::vector<double> raw, one, four;
  for (size_t run = 0; run < o.runs; ++run) {
    raw.push_back(raw_get_once(n));
    one.push_back(cache_get_once(n, 1));
    four.push_back(cache_get_once(n, 4));
    std::printf("  run %zu: raw %.3f us | cache %.3f us (%.2fx) | 4 shards "
                "%.3f us (%.2fx)\n",
                run + 1, raw.back() * 1e6, one.back() * 1e6,
                one.back() / raw.back(), four.back() * 1e6,
                four.back() / raw.back());
    std::fflush(stdout);
  }
  auto r = median(raw), c = median(one), c4 = median(four);
  rows.push_back({"cache get round trip vs raw CAF", fmt("%.3f us", r * 1e6),
                  fmt("%.3f us", c * 1e6), fmt("%.2fx", c / r), "<= 1.5x",
                  c / r <= 1.5});
  rows.push_back({"cache get, 4 shards (router hop)", fmt("%.3f us", r * 1e6),
                  fmt("%.3f us", c4 * 1e6), fmt("%.2fx", c4 / r), "-", true});

  const uint64_t clients = 100, per_client = 100, keys = 100;
  std::printf("Single flight, %llu concurrent get_or_compute over %llu keys, "
              "%zu run(s)\n",
              static_cast<unsigned long long>(clients * per_client),
              static_cast<unsigned long long>(keys), o.runs);
  std::fflush(stdout);
  bool exact = true;
  std::vector<double> secs, computed;
  for (size_t run = 0; run < o.runs; ++run) {
    auto x = single_flight_once(clients, per_client, keys);
    exact = exact && x.computed == keys && x.stats.computations == keys;
    secs.push_back(x.seconds);
    computed.push_back(static_cast<double>(x.computed));
    std::printf("  run %zu: %llu backend computations (cache: %llu leases, "
                "%llu coalesced, %llu hits) in %.3f s\n",
                run + 1, static_cast<unsigned long long>(x.computed),
                static_cast<unsigned long long>(x.stats.computations),
                static_cast<unsigned long long>(x.stats.coalesced),
                static_cast<unsigned long long>(x.stats.hits), x.seconds);
    std::fflush(stdout);
  }
  rows.push_back({"single flight 10k requests/100 keys", "-",
                  fmt("%.0f computations", median(computed)), "-",
                  "exactly 100", exact});
  rows.push_back({"single flight 10k requests, wall time", "-",
                  fmt("%.3f s", median(secs)), "-", "-", true});
}

// -- pool: 1M tiny tasks: worker_pool vs std::thread pool vs Python ----------

// The tiny task: FNV-1a of a record's body, stored in its seq.
uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::vector<troupe::record> tiny_records(uint64_t from, uint64_t n) {
  std::vector<troupe::record> rs(n);
  for (uint64_t i = 0; i < n; ++i)
    rs[i].body = "item_" + std::to_string(from + i);
  return rs;
}

// The usual thread pool: one std::queue of std::function under a mutex, a
// condition variable, N threads; one task per item; done when joined.
double thread_pool_once(uint64_t n, size_t workers) {
  auto rs = tiny_records(0, n);
  std::mutex m;
  std::condition_variable cv;
  std::queue<std::function<void()>> q;
  bool stop = false;
  std::vector<std::thread> ts;
  auto t0 = clock_type::now();
  for (size_t w = 0; w < workers; ++w)
    ts.emplace_back([&] {
      for (;;) {
        std::function<void()> job;
        {
          std::unique_lock<std::mutex> lk{m};
          cv.wait(lk, [&] { return stop || !q.empty(); });
          if (q.empty())
            return;
          job = std::move(q.front());
          q.pop();
        }
        job();
      }
    });
  for (uint64_t i = 0; i < n; ++i) {
    {
      std::lock_guard<std::mutex> lk{m};
      q.push([&rs, i] { rs[i].seq = fnv1a(rs[i].body); });
    }
    cv.notify_one();
  }
  {
    std::lock_guard<std::mutex> lk{m};
    stop = true;
  }
  cv.notify_all();
  for (auto& t : ts)
    t.join();
  auto secs = seconds_since(t0);
  if (rs[n - 1].seq != fnv1a(rs[n - 1].body))
    throw std::runtime_error("thread pool: a task did not run");
  return secs;
}

struct pool_driver {
  troupe::worker_pool_actor pool;
  std::vector<troupe::record_batch> batches;
  size_t next = 0, replies = 0;
  uint64_t kept = 0;
  std::string error;
  std::promise<void> done;
};

void pool_submit_next(caf::event_based_actor* self,
                      std::shared_ptr<pool_driver> d) {
  if (d->next >= d->batches.size())
    return;
  auto b = std::move(d->batches[d->next++]);
  self
    ->request(d->pool, std::chrono::seconds(60), troupe::pool_submit_atom_v,
              troupe::make_function_task("tiny", std::move(b)))
    .then(
      [self, d](troupe::pool_result& r) {
        d->kept += r.kept.size();
        if (++d->replies == d->batches.size())
          d->done.set_value();
        else
          pool_submit_next(self, d);
      },
      [d](caf::error& e) {
        if (d->error.empty()) {
          d->error = troupe::render(e);
          d->done.set_value();
        }
      });
}

// `n` tiny tasks as submits of `batch` records each (a record function
// applied to a batch: the pool API's way to hand over many tiny tasks in one
// message), `workers` workers, a window of submits in flight.
double pool_once(caf::actor_system& sys,
                 const std::shared_ptr<const troupe::registry>& reg,
                 uint64_t n, uint64_t batch, size_t workers) {
  troupe::worker_pool_config cfg;
  cfg.workers = workers;
  cfg.worker_queue = 2;
  auto d = std::make_shared<pool_driver>();
  d->pool = troupe::spawn_worker_pool(sys, cfg, reg);
  for (uint64_t i = 0; i < n; i += batch)
    d->batches.emplace_back(tiny_records(i, std::min(batch, n - i)));
  auto fut = d->done.get_future();
  auto window = workers * cfg.worker_queue * 2;
  auto t0 = clock_type::now();
  auto drv = sys.spawn(
    [d, window](caf::event_based_actor* self, int) {
      for (size_t i = 0; i < window; ++i)
        pool_submit_next(self, d);
    },
    0);
  fut.wait();
  auto secs = seconds_since(t0);
  caf::anon_send_exit(d->pool, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(drv, caf::exit_reason::user_shutdown);
  if (!d->error.empty())
    throw std::runtime_error("worker_pool: " + d->error);
  if (d->kept != n)
    throw std::runtime_error("worker_pool: " + std::to_string(d->kept)
                             + " results for " + std::to_string(n) + " tasks");
  return secs;
}

// Python's ThreadPoolExecutor on the same task, timed inside Python (start-up
// excluded). Returns seconds for `n` tasks.
double python_pool_once(const options& o, uint64_t n, size_t workers) {
  const char* script
    = "import sys, time\n"
      "from concurrent.futures import ThreadPoolExecutor\n"
      "n, w = int(sys.argv[1]), int(sys.argv[2])\n"
      "bodies = [\"item_%d\" % i for i in range(n)]\n"
      "def tiny(s):\n"
      "    h = 1469598103934665603\n"
      "    for c in s.encode():\n"
      "        h = ((h ^ c) * 1099511628211) & 0xFFFFFFFFFFFFFFFF\n"
      "    return h\n"
      "t0 = time.perf_counter()\n"
      "with ThreadPoolExecutor(max_workers=w) as ex:\n"
      "    fs = [ex.submit(tiny, b) for b in bodies]\n"
      "    r = [f.result() for f in fs]\n"
      "print(time.perf_counter() - t0)\n";
  // (The script has no single quote: it goes to the shell in single quotes.)
  auto cmd = o.python + " -c '" + script + "' " + std::to_string(n) + " "
             + std::to_string(workers);
  FILE* p = popen(cmd.c_str(), "r");
  if (!p)
    throw std::runtime_error("cannot start " + o.python);
  char buf[64] = {0};
  auto got = std::fgets(buf, sizeof buf, p);
  auto status = pclose(p);
  double secs = got ? std::atof(buf) : 0;
  if (status != 0 || secs <= 0)
    throw std::runtime_error("the python pool failed (exit status "
                             + std::to_string(status) + ")");
  return secs;
}

void bench_pool(const options& o, std::vector<row>& rows) {
  auto n = o.pool_count;
  auto batch = std::min(o.pool_batch, n);
  size_t workers = std::max(2u, std::thread::hardware_concurrency());
  // Python is slow per task: a fifth of the tasks, compared per task.
  uint64_t py_n = std::max<uint64_t>(n / 5, 1000);
  uint64_t single_n = std::max<uint64_t>(n / 10, 1000);
  std::printf("worker_pool, %s tiny tasks (FNV-1a of a short string), %zu "
              "workers, %zu run(s): pool (%s per submit) | std::thread pool "
              "(mutex+condvar, 1 per task) | pool, 1 per submit (%s) | "
              "python ThreadPoolExecutor (%s)\n",
              human_count(n).c_str(), workers, o.runs,
              human_count(batch).c_str(), human_count(single_n).c_str(),
              human_count(py_n).c_str());
  std::fflush(stdout);
  auto reg = std::make_shared<troupe::registry>();
  troupe::register_builtins(*reg);
  reg->add_function("tiny", "FNV-1a of the body into seq", [] {
    return troupe::record_fn{[](troupe::record& r) {
      r.seq = fnv1a(r.body);
      return troupe::fn_result::keep();
    }};
  });
  caf::actor_system_config cfg;
  troupe::add_message_types(cfg);
  troupe::actors::add_message_types(cfg);
  cfg.set("scheduler.max-threads", workers);
  caf::actor_system sys{cfg};
  std::vector<double> r_pool, r_threads, r_single, r_py; // tasks per second
  for (size_t run = 0; run < o.runs; ++run) {
    auto tp = pool_once(sys, reg, n, batch, workers);
    auto tt = thread_pool_once(n, workers);
    auto ts = pool_once(sys, reg, single_n, 1, workers);
    auto ty = python_pool_once(o, py_n, workers);
    r_pool.push_back(n / tp);
    r_threads.push_back(n / tt);
    r_single.push_back(single_n / ts);
    r_py.push_back(py_n / ty);
    std::printf("  run %zu: pool %.3f s (%.2f M/s) | threads %.3f s (%.2f "
                "M/s) | pool 1/submit %.3f s (%.3f M/s) | python %.3f s "
                "(%.3f M/s)\n",
                run + 1, tp, n / tp / 1e6, tt, n / tt / 1e6, ts,
                single_n / ts / 1e6, ty, py_n / ty / 1e6);
    std::fflush(stdout);
  }
  auto p = median(r_pool), t = median(r_threads), s1 = median(r_single),
       py = median(r_py);
  rows.push_back({"pool " + human_count(n) + " tiny vs std::thread pool",
                  fmt("%.2f M/s", t / 1e6), fmt("%.2f M/s", p / 1e6),
                  fmt("%.1fx", p / t), ">= 1x", p / t >= 1});
  rows.push_back({"pool " + human_count(n) + " tiny vs python TPE",
                  fmt("%.3f M/s", py / 1e6), fmt("%.2f M/s", p / 1e6),
                  fmt("%.0fx", p / py), ">= 20x", p / py >= 20});
  rows.push_back({"pool 1 task/submit vs std::thread pool",
                  fmt("%.2f M/s", t / 1e6), fmt("%.3f M/s", s1 / 1e6),
                  fmt("%.2fx", s1 / t), "(info)", true});
}

// -- limiter: permits/s vs a raw request round trip --------------------------

// The baseline: answers acquire(key) at once, as cheap as a typed reply gets.
using echo_permit_actor = caf::typed_actor<
  caf::replies_to<troupe::acquire_atom, std::string>::with<uint64_t>>;

echo_permit_actor::behavior_type echo_permit(echo_permit_actor::pointer) {
  return {[](troupe::acquire_atom, const std::string&) { return uint64_t{1}; }};
}

// `n` sequential acquire round trips to `dest` (and a release after each when
// `release`); returns seconds.
template <class Handle>
double permit_loop(caf::actor_system& sys, const Handle& dest, uint64_t n,
                   bool release) {
  std::promise<void> done;
  auto finished = done.get_future();
  auto t0 = clock_type::now();
  sys.spawn([&, dest](caf::event_based_actor* self) {
    auto left = std::make_shared<uint64_t>(n);
    auto next = std::make_shared<std::function<void()>>();
    *next = [=, &done] {
      self->request(dest, std::chrono::seconds(10), troupe::acquire_atom_v,
                    std::string{})
        .then(
          [=, &done](uint64_t permit) {
            if (release)
              self->send(caf::actor_cast<troupe::rate_limiter_actor>(dest),
                         troupe::release_atom_v, permit);
            if (--*left == 0) {
              done.set_value();
              *next = nullptr; // breaks the cycle
              return;
            }
            (*next)();
          },
          [=](caf::error& err) {
            std::cerr << "  permit loop: " << caf::to_string(err) << '\n';
            self->quit();
          });
    };
    (*next)();
  });
  if (finished.wait_for(std::chrono::minutes(10)) != std::future_status::ready)
    throw std::runtime_error("limiter bench: no result after 10 minutes");
  return seconds_since(t0);
}

void bench_limiter(const options& o, std::vector<row>& rows) {
  auto n = o.limiter_count;
  std::printf("rate_limiter, %s sequential permits (acquire + release; rate "
              "1e9/s, burst 1000, max_in_flight 16), %zu run(s): limiter | "
              "raw request round trip\n",
              human_count(n).c_str(), o.runs);
  std::fflush(stdout);
  caf::actor_system_config cfg;
  troupe::add_message_types(cfg);
  troupe::actors::add_message_types(cfg);
  cfg.set("scheduler.max-threads", 2);
  caf::actor_system sys{cfg};
  troupe::rate_limiter_config lc;
  lc.name = "bench";
  lc.rate = 1e9;
  lc.burst = 1000;
  lc.max_in_flight = 16;
  auto lim = troupe::spawn_rate_limiter(sys, lc);
  auto echo = sys.spawn(echo_permit);
  std::vector<double> r_lim, r_raw; // per second
  for (size_t run = 0; run < o.runs; ++run) {
    double tl = permit_loop(sys, lim, n, true);
    double tr = permit_loop(sys, echo, n, false);
    r_lim.push_back(n / tl);
    r_raw.push_back(n / tr);
    std::printf("  run %zu: limiter %.3f s (%.0f k permits/s) | raw %.3f s "
                "(%.0f k round trips/s)\n",
                run + 1, tl, n / tl / 1e3, tr, n / tr / 1e3);
    std::fflush(stdout);
  }
  caf::anon_send_exit(lim, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
  auto l = median(r_lim), r = median(r_raw);
  rows.push_back({"limiter permits/s vs round trips/s",
                  fmt("%.0f k/s", r / 1e3), fmt("%.0f k/s", l / 1e3),
                  fmt("%.2fx", l / r), ">= 0.5x", l / r >= 0.5});
}


// -- waiting: a map through a cache at 100% hits vs the same map -------------

std::string waiting_yaml(uint64_t n, bool cached) {
  return "version: 1\nname: waiting\n"
         + std::string{cached ? "resources:\n  memo: { type: cache, "
                                "capacity: 10000 }\n"
                              : ""}
         + "nodes:\n"
           "  gen:  { type: generate, count: "
         + std::to_string(n)
         + ", template: \"raw_{i}\", cycle: 1000 }\n"
           "  hash: { type: map, fn: sha256"
         + (cached ? ", cache: memo, max_in_flight: 512" : "")
         + ", inputs: [gen] }\n"
           "  sink: { type: \"null\", inputs: [hash] }\n";
}

void bench_waiting(const options& o, std::vector<row>& rows) {
  auto n = o.chain_count / 2;
  std::printf("map(sha256) over %s records (1000 distinct bodies), %zu "
              "run(s): with a cache (all but the first 1000 are hits) | without\n",
              human_count(n).c_str(), o.runs);
  std::fflush(stdout);
  troupe::registry reg;
  troupe::register_builtins(reg);
  auto load = [&](bool cached) {
    auto g = troupe::load_graph_text(waiting_yaml(n, cached), "<waiting>", reg);
    if (!g.ok()) {
      for (auto& d : g.errors)
        std::cerr << d.str() << '\n';
      throw std::runtime_error("waiting graph does not load");
    }
    return std::move(*g.graph);
  };
  auto cached = load(true), plain = load(false);
  std::vector<double> r_cached, r_plain;
  for (size_t run = 0; run < o.runs; ++run) {
    double tc = troupe_chain_once(reg, cached, n);
    double tp = troupe_chain_once(reg, plain, n);
    r_cached.push_back(n / tc);
    r_plain.push_back(n / tp);
    std::printf("  run %zu: cached %.3f s (%.2f M rec/s) | plain %.3f s "
                "(%.2f M rec/s)\n",
                run + 1, tc, n / tc / 1e6, tp, n / tp / 1e6);
    std::fflush(stdout);
  }
  auto c = median(r_cached), p = median(r_plain);
  rows.push_back({"map via cache (hits) " + human_count(n) + ", records/s",
                  fmt("%.2f M/s", p / 1e6), fmt("%.2f M/s", c / 1e6),
                  fmt("%.2fx", c / p), ">= 0.5x", c / p >= 0.5});
}

} // namespace

int main(int argc, char** argv) {
  auto o = parse_options(argc, argv);
  std::printf("troupe-bench: %s, %u hardware threads\n", o.troupe.c_str(),
              std::thread::hardware_concurrency());
  std::vector<row> rows;
  try {
    if (o.only.empty() || o.only == "etl")
      bench_etl(o, rows);
    if (o.only.empty() || o.only == "chain")
      bench_chain(o, rows);
    if (o.only.empty() || o.only == "flood")
      bench_flood(o, rows);
    if (o.only.empty() || o.only == "faults")
      bench_faults(o, rows);
    if (o.only.empty() || o.only == "supervision")
      bench_supervision(o, rows);
    if (o.only.empty() || o.only == "cache")
      bench_cache(o, rows);
    if (o.only.empty() || o.only == "pool")
      bench_pool(o, rows);
    if (o.only.empty() || o.only == "waiting")
      bench_waiting(o, rows);
    if (o.only.empty() || o.only == "limiter")
      bench_limiter(o, rows);
  } catch (const std::exception& e) {
    std::cerr << "troupe-bench: " << e.what() << '\n';
    print_table(rows);
    return 1;
  }
  print_table(rows);
  bool any_failed = std::any_of(rows.begin(), rows.end(),
                                [](const row& r) { return r.failed; });
  return any_failed ? 1 : 0;
}
