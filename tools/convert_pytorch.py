#!/usr/bin/env python3
"""Convert a PyTorch model to the engine's model file.

  python tools/convert_pytorch.py tests.torch_models:shufflenet_v2_x1_0 -o shufflenet.engine
  python tools/convert_pytorch.py mypkg.nets:build --checkpoint ckpt.pth -o net.engine --check
  python tools/convert_pytorch.py torchvision:shufflenet_v2_x1_0 --pretrained -o sn.engine

SOURCE is `package.module:callable` (called with no arguments, returns an
nn.Module) or `torchvision:NAME` where torchvision is installed.  Needs torch;
the file it writes does not.
"""
import argparse
import importlib
import os
import sys

import numpy as np


def build_module(source, pretrained):
    """(nn.Module, labels or None)"""
    mod_name, sep, attr = source.partition(':')
    if not sep or not mod_name or not attr:
        raise SystemExit(f'SOURCE must be package.module:callable or torchvision:NAME, got {source!r}')
    if mod_name == 'torchvision':
        try:
            import torchvision.models as tvm
        except Exception as e:      # torchvision may be missing or fail to import beside torch
            raise SystemExit(f'torchvision:{attr} needs an importable torchvision ({e})')
        weights = tvm.get_model_weights(attr).DEFAULT
        labels = list(weights.meta.get('categories') or []) or None     # ImageNet-1k names
        return tvm.get_model(attr, weights=weights if pretrained else None), labels
    if pretrained:
        raise SystemExit('--pretrained is for torchvision:NAME sources; use --checkpoint for others')
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(mod_name)
    except ImportError as e:
        raise SystemExit(f'cannot import {mod_name!r}: {e}')
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise SystemExit(f'{mod_name!r} has no callable {attr!r}')
    return fn(), None


def load_checkpoint(model, path):
    """Load a state dict (weights_only: no code runs); SystemExit listing every
    missing, unexpected and mis-shaped key when it does not fit."""
    import torch
    state = torch.load(path, map_location='cpu', weights_only=True)
    for key in ('state_dict', 'model', 'model_state_dict'):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise SystemExit(f'{path}: not a state dict')
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
        raise SystemExit(f'{path} does not fit the architecture:\n{text}')
    model.load_state_dict(state)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('source', metavar='SOURCE')
    p.add_argument('-o', '--output', required=True, help='model file to write')
    p.add_argument('--checkpoint', help='state dict to load (torch.load with weights_only=True)')
    p.add_argument('--pretrained', action='store_true', help="torchvision's weights (needs internet)")
    p.add_argument('--input-shape', default='1,3,224,224', help='N,C,H,W (default %(default)s)')
    p.add_argument('--check', action='store_true', help='run both and print the max error')
    p.add_argument('--labels', help='text file, one class name per line, stored in the model file')
    p.add_argument('--resize', type=int, help='classify: shorter side before cropping (default crop / 0.875)')
    p.add_argument('--crop', type=int, help='classify: centre crop (default: the input size)')
    p.add_argument('--mean', type=float, nargs='+', help="classify: per-channel mean (default ImageNet's)")
    p.add_argument('--std', type=float, nargs='+', help="classify: per-channel std (default ImageNet's)")
    args = p.parse_args(argv)

    try:
        shape = tuple(int(s) for s in args.input_shape.split(','))
        assert len(shape) == 4 and min(shape) > 0
    except (ValueError, AssertionError):
        raise SystemExit(f'--input-shape must be four positive integers N,C,H,W, got {args.input_shape!r}')

    import torch
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import engine
    from engine.info import describe

    module, labels = build_module(args.source, args.pretrained)
    if args.labels:
        with open(args.labels, encoding='utf-8') as f:
            labels = [line.strip() for line in f if line.strip()]
    if args.checkpoint:
        load_checkpoint(module, args.checkpoint)
    module.eval()
    example = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    try:
        model = engine.from_torch(module, example)
    except engine.UnsupportedModelError as e:
        raise SystemExit(f'cannot convert {args.source}: {e}')
    model.graph.meta.update(source=args.source, checkpoint=os.path.basename(args.checkpoint or '') or None)
    from engine.preprocess import check_spec, default_spec
    spec = default_spec(shape)
    spec.update({k: v for k, v in dict(resize=args.resize, crop=args.crop, mean=args.mean,
                                       std=args.std).items() if v is not None})
    if args.crop and not args.resize:
        spec['resize'] = int(round(args.crop / 0.875))
    try:
        model.graph.meta['preprocess'] = check_spec(spec, shape[1])
    except ValueError as e:
        raise SystemExit(f'preprocessing: {e}')
    if labels:
        model.graph.meta['labels'] = labels
    model.save(args.output)

    d = describe(engine.load(args.output), args.output)
    print(f'wrote {args.output}: {d["file_bytes"] / 1e6:.2f} MB, {d["compute_layers"]} layers, '
          f'{d["parameters"] / 1e6:.3f} M parameters, {d["macs"] / 1e6:.1f} M MACs at {shape}'
          + (f', {len(labels)} labels' if labels else ''))
    if args.check:
        with torch.no_grad():
            ref = module(example).numpy()
        out = engine.load(args.output)(example.numpy())
        err = float(np.abs(out - ref).max())
        tol = 1e-4 * max(1.0, float(np.abs(ref).max()))
        print(f'check: max |engine - torch| = {err:.3g} (tolerance {tol:.3g}) '
              f'{"OK" if err <= tol else "MISMATCH"}')
        if err > tol:
            return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
