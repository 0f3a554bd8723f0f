"""Fused operators: two layers in one pass over memory.

Expand-depthwise (MobileNetV2's inverted residual): a 1x1 convolution that
widens the channels, then the depthwise convolution reading its output.  At
112x112 and 56x56 the widened tensor is several MiB, so written by one op and
read back by the next it goes through main memory twice.  Fused, each job
takes a block of the expanded channels (the 1x1's row tiles: each channel's
depthwise reads that channel alone) and runs it band by band of the
depthwise's output rows: the 1x1 computes the input rows under the band
(with the window's halo, recomputed by the next band: bands as tall as the
scratch allows, the whole plane where it fits) into the worker's scratch,
and the depthwise reads them there while they are in cache: by its own
path (interleaved, VECTOR channels from the block's first), else at stride 1
by the flat path, in bands of whole vectors, and at stride 2 row by row."""
from libc.stdint cimport int64_t
from engine.kernels.abi cimport WINDOW_FLAT
from engine.kernels.common cimport Op, ef, Ctx, GEMM_NR, VLEN, image_data, worker_scratch


cdef void expand_dw_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil:
    """job = (image, block of m_per_job row tiles of the 1x1 op: channels
    [c0, c1) of both convolutions), in bands of per_job output rows of the
    depthwise op.then.  Channel c's band lies in this worker's scratch at
    out_off[c] - c0 * plane (out_off[c]: head + c * plane, so the block's
    first channel is at the head); op.then reads it there (its in_off)."""
    cdef const Op* dw = op.then
    cdef int64_t image = job // op.p.jobs_per_image
    cdef int64_t mt0 = job % op.p.jobs_per_image * op.p.m_per_job
    cdef int64_t mt1 = min(mt0 + op.p.m_per_job, op.p.m_tiles)
    cdef int64_t c0 = tile_first_row(op, mt0), c1 = min(tile_first_row(op, mt1), op.p.n_out)
    cdef int64_t w = dw.p.in_w, band, oh0, oh1, ih_lo, ih_hi, n, whole
    cdef ef* base = image_data(ctx, image)
    cdef ef* bands = worker_scratch(ctx, tid) - c0 * op.p.plane
    for band in range((dw.p.out_h + op.p.per_job - 1) // op.p.per_job):
        oh0 = band * op.p.per_job
        oh1 = min(oh0 + op.p.per_job, dw.p.out_h)
        ih_lo = max(<int64_t>0, oh0 * dw.p.sh - dw.p.ph)
        ih_hi = min(dw.p.in_h, (oh1 - 1) * dw.p.sh - dw.p.ph + (dw.p.kh - 1) * dw.p.dh + 1)
        # the band's input pixels: whole tiles in one call, then the rest
        n, whole = (ih_hi - ih_lo) * w, (ih_hi - ih_lo) * w // GEMM_NR
        if whole:
            gemm_row_tiles(op, 0, mt0, mt1, base, op.in_off, op.k_runs, ih_lo * w, bands, 0, GEMM_NR,
                           WHOLE_K, whole)
        if n > whole * GEMM_NR:
            gemm_row_tiles(op, 0, mt0, mt1, base, op.in_off, op.k_runs, ih_lo * w + whole * GEMM_NR, bands,
                           whole * GEMM_NR, n - whole * GEMM_NR, WHOLE_K)
        if dw.p.path == WINDOW_FLAT:
            # stride 1, bands of whole vectors: the band's rows read as rows
            # of the whole plane (input row ih_lo at the band's start)
            flat_planes(dw, bands - ih_lo * w, base, NULL, c0, c1, oh0 * dw.p.out_w // VLEN,
                        (oh1 * dw.p.out_w + VLEN - 1) // VLEN)
        else:       # the depthwise's own scratch follows the block's last band
            window_rows(dw, bands, base, bands + op.out_off[c1 - 1] + op.p.plane,
                        c0, c1, ih_lo, ih_hi, oh0, oh1)
