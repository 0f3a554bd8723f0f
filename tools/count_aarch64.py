#!/usr/bin/env python3
"""What a Raspberry Pi would execute for one inference, counted under qemu.

  sudo python tools/count_aarch64.py                                # ShuffleNetV2 x1.0, engine vs ncnn vs ORT, Pi 4 and 5
  sudo python tools/count_aarch64.py --models mobilenet_v2 --engines engine --cpus cortex-a72
  sudo python tools/count_aarch64.py --models resnet18 --engines engine --plan winograd=4   # one path
  sudo python tools/count_aarch64.py --models conv:128-256-28-3-2 --engines engine ncnn   # one layer
  sudo python tools/count_aarch64.py --threads 1 4 --json counts.json

For each model x engine x CPU x thread count it runs one process of the
emulated aarch64 python (tools/arm/infer.py) under qemu-user with a counting
plugin (tools/arm/probe.c) and reports, per inference:

  instructions     all, and by class: loads/stores, fp32 FMLA, other; per thread
                   (the busiest thread is the latency proxy at several threads)
  cache misses     L1D, L2 (and L3) misses of the board's cache geometry, simulated
                   (LRU, no hardware prefetcher: demand misses of a cache that does
                   not prefetch)
  cycles           llvm-mca cycles of every hot block of code (as a loop, on the
                   CPU's scheduling model) times how often it ran, and from them
                   tools/estimate_pi.py's estimate of the time on the board
  where            the engine per layer; every engine per shared object and function

Engines: `engine` (this build: tools/check_aarch64.sh's, cross-built from this
checkout), `ncnn` (PyPI's aarch64 wheel, fp32: fp16 storage/packing/arithmetic
and bf16 off, or with --precision fp16 its fp16 defaults; the model through
pnnx), `ort` (onnxruntime's aarch64 wheel, CPU provider, all graph
optimisations; the model through torch.onnx.export, opset 17).  All run the same seeded weights (tests/torch_models.randomize) on
the same input; each output is checked against PyTorch's on this machine.

--precision int8: the engine's int8 model (engine.quantize) and ONNX Runtime's
(quantize_static: QDQ, per channel, MinMax, as tools/bench_peers.py --int8),
both calibrated on the same INT8_CALIBRATION seeded inputs (not the counted
one); each output's SQNR against PyTorch's is checked (at least
INT8_MIN_SQNR_DB).  ncnn's int8 needs its own calibration tool, not in its wheel.

Needs root (apt-get, mmdebstrap, binfmt_misc), torch and the engine built on
this machine (`pip install -e ".[test]"`: the models are converted here), and
about 10 minutes the first time (packages, sysroot, wheels); then about a
minute per cell with the cache simulation, two cells at a time.  WORK (--work,
default /tmp/engine-arm) is shared with tools/check_aarch64.sh.

What a count cannot tell: time.  It ignores how long each instruction takes
(mca estimates that, from LLVM's scheduling models: the Cortex-A72 one, and
Neoverse N1's for the Cortex-A76, its server twin) and the memory system
beyond the simulated misses (prefetchers, DRAM bandwidth, other cores).
"""
import argparse
import ast
import bisect
import concurrent.futures
import dataclasses
import functools
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tools'))
from bench_peers import LAYER, layer_model  # noqa: E402  (one-layer models: conv:CIN-COUT-HW-K-S)
from estimate_pi import BOARDS, estimate  # noqa: E402  (the time model: cycles to ms)
ARM = os.path.join(ROOT, 'tools', 'arm')
PYVER = '3.11'
PEERS = dict(ncnn='1.0.20261020', onnxruntime='1.32.0', pnnx='20261020')    # pinned: counts must repeat
MIRROR = 'http://deb.debian.org/debian'
LLVM = '/usr/lib/llvm-19/bin'     # llvm-mc and llvm-mca from here where installed: better scheduling models


@dataclasses.dataclass(frozen=True)
class Cpu:
    """A board's core as the counts see it (its timing is tools/estimate_pi.py's)."""
    mca_cpu: str             # llvm-mca -mcpu: LLVM's scheduling model for it
    l1d: str                 # cache geometry for probe.c: SIZE:WAYS[:shared]
    l2: str
    l3: str
    cpuinfo: tuple           # what /proc/cpuinfo says: Features, variant, part, revision


CPUS = {
    # Pi 4 (BCM2711): 32 KiB 2-way L1D per core, 1 MiB 16-way L2 shared by the four
    'cortex-a72': Cpu('cortex-a72', f'{32 << 10}:2', f'{1 << 20}:16:shared', '',
                      ('fp asimd evtstrm crc32 cpuid', '0x0', '0xd08', '3')),
    # Pi 5 (BCM2712): 64 KiB 4-way L1D and 512 KiB 8-way L2 per core, 2 MiB 16-way L3 shared;
    # LLVM has no Cortex-A76 model of its own: Neoverse N1's is the same core
    'cortex-a76': Cpu('neoverse-n1', f'{64 << 10}:4', f'{512 << 10}:8', f'{2 << 20}:16:shared',
                      ('fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm '
                       'lrcpc dcpop asimddp', '0x4', '0xd0b', '1')),
}
# the seeded test architectures (module names and state-dict keys as their authors'): module,
# builder, the input's side in pixels
MODELS = {
    'shufflenet_v2_x1_0': ('torch_models', 'shufflenet_v2_x1_0', 224),
    'shufflenet_v2_x0_5': ('torch_models', 'shufflenet_v2_x0_5', 224),
    'shufflenet_v1_g3': ('family_models', 'shufflenet_v1_g3', 224),
    'mobilenet_v2': ('family_models', 'MobileNetV2', 224),
    'nanodet_plus_m_320': ('detection_models', 'nanodet_plus_m', 320),     # the network, not decoding
    'resnet18': ('family_models', 'resnet18', 224),
    'mnasnet1_0': ('family_models', 'mnasnet1_0', 224),
    'squeezenet1_1': ('family_models', 'squeezenet1_1', 224),
    'shufflenet_v2_plus': ('family_models', 'shufflenet_v2_plus', 224),   # 5x5 and 7x7 depthwise
    'dense3x3_ladder': ('family_models', 'dense3x3_ladder', 112),   # the Winograd path model's shapes
}
ENGINES = ('engine', 'ncnn', 'ort')
MCA_COVER = 0.97            # blocks given to llvm-mca: the hottest ones, this share of the instructions
# outputs within TOLERANCE[precision] x max(1, max|ref|) of PyTorch's (fp16: tensors and
# weights rounded to 11 bits, arithmetic in fp16); ncnn's fp16 sums in fp16 throughout
# (2.5 % of ShuffleNetV2's largest logit, 9.6 % of MobileNetV2's)
TOLERANCE = {'fp32': 1e-4, 'fp16': 2e-2}
NCNN_FP16_TOLERANCE = 0.15
INT8_CALIBRATION = 16
INT8_MIN_SQNR_DB = 10.0     # int8 outputs: a sanity check (the models reach 16-20 dB on random weights)


def tolerance(kind, precision):
    return NCNN_FP16_TOLERANCE if (kind, precision) == ('ncnn', 'fp16') else TOLERANCE[precision]


def output_ok(cell):
    """The cell's output near enough PyTorch's: fp32/fp16 within the tolerance,
    int8 at least INT8_MIN_SQNR_DB."""
    if cell['precision'] == 'int8':
        return cell['sqnr_db'] >= INT8_MIN_SQNR_DB
    return cell['max_abs_diff'] <= tolerance(cell['engine'], cell['precision']) * max(1.0, cell['ref_absmax'])


def log(msg):
    print(f'>>> {msg}', flush=True)


def run(cmd, logfile=None, **kw):
    """Run cmd; on failure raise with the tail of its output."""
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if logfile:
        with open(logfile, 'w') as f:
            f.write(' '.join(cmd) + '\n' + p.stdout + p.stderr)
    if p.returncode:
        raise SystemExit(f'count_aarch64: {" ".join(cmd[:3])}... failed (rc {p.returncode}):\n'
                         f'{(p.stdout + p.stderr)[-3000:]}')
    return p.stdout


# -- set-up: packages, the engine's aarch64 build, the plugin, the peers' wheels

def apt_install(packages, work):
    missing = [p for p in packages if subprocess.run(
        ['dpkg-query', '-W', '-f=${Status}', p], capture_output=True, text=True).stdout != 'install ok installed']
    if missing:
        log(f'apt-get install {" ".join(missing)}')
        run(['apt-get', 'update'], f'{work}/logs/apt-count.log')
        run(['apt-get', 'install', '-y', '--no-install-recommends'] + missing, f'{work}/logs/apt-count.log',
            env=dict(os.environ, DEBIAN_FRONTEND='noninteractive'))


def qemu_plugin_header(work):
    """include/qemu/qemu-plugin.h of the installed qemu, from Debian's source package (Debian
    ships neither the header nor plugins); fetched through a private apt state."""
    hdr = f'{work}/qemu-src/qemu-plugin.h'
    if os.path.exists(hdr):
        return hdr
    log("qemu-plugin.h from Debian's qemu source package")
    apt = f'{work}/qemu-src/apt'
    for d in ('parts', 'lists/partial', 'cache/archives/partial', 'src'):
        os.makedirs(f'{apt}/{d}', exist_ok=True)
    with open(f'{apt}/parts/src.sources', 'w') as f:
        f.write(f'Types: deb-src\nURIs: {MIRROR}\nSuites: bookworm bookworm-updates\nComponents: main\n'
                'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n')
    opts = ['-o', 'Dir::Etc::SourceList=/dev/null', '-o', f'Dir::Etc::SourceParts={apt}/parts',
            '-o', f'Dir::State::Lists={apt}/lists', '-o', f'Dir::Cache={apt}/cache']
    run(['apt-get'] + opts + ['update'], f'{work}/logs/apt-src.log')
    version = run(['dpkg-query', '-W', '-f=${source:Version}', 'qemu-user']).strip()
    run(['apt-get'] + opts + ['source', '--download-only', f'qemu={version}'], f'{work}/logs/apt-src.log',
        cwd=f'{apt}/src')
    orig = next(f for f in os.listdir(f'{apt}/src') if f.endswith('.orig.tar.xz'))
    run(['tar', '-xJf', f'{apt}/src/{orig}', '-C', f'{work}/qemu-src', '--strip-components=3',
         '--wildcards', '*/include/qemu/qemu-plugin.h'])
    return hdr


def setup(args):
    work = args.work
    os.makedirs(f'{work}/logs', exist_ok=True)
    if os.geteuid() != 0:
        raise SystemExit('count_aarch64: run as root (apt-get, mmdebstrap, binfmt_misc)')
    # qemu-user: the dynamically linked qemu (qemu-user-static cannot load plugins)
    apt_install(['qemu-user', 'llvm-19', 'gcc', 'libc6-dev', 'xz-utils'], work)
    args.build = f'{work}/build-arm64'
    if args.build_engine or not os.path.isdir(args.build):
        log('the engine for aarch64 (tools/check_aarch64.sh, BUILD_ONLY=1)')
        p = subprocess.run(['bash', f'{ROOT}/tools/check_aarch64.sh'], env=dict(os.environ, WORK=work, BUILD_ONLY='1'))
        if p.returncode:
            raise SystemExit('count_aarch64: the aarch64 build failed')
    plugin = f'{work}/probe/libprobe.so'
    src = f'{ARM}/probe.c'
    if not os.path.exists(plugin) or os.path.getmtime(plugin) < os.path.getmtime(src):
        hdr = qemu_plugin_header(work)
        os.makedirs(os.path.dirname(plugin), exist_ok=True)
        run(['gcc', '-O2', '-Wall', '-Werror', '-shared', '-fPIC', f'-I{os.path.dirname(hdr)}', src,
             '-o', plugin])
    args.plugin = plugin
    if set(args.engines) - {'engine'}:
        peers = f'{work}/peers-arm64'
        if not os.path.exists(f'{peers}/.done'):
            log('PyPI aarch64 wheels of ncnn and onnxruntime; pnnx for this machine')
            shutil.rmtree(peers, ignore_errors=True)
            plat = [a for p in ('manylinux_2_28_aarch64', 'manylinux2014_aarch64', 'manylinux_2_17_aarch64')
                    for a in ('--platform', p)]
            run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--only-binary=:all:',
                 '--python-version', PYVER, '--implementation', 'cp'] + plat
                + ['--target', peers, f'ncnn=={PEERS["ncnn"]}', f'onnxruntime=={PEERS["onnxruntime"]}'],
                f'{work}/logs/pip-peers.log')
            run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--target', f'{work}/pnnx-x86',
                 f'pnnx=={PEERS["pnnx"]}'], f'{work}/logs/pip-pnnx.log')
            open(f'{peers}/.done', 'w').close()
        args.peers = peers


def sysroot_for(work, cpu):
    """The sysroot with this CPU's /proc/cpuinfo (qemu 7.2 passes the host's to aarch64 guests,
    and onnxruntime's cpuinfo library crashes on an x86 one; qemu -L serves this file instead):
    one hard-linked copy per CPU, so that cells for different CPUs can run side by side."""
    base, root = f'{work}/sysroot-arm64', f'{work}/sysroot-arm64-{cpu}'
    def stamp(path):        # check_aarch64.sh's record of the sysroot's packages
        with open(f'{path}/.done') as f:
            return f.read()
    if not os.path.exists(f'{root}/.done') or stamp(root) != stamp(base):
        shutil.rmtree(root, ignore_errors=True)
        run(['cp', '-al', base, root])
    features, variant, part, revision = CPUS[cpu].cpuinfo
    os.makedirs(f'{root}/proc', exist_ok=True)
    with open(f'{root}/proc/cpuinfo', 'w') as f:
        f.write(''.join(f'processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: {features}\n'
                        f'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: {variant}\n'
                        f'CPU part\t: {part}\nCPU revision\t: {revision}\n\n' for i in range(4)))
    return root


# -- the models, made here with torch: engine file, ncnn param/bin, ONNX, input, reference

def replace_file(path, write):
    """write(name) into a name of this process's, then renamed to path at once."""
    tmp = f'{path}.{os.getpid()}.tmp{os.path.splitext(path)[1]}'      # (np.save keeps a .npy name)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def model_and_shape(name):
    """(torch module, input shape) of a MODELS name or a one-layer model
    (bench_peers.layer_model: which layers of a network a peer runs in fewer
    instructions)."""
    layer = layer_model(name)
    if layer:
        return layer
    module_name, fn, size = MODELS[name]
    return getattr(importlib.import_module(module_name), fn)(), (1, 3, size, size)


def model_name(name):
    """argparse's check of a --models name."""
    if name not in MODELS and not name.startswith(LAYER):
        raise argparse.ArgumentTypeError(f'{name!r}: not one of {", ".join(sorted(MODELS))} '
                                         f'nor a layer {LAYER}CIN-COUT-HW-K-S')
    return name


def prepare(args, name):
    mdir = f'{args.work}/models/{name}'
    os.makedirs(mdir, exist_ok=True)
    import numpy as np
    import torch
    for path in (os.path.join(ROOT, 'tests'), ROOT):      # the test architectures and this engine
        if path not in sys.path:
            sys.path.insert(0, path)
    import engine
    import torch_models
    model, shape = model_and_shape(name)
    # (a layer has no BatchNorm to calibrate)
    model = torch_models.randomize(model, seed=0, calibrate=not name.startswith(LAYER)).eval()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model(x)
    # every run (the format follows the code), each file replaced whole: a
    # count running beside this one may be reading it
    replace_file(f'{mdir}/input.npy', lambda path: np.save(path, x.numpy()))
    replace_file(f'{mdir}/reference.npy', lambda path: np.save(path, ref.numpy()))
    replace_file(f'{mdir}/model.engine', engine.from_torch(model, x).save)
    if 'ncnn' in args.engines and not os.path.exists(f'{mdir}/model.ncnn.bin'):
        log(f'{name}: pnnx (TorchScript trace, fp16=0)')
        tmp = f'{mdir}/pnnx'
        os.makedirs(tmp, exist_ok=True)
        torch.jit.trace(model, x).save(f'{tmp}/model.pt')
        pnnx = f'{args.work}/pnnx-x86/pnnx/pnnx'
        run([pnnx, f'{tmp}/model.pt', f'inputshape=[{",".join(map(str, shape))}]f32', 'fp16=0',
             f'ncnnparam={tmp}/model.ncnn.param', f'ncnnbin={tmp}/model.ncnn.bin',
             f'pnnxparam={tmp}/p.param', f'pnnxbin={tmp}/p.bin', f'pnnxpy={tmp}/p.py',
             f'pnnxonnx={tmp}/p.onnx', f'ncnnpy={tmp}/n.py'], f'{tmp}/pnnx.log', cwd=tmp)
        os.replace(f'{tmp}/model.ncnn.param', f'{mdir}/model.ncnn.param')
        os.replace(f'{tmp}/model.ncnn.bin', f'{mdir}/model.ncnn.bin')
    if 'ort' in args.engines and not os.path.exists(f'{mdir}/model.onnx'):
        warnings.simplefilter('ignore', DeprecationWarning)      # the exporter the peers' figures used
        torch.onnx.export(model, (x,), f'{mdir}/model.onnx', dynamo=False, opset_version=17,
                          input_names=['input'], output_names=['output'])
    if args.precision == 'int8':
        from int8_accuracy import ort_quantize
        cal = torch.randn(INT8_CALIBRATION, *shape[1:], generator=torch.Generator().manual_seed(1)).numpy()
        replace_file(f'{mdir}/model-int8.engine',
                     engine.quantize(engine.load(f'{mdir}/model.engine'), weights='int8', calibration=cal).save)
        if 'ort' in args.engines:
            replace_file(f'{mdir}/model-int8.onnx', lambda path: ort_quantize(f'{mdir}/model.onnx', path, cal))
    return mdir


# -- one cell: one process under the plugin

def parse_probe(path):
    """(count names, {tag: {vcpu: [counts]}}, [(vaddr, execs, classes, words)])"""
    marks, blocks = {}, []
    with open(path) as f:
        names = f.readline().split()[1:]
        for line in f:
            p = line.split()
            if p[0] == 'mark':
                marks[int(p[1])] = {int(v): [int(c) for c in cs.split(',')]
                                    for v, cs in (t.split(':') for t in p[2:])}
            elif p[0] == 'block':
                blocks.append((int(p[1], 16), int(p[2]), [int(c) for c in p[3].split(',')],
                               tuple(p[4].split(','))))
    return names, marks, blocks


def between(marks, a, b):
    """Per vcpu: the counts from mark a to mark b."""
    return {v: [y - x for x, y in zip(marks[a].get(v, [0] * len(c)), c)] for v, c in marks[b].items()
            if any(y - x for x, y in zip(marks[a].get(v, [0] * len(c)), c))}


def total(per_vcpu, n):
    return [sum(c[k] for c in per_vcpu.values()) for k in range(n)]


def run_cell(args, name, kind, cpu, threads):
    mdir = f'{args.work}/models/{name}'
    plan = args.plan if kind == 'engine' else []
    precision = args.precision if kind in ('engine', 'ncnn') or args.precision == 'int8' else 'fp32'
    tag = '-'.join([f'{name}-{kind}-{cpu}-t{threads}'] + plan + ([precision] if precision != 'fp32' else []))
    out = f'{args.work}/counts/{tag}'
    os.makedirs(os.path.dirname(out), exist_ok=True)
    c = CPUS[cpu]
    sysroot = args.sysroots[cpu]
    opts = f'out={out}.probe,profile=1'
    if args.cache:
        opts += f',l1d={c.l1d},l2={c.l2}' + (f',l3={c.l3}' if c.l3 else '')
    env = dict(os.environ, PYTHONPATH=args.build if kind == 'engine' else args.peers,
               PYTHONDONTWRITEBYTECODE='1', PYTHONHASHSEED='0', OMP_NUM_THREADS=str(threads))
    for k in ('QEMU_LD_PREFIX', 'QEMU_CPU', 'ENGINE_ISA'):
        env.pop(k, None)
    run(['qemu-aarch64', '-L', sysroot, '-cpu', cpu, '-plugin', f'{args.plugin},{opts}',
         f'{sysroot}/usr/bin/python{PYVER}', f'{ARM}/infer.py', kind, mdir, '--threads', str(threads),
         '--iters', str(args.iters), '--json', f'{out}.json', '--precision', precision]
        + [f'--plan={o}' for o in plan], f'{out}.log', env=env)
    with open(f'{out}.json') as f:
        info = json.load(f)
    names, marks, blocks = parse_probe(f'{out}.probe')
    n = args.iters
    mark_cost = total(between(marks, 90, 91), len(names))
    window = between(marks, 10, 10 + n)
    per_inf = [t / n - m for t, m in zip(total(window, len(names)), mark_cost)]
    cell = dict(model=name, engine=kind, cpu=cpu, threads=threads, plan=plan, precision=precision,
                counts=dict(zip(names, per_inf)),
                threads_insns=sorted((v[0] / n for v in window.values()), reverse=True),
                max_abs_diff=info['max_abs_diff'], ref_absmax=info['ref_absmax'], sqnr_db=info['sqnr_db'],
                version=info.get('version') or info.get('build', {}).get('isa'))
    cell['ok'] = output_ok(cell)
    if kind == 'engine':
        runs = info['runs_by_threads']
        if threads > 1 and set(runs) != {str(threads)}:
            raise SystemExit(f'count_aarch64: {tag}: the engine ran on {runs} threads, not {threads}')
        layers = info['layers']
        cell['layers'] = [dict(l, **dict(zip(names, total(between(marks, 1000 + i, 1001 + i), len(names)))))
                          for i, l in enumerate(layers)]
    by_function, hot = attribute(blocks, info['maps'], n)
    cell['by_function'] = by_function[:args.functions]
    cell.update(core_cycles(cell['counts'], hot, c, args.mca_cache))
    return cell


# -- where the instructions go: blocks to shared objects and functions

_SYMBOLS = {}


def symbols(path):
    """(sorted addresses, names, [(file offset, vaddr, size)] of PT_LOAD) of one ELF file; no
    names for a stripped one (its exported symbols alone would name the wrong functions)."""
    if path not in _SYMBOLS:
        loads, syms = [], {}
        for line in run(['aarch64-linux-gnu-readelf', '-lW', path]).splitlines():
            p = line.split()
            if p and p[0] == 'LOAD':
                loads.append((int(p[1], 16), int(p[2], 16), int(p[4], 16)))
        r = subprocess.run(['aarch64-linux-gnu-nm', '-n', '-C', '--defined-only', path],
                           capture_output=True, text=True)
        for line in r.stdout.splitlines():
            p = line.split(' ', 2)
            if len(p) == 3 and p[1] in 'tTwW':
                syms.setdefault(int(p[0], 16), p[2])
        addrs = sorted(syms)
        _SYMBOLS[path] = (addrs, [syms[a] for a in addrs], loads)
    return _SYMBOLS[path]


def attribute(blocks, maps, iters):
    """Instructions per inference by function ('object:function', the nearest symbol before the
    block), the largest first; and the blocks with their executions per inference."""
    spans = []
    for line in maps.splitlines():
        p = line.split(None, 5)
        lo, hi = (int(v, 16) for v in p[0].split('-'))
        spans.append((lo, hi, int(p[2], 16), p[5].strip() if len(p) > 5 else ''))
    spans.sort()
    starts = [s[0] for s in spans]
    by_fn, hot = {}, {}
    for vaddr, execs, cls, words in blocks:
        i = bisect.bisect_right(starts, vaddr) - 1
        name = '[anonymous]'
        if i >= 0 and vaddr < spans[i][1] and spans[i][3].startswith('/'):
            lo, _, off, path = spans[i]
            addrs, names, loads = symbols(path)
            foff = vaddr - lo + off
            elf = next((foff - o + v for o, v, size in loads if o <= foff < o + size), foff)
            j = bisect.bisect_right(addrs, elf) - 1
            name = f'{os.path.basename(path)}:{names[j] if j >= 0 else "(stripped)"}'
        by_fn[name] = by_fn.get(name, 0) + cls[0] * execs / iters
        hot[words] = hot.get(words, 0) + execs / iters
    return sorted(by_fn.items(), key=lambda kv: -kv[1]), hot


# -- cycles: llvm-mca per hot block

def llvm(tool):
    """LLVM 19's tool where it is installed, else the default one."""
    return f'{LLVM}/{tool}' if os.path.exists(f'{LLVM}/{tool}') else tool


@functools.lru_cache(None)
def mca_version():
    """The llvm-mca that models the blocks: part of each cached block's key (another LLVM's
    scheduling models give other cycles)."""
    try:
        r = subprocess.run([llvm('llvm-mca'), '--version'], capture_output=True, text=True)
    except FileNotFoundError:       # not installed yet (the tool installs it before it models)
        return 'no llvm-mca'
    return next((line.strip() for line in r.stdout.splitlines() if 'version' in line), r.stdout.strip())


def mca_key(words, mcpu):
    """A block's key in the cache of mca's cycles (mca-cache.json)."""
    return hashlib.sha1(f'{mca_version()} {mcpu} {" ".join(words)}'.encode()).hexdigest()


def block_cycles(words, mcpu, cache):
    """llvm-mca's cycles per iteration of a block run as a loop (None when mca cannot model it)."""
    key = mca_key(words, mcpu)
    if key not in cache:
        text = ' '.join(f'0x{int(w, 16) >> s & 255:02x}' for w in words for s in (0, 8, 16, 24))
        asm = subprocess.run([llvm('llvm-mc'), '--disassemble',
                              '-triple=aarch64', '-mattr=+neon,+fullfp16,+dotprod,+crc,+rcpc'],
                             input=text, capture_output=True, text=True)
        iters = 100
        r = subprocess.run([llvm('llvm-mca'), '-mtriple=aarch64', f'-mcpu={mcpu}', f'-iterations={iters}'],
                           input=asm.stdout, capture_output=True, text=True)
        cycles = next((int(l.split()[-1]) for l in r.stdout.splitlines() if l.startswith('Total Cycles:')), None)
        cache[key] = cycles / iters if cycles and r.returncode == 0 and 'warning' not in asm.stderr else None
    return cache[key]


def core_cycles(counts, hot, cpu, cache):
    """Cycles per inference with every load an L1 hit: mca's cycles for the hottest blocks
    (MCA_COVER of the instructions), the rest at their cycles per instruction."""
    order = sorted(hot.items(), key=lambda kv: -len(kv[0]) * kv[1])
    want, done, chosen = MCA_COVER * sum(len(w) * e for w, e in order), 0.0, []
    for words, execs in order:
        if done >= want:
            break
        chosen.append((words, execs))
        done += len(words) * execs
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        cyc = list(pool.map(lambda we: block_cycles(we[0], cpu.mca_cpu, cache), chosen))
    modelled = [(len(w) * e, c * e) for (w, e), c in zip(chosen, cyc) if c is not None]
    insns_m, cycles_m = sum(i for i, _ in modelled), sum(c for _, c in modelled)
    return dict(core_cycles=cycles_m + (counts['insns'] - insns_m) * (cycles_m / insns_m),
                mca_share=insns_m / counts['insns'])


# -- report

def report(cells, functions):
    M = 1e6
    lines = []
    for (model, cpu, threads) in dict.fromkeys((c['model'], c['cpu'], c['threads']) for c in cells):
        group = [c for c in cells if (c['model'], c['cpu'], c['threads']) == (model, cpu, threads)]
        base = next((c for c in group if c['engine'] == 'engine'), None)
        plan = f' (engine: {" ".join(base["plan"])})' if base and base['plan'] else ''
        lines += ['', f'{model}, {cpu} ({BOARDS[cpu].name}), {threads} thread{"s" * (threads > 1)}, '
                      f'per inference (M = millions){plan}',
                  f'{"engine":11} {"M insns":>8} {"/engine":>7} {"ld/st %":>7} {"FMLA %":>6} {"busiest":>8} '
                  f'{"L1D miss":>8} {"L2 miss":>8} {"L3 miss":>8} {"core Mcyc":>9} {"est ms":>7}  '
                  'max diff (int8: SQNR)']
        for c in group:
            k, cy = c['counts'], estimate(c)
            name = c['engine'] + ('' if c['precision'] == 'fp32' else ' ' + c['precision'])
            lines.append(
                f'{name:11} {k["insns"] / M:8.2f} '
                f'{k["insns"] / base["counts"]["insns"] if base else float("nan"):7.2f} '
                f'{100 * k["ldst"] / k["insns"]:7.1f} {100 * (k["fmla_f32"] + k["fmla_f16"]) / k["insns"]:6.1f} '
                f'{c["threads_insns"][0] / M:8.2f} {k["l1d_miss"] / M:8.3f} {k["l2_miss"] / M:8.3f} '
                f'{k["l3_miss"] / M:8.3f} {cy["core"] / M:9.2f} {cy["ms"]:7.2f}  '
                + (f'SQNR {c["sqnr_db"]:.1f} dB' if c['precision'] == 'int8' else f'{c["max_abs_diff"]:.1e}')
                + ('' if c['ok'] else ' OVER TOLERANCE'))
        for c in group:
            lines.append(f'  {c["engine"]} by function: ' + ', '.join(
                f'{fn[:60]} {v / M:.2f}' for fn, v in c['by_function'][:functions]))
        if base and 'layers' in base:
            top = sorted(base['layers'], key=lambda l: -l['insns'])[:functions]
            lines.append('  engine by layer: ' + ', '.join(
                f'{l["name"]} ({l["kind"]}) {l["insns"] / M:.2f}' for l in top))
    return '\n'.join(lines)


def check_plan(parser, plan):
    """--plan's OPTION=VALUE pairs name PlanOptions fields, with Python literals (checked here: in the
    emulated process a typo would fail a cell minutes in)."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from engine.lowering import PlanOptions
    fields = {f.name for f in dataclasses.fields(PlanOptions)}
    for option in plan:
        key, eq, value = option.partition('=')
        if not eq or key not in fields:
            parser.error(f'--plan {option}: not OPTION=VALUE of a PlanOptions field ({", ".join(sorted(fields))})')
        try:
            ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parser.error(f'--plan {option}: {value!r} is not a Python literal')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--models', nargs='+', default=['shufflenet_v2_x1_0'], type=model_name,
                   metavar='MODEL', help=f'of {", ".join(sorted(MODELS))}, or one layer: {LAYER}CIN-COUT-HW-K-S '
                                         '(a K x K convolution of stride S and a ReLU, as tools/bench_peers.py)')
    p.add_argument('--engines', nargs='+', default=list(ENGINES), choices=ENGINES)
    p.add_argument('--cpus', nargs='+', default=sorted(CPUS), choices=sorted(CPUS))
    p.add_argument('--threads', nargs='+', type=int, default=[1])
    p.add_argument('--iters', type=int, default=2, help='counted inferences per cell (default %(default)s)')
    p.add_argument('--no-cache', dest='cache', action='store_false',
                   help='skip the cache simulation (3-4x faster; no misses)')
    p.add_argument('--functions', type=int, default=8, help='functions and layers listed per cell')
    p.add_argument('--jobs', type=int, default=os.cpu_count(), help='cells run side by side')
    p.add_argument('--no-build', dest='build_engine', action='store_false',
                   help="count the engine as last built in WORK (default: build this checkout first)")
    p.add_argument('--work', default=os.environ.get('WORK', '/tmp/engine-arm'))
    p.add_argument('--json', help='write every cell here')
    p.add_argument('--plan', nargs='+', default=[], metavar='OPTION=VALUE',
                   help="the engine's PlanOptions, e.g. winograd=0 (compare its paths on the board)")
    p.add_argument('--precision', choices=['fp32', 'fp16', 'int8'], default='fp32',
                   help="the engine's and ncnn's (fp16: CPUs with fp16 arithmetic, e.g. cortex-a76; "
                        "ncnn with its defaults, fp16 storage, packing and arithmetic); int8: the engine's "
                        "and ONNX Runtime's int8 models")
    args = p.parse_args(argv)
    if min(args.threads) < 1 or args.iters < 1:
        p.error('--threads and --iters must be positive')
    check_plan(p, args.plan)
    if args.precision == 'int8' and 'ncnn' in args.engines:
        p.error("--precision int8 counts the engine and ort (ncnn's int8 needs its calibration tool, "
                "not in its wheel): --engines engine ort")
    setup(args)
    log('models: ' + ' '.join(args.models))
    for name in args.models:
        prepare(args, name)
    todo = [(m, e, c, t) for m in args.models for c in args.cpus for t in args.threads for e in args.engines]
    args.sysroots = {cpu: sysroot_for(args.work, cpu) for cpu in args.cpus}
    mca_path = f'{args.work}/mca-cache.json'     # llvm-mca's cycles per block, kept between runs
    args.mca_cache = json.load(open(mca_path)) if os.path.exists(mca_path) else {}
    log(f'{len(todo)} cells under qemu, {args.jobs} at a time')
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        cells = list(pool.map(lambda cell: run_cell(args, *cell), todo))
    with open(mca_path, 'w') as f:
        json.dump(args.mca_cache, f)
    print(report(cells, args.functions))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(cpus={k: dataclasses.asdict(v) for k, v in CPUS.items()}, cells=cells), f, indent=1)
    bad = [f'{c["model"]}/{c["engine"]}/{c["cpu"]}' for c in cells if not c['ok']]
    if bad:
        limit = (f'(SQNR below {INT8_MIN_SQNR_DB:g} dB)' if args.precision == 'int8' else
                 f'({TOLERANCE[args.precision]:g}, ncnn fp16 {NCNN_FP16_TOLERANCE:g}) x max(1, max|ref|)')
        raise SystemExit(f'count_aarch64: outputs differ from PyTorch beyond the tolerance {limit}: ' + ', '.join(bad))
    return 0


if __name__ == '__main__':
    sys.exit(main())
