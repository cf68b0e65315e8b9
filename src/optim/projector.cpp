#include "optim/projector.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <Eigen/Dense>
#include <lapacke.h>

#include "core/error.h"
#include "cuda/sketch.h"

namespace gt {

namespace {

using RMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using CMap = Eigen::Map<const RMat>;
using MMap = Eigen::Map<RMat>;

using MatF = Eigen::MatrixXf;  // column-major, as cuBLAS/cuSOLVER
using MatD = Eigen::MatrixXd;

// Orthonormal basis [rows, cols] of the columns of y (thin Householder Q).
MatF orthonormalize(const MatF& y) {
  Eigen::HouseholderQR<MatF> qr(y);
  return qr.householderQ() * MatF::Identity(y.rows(), y.cols());
}

// CholeskyQR2 of y [d, c] (full column rank): pass 1 in fp64 (Gram, Cholesky,
// solve), pass 2 in fp32 on the nearly orthonormal result. Falls back to
// Householder if a Cholesky fails (the GPU flags that as an error instead).
MatF cholqr2(const MatF& y) {
  const MatD yd = y.cast<double>();
  Eigen::LLT<MatD> llt(yd.transpose() * yd);  // [c, c] = L·Lᵀ
  if (llt.info() != Eigen::Success) return orthonormalize(y);
  const MatF q1 = llt.matrixL().solve(yd.transpose()).transpose().cast<float>();  // Y·L⁻ᵀ [d, c]
  Eigen::LLT<MatF> llt2(q1.transpose() * q1);
  if (llt2.info() != Eigen::Success) return orthonormalize(y);
  return llt2.matrixL().solve(q1.transpose()).transpose();
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

void randomized_basis(const float* x, int64_t d, int64_t e, int64_t r, int oversampling, int power_iters,
                      const float* warm_P, uint64_t seed, float* P) {
  GT_ASSERT(r >= 1 && r <= std::min(d, e));
  const MatF X = CMap(x, d, e);  // [d, e]
  MatF Q;                        // current basis [d, c]
  if (warm_P) {
    Q = CMap(warm_P, d, r);
    for (int it = 0; it < std::max(power_iters, 1); ++it) {
      const MatF Z = X.transpose() * Q;  // [e, r]
      MatF Y = X * Z;                    // [d, r]
      const double norm = Y.cast<double>().norm();
      const float mu = norm > 0.0 ? float(kWarmShift * norm) : 1.0f;
      Y += mu * Q;  // (X·Xᵀ + μI)·P: full rank even when X is not
      Q = cholqr2(Y);
    }
    MMap(P, d, r) = Q;
    return;
  }
  const int64_t k = std::min<int64_t>({r + oversampling, d, e});
  MatF omega(e, k);  // sketch [e, k], element (i, j) keyed by j·e + i (column-major index)
  for (int64_t j = 0; j < k; ++j)
    for (int64_t i = 0; i < e; ++i) omega(i, j) = sketch_normal(seed, uint64_t(j * e + i));
  Q = orthonormalize(X * omega);  // [d, k]
  for (int it = 0; it < power_iters; ++it) {
    const MatF Z = orthonormalize(X.transpose() * Q);  // [e, k]
    Q = orthonormalize(X * Z);
  }
  // Rayleigh-Ritz: Qᵀ·X·Xᵀ·Q = R_wᵀ·R_w with W = Xᵀ·Q = Q_w·R_w; its top
  // eigenvectors rotate Q onto the singular vectors within span(Q).
  const Eigen::HouseholderQR<MatF> qr(MatF(X.transpose() * Q));  // W [e, k]
  const MatF Rf = qr.matrixQR().topRows(k).triangularView<Eigen::Upper>();  // R_w [k, k]
  const MatD Rw = Rf.cast<double>();
  const Eigen::SelfAdjointEigenSolver<MatD> eig(Rw.transpose() * Rw);  // ascending eigenvalues
  const MatF V = eig.eigenvectors().rightCols(r).rowwise().reverse().cast<float>();  // [k, r], descending
  MMap(P, d, r) = Q * V;
}

void fix_basis_signs(float* P, const float* P_old, int64_t d, int64_t r) {
  MMap Pm(P, d, r);
  for (int64_t j = 0; j < r; ++j) {
    bool flip;
    if (P_old) {
      double dot = 0.0;
      for (int64_t i = 0; i < d; ++i) dot += double(Pm(i, j)) * P_old[i * r + j];
      flip = dot < 0.0;
    } else {
      int64_t best = 0;
      for (int64_t i = 1; i < d; ++i)
        if (std::fabs(Pm(i, j)) > std::fabs(Pm(best, j))) best = i;
      flip = Pm(best, j) < 0.0f;
    }
    if (flip) Pm.col(j) *= -1.0f;
  }
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
  const bool warm = cfg.warm_start;
  if (left) {
    randomized_basis(g, m, n, r, cfg.oversampling, cfg.power_iters, warm ? A_old : nullptr, seed, A);
    fix_basis_signs(A, A_old, m, r);
  }
  if (right) {
    // The right singular vectors of G are the left ones of Gᵀ [n, m]: B = Pᵀ.
    const RMat gt = CMap(g, m, n).transpose();  // [n, m]
    RMat p_old;                                 // [n, r] = B_oldᵀ
    if (B_old) p_old = CMap(B_old, r, n).transpose();
    RMat p(n, r);  // [n, r]
    randomized_basis(gt.data(), n, m, r, cfg.oversampling, cfg.power_iters, warm && B_old ? p_old.data() : nullptr,
                     left ? sketch_seed_right(seed) : seed, p.data());
    fix_basis_signs(p.data(), B_old ? p_old.data() : nullptr, n, r);
    MMap(B, r, n) = p.transpose();
  }
}

bool galore_refresh_due(const GaloreConfig& g, int64_t steps, int micro, int64_t refreshes) {
  return (micro == 0 && steps % g.update_proj_gap == 0) || refreshes == 0;
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

void galore_project_factors(const ProjGeom& geo, const float* A, const float* B, const float* dy, const float* x,
                            int64_t N, float* tmp, int64_t tmp_rows, float* R, bool accumulate) {
  GT_ASSERT(galore_factors_supported(geo) && tmp_rows > 0);
  MMap out(R, geo.rows(), geo.cols());
  if (!accumulate) out.setZero();
  for (int64_t c0 = 0; c0 < N; c0 += tmp_rows) {
    const int64_t rows = std::min(tmp_rows, N - c0);
    const CMap dy_c(dy + c0 * geo.m, rows, geo.m);  // [rows, m]
    const CMap x_c(x + c0 * geo.n, rows, geo.n);    // [rows, n]
    MMap t(tmp, rows, geo.r);                       // [rows, r]
    if (geo.side == ProjSide::Left) {
      t.noalias() = dy_c * CMap(A, geo.m, geo.r);
      out.noalias() += t.transpose() * x_c;
    } else {
      t.noalias() = x_c * CMap(B, geo.r, geo.n).transpose();
      out.noalias() += dy_c.transpose() * t;
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
