"""Per-channel sliding-window ops: depthwise convolution (any kernel, stride,
padding, dilation, channel multiplier), max and average pooling (padding,
ceil_mode, count_include_pad both ways), and global average pooling.

A job computes a run of output planes, each by one of these paths:
- direct: row by row with a row kernel that runs vectors over the row, the
  lanes of the border vectors whose taps fall outside the row replaced by
  the padding value (strides above 2: borders one output at a time); rows
  under the padding read a row of the padding value (0 for convolution and
  average, -inf for max).  3x3 pooling at stride 2 (the default path for it)
  walks vectors of output columns down the plane instead, each input row's
  windows taken across once for the two output rows that read it
  (f32_pool_plane_3x3s2).
- flat: small stride-1 planes as wide as their output run as flat vectors,
  lanes outside the input masked to the padding value: no per-row work;
  FLAT_CH planes at a time.  Small stride-2 windows run the same way over
  the input's four phase planes (even/odd rows x even/odd columns).
- framed: 3x3 windows of stride 1 or 2 row by row, each input row copied
  once into a frame with its padding (f32_window_plane_framed), so that no
  lane needs a mask.
- interleaved: 3x3, 5x5 and 7x7 windows of stride 1 or 2, VLEN channels at a time,
  their rows interleaved into one frame with the padding
  (f32_window_interleaved): a vector is one pixel of VLEN channels."""
from libc.stdint cimport int64_t
from engine.kernels.abi cimport (WINDOW_CONV, WINDOW_MAX, WINDOW_AVG, WINDOW_DIRECT, WINDOW_FLAT, WINDOW_FRAMED,
                                 WINDOW_INTERLEAVED)
from engine.kernels.common cimport (Op, ef, Ctx, VLEN, ENGINE_PLANE_ALIGN, act_param, f32_activation, image_data,
                                    worker_scratch)
import numpy as np

from engine.kernels.common cimport vf, vf_zero, vf_loadu, vf_add, vf_hsum
cdef extern from "ukernels.h" nogil:
    ctypedef struct f32_window_args:
        const ef* src
        int64_t in_h, in_w, ph, pw, out_h, out_w
        const ef* w
        float init, fill, lo, hi
        const ef* aux
        ef* out
        const ef* fill_row
        const ef** rows
        const int* lanes
    ctypedef void (*f32_window_plane_fn)(const f32_window_args* a)
    f32_window_plane_fn f32_window_plane_special(int mode, int64_t kh, int64_t kw, int64_t sh,
                                                 int64_t sw, int64_t dh, int64_t dw)
    void f32_window_plane_any(const f32_window_args* a, int mode, int64_t kh, int64_t kw,
                              int64_t sh, int64_t sw, int64_t dh, int64_t dw)
    ctypedef void (*f32_window_framed_fn)(const f32_window_args* a, ef* frames)
    f32_window_framed_fn f32_window_framed_for(int mode, int64_t s, float lo, float hi)
    void f32_window_framed_init(const f32_window_args* a, ef* frames, int64_t s)
    int64_t f32_framed_floats(int64_t out_h, int64_t out_w, int64_t s)
    ctypedef struct f32_window_group_args:
        const ef* src[VLEN]
        ef* out[VLEN]
        const ef* w[VLEN]
        ef init[VLEN]
        int64_t k, in_h, in_w, ph, pw, out_h, out_w
        float fill, lo, hi
        const ef* aux
    ctypedef void (*f32_window_interleaved_fn)(const f32_window_group_args* a, ef* frame)
    f32_window_interleaved_fn f32_window_interleaved_for(int mode, int64_t k, int64_t s, float lo, float hi)
    void f32_interleaved_init(const f32_window_group_args* a, ef* frame, int64_t s)
    int64_t f32_interleaved_floats(int64_t out_h, int64_t out_w, int64_t s, int64_t k)
    const int ENGINE_INTERLEAVED_SIDES, ENGINE_INTERLEAVED_SIDES_S2
    const int DW_K_MAX
    enum: FLAT_CH
    ctypedef struct f32_window_flat_args:
        const ef* src[FLAT_CH]
        ef* out[FLAT_CH]
        const ef* w[FLAT_CH]
        ef init[FLAT_CH]
        const int64_t* tap_off
        int64_t taps, nvec, j0, j1
        const int* lanes
        float lo, hi
        const ef* aux
    void f32_window_flat_tap_rows(f32_window_flat_args* a)
    void f32_window_flat(const f32_window_flat_args* a, int mode)
    void f32_phase_planes(const ef* src, int64_t in_h, int64_t in_w, ef* dst, int64_t ps,
                          int64_t rows, int64_t cols)
    const int ENGINE_ROW_OVERREAD


cdef enum:
    SLACK = 512
ARENA_SLACK = SLACK            # floats the arena keeps before its first and after its last
                               # plane: flat planes and window rows read a little outside
assert ARENA_SLACK >= ENGINE_ROW_OVERREAD
FLAT_PLANES = FLAT_CH          # planes the flat path runs together
INTERLEAVABLE_SIDES = tuple(range(3, DW_K_MAX + 1, 2))     # the windows the interleaved path takes
# those the planner runs interleaved by default, by stride (simd_*.h: ENGINE_INTERLEAVED_SIDES, _S2)
INTERLEAVED_SIDES = {stride: tuple(k for k in INTERLEAVABLE_SIDES if sides >> k & 1)
                     for stride, sides in ((1, ENGINE_INTERLEAVED_SIDES), (2, ENGINE_INTERLEAVED_SIDES_S2))}
VECTOR = VLEN                  # floats per vector


def flat_tables(int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w, int64_t kh, int64_t kw,
                int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t stride=1):
    """(tap_off, lanes) of the flat path, or None where it does not apply.

    Stride 1 needs out_w == in_w: tap t reads input pixel p + tap_off[t].
    Stride 2 reads the input's four phase planes (f32_phase_planes, out_h x
    out_w each, phase_stride floats apart), where every tap is again an
    offset, if every tap inside the input lands inside its phase plane.
    lanes is int32: nvec block numbers (padded to whole vectors), then the
    blocks, each [tap][VLEN] lane flags (-1 inside the input, 0 outside) for
    the output vectors with that block number.  Output vectors repeat a few
    patterns (the plane's top rows, bottom rows, and the row phases of the
    vectors in between), so the blocks stay small enough for L1.  None too
    when the reads would reach past ARENA_SLACK (a vector more on either
    side: AVX-512 reads 3x3 tap rows as the aligned vectors around them)."""
    if stride == 1 and out_w != in_w:
        return None
    ki, kj = np.divmod(np.arange(kh * kw), kw)
    row_off, col_off = ki * dh - ph, kj * dw - pw         # each tap's input pixel from (oh, ow) * stride
    nvec = (out_h * out_w + VLEN - 1) // VLEN          # (C division here: no -(-a // b))
    oh, ow = np.divmod(np.arange(nvec * VLEN), out_w)
    ih = oh[:, None] * stride + row_off[None, :]          # (pixel, tap)
    iw = ow[:, None] * stride + col_off[None, :]
    valid = (oh < out_h)[:, None] & (ih >= 0) & (ih < in_h) & (iw >= 0) & (iw < in_w)
    if stride == 1:
        tap_off = row_off * in_w + col_off
        extent = (in_h * in_w + ENGINE_PLANE_ALIGN - 1) // ENGINE_PLANE_ALIGN * ENGINE_PLANE_ALIGN
    else:
        (qi, ai), (qj, aj) = np.divmod(row_off, 2), np.divmod(col_off, 2)
        pi, pj = oh[:, None] + qi[None, :], ow[:, None] + qj[None, :]    # pixel in the phase plane
        if (valid & ((pi < 0) | (pi >= out_h) | (pj < 0) | (pj >= out_w))).any():
            return None
        tap_off = (2 * ai + aj) * phase_stride(out_h, out_w) + qi * out_w + qj
        extent = 4 * phase_stride(out_h, out_w)
    if (-tap_off.min() + VLEN > ARENA_SLACK
            or tap_off.max() + (nvec + 1) * VLEN - extent > ARENA_SLACK):
        return None
    per_vector = -valid.reshape(nvec, VLEN, kh * kw).transpose(0, 2, 1).astype(np.int32)
    blocks, number = np.unique(per_vector.reshape(nvec, -1), axis=0, return_inverse=True)
    header = np.zeros((nvec + VLEN - 1) // VLEN * VLEN, np.int32)
    header[:nvec] = number.ravel()
    return tap_off.astype(np.int64), np.concatenate([header, blocks.ravel().astype(np.int32)])


cpdef int64_t phase_stride(int64_t out_h, int64_t out_w) noexcept nogil:
    """Floats from one phase plane of a stride-2 flat window to the next."""
    return aligned(out_h * out_w) + VLEN


def row_tables(int64_t in_w, int64_t out_w, int64_t kw, int64_t sw, int64_t pw, int64_t dw):
    """Lane flags of the direct path's row kernel (strides 1 and 2), the
    same for every row: one entry per output vector of a row (1 where a tap
    of a lane it stores falls outside the row), padded to whole vectors, then
    per vector and tap column kj VLEN flags: -1 where the lane's tap is
    inside the row or the lane is past the row's end (computed, not stored)."""
    nvec = (out_w + VLEN - 1) // VLEN
    ow = np.arange(nvec * VLEN)
    iw = ow[:, None] * sw - pw + np.arange(kw)[None, :] * dw         # (lane, kj)
    inside = ((iw >= 0) & (iw < in_w)) | (ow >= out_w)[:, None]
    per_vector = inside.reshape(nvec, VLEN, kw).transpose(0, 2, 1)
    header = np.zeros((nvec + VLEN - 1) // VLEN * VLEN, np.int32)
    header[:nvec] = ~per_vector.reshape(nvec, -1).all(axis=1)
    return np.concatenate([header, -per_vector.ravel().astype(np.int32)])


cdef inline int64_t aligned(int64_t floats) noexcept nogil:
    """floats rounded up to whole planes' alignment (vectors, cache lines)."""
    return (floats + ENGINE_PLANE_ALIGN - 1) // ENGINE_PLANE_ALIGN * ENGINE_PLANE_ALIGN


cdef inline int64_t pointers_room(int64_t n) noexcept nogil:
    """Elements of scratch that hold n row pointers, aligned."""
    return aligned(n * <int64_t>(sizeof(void*) // sizeof(ef)))


def scratch_floats(int64_t in_w, int64_t out_h, int64_t out_w, int64_t kh, int64_t pw, int64_t stride,
                   int path):
    """Scratch one worker needs: for the direct path kh row pointers, then
    the padding row with what is read around it, then for the framed path
    its frames; for the flat path at stride 2, two sets of FLAT_CH channels'
    phase planes (one built while the other is read), each with ARENA_SLACK
    floats around it; for the interleaved path its frame."""
    if path == WINDOW_FLAT:
        return 0 if stride == 1 else 3 * ARENA_SLACK + 2 * FLAT_CH * 4 * phase_stride(out_h, out_w)
    if path == WINDOW_INTERLEAVED:
        return f32_interleaved_floats(out_h, out_w, stride, kh)
    rows = pointers_room(kh) + aligned(aligned(pw) + in_w + pw + ENGINE_ROW_OVERREAD)
    return rows + (f32_framed_floats(out_h, out_w, stride) if path == WINDOW_FRAMED else 0)


cdef inline const ef* channel_taps(const Op* op, int64_t c) noexcept nogil:
    """Channel c's kernel weights (convolution), or NULL."""
    return op.w + c * op.p.kh * op.p.kw if op.p.mode == WINDOW_CONV else NULL


cdef inline float channel_start(const Op* op, int64_t c) noexcept nogil:
    """Where channel c's accumulators start: its bias, -inf (max) or 0 (average)."""
    if op.p.mode == WINDOW_CONV:
        return op.b[c]
    return op.p.fill if op.p.mode == WINDOW_MAX else 0


cdef void split_phases(const Op* op, const ef* base, int64_t c, int64_t n,
                       ef* dst) noexcept nogil:
    """The phase planes of channels c .. c+n-1, each channel's four phase_stride apart."""
    cdef int64_t g, ps = phase_stride(op.p.out_h, op.p.out_w)
    for g in range(n):
        f32_phase_planes(base + op.in_off[c + g], op.p.in_h, op.p.in_w, dst + g * 4 * ps, ps,
                         op.p.out_h, op.p.out_w)


cdef void flat_planes(const Op* op, const ef* in_base, ef* out_base, ef* buf,
                      int64_t c0, int64_t c1, int64_t j0, int64_t j1) noexcept nogil:
    """Output vectors [j0, j1) of channels [c0, c1), FLAT_CH channels at a
    time, channel c's input plane at in_base + in_off[c].  Stride 2 reads
    phase planes in buf, built a group ahead: reading them right after
    writing them would stall on store forwarding."""
    cdef f32_window_flat_args a
    cdef int64_t c = c0, g, ch, n, turn = 0
    cdef int64_t block = 4 * phase_stride(op.p.out_h, op.p.out_w)
    cdef ef* phases[2]
    a.tap_off, a.taps, a.lanes = op.tap_off, op.p.kh * op.p.kw, op.lanes
    a.nvec, a.j0, a.j1 = (op.p.out_h * op.p.out_w + VLEN - 1) // VLEN, j0, j1
    a.lo, a.hi, a.aux = op.p.lo, op.p.hi, op.aux
    f32_window_flat_tap_rows(&a)
    if op.p.sh == 2:
        phases[0] = buf + SLACK
        phases[1] = phases[0] + FLAT_CH * block + SLACK
        split_phases(op, in_base, c0, min(<int64_t>FLAT_CH, c1 - c0), phases[0])
    while c < c1:
        n = min(<int64_t>FLAT_CH, c1 - c)
        if op.p.sh == 2 and c + n < c1:
            split_phases(op, in_base, c + n, min(<int64_t>FLAT_CH, c1 - c - n), phases[1 - turn])
        for g in range(FLAT_CH):
            # a group short of FLAT_CH planes repeats its last one (writing
            # the same values twice) so that one kernel serves every group
            ch = c + min(g, n - 1)
            if op.p.sh == 2:
                a.src[g] = phases[turn] + min(g, n - 1) * block
            else:
                a.src[g] = in_base + op.in_off[ch]
            a.out[g] = out_base + op.out_off[ch]
            a.w[g], a.init[g] = channel_taps(op, ch), channel_start(op, ch)
        f32_window_flat(&a, op.p.mode)
        if op.p.act:
            for ch in range(c, c + n):
                f32_activation(out_base + op.out_off[ch] + j0 * VLEN,
                               min(j1 * VLEN, op.p.out_h * op.p.out_w) - j0 * VLEN, op.p.act,
                               act_param(op, ch))
        c += n
        turn = 1 - turn


cdef void window_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil:
    """job = (image, run of per_job output channels)."""
    cdef int64_t image = job // op.p.jobs_per_image
    cdef int64_t c0 = job % op.p.jobs_per_image * op.p.per_job
    cdef int64_t c1 = min(c0 + op.p.per_job, op.p.n_out)
    cdef ef* base = image_data(ctx, image)
    if op.p.path == WINDOW_FLAT:
        flat_planes(op, base, base, worker_scratch(ctx, tid), c0, c1,
                    0, (op.p.out_h * op.p.out_w + VLEN - 1) // VLEN)
    else:
        window_rows(op, base, base, worker_scratch(ctx, tid), c0, c1,
                    0, op.p.in_h, 0, op.p.out_h)


cdef void window_rows(const Op* op, const ef* in_base, ef* out_base, ef* buf,
                      int64_t c0, int64_t c1, int64_t ih_lo, int64_t ih_hi,
                      int64_t oh0, int64_t oh1) noexcept nogil:
    """Output rows [oh0, oh1) of channels [c0, c1) by the direct, framed or
    interleaved path, from input rows [ih_lo, ih_hi) (those the output rows
    need, or all rows), channel c's first at in_base + in_off[c].  buf: this
    worker's scratch."""
    if op.p.path == WINDOW_INTERLEAVED:
        interleaved_rows(op, in_base, out_base, buf, c0, c1, ih_lo, ih_hi, oh0, oh1)
        return
    cdef int64_t c, i
    cdef f32_window_args a
    a.rows = <const ef**>buf
    buf = buf + pointers_room(op.p.kh)
    cdef ef* frames = buf + aligned(aligned(op.p.pw) + op.p.in_w + op.p.pw + ENGINE_ROW_OVERREAD)
    # rows relative to ih_lo: output row oh0 + r reads local row r * sh - ph' + ki * dh
    a.in_h, a.in_w, a.ph, a.pw = ih_hi - ih_lo, op.p.in_w, op.p.ph - oh0 * op.p.sh + ih_lo, op.p.pw
    a.out_h, a.out_w = oh1 - oh0, op.p.out_w
    a.fill, a.lo, a.hi, a.fill_row = op.p.fill, op.p.lo, op.p.hi, buf + aligned(op.p.pw)
    a.aux = op.aux + oh0 * op.p.out_w if op.aux != NULL else NULL
    a.lanes = op.lanes
    cdef f32_window_framed_fn framed_fn = NULL
    if op.p.path == WINDOW_FRAMED:
        framed_fn = f32_window_framed_for(op.p.mode, op.p.sh, op.p.lo, op.p.hi)
        f32_window_framed_init(&a, frames, op.p.sh)
    else:
        for i in range(aligned(op.p.pw) + op.p.in_w + op.p.pw + ENGINE_ROW_OVERREAD):
            buf[i] = op.p.fill        # the padding row; border vectors read pw floats before a row
    cdef f32_window_plane_fn plane_fn = f32_window_plane_special(op.p.mode, op.p.kh, op.p.kw, op.p.sh,
                                                                op.p.sw, op.p.dh, op.p.dw)
    for c in range(c0, c1):
        a.src = in_base + op.in_off[c]
        a.out = out_base + op.out_off[c] + oh0 * op.p.out_w
        a.w, a.init = channel_taps(op, c), channel_start(op, c)
        if framed_fn != NULL:
            framed_fn(&a, frames)
        elif plane_fn != NULL:
            plane_fn(&a)
        else:
            f32_window_plane_any(&a, op.p.mode, op.p.kh, op.p.kw, op.p.sh, op.p.sw, op.p.dh, op.p.dw)
        if op.p.act:
            f32_activation(a.out, a.out_h * op.p.out_w, op.p.act, act_param(op, c))


cdef void interleaved_rows(const Op* op, const ef* in_base, ef* out_base, ef* frame,
                           int64_t c0, int64_t c1, int64_t ih_lo, int64_t ih_hi,
                           int64_t oh0, int64_t oh1) noexcept nogil:
    """window_rows for the interleaved path: VLEN channels at a time (a
    group short of VLEN repeats its last channel, writing the same values
    twice, so that one kernel serves every group)."""
    cdef f32_window_group_args a
    cdef int64_t c = c0, g, ch
    a.in_h, a.in_w, a.ph, a.pw = ih_hi - ih_lo, op.p.in_w, op.p.ph - oh0 * op.p.sh + ih_lo, op.p.pw
    a.out_h, a.out_w, a.fill, a.lo, a.hi = oh1 - oh0, op.p.out_w, op.p.fill, op.p.lo, op.p.hi
    a.aux = op.aux + oh0 * op.p.out_w if op.aux != NULL else NULL
    a.k = op.p.kh
    cdef f32_window_interleaved_fn kernel = f32_window_interleaved_for(op.p.mode, op.p.kh, op.p.sh, op.p.lo,
                                                                      op.p.hi)
    f32_interleaved_init(&a, frame, op.p.sh)
    while c < c1:
        for g in range(VLEN):
            ch = min(c + g, c1 - 1)
            a.src[g] = in_base + op.in_off[ch]
            a.out[g] = out_base + op.out_off[ch] + oh0 * op.p.out_w
            a.w[g], a.init[g] = channel_taps(op, ch), channel_start(op, ch)
        kernel(&a, frame)
        if op.p.act:
            for ch in range(c, min(c + VLEN, c1)):
                f32_activation(out_base + op.out_off[ch] + oh0 * op.p.out_w, a.out_h * op.p.out_w,
                               op.p.act, act_param(op, ch))
        c += VLEN


cdef void global_avgpool_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil:
    """job = (image, run of per_job channels): each plane's mean into its
    1x1 output plane."""
    cdef int64_t c0 = job % op.p.jobs_per_image * op.p.per_job, c, i
    cdef ef* base = image_data(ctx, job // op.p.jobs_per_image)
    cdef const ef* src
    cdef ef* dst
    cdef int64_t npix = op.p.in_h * op.p.in_w, full = npix - npix % VLEN
    cdef vf acc, acc2
    cdef float total
    for c in range(c0, min(c0 + op.p.per_job, op.p.n_out)):
        src = base + op.in_off[c]
        acc, acc2 = vf_zero(), vf_zero()
        i = 0
        while i + 2 * VLEN <= full:       # two vectors a turn, two sums: half the loop's overhead
            acc = vf_add(acc, vf_loadu(src + i))
            acc2 = vf_add(acc2, vf_loadu(src + i + VLEN))
            i += 2 * VLEN
        if i < full:
            acc = vf_add(acc, vf_loadu(src + i))
        total = vf_hsum(vf_add(acc, acc2))
        for i in range(full, npix):
            total = total + src[i]
        total = total / npix
        total = op.p.lo if total < op.p.lo else total       # NaN passes, as in the other kernels
        dst = base + op.out_off[c]
        dst[0] = op.p.hi if total > op.p.hi else total
        if op.p.act:          # an average pool taken for a global one may carry an activation
            f32_activation(dst, 1, op.p.act, act_param(op, c))
