// The Prometheus text of a run, parsed back: one HELP/TYPE per family, no
// duplicate series, histograms cumulative with +Inf equal to _count, label
// values escaped; and the live view's snapshot of a real (deterministic) run.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <caf/scheduler/test_coordinator.hpp>

#include "troupe/loader.hpp"
#include "troupe/observe.hpp"
#include "troupe/registry.hpp"
#include "troupe/runtime.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

struct series {
  std::string name;
  std::map<std::string, std::string> labels; // unescaped values
  std::string value;
};

struct exposition {
  std::map<std::string, std::string> types; // family -> TYPE
  std::map<std::string, int> help_count, type_count;
  std::vector<series> samples;
};

// A strict reader of the 0.0.4 text format, enough for what we write; a
// FAIL on anything it cannot read.
exposition parse(const std::string& text) {
  exposition e;
  size_t pos = 0;
  while (pos < text.size()) {
    auto eol = text.find('\n', pos);
    REQUIRE(eol != std::string::npos); // every line ends with \n
    auto line = text.substr(pos, eol - pos);
    pos = eol + 1;
    REQUIRE_FALSE(line.empty());
    if (line.rfind("# HELP ", 0) == 0) {
      auto name = line.substr(7, line.find(' ', 7) - 7);
      ++e.help_count[name];
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      auto rest = line.substr(7);
      auto sp = rest.find(' ');
      REQUIRE(sp != std::string::npos);
      e.types[rest.substr(0, sp)] = rest.substr(sp + 1);
      ++e.type_count[rest.substr(0, sp)];
      continue;
    }
    REQUIRE(line[0] != '#');
    series s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ')
      s.name += line[i++];
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (line.at(i) != '}') {
        std::string key;
        while (line.at(i) != '=')
          key += line[i++];
        REQUIRE(line.at(++i) == '"');
        ++i;
        std::string value;
        while (line.at(i) != '"') {
          char c = line[i++];
          if (c == '\\') {
            char x = line.at(i++);
            REQUIRE((x == '\\' || x == '"' || x == 'n'));
            value += x == 'n' ? '\n' : x;
          } else {
            REQUIRE(c != '\n');
            value += c;
          }
        }
        ++i;
        CHECK_MESSAGE(s.labels.count(key) == 0, "label twice: " << key);
        s.labels[key] = value;
        if (line.at(i) == ',')
          ++i;
      }
      ++i;
    }
    REQUIRE(line.at(i) == ' ');
    s.value = line.substr(i + 1);
    REQUIRE_FALSE(s.value.empty());
    e.samples.push_back(std::move(s));
  }
  return e;
}

std::string family_of(const exposition& e, const std::string& name) {
  if (e.types.count(name))
    return name;
  for (auto* suffix : {"_bucket", "_sum", "_count"}) {
    std::string x = suffix;
    if (name.size() > x.size()
        && name.compare(name.size() - x.size(), x.size(), x) == 0) {
      auto base = name.substr(0, name.size() - x.size());
      if (e.types.count(base) && e.types.at(base) == "histogram")
        return base;
    }
  }
  return "";
}

std::string key_of(const series& s, bool without_le = false) {
  std::string k = s.name + "{";
  for (auto& [n, v] : s.labels)
    if (!(without_le && n == "le"))
      k += n + "=" + v + "\x1f";
  return k + "}";
}

double number(const std::string& v) {
  if (v == "+Inf")
    return 1e308 * 10;
  return std::stod(v);
}

// Everything the format and Prometheus's model demand of our output.
void check_well_formed(const exposition& e) {
  for (auto& [family, n] : e.type_count) {
    CHECK_MESSAGE(n == 1, "TYPE twice: " << family);
    CHECK_MESSAGE(e.help_count.count(family) == 1, "no HELP: " << family);
  }
  for (auto& [family, n] : e.help_count)
    CHECK_MESSAGE(n == 1, "HELP twice: " << family);
  std::set<std::string> seen;
  for (auto& s : e.samples) {
    CHECK_MESSAGE(!family_of(e, s.name).empty(), "no TYPE for " << s.name);
    CHECK_MESSAGE(seen.insert(key_of(s)).second,
                  "duplicate series " << key_of(s));
  }
  // Histograms: per series (labels without le), buckets in order of `le`
  // non-decreasing, a +Inf bucket equal to _count.
  struct hist {
    std::vector<std::pair<double, double>> buckets; // le, count
    bool has_inf = false, has_count = false, has_sum = false;
    double inf = 0, count = 0;
  };
  std::map<std::string, hist> hists;
  for (auto& s : e.samples) {
    auto family = family_of(e, s.name);
    if (family.empty() || e.types.at(family) != "histogram")
      continue;
    series base = s;
    base.name = family;
    auto& h = hists[key_of(base, true)];
    if (s.name == family + "_bucket") {
      REQUIRE(s.labels.count("le"));
      auto le = s.labels.at("le");
      h.buckets.emplace_back(number(le), number(s.value));
      if (le == "+Inf") {
        h.has_inf = true;
        h.inf = number(s.value);
      }
    } else if (s.name == family + "_count") {
      h.has_count = true;
      h.count = number(s.value);
    } else if (s.name == family + "_sum") {
      h.has_sum = true;
    }
  }
  for (auto& [k, h] : hists) {
    CHECK_MESSAGE(h.has_inf, "no +Inf bucket: " << k);
    CHECK_MESSAGE(h.has_count, "no _count: " << k);
    CHECK_MESSAGE(h.has_sum, "no _sum: " << k);
    CHECK_MESSAGE(h.inf == h.count, "+Inf != _count: " << k);
    auto sorted = h.buckets;
    std::stable_sort(sorted.begin(), sorted.end());
    for (size_t i = 1; i < sorted.size(); ++i) {
      CHECK_MESSAGE(sorted[i].first != sorted[i - 1].first, "le twice: " << k);
      CHECK_MESSAGE(sorted[i].second >= sorted[i - 1].second,
                    "buckets not cumulative: " << k);
    }
  }
}

const series* find(const exposition& e, const std::string& name,
                   const std::string& node, const std::string& le = "") {
  for (auto& s : e.samples)
    if (s.name == name && s.labels.count("node") && s.labels.at("node") == node
        && (le.empty() || s.labels.at("le") == le))
      return &s;
  return nullptr;
}

std::shared_ptr<registry> builtins() {
  auto reg = std::make_shared<registry>();
  register_builtins(*reg);
  return reg;
}

} // namespace

TEST_CASE("prometheus: hand-filled counters of odd node names, parsed back") {
  run_metrics metrics;
  const std::vector<std::string> names = {"plain", "quo\"te", "back\\slash",
                                          "new\nline", "uni✓code"};
  graph_spec graph;
  graph.name = "g \"1\"";
  for (size_t i = 0; i < names.size(); ++i) {
    auto m = std::make_unique<node_metrics>();
    m->name = names[i];
    m->type = i == 0 ? "generate" : "map";
    m->add(m->in, 10 * i);
    m->add(m->out, 10 * i + 1);
    m->add(m->restarts, i);
    for (uint64_t ns : {1ull, 300ull, 5000ull, 5000ull, 70000000000ull})
      m->record_latency(ns * (i + 1));
    metrics.nodes.push_back(std::move(m));
    node_spec spec;
    spec.name = names[i];
    spec.kind = i == 0 ? actor_kind::source : actor_kind::stage;
    graph.nodes.push_back(spec);
  }
  run_report report;
  report.graph = graph.name;
  report.status = "running";
  for (auto& m : metrics.nodes)
    report.nodes.push_back(snapshot(*m));
  auto text = prometheus_text(report, metrics, graph);
  auto e = parse(text);
  check_well_formed(e);

  // Every name came back unescaped, with its own figures.
  for (size_t i = 0; i < names.size(); ++i) {
    auto* out = find(e, "troupe_records_out_total", names[i]);
    REQUIRE_MESSAGE(out, "no series for " << names[i]);
    CHECK(out->value == std::to_string(10 * i + 1));
    CHECK(out->labels.at("graph") == graph.name);
    CHECK(out->labels.at("kind") == (i == 0 ? "source" : "stage"));
    auto* restarts = find(e, "troupe_node_restarts_total", names[i]);
    REQUIRE(restarts);
    CHECK(restarts->value == std::to_string(i));
    // 5 batches, one of them beyond the last finite bucket for i >= 0.
    auto* inf = find(e, "troupe_node_batch_latency_seconds_bucket", names[i],
                     "+Inf");
    REQUIRE(inf);
    CHECK(inf->value == "5");
  }
  // Exact cumulative counts at a boundary: le=2^14 ns (16.384 µs) holds the
  // batches of 1, 300, 5000 and 5000 ns (node "plain", factor 1).
  auto* b14 = find(e, "troupe_node_batch_latency_seconds_bucket", "plain",
                   "1.6384e-05");
  REQUIRE(b14);
  CHECK(b14->value == "4");
  auto* sum = find(e, "troupe_node_batch_latency_seconds_sum", "plain");
  REQUIRE(sum);
  CHECK(std::stod(sum->value) == doctest::Approx(70.0000103).epsilon(1e-6));
  // The run-level gauges: up while running, one status set.
  int statuses = 0;
  for (auto& s : e.samples)
    if (s.name == "troupe_run_status")
      statuses += s.value == "1";
  CHECK(statuses == 1);
}

TEST_CASE("prometheus: the checker itself catches what it must") {
  // A duplicate series, a histogram without +Inf, and non-cumulative buckets
  // are each reported: the checks above can fail.
  auto failures_of = [](const std::string& text) {
    int failed = 0;
    auto e = parse(text);
    // Count with our own logic rather than doctest's counters.
    std::set<std::string> seen;
    for (auto& s : e.samples)
      if (!seen.insert(key_of(s)).second)
        ++failed;
    bool inf = false, any = false;
    double last = -1;
    bool cumulative = true;
    for (auto& s : e.samples)
      if (s.name == "h_bucket") {
        any = true;
        inf = inf || s.labels.at("le") == "+Inf";
        cumulative = cumulative && number(s.value) >= last;
        last = number(s.value);
      }
    if (any && (!inf || !cumulative))
      ++failed;
    return failed;
  };
  CHECK(failures_of("# HELP c x\n# TYPE c counter\nc{a=\"1\"} 1\n"
                    "c{a=\"1\"} 2\n")
        == 1);
  CHECK(failures_of("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n"
                    "h_sum 1\nh_count 1\n")
        == 1);
  CHECK(failures_of("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
                    "h_bucket{le=\"2\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
                    "h_sum 1\nh_count 2\n")
        == 1);
}

TEST_CASE("prometheus and snapshot: a deterministic run, counted exactly") {
  auto reg = builtins();
  auto loaded = load_graph_text(R"(version: 1
name: obs
nodes:
  src: { type: generate, count: 500 }
  up: { type: map, fn: upper, inputs: [src] }
  out: { type: "null", inputs: [up] }
)",
                                "obs.yaml", *reg);
  REQUIRE(loaded.ok());
  auto& graph = *loaded.graph;
  runtime rt{std::shared_ptr<const registry>(reg), runtime_options{1, true}};
  auto& sched = dynamic_cast<caf::scheduler::test_coordinator&>(
    rt.system().scheduler());
  auto run = rt.start(graph);
  std::shared_ptr<snapshot_state> state;
  auto first = snapshot_json(run, graph, state);
  CHECK(first.find("\"status\": \"running\"") != std::string::npos);
  CHECK(first.find("\"rate\": 0") != std::string::npos);
  sched.run();
  for (int i = 0; i < 6000 && !run.finished(); ++i) {
    sched.advance_time(10ms);
    sched.run();
  }
  REQUIRE(run.finished());
  auto e = parse(prometheus_text(run, graph));
  check_well_formed(e);
  auto* out = find(e, "troupe_records_out_total", "out");
  REQUIRE(out);
  CHECK(out->value == "500");
  auto* created = find(e, "troupe_records_created_total", "src");
  REQUIRE(created);
  CHECK(created->value == "500");
  CHECK(created->labels.at("kind") == "source");
  for (auto& s : e.samples)
    if (s.name == "troupe_run_up")
      CHECK(s.value == "0");
    else if (s.name == "troupe_run_status")
      CHECK(s.value == (s.labels.at("status") == "completed" ? "1" : "0"));
  auto last = snapshot_json(run, graph, state);
  CHECK(last.find("\"status\": \"completed\"") != std::string::npos);
  CHECK(last.find("\"sink_records\": 500") != std::string::npos);
  CHECK(last.find("{\"name\": \"out\", \"type\": \"null\", \"kind\": "
                  "\"sink\", \"in\": 500, \"out\": 500")
        != std::string::npos);
  CHECK(last.find("\"dead_letters\": []") != std::string::npos);
}

TEST_CASE("listen addresses: defaults and refusals") {
  auto a = parse_listen_address(":9000");
  CHECK(a.host == "127.0.0.1");
  CHECK(a.port == 9000);
  a = parse_listen_address("0");
  CHECK(a.host == "127.0.0.1");
  CHECK(a.port == 0);
  a = parse_listen_address("0.0.0.0:80");
  CHECK(a.host == "0.0.0.0");
  a = parse_listen_address("[::1]:81");
  CHECK(a.host == "::1");
  for (auto* bad : {"", "host:", "h:abc", "h:70000", "h:-1", "a b:1",
                    "h:123456", "::1", "fe80::1", "::1:0", "[::1]", "[::1:80"})
    CHECK_THROWS_AS(parse_listen_address(bad), std::invalid_argument);
  // An unbracketed IPv6 host is named as such, not as a bad port or host.
  CHECK_THROWS_WITH_AS(parse_listen_address("::1"),
                       doctest::Contains("in brackets"),
                       std::invalid_argument);
}

TEST_CASE("web_server: stop() right after serve() returns") {
  // httplib 0.11's own stop() does nothing until its accept loop has begun:
  // a run shorter than the listener thread's start left troupe waiting for
  // it (the CLI's "a web client did not let go"). Back to back, the loop
  // has usually not begun.
  graph_spec g;
  g.name = "g";
  for (int i = 0; i < 100; ++i) {
    auto s = std::make_unique<web_server>(g, web_server::options{});
    auto stopped = std::make_shared<std::promise<void>>();
    auto done = stopped->get_future();
    s->serve(graph_run{});
    std::thread([&s, stopped] {
      s->stop();
      stopped->set_value();
    }).detach();
    if (done.wait_for(5s) != std::future_status::ready) {
      // The server cannot be destroyed while its thread is stuck.
      MESSAGE("stop() still waiting after 5 s, round " << i);
      std::fflush(nullptr);
      std::_Exit(1);
    }
  }
}
