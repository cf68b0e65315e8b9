// GaLore projectors: sides, exact and randomized refresh, warm start, moment reprojection.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include <Eigen/Dense>

#include "config/config.h"
#include "core/error.h"
#include "core/rng.h"
#include "cuda/sketch.h"
#include "optim/projector.h"
#include "tests/projector_test_util.h"

using namespace gt;
using namespace gt::test;

TEST(Projector, Sides) {
  auto g = make_proj_geom("std", 96, 40, 8);  // tall: right, [96, 8]
  EXPECT_EQ(g.side, ProjSide::Right);
  EXPECT_EQ(g.rows(), 96);
  EXPECT_EQ(g.cols(), 8);
  EXPECT_EQ(g.b_numel(), 8 * 40);
  EXPECT_EQ(g.a_numel(), 0);
  g = make_proj_geom("std", 48, 80, 8);  // wide: left, [8, 80]
  EXPECT_EQ(g.side, ProjSide::Left);
  EXPECT_EQ(g.rows(), 8);
  EXPECT_EQ(g.cols(), 80);
  EXPECT_EQ(g.a_numel(), 48 * 8);
  EXPECT_EQ(make_proj_geom("std", 64, 64, 8).side, ProjSide::Right);  // m >= n
  EXPECT_EQ(make_proj_geom("reverse_std", 96, 40, 8).side, ProjSide::Left);
  EXPECT_EQ(make_proj_geom("reverse_std", 48, 80, 8).side, ProjSide::Right);
  EXPECT_EQ(make_proj_geom("left", 96, 40, 8).side, ProjSide::Left);
  EXPECT_EQ(make_proj_geom("right", 48, 80, 8).side, ProjSide::Right);
  g = make_proj_geom("full", 48, 80, 8);
  EXPECT_EQ(g.side, ProjSide::Both);
  EXPECT_EQ(g.numel(), 64);
  EXPECT_EQ(g.a_numel() + g.b_numel(), 48 * 8 + 8 * 80);
  EXPECT_EQ(make_proj_geom("std", 6, 5, 8).r, 5);  // rank capped by the smaller dimension
  EXPECT_THROW(make_proj_geom("sideways", 4, 4, 2), Error);
  EXPECT_THROW(make_proj_geom("std", 4, 4, 0), Error);
}

TEST(Projector, ExactSvdProjectsOntoTopSubspace) {
  const int64_t m = 60, n = 90, r = 6;
  auto G = synthetic(m, n, 0.5, 1);
  std::vector<float> U(size_t(m * r)), Vt(size_t(r * n));
  svd_top(G.data(), m, n, r, U.data(), Vt.data());
  EXPECT_LT(orthonormality_error(U, m, r), 1e-5);
  EXPECT_LT(orthonormality_error(transpose(Vt, r, n), n, r), 1e-5);
  // Left and right projections capture the same energy: |AᵀG|² = |G Bᵀ|² = Σ s_i², i < r.
  GaloreConfig cfg;
  cfg.projector = "svd";
  double expect = 0;
  for (int i = 0; i < r; ++i) expect += std::pow(0.25, i);
  for (const char* type : {"left", "right", "full"}) {
    const ProjGeom geo = make_proj_geom(type, m, n, int(r));
    std::vector<float> A(size_t(geo.a_numel())), B(size_t(geo.b_numel())), R(size_t(geo.numel()));
    compute_projector(cfg, geo, G.data(), 0, nullptr, nullptr, A.data(), B.data());
    galore_project(geo, A.data(), B.data(), G.data(), R.data());
    double e = 0;
    for (float x : R) e += double(x) * x;
    EXPECT_NEAR(e, expect, 1e-4) << type;
    // Projecting back then again is the identity on the projected space.
    std::vector<float> back(size_t(m * n)), R2(size_t(geo.numel()));
    galore_project_back(geo, A.data(), B.data(), R.data(), back.data());
    galore_project(geo, A.data(), B.data(), back.data(), R2.data());
    for (size_t i = 0; i < R.size(); ++i) EXPECT_NEAR(R2[i], R[i], 1e-5) << type;
  }
}

// R from the factors of G = dyᵀ·x equals R from G, for chunks that do and do
// not divide the token count, with and without accumulation; full is refused.
TEST(Projector, FactoredProjectionEqualsProjectingTheGradient) {
  const int64_t N = 37;
  for (const char* type : {"left", "right"}) {
    for (int64_t chunk : {int64_t(16), int64_t(37), int64_t(64)}) {
      const ProjGeom geo = make_proj_geom(type, 23, 19, 5);
      SCOPED_TRACE(std::string(type) + " chunk " + std::to_string(chunk));
      Rng rng(static_cast<uint64_t>(chunk));
      auto rnd = [&](int64_t n) {
        std::vector<float> v(static_cast<size_t>(n));
        for (float& x : v) x = float(rng.normal());
        return v;
      };
      const auto A = rnd(std::max<int64_t>(geo.a_numel(), 1)), B = rnd(std::max<int64_t>(geo.b_numel(), 1));
      const auto dy = rnd(N * geo.m), x = rnd(N * geo.n), R0 = rnd(geo.numel());
      // G [m, n] = dyᵀ·x in fp64, then rounded
      std::vector<float> G(size_t(geo.m * geo.n));
      for (int64_t i = 0; i < geo.m; ++i)
        for (int64_t j = 0; j < geo.n; ++j) {
          double acc = 0;
          for (int64_t t = 0; t < N; ++t) acc += double(dy[size_t(t * geo.m + i)]) * x[size_t(t * geo.n + j)];
          G[size_t(i * geo.n + j)] = float(acc);
        }
      std::vector<float> want(size_t(geo.numel())), got(size_t(geo.numel()), NAN), tmp(size_t(chunk * geo.r));
      galore_project(geo, A.data(), B.data(), G.data(), want.data());
      galore_project_factors(geo, A.data(), B.data(), dy.data(), x.data(), N, tmp.data(), chunk, got.data(), false);
      double num = 0, den = 0;
      for (size_t i = 0; i < want.size(); ++i) num += std::pow(got[i] - want[i], 2), den += std::pow(want[i], 2);
      EXPECT_LT(std::sqrt(num / den), 1e-5);
      got = R0;  // accumulate onto existing values
      galore_project_factors(geo, A.data(), B.data(), dy.data(), x.data(), N, tmp.data(), chunk, got.data(), true);
      for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], R0[i] + want[i], 1e-4 * (1 + std::abs(want[i])));
    }
  }
  EXPECT_FALSE(galore_factors_supported(make_proj_geom("full", 23, 19, 5)));
  EXPECT_TRUE(galore_factors_supported(make_proj_geom("std", 23, 19, 5)));
}

TEST(Projector, SketchIsCounterBasedAndStandardized) {
  // A pure function of (seed, index): same inputs, same bits; another seed or
  // index, another value. Moments of the standardized Irwin-Hall(4).
  EXPECT_EQ(sketch_normal(7, 123), sketch_normal(7, 123));
  EXPECT_NE(sketch_normal(7, 123), sketch_normal(8, 123));
  EXPECT_NE(sketch_normal(7, 123), sketch_normal(7, 124));
  const int N = 1 << 20;
  double s1 = 0, s2 = 0, s4 = 0, mx = 0;
  for (int i = 0; i < N; ++i) {
    const double x = sketch_normal(2024, uint64_t(i));
    s1 += x;
    s2 += x * x;
    s4 += x * x * x * x;
    mx = std::max(mx, std::fabs(x));
  }
  EXPECT_NEAR(s1 / N, 0.0, 5e-3);
  EXPECT_NEAR(s2 / N, 1.0, 5e-3);
  EXPECT_NEAR(s4 / N, 2.7, 3e-2);  // kurtosis 3 - 0.3
  EXPECT_LE(mx, 3.47);
  EXPECT_NE(sketch_seed_right(5), 5u);
}

TEST(Projector, RandomizedMatchesSvdOnFastDecay) {
  // Spectrum decay^i, r = 8, p = 8, q = 1: the range finder's subspace error
  // scales like (sigma_{r+p}/sigma_r)^(2q+1) = decay^24 (times a modest
  // constant), so: decay 0.5 -> sin(largest principal angle) < 1e-3, decay
  // 0.7 -> < 1e-2. A wrong method gives ~1 (see the control). (r stays small
  // so that sigma_r's gap is far above the float32 noise of G.) Rayleigh-Ritz
  // also orders the columns: each is the matching singular vector.
  const int64_t m = 200, n = 120, r = 8;
  for (double decay : {0.5, 0.7}) {
    auto G = synthetic(m, n, decay, 7);
    std::vector<float> Us(size_t(m * r)), Ur(size_t(m * r)), Vs(size_t(r * n)), Vr(size_t(n * r));  // Vr [n, r]
    svd_top(G.data(), m, n, r, Us.data(), Vs.data());
    randomized_basis(G.data(), m, n, r, 8, 1, nullptr, 42, Ur.data());
    randomized_basis(transpose(G, m, n).data(), n, m, r, 8, 1, nullptr, 42, Vr.data());
    EXPECT_LT(orthonormality_error(Ur, m, r), 1e-5);
    EXPECT_LT(orthonormality_error(Vr, n, r), 1e-5);
    const double sl = subspace_sin_angle(Us.data(), Ur.data(), m, r);
    const double sr = subspace_sin_angle(transpose(Vs, r, n).data(), Vr.data(), n, r);
    std::printf("randomized (p=8, q=1) vs SVD, decay %.1f: sin angle left %.2e right %.2e\n", decay, sl, sr);
    const double bound = decay == 0.5 ? 1e-3 : 1e-2;
    EXPECT_LT(sl, bound);
    EXPECT_LT(sr, bound);
    Eigen::Map<const RMat> Pu(Us.data(), m, r), Pr(Ur.data(), m, r);
    for (int j = 0; j < r; ++j) EXPECT_GT(std::fabs(Pu.col(j).dot(Pr.col(j))), 1.0 - bound) << "column " << j;
    // Control: against a different (random) subspace the angle is large.
    const Eigen::MatrixXd other = random_orthonormal(m, r, 99);
    RMat of = other.cast<float>();
    EXPECT_GT(subspace_sin_angle(Us.data(), of.data(), m, r), 0.5);
  }
}

TEST(Projector, PowerIterationsImproveSlowDecay) {
  const int64_t m = 150, n = 100, r = 16;
  auto G = synthetic(m, n, 0.9, 8);
  std::vector<float> Us(size_t(m * r)), U0(size_t(m * r)), U2(size_t(m * r));
  svd_top(G.data(), m, n, r, Us.data(), nullptr);
  randomized_basis(G.data(), m, n, r, 8, 0, nullptr, 5, U0.data());
  randomized_basis(G.data(), m, n, r, 8, 2, nullptr, 5, U2.data());
  const double s0 = subspace_sin_angle(Us.data(), U0.data(), m, r), s2 = subspace_sin_angle(Us.data(), U2.data(), m, r);
  std::printf("decay 0.9: sin angle q=0 %.3e, q=2 %.3e\n", s0, s2);
  EXPECT_LT(s2, 0.5 * s0);
}

TEST(Projector, RandomizedIsDeterministicPerSeed) {
  const int64_t m = 80, n = 50, r = 8;
  auto G = synthetic(m, n, 0.8, 3, 1e-3);
  std::vector<float> a(size_t(m * r)), b(size_t(m * r)), c(size_t(m * r));
  randomized_basis(G.data(), m, n, r, 4, 1, nullptr, 11, a.data());
  randomized_basis(G.data(), m, n, r, 4, 1, nullptr, 11, b.data());
  randomized_basis(G.data(), m, n, r, 4, 1, nullptr, 12, c.data());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  // The warm path is deterministic too (it has no randomness).
  std::vector<float> w1(size_t(m * r)), w2(size_t(m * r));
  randomized_basis(G.data(), m, n, r, 4, 1, c.data(), 11, w1.data());
  randomized_basis(G.data(), m, n, r, 4, 1, c.data(), 12, w2.data());
  EXPECT_EQ(w1, w2);
}

TEST(Projector, WarmStart) {
  const int64_t m = 150, n = 100, r = 16;
  // Slow decay: a cold sketch with q = 1 is visibly off.
  auto G_prev = synthetic(m, n, 0.9, 21);
  auto G = G_prev;
  {
    auto noise = synthetic(m, n, 0.9, 77);
    for (size_t i = 0; i < G.size(); ++i) G[i] += 0.02f * noise[i];
  }
  std::vector<float> prev(size_t(m * r)), exact(size_t(m * r)), cold(size_t(m * r)), warm(size_t(m * r));
  svd_top(G_prev.data(), m, n, r, prev.data(), nullptr);
  svd_top(G.data(), m, n, r, exact.data(), nullptr);
  randomized_basis(G.data(), m, n, r, 4, 1, nullptr, 9, cold.data());
  randomized_basis(G.data(), m, n, r, 4, 1, prev.data(), 9, warm.data());
  EXPECT_LT(orthonormality_error(warm, m, r), 1e-5);
  const double sc = subspace_sin_angle(exact.data(), cold.data(), m, r);
  const double sw = subspace_sin_angle(exact.data(), warm.data(), m, r);
  std::printf("warm start (q=1, p=4): sin angle cold %.3e, warm %.3e\n", sc, sw);
  EXPECT_LT(sw, 0.5 * sc);
  // Warm start from the exact subspace returns that subspace, column by column.
  std::vector<float> same(size_t(m * r));
  randomized_basis(G.data(), m, n, r, 0, 0, exact.data(), 9, same.data());
  EXPECT_LT(subspace_sin_angle(exact.data(), same.data(), m, r), 1e-4);
  Eigen::Map<const RMat> Pe(exact.data(), m, r), Ps(same.data(), m, r);
  for (int j = 0; j < r; ++j) EXPECT_GT(Pe.col(j).dot(Ps.col(j)), 0.999f) << "column " << j;
}

TEST(Projector, WarmRefreshesConverge) {
  // Repeated warm refreshes on a fixed G are orthogonal iteration: from a
  // random start they converge to the top-r subspace, (sigma_{r+1}/sigma_r)^2
  // per refresh (0.8^2 here).
  const int64_t m = 120, n = 90, r = 10;
  auto G = synthetic(m, n, 0.8, 41);
  std::vector<float> exact(size_t(m * r));
  svd_top(G.data(), m, n, r, exact.data(), nullptr);
  RMat P = random_orthonormal(m, r, 5).cast<float>();
  std::vector<float> p(P.data(), P.data() + m * r), next(size_t(m * r));
  double prev_angle = subspace_sin_angle(exact.data(), p.data(), m, r);
  for (int it = 0; it < 30; ++it) {
    randomized_basis(G.data(), m, n, r, 8, 1, p.data(), 0, next.data());
    const double a = subspace_sin_angle(exact.data(), next.data(), m, r);
    EXPECT_LE(a, prev_angle * 1.0001 + 1e-6) << "refresh " << it;
    prev_angle = a;
    p = next;
  }
  std::printf("warm refreshes: sin angle after 30: %.2e\n", prev_angle);
  EXPECT_LT(prev_angle, 1e-4);
  EXPECT_LT(orthonormality_error(p, m, r), 1e-5);
}

TEST(Projector, RankDeficientGradientGivesOrthonormalProjector) {
  // rank(G) = 5 < r = 16 (a micro-batch with fewer tokens than the rank), and
  // G = 0: every path returns an orthonormal basis, containing G's column
  // (row) space when G has one.
  const int64_t m = 64, n = 48, r = 16, rank = 5;
  auto G = synthetic(m, n, 0.7, 51);
  {
    std::vector<float> Ul(size_t(m * rank)), Vl(size_t(rank * n));  // rank-5 truncation of G
    svd_top(G.data(), m, n, rank, Ul.data(), Vl.data());
    Eigen::Map<const RMat> U(Ul.data(), m, rank), V(Vl.data(), rank, n);
    Eigen::VectorXf s(rank);
    for (int i = 0; i < rank; ++i) s(i) = std::pow(0.7f, float(i));
    Eigen::Map<RMat>(G.data(), m, n) = U * s.asDiagonal() * V;
  }
  const std::vector<float> Z(G.size(), 0.0f);
  GaloreConfig cfg;
  cfg.projector = "randomized";
  for (const std::vector<float>* g : {static_cast<const std::vector<float>*>(&G), &Z})
    for (const char* type : {"left", "right", "full"}) {
      const ProjGeom geo = make_proj_geom(type, m, n, int(r));
      std::vector<float> A(size_t(geo.a_numel())), B(size_t(geo.b_numel())), A2 = A, B2 = B;
      compute_projector(cfg, geo, g->data(), 3, nullptr, nullptr, A.data(), B.data());  // cold
      compute_projector(cfg, geo, g->data(), 4, A.empty() ? nullptr : A.data(), B.empty() ? nullptr : B.data(),
                        A2.data(), B2.data());  // warm
      for (const auto* a : {&A, &A2})
        if (!a->empty()) {
          EXPECT_LT(orthonormality_error(*a, m, r), 1e-5) << type;
          for (float x : *a) ASSERT_TRUE(std::isfinite(x)) << type;
        }
      for (const auto* b : {&B, &B2})
        if (!b->empty()) {
          EXPECT_LT(orthonormality_error(transpose(*b, r, n), n, r), 1e-5) << type;
          for (float x : *b) ASSERT_TRUE(std::isfinite(x)) << type;
        }
      if (g == &G) {  // the whole projected energy is kept: |G| = |projection|
        EXPECT_NEAR(energy_kept(geo, A2.data(), B2.data(), G), 1.0, 1e-5) << type;
      }
    }
}

TEST(Projector, SignsAreCanonicalWithoutPrevious) {
  // A cold refresh without a previous projector makes each column's largest
  // entry positive, so it does not depend on QR / eigensolver conventions.
  const int64_t m = 50, n = 70, r = 6;
  auto G = synthetic(m, n, 0.6, 61);
  GaloreConfig cfg;
  cfg.projector = "randomized";
  const ProjGeom geo = make_proj_geom("full", m, n, int(r));
  std::vector<float> A(size_t(m * r)), B(size_t(r * n));
  compute_projector(cfg, geo, G.data(), 8, nullptr, nullptr, A.data(), B.data());
  auto check = [](const std::vector<float>& p, int64_t d, int64_t r) {
    for (int64_t j = 0; j < r; ++j) {
      float best = 0.0f;
      for (int64_t i = 0; i < d; ++i)
        if (std::fabs(p[size_t(i * r + j)]) > std::fabs(best)) best = p[size_t(i * r + j)];
      EXPECT_GT(best, 0.0f) << "column " << j;
    }
  };
  check(A, m, r);
  check(transpose(B, r, n), n, r);
  // fix_basis_signs with a previous basis: follows it.
  std::vector<float> flipped = A;
  for (int64_t i = 0; i < m; ++i) flipped[size_t(i * r + 2)] *= -1.0f;
  fix_basis_signs(flipped.data(), A.data(), m, r);
  EXPECT_EQ(flipped, A);
}

TEST(Projector, RandomizedAlignsSignsWithPrevious) {
  const int64_t m = 40, n = 90, r = 6;
  auto G = synthetic(m, n, 0.5, 31);
  GaloreConfig cfg;
  cfg.projector = "randomized";
  cfg.oversampling = 6;
  cfg.power_iters = 1;
  for (const char* type : {"left", "right", "full"}) {
    for (bool warm : {false, true}) {
      cfg.warm_start = warm;
      const ProjGeom geo = make_proj_geom(type, m, n, int(r));
      std::vector<float> A0(size_t(geo.a_numel())), B0(size_t(geo.b_numel())), A1 = A0, B1 = B0;
      cfg.projector = "svd";
      compute_projector(cfg, geo, G.data(), 1, nullptr, nullptr, A0.data(), B0.data());
      // Flip the signs of the "previous" projector: the new one must follow them.
      for (auto& x : A0) x = -x;
      for (auto& x : B0) x = -x;
      cfg.projector = "randomized";
      compute_projector(cfg, geo, G.data(), 2, A0.empty() ? nullptr : A0.data(), B0.empty() ? nullptr : B0.data(),
                        A1.data(), B1.data());
      if (!A0.empty()) {
        Eigen::Map<const RMat> P0(A0.data(), m, r), P1(A1.data(), m, r);
        const Eigen::MatrixXf M = P1.transpose() * P0;
        for (int i = 0; i < r; ++i) EXPECT_GT(M(i, i), 0.99f) << type << " warm=" << warm;
      }
      if (!B0.empty()) {
        Eigen::Map<const RMat> P0(B0.data(), r, n), P1(B1.data(), r, n);
        const Eigen::MatrixXf M = P1 * P0.transpose();
        for (int i = 0; i < r; ++i) EXPECT_GT(M(i, i), 0.99f) << type << " warm=" << warm;
      }
    }
  }
}

TEST(Projector, NonFiniteGradientElementsAreIgnoredByRefresh) {
  const int64_t m = 30, n = 20, r = 4;
  auto G = synthetic(m, n, 0.5, 4);
  GaloreConfig cfg;
  cfg.projector = "svd";
  const ProjGeom geo = make_proj_geom("left", m, n, int(r));
  std::vector<float> A(size_t(m * r));
  G[3] = NAN;
  G[50] = INFINITY;
  compute_projector(cfg, geo, G.data(), 0, nullptr, nullptr, A.data(), nullptr);
  for (float x : A) EXPECT_TRUE(std::isfinite(x));
  EXPECT_LT(orthonormality_error(A, m, r), 1e-5);
}

TEST(Projector, ReprojectIdentityKeepsMoments) {
  const int64_t m = 30, n = 20, r = 4;
  auto G = synthetic(m, n, 0.5, 5);
  for (const char* type : {"left", "right", "full"}) {
    GaloreConfig cfg;
    cfg.projector = "svd";
    const ProjGeom geo = make_proj_geom(type, m, n, int(r));
    std::vector<float> A(size_t(geo.a_numel())), B(size_t(geo.b_numel()));
    compute_projector(cfg, geo, G.data(), 0, nullptr, nullptr, A.data(), B.data());
    Rng rng(1);
    std::vector<float> mo(size_t(geo.numel())), v(size_t(geo.numel()));
    for (auto& x : mo) x = float(rng.normal());
    for (auto& x : v) x = float(rng.uniform());
    auto m2 = mo, v2 = v;
    reproject_moments(geo, A.data(), B.data(), A.data(), B.data(), m2.data(), v2.data());
    for (size_t i = 0; i < mo.size(); ++i) {
      EXPECT_NEAR(m2[i], mo[i], 1e-5) << type;
      EXPECT_NEAR(v2[i], v[i], 1e-5) << type;
    }
  }
}

TEST(Projector, ReprojectRotatedBasisIsConsistent) {
  // P_new = P_old·Q (same span, rotated basis): the first moment's full-space
  // image P·m is unchanged, and v stays non-negative.
  const int64_t m = 30, n = 24, r = 5;
  auto G = synthetic(m, n, 0.5, 6);
  GaloreConfig cfg;
  cfg.projector = "svd";
  const Eigen::MatrixXf Q = random_orthonormal(r, r, 17).cast<float>();  // [r, r]
  for (const char* type : {"left", "right", "full"}) {
    const ProjGeom geo = make_proj_geom(type, m, n, int(r));
    std::vector<float> A(size_t(geo.a_numel())), B(size_t(geo.b_numel())), A2 = A, B2 = B;
    compute_projector(cfg, geo, G.data(), 0, nullptr, nullptr, A.data(), B.data());
    if (!A.empty()) Eigen::Map<RMat>(A2.data(), m, r) = Eigen::Map<const RMat>(A.data(), m, r) * Q;
    if (!B.empty()) Eigen::Map<RMat>(B2.data(), r, n) = Q.transpose() * Eigen::Map<const RMat>(B.data(), r, n);
    Rng rng(2);
    std::vector<float> mo(size_t(geo.numel())), v(size_t(geo.numel()));
    for (auto& x : mo) x = float(rng.normal());
    for (auto& x : v) x = float(rng.uniform());
    auto m2 = mo, v2 = v;
    reproject_moments(geo, A.data(), B.data(), A2.data(), B2.data(), m2.data(), v2.data());
    std::vector<float> full_old(size_t(m * n)), full_new(size_t(m * n));
    galore_project_back(geo, A.data(), B.data(), mo.data(), full_old.data());
    galore_project_back(geo, A2.data(), B2.data(), m2.data(), full_new.data());
    for (size_t i = 0; i < full_old.size(); ++i) EXPECT_NEAR(full_new[i], full_old[i], 1e-5) << type;
    for (float x : v2) EXPECT_GE(x, 0.0f) << type;
  }
}
