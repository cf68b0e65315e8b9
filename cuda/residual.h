// Elementwise adds for the residual stream.
#pragma once
#include "cuda/common.h"

namespace gt {
// out[n] = a[n] + b[n]; out may alias a.
void residual_add_cpu(float* out, const float* a, const float* b, int64_t n);
}  // namespace gt
