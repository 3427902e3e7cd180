#!/bin/sh
# prepare.sh — builds, on a machine with the compiler (LLVM), everything tests/gpu/run.sh needs on
# a device machine that has the CUDA driver but no LLVM: build/gpu-kit/ holds gpu_check (runtime
# only), the shared libraries it needs that a CUDA image may lack (libxxhash, libomp), and
# kit.tar.xz: the artifacts of every lang/std and examples objective and of the 500 random
# programs of tests/backend/gen_programs.py, each with its CPU code and PTX for sm_80 and sm_90.
#
#   tests/gpu/prepare.sh [BUILD_DIR] [RANDOM_COUNT]     (defaults: build, 500; ~6 min for 500)
#
# Then carry BUILD_DIR/gpu-kit to the device and run tests/gpu/run.sh there (tests/gpu/README.md).
set -eu
build=${1:-build}
count=${2:-500}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
CC=${CC:-clang-19} cmake -S . -B "$build" -G Ninja >/dev/null
cmake --build "$build" -j2 --target rein gpu_check
kit=$build/gpu-kit
rm -rf "$kit" && mkdir -p "$kit/lib" "$kit/art/std" "$kit/art/examples" "$kit/art/random"
cp "$build/tests/gpu_check" "$kit/"
for lib in libxxhash.so.0 libomp.so.5; do
  path=$(ldd "$kit/gpu_check" | awk -v l="$lib" '$1 == l { print $3 }')
  [ -n "$path" ] && cp -L "$path" "$kit/lib/"
done
# x86-64-v3: the device machine's processor is another x86-64 than this one
compile() { "$build/rein" compile "$1" -o "$2" --cpu x86-64-v3; }
for f in lang/std/*.rein; do compile "$f" "$kit/art/std/$(basename "$f" .rein).so"; done
for f in examples/*.rein; do compile "$f" "$kit/art/examples/$(basename "$f" .rein).so"; done
/usr/bin/python3 tests/backend/gen_programs.py --seed 1 --count "$count" --out "$kit/random-src" >/dev/null
for f in "$kit"/random-src/*.rein; do compile "$f" "$kit/art/random/$(basename "$f" .rein).so"; done
rm -rf "$kit/random-src"
tar -C "$kit" -cJf "$kit/kit.tar.xz" art && rm -rf "$kit/art"
git rev-parse HEAD >"$kit/COMMIT" 2>/dev/null || true
echo "prepare.sh: $kit ready ($(du -sh "$kit" | cut -f1)); carry it with tests/gpu/run.sh (tests/gpu/README.md)"
