"""Ops that exist only in plans: what the size-dependent passes of
engine/optimize.py (optimize_for_size) rewrite a graph into for one input
size.  A model file never holds them (graph.validate refuses them).

- expand_depthwise: a 1x1 convolution and the depthwise one that alone
  reads it, run as one op (kernels/fused.pxi): the 1x1 writes bands of rows
  to scratch and the depthwise reads them there, so the expanded tensor of
  MobileNetV2's large planes never goes to memory.
- conv_k_halves: a 1x1 convolution reducing in two halves of its input
  channels, each half a job (kernels/gemm.pxi), output both halves' sums:
  channels [0, C) the first half's with the bias and residual, [C, 2C) the
  second's.  add_halves then adds them and applies the convolution's
  epilogue."""
from dataclasses import fields, replace
from math import gcd

import numpy as np

from engine.errors import ModelFileError
from engine.kernels.abi import EltwiseMode, WindowMode, WindowPath
from engine.kernels import descriptors
from engine.lowering import interleaved_window, kernel_fields, padded_plane, runs, tile_starts
from engine.ops import REGISTRY, OpDef, register
from engine.ops.conv import conv2d


class _PlanOnly(OpDef):
    plan_only = True

    def check(self, node, ins):
        raise ModelFileError(f'node {node.name!r}: op {node.op!r} is made by the planner, not stored in files')


@register
class ExpandDepthwise(_PlanOnly):
    """attrs: expand (the 1x1 conv node), depthwise (the depthwise conv node,
    whose name this node has), label (the layer's name)."""
    name = 'expand_depthwise'
    epilogue = False        # each convolution applies its own

    def shape(self, node, ins):
        conv = REGISTRY['conv']
        return conv.shape(node.attrs['depthwise'], [conv.shape(node.attrs['expand'], ins)])

    def reference(self, node, ins):
        from engine.reference import run_node
        return run_node(node.attrs['depthwise'], [run_node(node.attrs['expand'], ins)])

    def lower(self, node, ctx):
        """One record: the 1x1 convolution pw writes bands of rows to scratch,
        the depthwise dw reads them there (kernels/fused.pxi).  Jobs are
        blocks of pw's row tiles (options.fuse_min_jobs of them at least, but
        of whole vector groups for an interleaved depthwise), each
        its channels band by band, bands as tall as options.fuse_band_bytes
        of scratch holds for a block."""
        pw, dw, options, kernels = node.attrs['expand'], node.attrs['depthwise'], ctx.options, ctx.kernels
        conv = REGISTRY['conv']
        e, h, w = conv.shape(pw, [ctx.shapes[i] for i in pw.inputs])
        ctx = replace(ctx, shapes={**ctx.shapes, pw.name: (e, h, w)},
                      dtypes={**ctx.dtypes, pw.name: conv.dtype(pw, [ctx.dtypes[i] for i in pw.inputs])})
        out_h = ctx.shapes[dw.name][1]
        (sh, _), (kh, _), (dh, _) = dw.attrs['stride'], dw.attrs['kernel'], dw.attrs['dilation']
        # the row tiles (pw's packing; its planes are placed below)
        gemm, kind, _ = conv.lower(pw, replace(ctx, out_off=np.zeros(e, np.int64)))
        m_per_job = -(-gemm.m_tiles // options.fuse_min_jobs)
        # a depthwise running interleaved takes VECTOR channels at a time from
        # each job's first: jobs of whole groups (fewer jobs where a group's
        # tiles are more than m_per_job, but two at least for two threads).
        # Blocks of 12 channels ran as 8 + 4 on AVX2, half a group's lanes
        # empty (Zen 3, per-layer medians: MNASNet's 16 -> 48 at 112x112 +
        # 3x3s2 0.533 -> 0.474 ms at 1 thread, 0.424 -> 0.336 at 2;
        # MobileNetV3-large's 16 -> 64 0.697 -> 0.647); ShuffleNetV2+'s 24
        # channels in one job took longer at 2 threads than at 1
        if interleaved_window(kernels, kernel_fields(dw.attrs, dw.attrs['kernel']), WindowMode.WINDOW_CONV,
                              options):
            group = kernels.VECTOR // gcd(gemm.tile_rows, kernels.VECTOR)     # row tiles per whole group
            whole = max(group, m_per_job // group * group)
            if options.single_thread or gemm.m_tiles > whole:
                m_per_job = whole
        first = tile_starts({f: getattr(gemm, f) for f in ('tile_rows', 'm_tiles', 'short_rows', 'short_tiles')})
        first = np.minimum(first[:-1][::m_per_job].tolist() + [first[-1]], e)   # jobs' first channels, then e
        block = int(np.diff(first).max())                                  # channels of a job at most

        def band_plane(rows):       # elements per channel of a band of `rows` output rows
            return padded_plane(((rows - 1) * sh + (kh - 1) * dh + 1) * w)

        rows = out_h
        while rows > 1 and kernels.ELEMENT_BYTES * block * band_plane(rows) > options.fuse_band_bytes:
            rows -= 1
        # at stride 1 the depthwise runs flat, if bands but the last can be
        # whole vectors: rows a multiple of `step`
        step = kernels.VECTOR // np.gcd(w, kernels.VECTOR)
        flat = sh == 1 and ctx.shapes[dw.name][2] == w and (rows == out_h or rows >= step)
        if flat and rows < out_h:
            rows -= rows % step
        plane = band_plane(rows)
        # channel c's band at head + c * plane (a job shifts its block's first
        # to the head): the depthwise's border vectors read up to pw floats
        # before a row, the flat path up to ARENA_SLACK floats around the bands
        head = kernels.ARENA_SLACK if flat else padded_plane(dw.attrs['padding'][1])
        bands = kernels.ELEMENT_BYTES * (head + np.arange(e, dtype=np.int64) * plane)      # the records' bytes
        then, dw_kind, dw_need = conv.lower(dw, replace(ctx, direct_only=not flat, in_off=bands))
        if flat and then.path != WindowPath.WINDOW_FLAT:     # no flat tables: the direct path
            flat = False
            then, dw_kind, dw_need = conv.lower(dw, replace(ctx, direct_only=True, in_off=bands))
        values = {f.name: getattr(gemm, f.name) for f in fields(gemm)}
        values.update(out_off=bands, plane=plane, m_per_job=m_per_job, per_job=rows,
                      jobs_per_image=len(first) - 1)
        record = descriptors.ExpandDepthwise(**values, then=then)
        after = kernels.ARENA_SLACK if flat else dw_need      # the flat reads, or the direct path's scratch
        return record, f'{kind}+{dw_kind}', head + block * plane + after


@register
class ConvKHalves(_PlanOnly):
    """attrs: conv (the 1x1 convolution node, whose epilogue add_halves
    applies), label."""
    name = 'conv_k_halves'
    epilogue = False

    def shape(self, node, ins):
        c, h, w = REGISTRY['conv'].shape(node.attrs['conv'], ins)
        return 2 * c, h, w

    def reference(self, node, ins):
        conv = node.attrs['conv']
        weight, k = conv.params['weight'], conv.attrs['in_channels'] // 2
        first = conv2d(ins[0][:, :k], weight[:, :k], conv.params.get('bias'))
        if len(ins) == 2:
            first = first + ins[1]
        return np.concatenate([first, conv2d(ins[0][:, k:], weight[:, k:])], axis=1)

    def lower(self, node, ctx):
        conv, off = node.attrs['conv'], ctx.offsets(node.name)
        c = len(off) // 2
        record, kind, need = REGISTRY['conv'].lower(conv, replace(ctx, out_off=off[:c]))
        return replace(record, k_splits=2, part_off=off[c:], jobs_per_image=2 * record.jobs_per_image), \
            kind, need


@register
class AddHalves(_PlanOnly):
    """Channels [0, C) plus [C, 2C) of its input, then the epilogue."""
    name = 'add_halves'

    def shape(self, node, ins):
        c, h, w = ins[0]
        return c // 2, h, w

    def reference(self, node, ins):
        c = ins[0].shape[1] // 2
        return ins[0][:, :c] + ins[0][:, c:]

    def lower(self, node, ctx):
        """Split by pixels, as the 1x1 convolutions reading it are."""
        step = ctx.step(node)
        halves = step['in_off']
        c = len(halves) // 2
        step.update(in_off=halves[:c])
        return descriptors.Eltwise(**step, mode=EltwiseMode.ELTWISE_ADD_SPLIT, in2_off=halves[c:],
                       **runs(step['plane'] // ctx.kernels.VECTOR, ctx.options.planned_channel_jobs)), 'k_halves_sum', 0
