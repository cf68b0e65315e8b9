// RMSNorm as in Hugging Face LlamaRMSNorm: y = w * x / sqrt(mean(x^2) + eps).
#pragma once
#include "cuda/common.h"

namespace gt {
// out[N,C], rstd[N] (saved for backward), inp[N,C], weight[C]
void rmsnorm_forward_cpu(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps);
// dinp[N,C] += dL/dx, dweight[C] += dL/dw
void rmsnorm_backward_cpu(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                          const float* rstd, int N, int C);
}  // namespace gt

#ifdef GALORE_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime.h>
namespace gt {
// ---- CUDA (cuda/rmsnorm.cu) ----
// out[N,C] bf16, rstd[N] fp32, inp[N,C] bf16, weight[C] bf16
void rmsnorm_forward_cuda(__nv_bfloat16* out, float* rstd, const __nv_bfloat16* inp, const __nv_bfloat16* weight,
                          int N, int C, float eps, cudaStream_t stream);
// Bytes of workspace for rmsnorm_backward_cuda (per-block dweight partials, fp32).
size_t rmsnorm_backward_cuda_workspace(int N, int C);
// dinp[N,C] += dL/dx (bf16), dweight[C] += dL/dw (fp32 or bf16). The dweight
// sum is deterministic: fixed row blocks write partials, one fixed-order reduce.
void rmsnorm_backward_cuda(__nv_bfloat16* dinp, float* dweight, const __nv_bfloat16* dout, const __nv_bfloat16* inp,
                           const __nv_bfloat16* weight, const float* rstd, int N, int C, void* workspace,
                           size_t workspace_bytes, cudaStream_t stream);
void rmsnorm_backward_cuda(__nv_bfloat16* dinp, __nv_bfloat16* dweight, const __nv_bfloat16* dout,
                           const __nv_bfloat16* inp, const __nv_bfloat16* weight, const float* rstd, int N, int C,
                           void* workspace, size_t workspace_bytes, cudaStream_t stream);
}  // namespace gt
#endif  // GALORE_WITH_CUDA
