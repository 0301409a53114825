#!/bin/sh
# Rebuilds steer.o from steer.c (docs/packet-io.md). Needs clang and libbpf-dev.
# Usage: build.sh [OUTPUT]   (default: steer.o beside this script)
# The prefix map keeps the build directory out of the object, so the bytes do not depend on
# where the repository is checked out (the test bpf_object_matches_source compares them).
set -eu
cd "$(dirname "$0")"
out="${1:-steer.o}"
clang -O2 -g -target bpf -I"/usr/include/$(uname -m)-linux-gnu" \
    -fdebug-prefix-map="$PWD=." -c steer.c -o "$out"
llvm-strip -g "$out"
