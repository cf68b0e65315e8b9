// SwiGLU on the GPU (bf16 in/out, fp32 math). The per-element math is
// gt::swiglu_value / gt::swiglu_grad from cuda/swiglu.h, the very functions
// the CPU reference (cuda/swiglu_cpu.cpp) calls.
#include "cuda/cuda_check.h"  // first: see the note there

#include "cuda/swiglu.h"

namespace gt {

namespace {

// Each thread owns 8 consecutive elements [8*idx, 8*idx + 8): one 16-byte
// access per tensor when `vec` (all pointers 16-byte aligned) and the 8 are in
// range, else scalar (the tail, or unaligned views).
__global__ void swiglu_forward_kernel(bf16* out, const bf16* gate, const bf16* up, int64_t n, bool vec) {
  const int64_t i0 = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * 8;
  if (i0 >= n) return;
  if (vec && i0 + 8 <= n) {
    float g[8], u[8], o[8];
    load_bf16x8(gate + i0, g);
    load_bf16x8(up + i0, u);
#pragma unroll
    for (int e = 0; e < 8; ++e) o[e] = swiglu_value(g[e], u[e]);
    store_bf16x8(out + i0, o);
  } else {
    for (int64_t i = i0; i < n && i < i0 + 8; ++i)
      out[i] = from_f32<bf16>(swiglu_value(to_f32(gate[i]), to_f32(up[i])));
  }
}

// dgate/dup may alias gate/up: each element is read before it is written.
__global__ void swiglu_backward_kernel(bf16* dgate, bf16* dup, const bf16* dout, const bf16* gate, const bf16* up,
                                       int64_t n, bool vec) {
  const int64_t i0 = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * 8;
  if (i0 >= n) return;
  if (vec && i0 + 8 <= n) {
    float g[8], u[8], d[8], dg[8], du[8];
    load_bf16x8(gate + i0, g);
    load_bf16x8(up + i0, u);
    load_bf16x8(dout + i0, d);
#pragma unroll
    for (int e = 0; e < 8; ++e) swiglu_grad(g[e], u[e], d[e], &dg[e], &du[e]);
    store_bf16x8(dgate + i0, dg);
    store_bf16x8(dup + i0, du);
  } else {
    for (int64_t i = i0; i < n && i < i0 + 8; ++i) {
      float dg, du;
      swiglu_grad(to_f32(gate[i]), to_f32(up[i]), to_f32(dout[i]), &dg, &du);
      dgate[i] = from_f32<bf16>(dg);
      dup[i] = from_f32<bf16>(du);
    }
  }
}

}  // namespace

void swiglu_forward_cuda(bf16* out, const bf16* gate, const bf16* up, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  const bool vec = aligned16(out) && aligned16(gate) && aligned16(up);
  swiglu_forward_kernel<<<unsigned(ceil_div(ceil_div(n, 8), 256)), 256, 0, stream>>>(out, gate, up, n, vec);
  CUDA_CHECK_LAUNCH();
}

void swiglu_backward_cuda(bf16* dgate, bf16* dup, const bf16* dout, const bf16* gate, const bf16* up, int64_t n,
                          cudaStream_t stream) {
  if (n <= 0) return;
  const bool vec = aligned16(dgate) && aligned16(dup) && aligned16(dout) && aligned16(gate) && aligned16(up);
  swiglu_backward_kernel<<<unsigned(ceil_div(ceil_div(n, 8), 256)), 256, 0, stream>>>(dgate, dup, dout, gate, up, n,
                                                                                     vec);
  CUDA_CHECK_LAUNCH();
}

}  // namespace gt
