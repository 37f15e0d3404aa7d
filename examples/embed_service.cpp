// A C++ service that embeds troupe: it builds a graph from YAML text, runs it
// on its own runtime, reads the run report, and asks the run's counter
// resource for its value over the typed counter protocol after the run
// ended. Exits non-zero if anything is off, so it doubles as a test.
#include <caf/scoped_actor.hpp>

#include <iostream>
#include <stdexcept>

#include "troupe/actors/counter.hpp"
#include "troupe/loader.hpp"
#include "troupe/registry.hpp"
#include "troupe/runtime.hpp"

int main() {
  troupe::registry reg;
  troupe::register_builtins(reg);
  troupe::runtime rt{reg}; // keeps its own copy of reg

  auto loaded = troupe::load_graph_text(R"(version: 1
name: words
resources:
  seen: { type: counter }
nodes:
  words: { type: generate, count: 5000, template: "word {i}" }
  loud:  { type: map, fn: upper, workers: 2, counter: seen, inputs: [words] }
  keep:  { type: filter, regex: "[05]$", inputs: [loud] }
  out:   { type: file, path: out/words.txt, format: lines, inputs: [keep] }
)",
                                        "embedded.yaml", reg);
  if (!loaded.ok()) {
    for (auto& d : loaded.errors)
      std::cerr << d.str() << '\n';
    return 78;
  }
  auto run = rt.start(*loaded.graph);
  if (!run.wait_for(std::chrono::seconds(60))) {
    std::cerr << "run did not finish\n";
    return 1;
  }
  auto report = run.report();
  std::cout << troupe::report_summary(report);

  // The run's own counter outlives the run until run.release() (or the
  // runtime's end); ask it over its typed protocol. (A blocking scoped_actor
  // is fine here: this is the service's main thread, not an actor.)
  auto counter = run.resource<troupe::counter_actor>("seen");
  int64_t seen = -1;
  caf::scoped_actor self{rt.system()};
  self->request(counter, std::chrono::seconds(5), troupe::get_atom_v)
    .receive([&](int64_t n) { seen = n; },
             [&](caf::error&) { seen = -2; });
  std::cout << "counter 'seen' = " << seen << '\n';

  bool ok = report.status == "completed" && report.balanced()
            && report.sink_records == 1000; // words ending in 0 or 5
  if (seen != 5000)
    ok = false;
  run.release(); // done with the counter

  // A graph built in code gets the loader's checks: start() refuses an
  // invalid one whole (here: a map without its `fn`), nothing runs.
  auto bad = *loaded.graph;
  for (auto& n : bad.nodes)
    if (n.name == "loud")
      n.params = {};
  try {
    rt.start(bad);
    ok = false;
  } catch (const std::invalid_argument& e) {
    std::cout << "refused as expected: " << e.what() << '\n';
  }
  std::cout << (ok ? "embed_service: ok" : "embed_service: FAILED") << '\n';
  return ok ? 0 : 1;
}
