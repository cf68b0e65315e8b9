// SwiGLU: h = silu(gate) * up, silu(x) = x * sigmoid(x).
#pragma once
#include <cmath>
#include "cuda/common.h"

namespace gt {
GT_HD float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }
GT_HD float swiglu_value(float g, float u) { return g * sigmoidf_(g) * u; }
// d/dg and d/du of silu(g)*u, times dout.
GT_HD void swiglu_grad(float g, float u, float dout, float* dg, float* du) {
  const float s = sigmoidf_(g);
  *du = dout * g * s;
  *dg = dout * u * s * (1.0f + g * (1.0f - s));
}
// out[n] = silu(gate[n]) * up[n] over n elements ([N, I] tensors)
void swiglu_forward_cpu(float* out, const float* gate, const float* up, int64_t n);
// dgate, dup overwritten.
// dgate/dup may alias gate/up (each element is read before it is written).
void swiglu_backward_cpu(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n);
}  // namespace gt

#ifdef GALORE_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime.h>
namespace gt {
// ---- CUDA (cuda/swiglu.cu): the same swiglu_value/swiglu_grad per element ----
// out[n] = silu(gate[n]) * up[n] (bf16, [N, I] tensors flattened to n)
void swiglu_forward_cuda(__nv_bfloat16* out, const __nv_bfloat16* gate, const __nv_bfloat16* up, int64_t n,
                         cudaStream_t stream);
// dgate, dup overwritten (they may alias gate, up).
void swiglu_backward_cuda(__nv_bfloat16* dgate, __nv_bfloat16* dup, const __nv_bfloat16* dout,
                          const __nv_bfloat16* gate, const __nv_bfloat16* up, int64_t n, cudaStream_t stream);
}  // namespace gt
#endif  // GALORE_WITH_CUDA
