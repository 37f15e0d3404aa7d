// troupe-etl-loop COUNT OUT_PATH: the tuned C++ loop of etl_loop.hpp as a
// process of its own, so troupe-bench can time it whole (start-up, exit,
// rusage) exactly as it times `troupe run`. Exit 0 on success, 1 when the
// loop fails, 2 on a usage error.
#include "etl_loop.hpp"

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>

int main(int argc, char** argv) {
  uint64_t n = 0;
  if (argc == 3) {
    auto end = argv[1] + std::strlen(argv[1]);
    auto [p, ec] = std::from_chars(argv[1], end, n);
    if (ec != std::errc{} || p != end)
      n = 0;
  }
  if (n == 0) {
    std::fprintf(stderr, "usage: troupe-etl-loop COUNT OUT_PATH "
                         "(COUNT a positive integer)\n");
    return 2;
  }
  try {
    troupe::bench::etl_cpp_loop(n, argv[2]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "troupe-etl-loop: %s\n", e.what());
    return 1;
  }
  return 0;
}
