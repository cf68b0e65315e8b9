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
