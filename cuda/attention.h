// Causal multi-head attention with grouped-query heads (query head h reads
// kv head h / (NH/NKV)). Flash-style: forward keeps only the per-row
// log-sum-exp, backward recomputes the probabilities, so no T x T buffer lives.
#pragma once
#include "cuda/common.h"

namespace gt {
// q[B,T,NH,D], k[B,T,NKV,D], v[B,T,NKV,D] -> out[B,T,NH,D], lse[B,NH,T]
// scores are scaled by 1/sqrt(D).
void attention_forward_cpu(float* out, float* lse, const float* q, const float* k, const float* v,
                           int B, int T, int NH, int NKV, int D);
// dq[B,T,NH,D], dk[B,T,NKV,D], dv[B,T,NKV,D] are overwritten.
void attention_backward_cpu(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                            const float* v, const float* out, const float* lse, int B, int T, int NH, int NKV, int D);
}  // namespace gt

#ifdef GALORE_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime.h>
namespace gt {
// ---- CUDA (cuda/attention.cu): flash-style, fp32 math on bf16 tensors ----
// Head dims supported: 16, 32, 64, 96, 128 (others fail with a message).
bool attention_cuda_supports_head_dim(int D);
// q[B,T,NH,D], k/v[B,T,NKV,D] -> out[B,T,NH,D] (bf16), lse[B,NH,T] (fp32)
void attention_forward_cuda(__nv_bfloat16* out, float* lse, const __nv_bfloat16* q, const __nv_bfloat16* k,
                            const __nv_bfloat16* v, int B, int T, int NH, int NKV, int D, cudaStream_t stream);
// Kernel choice: tensor cores (WMMA, bf16 operands, fp32 accumulation; the
// default) or the SIMT fp32 kernels (the fallback: GALORE_ATTENTION_SIMT=1 in
// the environment, read once at the first call). attention_cuda_set_simt
// overrides that choice for the calls after it (the tests run both paths).
// Tensors that are not 16-byte aligned always take the SIMT kernels.
bool attention_cuda_simt();
void attention_cuda_set_simt(bool simt);
// Bytes of workspace for attention_backward_cuda (rowsum(dout*out), fp32 [B,NH,T]).
size_t attention_backward_cuda_workspace(int B, int T, int NH);
// Bytes of the optional dS store of attention_backward_cuda: the causal 32x32
// tiles of dS per (b, head), bf16 (B*NH*nt(nt+1)/2 tiles, nt = ceil(T/32); 37.7 MB
// at B=16, T=256, NH=32). With it, dq reads dS instead of recomputing S, dP and
// the probabilities (5 tile products instead of 7). The model lends a buffer that
// is dead during the call (the MLP's h); GALORE_ATTENTION_DS=0 in the environment
// (read once) never uses it, for comparisons.
size_t attention_backward_cuda_ds_bytes(int B, int T, int NH);
bool attention_cuda_ds_store_enabled();
// dq[B,T,NH,D], dk/dv[B,T,NKV,D] overwritten. Deterministic: dk/dv by one
// block per (b, kv head, key tile) looping over queries in a fixed order, dq by
// one block per (b, head, query tile) looping over keys; no atomics.
// ds_store: null, or ds_store_bytes of device memory the call may overwrite;
// used (tensor-core path) when it holds attention_backward_cuda_ds_bytes and is
// 16-byte aligned, else ignored. Returns whether the store was used.
bool attention_backward_cuda(__nv_bfloat16* dq, __nv_bfloat16* dk, __nv_bfloat16* dv, const __nv_bfloat16* dout,
                             const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                             const __nv_bfloat16* out, const float* lse, int B, int T, int NH, int NKV, int D,
                             void* workspace, size_t workspace_bytes, void* ds_store, size_t ds_store_bytes,
                             cudaStream_t stream);
}  // namespace gt
#endif  // GALORE_WITH_CUDA
