"""The int8 kinds' jobs (engine/int8.py: the scheme; ukernels_int8.h: the
arithmetic).  Their plane offsets are bytes (int8's elements), whatever the
type of the plane: a convolution may write float32 (out_f32), a conversion
reads or writes it.  A convolution's job computes each output channel's
plane of int32 sums in the worker's scratch, then stores it (a depthwise
convolution's and max pooling's planes to int8: i8_window_planes, a call a
job, which on NEON, AVX2 and AVX-512 goes straight from the input planes);
a 1x1's (OP_I8_GEMM) computes tiles of channels x pixels over packed
panels."""
from libc.stdint cimport int64_t, int8_t, int32_t, uint8_t
from engine.kernels.abi cimport WINDOW_MAX, I8_ADD, I8_QUANTIZE
from engine.kernels.common cimport Op, Ctx

cdef extern from "ukernels_int8.h" nogil:
    int64_t i8_window_scratch(int64_t out_h, int64_t out_w, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                              int64_t dh, int64_t dw)
    void i8_window_sums(int32_t* acc, const int8_t* base, const int64_t* off, int64_t cin,
                        const int8_t* w, int32_t zero, int64_t in_h, int64_t in_w, int64_t out_h,
                        int64_t out_w, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                        int64_t pw, int64_t dh, int64_t dw)
    void i8_dot_rows(int32_t* acc, int32_t* xz, const int8_t* base, const int64_t* off, int64_t cin,
                     const int8_t* w, int64_t n, int32_t zero)
    enum: I8_MR
    enum: I8_NR
    enum: I8_KG
    enum: I8_PANEL_OFFSET
    enum: I8_ELEM_BYTES
    void i8_pack_panel(uint8_t* panel, const int8_t* base, const int64_t* off, int64_t K, int64_t kp, int64_t p0)
    ctypedef struct i8_tile_store:
        char* base
        const int64_t* off
        const int64_t* res_off
        int64_t p0, rows, n
        const float* mult
        int32_t zero, qlo, qhi, res_zero
        float res_mult
    void i8_gemm_tile(const int8_t* w, const uint8_t* panel, int64_t kp, const int32_t* bias, int32_t* acc,
                      const i8_tile_store* st)
    void i8_tile_store_sums(const int32_t* acc, const i8_tile_store* st)
    void i8_window_planes(char* base, const int64_t* out_off, const int64_t* in_off, int64_t c0, int64_t c1,
                          int64_t cout_g, const int8_t* w, const int32_t* bias, const float* mult, int32_t in_zero,
                          int32_t zero, int32_t qlo, int32_t qhi, int32_t* acc, int64_t in_h, int64_t in_w,
                          int64_t out_h, int64_t out_w, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                          int64_t pw, int64_t dh, int64_t dw)
    void i8_store_q(int8_t* out, const int32_t* acc, int64_t n, int32_t bias, const float* mult,
                    int64_t mult_step, int32_t zero, int32_t qlo, int32_t qhi, const int8_t* res,
                    int32_t res_zero, float res_mult)
    void i8_store_f32(float* out, const int32_t* acc, int64_t n, int32_t bias, float mult, float lo, float hi,
                      const int8_t* res, int32_t res_zero, float res_mult)
    void i8_add(int8_t* out, const int8_t* a, const int8_t* b, int64_t n, int32_t a_zero, float a_mult,
                int32_t b_zero, float b_mult, int32_t zero, int32_t qlo, int32_t qhi)
    void i8_quantize(int8_t* out, const float* x, int64_t n, float inv_scale, int32_t zero, int32_t qlo,
                     int32_t qhi)
    void i8_dequantize(float* out, const int8_t* q, int64_t n, int32_t zero, float scale)

cdef float ONE = 1.0

# the 1x1 tiles (ukernels_int8.h), for the planner's packing (ops/quant.py)
INT8_TILE_ROWS = I8_MR
INT8_TILE_PIXELS = I8_NR
INT8_K_GROUP = I8_KG
INT8_PANEL_OFFSET = I8_PANEL_OFFSET
INT8_ELEMENT_BYTES = I8_ELEM_BYTES       # the panel's and the packed weights' elements (int16 on AVX2)


def int8_gemm_scratch(int64_t kp):
    """int32s of scratch an OP_I8_GEMM job uses for kp (padded) input
    channels: the panel, then the tile's sums (64-byte aligned)."""
    return (kp * I8_NR * I8_ELEM_BYTES + 63) // 64 * 16 + I8_MR * I8_NR


def int8_window_scratch(step):
    """int32s of scratch an OP_I8_WINDOW job (or OP_I8_CONV's sums) uses
    for a record with Spatial and Kernel fields: a plane of sums, and the
    frames, or a padded int8 plane where the module has one (ukernels_int8.h:
    i8_window_scratch)."""
    return i8_window_scratch(step.out_h, step.out_w, step.kh, step.kw, step.sh, step.sw, step.dh, step.dw)


def int8_conv_scratch(step):
    """int32s of scratch an OP_I8_CONV job uses: its sums (1x1 planes: a sum
    per channel of the job), then the gathered input vector."""
    return max(int8_window_scratch(step), step.per_job) + step.cin_g


cdef inline char* image_bytes(const Ctx* ctx, int64_t job, int64_t jobs_per_image) noexcept nogil:
    """The arena slice of the image job belongs to."""
    return ctx.arena + job // jobs_per_image * ctx.image_bytes


cdef inline void sums(const Op* op, int32_t* acc, const char* base, int64_t c, int64_t cin,
                      const int8_t* w) noexcept nogil:
    """One output plane's sums into acc."""
    i8_window_sums(acc, <const int8_t*>base, op.in_off + c, cin, w, op.p.in_zero, op.p.in_h, op.p.in_w,
                   op.p.out_h, op.p.out_w, op.p.kh, op.p.kw, op.p.sh, op.p.sw, op.p.ph, op.p.pw, op.p.dh,
                   op.p.dw)


cdef void store_plane(const Op* op, char* base, int64_t c, const int32_t* acc, int32_t bias,
                      const float* mult, int64_t mult_step, int32_t zero) noexcept nogil:
    """Output plane c from its sums: int8 (mult per channel, or per pixel:
    mult_step 1), or float32 (out_f32); the residual, if any, added."""
    cdef int64_t n = op.p.out_h * op.p.out_w
    cdef const int8_t* res = <const int8_t*>(base + op.res_off[c]) if op.res_off != NULL else NULL
    if op.p.out_f32:
        i8_store_f32(<float*>(base + op.out_off[c]), acc, n, bias, mult[0], op.p.lo, op.p.hi, res,
                     op.p.in2_zero, op.p.in2_scale)
    else:
        i8_store_q(<int8_t*>(base + op.out_off[c]), acc, n, bias, mult, mult_step, zero, op.p.qlo, op.p.qhi, res,
                   op.p.in2_zero, op.p.in2_scale)


cdef inline void window_planes(const Op* op, char* base, int64_t c0, int64_t c1, int32_t* acc, const int8_t* w,
                               int64_t cout_g) noexcept nogil:
    """The job's output channels [c0, c1) of a depthwise convolution (w: its
    weights, cout_g output channels an input plane) or of max pooling (w
    NULL, cout_g 1) to int8, without a residual: straight from their input
    planes where the module can."""
    i8_window_planes(base, op.out_off, op.in_off, c0, c1, cout_g, w, op.qb, op.mult, op.p.in_zero,
                     op.p.out_zero, op.p.qlo, op.p.qhi, acc, op.p.in_h, op.p.in_w, op.p.out_h, op.p.out_w, op.p.kh,
                     op.p.kw, op.p.sh, op.p.sw, op.p.ph, op.p.pw, op.p.dh, op.p.dw)


cdef void i8_conv_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil:
    """job = (image, run of per_job output channels), each reading its
    group's cin_g input planes."""
    cdef int64_t c0 = job % op.p.jobs_per_image * op.p.per_job, c
    cdef char* base = image_bytes(ctx, job, op.p.jobs_per_image)
    cdef int32_t* acc = <int32_t*>(ctx.scratch + tid * ctx.scratch_bytes)
    cdef int64_t npix = op.p.out_h * op.p.out_w, taps = op.p.cin_g * op.p.kh * op.p.kw
    cdef int64_t c1 = min(c0 + op.p.per_job, op.p.n_out), g
    cdef bint dots = npix == 1 and taps == op.p.cin_g     # fully connected: one sum per channel
    if not dots and op.p.cin_g == 1 and not op.p.out_f32 and op.res_off == NULL:     # (depthwise)
        window_planes(op, base, c0, c1, acc, op.qw, op.p.cout_g)
        return
    if dots:        # (each group's run of channels at once)
        c = c0
        while c < c1:
            g = c // op.p.cout_g
            i8_dot_rows(acc + c - c0, acc + op.p.per_job, <const int8_t*>base, op.in_off + g * op.p.cin_g,
                        op.p.cin_g, op.qw + c * taps, min(c1, (g + 1) * op.p.cout_g) - c, op.p.in_zero)
            c = min(c1, (g + 1) * op.p.cout_g)
    for c in range(c0, c1):
        if dots:
            store_plane(op, base, c, acc + c - c0, op.qb[c], op.mult + c, 0, op.p.out_zero)
        else:
            sums(op, acc, base, c // op.p.cout_g * op.p.cin_g, op.p.cin_g, op.qw + c * taps)
            store_plane(op, base, c, acc, op.qb[c], op.mult + c, 0, op.p.out_zero)


cdef void i8_window_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil:
    """job = (image, run of per_job channels): max pooling keeps its input's
    quantization (the maxima clamped); average pooling is a depthwise
    convolution of weights 1 (qw) with a multiplier per output pixel."""
    cdef int64_t c0 = job % op.p.jobs_per_image * op.p.per_job, c
    cdef char* base = image_bytes(ctx, job, op.p.jobs_per_image)
    cdef int32_t* acc = <int32_t*>(ctx.scratch + tid * ctx.scratch_bytes)
    cdef bint is_max = op.p.mode == WINDOW_MAX
    if is_max and not op.p.out_f32 and op.res_off == NULL:
        window_planes(op, base, c0, min(c0 + op.p.per_job, op.p.n_out), acc, NULL, 1)
        return
    for c in range(c0, min(c0 + op.p.per_job, op.p.n_out)):
        sums(op, acc, base, c, 1, NULL if is_max else op.qw)
        if is_max:
            store_plane(op, base, c, acc, 0, &ONE, 0, 0)
        else:
            store_plane(op, base, c, acc, 0, op.mult, 1, op.p.out_zero)


cdef void i8_eltwise_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil:
    """job = (image, run of per_job channels), each a whole padded plane."""
    cdef int64_t c0 = job % op.p.jobs_per_image * op.p.per_job, c
    cdef char* base = image_bytes(ctx, job, op.p.jobs_per_image)
    for c in range(c0, min(c0 + op.p.per_job, op.p.n_out)):
        if op.p.mode == I8_ADD:
            i8_add(<int8_t*>(base + op.out_off[c]), <const int8_t*>(base + op.in_off[c]),
                   <const int8_t*>(base + op.in2_off[c]), op.p.plane, op.p.in_zero, op.p.in_scale,
                   op.p.in2_zero, op.p.in2_scale, op.p.out_zero, op.p.qlo, op.p.qhi)
        elif op.p.mode == I8_QUANTIZE:
            i8_quantize(<int8_t*>(base + op.out_off[c]), <const float*>(base + op.in_off[c]), op.p.plane,
                        op.p.in_scale, op.p.out_zero, op.p.qlo, op.p.qhi)
        else:
            i8_dequantize(<float*>(base + op.out_off[c]), <const int8_t*>(base + op.in_off[c]), op.p.plane,
                          op.p.in_zero, op.p.in_scale)


cdef void i8_gemm_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil:
    """job = (image, group, run of per_job pixel tiles, run of m_per_job row
    tiles): each pixel tile packed once, then its row tiles, which store
    their rows requantized (or leave their sums: for i8_tile_store_sums to
    add a residual, or for the float32 stores here)."""
    cdef int64_t j = job % op.p.jobs_per_image
    cdef int64_t m_chunks = (op.p.m_tiles + op.p.m_per_job - 1) // op.p.m_per_job     # (as gemm_jobs)
    cdef int64_t pix_jobs = op.p.jobs_per_image // (op.p.groups * m_chunks)
    cdef int64_t g = j // (pix_jobs * m_chunks), rest = j % (pix_jobs * m_chunks)
    cdef int64_t t0 = rest % m_chunks * op.p.m_per_job, t1 = min(t0 + op.p.m_per_job, op.p.m_tiles)
    cdef int64_t n0 = rest // m_chunks * op.p.per_job, n1 = min(n0 + op.p.per_job, op.p.n_tiles)
    cdef char* base = image_bytes(ctx, job, op.p.jobs_per_image)
    cdef int64_t kp = op.p.K, npix = op.p.out_h * op.p.out_w, n, t, r, o, p0
    cdef uint8_t* panel = <uint8_t*>(ctx.scratch + tid * ctx.scratch_bytes)
    cdef int32_t* acc = <int32_t*>panel + (kp * I8_NR * I8_ELEM_BYTES + 63) // 64 * 16
    cdef const int8_t* res
    cdef i8_tile_store st
    # the job's first row tile's weights, biases and channel; tile t's are
    # t steps on (locals: the stores through char pointers would make the C
    # reload op's fields after every tile)
    cdef int64_t w_step = I8_MR * kp * I8_ELEM_BYTES, o0 = g * op.p.cout_g + t0 * I8_MR, o_end = (g + 1) * op.p.cout_g
    cdef const int8_t* w0 = op.qw + (g * op.p.m_tiles + t0) * w_step
    cdef const int32_t* b0 = op.qb + (g * op.p.m_tiles + t0) * I8_MR
    cdef const float* mult = op.mult
    cdef const int64_t* out_off = op.out_off
    cdef bint fused = not op.p.out_f32 and op.res_off == NULL     # (the tile stores its rows itself)
    st.zero, st.qlo, st.qhi, st.base, st.res_off = op.p.out_zero, op.p.qlo, op.p.qhi, base, NULL
    st.res_zero, st.res_mult = op.p.in2_zero, op.p.in2_scale
    for n in range(n0, n1):
        p0 = n * I8_NR
        i8_pack_panel(panel, <const int8_t*>base, op.in_off + g * op.p.cin_g, op.p.cin_g, kp, p0)
        st.n, st.p0 = min(I8_NR, npix - p0), p0
        for t in range(t1 - t0):
            o = o0 + t * I8_MR
            st.rows, st.mult, st.off = min(I8_MR, o_end - o), mult + o, out_off + o
            if fused:       # (a call of its own: the C keeps st in registers, not on the stack)
                i8_gemm_tile(w0 + t * w_step, panel, kp, b0 + t * I8_MR, acc, &st)
                continue
            i8_gemm_tile(w0 + t * w_step, panel, kp, b0 + t * I8_MR, acc, NULL)
            if not op.p.out_f32:
                st.res_off = op.res_off + o
                i8_tile_store_sums(acc, &st)
                continue
            for r in range(st.rows):
                res = <const int8_t*>(base + op.res_off[o + r] + p0) if op.res_off != NULL else NULL
                i8_store_f32(<float*>(base + op.out_off[o + r]) + p0, acc + r * I8_NR, st.n, 0, op.mult[o + r],
                             op.p.lo, op.p.hi, res, op.p.in2_zero, op.p.in2_scale)


# -- the microkernels driven alone (tests/test_int8_kernels.py) --------------------

def ukernel_i8_gemm_tile(const int8_t[:, ::1] x, int64_t p0, const int8_t[::1] w, const int32_t[::1] bias,
                         mult=None, int zero=0, int qlo=-128, int qhi=127, res=None, int res_zero=0,
                         float res_mult=0.0, int64_t n=I8_NR):
    """The panel of planes x (K, pixels) from pixel p0, then one tile over it:
    w packed as the planner packs a tile (ops/quant.py: pack_int8_tiles;
    K rounded up to INT8_K_GROUP), bias one per row (INT8_TILE_ROWS).  Returns
    the tile's int32 sums, (INT8_TILE_ROWS, INT8_TILE_PIXELS): bias + w . (x +
    INT8_PANEL_OFFSET).  With mult (float32, one per row: the rows stored),
    the tile's requantizing store instead: its first n pixels of each row as
    int8 (zero, clamped to [qlo, qhi]; res: int8 planes (rows, pixels) whose
    q from p0 are added, zero point res_zero, ratio res_mult), returned as
    (rows, n + 16): the 16 after each row hold 0x5a unless the store ran
    over."""
    cdef int64_t K = x.shape[0], kp = (K + I8_KG - 1) // I8_KG * I8_KG, k
    if (K < 1 or p0 < 0 or x.shape[1] < p0 + I8_NR or w.shape[0] != kp * I8_MR * I8_ELEM_BYTES
            or bias.shape[0] != I8_MR or not 1 <= n <= I8_NR):
        raise ValueError(f'x {x.shape[0]} x {x.shape[1]} from {p0}: {I8_NR} pixels; w {kp * I8_MR * I8_ELEM_BYTES} '
                         f'bytes, bias {I8_MR}, n 1..{I8_NR}')
    off = np.arange(K, dtype=np.int64) * x.shape[1]
    cdef const int64_t[::1] offs = off
    panel = np.zeros(kp * I8_NR * I8_ELEM_BYTES + 64, np.uint8)
    cdef uint8_t[::1] pv = panel
    acc = np.zeros((I8_MR, I8_NR), np.int32)
    cdef int32_t[:, ::1] av = acc
    i8_pack_panel(&pv[0], &x[0, 0], &offs[0], K, kp, p0)
    if mult is None:
        i8_gemm_tile(&w[0], &pv[0], kp, &bias[0], &av[0, 0], NULL)
        return acc
    # outputs and residual planes in one buffer (the store's offsets are from one base)
    mult = np.ascontiguousarray(mult, np.float32)
    cdef int64_t rows = mult.shape[0], width = I8_NR + 16
    if not 1 <= rows <= I8_MR or (res is not None and (res.shape[0] < rows or res.shape[1] < p0 + n)):
        raise ValueError(f'mult: 1..{I8_MR} rows; res: as many planes, {p0 + n} pixels')
    buf = np.full(rows * width + (0 if res is None else rows * res.shape[1]), 0x5a, np.int8)
    if res is not None:
        buf[rows * width:] = np.asarray(res, np.int8)[:rows].ravel()
    out_offs = np.arange(rows, dtype=np.int64) * width - p0
    res_offs = rows * width + np.arange(rows, dtype=np.int64) * (0 if res is None else res.shape[1])
    cdef int8_t[::1] bv = buf
    cdef const int64_t[::1] oo = out_offs
    cdef const int64_t[::1] ro = res_offs
    cdef const float[::1] mv = mult
    cdef i8_tile_store st
    st.base, st.off, st.res_off = <char*>&bv[0], &oo[0], &ro[0] if res is not None else NULL
    st.p0, st.rows, st.n, st.mult = p0, rows, n, &mv[0]
    st.zero, st.qlo, st.qhi, st.res_zero, st.res_mult = zero, qlo, qhi, res_zero, res_mult
    if res is None:
        i8_gemm_tile(&w[0], &pv[0], kp, &bias[0], &av[0, 0], &st)
    else:           # (as the 1x1's job: the tile's sums, then their store)
        i8_gemm_tile(&w[0], &pv[0], kp, &bias[0], &av[0, 0], NULL)
        i8_tile_store_sums(&av[0, 0], &st)
    return buf[:rows * width].reshape(rows, width).copy()


def ukernel_i8_window_sums(const int8_t[:, ::1] x, w, int zero, int64_t out_h, int64_t out_w, kernel, stride,
                           padding, dilation):
    """One plane's window sums (w: int8 kh x kw weights; None: maxima), as
    i8_window_sums computes them for a single-plane window op."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    cdef int64_t need = i8_window_scratch(out_h, out_w, kh, kw, sh, sw, dh, dw)
    scratch = np.zeros(need + 16, np.int32)
    cdef int32_t[::1] sv = scratch
    cdef const int8_t[::1] wv
    cdef const int8_t* wp = NULL
    if w is not None:
        w = np.ascontiguousarray(w, np.int8).ravel()
        if w.shape[0] != kh * kw:
            raise ValueError(f'w: {kh * kw} weights')
        wv = w
        wp = &wv[0]
    plane = np.zeros(x.shape[0] * x.shape[1] + 64, np.int8)     # (the kernels read a little past a plane)
    plane[:x.shape[0] * x.shape[1]] = np.asarray(x).ravel()
    cdef const int8_t[::1] xv = plane
    cdef int64_t zero_off = 0
    i8_window_sums(&sv[0], &xv[0], &zero_off, 1, wp, zero, x.shape[0], x.shape[1], out_h, out_w, kh, kw, sh, sw,
                   ph, pw, dh, dw)
    return scratch[:out_h * out_w].reshape(out_h, out_w).copy()


def ukernel_i8_window_plane(const int8_t[:, ::1] x, w, int in_zero, int bias, float mult, int zero, int qlo,
                            int qhi, int64_t out_h, int64_t out_w, kernel, stride, padding, dilation, before=None):
    """One output plane stored as int8 by i8_window_planes: of a depthwise
    convolution (w: int8 kh x kw weights), or of max pooling (w None:
    in_zero, bias, mult and zero unused); into a buffer of out_h x out_w
    bytes and 16 more holding 0x5a, returned whole (the kernel must leave
    those 16 alone).  before: a plane of x's shape for the run's first
    channel (same weights), x's the second: it then finds its padding in
    the scratch, as a job's later channels do."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    planes = [np.asarray(x)] if before is None else [np.asarray(before, np.int8).reshape(x.shape[0], x.shape[1]),
                                                     np.asarray(x)]
    cdef int64_t n = len(planes), size = x.shape[0] * x.shape[1], out_size = out_h * out_w + 16
    if w is not None:
        w = np.ascontiguousarray(w, np.int8).ravel()
        if w.shape[0] != kh * kw:
            raise ValueError(f'w: {kh * kw} weights')
    scratch = np.zeros(i8_window_scratch(out_h, out_w, kh, kw, sh, sw, dh, dw) + 16, np.int32)
    cdef int32_t[::1] sv = scratch
    # the run's outputs (0x5a after each), then its input planes (64 bytes of slack each: the kernels read a
    # little past a plane), at offsets from one base
    buf = np.full(n * out_size + n * (size + 64), 0x5a, np.int8)
    for i, p in enumerate(planes):
        buf[n * out_size + i * (size + 64):][:size + 64] = 0
        buf[n * out_size + i * (size + 64):][:size] = p.ravel()
    out_off = np.arange(n, dtype=np.int64) * out_size
    in_off = n * out_size + np.arange(n, dtype=np.int64) * (size + 64)
    ws = np.tile(w, n) if w is not None else np.zeros(1, np.int8)
    bs, ms = np.full(n, bias, np.int32), np.full(n, mult, np.float32)
    cdef int8_t[::1] bv = buf
    cdef const int64_t[::1] oo = out_off
    cdef const int64_t[::1] io = in_off
    cdef const int8_t[::1] wv = ws
    cdef const int32_t[::1] bsv = bs
    cdef const float[::1] msv = ms
    i8_window_planes(<char*>&bv[0], &oo[0], &io[0], 0, n, 1, &wv[0] if w is not None else NULL, &bsv[0], &msv[0],
                     in_zero, zero, qlo, qhi, &sv[0], x.shape[0], x.shape[1], out_h, out_w, kh, kw, sh, sw, ph, pw, dh,
                     dw)
    return buf[(n - 1) * out_size:n * out_size].copy()
