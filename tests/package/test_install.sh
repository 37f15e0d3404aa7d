#!/usr/bin/env bash
# Installs troupe from a build tree into a temporary prefix, then uses it the
# way a user would: builds examples/ as a separate CMake project with
# find_package(troupe) and runs its tests, and compiles and runs a tiny
# program with pkg-config alone.
# Usage: test_install.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/troupe-install-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

cmake --install "$build" --prefix "$prefix" >/dev/null
for f in bin/troupe include/troupe/record.hpp include/troupe/actors/io.hpp; do
  [ -e "$prefix/$f" ] || { echo "not installed: $f" >&2; exit 1; }
done
"$prefix/bin/troupe" --version

# The examples, standalone against the installed package. The compiler and
# its launcher (ccache) are the build's own, so CI pays no extra compile.
cxx=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")
launcher=$(sed -n 's/^CMAKE_CXX_COMPILER_LAUNCHER:[A-Z]*=//p' "$build/CMakeCache.txt")
cmake -S "$src/examples" -B "$work/examples" -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$cxx" \
      ${launcher:+-DCMAKE_CXX_COMPILER_LAUNCHER="$launcher"} >/dev/null
cmake --build "$work/examples" -j2 >/dev/null
(cd "$work/examples" && ctest --output-on-failure)

# pkg-config: flags alone build and link a program against the static libs.
libdir=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:[A-Z]*=//p' "$build/CMakeCache.txt")
export PKG_CONFIG_PATH=$prefix/${libdir:-lib}/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
pkg-config --exists troupe
cat >"$work/tiny.cpp" <<'CPP'
#include <iostream>
#include "troupe/registry.hpp"
int main() {
  troupe::registry reg;
  troupe::register_builtins(reg);
  auto* t = reg.find("generate", troupe::actor_kind::source);
  if (!t)
    return 1;
  std::cout << "pkg-config build ok: " << t->name << '\n';
  return 0;
}
CPP
# shellcheck disable=SC2046 # pkg-config output is a list of flags
"$cxx" -o "$work/tiny" "$work/tiny.cpp" $(pkg-config --cflags --libs troupe)
"$work/tiny"
