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
