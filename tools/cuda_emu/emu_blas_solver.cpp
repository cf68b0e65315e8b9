// Host stand-ins for the cuBLAS and cuSOLVER entry points cuda/projector.cu
// calls, so that the real projector refresh runs on the emulator
// (tools/cuda_emu/run_projector.sh). Same C signatures as cublas_v2.h /
// cusolverDn.h (projector.cu compiles unchanged); the math is the Fortran
// BLAS / LAPACK of the system (cuBLAS and cuSOLVER are column-major like
// LAPACK, so the arguments map one to one).
//
// What is checked, and aborts with a message naming the call (a real GPU
// would return CUBLAS/CUSOLVER_STATUS_INVALID_VALUE, or read out of bounds):
//   - cuBLAS's / cuSOLVER's argument rules: sizes >= 0, leading dimensions >=
//     the rows they hold, valid enum values, m >= n >= k for orgqr, ...;
//   - every matrix / vector operand (and devInfo, the work buffer) lies inside
//     one cudaMalloc allocation for the extent its shape and ld imply
//     (emu_runtime.h records them); alpha / beta are host pointers in
//     CUBLAS_POINTER_MODE_HOST, device pointers otherwise;
//   - outputs do not overlap inputs (in-place use is undefined in cuBLAS);
//   - the lwork passed to a compute call is at least what its _bufferSize
//     returns. The _bufferSize functions return LAPACK's own workspace query
//     (lwork = -1), so the caller's planned bound is exercised against real
//     LAPACK sizes (not cuSOLVER's: those need the GPU). potrf has no LAPACK
//     workspace: its buffer size is 0.
// gesvdj is emulated with LAPACK sgesvd (U [m, k], and V [n, k] transposed
// from LAPACK's Vᵀ); singular vector signs may differ from cuSOLVER's.
// Everything is synchronous; streams are recorded and ignored.
#include "emu_blas_solver.h"
#include "emu_blas_check.h"

#include <cublas_v2.h>
#include <cusolverDn.h>
#include <sanitizer/asan_interface.h>

#include <algorithm>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

extern "C" {
// Fortran BLAS / LAPACK (gfortran ABI: trailing hidden string lengths).
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*, const float*, const int*,
            const float*, const int*, const float*, float*, const int*, size_t, size_t);
void ssyrk_(const char*, const char*, const int*, const int*, const float*, const float*, const int*, const float*,
            float*, const int*, size_t, size_t);
void dsyrk_(const char*, const char*, const int*, const int*, const double*, const double*, const int*,
            const double*, double*, const int*, size_t, size_t);
void strsm_(const char*, const char*, const char*, const char*, const int*, const int*, const float*, const float*,
            const int*, float*, const int*, size_t, size_t, size_t, size_t);
void dtrsm_(const char*, const char*, const char*, const char*, const int*, const int*, const double*,
            const double*, const int*, double*, const int*, size_t, size_t, size_t, size_t);
void sgeqrf_(const int*, const int*, float*, const int*, float*, float*, const int*, int*);
void sorgqr_(const int*, const int*, const int*, float*, const int*, const float*, float*, const int*, int*);
void spotrf_(const char*, const int*, float*, const int*, int*, size_t);
void dpotrf_(const char*, const int*, double*, const int*, int*, size_t);
void dsyevd_(const char*, const char*, const int*, double*, const int*, double*, double*, const int*, int*,
             const int*, int*, size_t, size_t);
void sgesvd_(const char*, const char*, const int*, const int*, float*, const int*, float*, float*, const int*,
             float*, const int*, float*, const int*, int*, size_t, size_t);
}

struct cusolverDnContext {
  uint32_t magic = 0x5017;
  cudaStream_t stream = nullptr;
};
struct gesvdjInfo {
  uint32_t magic = 0x57D1;
};

namespace emu {

[[noreturn]] void die(const char* call, const char* fmt, ...) {
  std::fprintf(stderr, "emu %s: ", call);
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "\n");
  std::abort();
}
void check(bool ok, const char* call, const char* what) {
  if (!ok) die(call, "%s", what);
}

// Elements spanned by a column-major [rows, cols] block with leading dimension ld.
size_t span(int64_t rows, int64_t cols, int64_t ld) {
  return rows <= 0 || cols <= 0 ? 0 : size_t(ld * (cols - 1) + rows);
}
// Registered workspace regions (emu_blas_solver.h).
struct Region {
  uintptr_t start;
  size_t bytes, padded;
  std::string name;
};
std::mutex regions_mu;
std::vector<Region> regions;
#if defined(__SANITIZE_ADDRESS__)
#define EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMU_ASAN 1
#endif
#endif

void dev_bytes(const char* call, const char* name, const void* p, size_t bytes) {
  if (!bytes) return;
  if (!p) die(call, "%s is null", name);
  if (!emu_is_device(p, bytes)) die(call, "%s (%p, %zu bytes) is not inside one device allocation", name, p, bytes);
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  std::lock_guard<std::mutex> l(regions_mu);
  for (const Region& r : regions)
    if (a >= r.start && a < r.start + r.padded && a + bytes > r.start + r.bytes)
      die(call, "%s (%zu bytes at offset %zu of workspace region '%s') runs past the region's %zu planned bytes", name,
          bytes, size_t(a - r.start), r.name.c_str(), r.bytes);
}
const cublasContext* blas(const char* call, cublasHandle_t h) {
  if (!h || h->magic != 0xB1A5) die(call, "invalid cuBLAS handle %p", static_cast<void*>(h));
  return h;
}
void solver(const char* call, cusolverDnHandle_t h) {
  if (!h || h->magic != 0x5017) die(call, "invalid cuSOLVER handle %p", static_cast<void*>(h));
}
char op_char(const char* call, cublasOperation_t op) {
  switch (op) {
    case CUBLAS_OP_N: return 'N';
    case CUBLAS_OP_T: return 'T';
    case CUBLAS_OP_C: return 'C';  // real types: same as T
    default: die(call, "invalid cublasOperation_t %d", int(op));
  }
}
char fill_char(const char* call, cublasFillMode_t f) {
  switch (f) {
    case CUBLAS_FILL_MODE_LOWER: return 'L';
    case CUBLAS_FILL_MODE_UPPER: return 'U';
    default: die(call, "invalid cublasFillMode_t %d (only LOWER / UPPER here)", int(f));
  }
}
char side_char(const char* call, cublasSideMode_t s) {
  switch (s) {
    case CUBLAS_SIDE_LEFT: return 'L';
    case CUBLAS_SIDE_RIGHT: return 'R';
    default: die(call, "invalid cublasSideMode_t %d", int(s));
  }
}
char diag_char(const char* call, cublasDiagType_t d) {
  switch (d) {
    case CUBLAS_DIAG_NON_UNIT: return 'N';
    case CUBLAS_DIAG_UNIT: return 'U';
    default: die(call, "invalid cublasDiagType_t %d", int(d));
  }
}
char jobz_char(const char* call, cusolverEigMode_t j) {
  switch (j) {
    case CUSOLVER_EIG_MODE_VECTOR: return 'V';
    case CUSOLVER_EIG_MODE_NOVECTOR: return 'N';
    default: die(call, "invalid cusolverEigMode_t %d", int(j));
  }
}
void lwork_ok(const char* call, int lwork, int need) {
  if (lwork < need)
    die(call, "lwork %d is smaller than the %d elements its _bufferSize (LAPACK's query) asks for", lwork, need);
}
int query_size(float w) { return std::max(1, int(w)); }
int query_size(double w) { return std::max(1, int(w)); }

// ---- cuBLAS level 3 ----
template <typename T>
void syrk_check(const char* call, const cublasContext* h, cublasFillMode_t uplo, cublasOperation_t trans, int n, int k,
                const T* alpha, const T* A, int lda, const T* beta, T* C, int ldc, char& u, char& t, T& al, T& be) {
  u = fill_char(call, uplo);
  t = op_char(call, trans);
  check(n >= 0 && k >= 0, call, "negative n or k");
  check(lda >= std::max(1, t == 'N' ? n : k), call, "lda < max(1, trans == N ? n : k)");
  check(ldc >= std::max(1, n), call, "ldc < max(1, n)");
  al = scalar(call, h, alpha, "alpha");
  be = scalar(call, h, beta, "beta");
  const size_t na = t == 'N' ? span(n, k, lda) : span(k, n, lda), nc = span(n, n, ldc);
  dev(call, "A", A, na);
  dev(call, "C", C, nc);
  no_overlap(call, "C", C, nc, "A", A, na);
}
template <typename T>
void trsm_check(const char* call, const cublasContext* h, cublasSideMode_t side, cublasFillMode_t uplo,
                cublasOperation_t trans, cublasDiagType_t diag, int m, int n, const T* alpha, const T* A, int lda,
                T* B, int ldb, char* c, T& al) {
  c[0] = side_char(call, side);
  c[1] = fill_char(call, uplo);
  c[2] = op_char(call, trans);
  c[3] = diag_char(call, diag);
  check(m >= 0 && n >= 0, call, "negative m or n");
  const int ka = c[0] == 'L' ? m : n;
  check(lda >= std::max(1, ka), call, "lda < max(1, side == LEFT ? m : n)");
  check(ldb >= std::max(1, m), call, "ldb < max(1, m)");
  al = scalar(call, h, alpha, "alpha");
  const size_t na = span(ka, ka, lda), nb = span(m, n, ldb);
  dev(call, "A", A, na);
  dev(call, "B", B, nb);
  no_overlap(call, "B", B, nb, "A", A, na);
}

}  // namespace emu
using namespace emu;

void emu_region_clear() {
  std::lock_guard<std::mutex> l(regions_mu);
#ifdef EMU_ASAN
  for (const Region& r : regions)
    if (r.padded > r.bytes && emu_is_device(reinterpret_cast<void*>(r.start), r.padded))  // still allocated
      ASAN_UNPOISON_MEMORY_REGION(reinterpret_cast<void*>(r.start + r.bytes), r.padded - r.bytes);
#endif
  regions.clear();
}
void emu_region_add(const void* p, size_t bytes, size_t padded, const char* name) {
  if (!padded) return;
  if (!emu_is_device(p, padded)) die("emu_region_add", "region %s is not inside one device allocation", name);
  std::lock_guard<std::mutex> l(regions_mu);
  regions.push_back({reinterpret_cast<uintptr_t>(p), bytes, padded, name});
#ifdef EMU_ASAN
  if (padded > bytes) ASAN_POISON_MEMORY_REGION(reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(p) + bytes), padded - bytes);
#endif
}

extern "C" {

const char* cublasGetStatusString(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_<other> (emulator)";
  }
}

cublasStatus_t cublasCreate_v2(cublasHandle_t* h) {
  make<cublasContext>("cublasCreate", h);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy_v2(cublasHandle_t h) {
  retire(const_cast<cublasContext*>(blas("cublasDestroy", h)));
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream_v2(cublasHandle_t h, cudaStream_t s) {
  blas("cublasSetStream", h);
  h->stream = s;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode) {
  blas("cublasSetMathMode", h);
  // Only the plain fp32 mode is emulated exactly (TF32 would round the inputs).
  if (mode != CUBLAS_DEFAULT_MATH && mode != CUBLAS_PEDANTIC_MATH)
    die("cublasSetMathMode", "math mode %d is not emulated (only CUBLAS_DEFAULT_MATH / PEDANTIC)", int(mode));
  h->math = mode;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetPointerMode_v2(cublasHandle_t h, cublasPointerMode_t mode) {
  blas("cublasSetPointerMode", h);
  if (mode != CUBLAS_POINTER_MODE_HOST && mode != CUBLAS_POINTER_MODE_DEVICE)
    die("cublasSetPointerMode", "invalid pointer mode %d", int(mode));
  h->pointer_mode = mode;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t h, void* ws, size_t bytes) {
  blas("cublasSetWorkspace", h);
  // A new workspace binding is a new CudaProjectorRefresh: regions registered
  // for an earlier (maybe freed, its memory reused) object no longer apply.
  emu_region_clear();
  if (bytes) {
    // cuBLAS: the workspace must be device memory, 256-byte aligned.
    if (reinterpret_cast<uintptr_t>(ws) % 256 != 0) die("cublasSetWorkspace", "workspace %p is not 256-byte aligned", ws);
    dev("cublasSetWorkspace", "workspace", static_cast<const char*>(ws), bytes);
  }
  h->workspace = ws;
  h->workspace_bytes = bytes;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                              int k, const float* alpha, const float* A, int lda, const float* B, int ldb,
                              const float* beta, float* C, int ldc) {
  const char* call = "cublasSgemm";
  const cublasContext* h = blas(call, handle);
  const char ta = op_char(call, transa), tb = op_char(call, transb);
  if (m < 0 || n < 0 || k < 0) die(call, "negative size m=%d n=%d k=%d", m, n, k);
  if (lda < std::max(1, ta == 'N' ? m : k) || ldb < std::max(1, tb == 'N' ? k : n) || ldc < std::max(1, m))
    die(call, "bad leading dimension: ta=%c tb=%c m=%d n=%d k=%d lda=%d ldb=%d ldc=%d", ta, tb, m, n, k, lda, ldb, ldc);
  const float al = scalar(call, h, alpha, "alpha"), be = scalar(call, h, beta, "beta");
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  const size_t na = ta == 'N' ? span(m, k, lda) : span(k, m, lda);
  const size_t nb = tb == 'N' ? span(k, n, ldb) : span(n, k, ldb);
  const size_t nc = span(m, n, ldc);
  dev(call, "A", A, na);
  dev(call, "B", B, nb);
  dev(call, "C", C, nc);
  no_overlap(call, "C", C, nc, "A", A, na);
  no_overlap(call, "C", C, nc, "B", B, nb);
  sgemm_(&ta, &tb, &m, &n, &k, &al, A, &lda, B, &ldb, &be, C, &ldc, 1, 1);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSsyrk_v2(cublasHandle_t handle, cublasFillMode_t uplo, cublasOperation_t trans, int n, int k,
                              const float* alpha, const float* A, int lda, const float* beta, float* C, int ldc) {
  const cublasContext* h = blas("cublasSsyrk", handle);
  char u, t;
  float al, be;
  syrk_check("cublasSsyrk", h, uplo, trans, n, k, alpha, A, lda, beta, C, ldc, u, t, al, be);
  if (t == 'C') t = 'T';
  if (n > 0) ssyrk_(&u, &t, &n, &k, &al, A, &lda, &be, C, &ldc, 1, 1);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDsyrk_v2(cublasHandle_t handle, cublasFillMode_t uplo, cublasOperation_t trans, int n, int k,
                              const double* alpha, const double* A, int lda, const double* beta, double* C, int ldc) {
  const cublasContext* h = blas("cublasDsyrk", handle);
  char u, t;
  double al, be;
  syrk_check("cublasDsyrk", h, uplo, trans, n, k, alpha, A, lda, beta, C, ldc, u, t, al, be);
  if (t == 'C') t = 'T';
  if (n > 0) dsyrk_(&u, &t, &n, &k, &al, A, &lda, &be, C, &ldc, 1, 1);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasStrsm_v2(cublasHandle_t handle, cublasSideMode_t side, cublasFillMode_t uplo,
                              cublasOperation_t trans, cublasDiagType_t diag, int m, int n, const float* alpha,
                              const float* A, int lda, float* B, int ldb) {
  const cublasContext* h = blas("cublasStrsm", handle);
  char c[4];
  float al;
  trsm_check("cublasStrsm", h, side, uplo, trans, diag, m, n, alpha, A, lda, B, ldb, c, al);
  if (m > 0 && n > 0) strsm_(&c[0], &c[1], &c[2], &c[3], &m, &n, &al, A, &lda, B, &ldb, 1, 1, 1, 1);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDtrsm_v2(cublasHandle_t handle, cublasSideMode_t side, cublasFillMode_t uplo,
                              cublasOperation_t trans, cublasDiagType_t diag, int m, int n, const double* alpha,
                              const double* A, int lda, double* B, int ldb) {
  const cublasContext* h = blas("cublasDtrsm", handle);
  char c[4];
  double al;
  trsm_check("cublasDtrsm", h, side, uplo, trans, diag, m, n, alpha, A, lda, B, ldb, c, al);
  if (m > 0 && n > 0) dtrsm_(&c[0], &c[1], &c[2], &c[3], &m, &n, &al, A, &lda, B, &ldb, 1, 1, 1, 1);
  return CUBLAS_STATUS_SUCCESS;
}

// ---------------------------------------------------------------- cuSOLVER

cusolverStatus_t cusolverDnCreate(cusolverDnHandle_t* h) {
  make<cusolverDnContext>("cusolverDnCreate", h);
  return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnDestroy(cusolverDnHandle_t h) {
  solver("cusolverDnDestroy", h);
  retire(h);
  return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnSetStream(cusolverDnHandle_t h, cudaStream_t s) {
  solver("cusolverDnSetStream", h);
  h->stream = s;
  return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnCreateGesvdjInfo(gesvdjInfo_t* info) {
  make<gesvdjInfo>("cusolverDnCreateGesvdjInfo", info);
  return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnDestroyGesvdjInfo(gesvdjInfo_t info) {
  if (!info || info->magic != 0x57D1) die("cusolverDnDestroyGesvdjInfo", "invalid gesvdjInfo_t");
  retire(info);
  return CUSOLVER_STATUS_SUCCESS;
}

// ---- geqrf / orgqr ----
namespace {
int geqrf_query(const char* call, int m, int n, int lda) {
  check(m >= 0 && n >= 0, call, "negative m or n");
  check(lda >= std::max(1, m), call, "lda < max(1, m)");
  float w = 0, dummy = 0;
  int lw = -1, info = 0;
  sgeqrf_(&m, &n, &dummy, &lda, &dummy, &w, &lw, &info);
  if (info != 0) die(call, "LAPACK sgeqrf workspace query failed (info %d)", info);
  return query_size(w);
}
int orgqr_query(const char* call, int m, int n, int k, int lda) {
  check(m >= 0 && n >= 0 && k >= 0, call, "negative m, n or k");
  check(n <= m && k <= n, call, "orgqr needs m >= n >= k");
  check(lda >= std::max(1, m), call, "lda < max(1, m)");
  float w = 0, dummy = 0;
  int lw = -1, info = 0;
  sorgqr_(&m, &n, &k, &dummy, &lda, &dummy, &w, &lw, &info);
  if (info != 0) die(call, "LAPACK sorgqr workspace query failed (info %d)", info);
  return query_size(w);
}
}  // namespace

cusolverStatus_t cusolverDnSgeqrf_bufferSize(cusolverDnHandle_t h, int m, int n, float*, int lda, int* lwork) {
  solver("cusolverDnSgeqrf_bufferSize", h);
  if (!lwork) die("cusolverDnSgeqrf_bufferSize", "lwork is null");
  *lwork = geqrf_query("cusolverDnSgeqrf_bufferSize", m, n, lda);
  return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnSgeqrf(cusolverDnHandle_t h, int m, int n, float* A, int lda, float* TAU, float* work,
                                  int lwork, int* devInfo) {
  const char* call = "cusolverDnSgeqrf";
  solver(call, h);
  lwork_ok(call, lwork, geqrf_query(call, m, n, lda));
  dev(call, "A", A, span(m, n, lda));
  dev(call, "TAU", TAU, size_t(std::min(m, n)));
  dev(call, "Workspace", work, size_t(lwork));
  dev(call, "devInfo", devInfo, 1);
  no_overlap(call, "Workspace", work, size_t(lwork), "A", A, span(m, n, lda));
  no_overlap(call, "TAU", TAU, size_t(std::min(m, n)), "A", A, span(m, n, lda));
  int info = 0;
  sgeqrf_(&m, &n, A, &lda, TAU, work, &lwork, &info);
  if (info < 0) die(call, "LAPACK sgeqrf rejected argument %d", -info);
  *devInfo = info;
  return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnSorgqr_bufferSize(cusolverDnHandle_t h, int m, int n, int k, const float*, int lda,
                                             const float*, int* lwork) {
  solver("cusolverDnSorgqr_bufferSize", h);
  if (!lwork) die("cusolverDnSorgqr_bufferSize", "lwork is null");
  *lwork = orgqr_query("cusolverDnSorgqr_bufferSize", m, n, k, lda);
  return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnSorgqr(cusolverDnHandle_t h, int m, int n, int k, float* A, int lda, const float* tau,
                                  float* work, int lwork, int* devInfo) {
  const char* call = "cusolverDnSorgqr";
  solver(call, h);
  lwork_ok(call, lwork, orgqr_query(call, m, n, k, lda));
  dev(call, "A", A, span(m, n, lda));
  dev(call, "tau", tau, size_t(k));
  dev(call, "work", work, size_t(lwork));
  dev(call, "devInfo", devInfo, 1);
  no_overlap(call, "work", work, size_t(lwork), "A", A, span(m, n, lda));
  no_overlap(call, "A", A, span(m, n, lda), "tau", tau, size_t(k));
  int info = 0;
  sorgqr_(&m, &n, &k, A, &lda, tau, work, &lwork, &info);
  if (info < 0) die(call, "LAPACK sorgqr rejected argument %d", -info);
  *devInfo = info;
  return CUSOLVER_STATUS_SUCCESS;
}

// ---- potrf (LAPACK needs no workspace: buffer size 0) ----
namespace {
void potrf_args(const char* call, cublasFillMode_t uplo, int n, int lda, char& u) {
  u = fill_char(call, uplo);
  check(n >= 0, call, "negative n");
  check(lda >= std::max(1, n), call, "lda < max(1, n)");
}
}  // namespace
cusolverStatus_t cusolverDnSpotrf_bufferSize(cusolverDnHandle_t h, cublasFillMode_t uplo, int n, float*, int lda,
                                             int* lwork) {
  solver("cusolverDnSpotrf_bufferSize", h);
  char u;
  potrf_args("cusolverDnSpotrf_bufferSize", uplo, n, lda, u);
  *lwork = 0;
  return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnDpotrf_bufferSize(cusolverDnHandle_t h, cublasFillMode_t uplo, int n, double*, int lda,
                                             int* lwork) {
  solver("cusolverDnDpotrf_bufferSize", h);
  char u;
  potrf_args("cusolverDnDpotrf_bufferSize", uplo, n, lda, u);
  *lwork = 0;
  return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnSpotrf(cusolverDnHandle_t h, cublasFillMode_t uplo, int n, float* A, int lda, float* work,
                                  int lwork, int* devInfo) {
  const char* call = "cusolverDnSpotrf";
  solver(call, h);
  char u;
  potrf_args(call, uplo, n, lda, u);
  check(lwork >= 0, call, "negative lwork");
  dev(call, "A", A, span(n, n, lda));
  dev(call, "Workspace", work, size_t(lwork));
  dev(call, "devInfo", devInfo, 1);
  no_overlap(call, "Workspace", work, size_t(lwork), "A", A, span(n, n, lda));
  int info = 0;
  spotrf_(&u, &n, A, &lda, &info, 1);
  if (info < 0) die(call, "LAPACK spotrf rejected argument %d", -info);
  *devInfo = info;
  return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnDpotrf(cusolverDnHandle_t h, cublasFillMode_t uplo, int n, double* A, int lda,
                                  double* work, int lwork, int* devInfo) {
  const char* call = "cusolverDnDpotrf";
  solver(call, h);
  char u;
  potrf_args(call, uplo, n, lda, u);
  check(lwork >= 0, call, "negative lwork");
  dev(call, "A", A, span(n, n, lda));
  dev(call, "Workspace", work, size_t(lwork));
  dev(call, "devInfo", devInfo, 1);
  no_overlap(call, "Workspace", work, size_t(lwork), "A", A, span(n, n, lda));
  int info = 0;
  dpotrf_(&u, &n, A, &lda, &info, 1);
  if (info < 0) die(call, "LAPACK dpotrf rejected argument %d", -info);
  *devInfo = info;
  return CUSOLVER_STATUS_SUCCESS;
}

// ---- syevd (LAPACK's integer workspace is allocated here; cuSOLVER has none) ----
namespace {
void syevd_query(const char* call, cusolverEigMode_t jobz, cublasFillMode_t uplo, int n, int lda, char& j, char& u,
                 int& lwork, int& liwork) {
  j = jobz_char(call, jobz);
  u = fill_char(call, uplo);
  check(n >= 0, call, "negative n");
  check(lda >= std::max(1, n), call, "lda < max(1, n)");
  double w = 0, dummy = 0;
  int iw = 0, lw = -1, liw = -1, info = 0;
  dsyevd_(&j, &u, &n, &dummy, &lda, &dummy, &w, &lw, &iw, &liw, &info, 1, 1);
  if (info != 0) die(call, "LAPACK dsyevd workspace query failed (info %d)", info);
  lwork = query_size(w);
  liwork = std::max(1, iw);
}
}  // namespace
cusolverStatus_t cusolverDnDsyevd_bufferSize(cusolverDnHandle_t h, cusolverEigMode_t jobz, cublasFillMode_t uplo,
                                             int n, const double*, int lda, const double*, int* lwork) {
  solver("cusolverDnDsyevd_bufferSize", h);
  char j, u;
  int liwork;
  syevd_query("cusolverDnDsyevd_bufferSize", jobz, uplo, n, lda, j, u, *lwork, liwork);
  return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnDsyevd(cusolverDnHandle_t h, cusolverEigMode_t jobz, cublasFillMode_t uplo, int n,
                                  double* A, int lda, double* W, double* work, int lwork, int* devInfo) {
  const char* call = "cusolverDnDsyevd";
  solver(call, h);
  char j, u;
  int need, liwork;
  syevd_query(call, jobz, uplo, n, lda, j, u, need, liwork);
  lwork_ok(call, lwork, need);
  dev(call, "A", A, span(n, n, lda));
  dev(call, "W", W, size_t(n));
  dev(call, "work", work, size_t(lwork));
  dev(call, "devInfo", devInfo, 1);
  no_overlap(call, "W", W, size_t(n), "A", A, span(n, n, lda));
  no_overlap(call, "work", work, size_t(lwork), "A", A, span(n, n, lda));
  no_overlap(call, "work", work, size_t(lwork), "W", W, size_t(n));
  std::vector<int> iwork(static_cast<size_t>(liwork));
  int info = 0;
  dsyevd_(&j, &u, &n, A, &lda, W, work, &lwork, iwork.data(), &liwork, &info, 1, 1);
  if (info < 0) die(call, "LAPACK dsyevd rejected argument %d", -info);
  *devInfo = info;
  return CUSOLVER_STATUS_SUCCESS;
}

// ---- gesvdj, emulated by sgesvd: A [m, n] = U·diag(S)·Vᵀ; econ: U [m, k], V [n, k] ----
namespace {
struct SvdArgs {
  char job;  // sgesvd's jobu = jobvt: 'S' (econ), 'A', or 'N' (no vectors)
  int k, ucols, vcols;
};
SvdArgs gesvdj_args(const char* call, cusolverEigMode_t jobz, int econ, int m, int n, int lda, int ldu, int ldv,
                    gesvdjInfo_t params) {
  const char j = jobz_char(call, jobz);
  check(econ == 0 || econ == 1, call, "econ must be 0 or 1");
  check(m >= 0 && n >= 0, call, "negative m or n");
  check(lda >= std::max(1, m), call, "lda < max(1, m)");
  if (j == 'V') {
    check(ldu >= std::max(1, m), call, "ldu < max(1, m)");
    check(ldv >= std::max(1, n), call, "ldv < max(1, n)");
  }
  if (!params || params->magic != 0x57D1) die(call, "invalid gesvdjInfo_t");
  SvdArgs a;
  a.k = std::min(m, n);
  a.job = j == 'N' ? 'N' : econ ? 'S' : 'A';
  a.ucols = a.job == 'N' ? 0 : econ ? a.k : m;
  a.vcols = a.job == 'N' ? 0 : econ ? a.k : n;
  return a;
}
int gesvd_query(const char* call, const SvdArgs& a, int m, int n, int lda) {
  float w = 0, dummy = 0;
  const int ldu = std::max(1, m), ldvt = std::max(1, a.job == 'A' ? n : a.k);
  int lw = -1, info = 0;
  sgesvd_(&a.job, &a.job, &m, &n, &dummy, &lda, &dummy, &dummy, &ldu, &dummy, &ldvt, &w, &lw, &info, 1, 1);
  if (info != 0) die(call, "LAPACK sgesvd workspace query failed (info %d)", info);
  return query_size(w);
}
}  // namespace
cusolverStatus_t cusolverDnSgesvdj_bufferSize(cusolverDnHandle_t h, cusolverEigMode_t jobz, int econ, int m, int n,
                                              const float*, int lda, const float*, const float*, int ldu, const float*,
                                              int ldv, int* lwork, gesvdjInfo_t params) {
  const char* call = "cusolverDnSgesvdj_bufferSize";
  solver(call, h);
  const SvdArgs a = gesvdj_args(call, jobz, econ, m, n, lda, ldu, ldv, params);
  *lwork = gesvd_query(call, a, m, n, lda);
  return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnSgesvdj(cusolverDnHandle_t h, cusolverEigMode_t jobz, int econ, int m, int n, float* A,
                                   int lda, float* S, float* U, int ldu, float* V, int ldv, float* work, int lwork,
                                   int* devInfo, gesvdjInfo_t params) {
  const char* call = "cusolverDnSgesvdj";
  solver(call, h);
  const SvdArgs a = gesvdj_args(call, jobz, econ, m, n, lda, ldu, ldv, params);
  lwork_ok(call, lwork, gesvd_query(call, a, m, n, lda));
  const size_t na = span(m, n, lda), nu = span(m, a.ucols, ldu), nv = span(n, a.vcols, ldv);
  dev(call, "A", A, na);
  dev(call, "S", S, size_t(a.k));
  dev(call, "U", U, nu);
  dev(call, "V", V, nv);
  dev(call, "work", work, size_t(lwork));
  dev(call, "info", devInfo, 1);
  no_overlap(call, "U", U, nu, "A", A, na);
  no_overlap(call, "V", V, nv, "A", A, na);
  no_overlap(call, "U", U, nu, "V", V, nv);
  no_overlap(call, "S", S, size_t(a.k), "A", A, na);
  no_overlap(call, "work", work, size_t(lwork), "A", A, na);
  no_overlap(call, "work", work, size_t(lwork), "U", U, nu);
  no_overlap(call, "work", work, size_t(lwork), "V", V, nv);
  // LAPACK returns Vᵀ [vcols, n]; cuSOLVER returns V [n, vcols] (ld ldv).
  const int ldvt = std::max(1, a.vcols);
  std::vector<float> vt(size_t(std::max(1, a.vcols)) * size_t(std::max(1, n)));
  float dummy = 0;
  int info = 0, ldu_l = a.job == 'N' ? 1 : ldu;
  sgesvd_(&a.job, &a.job, &m, &n, A, &lda, S, a.job == 'N' ? &dummy : U, &ldu_l, a.job == 'N' ? &dummy : vt.data(),
          &ldvt, work, &lwork, &info, 1, 1);
  if (info < 0) die(call, "LAPACK sgesvd rejected argument %d", -info);
  if (a.job != 'N')
    for (int j = 0; j < a.vcols; ++j)
      for (int i = 0; i < n; ++i) V[size_t(i) + size_t(j) * size_t(ldv)] = vt[size_t(j) + size_t(i) * size_t(ldvt)];
  // cuSOLVER gesvdj: info = min(m, n) + 1 when it did not converge.
  *devInfo = info > 0 ? std::min(m, n) + 1 : 0;
  return CUSOLVER_STATUS_SUCCESS;
}

}  // extern "C"
