#!/usr/bin/env bash
# The engine on the Raspberry Pi, without one: the aarch64 wheel (and the armv7
# one with ARMHF=1) cross-built by setup.py as tools/build_wheels.sh builds it,
# installed with pip in an emulated Debian bookworm (Pi OS's Python 3.11, no
# compiler), and the tests that need no torch run there under qemu-user, as a
# Cortex-A72 (Pi 4) and a Cortex-A76 (Pi 5), the suites side by side.
#
# Run as root on x86-64 Debian 12 (apt-get, mmdebstrap, binfmt_misc); the
# packages and sysroots are downloaded once into $WORK (tools/arm_env.sh). Needs
# Cython and setuptools >= 70.1 in the python3 it runs with.
#
#   WORK=/tmp/engine-arm    cache and build folder
#   QEMU_CPUS="cortex-a72 cortex-a76"
#   ARMHF=1                 also armv7 (-march=armv7-a -mfpu=neon-vfpv4), as a Cortex-A15
#   BUILD_ONLY=1            stop after installing the aarch64 wheel (tools/count_aarch64.py runs it)
#   JOBS=N                  emulated suites at a time (default: the cores)
#   WHEELS=DIR              test the wheels there (tools/build_wheels.sh's) instead of building them
#
# Model tests compare with PyTorch through fixtures made on this machine
# (tests/test_fixtures.py writes them when torch is importable here).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${WORK:-/tmp/engine-arm}
QEMU_CPUS=${QEMU_CPUS:-"cortex-a72 cortex-a76"}
ARMHF=${ARMHF:-0}
BUILD_ONLY=${BUILD_ONLY:-0}
WHEELS=${WHEELS:-}
TESTS="tests/test_kernels.py tests/test_ukernels.py tests/test_inputs.py tests/test_fileformat.py tests/test_shuffle.py tests/test_fixtures.py tests/test_abi.py tests/test_int8_kernels.py"
NEEDS_TORCH="--deselect tests/test_shuffle.py::test_same_as_torch"     # the one torch test among them
NAME=check_aarch64
# shellcheck source=tools/arm_env.sh
source "$ROOT/tools/arm_env.sh"

ARCHES=aarch64
[ "$ARMHF" = 1 ] && ARCHES="aarch64 armv7"
# shellcheck disable=SC2086
host_packages $ARCHES
binfmt

install_wheel() {  # arch sysroot outdir: the arch's wheel, from $WHEELS or cross-built here as tools/build_wheels.sh
             # does, installed by the emulated Pi OS's pip (no compiler there) into outdir, the tests beside it
    local arch=$1 sr=$2 out=$3 whl plat
    read -r _ _ plat <<<"$(arm_names "$arch")"
    rm -rf "$out"
    if [ -n "$WHEELS" ]; then
        whl=$(ls "$WHEELS"/*_"${plat#linux-}".whl 2>/dev/null | head -1 || true)     # ..._aarch64.whl
        [ -n "$whl" ] || die "no ${plat#linux-} wheel in $WHEELS"
    else
        step "wheel $arch ($(arm_cflags "$arch"))"
        rm -rf "$WORK/wheel-$arch"
        cross_wheel "$arch" "$sr" "$WORK/wheel-$arch"
        whl=$(ls "$WORK/wheel-$arch"/*.whl)
    fi
    step "pip install $(basename "$whl") under qemu"
    QEMU_LD_PREFIX=$sr "$sr/usr/bin/python$PYVER" -m pip install --no-index --no-deps --target "$out" "$whl" \
        >"$LOGS/pip-$arch.log" 2>&1 || { tail -20 "$LOGS/pip-$arch.log"; die "pip could not install the $arch wheel"; }
    (cd "$ROOT" && git ls-files tests weights | xargs cp --parents -t "$out")
}

run_tests() {  # sysroot builddir cpu isa expected tests...: isa "" lets the engine choose (it must choose expected)
    local sr=$1 out=$2 cpu=$3 isa=$4 expected=$5 rc log
    shift 5
    log="$LOGS/pytest-$cpu${isa:+-$isa}.log"
    step "pytest under qemu, $cpu${isa:+, ENGINE_ISA=$isa}"
    set +e
    (cd "$out" && QEMU_LD_PREFIX=$sr QEMU_CPU=$cpu ENGINE_ISA=$isa ENGINE_FIXTURES=$FIX \
        PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$out" \
        "$sr/usr/bin/python$PYVER" -m pytest -q -p no:cacheprovider -rs "$@") >"$log" 2>&1
    rc=$?
    set -e
    echo "    $cpu${isa:+, ENGINE_ISA=$isa}: $(tail -1 "$log")"
    [ "$rc" = 0 ] || { tail -60 "$log"; die "tests failed on $cpu"; }
    grep -qE "skipped" "$log" && { grep -A20 "short test summary" "$log"; die "tests skipped on $cpu"; }
    (cd "$out" && QEMU_LD_PREFIX=$sr QEMU_CPU=$cpu ENGINE_ISA=$isa PYTHONPATH="$out" \
        "$sr/usr/bin/python$PYVER" -c "import engine; assert engine.build_info()['isa'] == '$expected'") \
        || die "the engine did not run $expected kernels on $cpu"
    return 0
}

SR64=$(sysroot aarch64)
install_wheel aarch64 "$SR64" "$WORK/build-arm64"
fmla=$(aarch64-linux-gnu-objdump -d "$WORK"/build-arm64/engine/kernels/_neon*.so | grep -cE '\sfmla\s+v[0-9]+\.4s' || true)
echo "    NEON fmla instructions in the NEON kernels: $fmla"
[ "$fmla" -gt 20 ] || die "the aarch64 kernels have no NEON FMA code"
[ "$BUILD_ONLY" = 1 ] && { echo "check_aarch64: installed in $WORK/build-arm64"; exit 0; }

# -- 5. fixtures for the model tests, made with torch on this machine
FIX=$WORK/fixtures
if python3 -c 'import torch' 2>/dev/null; then
    step "fixtures (torch on the host)"
    rm -rf "$FIX"
    (cd "$ROOT" && ENGINE_FIXTURES_WRITE="$FIX" python3 -m pytest -q -p no:cacheprovider tests/test_fixtures.py) \
        >"$LOGS/fixtures.log" 2>&1 || { cat "$LOGS/fixtures.log"; die "making fixtures failed"; }
fi
[ -f "$FIX/shufflenet_v2_x0_5.engine" ] || die "no fixtures in $FIX: run once where torch is installed"

# The emulated suites are single processes: run as many side by side as there are cores
# (each writes its own log; run_tests prints its result line when it ends).
JOBS=${JOBS:-$(nproc)}
pids=()
spawn() {  # run_tests arguments: start it in the background once a slot is free
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
    run_tests "$@" &
    pids+=($!)
}
# armv7 first: its build and suite take longest
if [ "$ARMHF" = 1 ]; then
    SRHF=$(sysroot armv7)
    install_wheel armv7 "$SRHF" "$WORK/build-armhf"
    spawn "$SRHF" "$WORK/build-armhf" cortex-a15 "" neon $TESTS $NEEDS_TORCH
fi
# each CPU runs the module it chooses: a Pi 4's Cortex-A72 the baseline NEON one,
# a Pi 5's Cortex-A76 (dotprod, fp16) neon_dot
for cpu in $QEMU_CPUS; do
    case $cpu in cortex-a7[6-9]|cortex-a5[5-9]|neoverse-*) expected=neon_dot ;; *) expected=neon ;; esac
    spawn "$SR64" "$WORK/build-arm64" "$cpu" "" "$expected" $TESTS $NEEDS_TORCH
done
# the plain C fallback of the same build, once: kernels, microkernels and the models
spawn "$SR64" "$WORK/build-arm64" cortex-a72 scalar scalar tests/test_kernels.py tests/test_ukernels.py \
    tests/test_fixtures.py tests/test_abi.py tests/test_int8_kernels.py
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
[ "$failed" = 0 ] || die "some suites failed (above; logs in $LOGS)"
echo "check_aarch64: all passed"
