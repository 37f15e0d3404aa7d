// The progress line of `troupe run` (runtime/cli/progress.cpp): short
// figures, the fraction done over sources that know their size, the ETA,
// per-node rates over the last interval, and a line that never wraps.
#include <doctest/doctest.h>

#include "progress.hpp"

namespace {

using clock_type = troupe::cli::progress_meter::clock;

std::unique_ptr<troupe::node_metrics> node(const char* name,
                                           troupe::actor_kind kind,
                                           uint64_t done = 0,
                                           uint64_t total = 0) {
  auto m = std::make_unique<troupe::node_metrics>();
  m->name = name;
  m->kind = kind;
  m->work_done = done;
  m->work_total = total;
  return m;
}

troupe::run_report report_of(uint64_t sources, uint64_t a_out,
                             uint64_t b_out) {
  troupe::run_report r;
  r.graph = "g";
  r.source_records = sources;
  r.sink_records = b_out;
  troupe::node_report a, b;
  a.name = "src";
  a.out = a_out;
  b.name = "sink";
  b.out = b_out;
  r.nodes = {a, b};
  return r;
}

} // namespace

TEST_CASE("progress: short counts and durations") {
  using troupe::cli::short_count;
  using troupe::cli::short_duration;
  CHECK(short_count(0) == "0");
  CHECK(short_count(9999) == "9999");
  CHECK(short_count(12345) == "12k");
  CHECK(short_count(999950) == "1.0M"); // not "1000k"
  CHECK(short_count(2.5e6) == "2.5M");
  CHECK(short_count(3e9) == "3.0G");
  CHECK(short_duration(0.2) == "1s");
  CHECK(short_duration(59) == "59s");
  CHECK(short_duration(125) == "2m05s");
  CHECK(short_duration(3720) == "1h02m");
  CHECK(short_duration(-5) == "0s");
}

TEST_CASE("progress: fraction done needs every source's size") {
  using troupe::actor_kind;
  using troupe::cli::progress_meter;
  troupe::run_metrics m;
  CHECK(progress_meter::fraction_done(m) < 0); // no source at all
  m.nodes.push_back(node("gen", actor_kind::source, 50, 100));
  m.nodes.push_back(node("map", actor_kind::stage, 7, 0));
  CHECK(progress_meter::fraction_done(m) == doctest::Approx(0.5));
  // Sources in different units weigh the same: 50 % and 25 %.
  m.nodes.push_back(node("file", actor_kind::source, 250, 1000));
  CHECK(progress_meter::fraction_done(m) == doctest::Approx(0.375));
  // One source that cannot know (stdin): no ETA at all.
  m.nodes.push_back(node("stdin", actor_kind::source, 0, 0));
  CHECK(progress_meter::fraction_done(m) < 0);
}

TEST_CASE("progress: the line shows percent, ETA and per-node rates") {
  using troupe::actor_kind;
  troupe::run_metrics m;
  m.nodes.push_back(node("src", actor_kind::source, 0, 1000));
  m.nodes.push_back(node("sink", actor_kind::sink));
  auto t0 = clock_type::time_point{} + std::chrono::seconds(100);
  troupe::cli::progress_meter meter{t0};
  // After 2 s, a quarter done: 6 s to go at this pace.
  m.nodes[0]->work_done = 250;
  auto line = meter.line(report_of(250, 250, 200), m,
                         t0 + std::chrono::seconds(2), 200);
  CHECK(line.rfind("\r\033[K", 0) == 0);
  CHECK(line.find("g: 25% ETA 6s |") != std::string::npos);
  CHECK(line.find("src 125/s") != std::string::npos);
  CHECK(line.find("sink 100/s") != std::string::npos);
  // Rates are over the last interval, not since the start.
  m.nodes[0]->work_done = 500;
  line = meter.line(report_of(500, 500, 300), m,
                    t0 + std::chrono::milliseconds(2500), 200);
  CHECK(line.find("50% ETA 3s") != std::string::npos);
  CHECK(line.find("src 500/s") != std::string::npos);
  CHECK(line.find("sink 200/s") != std::string::npos);
  CHECK(line.find("500 rec/s") != std::string::npos);
  // Narrow terminal: cut, never wrapped.
  line = meter.line(report_of(600, 600, 400), m,
                    t0 + std::chrono::seconds(3), 30);
  CHECK(line.size() == std::string("\r\033[K").size() + 29);
}

TEST_CASE("progress: no ETA when a source does not know its size") {
  using troupe::actor_kind;
  troupe::run_metrics m;
  m.nodes.push_back(node("src", actor_kind::source));
  m.nodes.push_back(node("sink", actor_kind::sink));
  auto t0 = clock_type::time_point{} + std::chrono::seconds(1);
  troupe::cli::progress_meter meter{t0};
  auto line = meter.line(report_of(10, 10, 10), m,
                         t0 + std::chrono::seconds(1), 200);
  CHECK(line.find("ETA") == std::string::npos);
  CHECK(line.find('%') == std::string::npos);
  CHECK(line.find("g: 10 in, 10 out") != std::string::npos);
}
