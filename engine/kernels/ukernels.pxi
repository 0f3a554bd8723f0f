# The microkernels of ukernels.h driven alone on NumPy buffers: thin wrappers
# for tests/test_ukernels.py (each kernel against a NumPy formula over
# awkward shapes, on every ISA module) and for tools/bench_kernels.py
# (`repeat` runs the kernel that many times, for timing).  Each checks that
# the buffers are long enough for everything the kernel reads and writes.
# The window and element-wise kernels take whole records instead
# (descriptors.py through Program: tests/test_ukernels.py builds them by hand).
# Buffers of elements are 1-D arrays of the module's ELEMENT type (float32, or
# float16 in the fp16 modules).


def _need(name, buffer, int64_t floats):
    if buffer.shape[0] < floats:
        raise ValueError(f'{name} has {buffer.shape[0]} elements, the kernel reaches {floats}')


cdef ef* _element_data(str name, buffer, int64_t need, bint writes=False) except? NULL:
    """A buffer's data as elements (None: NULL), once it is checked to be a
    contiguous 1-D array of ELEMENT at least `need` long (and writable if
    the kernel `writes` it)."""
    if buffer is None:
        return NULL
    if not isinstance(buffer, np.ndarray) or buffer.dtype != ELEMENT or buffer.ndim != 1 \
            or not buffer.flags.c_contiguous:
        raise TypeError(f'{name}: a contiguous 1-D {ELEMENT} array, got '
                        f'{getattr(buffer, "dtype", type(buffer).__name__)} {getattr(buffer, "shape", "")}')
    if writes and not buffer.flags.writeable:
        raise ValueError(f'{name} is read-only')
    _need(name, buffer, need)
    return <ef*><uintptr_t>buffer.ctypes.data


def _runs(name, offsets, given):
    """The runs a tile steps along {name}_off: plane_runs unless given, then
    checked (int64, contiguous)."""
    offsets = np.asarray(offsets)
    runs = plane_runs(offsets[None]) if given is None else np.ascontiguousarray(given, np.int64)
    _need(f'{name}_run', runs, len(offsets))
    for i in range(len(offsets)):
        span = offsets[i:i + min(runs[i], len(offsets) - i)]
        if runs[i] < 1 or len(np.unique(np.diff(span))) > 1:
            raise ValueError(f'{name}_run[{i}] = {runs[i]}: {name}_off[{i}:] is not equally spaced that far')
    return runs


def ukernel_gemm_tile(int64_t rows, int64_t nvalid, a, bias, src, const int64_t[::1] b_off, int64_t nb0, dst,
                      const int64_t[::1] c_off, r_off, int64_t nc0, int mr, float lo, float hi,
                      int64_t repeat=1, b_run=None, int64_t tiles=1, int64_t pixel_tiles=1, slope=None):
    """The GEMM tile f32_gemm_tile_for(rows, nvalid), called for `tiles` row
    tiles of `rows` rows: K = len(b_off) rows of `a` packed per tile [K][rows];
    row r of the output (r < mr, the tiles' rows in turn) at dst[c_off[r] +
    nc0:] gets nvalid pixels of clamp(bias[r] + sum_k a[k, r] * src[b_off[k] +
    nb0:] (+ dst[r_off[r] + nc0:] when r_off is an offset table)); pixel_tiles
    > 1: as many whole tiles one after another (nvalid GEMM_NR, or for narrow
    rows GEMM_WIDE_PIXELS).  b_run:
    the runs of b_off the tile steps along (plane_runs(b_off) unless given; checked);
    slope: leaky ReLU after the clamp, row r's slope[r] (mr of them)."""
    cdef int64_t K = b_off.shape[0], i, reach = 3 * VLEN + GEMM_EXTRA_MAX + 1
    if rows not in TILE_ROWS or tiles < 1 or not (tiles - 1) * rows < mr <= tiles * rows or nvalid < 1 or K < 1:
        raise ValueError(f'rows {rows} (one of {list(TILE_ROWS)}), tiles {tiles}, mr {mr}, nvalid {nvalid}, K {K}')
    if nvalid > GEMM_NR + GEMM_EXTRA_MAX and not (rows == GEMM_MR_NARROW and nvalid in (GEMM_WIDE_PIXELS,
                                                                                       GEMM_TAIL_PIXELS)):
        raise ValueError(f'no tile for {nvalid} pixels of {rows} rows')
    if pixel_tiles < 1 or (pixel_tiles > 1 and nvalid != GEMM_NR
                           and not (rows == GEMM_MR_NARROW and nvalid == GEMM_WIDE_PIXELS)):
        raise ValueError(f'pixel_tiles {pixel_tiles} of {nvalid} pixels (more than one: whole tiles)')
    reach += (pixel_tiles - 1) * nvalid
    runs = _runs('b', b_off, b_run)
    _need('c_off', c_off, mr)
    cdef int64_t dst_reach = max(c_off[:mr]) + nc0 + reach
    cdef const int64_t[::1] r = None
    cdef const int64_t[::1] run = runs
    if r_off is not None:
        r = r_off
        _need('r_off', r, mr)
        dst_reach = max(dst_reach, max(r[:mr]) + nc0 + reach)
    cdef f32_gemm_tile_fn tile = f32_gemm_tile_for(rows, nvalid)
    cdef f32_gemm_args t
    t.K, t.a_step, t.bias_step, t.rows, t.nvalid, t.pixel_tiles = K, K * rows, rows, mr, nvalid, pixel_tiles
    t.a, t.bias = _element_data('a', a, tiles * K * rows + VLEN), _element_data('bias', bias, tiles * rows + VLEN)
    t.src, t.b_off, t.b_run = _element_data('src', src, max(b_off) + nb0 + reach) + nb0, &b_off[0], &run[0]
    t.dst, t.c_off, t.r_off = _element_data('dst', dst, dst_reach, True) + nc0, &c_off[0], &r[0] if r is not None else NULL
    t.slope = _element_data('slope', slope, mr)
    t.lo, t.hi = lo, hi
    with nogil:
        for i in range(repeat):
            tile(&t, tiles)


def ukernel_linear_tile(w, bias, src, const int64_t[::1] x_off, float lo, float hi, int64_t repeat=1,
                        x_run=None):
    """The fully connected tile: y[o] = clamp(bias[o] + sum_k w[k, o] * src[x_off[k]])
    for LINEAR_OUTPUTS outputs, w packed [K][LINEAR_OUTPUTS]; x_run: the runs
    of x_off the tile steps along (plane_runs(x_off) unless given; checked)."""
    cdef int64_t K = x_off.shape[0], i
    cdef const ef* wp = _element_data('w', w, K * LINEAR_NO + LINEAR_NO * 33)   # the tile prefetches rows ahead
    cdef const ef* bp = _element_data('bias', bias, LINEAR_NO)
    cdef const ef* xp = _element_data('src', src, max(x_off) + 1 if K else 0)
    if K and min(x_off) < 0:
        raise ValueError('x_off points outside src')
    cdef const int64_t[::1] run = _runs('x', x_off, x_run)
    y = np.empty(LINEAR_NO, ELEMENT)
    cdef ef* out = _element_data('y', y, LINEAR_NO, True)
    with nogil:
        for i in range(repeat):
            f32_linear_tile(K, wp, bp, xp, &x_off[0] if K else NULL, &run[0] if K else NULL, out, lo, hi)
    return y


def ukernel_activation(x, int act, float param=0):
    """f32_activation in place on x (one channel's values)."""
    if not 0 <= act < ACT_END:
        raise ValueError(f'act {act} is not a code of abi.h')
    cdef ef* p = _element_data('x', x, 0, True)
    cdef int64_t n = x.shape[0]
    with nogil:
        f32_activation(p, n, act, param)


def ukernel_copy_strided(dst, src, int64_t n, int64_t s):
    """dst[i] = src[i * s] for i < n (vector stores: dst needs VLEN floats of room)."""
    cdef ef* d = _element_data('dst', dst, n + VLEN, True)
    cdef const ef* x = _element_data('src', src, (n - 1) * s + 1 + 2 * VLEN if n else 0)
    if n:
        with nogil:
            f32_copy_strided(d, x, n, s)


def ukernel_frame_row(dst, row, int64_t in_w, int64_t pl, int64_t fw, int64_t s):
    """One input row framed for the direct convolution: pl zeros, the row
    (None: a padding row of zeros), zeros to fw columns; stride 2 even
    columns first, then odd ones from dst[(fw + 1) // 2]."""
    if s not in (1, 2) or pl < 0 or fw < 1:
        raise ValueError(f'stride {s}, pl {pl}, fw {fw}')
    cdef ef* d = _element_data('dst', dst, fw + VLEN, True)
    cdef const ef* r = _element_data('row', row, in_w + 2 * VLEN)
    with nogil:
        f32_frame_row(d, r, in_w, pl, fw, s)


def ukernel_direct_panel(panel, int64_t stride, frame, tap, int64_t p0, int64_t p1, int64_t out_w,
                         int64_t oh0, int64_t row_step):
    """A direct convolution's panel: panel[k * stride + p - p0] = frame[tap[k]
    + (p // out_w - oh0) * row_step + p % out_w] for p0 <= p < p1 (vector
    copies: panel needs VLEN floats of room past its K rows, frame past its
    last row)."""
    cdef const int64_t[::1] taps = np.ascontiguousarray(tap, np.int64)
    cdef int64_t K = taps.shape[0]
    if not (0 <= oh0 * out_w <= p0 <= p1 and out_w > 0 and p1 - p0 <= stride):
        raise ValueError(f'pixels {p0}..{p1} from row {oh0} of {out_w}, stride {stride}')
    if K and min(tap) < 0:
        raise ValueError('tap points outside frame')
    last = max(tap) + ((p1 - 1) // out_w - oh0) * row_step + out_w if K and p1 > p0 else 0
    cdef ef* d = _element_data('panel', panel, K * stride + VLEN, True)
    cdef const ef* f = _element_data('frame', frame, last + VLEN)
    if K:
        with nogil:
            f32_direct_panel(d, stride, f, &taps[0], K, p0, p1, out_w, oh0, row_step)


def ukernel_phase_planes(src, int64_t in_h, int64_t in_w, dst, int64_t ps, int64_t rows, int64_t cols):
    """The four phase planes (even/odd rows x even/odd columns, ps floats
    apart, rows x cols each) of an in_h x in_w plane."""
    cdef const ef* x = _element_data('src', src, in_h * in_w + 2 * cols + 2 * VLEN + 1)
    cdef ef* d = _element_data('dst', dst, 3 * ps + rows * cols + VLEN, True)
    if ps < rows * cols:
        raise ValueError('phase planes overlap')
    with nogil:
        f32_phase_planes(x, in_h, in_w, d, ps, rows, cols)


def _wino_m(int m):
    if m not in (2, 4):
        raise ValueError(f'Winograd tiles are 2 or 4 pixels wide, not {m}')


def ukernel_wino_frame_band(plane, int64_t ph, int64_t pw, int64_t ty0, int64_t ty1, int64_t tx, int m):
    """(frame, fs): one channel's input rows of tile rows ty0 .. ty1 - 1 (a
    2-D plane, ph and pw padding rows and columns, 0 or 1; tx tiles across)
    as ukernel_wino_input_tiles reads them (f32_wino_frame_band: the layout
    is the ISA's)."""
    _wino_m(m)
    cdef int64_t in_h = np.shape(plane)[0], in_w = np.shape(plane)[1]
    if not (0 <= ph <= 1 and 0 <= pw <= 1 and 0 <= ty0 < ty1 and tx >= 1):
        raise ValueError(f'ph {ph}, pw {pw}, tile rows {ty0} .. {ty1}, tx {tx}')
    if pw + in_w > tx * m + 2:
        raise ValueError(f'{tx} tiles of {m} do not hold {pw} + {in_w} columns')
    cdef int64_t fs = f32_wino_frame_stride(ty1 - ty0, tx, m), n = f32_wino_frame_floats(ty1 - ty0, tx, m)
    frame, pad = np.zeros(n, ELEMENT), np.zeros(m * (tx + 2 * VLEN), ELEMENT)
    cdef ef* f = _element_data('frame', frame, n, True)
    cdef ef* p = _element_data('pad', pad, m * (tx + 2 * VLEN), True)
    flat = np.ascontiguousarray(plane).reshape(-1)
    cdef const ef* x = _element_data('plane', flat, in_h * in_w)
    with nogil:
        f32_wino_frame_band(f, fs, p, x, in_h, in_w, ph, pw, ty0, ty1, tx, m)
    return frame, fs


def ukernel_wino_input_tiles(frame, int64_t fs, int64_t tx, int64_t tiles, v, int64_t xi_step, int m):
    """B^T d B of `tiles` tiles (whole tile rows of tx) of the frame that
    ukernel_wino_frame_band made (its fs): element xi of tile g at
    v[xi * xi_step + g], up to VLEN - 1 floats written past the tiles."""
    _wino_m(m)
    cdef int64_t a = m + 2, span = tiles + VLEN - 1
    if tiles < 1 or tx < 1 or tiles % tx or xi_step < span:
        raise ValueError(f'tiles {tiles}, tx {tx}, xi_step {xi_step}')
    if fs != f32_wino_frame_stride(tiles // tx, tx, m):
        raise ValueError(f'fs {fs} is not the frame\'s ({f32_wino_frame_stride(tiles // tx, tx, m)})')
    cdef const ef* f = _element_data('frame', frame, f32_wino_frame_floats(tiles // tx, tx, m))
    cdef ef* vp = _element_data('v', v, (a * a - 1) * xi_step + span, True)
    with nogil:
        f32_wino_input_tiles(f, fs, tx, tiles, vp, xi_step, m)


def ukernel_wino_output_tiles(mrow, int64_t xi_step, int64_t tiles, float bias, out, int64_t out_step, int m):
    """bias + A^T M A of `tiles` tiles: element xi of tile g at mrow[xi *
    xi_step + g]; pixel (i, j) to out[i * out_step + g * m + j]."""
    _wino_m(m)
    cdef int64_t a = m + 2, span = (tiles + VLEN - 1) // VLEN * VLEN
    if tiles < 1 or xi_step < span or out_step < span * m:
        raise ValueError(f'tiles {tiles}, xi_step {xi_step}, out_step {out_step}')
    cdef const ef* mp = _element_data('mrow', mrow, (a * a - 1) * xi_step + span)
    cdef ef* o = _element_data('out', out, (m - 1) * out_step + span * m, True)
    with nogil:
        f32_wino_output_tiles(mp, xi_step, tiles, bias, o, out_step, m)


def ukernel_wino_store_rows(dst, int64_t dst_step, src, int64_t src_step, res, int64_t rows, int64_t spill,
                            int64_t n, float lo, float hi):
    """dst[r * dst_step + x] = clamp(src[r * src_step + x] (+ res[r *
    dst_step + x]), lo, hi) for x < n, r < rows; rows r < spill may write up
    to 2 VLEN - 1 floats past n (into the rows after them, which must hold
    that many: dst_step = n).  src and res are read in whole vectors (n
    rounded up to VLEN floats: the output buffer's rows, and residual planes
    in the arena's slack)."""
    cdef int64_t span = (n + VLEN - 1) // VLEN * VLEN
    if rows < 1 or dst_step < n or src_step < span:
        raise ValueError(f'rows {rows}, n {n}, dst_step {dst_step}, src_step {src_step}')
    if spill > 0 and (dst_step != n or (rows - min(spill, rows)) * n < 2 * VLEN - 1):
        raise ValueError(f'{spill} rows spill past {rows} rows of {n}')
    if spill > 0 and src_step < (n + 2 * VLEN - 1) // (2 * VLEN) * 2 * VLEN:
        raise ValueError(f'src_step {src_step}: rows that spill read src in pairs of vectors')
    cdef ef* d = _element_data('dst', dst, (rows - 1) * dst_step + n, True)
    cdef const ef* x = _element_data('src', src, (rows - 1) * src_step + span)
    cdef const ef* r = _element_data('res', res, (rows - 1) * dst_step + span)
    if n:
        with nogil:
            f32_wino_store_rows(d, dst_step, x, src_step, r, rows, spill, n, lo, hi)
