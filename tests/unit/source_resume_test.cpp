// Sources resume after a restart (node_memory): in virtual time on CAF's test
// coordinator, a source inside a one_for_all group whose stage kills its
// actor on many batches must still finish with every record delivered.
// Before, every group restart started the sources over (and the same batch
// killed the stage again), so such a run never finished.
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include "troupe/loader.hpp"
#include "troupe/registry.hpp"
#include "troupe/runtime.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

class keep_sink : public node_logic {
public:
  explicit keep_sink(std::vector<std::string>* out) : out_(out) {
  }
  void consume(record_batch batch, emitter& out) override {
    for (auto& r : batch.records())
      out_->push_back(r.body);
    out.emit(std::move(batch));
  }

private:
  std::vector<std::string>* out_;
};

struct resume_harness {
  registry reg;
  std::vector<std::string> got;
  std::unique_ptr<runtime> rt;
  caf::scheduler::test_coordinator* sched = nullptr;

  resume_harness() {
    register_builtins(reg);
    actor_type keep;
    keep.name = "keep";
    keep.kind = actor_kind::sink;
    keep.make_node = [this](const node_context&) {
      return std::make_unique<keep_sink>(&got);
    };
    reg.add(keep);
    rt = std::make_unique<runtime>(reg, runtime_options{1, true});
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(
      rt->system().scheduler());
  }
  ~resume_harness() {
    sched->run();
  }

  run_report run(const std::string& yaml) {
    auto res = load_graph_text(yaml, "resume.yaml", reg);
    REQUIRE(res.ok());
    auto run = rt->start(*res.graph);
    sched->run();
    for (duration t{0}; t < 120s && !run.finished(); t += 10ms) {
      sched->advance_time(10ms);
      sched->run();
    }
    REQUIRE_MESSAGE(run.finished(), "the run never finished");
    return run.report();
  }
};

const char* group_yaml = R"(version: 1
runtime: { batch_size: 16 }
supervision: { intensity: 1000, period: 10s, backoff: { min: 1ms, max: 2ms } }
groups:
  g:
    nodes: [src, chaos]
    supervision: { strategy: one_for_all, intensity: 1000, period: 10s,
                   backoff: { min: 1ms, max: 2ms } }
nodes:
  src:   SOURCE
  chaos: { type: chaos, seed: 11, kill: 0.1, inputs: [src] }
  out:   { type: keep, inputs: [chaos] }
)";

std::string with_source(const std::string& source) {
  std::string yaml = group_yaml;
  yaml.replace(yaml.find("SOURCE"), 6, source);
  return yaml;
}

void check_complete(const run_report& rep, const std::vector<std::string>& got,
                    const std::set<std::string>& want) {
  CHECK(rep.status == "completed");
  for (auto& n : rep.nodes) {
    CHECK_MESSAGE(n.balanced(), "node " << n.name << " is not balanced");
    if (n.name == "src")
      CHECK(n.restarts > 0);
  }
  std::set<std::string> seen(got.begin(), got.end());
  size_t missing = 0;
  for (auto& w : want)
    missing += seen.count(w) == 0;
  CHECK(missing == 0);
}

} // namespace

TEST_CASE("a generate source in a one_for_all group resumes, not restarts") {
  resume_harness h;
  auto rep = h.run(with_source("{ type: generate, count: 3000 }"));
  std::set<std::string> want;
  for (int i = 0; i < 3000; ++i)
    want.insert(std::to_string(i));
  check_complete(rep, h.got, want);
}

TEST_CASE("a file source in a one_for_all group resumes where it was") {
  char name[] = "/tmp/troupe-resume-XXXXXX";
  int fd = ::mkstemp(name);
  REQUIRE(fd >= 0);
  std::string text;
  std::set<std::string> want;
  for (int i = 0; i < 3000; ++i) {
    text += "line-" + std::to_string(i) + "\n";
    want.insert("line-" + std::to_string(i));
  }
  REQUIRE(::write(fd, text.data(), text.size())
          == static_cast<ssize_t>(text.size()));
  ::close(fd);
  {
    resume_harness h;
    auto rep = h.run(
      with_source(std::string("{ type: file, path: \"") + name + "\" }"));
    check_complete(rep, h.got, want);
  }
  ::unlink(name);
}
