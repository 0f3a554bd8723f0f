"""`python -m engine info MODEL`: what a model file holds."""
import json
import os

import engine
from engine import fileformat
from engine.graph import infer_shapes, is_view, storage_counts, stored_dtype, value_dtypes, value_quants
from engine.ops import REGISTRY


def describe(model, path=None, layers=False):
    g = model.graph
    n, c, h, w = model.input_shape
    shapes = infer_shapes(g, h, w)
    params = sum(int(p.size) for node in g.nodes for p in node.params.values())
    macs = sum(REGISTRY[node.op].macs(node, shapes) for node in g.nodes)
    meta = {k: v for k, v in g.meta.items() if k not in ('labels', 'preprocess', 'detect')}
    labels = model.labels
    # a detector's images are fitted by its detection settings; a classifier's by its preprocessing
    how = dict(detect=g.meta['detect']) if 'detect' in g.meta else dict(preprocess=model.preprocessing)
    sizes = g.input_sizes
    d = dict(input_shape=list(model.input_shape), output_shapes=[list(s) for s in model.output_shapes],
             input_sizes=sizes.describe() + (f' ({sizes.note})' if sizes.note else '') if sizes else 'any',
             nodes=len(g.nodes), compute_layers=sum(not is_view(node) for node in g.nodes),
             parameters=params, weights=storage_counts(g), macs=macs, labels=len(labels) if labels else None,
             labels_first=labels[:5] if labels else None, **how, meta=meta, build=engine.build_info())
    if layers:       # each layer's output at the example's size, and its tensors as the file stores them
        dtypes, quants = value_dtypes(g), value_quants(g)
        d['layers'] = [dict(name=node.name, op=node.op, output=list(shapes[node.name]), dtype=dtypes[node.name],
                            quant=list(quants[node.name]) if quants[node.name] else None,
                            params={k: f'{stored_dtype(node, p).name}{list(p.shape)}' for k, p in node.params.items()})
                       for node in g.nodes]
    if path:
        d['file'] = path
        d['file_bytes'] = os.path.getsize(path)
        d['file_crc32'] = fileformat.stored_checksum(path)
    return d


def run(args):
    d = describe(engine.load(args.model), args.model, layers=args.layers)
    if args.json:
        print(json.dumps(d, indent=2))
        return
    for k, v in d.items():
        if k != 'layers':
            print(f'{k:16s} {v}')
    for layer in d.get('layers', []):
        params = ' '.join(f'{k} {v}' for k, v in layer['params'].items())
        quant = f'int8 scale {layer["quant"][0]:.4g} zero {layer["quant"][1]}' if layer['quant'] else layer['dtype']
        print(f'  {layer["name"]:32s} {layer["op"]:16s} {str(layer["output"]):20s} {quant:30s} {params}')


def add_parser(sub):
    p = sub.add_parser('info', help='describe a model file')
    p.add_argument('model', help='model file')
    p.add_argument('--json', action='store_true', help='print JSON instead of a table')
    p.add_argument('--layers', action='store_true',
                   help='also each layer: its output shape and type (int8: its scale and zero point), '
                        'its tensors and their types')
    p.set_defaults(func=run)
