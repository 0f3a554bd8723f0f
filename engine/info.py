"""`python -m engine info MODEL`: what a model file holds."""
import json
import os

import numpy as np

import engine
from engine import fileformat
from engine.graph import infer_shapes, is_view
from engine.ops import REGISTRY


def describe(model, path=None):
    g = model.graph
    n, c, h, w = model.input_shape
    shapes = infer_shapes(g, h, w)
    params = sum(int(p.size) for node in g.nodes for p in node.params.values())
    macs = sum(REGISTRY[node.op].macs(node, shapes) for node in g.nodes)
    meta = {k: v for k, v in g.meta.items() if k not in ('labels', 'preprocess')}
    labels = model.labels
    sizes = g.input_sizes
    d = dict(input_shape=list(model.input_shape), output_shapes=[list(s) for s in model.output_shapes],
             input_sizes=sizes.describe() + (f' ({sizes.note})' if sizes.note else '') if sizes else 'any',
             nodes=len(g.nodes), compute_layers=sum(not is_view(node) for node in g.nodes),
             parameters=params, macs=macs, labels=len(labels) if labels else None,
             labels_first=labels[:5] if labels else None, preprocess=model.preprocessing,
             meta=meta, build=engine.build_info())
    if path:
        d['file'] = path
        d['file_bytes'] = os.path.getsize(path)
        d['file_crc32'] = fileformat.stored_checksum(path)
    return d


def run(args):
    d = describe(engine.load(args.model), args.model)
    if args.json:
        print(json.dumps(d, indent=2))
        return
    for k, v in d.items():
        print(f'{k:16s} {v}')


def add_parser(sub):
    p = sub.add_parser('info', help='describe a model file')
    p.add_argument('model', help='model file')
    p.add_argument('--json', action='store_true', help='print JSON instead of a table')
    p.set_defaults(func=run)
