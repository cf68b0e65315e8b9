// Linear layers without bias: out = inp @ weight^T, weights stored [out, in]
// (PyTorch/HF layout). On the GPU these are cuBLAS(Lt) GEMMs.
#pragma once
#include "cuda/common.h"

namespace gt {
// out[N,OC] = inp[N,C] @ weight[OC,C]^T
void matmul_forward_cpu(float* out, const float* inp, const float* weight, int N, int C, int OC);
// dinp[N,C] (=, or += if accumulate_dinp) = dout[N,OC] @ weight[OC,C]
// dweight[OC,C] (=, or += if accumulate_dweight) = dout^T @ inp
// Either output may be null to skip it.
void matmul_backward_cpu(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                         int N, int C, int OC, bool accumulate_dinp, bool accumulate_dweight);
}  // namespace gt
