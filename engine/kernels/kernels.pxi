# The engine's kernels, compiled once per instruction set into one extension
# module each (_avx512.pyx, _avx2.pyx, _neon.pyx, _scalar.pyx; setup.py gives
# each its compiler flags), so that one build serves every CPU of its
# architecture; engine/kernels/isa.py picks the module at import.
#   gemm.pxi     1x1, direct and im2col convolutions, fully connected
#   winograd.pxi dense 3x3 stride-1 convolutions by Winograd F(2x2) and F(4x4)
#   window.pxi   depthwise convolution, max/average/global pooling
#   eltwise.pxi  add, mul, affine, clamp
#   fused.pxi    a 1x1 convolution and the depthwise one reading it
#   resize.pxi   nearest and bilinear resizing (upsampling)
#   int8.pxi     the int8 kinds: convolutions, pooling, add, conversions
#   program.pxi  the executor and the copies in and out of the arena
#   ukernels.pxi the microkernels driven alone (tests, bench_kernels)
include "gemm.pxi"
include "winograd.pxi"
include "window.pxi"
include "eltwise.pxi"
include "fused.pxi"
include "resize.pxi"
include "int8.pxi"
include "program.pxi"
include "ukernels.pxi"
