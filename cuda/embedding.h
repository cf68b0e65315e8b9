// Token embedding lookup.
#pragma once
#include "cuda/common.h"

namespace gt {
// out[N,C] = wte[tokens[n], :]
void embedding_forward_cpu(float* out, const int32_t* tokens, const float* wte, int N, int C);
// dwte[V,C] += scatter of dout[N,C] by tokens[N] (deterministic order).
void embedding_backward_cpu(float* dwte, const float* dout, const int32_t* tokens, int N, int C);
}  // namespace gt
