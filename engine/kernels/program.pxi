"""The executor: a compiled program is a C array of Op records, run in one
nogil loop (threads == 1) or as one task of the engine's thread pool
(pool.h), whose threads take each op's jobs in equal contiguous shares (and
then any another thread has not started) and meet at a barrier before the
next op.  Also the copies in and out of the arena, and build facts."""
from libc.stdint cimport int8_t, int32_t, int64_t, uintptr_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy
from dataclasses import fields
import numpy as np

from engine.kernels.abi cimport (OP_GEMM, OP_CONV_IM2COL, OP_WINDOW, OP_GLOBAL_AVGPOOL, OP_LINEAR,
                                 OP_ELTWISE, OP_CONV_DIRECT, OP_EXPAND_DW, OP_RESIZE,
                                 OP_CONV_WINOGRAD, OP_I8_CONV, OP_I8_GEMM, OP_I8_WINDOW, OP_I8_ELTWISE,
                                 OP_KIND_END)
from engine.kernels.abi import DTYPE_OF, DTYPE_SIZE, DType
from engine.kernels.common cimport (Op, ef, OpParams, Ctx, job_fn, ENGINE_SIMD_ISA, VLEN,
                                    GEMM_MR, GEMM_NR, ENGINE_PLANE_ALIGN)
from engine.kernels.descriptors import ARRAY_DTYPES, Floats, Planes

cdef extern from "pool.h" nogil:
    enum: ENGINE_MAX_THREADS
    enum: ENGINE_SPIN_NS
    enum: ENGINE_PIN_WORKERS
    ctypedef struct engine_share:
        long long end
    ctypedef void (*engine_task_fn)(void* arg, int tid, int team) noexcept nogil
    ctypedef void (*engine_init_fn)(void* arg, int team) noexcept nogil
    ctypedef void (*engine_last_fn)(void* arg) noexcept nogil
    void engine_share_set(engine_share* s, long long begin, long long end)
    long long engine_claim(engine_share* s)
    int engine_pool_run(engine_task_fn fn, engine_init_fn init, void* arg, int team)
    void engine_pool_barrier(int team, engine_last_fn last, void* arg)

cdef extern from "ukernels.h" nogil:
    void ef_from_f32(ef* dst, const float* src, int64_t n)

cdef extern from *:
    """
    #ifndef ENGINE_CFLAGS
    #define ENGINE_CFLAGS ""
    #endif
    """
    const char* ENGINE_CFLAGS

PLANE_ALIGN = ENGINE_PLANE_ALIGN
ISA = ENGINE_SIMD_ISA.decode()      # this module's instruction set (variants.py)
ELEMENT_BYTES = sizeof(ef)          # and its element type (simd.h), by its graph name
ELEMENT = {4: 'float32', 2: 'float16'}[ELEMENT_BYTES]

# the job of each kind (index: OpKind)
cdef job_fn JOBS[<int>OP_KIND_END]
JOBS[<int>OP_GEMM] = gemm_job
JOBS[<int>OP_CONV_IM2COL] = conv_im2col_job
JOBS[<int>OP_WINDOW] = window_job
JOBS[<int>OP_GLOBAL_AVGPOOL] = global_avgpool_job
JOBS[<int>OP_LINEAR] = linear_job
JOBS[<int>OP_ELTWISE] = eltwise_job
JOBS[<int>OP_CONV_DIRECT] = conv_direct_job
JOBS[<int>OP_EXPAND_DW] = expand_dw_job
JOBS[<int>OP_RESIZE] = resize_job
JOBS[<int>OP_CONV_WINOGRAD] = conv_winograd_job
JOBS[<int>OP_I8_CONV] = i8_conv_job
JOBS[<int>OP_I8_GEMM] = i8_gemm_job
JOBS[<int>OP_I8_WINDOW] = i8_window_job
JOBS[<int>OP_I8_ELTWISE] = i8_eltwise_job
INT8_KINDS = frozenset([OP_I8_CONV, OP_I8_GEMM, OP_I8_WINDOW, OP_I8_ELTWISE])    # their records' dtype: int8


def build_info():
    """What this build compiled in: SIMD path, vector and tile sizes, flags."""
    return {
        'isa': ENGINE_SIMD_ISA.decode(),
        'vector_floats': VLEN,
        'gemm_tiles': [(rows, GEMM_NR) for rows in TILE_ROWS],
        'int8_tile': (INT8_TILE_ROWS, INT8_TILE_PIXELS),     # (kernels/int8.pxi)
        'threads': f'engine pool (pthreads), up to {ENGINE_MAX_THREADS}, waits spin '
                   f'{ENGINE_SPIN_NS // 1000} us then sleep'
                   + (', each worker on a CPU of its own' if ENGINE_PIN_WORKERS else ''),
        'cflags': ENGINE_CFLAGS.decode(),
    }


cdef void run_serial(const Op* ops, int64_t start, int64_t stop, const Ctx* ctx,
                     int64_t n_images) noexcept nogil:
    cdef int64_t i, j
    for i in range(start, stop):
        for j in range(ops[i].p.jobs_per_image * n_images):
            JOBS[ops[i].p.kind](&ops[i], ctx, j, 0)


cdef struct Steps:
    const Op* ops
    int64_t op               # the op the threads run now
    int64_t stop
    const Ctx* ctx
    int64_t n_images
    int team
    engine_share share[ENGINE_MAX_THREADS]


cdef void share_jobs(Steps* s) noexcept nogil:
    """Each thread's contiguous share of the jobs of op s.op: the split
    the planner's job layout assumes (a thread's channels are the ones its
    core wrote in the op before)."""
    cdef int64_t njobs = s.ops[s.op].p.jobs_per_image * s.n_images
    cdef int t
    for t in range(s.team):
        engine_share_set(&s.share[t], njobs * t // s.team, njobs * (t + 1) // s.team)


cdef void start_steps(void* arg, int team) noexcept nogil:
    cdef Steps* s = <Steps*>arg
    s.team = team
    share_jobs(s)


cdef void next_step(void* arg) noexcept nogil:
    cdef Steps* s = <Steps*>arg
    s.op += 1
    share_jobs(s)


cdef void run_steps(void* arg, int tid, int team) noexcept nogil:
    """One thread's part of ops [s.op, s.stop): its share of each op's jobs,
    then what other threads have not started, then the barrier."""
    cdef Steps* s = <Steps*>arg
    cdef int64_t i, stop = s.stop, j
    cdef const Op* op
    cdef int k, u
    for i in range(s.op, stop):
        op = &s.ops[i]
        for k in range(team):
            u = (tid + k) % team
            j = engine_claim(&s.share[u])
            while j < s.share[u].end:
                JOBS[op.p.kind](op, s.ctx, j, tid)
                j = engine_claim(&s.share[u])
        if i + 1 < stop:
            engine_pool_barrier(team, next_step, arg)     # the next op reads what this one wrote


cdef int run_parallel(const Op* ops, int64_t start, int64_t stop, const Ctx* ctx,
                      int64_t n_images) noexcept nogil:
    """The threads it ran with (fewer than asked when the pool is busy)."""
    cdef Steps steps
    steps.ops = ops
    steps.op = start
    steps.stop = stop
    steps.ctx = ctx
    steps.n_images = n_images
    if start >= stop:
        return 1
    return engine_pool_run(run_steps, start_steps, &steps, ctx.nthreads)


cdef OpParams _no_params
_PARAM_FIELDS = frozenset(_no_params)      # the names of OpParams' fields (struct -> dict)


cdef class Program:
    """A compiled model: ops with their offset tables and packed weights.
    Immutable once built, so one Program may run in many threads at once,
    each with its own arena and scratch."""
    cdef Op* ops
    cdef readonly int64_t n_ops
    cdef readonly int64_t image_bytes       # arena bytes per image
    cdef readonly int64_t scratch_bytes     # scratch bytes per thread
    cdef readonly int64_t nbytes     # memory it holds: op records, tables, packed weights
    cdef list _keep

    def __cinit__(self, list steps, int64_t image_bytes, int64_t scratch_bytes):
        """steps: the records of descriptors.py, in order."""
        if image_bytes % 64 or scratch_bytes % 64:
            raise ValueError('image and scratch strides must be whole 64-byte lines')
        self.n_ops = len(steps)
        self.image_bytes = image_bytes
        self.scratch_bytes = scratch_bytes
        self._keep = []
        # the ops the program runs, then the ones fused into them (a record's `then`)
        chained = [getattr(step, 'then', None) for step in steps]
        self.ops = <Op*>calloc(max(1, self.n_ops + sum(t is not None for t in chained)), sizeof(Op))
        if self.ops == NULL:
            raise MemoryError()
        cdef int64_t next_chained = self.n_ops
        for i, step in enumerate(steps):
            self._fill(&self.ops[i], step)
            if chained[i] is not None:
                self._fill(&self.ops[next_chained], chained[i])
                self.ops[i].then = &self.ops[next_chained]
                next_chained += 1
        self.nbytes = next_chained * sizeof(Op) + sum(a.nbytes for a in self._keep)

    def __dealloc__(self):
        free(self.ops)

    cdef const void* _array(self, arrays, name) except? NULL:
        """The record's array `name` as a C array kept alive by the program, or NULL."""
        value, dtype = arrays.pop(name, (None, None))
        if value is None:
            return NULL
        array = np.ascontiguousarray(value, dtype=dtype).ravel()
        if array.shape[0] == 0:
            return NULL
        cdef const unsigned char[::1] raw = array.view(np.uint8)
        self._keep.append(array)
        return &raw[0]

    cdef int _fill(self, Op* op, step) except -1:
        """Op from a record: numbers into OpParams by name (the others 0),
        arrays into the tables, plane offsets from bytes to elements of the
        record's dtype; a name the Op has not is a TypeError."""
        if type(step).KIND in INT8_KINDS:       # (their float32 sides and multipliers: float32 only)
            if step.dtype != DType.DTYPE_I8 or ELEMENT != 'float32':
                raise TypeError(f'{type(step).__name__}: int8 kinds run on int8 records in float32 '
                                f'modules; this is {step.dtype.name} in {ISA} ({ELEMENT})')
        elif step.dtype != DTYPE_OF[ELEMENT]:
            raise TypeError(f'{type(step).__name__}: {step.dtype.name} tensors, but this module '
                            f'({ISA}) computes on {ELEMENT}')
        params = dict.fromkeys(_PARAM_FIELDS, 0)
        params['kind'] = type(step).KIND
        arrays = {}
        for f in fields(step):
            value = getattr(step, f.name)
            if f.type is Planes and value is not None:
                arrays[f.name] = (_elements(value, DTYPE_SIZE[step.dtype], f'{type(step).__name__}.{f.name}'),
                                  np.int64)
            elif f.type in ARRAY_DTYPES:     # weights and the like as the module's elements
                arrays[f.name] = (value, ELEMENT if f.type is Floats else ARRAY_DTYPES[f.type])
            elif f.name in _PARAM_FIELDS:
                params[f.name] = value
            elif f.name not in ('then', 'dtype'):
                raise TypeError(f'{type(step).__name__}.{f.name}: the Op record has no such field')
        need = _scratch_bytes(step)     # (the planner sizes scratch so; a hand-made record may not)
        if need > self.scratch_bytes:
            raise ValueError(f'{type(step).__name__}: it needs {need} bytes of scratch per thread, '
                             f'the program has {self.scratch_bytes}')
        op.p = params
        op.in_off = <const int64_t*>self._array(arrays, 'in_off')
        op.in2_off = <const int64_t*>self._array(arrays, 'in2_off')
        op.out_off = <const int64_t*>self._array(arrays, 'out_off')
        op.res_off = <const int64_t*>self._array(arrays, 'res_off')
        op.part_off = <const int64_t*>self._array(arrays, 'part_off')
        op.k_runs = <const int64_t*>self._array(arrays, 'k_runs')
        op.tap_off = <const int64_t*>self._array(arrays, 'tap_off')
        op.lanes = <const int*>self._array(arrays, 'lanes')
        op.w = <const ef*>self._array(arrays, 'w')
        op.b = <const ef*>self._array(arrays, 'b')
        op.aux = <const ef*>self._array(arrays, 'aux')
        op.act_w = <const ef*>self._array(arrays, 'act_w')
        op.qw = <const int8_t*>self._array(arrays, 'qw')
        op.qb = <const int32_t*>self._array(arrays, 'qb')
        op.mult = <const float*>self._array(arrays, 'mult')
        if arrays:
            raise TypeError(f'{type(step).__name__}: the Op record has no tables {sorted(arrays)}')
        return 0

    def run(self, unsigned char[::1] arena, int64_t n_images, unsigned char[::1] scratch,
            int nthreads, int64_t start=0, int64_t stop=-1):
        """Run ops [start, stop) on n_images images laid out in arena (bytes,
        image_bytes per image); the number of threads that ran them (1 when
        the pool was busy with another caller's run)."""
        if stop < 0:
            stop = self.n_ops
        if not (0 <= start <= stop <= self.n_ops):
            raise IndexError(f'op range [{start}, {stop}) outside 0..{self.n_ops}')
        if n_images < 1 or arena.shape[0] < n_images * self.image_bytes:
            raise ValueError(f'arena of {arena.shape[0]} bytes is too small for '
                             f'{n_images} images of {self.image_bytes}')
        if (<uintptr_t>&arena[0]) % 64 or (<uintptr_t>&scratch[0]) % 64:
            raise ValueError('arena or scratch is not 64-byte aligned')
        if scratch.shape[0] < max(1, nthreads) * self.scratch_bytes or scratch.shape[0] == 0:
            raise ValueError('scratch is too small for the thread count')
        cdef Ctx ctx
        ctx.arena = <char*>&arena[0]
        ctx.image_bytes = self.image_bytes
        ctx.scratch = <char*>&scratch[0]
        ctx.scratch_bytes = self.scratch_bytes
        ctx.nthreads = max(1, nthreads)
        cdef int team = 1
        with nogil:
            if ctx.nthreads <= 1:
                run_serial(self.ops, start, stop, &ctx, n_images)
            else:
                team = run_parallel(self.ops, start, stop, &ctx, n_images)
        return team


def _scratch_bytes(step):
    """The scratch per thread a record's jobs use, where the kind's size is
    the record's alone (window ops by their path; the int8 ones: a plane
    of int32 sums); 0 for the others (checked by their planner only)."""
    kind = type(step).KIND
    if kind == OP_WINDOW:
        return sizeof(ef) * scratch_floats(step.in_w, step.out_h, step.out_w, step.kh, step.pw, step.sh, step.path)
    if kind == OP_I8_CONV:
        return sizeof(int) * int8_conv_scratch(step)
    if kind == OP_I8_WINDOW:
        return sizeof(int) * int8_window_scratch(step)
    if kind == OP_I8_GEMM:
        return sizeof(int) * int8_gemm_scratch(step.K)
    return 0


def _elements(offsets, int size, what):
    """Byte offsets as offsets in elements of `size` bytes."""
    offsets = np.asarray(offsets, np.int64)
    if (offsets % size).any():
        raise ValueError(f'{what}: plane offsets that are not whole {size}-byte elements')
    return offsets // size


cdef struct Scatter:
    const char* x            # NCHW, any strides (bytes)
    Py_ssize_t shape[4]
    Py_ssize_t strides[4]
    char* arena
    int64_t image_bytes
    const int64_t* offsets   # bytes


cdef void no_init(void* arg, int team) noexcept nogil:
    pass


cdef void scatter_rows(void* arg, int tid, int team) noexcept nogil:
    """Thread tid's share of the rows of every plane."""
    cdef Scatter* s = <Scatter*>arg
    cdef Py_ssize_t H = s.shape[2], W = s.shape[3], n, c, h, w
    cdef Py_ssize_t h0 = H * tid // team, h1 = H * (tid + 1) // team
    cdef ef* plane
    cdef const char* src
    # contiguous rows copied whole (or converted where the arena's elements are not float32)
    cdef bint rows_contiguous = s.strides[3] == sizeof(float) and s.strides[2] == W * sizeof(float)
    for n in range(s.shape[0]):
        for c in range(s.shape[1]):
            plane = <ef*>(s.arena + n * s.image_bytes + s.offsets[c])
            src = s.x + n * s.strides[0] + c * s.strides[1]
            if rows_contiguous:
                if h1 > h0 and sizeof(ef) == sizeof(float):
                    memcpy(plane + h0 * W, src + h0 * s.strides[2], (h1 - h0) * W * sizeof(float))
                elif h1 > h0:
                    ef_from_f32(plane + h0 * W, <const float*>(src + h0 * s.strides[2]), (h1 - h0) * W)
                continue
            for h in range(h0, h1):
                for w in range(W):
                    plane[h * W + w] = <ef>(<const float*>(src + h * s.strides[2] + w * s.strides[3]))[0]


def check_planes(int64_t image_bytes, const int64_t[::1] offsets, int64_t pixels):
    """That each plane of `pixels` elements at offsets (bytes) lies in an
    image of image_bytes: the planner asks once per plan for the planes
    scatter_planes and gather_planes copy on every call."""
    cdef Py_ssize_t c
    for c in range(offsets.shape[0]):
        if offsets[c] < 0 or offsets[c] + pixels * <int64_t>sizeof(ef) > image_bytes or \
                offsets[c] % sizeof(ef):
            raise ValueError(f'plane offset {offsets[c]} outside the image or not a whole element')


cdef int _check_batch(Py_ssize_t arena_bytes, int64_t image_bytes, int64_t n_images) except -1:
    if arena_bytes < n_images * image_bytes:
        raise ValueError('arena too small for the batch')
    return 0


def scatter_planes(const float[:, :, :, :] x, unsigned char[::1] arena, int64_t image_bytes,
                   const int64_t[::1] offsets, int threads=1):
    """Copy NCHW float32 x (any strides) into the arena's planes at offsets
    (bytes; check_planes has checked them), with `threads` threads, each a contiguous share of the rows of
    every plane: the share of the image the first op's jobs give the same
    thread, so that it reads rows its own core wrote."""
    cdef Scatter s
    cdef int i
    if x.shape[1] != offsets.shape[0]:
        raise ValueError('channel count does not match the offsets')
    _check_batch(arena.shape[0], image_bytes, x.shape[0])
    s.x = <const char*>&x[0, 0, 0, 0]
    for i in range(4):
        s.shape[i] = x.shape[i]
        s.strides[i] = x.strides[i]
    s.arena = <char*>&arena[0]
    s.image_bytes = image_bytes
    s.offsets = &offsets[0]
    with nogil:
        if threads <= 1:
            scatter_rows(&s, 0, 1)
        else:
            engine_pool_run(scatter_rows, no_init, &s, threads)


def gather_planes(const unsigned char[::1] arena, int64_t image_bytes, int64_t n_images,
                  const int64_t[::1] offsets, int64_t pixels):
    """The float32 planes at offsets (bytes; check_planes has checked them)
    as a new (n_images, channels, pixels) array."""
    out = np.empty((n_images, offsets.shape[0], pixels), dtype=np.float32)
    cdef float[:, :, ::1] o = out
    cdef Py_ssize_t n, c
    _check_batch(arena.shape[0], image_bytes, n_images)
    cdef Py_ssize_t p
    cdef const ef* plane
    with nogil:     # (a loop, not memcpy: a classifier's output is a thousand planes of one float)
        for n in range(n_images):
            for c in range(offsets.shape[0]):
                plane = <const ef*>(<const char*>&arena[0] + n * image_bytes + offsets[c])
                for p in range(pixels):
                    o[n, c, p] = plane[p]
    return out
