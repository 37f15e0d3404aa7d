#include "progress.hpp"

#include <cmath>
#include <cstdio>
#include <sstream>

namespace troupe::cli {

progress_meter::progress_meter(clock::time_point start)
  : start_(start), last_(start) {
}

std::string short_count(double v) {
  char buf[32];
  if (v >= 1e9)
    std::snprintf(buf, sizeof buf, "%.1fG", v / 1e9);
  else if (v >= 999.5e3) // not "1000k"
    std::snprintf(buf, sizeof buf, "%.1fM", v / 1e6);
  else if (v >= 1e4)
    std::snprintf(buf, sizeof buf, "%.0fk", v / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

std::string short_duration(double seconds) {
  auto s = static_cast<long long>(std::ceil(std::max(seconds, 0.0)));
  char buf[32];
  if (s < 60)
    std::snprintf(buf, sizeof buf, "%llds", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, s / 60 % 60);
  return buf;
}

double progress_meter::fraction_done(const run_metrics& m) {
  uint64_t done = 0, total = 0;
  bool any_source = false;
  for (auto& n : m.nodes) {
    if (n->kind != actor_kind::source)
      continue;
    any_source = true;
    auto t = n->work_total.load(std::memory_order_relaxed);
    if (t == 0)
      return -1; // this source does not know (yet) how far it goes
    // Sources in different units (records, bytes) weigh the same.
    auto d = std::min(n->work_done.load(std::memory_order_relaxed), t);
    done += static_cast<uint64_t>(1e6 * static_cast<double>(d)
                                  / static_cast<double>(t));
    total += 1000000;
  }
  if (!any_source || total == 0)
    return -1;
  return static_cast<double>(done) / static_cast<double>(total);
}

std::string progress_meter::line(const run_report& r, const run_metrics& m,
                                 clock::time_point now, size_t width) {
  auto secs = std::chrono::duration<double>(now - last_).count();
  auto elapsed = std::chrono::duration<double>(now - start_).count();
  if (last_out_.size() != r.nodes.size())
    last_out_.assign(r.nodes.size(), 0);
  auto rate = [&](uint64_t now_count, uint64_t then) {
    return secs > 0 ? static_cast<double>(now_count - std::min(now_count, then))
                        / secs
                    : 0.0;
  };
  std::ostringstream o;
  o << r.graph << ": ";
  auto f = fraction_done(m);
  if (f >= 0) {
    o << static_cast<int>(f * 100) << "%";
    if (f > 0.001 && f < 1)
      o << " ETA " << short_duration(elapsed * (1 - f) / f);
    o << " | ";
  }
  o << short_count(static_cast<double>(r.source_records)) << " in, "
    << short_count(static_cast<double>(r.sink_records)) << " out, "
    << short_count(rate(r.source_records, last_sources_)) << " rec/s, "
    << r.in_flight << " in flight";
  if (r.dead_lettered > 0)
    o << ", " << r.dead_lettered << " failed";
  if (r.restarts > 0)
    o << ", " << r.restarts << " restarts";
  o << " |";
  for (size_t i = 0; i < r.nodes.size(); ++i) {
    o << ' ' << r.nodes[i].name << ' '
      << short_count(rate(r.nodes[i].out, last_out_[i])) << "/s";
    last_out_[i] = r.nodes[i].out;
  }
  last_sources_ = r.source_records;
  last_ = now;
  auto s = o.str();
  if (width > 1 && s.size() > width - 1)
    s.resize(width - 1); // never wrap: "\r" could not go back over two lines
  return "\r\033[K" + s;
}

} // namespace troupe::cli
