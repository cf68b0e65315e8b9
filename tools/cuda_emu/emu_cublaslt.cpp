// Host stand-ins for the cuBLASLt entry points and cublasGemmEx that
// cuda/matmul.cu calls, so that the real matmul.cu (plan cache, layouts,
// transposes, alignment keys, the cublasGemmEx fallback) runs on the emulator.
// Same C signatures as cublasLt.h / cublas_api.h. The product is a plain loop:
// bf16 operands, fp32 sums in k order, D = alpha·AB + beta·C rounded once to
// D's type; beta == 0 never reads C.
//
// What is checked, and aborts with a message naming the call (where the real
// library would return CUBLAS_STATUS_INVALID_VALUE, pick a wrong algorithm or
// read out of bounds):
//   - descriptors: compute type 32F with fp32 scale, bf16 A/B, bf16 or fp32
//     C and D of one layout (C = D in place, or a separate C that does not
//     overlap D), only the TRANSA / TRANSB attributes;
//   - the layouts agree with each other under the transposes (A is m×k after
//     op, B k×n, D m×n) and ld >= rows;
//   - cublasLtMatmul gets an algorithm the heuristic returned for this very
//     problem, and A, B, C, D meet the minimum alignments the preference
//     declared (cuBLASLt assumes 256 bytes when none is declared);
//   - every operand lies inside one device allocation for its extent, D does
//     not overlap A or B, alpha / beta are host pointers (the default mode);
//   - the workspace, when given, is device memory of the size stated (the
//     emulated algorithm needs none: the heuristic reports workspaceSize 0).
// EMU_CUBLASLT=no_algo makes the heuristic find no algorithm (matmul.cu then
// plans cublasGemmEx); EMU_CUBLASLT=refuse makes cublasLtMatmul return
// CUBLAS_STATUS_NOT_SUPPORTED (matmul.cu's fallback at run time).
// EMU_CUBLASLT=two_algos offers two algorithms per problem, as the real
// heuristic offers several: the first (the default choice) sums k in order
// and sleeps 2 ms per call, the second sums k in reverse order (other
// rounding, so results differ in the last bits) and does not sleep, so that
// autotuning (cuda/matmul_autotune.cu) has a faster one to find and a resume
// that ran the other one is visibly not bit-exact. cublasLtMatmulAlgoCheck
// accepts an algorithm made for the same problem and alignments.
#include <cublasLt.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "emu_blas_check.h"

using namespace emu;

struct cublasLtContext {
  uint32_t magic = 0x17C7;
};

namespace {

constexpr uint32_t kDescMagic = 0xDE5C, kLayoutMagic = 0x1A70, kPrefMagic = 0x9EF0;
constexpr uint64_t kAlgoMagic = 0xA160A160;

struct EmuDesc {
  uint32_t magic = kDescMagic;
  cublasOperation_t ta = CUBLAS_OP_N, tb = CUBLAS_OP_N;
};
struct EmuLayout {
  uint32_t magic = kLayoutMagic;
  cudaDataType type;
  int64_t rows, cols, ld;
};
struct EmuPref {
  uint32_t magic = kPrefMagic;
  uint32_t align[4] = {256, 256, 256, 256};  // A, B, C, D
};
// What cublasLtMatmulAlgo_t::data holds here.
struct EmuAlgo {
  uint64_t magic;
  int64_t m, n, k;
  uint32_t align[4];
  uint32_t variant;  // 0: k in order; 1: k in reverse (EMU_CUBLASLT=two_algos)
};
static_assert(sizeof(EmuAlgo) <= sizeof(cublasLtMatmulAlgo_t), "EmuAlgo must fit cublasLtMatmulAlgo_t");

std::string mode() {
  const char* e = std::getenv("EMU_CUBLASLT");
  return e ? e : "";
}

EmuDesc* desc(const char* call, cublasLtMatmulDesc_t d) {
  auto* p = reinterpret_cast<EmuDesc*>(d);
  if (!p || p->magic != kDescMagic) die(call, "invalid matmul descriptor %p", static_cast<void*>(d));
  return p;
}
const EmuLayout* layout(const char* call, cublasLtMatrixLayout_t l, const char* name) {
  auto* p = reinterpret_cast<const EmuLayout*>(l);
  if (!p || p->magic != kLayoutMagic) die(call, "invalid layout %s %p", name, static_cast<void*>(l));
  return p;
}
EmuPref* pref(const char* call, cublasLtMatmulPreference_t q) {
  auto* p = reinterpret_cast<EmuPref*>(q);
  if (!p || p->magic != kPrefMagic) die(call, "invalid preference %p", static_cast<void*>(q));
  return p;
}
void lt_handle(const char* call, cublasLtHandle_t h) {
  if (!h || h->magic != 0x17C7) die(call, "invalid cuBLASLt handle %p", static_cast<void*>(h));
}

size_t type_bytes(const char* call, cudaDataType t) {
  if (t == CUDA_R_16BF) return 2;
  if (t == CUDA_R_32F) return 4;
  die(call, "data type %d is not emulated (bf16 / fp32 only)", int(t));
}

// The problem the descriptor and layouts state: m, n, k after the transposes.
struct Problem {
  int64_t m, n, k;
};
Problem problem(const char* call, const EmuDesc* d, const EmuLayout* a, const EmuLayout* b, const EmuLayout* c,
                const EmuLayout* dd) {
  if (a->type != CUDA_R_16BF || b->type != CUDA_R_16BF) die(call, "A and B must be bf16 here");
  type_bytes(call, dd->type);
  if (std::memcmp(c, dd, sizeof(EmuLayout)) != 0) die(call, "C and D layouts differ (matmul.cu passes one layout)");
  const bool ta = d->ta != CUBLAS_OP_N, tb = d->tb != CUBLAS_OP_N;
  const Problem p{ta ? a->cols : a->rows, tb ? b->rows : b->cols, ta ? a->rows : a->cols};
  const int64_t kb = tb ? b->cols : b->rows;
  if (kb != p.k || dd->rows != p.m || dd->cols != p.n)
    die(call,
        "layouts disagree: op(A) is %lldx%lld, op(B) %lldx%lld, D %lldx%lld (ta=%d tb=%d; A stored %lldx%lld, B "
        "%lldx%lld)",
        (long long)p.m, (long long)p.k, (long long)kb, (long long)p.n, (long long)dd->rows, (long long)dd->cols, ta,
        tb, (long long)a->rows, (long long)a->cols, (long long)b->rows, (long long)b->cols);
  return p;
}

uint32_t alignment_of(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 1 && a % al != 0) al >>= 1;
  return al;
}

// Column-major D[m,n] = alpha op(A)[m,k] op(B)[k,n] + beta C (C read only when beta != 0).
void product(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const __nv_bfloat16* A, int64_t lda,
             const __nv_bfloat16* B, int64_t ldb, float beta, const void* C, void* D, bool d_f32, int64_t ldd,
             bool reverse_k = false) {
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < m; ++i) {
      float acc = 0.0f;
      for (int64_t q = 0; q < k; ++q) {
        const int64_t p = reverse_k ? k - 1 - q : q;
        const float a = __bfloat162float(ta ? A[p + i * lda] : A[i + p * lda]);
        const float b = __bfloat162float(tb ? B[j + p * ldb] : B[p + j * ldb]);
        acc += a * b;
      }
      const int64_t o = i + j * ldd;
      if (d_f32) {
        const float c = beta != 0.0f ? beta * static_cast<const float*>(C)[o] : 0.0f;
        static_cast<float*>(D)[o] = alpha * acc + c;
      } else {
        const float c = beta != 0.0f ? beta * __bfloat162float(static_cast<const __nv_bfloat16*>(C)[o]) : 0.0f;
        static_cast<__nv_bfloat16*>(D)[o] = __float2bfloat16(alpha * acc + c);
      }
    }
}

// Extents, overlap: shared by cublasLtMatmul and cublasGemmEx.
void operands(const char* call, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const void* A, int64_t lda,
              const void* B, int64_t ldb, const void* C, const void* D, size_t d_bytes, int64_t ldd, float beta) {
  if (lda < std::max<int64_t>(1, ta ? k : m) || ldb < std::max<int64_t>(1, tb ? n : k) || ldd < std::max<int64_t>(1, m))
    die(call, "bad leading dimension: ta=%d tb=%d m=%lld n=%lld k=%lld lda=%lld ldb=%lld ldd=%lld", ta, tb,
        (long long)m, (long long)n, (long long)k, (long long)lda, (long long)ldb, (long long)ldd);
  const size_t na = (ta ? span(k, m, lda) : span(m, k, lda)) * 2, nb = (tb ? span(n, k, ldb) : span(k, n, ldb)) * 2;
  const size_t nd = span(m, n, ldd) * d_bytes;
  dev_bytes(call, "A", A, na);
  dev_bytes(call, "B", B, nb);
  dev_bytes(call, "D", D, nd);
  if (beta != 0.0f) dev_bytes(call, "C", C, nd);
  if (beta != 0.0f && C != D)  // out of place: C may not overlap D (in place is C == D)
    no_overlap(call, "D", static_cast<const char*>(D), nd, "C", static_cast<const char*>(C), nd);
  no_overlap(call, "D", static_cast<const char*>(D), nd, "A", static_cast<const char*>(A), na);
  no_overlap(call, "D", static_cast<const char*>(D), nd, "B", static_cast<const char*>(B), nb);
}

}  // namespace

extern "C" {

cublasStatus_t cublasLtCreate(cublasLtHandle_t* h) {
  make<cublasLtContext>("cublasLtCreate", h);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
  lt_handle("cublasLtDestroy", h);
  retire(h);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* d, cublasComputeType_t compute, cudaDataType_t scale) {
  const char* call = "cublasLtMatmulDescCreate";
  if (compute != CUBLAS_COMPUTE_32F || scale != CUDA_R_32F)
    die(call, "compute type %d / scale type %d not emulated (32F / R_32F only)", int(compute), int(scale));
  make<EmuDesc>(call, d);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
  retire(desc("cublasLtMatmulDescDestroy", d));
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                              const void* buf, size_t bytes) {
  const char* call = "cublasLtMatmulDescSetAttribute";
  EmuDesc* p = desc(call, d);
  if (attr != CUBLASLT_MATMUL_DESC_TRANSA && attr != CUBLASLT_MATMUL_DESC_TRANSB)
    die(call, "attribute %d is not emulated (TRANSA / TRANSB only)", int(attr));
  if (!buf || bytes != sizeof(int32_t)) die(call, "a transpose attribute is one int32 (got %zu bytes)", bytes);
  cublasOperation_t op;
  std::memcpy(&op, buf, sizeof(op));
  op_char(call, op);
  (attr == CUBLASLT_MATMUL_DESC_TRANSA ? p->ta : p->tb) = op;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* l, cudaDataType type, uint64_t rows, uint64_t cols,
                                          int64_t ld) {
  const char* call = "cublasLtMatrixLayoutCreate";
  type_bytes(call, type);
  if (rows == 0 || cols == 0 || rows > (1ull << 31) || cols > (1ull << 31))
    die(call, "rows %llu / cols %llu out of range", (unsigned long long)rows, (unsigned long long)cols);
  if (ld < int64_t(rows)) die(call, "ld %lld < rows %llu", (long long)ld, (unsigned long long)rows);
  make<EmuLayout>(call, l);
  auto* p = reinterpret_cast<EmuLayout*>(*l);
  p->type = type, p->rows = int64_t(rows), p->cols = int64_t(cols), p->ld = ld;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
  retire(const_cast<EmuLayout*>(layout("cublasLtMatrixLayoutDestroy", l, "(destroy)")));
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* q) {
  make<EmuPref>("cublasLtMatmulPreferenceCreate", q);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t q) {
  retire(pref("cublasLtMatmulPreferenceDestroy", q));
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t q,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void* buf,
                                                    size_t bytes) {
  const char* call = "cublasLtMatmulPreferenceSetAttribute";
  EmuPref* p = pref(call, q);
  if (!buf) die(call, "buffer is null");
  auto align = [&](int slot) {
    if (bytes != sizeof(uint32_t)) die(call, "an alignment attribute is one uint32 (got %zu bytes)", bytes);
    std::memcpy(&p->align[slot], buf, sizeof(uint32_t));
    const uint32_t a = p->align[slot];
    if (a == 0 || (a & (a - 1)) != 0) die(call, "alignment %u is not a power of two", a);
  };
  switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES:
      if (bytes != sizeof(uint64_t)) die(call, "MAX_WORKSPACE_BYTES is one uint64 (got %zu bytes)", bytes);
      break;  // the emulated algorithm needs no workspace
    case CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK:
      if (bytes != sizeof(uint32_t)) die(call, "REDUCTION_SCHEME_MASK is one uint32 (got %zu bytes)", bytes);
      break;  // the emulated algorithm reduces in k order: every mask admits it
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES: align(0); break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES: align(1); break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES: align(2); break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: align(3); break;
    default: die(call, "attribute %d is not emulated", int(attr));
  }
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a,
                                              cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
                                              cublasLtMatrixLayout_t dd, cublasLtMatmulPreference_t q, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int* returned) {
  const char* call = "cublasLtMatmulAlgoGetHeuristic";
  lt_handle(call, h);
  const Problem pr = problem(call, desc(call, d), layout(call, a, "A"), layout(call, b, "B"), layout(call, c, "C"),
                             layout(call, dd, "D"));
  const EmuPref* p = pref(call, q);
  if (requested < 1 || !results || !returned) die(call, "bad result array (requested %d)", requested);
  if (mode() == "no_algo") {
    *returned = 0;
    return CUBLAS_STATUS_NOT_SUPPORTED;  // what cuBLASLt returns when no algorithm fits
  }
  const int offered = std::min(requested, mode() == "two_algos" ? 2 : 1);
  for (int r = 0; r < offered; ++r) {
    std::memset(&results[r], 0, sizeof(results[r]));
    const EmuAlgo algo{kAlgoMagic, pr.m, pr.n, pr.k, {p->align[0], p->align[1], p->align[2], p->align[3]}, uint32_t(r)};
    std::memcpy(&results[r].algo, &algo, sizeof(algo));
    results[r].workspaceSize = 0;
    results[r].state = CUBLAS_STATUS_SUCCESS;
    results[r].wavesCount = 1.0f;
  }
  *returned = offered;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulAlgoCheck(cublasLtHandle_t h, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a,
                                       cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t dd,
                                       const cublasLtMatmulAlgo_t* algo, cublasLtMatmulHeuristicResult_t* result) {
  const char* call = "cublasLtMatmulAlgoCheck";
  lt_handle(call, h);
  const Problem pr = problem(call, desc(call, d), layout(call, a, "A"), layout(call, b, "B"), layout(call, c, "C"),
                             layout(call, dd, "D"));
  if (!algo || !result) die(call, "algo or result is null");
  EmuAlgo al;
  std::memcpy(&al, algo, sizeof(al));
  if (al.magic != kAlgoMagic || al.m != pr.m || al.n != pr.n || al.k != pr.k || al.variant > 1)
    return CUBLAS_STATUS_INVALID_VALUE;
  std::memset(result, 0, sizeof(*result));
  result->algo = *algo;
  result->state = CUBLAS_STATUS_SUCCESS;
  result->wavesCount = 1.0f;
  return CUBLAS_STATUS_SUCCESS;
}

size_t cublasLtGetVersion() { return 130000; }

cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void* alpha, const void* A,
                              cublasLtMatrixLayout_t ad, const void* B, cublasLtMatrixLayout_t bd, const void* beta,
                              const void* C, cublasLtMatrixLayout_t cd, void* D, cublasLtMatrixLayout_t dd,
                              const cublasLtMatmulAlgo_t* algo, void* workspace, size_t workspace_bytes,
                              cudaStream_t) {
  const char* call = "cublasLtMatmul";
  lt_handle(call, h);
  const EmuDesc* de = desc(call, d);
  const EmuLayout *la = layout(call, ad, "A"), *lb = layout(call, bd, "B"), *ld = layout(call, dd, "D");
  const Problem pr = problem(call, de, la, lb, layout(call, cd, "C"), ld);
  if (!algo) die(call, "algo is null (matmul.cu always passes the heuristic's)");
  EmuAlgo al;
  std::memcpy(&al, algo, sizeof(al));
  if (al.magic != kAlgoMagic || al.m != pr.m || al.n != pr.n || al.k != pr.k)
    die(call, "the algorithm was not returned by the heuristic for this %lldx%lldx%lld problem", (long long)pr.m,
        (long long)pr.n, (long long)pr.k);
  const void* ptrs[4] = {A, B, C, D};
  const char* names[4] = {"A", "B", "C", "D"};
  for (int i = 0; i < 4; ++i)
    if (alignment_of(ptrs[i]) < al.align[i])
      die(call, "%s (%p) is %u-byte aligned but the algorithm was chosen for %u-byte alignment", names[i], ptrs[i],
          alignment_of(ptrs[i]), al.align[i]);
  if (workspace_bytes) dev_bytes(call, "workspace", workspace, workspace_bytes);
  if (emu_is_device(alpha, sizeof(float)) || emu_is_device(beta, sizeof(float)))
    die(call, "alpha / beta are device memory but the pointer mode is HOST");
  const float a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);
  const bool ta = de->ta != CUBLAS_OP_N, tb = de->tb != CUBLAS_OP_N, f32 = ld->type == CUDA_R_32F;
  operands(call, ta, tb, pr.m, pr.n, pr.k, A, la->ld, B, lb->ld, C, D, f32 ? 4 : 2, ld->ld, b);
  if (mode() == "refuse") return CUBLAS_STATUS_NOT_SUPPORTED;
  if (al.variant == 0 && mode() == "two_algos") std::this_thread::sleep_for(std::chrono::milliseconds(2));
  product(ta, tb, pr.m, pr.n, pr.k, a, static_cast<const __nv_bfloat16*>(A), la->ld,
          static_cast<const __nv_bfloat16*>(B), lb->ld, b, C, D, f32, ld->ld, al.variant == 1);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetAtomicsMode(cublasHandle_t handle, cublasAtomicsMode_t mode) {
  blas("cublasSetAtomicsMode", handle);
  const_cast<cublasContext*>(handle)->atomics = mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                            int k, const void* alpha, const void* A, cudaDataType Atype, int lda, const void* B,
                            cudaDataType Btype, int ldb, const void* beta, void* C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t algo) {
  const char* call = "cublasGemmEx";
  const cublasContext* h = blas(call, handle);
  const bool ta = op_char(call, transa) != 'N', tb = op_char(call, transb) != 'N';
  if (Atype != CUDA_R_16BF || Btype != CUDA_R_16BF || (Ctype != CUDA_R_16BF && Ctype != CUDA_R_32F) ||
      compute != CUBLAS_COMPUTE_32F || algo != CUBLAS_GEMM_DEFAULT)
    die(call, "types %d/%d/%d, compute %d, algo %d not emulated", int(Atype), int(Btype), int(Ctype), int(compute),
        int(algo));
  if (m < 0 || n < 0 || k < 0) die(call, "negative size m=%d n=%d k=%d", m, n, k);
  const float a = scalar(call, h, static_cast<const float*>(alpha), "alpha");
  const float b = scalar(call, h, static_cast<const float*>(beta), "beta");
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  const bool f32 = Ctype == CUDA_R_32F;
  operands(call, ta, tb, m, n, k, A, lda, B, ldb, C, C, f32 ? 4 : 2, ldc, b);
  product(ta, tb, m, n, k, a, static_cast<const __nv_bfloat16*>(A), lda, static_cast<const __nv_bfloat16*>(B), ldb, b,
          C, C, f32, ldc);
  return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"
