// Softmax cross-entropy over the vocabulary (targets always valid: packed
// windows have no padding). On the GPU this is fused with the lm_head GEMM
// and chunked so full fp32 logits never exist.
#pragma once
#include "cuda/common.h"

namespace gt {
// logits[N,V], targets[N] -> losses[N] (natural log).
// If dlogits is non-null: dlogits[N,V] = (softmax - onehot) * dloss; it may alias logits.
void crossentropy_forward_backward_cpu(float* losses, float* dlogits, const float* logits, const int32_t* targets,
                                       int N, int V, float dloss);
}  // namespace gt

#ifdef GALORE_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime.h>
namespace gt {
class CudaGemm;
// ---- CUDA (cuda/crossentropy.cu) ----
// In place over n rows of logits [n,V] (fp32 when logits_f32, else bf16, row
// stride V): losses[n] (fp32; NaN for a target outside [0,V)). If write_dlogits:
// dlogits = (softmax - onehot) * dloss as bf16, written over the logits. For
// fp32 logits the bf16 row r starts where fp32 row r starts, so the bf16
// dlogits matrix has a row stride of 2V elements; for bf16 logits it is V.
void crossentropy_forward_backward_cuda(float* losses, void* logits, bool logits_f32, const int32_t* targets, int n,
                                        int V, float dloss, bool write_dlogits, cudaStream_t stream);
// Fused lm_head + cross-entropy, chunked over R rows at a time so only one
// [R,V] logits chunk exists: for each chunk, logits = x @ weight^T (cuBLASLt),
// the kernel above, then dx = dlogits @ weight and dweight (+)= dlogits^T @ x.
// x[N,C], weight[V,C] bf16, targets[N], losses[N] fp32; dx[N,C] bf16 (may be
// null, overwritten), dweight[V,C] fp32 or bf16 (may be null; += if
// accumulate_dweight, later chunks always accumulate); logits [R,V] workspace.
void classifier_cuda(CudaGemm& g, float* losses, __nv_bfloat16* dx, void* dweight, bool dweight_f32,
                     const __nv_bfloat16* x, const __nv_bfloat16* weight, const int32_t* targets, int N, int C, int V,
                     float dloss, bool accumulate_dweight, void* logits, bool logits_f32, int R);
}  // namespace gt
#endif  // GALORE_WITH_CUDA
