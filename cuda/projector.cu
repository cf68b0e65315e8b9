// GaLore projector refresh on the GPU (contract: cuda/projector.h). The
// algorithm is randomized_basis + fix_basis_signs of optim/projector.cpp, step
// for step; cuBLAS / cuSOLVER are column-major, so every basis here is a
// column-major [d, c] block (column j contiguous) and the row-major bf16
// projectors are converted on the way in and out:
//   A [m, r] row-major  = column-major Aᵀ: transposed (tiled kernel);
//   B [r, n] row-major  = column-major [n, r] = the right side's basis as is.
// The fp32 copy of g [m, n] row-major is column-major Gᵀ [n, m] (ld n), so
// X·B and Xᵀ·Q are one GEMM each with op(Gf) = T or N by side.
#include "cuda/cuda_check.h"  // first: see the note there

#include <algorithm>
#include <cstring>
#include <string>

#include "cuda/projector.h"
#include "cuda/quant8.h"  // finite_f32
#include "cuda/sketch.h"

namespace gt {

namespace {

constexpr int kThreads = 256;
constexpr int kTile = 32;  // transpose tile [32, 32], block (32, 8)

int grid_for(int64_t n) { return int(std::min<int64_t>(std::max<int64_t>(ceil_div(n, kThreads), 1), 8192)); }

// ---------------------------------------------------------------- kernels

// out[i] = g[i] as fp32, non-finite -> 0 (compute_projector reads them as 0).
__global__ void grad_to_f32_kernel(const bf16* g, float* out, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float x = __bfloat162float(g[i]);
    out[i] = finite_f32(x) ? x : 0.0f;
  }
}

// panel [pw, m] column-major (= row-major [m, pw]) = G[:, c0:c0+pw] of G [m, n]
// row-major, as fp32 with non-finite -> 0: one panel of X = G's columns, transposed.
__global__ void grad_cols_to_f32_kernel(const bf16* g, float* panel, int64_t m, int64_t n, int64_t c0, int64_t pw) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < m * pw; i += int64_t(gridDim.x) * blockDim.x) {
    const float x = __bfloat162float(g[(i / pw) * n + c0 + i % pw]);
    panel[i] = finite_f32(x) ? x : 0.0f;
  }
}

// Ω [e, k] column-major: element idx = j·e + i is sketch_normal(seed, idx), as the CPU.
__global__ void sketch_kernel(float* omega, int64_t n, uint64_t seed) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    omega[i] = sketch_normal(seed, uint64_t(i));
}

// out [cols, rows] row-major = transpose of in [rows, cols] row-major, times
// row_sign[row of in] when given. Tiled through shared memory so both sides
// are coalesced.
template <typename Tin, typename Tout>
__global__ void transpose_kernel(const Tin* in, Tout* out, int64_t rows, int64_t cols, const float* row_sign) {
  __shared__ float tile[kTile][kTile + 1];
  const int64_t c0 = int64_t(blockIdx.x) * kTile, r0 = int64_t(blockIdx.y) * kTile;
  for (int k = threadIdx.y; k < kTile; k += blockDim.y) {
    const int64_t r = r0 + k, c = c0 + threadIdx.x;
    if (r < rows && c < cols) tile[k][threadIdx.x] = to_f32(in[r * cols + c]) * (row_sign ? row_sign[r] : 1.0f);
  }
  __syncthreads();
  for (int k = threadIdx.y; k < kTile; k += blockDim.y) {
    const int64_t c = c0 + k, r = r0 + threadIdx.x;
    if (r < rows && c < cols) out[c * rows + r] = from_f32<Tout>(tile[threadIdx.x][k]);
  }
}

// out [rows, cols] = in [rows, cols] (type conversion), times row_sign[row] when given.
template <typename Tin, typename Tout>
__global__ void convert_rows_kernel(const Tin* in, Tout* out, int64_t rows, int64_t cols, const float* row_sign) {
  const int64_t n = rows * cols;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = from_f32<Tout>(to_f32(in[i]) * (row_sign ? row_sign[i / cols] : 1.0f));
}

__global__ void f32_to_f64_kernel(const float* in, double* out, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = double(in[i]);
}
__global__ void f64_to_f32_kernel(const double* in, float* out, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = float(in[i]);
}
__global__ void square_kernel(const float* in, float* out, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = in[i] * in[i];
}

// Stage 1 of ‖y‖_F²: partial[b] over a fixed grid of kProjectorNormBlocks blocks.
__global__ void __launch_bounds__(kThreads) sumsq_partial_kernel(const float* y, int64_t n, double* partial) {
  __shared__ double red[kThreads];
  double s = 0.0;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    s += double(y[i]) * y[i];
  s = block_sum(s, red);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// Stage 2: μ = kWarmShift·‖y‖_F, or 1 when y = 0 (as the CPU).
__global__ void shift_kernel(const double* partial, float* mu) {
  __shared__ double red[kProjectorNormBlocks];
  const double s = block_sum(partial[threadIdx.x], red);
  if (threadIdx.x == 0) {
    const double norm = sqrt(s);
    *mu = norm > 0.0 ? float(kWarmShift * norm) : 1.0f;
  }
}

// y += μ·p.
__global__ void add_scaled_kernel(float* y, const float* p, const float* mu, int64_t n) {
  const float s = *mu;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] += s * p[i];
}

// R [k, k] fp64 column-major = upper triangle of the top k rows of w [rows, k] (ld rows).
__global__ void upper_to_f64_kernel(const float* w, int64_t rows, int64_t k, double* R) {
  const int64_t n = k * k;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = i % k, col = i / k;
    R[i] = row <= col ? double(w[col * rows + row]) : 0.0;
  }
}

// Vr [c, r] fp32 = the eigenvectors V [c, c] (ascending eigenvalues) of the
// r largest eigenvalues, in descending order.
__global__ void ritz_select_kernel(const double* V, int64_t c, int64_t r, float* Vr) {
  const int64_t n = c * r;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = i % c, j = i / c;
    Vr[i] = float(V[(c - 1 - j) * c + row]);
  }
}

// sign[j] for column j of P [d, r] (column-major), one block per column:
// with P_old, -1 where P[:, j]·P_old[:, j] < 0; without, -1 where the
// largest-magnitude entry (the first on ties) is negative (fix_basis_signs).
__global__ void __launch_bounds__(kThreads)
    column_signs_kernel(const float* P, const float* P_old, int64_t d, float* sign) {
  __shared__ double red[kThreads];
  __shared__ float best_v[kThreads];
  __shared__ int64_t best_i[kThreads];
  const int64_t j = blockIdx.x;
  const float* p = P + j * d;
  if (P_old) {
    const float* po = P_old + j * d;
    double s = 0.0;
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) s += double(p[i]) * po[i];
    s = block_sum(s, red);
    if (threadIdx.x == 0) sign[j] = s < 0.0 ? -1.0f : 1.0f;
    return;
  }
  float bv = -1.0f;
  int64_t bi = 0;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x)
    if (fabsf(p[i]) > bv) bv = fabsf(p[i]), bi = i;  // strided: lowest index kept on ties
  best_v[threadIdx.x] = bv;
  best_i[threadIdx.x] = bi;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      const float ov = best_v[threadIdx.x + s];
      const int64_t oi = best_i[threadIdx.x + s];
      if (ov > best_v[threadIdx.x] || (ov == best_v[threadIdx.x] && oi < best_i[threadIdx.x]))
        best_v[threadIdx.x] = ov, best_i[threadIdx.x] = oi;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) sign[j] = p[best_i[0]] < 0.0f ? -1.0f : 1.0f;
}

// Sticky status: the first failing cuSOLVER call's code and info.
__global__ void note_info_kernel(const int* info, int* status, int code, bool only_negative) {
  const int v = *info;
  if (status[0] == 0 && (only_negative ? v < 0 : v != 0)) {
    status[0] = code;
    status[1] = v;
  }
}

enum InfoCode { kGeqrf = 1, kOrgqr, kSyevd, kPotrf64, kPotrf32, kGesvdj };
const char* info_name(int code) {
  switch (code) {
    case kGeqrf: return "geqrf";
    case kOrgqr: return "orgqr";
    case kSyevd: return "syevd (Rayleigh-Ritz)";
    case kPotrf64: return "potrf fp64 (CholeskyQR pass 1)";
    case kPotrf32: return "potrf fp32 (CholeskyQR pass 2)";
    case kGesvdj: return "gesvdj";
  }
  return "?";
}

}  // namespace

// ---------------------------------------------------------------- implementation

struct CudaProjectorRefresh::Impl {
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  cusolverDnHandle_t solver = nullptr;
  gesvdjInfo_t svdj = nullptr;
  cudaEvent_t done = nullptr;  // after the status copy of the last refresh
  int* host_status = nullptr;  // pinned [2]
  bool refreshed = false;

  GaloreConfig cfg;             // the construction's
  ProjectorWorkspace plan;      // region sizes (bytes)
  // regions
  float *gf = nullptr, *gpanel = nullptr, *big = nullptr, *y = nullptr, *p_old = nullptr, *p_new = nullptr,
        *tau = nullptr, *sign = nullptr, *svd_s = nullptr, *svd_u = nullptr, *svd_v = nullptr;
  const bf16* g = nullptr;  // the gradient [m, n] row-major of the refresh in progress
  double *yd = nullptr, *s64 = nullptr, *eig = nullptr, *partial = nullptr;
  float* mu = nullptr;
  int* info = nullptr;    // [1]
  int* status = nullptr;  // [2] sticky
  void* lwork = nullptr;
  char* reproject_base = nullptr;
  int lwork_f = 0, lwork_d = 0;  // elements passed to cuSOLVER (fp32 / fp64 calls)

  // Releases here, not in ~CudaProjectorRefresh: when the constructor throws
  // after creating the handles (e.g. the lwork bound check), the outer
  // destructor never runs, but impl_ (a constructed member) is still destroyed.
  ~Impl() {
    if (stream) cudaStreamSynchronize(stream);  // the pinned status copy may be in flight
    if (svdj) cusolverDnDestroyGesvdjInfo(svdj);
    if (solver) cusolverDnDestroy(solver);
    if (blas) cublasDestroy(blas);
    if (done) cudaEventDestroy(done);
    if (host_status) cudaFreeHost(host_status);
  }

  void note(int code, bool only_negative = false) {
    note_info_kernel<<<1, 1, 0, stream>>>(info, status, code, only_negative);
    CUDA_CHECK_LAUNCH();
  }

  // Column-major C [M, N] = op(A)·op(B) + beta·C (fp32, no TF32: CUBLAS_DEFAULT_MATH).
  void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
             int64_t ldb, float* C, int64_t ldc, float beta = 0.0f) {
    const float one = 1.0f;
    CUBLAS_CHECK(cublasSgemm(blas, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N, int(M), int(N),
                             int(K), &one, A, int(lda), B, int(ldb), &beta, C, int(ldc)));
  }

  // X = G (left) or Gᵀ (right), X [d, e], is read from the bf16 gradient one
  // fp32 panel X[:, p0:p0+pw] at a time (kProjectorPanelCols). In gpanel:
  //   left:  the panel transposed, column-major [pw, d] (G's columns p0.., row by row);
  //   right: the panel, column-major [d, pw] (G's rows p0.., a straight copy).
  int64_t load_panel(bool left, int64_t m, int64_t n, int64_t p0) {
    const int64_t e = left ? n : m, pw = std::min(kProjectorPanelCols, e - p0);
    if (left)
      grad_cols_to_f32_kernel<<<grid_for(m * pw), kThreads, 0, stream>>>(g, gpanel, m, n, p0, pw);
    else
      grad_to_f32_kernel<<<grid_for(pw * n), kThreads, 0, stream>>>(g + p0 * n, gpanel, pw * n);
    CUDA_CHECK_LAUNCH();
    return pw;
  }
  // Y [d, c] = X·B, B [e, c]: a sum over the panels (beta = 1 after the first).
  void mul_x(bool left, int64_t m, int64_t n, int64_t c, const float* B, float* Y) {
    const int64_t d = left ? m : n, e = left ? n : m;
    for (int64_t p0 = 0; p0 < e; p0 += kProjectorPanelCols) {
      const int64_t pw = load_panel(left, m, n, p0);
      const float beta = p0 == 0 ? 0.0f : 1.0f;
      if (left)
        sgemm(true, false, d, c, pw, gpanel, pw, B + p0, e, Y, d, beta);
      else
        sgemm(false, false, d, c, pw, gpanel, d, B + p0, e, Y, d, beta);
    }
  }
  // Z [e, c] = Xᵀ·Q, Q [d, c]: panel p gives rows p0..p0+pw of Z.
  void mul_xt(bool left, int64_t m, int64_t n, int64_t c, const float* Q, float* Z) {
    const int64_t d = left ? m : n, e = left ? n : m;
    for (int64_t p0 = 0; p0 < e; p0 += kProjectorPanelCols) {
      const int64_t pw = load_panel(left, m, n, p0);
      if (left)
        sgemm(false, false, pw, c, d, gpanel, pw, Q, d, Z + p0, e);
      else
        sgemm(true, false, pw, c, d, gpanel, d, Q, d, Z + p0, e);
    }
  }

  // a [rows, cols] (column-major, rows >= cols) <- its thin Householder Q.
  void householder_q(float* a, int64_t rows, int64_t cols) {
    CUSOLVER_CHECK(cusolverDnSgeqrf(solver, int(rows), int(cols), a, int(rows), tau, static_cast<float*>(lwork),
                                    lwork_f, info));
    note(kGeqrf);
    CUSOLVER_CHECK(cusolverDnSorgqr(solver, int(rows), int(cols), int(cols), a, int(rows), tau,
                                    static_cast<float*>(lwork), lwork_f, info));
    note(kOrgqr);
  }

  // y [d, c] <- CholeskyQR2(y): pass 1 fp64 (Gram, Cholesky, solve), pass 2 fp32.
  void cholqr2(float* Y, int64_t d, int64_t c) {
    const int64_t n = d * c;
    const double one = 1.0, zero = 0.0;
    f32_to_f64_kernel<<<grid_for(n), kThreads, 0, stream>>>(Y, yd, n);
    CUDA_CHECK_LAUNCH();
    CUBLAS_CHECK(cublasDsyrk(blas, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_T, int(c), int(d), &one, yd, int(d), &zero, s64,
                             int(c)));  // G = YᵀY [c, c], lower
    CUSOLVER_CHECK(cusolverDnDpotrf(solver, CUBLAS_FILL_MODE_LOWER, int(c), s64, int(c), static_cast<double*>(lwork),
                                    lwork_d, info));  // G = L·Lᵀ
    note(kPotrf64);
    CUBLAS_CHECK(cublasDtrsm(blas, CUBLAS_SIDE_RIGHT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_T, CUBLAS_DIAG_NON_UNIT, int(d),
                             int(c), &one, s64, int(c), yd, int(d)));  // Y·L⁻ᵀ
    f64_to_f32_kernel<<<grid_for(n), kThreads, 0, stream>>>(yd, Y, n);
    CUDA_CHECK_LAUNCH();
    const float onef = 1.0f, zerof = 0.0f;
    float* g32 = reinterpret_cast<float*>(s64);  // [c, c] fp32, reuses the fp64 Gram's memory
    CUBLAS_CHECK(cublasSsyrk(blas, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_T, int(c), int(d), &onef, Y, int(d), &zerof, g32,
                             int(c)));
    CUSOLVER_CHECK(cusolverDnSpotrf(solver, CUBLAS_FILL_MODE_LOWER, int(c), g32, int(c), static_cast<float*>(lwork),
                                    lwork_f, info));
    note(kPotrf32);
    CUBLAS_CHECK(cublasStrsm(blas, CUBLAS_SIDE_RIGHT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_T, CUBLAS_DIAG_NON_UNIT,
                             int(d), int(c), &onef, g32, int(c), Y, int(d)));
  }

  // The randomized basis P [d, r] (column-major) of one side; returns where it is.
  const float* randomized_side(const GaloreConfig& run, bool left, int64_t m, int64_t n, int64_t r, uint64_t seed,
                               const float* warm) {
    const int64_t d = left ? m : n, e = left ? n : m;
    if (warm) {
      // max(q, 1) times: Z = Xᵀ·P, Y = X·Z + μ·P, P = cholqr2(Y). The iterate
      // alternates between y and p_new (the first reads p_old).
      const float* cur = warm;
      for (int it = 0; it < std::max(run.power_iters, 1); ++it) {
        float* dst = it % 2 == 0 ? y : p_new;
        mul_xt(left, m, n, r, cur, big);  // Z [e, r]
        mul_x(left, m, n, r, big, dst);   // Y [d, r]
        sumsq_partial_kernel<<<kProjectorNormBlocks, kThreads, 0, stream>>>(dst, d * r, partial);
        CUDA_CHECK_LAUNCH();
        shift_kernel<<<1, kProjectorNormBlocks, 0, stream>>>(partial, mu);
        CUDA_CHECK_LAUNCH();
        add_scaled_kernel<<<grid_for(d * r), kThreads, 0, stream>>>(dst, cur, mu, d * r);
        CUDA_CHECK_LAUNCH();
        cholqr2(dst, d, r);
        cur = dst;
      }
      return cur;
    }
    const int64_t c = std::min<int64_t>({r + run.oversampling, d, e});
    sketch_kernel<<<grid_for(e * c), kThreads, 0, stream>>>(big, e * c, seed);  // Ω [e, c]
    CUDA_CHECK_LAUNCH();
    mul_x(left, m, n, c, big, y);  // Y [d, c]
    householder_q(y, d, c);
    for (int it = 0; it < run.power_iters; ++it) {
      mul_xt(left, m, n, c, y, big);  // Z [e, c]
      householder_q(big, e, c);
      mul_x(left, m, n, c, big, y);
      householder_q(y, d, c);
    }
    // Rayleigh-Ritz: W = Xᵀ·Q = Q_w·R_w; eigenvectors of R_wᵀ·R_w (fp64).
    mul_xt(left, m, n, c, y, big);  // W [e, c]
    CUSOLVER_CHECK(cusolverDnSgeqrf(solver, int(e), int(c), big, int(e), tau, static_cast<float*>(lwork), lwork_f,
                                    info));
    note(kGeqrf);
    double* R = s64;          // [c, c]
    double* S = s64 + c * c;  // [c, c]
    upper_to_f64_kernel<<<grid_for(c * c), kThreads, 0, stream>>>(big, e, c, R);
    CUDA_CHECK_LAUNCH();
    const double one = 1.0, zero = 0.0;
    CUBLAS_CHECK(cublasDsyrk(blas, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_T, int(c), int(c), &one, R, int(c), &zero, S,
                             int(c)));  // S = RᵀR, lower
    CUSOLVER_CHECK(cusolverDnDsyevd(solver, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, int(c), S, int(c), eig,
                                    static_cast<double*>(lwork), lwork_d, info));  // ascending
    note(kSyevd);
    ritz_select_kernel<<<grid_for(c * r), kThreads, 0, stream>>>(S, c, r, big);  // V[:, top r] [c, r]
    CUDA_CHECK_LAUNCH();
    sgemm(false, false, d, r, c, y, d, big, c, p_new, d);  // P = Q·V [d, r]
    return p_new;
  }

  // p_old [d, r] column-major from the previous bf16 projector (A_old [m, r] or B_old [r, n]).
  void load_old(bool left, int64_t m, int64_t n, int64_t r, const bf16* old) {
    if (left) {
      const dim3 grid(unsigned(ceil_div(r, kTile)), unsigned(ceil_div(m, kTile)));
      transpose_kernel<bf16, float><<<grid, dim3(kTile, 8), 0, stream>>>(old, p_old, m, r, nullptr);
    } else {
      convert_rows_kernel<bf16, float><<<grid_for(r * n), kThreads, 0, stream>>>(old, p_old, r, n, nullptr);
    }
    CUDA_CHECK_LAUNCH();
  }

  // Signs (fix_basis_signs) of P [d, r] column-major, then out = A [m, r] / B [r, n] bf16.
  void store(bool left, int64_t m, int64_t n, int64_t r, const float* P, bool have_old, bf16* out) {
    const int64_t d = left ? m : n;
    column_signs_kernel<<<unsigned(r), kThreads, 0, stream>>>(P, have_old ? p_old : nullptr, d, sign);
    CUDA_CHECK_LAUNCH();
    if (left) {  // P viewed row-major is Pᵀ [r, m]
      const dim3 grid(unsigned(ceil_div(m, kTile)), unsigned(ceil_div(r, kTile)));
      transpose_kernel<float, bf16><<<grid, dim3(kTile, 8), 0, stream>>>(P, out, r, m, sign);
    } else {  // column-major [n, r] is B row-major [r, n]
      convert_rows_kernel<float, bf16><<<grid_for(r * n), kThreads, 0, stream>>>(P, out, r, n, sign);
    }
    CUDA_CHECK_LAUNCH();
  }
};

CudaProjectorRefresh::CudaProjectorRefresh(cudaStream_t stream, const GaloreConfig& cfg,
                                           const std::vector<ProjGeom>& geos, void* workspace,
                                           size_t workspace_bytes_, const External* external)
    : impl_(std::make_unique<Impl>()) {
  Impl& I = *impl_;
  I.stream = stream;
  I.cfg = cfg;
  if (external && (!external->cublas_workspace || !external->state ||
                   reinterpret_cast<uintptr_t>(external->state) % 256 != 0))
    fail("CudaProjectorRefresh: External needs a cuBLAS workspace and a 256-byte aligned state buffer");
  I.plan = projector_workspace_layout(cfg, geos, external != nullptr);
  const size_t need = I.plan.total();
  if (workspace_bytes_ < need)
    fail("CudaProjectorRefresh: workspace of {} bytes is smaller than the {} bytes planned", workspace_bytes_, need);
  if (reinterpret_cast<uintptr_t>(workspace) % 256 != 0) fail("CudaProjectorRefresh: workspace must be 256-byte aligned");
  CUBLAS_CHECK(cublasCreate(&I.blas));
  CUBLAS_CHECK(cublasSetStream(I.blas, stream));
  CUBLAS_CHECK(cublasSetMathMode(I.blas, CUBLAS_DEFAULT_MATH));  // fp32 GEMMs: no TF32
  CUBLAS_CHECK(cublasSetPointerMode(I.blas, CUBLAS_POINTER_MODE_HOST));
  CUSOLVER_CHECK(cusolverDnCreate(&I.solver));
  CUSOLVER_CHECK(cusolverDnSetStream(I.solver, stream));
  CUDA_CHECK(cudaEventCreateWithFlags(&I.done, cudaEventDisableTiming));
  CUDA_CHECK(cudaMallocHost(&I.host_status, 2 * sizeof(int)));
  I.host_status[0] = I.host_status[1] = 0;

  // Carve the regions (same order and alignment as ProjectorWorkspace::total).
  char* p = static_cast<char*>(workspace);
  if (external)
    CUBLAS_CHECK(cublasSetWorkspace(I.blas, external->cublas_workspace, external->cublas_workspace_bytes));
  else
    CUBLAS_CHECK(cublasSetWorkspace(I.blas, p, I.plan.cublas));
  p += projector_align(I.plan.cublas);  // 0 with External
  auto take = [&p](size_t bytes) {
    char* q = p;
    p += projector_align(bytes);
    return q;
  };
  // Outside the union: the sticky status must survive reproject_moments.
  char* small = external ? static_cast<char*>(external->state) : take(I.plan.small);
  I.reproject_base = p;
  I.gf = reinterpret_cast<float*>(take(I.plan.gf));
  I.gpanel = reinterpret_cast<float*>(take(I.plan.gpanel));
  I.big = reinterpret_cast<float*>(take(I.plan.big));
  I.y = reinterpret_cast<float*>(take(I.plan.y));
  I.p_old = reinterpret_cast<float*>(take(I.plan.p_old));
  I.p_new = reinterpret_cast<float*>(take(I.plan.p_new));
  I.yd = reinterpret_cast<double*>(take(I.plan.yd));
  I.s64 = reinterpret_cast<double*>(take(I.plan.s64));
  I.eig = reinterpret_cast<double*>(take(I.plan.eig));
  I.tau = reinterpret_cast<float*>(take(I.plan.tau));
  I.sign = reinterpret_cast<float*>(take(I.plan.sign));
  I.lwork = take(I.plan.lwork);
  I.svd_s = reinterpret_cast<float*>(take(I.plan.svd_s));
  I.svd_u = reinterpret_cast<float*>(take(I.plan.svd_u));
  I.svd_v = reinterpret_cast<float*>(take(I.plan.svd_v));
  I.partial = reinterpret_cast<double*>(small);
  I.mu = reinterpret_cast<float*>(small + kProjectorNormBlocks * sizeof(double));
  I.info = reinterpret_cast<int*>(small + kProjectorNormBlocks * sizeof(double) + 16);
  I.status = I.info + 4;
  CUDA_CHECK(cudaMemsetAsync(I.status, 0, 2 * sizeof(int), stream));

  // The real cuSOLVER work sizes, against the planned bound.
  size_t need_lwork = 0;
  int64_t lf = 0, ld = 0;  // elements
  auto want_f = [&](int lw) { lf = std::max<int64_t>(lf, lw); };
  auto want_d = [&](int lw) { ld = std::max<int64_t>(ld, lw); };
  if (cfg.projector == "svd") {
    CUSOLVER_CHECK(cusolverDnCreateGesvdjInfo(&I.svdj));
    for (const ProjGeom& g : geos) {
      int lw = 0;
      CUSOLVER_CHECK(cusolverDnSgesvdj_bufferSize(I.solver, CUSOLVER_EIG_MODE_VECTOR, 1, int(g.n), int(g.m), I.gf,
                                                  int(g.n), I.svd_s, I.svd_u, int(g.n), I.svd_v, int(g.m), &lw,
                                                  I.svdj));
      want_f(lw);
    }
  } else {
    for (const ProjGeom& g : geos)
      for (int side = 0; side < 2; ++side) {
        if (side == 0 ? g.side == ProjSide::Right : g.side == ProjSide::Left) continue;
        const int64_t d = side == 0 ? g.m : g.n, e = side == 0 ? g.n : g.m, r = g.r;
        const int64_t c = std::min<int64_t>({r + cfg.oversampling, d, e});
        int lw = 0;
        for (int64_t rows : {d, e}) {
          CUSOLVER_CHECK(cusolverDnSgeqrf_bufferSize(I.solver, int(rows), int(c), I.y, int(rows), &lw));
          want_f(lw);
          CUSOLVER_CHECK(cusolverDnSorgqr_bufferSize(I.solver, int(rows), int(c), int(c), I.y, int(rows), I.tau, &lw));
          want_f(lw);
        }
        CUSOLVER_CHECK(cusolverDnDsyevd_bufferSize(I.solver, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, int(c),
                                                   I.s64, int(c), I.eig, &lw));
        want_d(lw);
        CUSOLVER_CHECK(cusolverDnDpotrf_bufferSize(I.solver, CUBLAS_FILL_MODE_LOWER, int(r), I.s64, int(r), &lw));
        want_d(lw);
        CUSOLVER_CHECK(cusolverDnSpotrf_bufferSize(I.solver, CUBLAS_FILL_MODE_LOWER, int(r),
                                                   reinterpret_cast<float*>(I.s64), int(r), &lw));
        want_f(lw);
      }
  }
  need_lwork = std::max(size_t(lf) * sizeof(float), size_t(ld) * sizeof(double));
  if (need_lwork > I.plan.lwork)
    fail("CudaProjectorRefresh: cuSOLVER asks for {} bytes of work (fp32 {} / fp64 {} elements), more than the {} "
         "planned by projector_workspace_for (raise the projector_lwork_* bounds in cuda/projector.h)",
         need_lwork, lf, ld, I.plan.lwork);
  I.lwork_f = int(std::max<int64_t>(lf, 1));
  I.lwork_d = int(std::max<int64_t>(ld, 1));
}

CudaProjectorRefresh::~CudaProjectorRefresh() = default;  // Impl::~Impl releases

size_t CudaProjectorRefresh::workspace_bytes(const GaloreConfig& cfg, const std::vector<ProjGeom>& geos,
                                             bool external) {
  return projector_workspace_layout(cfg, geos, external).total();
}

cudaStream_t CudaProjectorRefresh::stream() const { return impl_->stream; }

void CudaProjectorRefresh::check_errors() {
  Impl& I = *impl_;
  if (!I.refreshed) return;
  CUDA_CHECK(cudaEventSynchronize(I.done));
  if (I.host_status[0] != 0)
    fail("GaLore projector refresh on the GPU: cuSOLVER {} reported info {} (non-finite previous projector or "
         "gradient?)",
         info_name(I.host_status[0]), I.host_status[1]);
}

void CudaProjectorRefresh::refresh(const GaloreConfig& cfg, const ProjGeom& geo, const bf16* g, uint64_t seed,
                                   const bf16* A_old, const bf16* B_old, bf16* A, bf16* B) {
  Impl& I = *impl_;
  // Lazy check of the previous refreshes: only if their status copy has landed.
  if (I.refreshed) {
    const cudaError_t q = cudaEventQuery(I.done);
    if (q == cudaSuccess)
      check_errors();
    else if (q == cudaErrorNotReady) {
      if (cudaPeekAtLastError() == cudaErrorNotReady) (void)cudaGetLastError();  // not an error: don't leave it behind
    } else {
      CUDA_CHECK(q);
    }
  }
  if (cfg.projector != I.cfg.projector || cfg.oversampling > I.cfg.oversampling)
    fail("CudaProjectorRefresh: built for projector {} with oversampling {}, called with {} / {}", I.cfg.projector,
         I.cfg.oversampling, cfg.projector, cfg.oversampling);
  {  // the geometry must fit the plan
    const ProjectorWorkspace w = projector_workspace_for(cfg, geo);
    ProjectorWorkspace merged = I.plan;
    merged.merge_max(w);
    if (std::memcmp(&merged, &I.plan, sizeof(merged)) != 0)
      fail("CudaProjectorRefresh: geometry {}x{} rank {} ({}) is not one of the planned shapes", geo.m, geo.n, geo.r,
           proj_side_name(geo.side));
  }
  const int64_t m = geo.m, n = geo.n, r = geo.r;
  const bool left = geo.side != ProjSide::Right, right = geo.side != ProjSide::Left;
  I.g = g;
  if (cfg.projector == "svd") {
    grad_to_f32_kernel<<<grid_for(m * n), kThreads, 0, I.stream>>>(g, I.gf, m * n);
    CUDA_CHECK_LAUNCH();
    // gesvdj of Gf = Gᵀ [n, m] = U'·S·V'ᵀ, so G = V'·S·U'ᵀ: A = V'[:, :r], B = U'[:, :r]ᵀ.
    CUSOLVER_CHECK(cusolverDnSgesvdj(I.solver, CUSOLVER_EIG_MODE_VECTOR, 1, int(n), int(m), I.gf, int(n), I.svd_s,
                                     I.svd_u, int(n), I.svd_v, int(m), static_cast<float*>(I.lwork), I.lwork_f, I.info,
                                     I.svdj));
    I.note(kGesvdj, /*only_negative=*/true);  // info > 0: not fully converged, still usable
    if (left) {
      if (A_old) I.load_old(true, m, n, r, A_old);
      I.store(true, m, n, r, I.svd_v, A_old != nullptr, A);
    }
    if (right) {
      if (B_old) I.load_old(false, m, n, r, B_old);
      I.store(false, m, n, r, I.svd_u, B_old != nullptr, B);
    }
  } else {
    for (int side = 0; side < 2; ++side) {
      const bool is_left = side == 0;
      if (is_left ? !left : !right) continue;
      const bf16* old = is_left ? A_old : B_old;
      if (old) I.load_old(is_left, m, n, r, old);
      const float* P = I.randomized_side(cfg, is_left, m, n, r, !is_left && left ? sketch_seed_right(seed) : seed,
                                         cfg.warm_start && old ? I.p_old : nullptr);
      I.store(is_left, m, n, r, P, old != nullptr, is_left ? A : B);
    }
  }
  CUDA_CHECK(cudaMemcpyAsync(I.host_status, I.status, 2 * sizeof(int), cudaMemcpyDeviceToHost, I.stream));
  CUDA_CHECK(cudaEventRecord(I.done, I.stream));
  I.refreshed = true;
}

void CudaProjectorRefresh::reproject_moments(const ProjGeom& geo, const bf16* A_old, const bf16* B_old, const bf16* A,
                                             const bf16* B, float* m, float* v) {
  Impl& I = *impl_;
  if (projector_workspace_for(I.cfg, geo).reproject > I.plan.reproject)
    fail("CudaProjectorRefresh: geometry {}x{} rank {} is not one of the planned shapes", geo.m, geo.n, geo.r);
  const int64_t r = geo.r, rows = geo.rows(), cols = geo.cols(), na = geo.a_numel(), nb = geo.b_numel();
  char* p = I.reproject_base;  // regions as ProjectorWorkspace::reproject
  auto take = [&p](size_t bytes) {
    float* q = reinterpret_cast<float*>(p);
    p += projector_align(bytes);
    return q;
  };
  float* a_old = take(size_t(na) * sizeof(float));     // [m, r]
  float* a_new = take(size_t(na) * sizeof(float));     // [m, r]
  float* b_old = take(size_t(nb) * sizeof(float));     // [r, n]
  float* b_new = take(size_t(nb) * sizeof(float));     // [r, n]
  float* M = take(size_t(r * r) * sizeof(float));      // [r, r]
  float* M2 = take(size_t(r * r) * sizeof(float));     // [r, r] = M∘M
  float* tmp = take(size_t(rows * cols) * sizeof(float));  // [rows, cols]
  auto load_f32 = [&](const bf16* in, float* out, int64_t n) {
    convert_rows_kernel<bf16, float><<<grid_for(n), kThreads, 0, I.stream>>>(in, out, 1, n, nullptr);
    CUDA_CHECK_LAUNCH();
  };
  auto square = [&]() {
    square_kernel<<<grid_for(r * r), kThreads, 0, I.stream>>>(M, M2, r * r);
    CUDA_CHECK_LAUNCH();
  };
  auto copy_back = [&](float* dst) {
    CUDA_CHECK(cudaMemcpyAsync(dst, tmp, size_t(rows * cols) * sizeof(float), cudaMemcpyDeviceToDevice, I.stream));
  };
  // Row-major X is column-major Xᵀ; each GEMM below is the row-major formula transposed.
  if (geo.side != ProjSide::Right) {
    load_f32(A_old, a_old, na);
    load_f32(A, a_new, na);
    I.sgemm(false, true, r, r, geo.m, a_old, r, a_new, r, M, r);  // Mₐ = A_newᵀ·A_old [r, r]
    square();
    for (auto [x, mat] : {std::pair{m, M}, std::pair{v, M2}}) {
      I.sgemm(false, false, cols, r, r, x, cols, mat, r, tmp, cols);  // x' = Mₐ·x [r, cols]
      copy_back(x);
    }
  }
  if (geo.side != ProjSide::Left) {
    load_f32(B_old, b_old, nb);
    load_f32(B, b_new, nb);
    I.sgemm(true, false, r, r, geo.n, b_old, geo.n, b_new, geo.n, M, r);  // M_b = B_new·B_oldᵀ [r, r]
    square();
    for (auto [x, mat] : {std::pair{m, M}, std::pair{v, M2}}) {
      I.sgemm(true, false, r, rows, r, mat, r, x, r, tmp, r);  // x' = x·M_bᵀ [rows, r]
      copy_back(x);
    }
  }
}

}  // namespace gt
