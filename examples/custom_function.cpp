// Extension level 1: register a record function in C++ and use it from YAML.
// Usage: custom_function FILE.yaml — runs it and checks the output.
#include <fstream>
#include <iostream>

#include "troupe/loader.hpp"
#include "troupe/registry.hpp"
#include "troupe/runtime.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: custom_function FILE.yaml\n";
    return 64;
  }
  troupe::registry reg;
  troupe::register_builtins(reg);
  reg.add_function("rot13", "rotates ASCII letters by 13", [] {
    return troupe::record_fn{[](troupe::record& r) {
      for (auto& c : r.body) {
        if (c >= 'a' && c <= 'z')
          c = static_cast<char>('a' + (c - 'a' + 13) % 26);
        else if (c >= 'A' && c <= 'Z')
          c = static_cast<char>('A' + (c - 'A' + 13) % 26);
      }
      return troupe::fn_result::keep();
    }};
  });
  auto loaded = troupe::load_graph_file(argv[1], reg);
  for (auto& d : loaded.errors)
    std::cerr << d.str() << '\n';
  if (!loaded.ok())
    return 78;
  troupe::runtime rt{reg, {}};
  auto run = rt.start(*loaded.graph);
  if (!run.wait_for(std::chrono::seconds(60)))
    return 1;
  std::cout << troupe::report_summary(run.report());
  std::ifstream in("out/rot13.txt");
  std::string first;
  std::getline(in, first);
  std::cout << "first line: " << first << '\n';
  return first == "uryyb 0" && run.report().sink_records == 100 ? 0 : 1;
}
