// 8-bit (and fp32-state) Adam steps and the AdamW weight update on the GPU,
// for the full-rank and GaLore optimizers. The per-element math is the one of
// cuda/adam8bit.h, cuda/quant8.h and cuda/adam.h, which the CPU reference
// (cuda/adam8bit_cpu.cpp, optim/adamw8bit.cpp) calls too.
//
// GaLore on the GPU is then: R = projection of G (cuBLASLt), adam8bit_step_cuda
// on R, the projection back (cuBLASLt), apply_adamw_direction_cuda with g null
// and step_size = lr * bias correction * scale.
#include "cuda/cuda_check.h"  // first: see the note there

#include <algorithm>

#include "cuda/adam8bit.h"

namespace gt {

namespace {

static_assert(kQuantBlock == 256, "one thread per element of an absmax block, one per map entry");
constexpr int kWarps = kQuantBlock / 32;

// One block per absmax block b, thread j <-> element i = b*256 + j. The three
// phases of adam8bit.h; the barrier between phases 1 and 3 also guarantees
// that every thread has read the old absmax before thread 0 replaces it.
__global__ void __launch_bounds__(kQuantBlock)
    adam8bit_step_kernel(const float* g, float* dir, uint8_t* cm, uint8_t* cv, float* am, float* av, int64_t n,
                         const float* map_m_global, const float* map_v_global, float beta1, float beta2, float eps) {
  __shared__ float map_m[256], map_v[256];
  __shared__ float red_m[kWarps], red_v[kWarps];
  const int j = threadIdx.x, warp = j / 32, lane = j % 32;
  map_m[j] = map_m_global[j];
  map_v[j] = map_v_global[j];
  __syncthreads();

  const int64_t b = blockIdx.x;
  const int64_t i = b * kQuantBlock + j;
  const bool in = i < n;
  // 1) moments in fp32 (0 for elements past n and for non-finite gradients).
  float m = 0.0f, v = 0.0f;
  if (in) {
    const bool ok = adam8_moments(g[i], cm[i], cv[i], am[b], av[b], map_m, map_v, beta1, beta2, &m, &v);
    dir[i] = ok ? adam8_direction(m, v, eps) : 0.0f;
  }
  // 2) block absmax of |m| and v (max is exact and order-free).
  const float wm = warp_max(fabsf(m)), wv = warp_max(v);
  if (lane == 0) red_m[warp] = wm, red_v[warp] = wv;
  __syncthreads();
  float amax_m = 0.0f, amax_v = 0.0f;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) {
    amax_m = fmaxf(amax_m, red_m[w]);
    amax_v = fmaxf(amax_v, red_v[w]);
  }
  if (j == 0) {
    am[b] = amax_m;
    av[b] = amax_v;
  }
  // 3) requantize with the new absmax.
  if (in) {
    cm[i] = quant8(map_m, m, quant8_inv_absmax(amax_m));
    cv[i] = quant8(map_v, v, quant8_inv_absmax(amax_v));
  }
}

__global__ void adam32_step_kernel(const float* g, float* dir, float* m, float* v, int64_t n, float beta1,
                                   float beta2, float eps) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    if (!finite_f32(g[i])) {  // drop this element's history; no update
      m[i] = v[i] = 0.0f;
      dir[i] = 0.0f;
      continue;
    }
    dir[i] = adam_moments_update(g[i], &m[i], &v[i], beta1, beta2, eps);
  }
}

template <typename TW>
__global__ void apply_adamw_direction_kernel(TW* w, const float* dir, const float* g, int64_t n, float step_size,
                                             float decay) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    if (g && !finite_f32(g[i])) continue;
    float x = to_f32(w[i]);
    x -= step_size * dir[i];
    x -= decay * x;  // decoupled weight decay after the update
    w[i] = from_f32<TW>(x);
  }
}

unsigned grid_for(int64_t n) { return unsigned(std::min<int64_t>(ceil_div(n, 256), 65536)); }

template <typename TW>
void apply_impl(TW* w, const float* dir, const float* g, int64_t n, float step_size, float decay,
                cudaStream_t stream) {
  if (n <= 0) return;
  apply_adamw_direction_kernel<TW><<<grid_for(n), 256, 0, stream>>>(w, dir, g, n, step_size, decay);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void adam8bit_step_cuda(const float* g, float* dir, uint8_t* cm, uint8_t* cv, float* am, float* av, int64_t n,
                        const float* map_m, const float* map_v, float beta1, float beta2, float eps,
                        cudaStream_t stream) {
  if (n <= 0) return;
  const int64_t blocks = quant8_blocks(n);
  GT_ASSERT(blocks <= INT32_MAX);
  adam8bit_step_kernel<<<unsigned(blocks), kQuantBlock, 0, stream>>>(g, dir, cm, cv, am, av, n, map_m, map_v, beta1,
                                                                      beta2, eps);
  CUDA_CHECK_LAUNCH();
}

void adam32_step_cuda(const float* g, float* dir, float* m, float* v, int64_t n, float beta1, float beta2, float eps,
                      cudaStream_t stream) {
  if (n <= 0) return;
  adam32_step_kernel<<<grid_for(n), 256, 0, stream>>>(g, dir, m, v, n, beta1, beta2, eps);
  CUDA_CHECK_LAUNCH();
}

void apply_adamw_direction_cuda(float* w, const float* dir, const float* g, int64_t n, float step_size, float decay,
                                cudaStream_t stream) {
  apply_impl(w, dir, g, n, step_size, decay, stream);
}
void apply_adamw_direction_cuda(bf16* w, const float* dir, const float* g, int64_t n, float step_size, float decay,
                                cudaStream_t stream) {
  apply_impl(w, dir, g, n, step_size, decay, stream);
}

}  // namespace gt
