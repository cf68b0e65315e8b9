// Fused lm_head + softmax cross-entropy on the GPU, chunked over rows so the
// logits of the whole batch never exist. CPU reference:
// cuda/crossentropy_cpu.cpp (and CpuBackend::classifier for the chunk loop).
//
// Per chunk of R rows:
//   logits[R,V]  = x[R,C] @ W[V,C]^T          cuBLASLt, fp32 or bf16 output
//   losses, dlogits (bf16, in place)           crossentropy_kernel, a block per row
//   dx[R,C]      = dlogits @ W                 cuBLASLt
//   dW[V,C]     += dlogits^T @ x               cuBLASLt, beta = 1 after the first chunk
// Every reduction has a fixed order: the result is bit-reproducible.
#include "cuda/cuda_check.h"  // first: see the note there

#include <algorithm>
#include <cmath>

#include "cuda/crossentropy.h"
#include "cuda/matmul.h"

namespace gt {

namespace {

constexpr int kThreads = 512;

// Combines two (max, sum of exp(x - max)) pairs. An empty pair is (-inf, 0).
__device__ __forceinline__ void lse_combine(float& m, float& s, float m2, float s2) {
  const float mn = fmaxf(m, m2);
  if (mn == -INFINITY) return;  // both empty
  s = (m == -INFINITY ? 0.0f : s * expf(m - mn)) + (m2 == -INFINITY ? 0.0f : s2 * expf(m2 - mn));
  m = mn;
}

// One block per row. logits row z[V] (TL = float or bf16). losses[row] = lse - z[y].
// With write_grad, dlogits = (softmax - onehot(y)) * dloss in bf16 over the same
// bytes: element v at byte offset 2v of the row. For TL = float that is a
// compaction into the first half of the row: element v's bf16 lands inside
// fp32 element v/2 <= v, so the row is walked in chunks of kThreads that are
// read completely (barrier) before they are written; later chunks only read
// elements >= the chunk end, which no earlier write touched.
template <typename TL>
__global__ void __launch_bounds__(kThreads)
    crossentropy_kernel(float* losses, TL* logits, const int32_t* targets, int V, float dloss, bool write_grad) {
  __shared__ float red_m[kThreads / 32], red_s[kThreads / 32];
  __shared__ float zy_shared;
  const int64_t row = blockIdx.x;
  TL* z = logits + row * V;  // [V]
  const int y = targets[row];
  const bool y_ok = y >= 0 && y < V;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  if (threadIdx.x == 0) zy_shared = y_ok ? to_f32(z[y]) : NAN;
  // 1) per-thread online (max, sum exp) over v = tid, tid + kThreads, ...
  float m = -INFINITY, s = 0.0f;
  for (int v = threadIdx.x; v < V; v += kThreads) {
    const float x = to_f32(z[v]);
    if (x > m) {
      s = (m == -INFINITY ? 0.0f : s * expf(m - x)) + 1.0f;
      m = x;
    } else {
      s += expf(x - m);
    }
  }
  // 2) fixed-tree reduce: lanes (xor butterfly), then warps in order by thread 0.
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
    lse_combine(m, s, m2, s2);
  }
  if (lane == 0) red_m[warp] = m, red_s[warp] = s;
  __syncthreads();  // also: every thread has finished reading z in step 1, zy_shared is set
  if (threadIdx.x == 0) {
    float M = red_m[0], S = red_s[0];
    for (int w = 1; w < kThreads / 32; ++w) lse_combine(M, S, red_m[w], red_s[w]);
    red_m[0] = M + logf(S);  // lse
    losses[row] = y_ok ? red_m[0] - zy_shared : NAN;
  }
  __syncthreads();
  if (!write_grad) return;
  const float lse = red_m[0];
  bf16* dz = reinterpret_cast<bf16*>(z);  // [V] bf16, same start as the row
  for (int base = 0; base < V; base += kThreads) {
    const int v = base + threadIdx.x;
    const float x = v < V ? to_f32(z[v]) : 0.0f;
    __syncthreads();  // the whole chunk is read before any of it is overwritten
    if (v < V) dz[v] = from_f32<bf16>((expf(x - lse) - (v == y ? 1.0f : 0.0f)) * dloss);
  }
}

}  // namespace

void crossentropy_forward_backward_cuda(float* losses, void* logits, bool logits_f32, const int32_t* targets, int n,
                                        int V, float dloss, bool write_dlogits, cudaStream_t stream) {
  if (n <= 0) return;
  GT_ASSERT(V > 0);
  if (logits_f32)
    crossentropy_kernel<float><<<unsigned(n), kThreads, 0, stream>>>(losses, static_cast<float*>(logits), targets, V,
                                                                      dloss, write_dlogits);
  else
    crossentropy_kernel<bf16><<<unsigned(n), kThreads, 0, stream>>>(losses, static_cast<bf16*>(logits), targets, V,
                                                                     dloss, write_dlogits);
  CUDA_CHECK_LAUNCH();
}

void classifier_cuda(CudaGemm& g, float* losses, bf16* dx, void* dweight, bool dweight_f32, const bf16* x,
                     const bf16* weight, const int32_t* targets, int N, int C, int V, float dloss,
                     bool accumulate_dweight, void* logits, bool logits_f32, int R) {
  GT_ASSERT(R > 0);
  const bool grads = dx != nullptr || dweight != nullptr;
  // Row stride (elements) of the bf16 dlogits left in the logits buffer.
  const int ld_dlogits = logits_f32 ? 2 * V : V;
  for (int r0 = 0; r0 < N; r0 += R) {
    const int n = std::min(R, N - r0);
    const bf16* xr = x + int64_t(r0) * C;  // [n,C]
    // logits^T[V,n] = W[V,C] * x^T[C,n]
    g.gemm(true, false, V, n, C, weight, C, xr, C, logits, logits_f32, V, 1.0f, 0.0f);
    crossentropy_forward_backward_cuda(losses + r0, logits, logits_f32, targets + r0, n, V, dloss, grads,
                                       g.stream());
    if (!grads) continue;
    const bf16* dl = static_cast<const bf16*>(logits);  // dlogits [n,V], row stride ld_dlogits
    matmul_backward_cuda(g, dx ? dx + int64_t(r0) * C : nullptr, dweight, dweight_f32, dl, xr, weight, n, C, V,
                         /*accumulate_dinp=*/false, accumulate_dweight || r0 > 0, ld_dlogits);
  }
}

}  // namespace gt
