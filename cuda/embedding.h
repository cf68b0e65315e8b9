// Token embedding lookup.
#pragma once
#include "cuda/common.h"

namespace gt {
// out[N,C] = wte[tokens[n], :]
void embedding_forward_cpu(float* out, const int32_t* tokens, const float* wte, int N, int C);
// dwte[V,C] += scatter of dout[N,C] by tokens[N] (deterministic order).
void embedding_backward_cpu(float* dwte, const float* dout, const int32_t* tokens, int N, int C);
}  // namespace gt

#ifdef GALORE_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime.h>
namespace gt {
// ---- CUDA (cuda/embedding.cu); bf16 tensors, all launches on `stream` ----
// out[N,C] = wte[tokens[n], :]   (tokens[N] int32 in [0,V), wte[V,C])
void embedding_forward_cuda(__nv_bfloat16* out, const int32_t* tokens, const __nv_bfloat16* wte, int N, int C,
                            cudaStream_t stream);
// Bytes of device workspace embedding_backward_cuda needs for N tokens.
size_t embedding_backward_cuda_workspace(int N, int V);
// dwte[V,C] += scatter of dout[N,C] by tokens[N]. Deterministic: a stable radix
// sort groups positions by token, then each (token, channel) is summed by one
// thread in position order and added once. dwte is fp32 or bf16.
void embedding_backward_cuda(float* dwte, const __nv_bfloat16* dout, const int32_t* tokens, int N, int C, int V,
                             void* workspace, size_t workspace_bytes, cudaStream_t stream);
void embedding_backward_cuda(__nv_bfloat16* dwte, const __nv_bfloat16* dout, const int32_t* tokens, int N, int C,
                             int V, void* workspace, size_t workspace_bytes, cudaStream_t stream);
}  // namespace gt
#endif  // GALORE_WITH_CUDA
