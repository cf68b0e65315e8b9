// 8-bit AdamW states (bitsandbytes blockwise layout) on top of the fp32 math
// of cuda/adam.h. One block of kQuantBlock elements is updated in three
// phases, because the new absmax is a reduction over the block:
//   1. adam8_moments: dequantize m, v with the old absmax, update them with g
//      (kept in fp32 registers);
//   2. block absmax of |m| and v (a reduction; warp shuffle on the GPU);
//   3. adam8_direction + quant8: the update direction m/(sqrt(v)+eps) from the
//      fresh fp32 moments (as bitsandbytes: not from the requantized ones),
//      then requantize m, v with the new absmax.
#pragma once
#include "cuda/adam.h"
#include "cuda/quant8.h"

namespace gt {

// Phase 1. A non-finite g zeroes this element's moments (its history is
// dropped) and returns false: the caller leaves the weight element alone.
GT_HD bool adam8_moments(float g, uint8_t cm, uint8_t cv, float absmax_m, float absmax_v, const float* map_m,
                         const float* map_v, float beta1, float beta2, float* m, float* v) {
  if (!finite_f32(g)) {
    *m = 0.0f;
    *v = 0.0f;
    return false;
  }
  *m = beta1 * dequant8(map_m, cm, absmax_m) + (1.0f - beta1) * g;
  *v = beta2 * dequant8(map_v, cv, absmax_v) + (1.0f - beta2) * g * g;
  return true;
}

// Phase 3: normalized update (GaLore / HF AdamW eps placement, as cuda/adam.h).
GT_HD float adam8_direction(float m, float v, float eps) { return m / (sqrtf(v) + eps); }

// CPU reference of one full 8-bit Adam step on n elements: for every block,
// phases 1-3. g[n] gradient, dir[n] out: m/(sqrt(v)+eps) (0 where g is not
// finite), cm/cv[n] codes and am/av[quant8_blocks(n)] absmax, updated in place.
void adam8bit_step_cpu(const float* g, float* dir, uint8_t* cm, uint8_t* cv, float* am, float* av, int64_t n,
                       const float* map_m, const float* map_v, float beta1, float beta2, float eps);

// fp32-state counterpart (tensors under kMin8bitNumel): same contract, m/v[n].
void adam32_step_cpu(const float* g, float* dir, float* m, float* v, int64_t n, float beta1, float beta2, float eps);

}  // namespace gt

#ifdef GALORE_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime.h>
namespace gt {
// ---- CUDA (cuda/galore_adam8bit.cu): the same steps on device arrays ----
// adam8bit_step_cpu on the device: one 256-thread block per absmax block, the
// block absmax by a max-reduction (order-free, so deterministic). map_m/map_v
// are device copies of dynamic_map_signed()/dynamic_map_unsigned() [256].
void adam8bit_step_cuda(const float* g, float* dir, uint8_t* cm, uint8_t* cv, float* am, float* av, int64_t n,
                        const float* map_m, const float* map_v, float beta1, float beta2, float eps,
                        cudaStream_t stream);
// adam32_step_cpu on the device.
void adam32_step_cuda(const float* g, float* dir, float* m, float* v, int64_t n, float beta1, float beta2, float eps,
                      cudaStream_t stream);
// w[n] -= step_size * dir[n]; then w -= decay * w (decoupled weight decay), as
// apply_adamw_direction (optim/adamw8bit.cpp). Elements whose g is not finite
// are left alone; g may be null (GaLore: the caller passes the projected-back
// direction and step_size = lr*bias_correction*scale). w fp32 or bf16.
void apply_adamw_direction_cuda(float* w, const float* dir, const float* g, int64_t n, float step_size, float decay,
                                cudaStream_t stream);
void apply_adamw_direction_cuda(__nv_bfloat16* w, const float* dir, const float* g, int64_t n, float step_size,
                                float decay, cudaStream_t stream);
}  // namespace gt
#endif  // GALORE_WITH_CUDA
