// Sources resume after a restart (node_memory): in virtual time on CAF's test
// coordinator, a source inside a one_for_all group whose stage kills its
// actor on many batches must still finish with every record delivered.
// Before, every group restart started the sources over (and the same batch
// killed the stage again), so such a run never finished.
#include <unistd.h>

#include <set>
#include <string>

#include "graph_harness.hpp"

using namespace troupe_test;

namespace {

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
  out:   { type: collect, inputs: [chaos] }
)";

std::string with_source(const std::string& source) {
  std::string yaml = group_yaml;
  yaml.replace(yaml.find("SOURCE"), 6, source);
  return yaml;
}

// Runs `source` in the group until the run ends; every record of `want`
// must reach the sink, and the source must have been restarted.
void check_complete(harness& h, const std::string& source,
                    const std::set<std::string>& want) {
  auto run = h.start(with_source(source));
  REQUIRE_MESSAGE(h.drive(run, 120s), "the run never finished");
  auto rep = run.report();
  CHECK(rep.status == "completed");
  check_balanced(rep);
  for (auto& n : rep.nodes)
    if (n.name == "src")
      CHECK(n.restarts > 0);
  std::set<std::string> seen;
  for (auto& r : h.sinks["out"].records)
    seen.insert(r.body);
  size_t missing = 0;
  for (auto& w : want)
    missing += seen.count(w) == 0;
  CHECK(missing == 0);
}

} // namespace

TEST_CASE("a generate source in a one_for_all group resumes, not restarts") {
  harness h;
  std::set<std::string> want;
  for (int i = 0; i < 3000; ++i)
    want.insert(std::to_string(i));
  check_complete(h, "{ type: generate, count: 3000 }", want);
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
    harness h;
    check_complete(h, std::string("{ type: file, path: \"") + name + "\" }",
                   want);
  }
  ::unlink(name);
}
