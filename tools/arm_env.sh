# Sourced by tools/build_wheels.sh and tools/check_aarch64.sh: the cross
# compilers, qemu, a Debian bookworm sysroot per ARM architecture (the
# Python 3.11 of 64-bit and 32-bit Pi OS, with numpy, pytest and pip: no
# compiler) and the cross-build of a wheel with setup.py.
#
# Expects ROOT (the checkout), WORK (cache folder) and NAME (for messages);
# needs root (apt-get, mmdebstrap, binfmt_misc).
PYVER=3.11
SUITE=bookworm
MIRROR=${MIRROR:-http://deb.debian.org/debian}
LOGS=$WORK/logs
mkdir -p "$LOGS"

die() { echo "$NAME: $*" >&2; exit 1; }
step() { echo ">>> $(date +%T) $*"; }
[ "$(id -u)" = 0 ] || die "run as root (apt-get, mmdebstrap, binfmt_misc)"

# the Debian names of an architecture: arch -> "debian-arch gnu-triplet wheel-platform"
arm_names() {
    case $1 in
        aarch64) echo "arm64 aarch64-linux-gnu linux-aarch64" ;;
        armv7) echo "armhf arm-linux-gnueabihf linux-armv7l" ;;
        *) die "no ARM architecture $1" ;;
    esac
}
# the flags every module of an architecture's build takes (ENGINE_CFLAGS): tuned for the Pis
arm_cflags() {
    case $1 in
        aarch64) echo "-mtune=cortex-a72" ;;
        armv7) echo "-march=armv7-a -mfpu=neon-vfpv4 -mfloat-abi=hard" ;;
    esac
}

host_packages() {  # arch...: cross compilers for them, qemu, mmdebstrap
    local pkgs="qemu-user-static mmdebstrap" missing="" p try
    for a in "$@"; do
        case $a in
            aarch64) pkgs="$pkgs gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu" ;;
            armv7) pkgs="$pkgs gcc-arm-linux-gnueabihf" ;;
        esac
    done
    for p in $pkgs; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    step "apt-get install$missing"
    for try in 1 2 3; do      # a mirror caught mid-sync fails now and then
        apt-get update >"$LOGS/apt.log" 2>&1 && break
        [ "$try" = 3 ] && { tail "$LOGS/apt.log"; die "apt-get update failed"; }
        sleep 5
    done
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing >>"$LOGS/apt.log" 2>&1 \
        || { tail -20 "$LOGS/apt.log"; die "apt-get install failed"; }
}

binfmt() {  # register qemu in binfmt_misc, so emulated programs can start emulated subprocesses
    [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
    for a in aarch64 arm; do
        [ -e "/proc/sys/fs/binfmt_misc/qemu-$a" ] || cat "/usr/lib/binfmt.d/qemu-$a.conf" >/proc/sys/fs/binfmt_misc/register 2>/dev/null || true
    done
    [ "$(head -1 /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null)" = enabled ] || die "could not register qemu-aarch64 in binfmt_misc"
}

sysroot() {  # arch -> prints the path of its sysroot (made once: no maintainer scripts run)
    local arch trip dir try
    read -r arch trip _ <<<"$(arm_names "$1")"
    dir=$WORK/sysroot-$arch
    # libstdc++6: the peers' wheels that tools/count_aarch64.py runs in the same sysroot;
    # python3-pip: the wheel is installed as a Pi user would, with pip and no compiler
    local include=python3.11,python3.11-dev,libpython3.11-dev,python3-numpy,python3-pytest,python3-pip,libstdc++6,libgomp1
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

clean_build() {  # platform (linux-aarch64): forget setup.py's earlier build for it (stale files, other flags)
    rm -rf "$ROOT"/build/{lib,temp,bdist}."$1"*
}

pip_wheel() {  # name outdir [VAR=value...]: setup.py's wheel of this checkout, built with those variables set
    local name=$1 out=$2
    shift 2
    (cd "$ROOT" && env "$@" python3 -m pip wheel --no-deps --no-build-isolation -w "$out" . >"$LOGS/wheel-$name.log" 2>&1) \
        || { tail -30 "$LOGS/wheel-$name.log"; die "the $name wheel failed: $LOGS/wheel-$name.log"; }
}

cross_wheel() {  # arch sysroot outdir: setup.py's wheel for arch (every ISA module of it), into outdir
    local arch=$1 sr=$2 out=$3 trip plat cfg
    read -r _ trip plat <<<"$(arm_names "$arch")"
    python3 -c 'import Cython; from setuptools.command import bdist_wheel' 2>/dev/null \
        || die "needs Cython and setuptools in $(command -v python3): pip install 'Cython>=3' 'setuptools>=70.1'"
    # the target's Python: its sysconfig (compiler, extension suffix) and its headers
    cfg=$WORK/sysconfig-$arch
    mkdir -p "$cfg" "$out"
    cp "$sr/usr/lib/python$PYVER/_sysconfigdata__linux_$trip.py" "$cfg/"
    clean_build "$plat"
    pip_wheel "$arch" "$out" _PYTHON_HOST_PLATFORM="$plat" _PYTHON_SYSCONFIGDATA_NAME="_sysconfigdata__linux_$trip" \
        PYTHONPATH="$cfg" CFLAGS="--sysroot=$sr -I$sr/usr/include/python$PYVER -g0" \
        LDSHARED="$trip-gcc --sysroot=$sr -shared" ENGINE_CFLAGS="$(arm_cflags "$arch")"
}
