#!/usr/bin/env bash
# Build the kernels with AddressSanitizer and UndefinedBehaviorSanitizer in a
# copy of the sources and run the tests that need no torch against them.
#   bash tools/sanitize.sh            (needs Cython, setuptools, pytest, hypothesis; a few minutes)
# The Python interpreter itself is not instrumented, so the sanitizer runtimes
# are preloaded; leak detection is off (CPython keeps memory until exit).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${WORK:-$(mktemp -d)}
(cd "$ROOT" && git ls-files -z | xargs -0 cp --parents -t "$WORK")
cd "$WORK"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
echo ">>> building with $SAN in $WORK"
ENGINE_CFLAGS="$SAN" ENGINE_LDFLAGS="$SAN" python3 setup.py -q build_ext --inplace > build.log 2>&1 \
    || { tail -30 build.log; exit 1; }
export LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export PYTHONPATH=$WORK
python3 -m pytest -q -p no:cacheprovider tests/test_kernels.py tests/test_inputs.py \
    tests/test_fileformat.py tests/test_shuffle.py tests/test_fuzz.py \
    --deselect tests/test_inputs.py::test_no_memory_growth_over_10000_inferences \
    --deselect tests/test_shuffle.py::test_in_place_uses_about_one_plane_of_memory
# (those two measure resident memory, which the sanitizers' shadow memory distorts)
echo ">>> no sanitizer reports"
