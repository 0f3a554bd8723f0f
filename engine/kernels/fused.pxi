"""Fused operators: two layers in one pass over memory.

Expand-depthwise (MobileNetV2's inverted residual): a 1x1 convolution that
widens the channels, then the depthwise convolution reading its output.  At
112x112 and 56x56 the widened tensor is several MiB, so written by one op and
read back by the next it goes through main memory twice.  Fused, each job
takes a band of the depthwise's output rows: the 1x1 computes the input rows
under the band (with the window's halo, recomputed by both neighbouring
bands) into the worker's scratch, and the depthwise reads them there while
they are in cache: at stride 1 by the flat path, in bands of whole vectors;
at stride 2 row by row."""
from libc.stdint cimport int64_t
from engine.kernels.abi cimport WINDOW_FLAT
from engine.kernels.common cimport Op, Ctx, GEMM_NR, VLEN, f32_image, f32_scratch


cdef void expand_dw_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil:
    """job = (image, band of per_job output rows of the depthwise op.then).
    op is the 1x1 convolution writing channel c of the band to this worker's
    scratch at out_off[c] (bands op.p.plane floats apart); op.then reads it
    there (its in_off)."""
    cdef const Op* dw = op.then
    cdef int64_t image = job // op.p.jobs_per_image
    cdef int64_t oh0 = job % op.p.jobs_per_image * op.p.per_job
    cdef int64_t oh1 = min(oh0 + op.p.per_job, dw.p.out_h)
    cdef int64_t ih_lo = max(<int64_t>0, oh0 * dw.p.sh - dw.p.ph)
    cdef int64_t ih_hi = min(dw.p.in_h, (oh1 - 1) * dw.p.sh - dw.p.ph + (dw.p.kh - 1) * dw.p.dh + 1)
    cdef int64_t w = dw.p.in_w, n, t
    cdef float* base = f32_image(ctx, image)
    cdef float* scratch = f32_scratch(ctx, tid)
    for t in range(((ih_hi - ih_lo) * w + GEMM_NR - 1) // GEMM_NR):
        n = ih_lo * w + t * GEMM_NR
        gemm_row_tiles(op, 0, 0, op.p.m_tiles, base, op.in_off, op.k_runs, n, scratch, n - ih_lo * w,
                       min(<int64_t>GEMM_NR, ih_hi * w - n), WHOLE_K)
    if dw.p.path == WINDOW_FLAT:
        # stride 1, bands of whole vectors: the band's rows read as rows of
        # the whole plane (input row ih_lo at the band's start)
        flat_planes(dw, scratch - ih_lo * w, base, NULL, 0, dw.p.n_out, oh0 * dw.p.out_w // VLEN,
                    (oh1 * dw.p.out_w + VLEN - 1) // VLEN)
    else:       # the depthwise's own scratch follows the last channel's band
        window_rows(dw, scratch, base, scratch + op.out_off[op.p.n_out - 1] + op.p.plane,
                    0, dw.p.n_out, ih_lo, ih_hi, oh0, oh1)
