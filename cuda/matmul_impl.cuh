// CudaGemm's internals (cuda/matmul.cu), shared with its timing diagnostics
// (cuda/matmul_timing.cu): the per-shape plan cache and the cuBLASLt calls.
// Private to those two files.
#pragma once
#include "cuda/cuda_check.h"  // first: see the note there

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "cuda/matmul.h"

namespace gt {

namespace gemm_detail {

// Largest power of two (<= 256) dividing the address: cuBLASLt's heuristic
// assumes 256-byte aligned pointers unless told otherwise, and arena slices
// need not be.
inline uint32_t pointer_alignment(const void* p) {
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
  int64_t calls = 0;    // run() calls so far (autotune's weights)
};

// x[i] = a uniform bf16 in [-1, 1) from a hash of i: benchmark inputs, not zeros (matmul_timing.cu).
void fill_random_bf16(bf16* x, int64_t n, uint32_t seed, cudaStream_t s);
// Median milliseconds per call of fn over `reps` event-timed runs on stream s,
// after one warm-up run; -1 if fn returns false (the algorithm refused).
template <class Fn>
double median_call_ms(cudaStream_t s, cudaEvent_t e0, cudaEvent_t e1, int reps, Fn fn) {
  if (!fn()) return -1.0;
  std::vector<float> ms(static_cast<size_t>(std::max(reps, 1)));
  for (float& x : ms) {
    CUDA_CHECK(cudaEventRecord(e0, s));
    fn();
    CUDA_CHECK(cudaEventRecord(e1, s));
    CUDA_CHECK(cudaEventSynchronize(e1));
    CUDA_CHECK(cudaEventElapsedTime(&x, e0, e1));
  }
  std::sort(ms.begin(), ms.end());
  return double(ms[ms.size() / 2]);
}

}  // namespace gemm_detail

using namespace gemm_detail;

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
  int64_t untimed = 0;  // calls past the events' capacity
  bool timing = false;

  ~Impl() {
    for (cudaEvent_t e : events) cudaEventDestroy(e);
    clear_plans();
    if (workspace) cudaFree(workspace);
    if (blas) cublasDestroy(blas);
    if (lt) cublasLtDestroy(lt);
  }

  // Frees a plan's descriptor and layouts (those describe() made).
  static void destroy(GemmPlan& p) {
    if (p.op) cublasLtMatmulDescDestroy(p.op);
    if (p.a) cublasLtMatrixLayoutDestroy(p.a);
    if (p.b) cublasLtMatrixLayoutDestroy(p.b);
    if (p.d) cublasLtMatrixLayoutDestroy(p.d);
    p.op = nullptr, p.a = p.b = p.d = nullptr;
  }

  void clear_plans() {
    for (auto& [key, p] : plans) destroy(p);
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

  // One GEMM with algorithm `algo` of plan p; false if cuBLASLt refuses it.
  bool run_algo(const GemmPlan& p, const cublasLtMatmulAlgo_t& algo, const void* A, const void* B, void* D,
                float alpha, float beta) {
    const cublasStatus_t st = cublasLtMatmul(lt, p.op, &alpha, A, p.a, B, p.b, &beta, D, p.d, D, p.d, &algo,
                                             workspace, workspace_bytes, stream);
    if (st == CUBLAS_STATUS_NOT_SUPPORTED) return false;
    CUBLAS_CHECK(st);
    return true;
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
    ++p.calls;
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


}  // namespace gt
