#!/usr/bin/env bash
# Cross-build the engine's kernels for the Raspberry Pi (aarch64, and armv7
# with ARMHF=1) and run the tests that need no torch under qemu-user, as a
# Cortex-A72 (Pi 4) and a Cortex-A76 (Pi 5).
#
# Run as root on x86-64 Debian 12 (apt-get, mmdebstrap, binfmt_misc); about
# 3 minutes the first time (packages and a Debian bookworm arm64 sysroot with
# its python3.11, numpy and pytest are downloaded once into $WORK), then about
# 2 minutes.  Needs Cython in the python3 it runs with (pip install "Cython>=3").
#
#   WORK=/tmp/engine-arm    cache and build folder
#   QEMU_CPUS="cortex-a72 cortex-a76"
#   ARMHF=1                 also armv7 (-march=armv7-a -mfpu=neon-vfpv4), as a Cortex-A15
#   BUILD_ONLY=1            stop after the aarch64 build (tools/count_aarch64.py runs what it built)
#
# Model tests compare with PyTorch through fixtures made on this machine
# (tests/test_fixtures.py writes them when torch is importable here).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${WORK:-/tmp/engine-arm}
QEMU_CPUS=${QEMU_CPUS:-"cortex-a72 cortex-a76"}
ARMHF=${ARMHF:-0}
BUILD_ONLY=${BUILD_ONLY:-0}
PYVER=3.11
SUITE=bookworm
MIRROR=${MIRROR:-http://deb.debian.org/debian}
TESTS="tests/test_kernels.py tests/test_ukernels.py tests/test_inputs.py tests/test_fileformat.py tests/test_shuffle.py tests/test_fixtures.py tests/test_abi.py"
NEEDS_TORCH="--deselect tests/test_shuffle.py::test_same_as_torch"     # the one torch test among them
mkdir -p "$WORK/logs"
LOGS=$WORK/logs

die() { echo "check_aarch64: $*" >&2; exit 1; }
step() { echo ">>> $(date +%T) $*"; }
[ "$(id -u)" = 0 ] || die "run as root (apt-get, mmdebstrap, binfmt_misc)"
python3 -c 'import Cython' 2>/dev/null || die "needs Cython in $(command -v python3): pip install 'Cython>=3'"

# -- 1. host packages
pkgs="gcc-aarch64-linux-gnu qemu-user-static mmdebstrap binutils-aarch64-linux-gnu"
[ "$ARMHF" = 1 ] && pkgs="$pkgs gcc-arm-linux-gnueabihf"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    step "apt-get install$missing"
    for try in 1 2 3; do      # a mirror caught mid-sync fails now and then
        apt-get update >"$LOGS/apt.log" 2>&1 && break
        [ "$try" = 3 ] && { tail "$LOGS/apt.log"; die "apt-get update failed"; }
        sleep 5
    done
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing >>"$LOGS/apt.log" 2>&1 \
        || { tail -20 "$LOGS/apt.log"; die "apt-get install failed"; }
fi

# -- 2. binfmt_misc, so the emulated python can start emulated subprocesses
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
for a in aarch64 arm; do
    [ -e "/proc/sys/fs/binfmt_misc/qemu-$a" ] || cat "/usr/lib/binfmt.d/qemu-$a.conf" >/proc/sys/fs/binfmt_misc/register 2>/dev/null || true
done
[ "$(head -1 /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null)" = enabled ] || die "could not register qemu-aarch64 in binfmt_misc"

# -- 3. target sysroot: Debian's python3.11, numpy, pytest (no maintainer scripts run)
sysroot() {  # debian-arch triplet -> prints the sysroot path
    local arch=$1 trip=$2 dir=$WORK/sysroot-$1 try
    # libstdc++6: the peers' wheels that tools/count_aarch64.py runs in the same sysroot
    local include=python3.11,python3.11-dev,libpython3.11-dev,python3-numpy,python3-pytest,libstdc++6,libgomp1
    if [ "$(cat "$dir/.done" 2>/dev/null)" != "$include" ]; then
        step "sysroot $arch (mmdebstrap)" >&2
        for try in 1 2 3; do
            rm -rf "$dir"
            local lists=("deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main")
            [ "$try" -lt 3 ] && lists+=("deb http://deb.debian.org/debian-security $SUITE-security main")
            mmdebstrap --variant=extract --mode=root --arch="$arch" \
                --include="$include" \
                "$SUITE" "$dir" "${lists[@]}" >"$LOGS/mmdebstrap-$arch.log" 2>&1 && break
            [ "$try" = 3 ] && die "mmdebstrap $arch failed: $LOGS/mmdebstrap-$arch.log"
            sleep 3
        done
        ln -sf blas/libblas.so.3 "$dir/usr/lib/$trip/libblas.so.3"
        ln -sf lapack/liblapack.so.3 "$dir/usr/lib/$trip/liblapack.so.3"
        python3 -m compileall -q -j0 -s "$dir" -p / "$dir/usr/lib/python$PYVER" \
            "$dir/usr/lib/python3/dist-packages" >/dev/null 2>&1 || true
        echo "$include" >"$dir/.done"
    fi
    echo "$dir"
}

# -- 4. build: cythonize on the host, one cross-gcc call per kernel module
build() {  # cc triplet sysroot outdir arch cflags...: the modules setup.py builds on arch
    local cc=$1 trip=$2 sr=$3 out=$4 arch=$5
    shift 5
    local suffix flags="-O3 $*" isa name more
    suffix=$(python3 -c "import runpy,sys; print(runpy.run_path(sys.argv[1])['build_time_vars']['EXT_SUFFIX'])" \
        "$sr/usr/lib/python$PYVER/_sysconfigdata__linux_$trip.py")
    rm -rf "$out"
    mkdir -p "$out"
    (cd "$ROOT" && git ls-files engine tests weights | grep -vE '\.(pyx|pxi|pxd|h)$' | xargs cp --parents -t "$out")
    # the kernel modules of engine/kernels/variants.py, with their flags; then the ISA-free ones
    for isa in $(variants "$arch") abi shuffle _cpu; do
        name=$isa more=""
        case $isa in abi|shuffle|_cpu) ;; *) name=_$isa more=$(variant_flags "$isa" "$arch") ;; esac
        python3 -m cython -3 -I "$ROOT" "$ROOT/engine/kernels/$name.pyx" -o "$out/$name.c" \
            >"$LOGS/cython-$name.log" 2>&1 || { cat "$LOGS/cython-$name.log"; die "cython $name failed"; }
        # shellcheck disable=SC2086
        "$cc" --sysroot="$sr" $flags $more -pthread -shared -fPIC -std=c11 -fno-strict-overflow \
            -I"$ROOT/engine/kernels" -I"$sr/usr/include/python$PYVER" \
            -DENGINE_CFLAGS="\"$flags $more -pthread\"" \
            "$out/$name.c" -o "$out/engine/kernels/$name$suffix" >"$LOGS/gcc-$name-$trip.log" 2>&1 \
            || { cat "$LOGS/gcc-$name-$trip.log"; die "$cc $name failed"; }
        rm "$out/$name.c"
    done
}
# the ISA table setup.py builds from
VARIANTS_PY="$ROOT/engine/kernels/variants.py"
variants() { python3 -c "import runpy,sys; print(*runpy.run_path(sys.argv[1])['VARIANTS'][sys.argv[2]])" "$VARIANTS_PY" "$1"; }
variant_flags() { python3 -c "import runpy,sys; print(*runpy.run_path(sys.argv[1])['flags'](*sys.argv[2:]))" "$VARIANTS_PY" "$1" "$2"; }

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

SR64=$(sysroot arm64 aarch64-linux-gnu)
step "build aarch64 (-mtune=cortex-a72)"
build aarch64-linux-gnu-gcc aarch64-linux-gnu "$SR64" "$WORK/build-arm64" aarch64 -mtune=cortex-a72
fmla=$(aarch64-linux-gnu-objdump -d "$WORK"/build-arm64/engine/kernels/_neon*.so | grep -cE '\sfmla\s+v[0-9]+\.4s' || true)
echo "    NEON fmla instructions in the NEON kernels: $fmla"
[ "$fmla" -gt 20 ] || die "the aarch64 kernels have no NEON FMA code"
[ "$BUILD_ONLY" = 1 ] && { echo "check_aarch64: built $WORK/build-arm64"; exit 0; }

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
    SRHF=$(sysroot armhf arm-linux-gnueabihf)
    step "build armv7 (-march=armv7-a -mfpu=neon-vfpv4 -mfloat-abi=hard)"
    build arm-linux-gnueabihf-gcc arm-linux-gnueabihf "$SRHF" "$WORK/build-armhf" armv7 \
        -march=armv7-a -mfpu=neon-vfpv4 -mfloat-abi=hard
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
    tests/test_fixtures.py tests/test_abi.py
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
[ "$failed" = 0 ] || die "some suites failed (above; logs in $LOGS)"
echo "check_aarch64: all passed"
