// troupe-alloc-count: an LD_PRELOAD shim that counts heap allocations.
//
// Counts every call of malloc, calloc, realloc, memalign, aligned_alloc,
// posix_memalign, valloc and pvalloc in the process (operator new goes
// through malloc in libstdc++, so it is counted too) and, at process exit,
// writes the total as a decimal line to the file named by the environment
// variable TROUPE_ALLOC_COUNT_OUT (nothing when it is unset or empty).
//
// The calls are forwarded to glibc's own entry points (__libc_malloc & co.)
// rather than looked up with dlsym(RTLD_NEXT), which may itself allocate
// before the shim has anything to forward to. glibc's free() pairs with them,
// so free is not wrapped. Thread-safe: one relaxed atomic counter.
//
// Used by the `alloc` ctest (tests/alloc/test_alloc.py) and by
// `troupe-bench --only allocations`:
//
//   TROUPE_ALLOC_COUNT_OUT=/tmp/n
//   LD_PRELOAD=build/tests/libtroupe-alloc-count.so
//   build/troupe run config/etl.yaml    (the three on one line)
//
// Not for sanitizer builds: ASan/TSan own malloc.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdlib>

// glibc's exported implementations (stable symbols in libc.so.6).
extern "C" {
extern void* __libc_malloc(size_t size);
extern void* __libc_calloc(size_t n, size_t size);
extern void* __libc_realloc(void* p, size_t size);
extern void* __libc_memalign(size_t alignment, size_t size);
extern void* __libc_valloc(size_t size);
extern void* __libc_pvalloc(size_t size);
}

namespace {

std::atomic<unsigned long long> allocations{0};

void count_one() {
  allocations.fetch_add(1, std::memory_order_relaxed);
}

bool is_power_of_two(size_t x) {
  return x != 0 && (x & (x - 1)) == 0;
}

} // namespace

// The replacements: C linkage, and noexcept as glibc declares them (__THROW).
#define EXPORT extern "C" __attribute__((visibility("default")))

EXPORT void* malloc(size_t size) noexcept {
  count_one();
  return __libc_malloc(size);
}

EXPORT void* calloc(size_t n, size_t size) noexcept {
  count_one();
  return __libc_calloc(n, size);
}

EXPORT void* realloc(void* p, size_t size) noexcept {
  count_one();
  return __libc_realloc(p, size);
}

EXPORT void* memalign(size_t alignment, size_t size) noexcept {
  count_one();
  return __libc_memalign(alignment, size);
}

EXPORT void* aligned_alloc(size_t alignment, size_t size) noexcept {
  count_one();
  if (!is_power_of_two(alignment)) {
    errno = EINVAL;
    return nullptr;
  }
  return __libc_memalign(alignment, size);
}

EXPORT int posix_memalign(void** out, size_t alignment, size_t size) noexcept {
  count_one();
  if (!is_power_of_two(alignment) || alignment % sizeof(void*) != 0)
    return EINVAL;
  // posix_memalign leaves errno alone on success and on failure.
  int saved = errno;
  void* p = __libc_memalign(alignment, size);
  errno = saved;
  if (!p)
    return ENOMEM;
  *out = p;
  return 0;
}

EXPORT void* valloc(size_t size) noexcept {
  count_one();
  return __libc_valloc(size);
}

EXPORT void* pvalloc(size_t size) noexcept {
  count_one();
  return __libc_pvalloc(size);
}

namespace {

// Runs when the process exits normally (return from main, exit()); the shim
// is preloaded, so it is finalised after the libraries it counts for. No
// stdio: plain open/write, no allocation.
__attribute__((destructor)) void write_count() {
  const char* path = getenv("TROUPE_ALLOC_COUNT_OUT");
  if (!path || !*path)
    return;
  unsigned long long n = allocations.load(std::memory_order_relaxed);
  char buf[32];
  char* end = buf + sizeof buf;
  char* p = end;
  *--p = '\n';
  do {
    *--p = static_cast<char>('0' + n % 10);
    n /= 10;
  } while (n != 0);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return;
  auto len = end - p;
  if (write(fd, p, static_cast<size_t>(len)) != len) {
    // nothing to report to: the reader sees a short or empty file
  }
  close(fd);
}

} // namespace
