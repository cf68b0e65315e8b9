// Linear layers on the GPU through cuBLASLt: bf16 A/B, fp32 accumulation
// (CUBLAS_COMPUTE_32F), bf16 or fp32 output, accumulation via beta = 1.
// CPU reference: cuda/matmul_cpu.cpp.
//
// Row-major tensors are column-major transposes, so with weights stored
// [OC, C] (PyTorch layout):
//   out[N,OC]   = inp @ W^T   <=>  out^T (OC x N) = W (OC x C, from W^T stored C x OC, op T) * inp^T (C x N)
//   dinp[N,C]   = dout @ W    <=>  dinp^T (C x N) = W^T (C x OC, op N) * dout^T (OC x N)
//   dW[OC,C]    = dout^T @ inp <=> dW^T (C x OC)   = inp^T (C x N, op N) * dout (N x OC, dout^T stored OC x N, op T)
//
// Determinism: the algorithm chosen for a shape is cached, and reduction
// schemes that accumulate split-K partials in place are excluded, so the same
// shape gives bit-identical results on the same GPU and library version.
#include "cuda/cuda_check.h"  // first: see the note there

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <tuple>
#include <unordered_map>

#include "cuda/matmul.h"

namespace gt {

namespace {

// Largest power of two (<= 256) dividing the address: cuBLASLt's heuristic
// assumes 256-byte aligned pointers unless told otherwise, and arena slices
// need not be.
uint32_t pointer_alignment(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 1 && (a % al) != 0) al >>= 1;
  return al;
}

// All fields 32-bit, so the struct has no padding and compares bytewise.
struct GemmKey {
  int32_t m, n, k, lda, ldb, ldd;
  int32_t ta, tb, d_f32;
  uint32_t align_a, align_b, align_d;
  bool operator==(const GemmKey& o) const { return std::memcmp(this, &o, sizeof(GemmKey)) == 0; }
};
static_assert(sizeof(GemmKey) == 12 * 4, "GemmKey must have no padding");
struct GemmKeyHash {
  size_t operator()(const GemmKey& k) const {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(&k);
    size_t h = 1469598103934665603ull;  // FNV-1a
    for (size_t i = 0; i < sizeof(GemmKey); ++i) h = (h ^ p[i]) * 1099511628211ull;
    return h;
  }
};

// Everything cuBLASLt needs for one shape; built once per shape.
struct GemmPlan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool use_lt = false;  // false: no Lt algorithm for this shape, use cublasGemmEx
};

}  // namespace

struct CudaGemm::Impl {
  cudaStream_t stream = nullptr;
  cublasLtHandle_t lt = nullptr;
  cublasHandle_t blas = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  std::unordered_map<GemmKey, GemmPlan, GemmKeyHash> plans;
  bool lt_enabled = true;
  // start_timing .. finish_timing: events [2 * max] around the first max calls.
  std::vector<cudaEvent_t> events;
  struct TimedCall {
    GemmKey key;
    bool beta;  // beta != 0
  };
  std::vector<TimedCall> timed;
  bool timing = false;

  ~Impl() {
    for (cudaEvent_t e : events) cudaEventDestroy(e);
    clear_plans();
    if (workspace) cudaFree(workspace);
    if (blas) cublasDestroy(blas);
    if (lt) cublasLtDestroy(lt);
  }

  void clear_plans() {
    for (auto& [key, p] : plans) {
      if (p.op) cublasLtMatmulDescDestroy(p.op);
      if (p.a) cublasLtMatrixLayoutDestroy(p.a);
      if (p.b) cublasLtMatrixLayoutDestroy(p.b);
      if (p.d) cublasLtMatrixLayoutDestroy(p.d);
    }
    plans.clear();
  }

  // The descriptor and layouts of a shape (p.op, p.a, p.b, p.d).
  static void describe(const GemmKey& key, GemmPlan& p) {
    const cudaDataType_t dt = key.d_f32 ? CUDA_R_32F : CUDA_R_16BF;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t opa = key.ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = key.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof(opa)));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof(opb)));
    // Layouts describe the matrices as stored (before op): A is m x k, or k x m when transposed.
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, key.ta ? key.k : key.m, key.ta ? key.m : key.k, key.lda));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, key.tb ? key.n : key.k, key.tb ? key.k : key.n, key.ldb));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.d, dt, key.m, key.n, key.ldd));
  }

  // Up to kMaxCandidates algorithms for the shape, best first by cuBLASLt's
  // heuristic. (Fixed arrays: nvcc 13's front end fails on std::vector of these structs.)
  static constexpr int kMaxCandidates = 16;
  struct Candidates {
    cublasLtMatmulAlgo_t algo[kMaxCandidates];
    int count = 0;
  };
  Candidates heuristics(const GemmKey& key, const GemmPlan& p, int count) {
    count = std::max(1, std::min(count, kMaxCandidates));
    cublasLtMatmulPreference_t pref = nullptr;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                      &workspace_bytes, sizeof(workspace_bytes)));
    // No in-place split-K reduction (its accumulation order is not fixed).
    const uint32_t schemes =
        CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE | CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &schemes,
                                                      sizeof(schemes)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &key.align_a,
                                                      sizeof(uint32_t)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &key.align_b,
                                                      sizeof(uint32_t)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &key.align_d,
                                                      sizeof(uint32_t)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &key.align_d,
                                                      sizeof(uint32_t)));
    cublasLtMatmulHeuristicResult_t results[kMaxCandidates];
    int found = 0;
    const cublasStatus_t st =
        cublasLtMatmulAlgoGetHeuristic(lt, p.op, p.a, p.b, p.d, p.d, pref, count, results, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS && st != CUBLAS_STATUS_NOT_SUPPORTED) CUBLAS_CHECK(st);
    Candidates c;
    if (st == CUBLAS_STATUS_SUCCESS)
      for (int i = 0; i < found; ++i)
        if (results[i].state == CUBLAS_STATUS_SUCCESS) c.algo[c.count++] = results[i].algo;
    return c;
  }

  GemmPlan& plan(const GemmKey& key) {
    auto it = plans.find(key);
    if (it != plans.end()) return it->second;
    GemmPlan p;
    if (!lt_enabled) return plans.emplace(key, p).first->second;  // cublasGemmEx for every shape
    describe(key, p);
    const Candidates c = heuristics(key, p, 1);
    if (c.count > 0) {
      p.algo = c.algo[0];
      p.use_lt = true;
    }
    return plans.emplace(key, p).first->second;
  }
  // One GEMM of shape key (the plan's algorithm, or cublasGemmEx); C null: D.
  void run(const GemmKey& key, const bf16* A, const bf16* B, void* D, float alpha, float beta,
           const void* C = nullptr) {
    GemmPlan& p = plan(key);
    if (p.use_lt) {
      const cublasStatus_t st = cublasLtMatmul(lt, p.op, &alpha, A, p.a, B, p.b, &beta, C ? C : D, p.d, D, p.d,
                                               &p.algo, workspace, workspace_bytes, stream);
      if (st != CUBLAS_STATUS_NOT_SUPPORTED) {
        CUBLAS_CHECK(st);
        return;
      }
      // The algorithm the heuristic offered refused this call: the shape goes
      // through cublasGemmEx from now on (a fixed choice, so still deterministic).
      p.use_lt = false;
      std::fprintf(stderr, "warning: cuBLASLt refused the %dx%dx%d GEMM its heuristic chose; using cublasGemmEx\n",
                   key.m, key.n, key.k);
    }
    if (C && beta != 0.0f)  // cublasGemmEx adds D itself: copy C there first (same layout)
      CUDA_CHECK(cudaMemcpyAsync(D, C, size_t(key.ldd) * key.n * (key.d_f32 ? 4 : 2), cudaMemcpyDeviceToDevice,
                                 stream));
    CUBLAS_CHECK(cublasGemmEx(blas, key.ta ? CUBLAS_OP_T : CUBLAS_OP_N, key.tb ? CUBLAS_OP_T : CUBLAS_OP_N, key.m,
                              key.n, key.k, &alpha, A, CUDA_R_16BF, key.lda, B, CUDA_R_16BF, key.ldb, &beta, D,
                              key.d_f32 ? CUDA_R_32F : CUDA_R_16BF, key.ldd, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
};

CudaGemm::CudaGemm(cudaStream_t stream, size_t workspace_bytes) : impl_(std::make_unique<Impl>()) {
  impl_->stream = stream;
  impl_->workspace_bytes = workspace_bytes;
  CUBLAS_CHECK(cublasLtCreate(&impl_->lt));
  CUBLAS_CHECK(cublasCreate(&impl_->blas));
  CUBLAS_CHECK(cublasSetStream(impl_->blas, stream));
  // Deterministic results: never let cuBLAS pick algorithms that use atomics.
  CUBLAS_CHECK(cublasSetAtomicsMode(impl_->blas, CUBLAS_ATOMICS_NOT_ALLOWED));
  if (workspace_bytes) CUDA_CHECK(cudaMalloc(&impl_->workspace, workspace_bytes));
  CUBLAS_CHECK(cublasSetWorkspace(impl_->blas, impl_->workspace, impl_->workspace_bytes));
}

CudaGemm::~CudaGemm() = default;

cudaStream_t CudaGemm::stream() const { return impl_->stream; }
void CudaGemm::set_cublaslt(bool enabled) {
  if (enabled == impl_->lt_enabled) return;
  impl_->lt_enabled = enabled;
  impl_->clear_plans();  // they were made for the other path
}
void* CudaGemm::workspace() const { return impl_->workspace; }
size_t CudaGemm::workspace_bytes() const { return impl_->workspace_bytes; }

void CudaGemm::gemm(bool trans_a, bool trans_b, int m, int n, int k, const bf16* A, int lda, const bf16* B, int ldb,
                    void* D, bool d_f32, int ldd, float alpha, float beta, const void* C) {
  if (m <= 0 || n <= 0) return;
  if (C == D) C = nullptr;
  GT_ASSERT(k > 0);
  GemmKey key;
  key.m = m, key.n = n, key.k = k, key.lda = lda, key.ldb = ldb, key.ldd = ldd;
  key.ta = trans_a, key.tb = trans_b, key.d_f32 = d_f32;
  key.align_a = pointer_alignment(A), key.align_b = pointer_alignment(B);
  key.align_d = C ? std::min(pointer_alignment(D), pointer_alignment(C)) : pointer_alignment(D);  // C's and D's
  const bool timed = impl_->timing && 2 * impl_->timed.size() < impl_->events.size();
  if (timed) CUDA_CHECK(cudaEventRecord(impl_->events[2 * impl_->timed.size()], impl_->stream));
  impl_->run(key, A, B, D, alpha, beta, C);
  if (timed) {
    CUDA_CHECK(cudaEventRecord(impl_->events[2 * impl_->timed.size() + 1], impl_->stream));
    impl_->timed.push_back(Impl::TimedCall{key, beta != 0.0f});
  }
}

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
  I.timing = true;
}

std::vector<GemmTiming> CudaGemm::finish_timing() {
  Impl& I = *impl_;
  I.timing = false;
  CUDA_CHECK(cudaStreamSynchronize(I.stream));
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

namespace {
// x[i] = a uniform bf16 in [-1, 1) from a hash of i: benchmark inputs, not zeros.
__global__ void fill_random_bf16_kernel(bf16* x, int64_t n, uint32_t seed) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    uint32_t h = uint32_t(i) * 2654435761u ^ seed;
    h ^= h >> 15, h *= 2246822519u, h ^= h >> 13;
    x[i] = __float2bfloat16(float(h >> 8) * (2.0f / 16777216.0f) - 1.0f);
  }
}
void fill_random_bf16(bf16* x, int64_t n, uint32_t seed, cudaStream_t s) {
  fill_random_bf16_kernel<<<unsigned(std::min<int64_t>((n + 255) / 256, 4096)), 256, 0, s>>>(x, n, seed);
  CUDA_CHECK_LAUNCH();
}
}  // namespace

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
    // Median ms per call of fn over reps runs, after one warm-up run; < 0 if refused.
    auto median_ms = [&](const std::function<bool()>& fn) {
      if (!fn()) return -1.0;
      std::vector<float> ms(static_cast<size_t>(std::max(reps, 1)));
      for (float& x : ms) {
        CUDA_CHECK(cudaEventRecord(e0, I.stream));
        fn();
        CUDA_CHECK(cudaEventRecord(e1, I.stream));
        CUDA_CHECK(cudaEventSynchronize(e1));
        CUDA_CHECK(cudaEventElapsedTime(&x, e0, e1));
      }
      std::sort(ms.begin(), ms.end());
      return double(ms[ms.size() / 2]);
    };
    t.chosen_ms = median_ms([&] {
      I.run(key, A, B, D, alpha, beta);
      return true;
    });
    t.candidates = algos.count;
    for (int r = 0; r < algos.count; ++r) {
      const double ms = median_ms([&] {
        const cublasStatus_t st = cublasLtMatmul(I.lt, p.op, &alpha, A, p.a, B, p.b, &beta, D, p.d, D, p.d,
                                                 &algos.algo[r], I.workspace, I.workspace_bytes, I.stream);
        if (st == CUBLAS_STATUS_NOT_SUPPORTED) return false;
        CUBLAS_CHECK(st);
        return true;
      });
      if (ms >= 0 && (t.best_ms < 0 || ms < t.best_ms)) t.best_ms = ms, t.best_rank = int(r);
    }
    CUDA_CHECK(cudaStreamSynchronize(I.stream));
    cublasLtMatmulDescDestroy(p.op);
    cublasLtMatrixLayoutDestroy(p.a);
    cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.d);
    CUDA_CHECK(cudaFree(A));
    CUDA_CHECK(cudaFree(B));
    CUDA_CHECK(cudaFree(D));
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
}

void matmul_forward_cuda(CudaGemm& g, bf16* out, const bf16* inp, const bf16* weight, int N, int C, int OC,
                         const bf16* residual) {
  // out^T[OC,N] = W[OC,C] * inp^T[C,N] (+ residual^T[OC,N])
  g.gemm(/*trans_a=*/true, /*trans_b=*/false, OC, N, C, weight, C, inp, C, out, false, OC, 1.0f,
         residual ? 1.0f : 0.0f, residual);
}

void matmul_backward_cuda(CudaGemm& g, bf16* dinp, void* dweight, bool dweight_f32, const bf16* dout,
                          const bf16* inp, const bf16* weight, int N, int C, int OC, bool accumulate_dinp,
                          bool accumulate_dweight, int ld_dout) {
  if (ld_dout < 0) ld_dout = OC;
  // dinp^T[C,N] = W^T[C,OC] * dout^T[OC,N]
  if (dinp)
    g.gemm(false, false, C, N, OC, weight, C, dout, ld_dout, dinp, false, C, 1.0f, accumulate_dinp ? 1.0f : 0.0f);
  // dW^T[C,OC] = inp^T[C,N] * dout[N,OC]
  if (dweight)
    g.gemm(false, true, C, OC, N, inp, C, dout, ld_dout, dweight, dweight_f32, C, 1.0f,
           accumulate_dweight ? 1.0f : 0.0f);
}

}  // namespace gt
