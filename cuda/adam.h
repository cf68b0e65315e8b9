// Per-element AdamW math, written once for the CPU reference and the kernels.
#pragma once
#include <cmath>
#include "cuda/common.h"

namespace gt {

struct AdamParams {
  float beta1, beta2, eps;
  float step_size;   // lr * sqrt(1 - beta2^t) / (1 - beta1^t)  (bias correction folded in)
};

// Updates the raw moments m, v with gradient g and returns the normalized
// update m / (sqrt(v) + eps), eps added to the raw sqrt(v); the caller
// multiplies by step_size. This is GaLore's / Hugging Face's AdamW:
// p -= step_size * m / (sqrt(v) + eps). (torch.optim.AdamW adds eps to the
// bias-corrected sqrt(v), i.e. eps * sqrt(1 - beta2^t) here; docs/OPTIMIZER.md.)
GT_HD float adam_moments_update(float g, float* m, float* v, float beta1, float beta2, float eps) {
  *m = beta1 * *m + (1.0f - beta1) * g;
  *v = beta2 * *v + (1.0f - beta2) * g * g;
  return *m / (sqrtf(*v) + eps);
}

// The factor clip_gradient (optim/basic.h) multiplies a gradient by: the global
// clip_scale, times clip_norm/‖g‖ when clip_norm > 0 and ‖g‖² = sq exceeds
// clip_norm² (per-tensor clipping). The factor in double, the product in float.
GT_HD float clip_factor(double sq, float clip_scale, double clip_norm) {
  float scale = clip_scale;
  if (clip_norm > 0.0 && sq > clip_norm * clip_norm) scale *= float(clip_norm / sqrt(sq));
  return scale;
}

}  // namespace gt
