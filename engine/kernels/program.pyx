# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The executor: a compiled program is a C array of Op records, run in one
nogil loop (threads == 1) or in one OpenMP parallel region whose threads take
each op's jobs in equal contiguous shares and meet at a barrier before the
next op (a region per op would cost a fork and join each).  Also the copies
in and out of the arena, and build facts."""
from libc.stdint cimport int64_t, uintptr_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy
from cython.parallel cimport parallel, prange, threadid
import numpy as np

from engine.kernels.common cimport (Op, Ctx, job_fn, ENGINE_SIMD_ISA, VLEN,
                                    GEMM_MR, GEMM_NR, ENGINE_PLANE_ALIGN,
                                    OP_GEMM, OP_CONV_IM2COL, OP_WINDOW,
                                    OP_GLOBAL_AVGPOOL, OP_LINEAR, OP_ELTWISE,
                                    OP_CONV_DIRECT, OP_EXPAND_DW, OP_KIND_END)
from engine.kernels.gemm import TILE_ROWS
from engine.kernels.gemm cimport gemm_job, conv_direct_job, conv_im2col_job, linear_job
from engine.kernels.window cimport window_job, global_avgpool_job
from engine.kernels.eltwise cimport eltwise_job
from engine.kernels.fused cimport expand_dw_job

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int engine_openmp_version(void) { return _OPENMP; }
    static int engine_team_size(void) { return omp_get_num_threads(); }
    static void engine_barrier(void) {
        #pragma omp barrier
    }
    #else
    static int engine_openmp_version(void) { return 0; }
    static int engine_team_size(void) { return 1; }
    static void engine_barrier(void) {}
    #endif
    #ifndef ENGINE_CFLAGS
    #define ENGINE_CFLAGS ""
    #endif
    #ifndef ENGINE_BUILD_ISA
    #define ENGINE_BUILD_ISA "unknown"
    #endif
    """
    int engine_openmp_version()
    int engine_team_size() nogil
    void engine_barrier() nogil
    const char* ENGINE_CFLAGS
    const char* ENGINE_BUILD_ISA

OP_KINDS = {
    'gemm': OP_GEMM, 'conv_im2col': OP_CONV_IM2COL, 'window': OP_WINDOW,
    'global_avgpool': OP_GLOBAL_AVGPOOL, 'linear': OP_LINEAR, 'eltwise': OP_ELTWISE,
    'conv_direct': OP_CONV_DIRECT, 'expand_dw': OP_EXPAND_DW,
}
PLANE_ALIGN = ENGINE_PLANE_ALIGN

cdef job_fn JOBS[OP_KIND_END]
JOBS[OP_GEMM] = gemm_job
JOBS[OP_CONV_IM2COL] = conv_im2col_job
JOBS[OP_WINDOW] = window_job
JOBS[OP_GLOBAL_AVGPOOL] = global_avgpool_job
JOBS[OP_LINEAR] = linear_job
JOBS[OP_ELTWISE] = eltwise_job
JOBS[OP_CONV_DIRECT] = conv_direct_job
JOBS[OP_EXPAND_DW] = expand_dw_job


def build_info():
    """What this build compiled in: SIMD path, vector and tile sizes, flags."""
    return {
        'isa': ENGINE_SIMD_ISA.decode(),
        'requested_isa': ENGINE_BUILD_ISA.decode(),
        'vector_floats': VLEN,
        'gemm_tiles': [(rows, GEMM_NR) for rows in TILE_ROWS],
        'openmp': engine_openmp_version(),
        'cflags': ENGINE_CFLAGS.decode(),
    }


cdef void run_serial(const Op* ops, int64_t start, int64_t stop, const Ctx* ctx,
                     int64_t n_images) noexcept nogil:
    cdef int64_t i, j
    for i in range(start, stop):
        for j in range(ops[i].jobs_per_image * n_images):
            JOBS[ops[i].kind](&ops[i], ctx, j, 0)


cdef void run_parallel(const Op* ops, int64_t start, int64_t stop, const Ctx* ctx,
                       int64_t n_images) noexcept nogil:
    cdef int64_t i, j, njobs
    cdef int tid, team
    with parallel(num_threads=ctx.nthreads):
        tid = threadid()
        team = engine_team_size()       # the runtime may give fewer threads than asked
        for i in range(start, stop):
            njobs = ops[i].jobs_per_image * n_images
            for j in range(njobs * tid // team, njobs * (tid + 1) // team):
                JOBS[ops[i].kind](&ops[i], ctx, j, tid)
            if i + 1 < stop:
                engine_barrier()        # the next op reads what this one wrote


_INT_FIELDS = ('mode', 'act', 'groups', 'cin_g', 'cout_g', 'n_out', 'in_h', 'in_w',
               'out_h', 'out_w', 'kh', 'kw', 'sh', 'sw', 'ph', 'pw', 'dh', 'dw', 'path',
               'K', 'tile_rows', 'm_tiles', 'm_per_job', 'per_job', 'n_tiles', 'tile_pixels',
               'plane', 'k_splits', 'jobs_per_image')


cdef class Program:
    """A compiled model: ops with their offset tables and packed weights.
    Immutable once built, so one Program may run in many threads at once,
    each with its own arena and scratch."""
    cdef Op* ops
    cdef readonly int64_t n_ops
    cdef readonly int64_t image_stride
    cdef readonly int64_t scratch_stride
    cdef readonly int64_t nbytes     # memory it holds: op records, tables, packed weights
    cdef list _keep

    def __cinit__(self, list specs, int64_t image_stride, int64_t scratch_stride):
        self.n_ops = len(specs)
        self.image_stride = image_stride
        self.scratch_stride = scratch_stride
        self._keep = []
        # the ops the program runs, then the ones fused into them (spec['then'])
        chained = sum(spec.get('then') is not None for spec in specs)
        self.ops = <Op*>calloc(max(1, self.n_ops + chained), sizeof(Op))
        if self.ops == NULL:
            raise MemoryError()
        cdef int64_t next_chained = self.n_ops
        for i, spec in enumerate(specs):
            self._fill(&self.ops[i], spec)
            if spec.get('then') is not None:
                self._fill(&self.ops[next_chained], spec['then'])
                self.ops[i].then = &self.ops[next_chained]
                next_chained += 1
        self.nbytes = (self.n_ops + chained) * sizeof(Op) + sum(a.nbytes for a in self._keep)

    def __dealloc__(self):
        free(self.ops)

    cdef const void* _array(self, spec, name, dtype) except? NULL:
        """spec[name] as a C array of dtype kept alive by the program, or NULL."""
        if spec.get(name) is None:
            return NULL
        array = np.ascontiguousarray(spec[name], dtype=dtype).ravel()
        if array.shape[0] == 0:
            return NULL
        cdef const unsigned char[::1] raw = array.view(np.uint8)
        self._keep.append(array)
        return &raw[0]

    cdef int _fill(self, Op* op, dict spec) except -1:
        op.kind = OP_KINDS[spec['kind']]
        op.lo = spec.get('lo', -np.inf)
        op.hi = spec.get('hi', np.inf)
        op.fill = spec.get('fill', 0.0)
        values = [int(spec.get(f, 0)) for f in _INT_FIELDS]
        (op.mode, op.act, op.groups, op.cin_g, op.cout_g, op.n_out, op.in_h, op.in_w,
         op.out_h, op.out_w, op.kh, op.kw, op.sh, op.sw, op.ph, op.pw, op.dh, op.dw, op.path,
         op.K, op.tile_rows, op.m_tiles, op.m_per_job, op.per_job, op.n_tiles, op.tile_pixels,
         op.plane, op.k_splits, op.jobs_per_image) = values
        op.in_off = <const int64_t*>self._array(spec, 'in_off', np.int64)
        op.in2_off = <const int64_t*>self._array(spec, 'in2_off', np.int64)
        op.out_off = <const int64_t*>self._array(spec, 'out_off', np.int64)
        op.res_off = <const int64_t*>self._array(spec, 'res_off', np.int64)
        op.part_off = <const int64_t*>self._array(spec, 'part_off', np.int64)
        op.tap_off = <const int64_t*>self._array(spec, 'tap_off', np.int64)
        op.lanes = <const int*>self._array(spec, 'lanes', np.int32)
        op.w = <const float*>self._array(spec, 'w', np.float32)
        op.b = <const float*>self._array(spec, 'b', np.float32)
        op.aux = <const float*>self._array(spec, 'aux', np.float32)
        return 0

    def run(self, float[::1] arena, int64_t n_images, float[::1] scratch,
            int nthreads, int64_t start=0, int64_t stop=-1):
        """Run ops [start, stop) on n_images images laid out in arena."""
        if stop < 0:
            stop = self.n_ops
        if not (0 <= start <= stop <= self.n_ops):
            raise IndexError(f'op range [{start}, {stop}) outside 0..{self.n_ops}')
        if n_images < 1 or arena.shape[0] < n_images * self.image_stride:
            raise ValueError(f'arena of {arena.shape[0]} floats is too small for '
                             f'{n_images} images of {self.image_stride}')
        if (<uintptr_t>&arena[0]) % 64:
            raise ValueError('arena is not 64-byte aligned')
        if scratch.shape[0] < max(1, nthreads) * self.scratch_stride or scratch.shape[0] == 0:
            raise ValueError('scratch is too small for the thread count')
        cdef Ctx ctx
        ctx.arena = &arena[0]
        ctx.image_stride = self.image_stride
        ctx.scratch = &scratch[0]
        ctx.scratch_stride = self.scratch_stride
        ctx.nthreads = max(1, nthreads)
        with nogil:
            if ctx.nthreads <= 1:
                run_serial(self.ops, start, stop, &ctx, n_images)
            else:
                run_parallel(self.ops, start, stop, &ctx, n_images)


def scatter_planes(const float[:, :, :, :] x, float[::1] arena, int64_t image_stride,
                   const int64_t[::1] offsets, int threads=1):
    """Copy NCHW x (any strides) into the arena planes at offsets, with
    `threads` threads, each a contiguous share of the rows of every plane:
    the share of the image the first op's jobs give the same thread, so
    that it reads rows its own core wrote."""
    cdef Py_ssize_t n, c, h, w, H = x.shape[2], W = x.shape[3], h0, h1
    cdef int t, team = max(1, threads)
    cdef float* plane
    cdef bint rows_contiguous = x.strides[3] == sizeof(float) and x.strides[2] == W * sizeof(float)
    if x.shape[1] != offsets.shape[0]:
        raise ValueError('channel count does not match the offsets')
    if arena.shape[0] < x.shape[0] * image_stride:
        raise ValueError('arena too small for the batch')
    with nogil:
        for t in prange(team, num_threads=team, schedule='static'):
            h0, h1 = H * t // team, H * (t + 1) // team
            for n in range(x.shape[0]):
                for c in range(x.shape[1]):
                    plane = &arena[0] + n * image_stride + offsets[c]
                    if rows_contiguous:
                        if h1 > h0:
                            memcpy(plane + h0 * W, &x[n, c, h0, 0], (h1 - h0) * W * sizeof(float))
                        continue
                    for h in range(h0, h1):
                        for w in range(W):
                            plane[h * W + w] = x[n, c, h, w]


def gather_planes(const float[::1] arena, int64_t image_stride, int64_t n_images,
                  const int64_t[::1] offsets, int64_t pixels):
    """The planes at offsets as a new (n_images, channels, pixels) array."""
    out = np.empty((n_images, offsets.shape[0], pixels), dtype=np.float32)
    cdef float[:, :, ::1] o = out
    cdef Py_ssize_t n, c, p
    cdef const float* plane
    if arena.shape[0] < n_images * image_stride:
        raise ValueError('arena too small for the batch')
    with nogil:
        for n in range(n_images):
            for c in range(offsets.shape[0]):
                plane = &arena[0] + n * image_stride + offsets[c]
                for p in range(pixels):
                    o[n, c, p] = plane[p]
    return out
