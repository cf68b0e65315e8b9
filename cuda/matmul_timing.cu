// CudaGemm's timing diagnostics (galore-bench --gemm-report): the time of
// each GEMM shape inside a stretch of work (CUDA events around every call, no
// host sync), and each shape timed alone against the heuristic's candidates.
#include "cuda/cuda_check.h"  // first: see the note there

#include <algorithm>
#include <map>
#include <tuple>

#include "cuda/matmul.h"
#include "cuda/matmul_impl.cuh"

namespace gt {

// ---- diagnostics: time per GEMM shape ----

void CudaGemm::start_timing(int max_calls) {
  Impl& I = *impl_;
  while (I.events.size() < 2 * size_t(max_calls)) {
    cudaEvent_t e = nullptr;
    CUDA_CHECK(cudaEventCreate(&e));
    I.events.push_back(e);
  }
  I.timed.clear();
  I.timed.reserve(size_t(max_calls));
  I.untimed = 0;
  I.timing = true;
}

std::vector<GemmTiming> CudaGemm::finish_timing() {
  Impl& I = *impl_;
  I.timing = false;
  CUDA_CHECK(cudaStreamSynchronize(I.stream));
  if (I.untimed)
    std::fprintf(stderr, "warning: GEMM timing: %lld calls past the %zu timed ones are not in the report\n",
                 (long long)I.untimed, I.timed.size());
  std::map<std::tuple<int, int, int, int, int, int>, GemmTiming> by_shape;
  for (size_t i = 0; i < I.timed.size(); ++i) {
    const GemmKey& k = I.timed[i].key;
    float ms = 0.0f;
    CUDA_CHECK(cudaEventElapsedTime(&ms, I.events[2 * i], I.events[2 * i + 1]));
    GemmTiming& t = by_shape[{k.m, k.n, k.k, k.ta, k.tb, k.d_f32}];
    t.m = k.m, t.n = k.n, t.k = k.k, t.trans_a = k.ta, t.trans_b = k.tb, t.d_f32 = k.d_f32;
    t.beta = t.beta || I.timed[i].beta;
    t.calls += 1;
    t.ms += ms;
  }
  std::vector<GemmTiming> out;
  for (const auto& kv : by_shape) out.push_back(kv.second);
  std::sort(out.begin(), out.end(), [](const GemmTiming& a, const GemmTiming& b) { return a.ms > b.ms; });
  I.timed.clear();
  return out;
}

namespace gemm_detail {
namespace {
__global__ void fill_random_bf16_kernel(bf16* x, int64_t n, uint32_t seed) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    uint32_t h = uint32_t(i) * 2654435761u ^ seed;
    h ^= h >> 15, h *= 2246822519u, h ^= h >> 13;
    x[i] = __float2bfloat16(float(h >> 8) * (2.0f / 16777216.0f) - 1.0f);
  }
}
}  // namespace
void fill_random_bf16(bf16* x, int64_t n, uint32_t seed, cudaStream_t s) {
  if (n <= 0) return;
  fill_random_bf16_kernel<<<unsigned(std::min<int64_t>((n + 255) / 256, 4096)), 256, 0, s>>>(x, n, seed);
  CUDA_CHECK_LAUNCH();
}
}  // namespace gemm_detail

void CudaGemm::time_candidates(std::vector<GemmTiming>& shapes, int candidates, int reps) {
  Impl& I = *impl_;
  if (!I.lt_enabled) return;
  cudaEvent_t e0 = nullptr, e1 = nullptr;
  CUDA_CHECK(cudaEventCreate(&e0));
  CUDA_CHECK(cudaEventCreate(&e1));
  for (GemmTiming& t : shapes) {
    // Dense scratch operands of the shape (256-byte aligned, as the arenas' tensors).
    GemmKey key{};
    key.m = t.m, key.n = t.n, key.k = t.k, key.ta = t.trans_a, key.tb = t.trans_b, key.d_f32 = t.d_f32;
    key.lda = t.trans_a ? t.k : t.m, key.ldb = t.trans_b ? t.n : t.k, key.ldd = t.m;
    key.align_a = key.align_b = key.align_d = 256;
    const int64_t na = int64_t(t.m) * t.k, nb = int64_t(t.k) * t.n, nd = int64_t(t.m) * t.n;
    bf16 *A = nullptr, *B = nullptr;
    void* D = nullptr;
    CUDA_CHECK(cudaMalloc(&A, size_t(na) * sizeof(bf16)));
    CUDA_CHECK(cudaMalloc(&B, size_t(nb) * sizeof(bf16)));
    CUDA_CHECK(cudaMalloc(&D, size_t(nd) * (t.d_f32 ? 4 : 2)));
    fill_random_bf16(A, na, 1, I.stream);
    fill_random_bf16(B, nb, 2, I.stream);
    CUDA_CHECK(cudaMemsetAsync(D, 0, size_t(nd) * (t.d_f32 ? 4 : 2), I.stream));
    const float alpha = 1.0f, beta = t.beta ? 1.0f : 0.0f;
    GemmPlan p;
    Impl::describe(key, p);
    const Impl::Candidates algos = I.heuristics(key, p, candidates);
    t.chosen_ms = median_call_ms(I.stream, e0, e1, reps, [&] {
      I.run(key, A, B, D, alpha, beta);
      return true;
    });
    t.candidates = algos.count;
    for (int r = 0; r < algos.count; ++r) {
      const double ms = median_call_ms(I.stream, e0, e1, reps, [&] { return I.run_algo(p, algos.algo[r], A, B, D, alpha, beta); });
      if (ms >= 0 && (t.best_ms < 0 || ms < t.best_ms)) t.best_ms = ms, t.best_rank = int(r);
    }
    CUDA_CHECK(cudaStreamSynchronize(I.stream));
    Impl::destroy(p);
    CUDA_CHECK(cudaFree(A));
    CUDA_CHECK(cudaFree(B));
    CUDA_CHECK(cudaFree(D));
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
}

}  // namespace gt
