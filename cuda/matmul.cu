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

#include <cstdio>
#include <cstring>
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

  ~Impl() {
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

  GemmPlan& plan(const GemmKey& key) {
    auto it = plans.find(key);
    if (it != plans.end()) return it->second;
    GemmPlan p;
    if (!lt_enabled) return plans.emplace(key, p).first->second;  // cublasGemmEx for every shape
    const cudaDataType_t dt = key.d_f32 ? CUDA_R_32F : CUDA_R_16BF;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t opa = key.ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = key.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof(opa)));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof(opb)));
    // Layouts describe the matrices as stored (before op): A is m x k, or k x m when transposed.
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, key.ta ? key.k : key.m, key.ta ? key.m : key.k, key.lda));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, key.tb ? key.n : key.k, key.tb ? key.k : key.n, key.ldb));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.d, dt, key.m, key.n, key.ldd));

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
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    const cublasStatus_t st =
        cublasLtMatmulAlgoGetHeuristic(lt, p.op, p.a, p.b, p.d, p.d, pref, 1, &result, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st == CUBLAS_STATUS_SUCCESS && found > 0 && result.state == CUBLAS_STATUS_SUCCESS) {
      p.algo = result.algo;
      p.use_lt = true;
    } else if (st != CUBLAS_STATUS_SUCCESS && st != CUBLAS_STATUS_NOT_SUPPORTED) {
      CUBLAS_CHECK(st);
    }
    return plans.emplace(key, p).first->second;
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
                    void* D, bool d_f32, int ldd, float alpha, float beta) {
  if (m <= 0 || n <= 0) return;
  GT_ASSERT(k > 0);
  GemmKey key;
  key.m = m, key.n = n, key.k = k, key.lda = lda, key.ldb = ldb, key.ldd = ldd;
  key.ta = trans_a, key.tb = trans_b, key.d_f32 = d_f32;
  key.align_a = pointer_alignment(A), key.align_b = pointer_alignment(B), key.align_d = pointer_alignment(D);
  GemmPlan& p = impl_->plan(key);
  if (p.use_lt) {
    const cublasStatus_t st = cublasLtMatmul(impl_->lt, p.op, &alpha, A, p.a, B, p.b, &beta, D, p.d, D, p.d, &p.algo,
                                             impl_->workspace, impl_->workspace_bytes, impl_->stream);
    if (st != CUBLAS_STATUS_NOT_SUPPORTED) {
      CUBLAS_CHECK(st);
      return;
    }
    // The algorithm the heuristic offered refused this call: the shape goes
    // through cublasGemmEx from now on (a fixed choice, so still deterministic).
    p.use_lt = false;
    std::fprintf(stderr, "warning: cuBLASLt refused the %dx%dx%d GEMM its heuristic chose; using cublasGemmEx\n", m,
                 n, k);
  }
  CUBLAS_CHECK(cublasGemmEx(impl_->blas, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, m, n,
                            k, &alpha, A, CUDA_R_16BF, lda, B, CUDA_R_16BF, ldb, &beta, D,
                            d_f32 ? CUDA_R_32F : CUDA_R_16BF, ldd, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void matmul_forward_cuda(CudaGemm& g, bf16* out, const bf16* inp, const bf16* weight, int N, int C, int OC) {
  // out^T[OC,N] = W[OC,C] * inp^T[C,N]
  g.gemm(/*trans_a=*/true, /*trans_b=*/false, OC, N, C, weight, C, inp, C, out, false, OC, 1.0f, 0.0f);
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
