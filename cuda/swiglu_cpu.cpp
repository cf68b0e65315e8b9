// CPU reference for SwiGLU (per-element math shared with the kernel).
#include "cuda/swiglu.h"

namespace gt {

void swiglu_forward_cpu(float* out, const float* gate, const float* up, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = swiglu_value(gate[i], up[i]);
}

void swiglu_backward_cpu(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) swiglu_grad(gate[i], up[i], dout[i], &dgate[i], &dup[i]);
}

}  // namespace gt
