#include "optim/projector.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <Eigen/Dense>
#include <lapacke.h>

#include "core/error.h"
#include "core/rng.h"

namespace gt {

namespace {

using RMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using CMap = Eigen::Map<const RMat>;
using MMap = Eigen::Map<RMat>;

// Orthonormal basis [rows, cols] of the columns of y (thin Householder Q).
Eigen::MatrixXf orthonormalize(const Eigen::MatrixXf& y) {
  Eigen::HouseholderQR<Eigen::MatrixXf> qr(y);
  return qr.householderQ() * Eigen::MatrixXf::Identity(y.rows(), y.cols());
}

// Flips columns j of p [d, r] where p[:, j]·p_old[:, j] < 0.
void align_columns(float* p, const float* p_old, int64_t d, int64_t r) {
  MMap P(p, d, r);
  CMap Po(p_old, d, r);
  for (int64_t j = 0; j < r; ++j)
    if (P.col(j).dot(Po.col(j)) < 0.0f) P.col(j) *= -1.0f;
}

// The same for rows of b [r, d].
void align_rows(float* b, const float* b_old, int64_t r, int64_t d) {
  MMap B(b, r, d);
  CMap Bo(b_old, r, d);
  for (int64_t i = 0; i < r; ++i)
    if (B.row(i).dot(Bo.row(i)) < 0.0f) B.row(i) *= -1.0f;
}

}  // namespace

const char* proj_side_name(ProjSide s) {
  switch (s) {
    case ProjSide::Left: return "left";
    case ProjSide::Right: return "right";
    case ProjSide::Both: return "full";
  }
  return "?";
}

ProjGeom make_proj_geom(const std::string& proj_type, int64_t m, int64_t n, int rank) {
  if (rank < 1) fail("optimizer.galore.rank must be at least 1 (got {})", rank);
  ProjGeom g;
  g.m = m;
  g.n = n;
  g.r = std::min<int64_t>({int64_t(rank), m, n});
  if (proj_type == "std")
    g.side = m >= n ? ProjSide::Right : ProjSide::Left;
  else if (proj_type == "reverse_std")
    g.side = m >= n ? ProjSide::Left : ProjSide::Right;
  else if (proj_type == "left")
    g.side = ProjSide::Left;
  else if (proj_type == "right")
    g.side = ProjSide::Right;
  else if (proj_type == "full")
    g.side = ProjSide::Both;
  else
    fail("optimizer.galore.proj_type '{}' is not one of std, reverse_std, left, right, full", proj_type);
  return g;
}

void validate_galore_config(const GaloreConfig& g) {
  make_proj_geom(g.proj_type, 1, 1, g.rank);
  if (g.update_proj_gap < 1) fail("optimizer.galore.update_proj_gap must be at least 1 (got {})", g.update_proj_gap);
  if (!std::isfinite(g.scale)) fail("optimizer.galore.scale must be finite");
  if (g.projector != "svd" && g.projector != "randomized")
    fail("optimizer.galore.projector '{}' is not one of svd, randomized", g.projector);
  if (g.oversampling < 0) fail("optimizer.galore.oversampling must be >= 0 (got {})", g.oversampling);
  if (g.power_iters < 0) fail("optimizer.galore.power_iters must be >= 0 (got {})", g.power_iters);
  if (g.moments_on_refresh != "keep" && g.moments_on_refresh != "reset" && g.moments_on_refresh != "reproject")
    fail("optimizer.galore.moments_on_refresh '{}' is not one of keep, reset, reproject", g.moments_on_refresh);
}

void svd_top(const float* g, int64_t m, int64_t n, int64_t r, float* U, float* Vt) {
  const int64_t k = std::min(m, n);
  GT_ASSERT(r <= k);
  std::vector<float> a(g, g + m * n);  // [m, n], overwritten by LAPACK
  std::vector<float> s(static_cast<size_t>(k)), u(static_cast<size_t>(m * k)), vt(static_cast<size_t>(k * n));  // u [m, k], vt [k, n]
  const lapack_int info = LAPACKE_sgesdd(LAPACK_ROW_MAJOR, 'S', lapack_int(m), lapack_int(n), a.data(),
                                         lapack_int(n), s.data(), u.data(), lapack_int(k), vt.data(), lapack_int(n));
  if (info != 0) fail("GaLore projector: SVD of a {}x{} gradient failed (LAPACK sgesdd info {})", m, n, info);
  if (U)
    for (int64_t i = 0; i < m; ++i) std::copy_n(&u[size_t(i * k)], r, U + i * r);
  if (Vt) std::copy_n(vt.data(), r * n, Vt);
}

void randomized_svd_top(const float* g, int64_t m, int64_t n, int64_t r, int oversampling, int power_iters,
                        const float* warm_U, uint64_t seed, float* U, float* Vt) {
  const int64_t k = std::min<int64_t>({r + oversampling, m, n});
  GT_ASSERT(r <= k);
  const Eigen::MatrixXf X = CMap(g, m, n);  // [m, n]
  Eigen::MatrixXf Y(m, k);                  // starting block [m, k]
  int64_t c0 = 0;
  if (warm_U) {
    Y.leftCols(r) = CMap(warm_U, m, r);
    c0 = r;
  }
  if (k > c0) {
    Rng rng(seed);
    Eigen::MatrixXf omega(n, k - c0);  // Gaussian sketch [n, k - c0], column by column
    for (int64_t j = 0; j < omega.cols(); ++j)
      for (int64_t i = 0; i < n; ++i) omega(i, j) = float(rng.normal());
    Y.rightCols(k - c0).noalias() = X * omega;
  }
  Eigen::MatrixXf Q = orthonormalize(Y);  // [m, k]
  for (int it = 0; it < power_iters; ++it) {
    const Eigen::MatrixXf Z = orthonormalize(X.transpose() * Q);  // [n, k]
    Q = orthonormalize(X * Z);
  }
  const RMat small = Q.transpose() * X;  // [k, n]
  std::vector<float> ub(size_t(k * r));  // [k, r]
  svd_top(small.data(), k, n, r, ub.data(), Vt);
  if (U) MMap(U, m, r).noalias() = Q * CMap(ub.data(), k, r);
}

void compute_projector(const GaloreConfig& cfg, const ProjGeom& geo, const float* g, uint64_t seed,
                       const float* A_old, const float* B_old, float* A, float* B) {
  const int64_t m = geo.m, n = geo.n, r = geo.r;
  std::vector<float> clean;  // [m, n] copy with non-finite elements zeroed, only when needed
  if (!std::all_of(g, g + m * n, [](float x) { return std::isfinite(x); })) {
    clean.assign(g, g + m * n);
    for (auto& x : clean)
      if (!std::isfinite(x)) x = 0.0f;
    g = clean.data();
  }
  const bool left = geo.side != ProjSide::Right, right = geo.side != ProjSide::Left;
  if (cfg.projector == "svd") {
    svd_top(g, m, n, r, left ? A : nullptr, right ? B : nullptr);
    return;
  }
  const bool have_old = left ? A_old != nullptr : B_old != nullptr;
  const bool warm = cfg.warm_start && have_old;
  if (left) {
    randomized_svd_top(g, m, n, r, cfg.oversampling, cfg.power_iters, warm ? A_old : nullptr, seed, A,
                       right ? B : nullptr);
  } else {
    // Right side: the left singular vectors of Gᵀ [n, m] are B's rows.
    const RMat gt = CMap(g, m, n).transpose();  // [n, m]
    RMat warm_u;                                // [n, r] = B_oldᵀ
    if (warm) warm_u = CMap(B_old, r, n).transpose();
    RMat ut(n, r);  // [n, r]
    randomized_svd_top(gt.data(), n, m, r, cfg.oversampling, cfg.power_iters, warm ? warm_u.data() : nullptr, seed,
                       ut.data(), nullptr);
    MMap(B, r, n) = ut.transpose();
  }
  if (have_old) {
    if (left) align_columns(A, A_old, m, r);
    if (right && B_old) align_rows(B, B_old, r, n);
  }
}

void galore_project(const ProjGeom& geo, const float* A, const float* B, const float* g, float* R) {
  const CMap G(g, geo.m, geo.n);
  MMap out(R, geo.rows(), geo.cols());
  switch (geo.side) {
    case ProjSide::Left: out.noalias() = CMap(A, geo.m, geo.r).transpose() * G; break;
    case ProjSide::Right: out.noalias() = G * CMap(B, geo.r, geo.n).transpose(); break;
    case ProjSide::Both: {
      const RMat t = CMap(A, geo.m, geo.r).transpose() * G;  // [r, n]
      out.noalias() = t * CMap(B, geo.r, geo.n).transpose();
      break;
    }
  }
}

void galore_project_back(const ProjGeom& geo, const float* A, const float* B, const float* R, float* out) {
  const CMap Rm(R, geo.rows(), geo.cols());
  MMap O(out, geo.m, geo.n);
  switch (geo.side) {
    case ProjSide::Left: O.noalias() = CMap(A, geo.m, geo.r) * Rm; break;
    case ProjSide::Right: O.noalias() = Rm * CMap(B, geo.r, geo.n); break;
    case ProjSide::Both: {
      const RMat t = Rm * CMap(B, geo.r, geo.n);  // [r, n]
      O.noalias() = CMap(A, geo.m, geo.r) * t;
      break;
    }
  }
}

void reproject_moments(const ProjGeom& geo, const float* A_old, const float* B_old, const float* A_new,
                       const float* B_new, float* m, float* v) {
  MMap Mm(m, geo.rows(), geo.cols()), V(v, geo.rows(), geo.cols());
  if (geo.side != ProjSide::Right) {
    const RMat Ma = CMap(A_new, geo.m, geo.r).transpose() * CMap(A_old, geo.m, geo.r);  // [r, r]
    const RMat Ma2 = Ma.cwiseProduct(Ma);
    RMat t = Ma * Mm;
    Mm = t;
    t = Ma2 * V;
    V = t;
  }
  if (geo.side != ProjSide::Left) {
    const RMat Mb = CMap(B_new, geo.r, geo.n) * CMap(B_old, geo.r, geo.n).transpose();  // [r, r]
    const RMat Mb2 = Mb.cwiseProduct(Mb);
    RMat t = Mm * Mb.transpose();
    Mm = t;
    t = V * Mb2.transpose();
    V = t;
  }
}

double subspace_sin_angle(const float* P1, const float* P2, int64_t d, int64_t r) {
  const Eigen::MatrixXd p1 = CMap(P1, d, r).cast<double>(), p2 = CMap(P2, d, r).cast<double>();
  const Eigen::MatrixXd resid = p2 - p1 * (p1.transpose() * p2);  // (I - P1 P1ᵀ) P2, [d, r]
  Eigen::JacobiSVD<Eigen::MatrixXd> svd(resid);
  return svd.singularValues().size() ? svd.singularValues()(0) : 0.0;
}

}  // namespace gt
