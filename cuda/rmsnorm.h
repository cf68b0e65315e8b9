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
