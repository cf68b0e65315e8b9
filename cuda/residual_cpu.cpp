// CPU reference for residual adds.
#include "cuda/residual.h"

namespace gt {

void residual_add_cpu(float* out, const float* a, const float* b, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

}  // namespace gt
