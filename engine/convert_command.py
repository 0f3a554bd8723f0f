"""python -m engine convert SOURCE -o OUT: a PyTorch model or an ONNX file
to the engine's model file.

  python -m engine convert tests.torch_models:shufflenet_v2_x1_0 -o shufflenet.engine
  python -m engine convert mypkg.nets:build --checkpoint ckpt.pth -o net.engine --check
  python -m engine convert torchvision:shufflenet_v2_x1_0 --pretrained -o sn.engine
  python -m engine convert model.onnx -o model.engine --check

SOURCE is `package.module:callable` (called with no arguments, returns an
nn.Module; needs torch), `torchvision:NAME` where torchvision is installed,
or an ONNX file (needs the onnx package; --check needs onnxruntime).  The
file it writes needs neither.  tools/convert_pytorch.py and
tools/convert_onnx.py are this command.
"""
import argparse
import importlib
import os
import sys

import numpy as np

TOLERANCE = 1e-4        # --check: largest difference allowed, relative to the largest output
TORCH_SHAPE = (1, 3, 224, 224)      # a PyTorch model's default example (an ONNX file states its own)


class ConversionError(ValueError):
    """A problem with the arguments or the model: printed as `error: ...`."""


def is_onnx(source):
    return source.lower().endswith('.onnx') or os.path.isfile(source)


def build_module(source, pretrained):
    """(nn.Module, labels or None)"""
    mod_name, sep, attr = source.partition(':')
    if not sep or not mod_name or not attr:
        raise ConversionError(f'SOURCE must be package.module:callable, torchvision:NAME or an .onnx file, '
                              f'got {source!r}')
    if mod_name == 'torchvision':
        try:
            import torchvision.models as tvm
        except Exception as e:      # torchvision may be missing or fail to import beside torch
            raise ConversionError(f'torchvision:{attr} needs an importable torchvision ({e})')
        if attr not in tvm.list_models():
            raise ConversionError(f'torchvision has no model {attr!r} (it has: {", ".join(tvm.list_models())})')
        weights = tvm.get_model_weights(attr).DEFAULT
        labels = list(weights.meta.get('categories') or []) or None     # ImageNet-1k names
        return tvm.get_model(attr, weights=weights if pretrained else None), labels
    if pretrained:
        raise ConversionError('--pretrained is for torchvision:NAME sources; use --checkpoint for others')
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(mod_name)
    except ImportError as e:
        raise ConversionError(f'cannot import {mod_name!r}: {e}')
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise ConversionError(f'{mod_name!r} has no callable {attr!r}')
    import torch
    net = fn()
    if not isinstance(net, torch.nn.Module):
        raise ConversionError(f'{source}() returned a {type(net).__name__}, not a torch.nn.Module')
    return net, None


def load_checkpoint(model, path):
    """Load a state dict (weights_only: no code runs); ConversionError
    listing every missing, unexpected and mis-shaped key when it does not fit."""
    import torch
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:          # a pickle it refuses, a zip it cannot read, ...
        raise ConversionError(f'{path}: cannot load it as a state dict ({type(e).__name__}: '
                              f'{str(e).splitlines()[0] if str(e) else ""})')
    for key in ('state_dict', 'model', 'model_state_dict'):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ConversionError(f'{path}: not a state dict')
    if state and all(k.startswith('module.') for k in state):     # saved from DataParallel
        state = {k[len('module.'):]: v for k, v in state.items()}
    expected = model.state_dict()
    missing = sorted(k for k in expected if k not in state)
    unexpected = sorted(k for k in state if k not in expected)
    misshaped = sorted(f'{k}: checkpoint {tuple(state[k].shape)}, model {tuple(expected[k].shape)}'
                       for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape))
    problems = [(t, keys) for t, keys in (('missing', missing), ('unexpected', unexpected),
                                          ('mis-shaped', misshaped)) if keys]
    if problems:
        text = '\n'.join(f'  {t} ({len(keys)}): ' + ', '.join(keys) for t, keys in problems)
        raise ConversionError(f'{path} does not fit the architecture:\n{text}')
    model.load_state_dict(state)


def read_labels(path):
    try:
        with open(path, encoding='utf-8') as f:
            return [line.strip() for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise ConversionError(f'--labels {path}: {getattr(e, "strerror", None) or e}')


def check_output_path(path):
    """Refuse an output that cannot be written before converting anything."""
    if os.path.isdir(path):
        raise ConversionError(f'-o {path} is a folder: give a file name, e.g. {os.path.join(path, "model.engine")}')
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ConversionError(f'-o {path}: the folder {folder} does not exist')
    if not os.access(folder, os.W_OK):
        raise ConversionError(f'-o {path}: the folder {folder} is not writable')


def relative_error(out, ref):
    """max |out - ref| / max |ref| (NaN and inf where ref has them must
    match): the --check measure, which an all-zero output cannot pass."""
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    if out.shape != ref.shape:
        return np.inf
    same = (out == ref) | (np.isnan(out) & np.isnan(ref))
    finite = np.isfinite(ref) & np.isfinite(out)
    if not (same | finite).all():
        return np.inf
    err = float(np.abs(np.where(same, 0, out - ref)).max(initial=0))
    scale = float(np.abs(ref[np.isfinite(ref)]).max(initial=0))
    return err / scale if scale > 0 else (0.0 if err == 0 else np.inf)


def input_shape(text):
    """argparse type: N,C,H,W."""
    try:
        shape = tuple(int(s) for s in text.split(','))
        if len(shape) == 4 and min(shape) >= 1:
            return shape
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f'must be four positive integers N,C,H,W, got {text!r}')


def add_arguments(p):
    p.add_argument('source', metavar='SOURCE', help='package.module:callable, torchvision:NAME or MODEL.onnx')
    p.add_argument('-o', '--output', required=True, help='model file to write')
    p.add_argument('--checkpoint', help='PyTorch: state dict to load (torch.load with weights_only=True)')
    p.add_argument('--pretrained', action='store_true', help="torchvision:NAME: torchvision's weights (needs internet)")
    p.add_argument('--input-shape', type=input_shape,
                   help='N,C,H,W of the example input (default: 1,3,224,224 for PyTorch; an ONNX file\'s own, '
                        'with 1 and 224 where it leaves them open)')
    p.add_argument('--check', action='store_true',
                   help=f'run both (PyTorch, or ONNX Runtime for an ONNX file) and print the largest difference '
                        f'relative to the largest output (tolerance {TOLERANCE:g})')
    small = p.add_mutually_exclusive_group()
    small.add_argument('--fp16', action='store_true',
                       help='store kernels and matrices as float16: a file about half the size (engine.quantize)')
    small.add_argument('--int8', action='store_true',
                       help='an int8 model, calibrated on --calibration (engine.quantize; its defaults)')
    p.add_argument('--calibration', metavar='PATH',
                   help='--int8: a folder of images (preprocessed by the model\'s settings) or an .npy/.npz '
                        'of images or inputs')
    p.add_argument('--labels', help='text file, one class name per line, stored in the model file')
    p.add_argument('--task', choices=('classify', 'detect'), default='classify',
                   help='what the model does (default %(default)s): detect stores --detect-config\'s settings '
                        'for `python -m engine detect`')
    p.add_argument('--detect-config', metavar='CONFIG',
                   help='detect: the detector\'s config, NanoDet\'s YAML or JSON (engine/detect.py): classes, '
                        'strides, input size, normalisation, class names, thresholds')
    p.add_argument('--resize', type=int, help='classify: shorter side before cropping (default crop / 0.875)')
    p.add_argument('--crop', type=int, help='classify: centre crop (default: the input size)')
    p.add_argument('--mean', type=float, nargs='+', help="classify: per-channel mean (default ImageNet's)")
    p.add_argument('--std', type=float, nargs='+', help="classify: per-channel std (default ImageNet's)")


def add_parser(sub):
    p = sub.add_parser('convert', help='a PyTorch model or an ONNX file to a model file',
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run)


def main(argv=None, prog=None):
    """The command on its own (tools/convert_pytorch.py, tools/convert_onnx.py)."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run(args)
    except (ValueError, OSError, ImportError) as e:     # ConversionError, ModelFileError are ValueErrors
        print(f'error: {e}', file=sys.stderr)
        return 2


def _from_torch(args):
    """(Model, labels, reference: x -> [outputs])"""
    import torch

    import engine
    module, labels = build_module(args.source, args.pretrained)
    if args.checkpoint:
        load_checkpoint(module, args.checkpoint)
    module.eval()
    shape = args.input_shape or TORCH_SHAPE
    example = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    try:
        model = engine.from_torch(module, example)
    except engine.UnsupportedModelError as e:
        raise ConversionError(f'cannot convert {args.source}: {e}')

    def reference(x):
        with torch.no_grad():
            refs = module(torch.from_numpy(x))
        return [t.numpy() for t in (refs if isinstance(refs, (list, tuple)) else [refs])]
    return model, labels, reference


def _from_onnx(args):
    """(Model, None, reference: x -> [outputs] by ONNX Runtime)"""
    import engine
    for flag in ('checkpoint', 'pretrained'):
        if getattr(args, flag):
            raise ConversionError(f'--{flag} is for PyTorch sources; an ONNX file holds its weights')
    if not os.path.isfile(args.source):
        raise ConversionError(f'{args.source}: no such file')
    try:
        model = engine.from_onnx(args.source, input_shape=args.input_shape)
    except engine.UnsupportedModelError as e:
        raise ConversionError(f'cannot convert {args.source}: {e}')

    def reference(x):
        try:
            import onnxruntime
        except ImportError:
            raise ConversionError('--check of an ONNX file needs onnxruntime (pip install onnxruntime)') from None
        session = onnxruntime.InferenceSession(args.source, providers=['CPUExecutionProvider'])
        return session.run(None, {session.get_inputs()[0].name: x})
    return model, None, reference


def run(args):
    import engine
    from engine import detect
    from engine.info import describe
    from engine.preprocess import check_spec, default_spec

    check_output_path(args.output)
    if args.int8 != bool(args.calibration):
        raise ConversionError('--int8 needs --calibration PATH (and --calibration goes with it)')
    for flag, path in (('--checkpoint', args.checkpoint), ('--labels', args.labels),
                       ('--detect-config', args.detect_config)):
        if path and not os.path.isfile(path):
            raise ConversionError(f'{flag} {path}: no such file')
    if (args.task == 'detect') != bool(args.detect_config):
        raise ConversionError('--task detect needs --detect-config CONFIG (and --detect-config goes with it)')
    detection = None
    if args.detect_config:
        detection = detect.read_config(args.detect_config)
        if detection[2] and not args.input_shape:
            args.input_shape = (1, 3) + tuple(detection[2])     # the config's input size
    model, labels, reference = (_from_onnx if is_onnx(args.source) else _from_torch)(args)
    shape = model.input_shape
    if detection and detection[1]:
        labels = detection[1]
    if args.labels:
        labels = read_labels(args.labels)
    outputs = model.output_shapes
    classes = outputs[0][-1] if detection is None else detection[0].get('num_classes')
    if labels and (len(outputs) != 1 or len(outputs[0]) != 2 + (detection is not None) or classes != len(labels)):
        raise ConversionError(f'{len(labels)} labels for a model whose output is '
                              f'{" and ".join(map(str, outputs))}: one label per class')
    if is_onnx(args.source):
        model.graph.meta['source'] = os.path.basename(args.source)
    else:
        model.graph.meta.update(source=args.source, checkpoint=os.path.basename(args.checkpoint or '') or None)
    spec = default_spec(shape)
    spec.update({k: v for k, v in dict(resize=args.resize, crop=args.crop, mean=args.mean,
                                       std=args.std).items() if v is not None})
    if args.crop and not args.resize:
        spec['resize'] = int(round(args.crop / 0.875))
    try:
        if detection:       # (its images are fitted by its own settings)
            model.graph.meta['detect'] = settings = detect.check_settings(detection[0], shape[1])
            detect.decode(np.zeros(outputs[0], np.float32), settings, shape[2], shape[3])   # the output fits
        else:
            model.graph.meta['preprocess'] = check_spec(spec, shape[1])
    except ValueError as e:
        raise ConversionError(f'{"detection settings" if detection else "preprocessing"}: {e}')
    if labels:
        model.graph.meta['labels'] = labels
    if args.fp16:
        model = engine.quantize(model, weights='fp16')
    if args.int8:
        float_model = model
        model = engine.quantize(model, weights='int8', calibration=args.calibration)
        print(f'int8: calibrated on {args.calibration}; float32 kept: '
              + (', '.join(f'{k} ({v})' for k, v in model.graph.meta['int8']['kept_float32'].items()) or 'none'))
    model.save(args.output)

    d = describe(engine.load(args.output), args.output)
    print(f'wrote {args.output}: {d["file_bytes"] / 1e6:.2f} MB, {d["compute_layers"]} layers, '
          f'{d["parameters"] / 1e6:.3f} M parameters, {d["macs"] / 1e6:.1f} M MACs at {shape}'
          + (f', {len(labels)} labels' if labels else ''))
    if model.graph.input_sizes.note:
        print(f'note: {model.graph.input_sizes.note}')
    if args.check:
        example = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        refs = reference(example)
        outs = engine.load(args.output)(example)
        outs = outs if isinstance(outs, list) else [outs]
        if args.int8:       # the float32 conversion is checked; the int8 model's rounding noise, measured
            from engine.int8 import sqnr_db
            saved, outs = outs, float_model(example)
            outs = outs if isinstance(outs, list) else [outs]
            for i, (q, f) in enumerate(zip(saved, outs)):
                print(f'check: output {i}: int8 SQNR {sqnr_db(f, q):.1f} dB against the float32 conversion')
        worst = 0.0
        peer = 'onnxruntime' if is_onnx(args.source) else 'torch'
        for i, (out, ref) in enumerate(zip(outs, refs)):
            rel = relative_error(out, ref)
            worst = max(worst, rel)
            name = f'output {i}: ' if len(refs) > 1 else ''
            print(f'check: {name}max |engine - {peer}| = {np.abs(out - ref).max():.3g}, '
                  f'{rel:.3g} of max |{peer}| = {np.abs(ref).max():.3g} (tolerance {TOLERANCE:g}) '
                  f'{"OK" if rel <= TOLERANCE else "MISMATCH"}')
        if len(outs) != len(refs) or not worst <= TOLERANCE:
            return 1
    return 0
