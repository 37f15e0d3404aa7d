#include "troupe/metrics.hpp"

namespace troupe {

void recent_failures::note(bool crash, uint64_t seq, std::string_view reason) {
  entry e;
  e.crash = crash;
  e.seq = seq;
  e.reason = std::string(reason.substr(0, 512));
  e.at = std::chrono::system_clock::now();
  std::lock_guard<std::mutex> guard{mutex_};
  ring_[total_ % capacity] = std::move(e);
  ++total_;
}

std::vector<recent_failures::entry> recent_failures::list() const {
  std::lock_guard<std::mutex> guard{mutex_};
  std::vector<entry> out;
  auto n = total_ < capacity ? total_ : capacity;
  for (uint64_t i = total_ - n; i < total_; ++i)
    out.push_back(ring_[i % capacity]);
  return out;
}

uint64_t recent_failures::total() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return total_;
}

void node_metrics::record_latency(uint64_t ns) {
  latency_sum_ns.fetch_add(ns, std::memory_order_relaxed);
  size_t bucket = 0;
  while (ns > 1 && bucket + 1 < latency.size()) {
    ns >>= 1;
    ++bucket;
  }
  latency[bucket].fetch_add(1, std::memory_order_relaxed);
}

uint64_t node_metrics::latency_quantile(double q) const {
  uint64_t total = 0;
  for (auto& b : latency)
    total += b.load(std::memory_order_relaxed);
  if (total == 0)
    return 0;
  auto rank = static_cast<uint64_t>(q * static_cast<double>(total - 1)) + 1;
  uint64_t seen = 0;
  for (size_t i = 0; i < latency.size(); ++i) {
    seen += latency[i].load(std::memory_order_relaxed);
    if (seen >= rank)
      return uint64_t{1} << (i + 1);
  }
  return uint64_t{1} << latency.size();
}

int64_t node_metrics::in_flight() const {
  return static_cast<int64_t>(held.load(std::memory_order_relaxed)
                              + processing.load(std::memory_order_relaxed));
}

std::atomic<uint64_t>* event_counters::get(std::string_view name) {
  std::lock_guard<std::mutex> guard{mutex_};
  for (size_t i = 0; i < used_; ++i)
    if (names_[i] == name)
      return &values_[i];
  if (used_ == capacity)
    return nullptr;
  names_[used_] = std::string(name);
  return &values_[used_++];
}

std::vector<std::pair<std::string, uint64_t>> event_counters::list() const {
  std::lock_guard<std::mutex> guard{mutex_};
  std::vector<std::pair<std::string, uint64_t>> out;
  for (size_t i = 0; i < used_; ++i)
    out.emplace_back(names_[i], values_[i].load(std::memory_order_relaxed));
  return out;
}

std::shared_ptr<run_metrics> run_metrics::of(const graph_spec& g) {
  auto r = std::make_shared<run_metrics>();
  for (auto& n : g.nodes) {
    auto m = std::make_unique<node_metrics>();
    m->name = n.name;
    m->type = n.type;
    m->kind = n.kind;
    r->nodes.push_back(std::move(m));
  }
  return r;
}

const node_metrics* run_metrics::find(const std::string& name) const {
  for (auto& n : nodes)
    if (n->name == name)
      return n.get();
  return nullptr;
}

node_metrics* run_metrics::find(const std::string& name) {
  for (auto& n : nodes)
    if (n->name == name)
      return n.get();
  return nullptr;
}

} // namespace troupe
