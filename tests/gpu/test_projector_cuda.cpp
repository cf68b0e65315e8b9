// CudaProjectorRefresh (cuda/projector.h) against the CPU reference
// (optim/projector.h) on the same bf16-rounded gradient with a decaying
// spectrum: cold and warm, left / right / full, rank-deficient G, the svd
// option, reproject_moments, and run-to-run bit equality. Projectors are
// compared by subspace angle, columnwise agreement (which includes the sign)
// and orthonormality; the GPU's are bf16, so tolerances are ~1e-2.
// Without a device every test skips and says why.
#include "tests/gpu/test_gpu_util.h"

#ifdef GALORE_WITH_CUDA

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include <Eigen/Dense>

#include "config/config.h"
#include "core/error.h"
#include "core/rng.h"
#include "cuda/projector.h"
#include "optim/projector.h"
#include "tests/projector_test_util.h"

using namespace gt;
using namespace gt::test;

namespace {

// G [m, n] row-major = U diag(decay^i) Vᵀ over `rank` singular values, rounded to bf16.
std::vector<float> synthetic_bf16(int64_t m, int64_t n, double decay, uint64_t seed, int64_t rank = -1) {
  return round_bf16(synthetic(m, n, decay, seed, 0.0, rank));
}

// min over the first `cols` columns j of P1[:, j]·P2[:, j], P1, P2 [d, r]
// (1 when equal, < 0 when a sign differs; |·| when abs).
double min_column_agreement(const std::vector<float>& p1, const std::vector<float>& p2, int64_t d, int64_t r,
                            bool abs = false, int64_t cols = -1) {
  Eigen::Map<const RMat> A(p1.data(), d, r), B(p2.data(), d, r);
  double mn = 1.0;
  for (int64_t j = 0; j < (cols < 0 ? r : cols); ++j) {
    const double c = A.col(j).cast<double>().dot(B.col(j).cast<double>());
    mn = std::min(mn, abs ? std::fabs(c) : c);
  }
  return mn;
}

struct Proj {
  std::vector<float> A, B;  // [m, r] / [r, n], empty for the unused side
};

Proj cpu_refresh(const GaloreConfig& cfg, const ProjGeom& geo, const std::vector<float>& g, uint64_t seed,
                 const Proj* old) {
  Proj p{std::vector<float>(size_t(geo.a_numel())), std::vector<float>(size_t(geo.b_numel()))};
  compute_projector(cfg, geo, g.data(), seed, old && !old->A.empty() ? old->A.data() : nullptr,
                    old && !old->B.empty() ? old->B.data() : nullptr, p.A.data(), p.B.data());
  return p;
}

class ProjectorCuda : public GpuTest {
 protected:
  // One refresh on the GPU (fresh object and workspace), outputs poisoned first.
  // external: the cuBLAS workspace and the persistent state are separate
  // buffers (as CudaOptimKernels provides them) instead of parts of `ws`.
  Proj gpu_refresh(const GaloreConfig& cfg, const ProjGeom& geo, const std::vector<float>& g, uint64_t seed,
                   const Proj* old, bool external = false) {
    const std::vector<ProjGeom> geos = {geo};
    DevBuf<char> ws(CudaProjectorRefresh::workspace_bytes(cfg, geos, external));
    DevBuf<char> cublas_ws(external ? kProjectorCublasWorkspace : 1), state(kProjectorStateBytes);
    ws.poison();
    state.poison();
    CudaProjectorRefresh::External ext;
    ext.cublas_workspace = cublas_ws.p;
    ext.cublas_workspace_bytes = cublas_ws.n;
    ext.state = state.p;
    CudaProjectorRefresh pr(stream, cfg, geos, ws.p, ws.n, external ? &ext : nullptr);
    Bf16Buf dg(g), dA(size_t(std::max<int64_t>(geo.a_numel(), 1))), dB(size_t(std::max<int64_t>(geo.b_numel(), 1)));
    std::unique_ptr<Bf16Buf> dAo, dBo;
    if (old && !old->A.empty()) dAo = std::make_unique<Bf16Buf>(round_bf16(old->A));
    if (old && !old->B.empty()) dBo = std::make_unique<Bf16Buf>(round_bf16(old->B));
    dA.poison();
    dB.poison();
    pr.refresh(cfg, geo, dg.p, seed, dAo ? dAo->p : nullptr, dBo ? dBo->p : nullptr, dA.p, dB.p);
    sync();
    pr.check_errors();
    Proj out;
    if (geo.a_numel()) out.A = dA.download_f32();
    if (geo.b_numel()) out.B = dB.download_f32();
    return out;
  }

  // GPU vs CPU: same subspace, same columns (signs included), orthonormal.
  void compare(const std::string& what, const ProjGeom& geo, const Proj& gpu, const Proj& cpu, double angle_tol,
               bool signs = true) {
    const int64_t m = geo.m, n = geo.n, r = geo.r;
    if (!cpu.A.empty()) {
      ASSERT_EQ(count_nonfinite(gpu.A), 0u) << what;
      const double a = subspace_sin_angle(cpu.A.data(), gpu.A.data(), m, r);
      const double o = orthonormality_error(gpu.A, m, r);
      const double c = min_column_agreement(cpu.A, gpu.A, m, r, !signs);
      if (std::getenv("GT_TEST_VERBOSE")) std::printf("    %-28s A: sin %.2e ortho %.2e col %.4f\n", what.c_str(), a, o, c);
      EXPECT_LT(a, angle_tol) << what << " A";
      EXPECT_LT(o, 1e-2) << what << " A";
      EXPECT_GT(c, 0.98) << what << " A";
    }
    if (!cpu.B.empty()) {
      ASSERT_EQ(count_nonfinite(gpu.B), 0u) << what;
      const auto bc = transpose(cpu.B, r, n), bg = transpose(gpu.B, r, n);
      const double a = subspace_sin_angle(bc.data(), bg.data(), n, r);
      const double o = orthonormality_error(bg, n, r);
      const double c = min_column_agreement(bc, bg, n, r, !signs);
      if (std::getenv("GT_TEST_VERBOSE")) std::printf("    %-28s B: sin %.2e ortho %.2e col %.4f\n", what.c_str(), a, o, c);
      EXPECT_LT(a, angle_tol) << what << " B";
      EXPECT_LT(o, 1e-2) << what << " B";
      EXPECT_GT(c, 0.98) << what << " B";
    }
  }
};

GaloreConfig randomized_cfg(int p = 8, int q = 1) {
  GaloreConfig cfg;
  cfg.projector = "randomized";
  cfg.oversampling = p;
  cfg.power_iters = q;
  cfg.warm_start = true;
  return cfg;
}

}  // namespace

TEST_F(ProjectorCuda, ColdMatchesCpu) {
  // Odd sizes; decay 0.7: distinct, well separated singular values.
  const int64_t m = 203, n = 121, r = 8;
  const auto G = synthetic_bf16(m, n, 0.7, 1);
  for (int q : {0, 1, 2})
    for (const char* type : {"left", "right", "full"}) {
      const GaloreConfig cfg = randomized_cfg(8, q);
      const ProjGeom geo = make_proj_geom(type, m, n, int(r));
      compare(std::string("cold ") + type + " q=" + std::to_string(q), geo, gpu_refresh(cfg, geo, G, 77, nullptr),
              cpu_refresh(cfg, geo, G, 77, nullptr), 2e-2);
    }
}

TEST_F(ProjectorCuda, WideOtherSideGoesThroughPanels) {
  // e (the side not projected) > kProjectorPanelCols: X·B and Xᵀ·Q run panel
  // by panel from the bf16 gradient, the last panel partial; a non-finite
  // element in the last panel still reads as 0. Cold and warm, both sides.
  const int64_t e = 2 * kProjectorPanelCols + 300, d = 40, r = 8;
  for (const char* type : {"left", "right"}) {
    const bool left = std::string(type) == "left";
    const int64_t m = left ? d : e, n = left ? e : d;
    auto G = synthetic_bf16(m, n, 0.7, 11);
    G[size_t(left ? (m - 1) * n + n - 2 : (m - 2) * n + 3)] = std::numeric_limits<float>::infinity();
    const GaloreConfig cfg = randomized_cfg(8, 1);
    const ProjGeom geo = make_proj_geom(type, m, n, int(r));
    const Proj cold_cpu = cpu_refresh(cfg, geo, G, 21, nullptr);
    compare(std::string("panels cold ") + type, geo, gpu_refresh(cfg, geo, G, 21, nullptr), cold_cpu, 2e-2);
    Proj old = cold_cpu;
    for (auto* v : {&old.A, &old.B}) *v = round_bf16(*v);
    compare(std::string("panels warm ") + type, geo, gpu_refresh(cfg, geo, G, 22, &old),
            cpu_refresh(cfg, geo, G, 22, &old), 2e-2);
  }
}

TEST_F(ProjectorCuda, WarmMatchesCpu) {
  const int64_t m = 150, n = 260, r = 16;
  const auto G_prev = synthetic_bf16(m, n, 0.85, 2);
  auto G = G_prev;
  {
    const auto noise = synthetic_bf16(m, n, 0.85, 3);
    for (size_t i = 0; i < G.size(); ++i) G[i] = round_bf16(G[i] + 0.05f * noise[i]);
  }
  for (int q : {1, 2})
    for (const char* type : {"left", "right", "full"}) {
      const GaloreConfig cfg = randomized_cfg(8, q);
      const ProjGeom geo = make_proj_geom(type, m, n, int(r));
      Proj old = cpu_refresh(cfg, geo, G_prev, 5, nullptr);  // the previous projector, as bf16
      for (auto* v : {&old.A, &old.B}) *v = round_bf16(*v);
      const Proj cpu = cpu_refresh(cfg, geo, G, 6, &old), gpu = gpu_refresh(cfg, geo, G, 6, &old);
      compare(std::string("warm ") + type + " q=" + std::to_string(q), geo, gpu, cpu, 2e-2);
      // Signs follow the previous projector: diag(P_newᵀ·P_old) >= 0 (up to
      // bf16), and the leading, well-separated columns barely move.
      if (!old.A.empty()) {
        EXPECT_GT(min_column_agreement(old.A, gpu.A, m, r), -1e-2) << type;
        EXPECT_GT(min_column_agreement(old.A, gpu.A, m, r, false, 4), 0.5) << type;
      }
      if (!old.B.empty()) {
        const auto ob = transpose(old.B, r, n), nb = transpose(gpu.B, r, n);
        EXPECT_GT(min_column_agreement(ob, nb, n, r), -1e-2) << type;
        EXPECT_GT(min_column_agreement(ob, nb, n, r, false, 4), 0.5) << type;
      }
    }
}

TEST_F(ProjectorCuda, RankDeficientGradient) {
  // rank(G) = 6 < r = 24: every basis is orthonormal, spans G's range, and GPU
  // agrees with CPU on that range (the rest of the basis is arbitrary).
  const int64_t m = 96, n = 130, r = 24, rank = 6;
  const auto G = synthetic_bf16(m, n, 0.7, 4, rank);
  const std::vector<float> Z(G.size(), 0.0f);
  for (const std::vector<float>* g : {&G, &Z})
    for (const char* type : {"left", "right", "full"}) {
      const GaloreConfig cfg = randomized_cfg();
      const ProjGeom geo = make_proj_geom(type, m, n, int(r));
      const Proj cold = gpu_refresh(cfg, geo, *g, 8, nullptr);
      const Proj warm = gpu_refresh(cfg, geo, *g, 9, &cold);
      for (const Proj* p : {&cold, &warm}) {
        if (!p->A.empty()) {
          ASSERT_EQ(count_nonfinite(p->A), 0u) << type;
          EXPECT_LT(orthonormality_error(p->A, m, r), 1e-2) << type;
        }
        if (!p->B.empty()) {
          ASSERT_EQ(count_nonfinite(p->B), 0u) << type;
          EXPECT_LT(orthonormality_error(transpose(p->B, r, n), n, r), 1e-2) << type;
        }
        if (g == &G) {  // all of G's energy is kept (up to bf16 projectors)
          EXPECT_NEAR(energy_kept(geo, p->A.data(), p->B.data(), G), 1.0, 2e-2) << type;
        }
      }
    }
}

TEST_F(ProjectorCuda, NonFiniteGradientElementsAreZeroed) {
  const int64_t m = 70, n = 90, r = 6;
  auto G = synthetic_bf16(m, n, 0.6, 10);
  auto Gz = G;
  G[5] = NAN;
  G[77] = INFINITY;
  Gz[5] = Gz[77] = 0.0f;
  const GaloreConfig cfg = randomized_cfg();
  const ProjGeom geo = make_proj_geom("full", m, n, int(r));
  compare("non-finite", geo, gpu_refresh(cfg, geo, G, 3, nullptr), cpu_refresh(cfg, geo, Gz, 3, nullptr), 2e-2);
}

TEST_F(ProjectorCuda, ExactSvdOption) {
  // cuSOLVER gesvdj vs LAPACK sgesdd: same singular vectors up to sign (the
  // GPU makes the largest entry positive; LAPACK keeps its own convention).
  const int64_t m = 120, n = 75, r = 10;
  const auto G = synthetic_bf16(m, n, 0.75, 11);
  GaloreConfig cfg;
  cfg.projector = "svd";
  for (const char* type : {"left", "right", "full"}) {
    const ProjGeom geo = make_proj_geom(type, m, n, int(r));
    compare(std::string("svd ") + type, geo, gpu_refresh(cfg, geo, G, 0, nullptr), cpu_refresh(cfg, geo, G, 0, nullptr),
            2e-2, /*signs=*/false);
  }
}

TEST_F(ProjectorCuda, ReprojectMatchesCpu) {
  const int64_t m = 64, n = 96, r = 12;
  const auto G1 = synthetic_bf16(m, n, 0.8, 12), G2 = synthetic_bf16(m, n, 0.8, 13);
  for (const char* type : {"left", "right", "full"}) {
    const GaloreConfig cfg = randomized_cfg();
    const ProjGeom geo = make_proj_geom(type, m, n, int(r));
    Proj o = cpu_refresh(cfg, geo, G1, 1, nullptr), p = cpu_refresh(cfg, geo, G2, 2, nullptr);
    for (auto* v : {&o.A, &o.B, &p.A, &p.B}) *v = round_bf16(*v);
    const auto mom = randn_bf16(size_t(geo.numel()));
    auto var = randn_bf16(size_t(geo.numel()));
    for (float& x : var) x = x * x;
    auto m_ref = mom, v_ref = var;
    reproject_moments(geo, o.A.data(), o.B.data(), p.A.data(), p.B.data(), m_ref.data(), v_ref.data());

    const std::vector<ProjGeom> geos = {geo};
    DevBuf<char> ws(CudaProjectorRefresh::workspace_bytes(cfg, geos));
    CudaProjectorRefresh pr(stream, cfg, geos, ws.p, ws.n);
    const size_t na = size_t(std::max<int64_t>(geo.a_numel(), 1)), nb = size_t(std::max<int64_t>(geo.b_numel(), 1));
    Bf16Buf dAo(na), dA(na), dBo(nb), dB(nb);
    if (!o.A.empty()) dAo.upload_f32(o.A), dA.upload_f32(p.A);
    if (!o.B.empty()) dBo.upload_f32(o.B), dB.upload_f32(p.B);
    DevBuf<float> dm(mom.size()), dv(var.size());
    dm.upload(mom);
    dv.upload(var);
    pr.reproject_moments(geo, dAo.p, dBo.p, dA.p, dB.p, dm.p, dv.p);
    sync();
    expect_close(std::string("m ") + type, dm.download(), m_ref, 1e-5);
    expect_close(std::string("v ") + type, dv.download(), v_ref, 1e-5);
    for (float x : dv.download()) ASSERT_GE(x, 0.0f) << type;
  }
}

TEST_F(ProjectorCuda, RunsAreBitIdentical) {
  const int64_t m = 180, n = 140, r = 12;
  const auto G = synthetic_bf16(m, n, 0.8, 14);
  for (const char* type : {"left", "right", "full"}) {
    const GaloreConfig cfg = randomized_cfg();
    const ProjGeom geo = make_proj_geom(type, m, n, int(r));
    const Proj a = gpu_refresh(cfg, geo, G, 21, nullptr), b = gpu_refresh(cfg, geo, G, 21, nullptr);
    EXPECT_TRUE(bitwise_equal(a.A, b.A) && bitwise_equal(a.B, b.B)) << "cold " << type;
    const Proj c = gpu_refresh(cfg, geo, G, 22, &a), d = gpu_refresh(cfg, geo, G, 22, &a);
    EXPECT_TRUE(bitwise_equal(c.A, d.A) && bitwise_equal(c.B, d.B)) << "warm " << type;
    const Proj e = gpu_refresh(cfg, geo, G, 22, &a, /*external=*/true);
    EXPECT_TRUE(bitwise_equal(c.A, e.A) && bitwise_equal(c.B, e.B)) << "external cuBLAS workspace and state, " << type;
  }
}

TEST_F(ProjectorCuda, WorkspaceBoundsCover7BShapes) {
  // The planned (GPU-free) workspace covers cuSOLVER's real work sizes at the
  // LLaMA-7B shapes, rank 1024 (the constructor throws otherwise). The svd
  // option's gesvdj bound is checked on the largest shape alone.
  std::vector<ProjGeom> geos;
  for (auto [m, n] : {std::pair<int64_t, int64_t>{4096, 4096}, {4096, 11008}, {11008, 4096}})
    geos.push_back(make_proj_geom("std", m, n, 1024));
  GaloreConfig cfg = randomized_cfg();
  {
    const size_t bytes = CudaProjectorRefresh::workspace_bytes(cfg, geos);
    std::printf("    7B randomized workspace: %.1f MiB\n", bytes / 1048576.0);
    DevBuf<char> ws(bytes);
    EXPECT_NO_THROW(CudaProjectorRefresh(stream, cfg, geos, ws.p, ws.n));
    geos.push_back(make_proj_geom("full", 4096, 11008, 1024));
    DevBuf<char> ws2(CudaProjectorRefresh::workspace_bytes(cfg, geos));
    EXPECT_NO_THROW(CudaProjectorRefresh(stream, cfg, geos, ws2.p, ws2.n));
  }
  cfg.projector = "svd";
  const std::vector<ProjGeom> big = {make_proj_geom("std", 11008, 4096, 1024)};
  const size_t bytes = CudaProjectorRefresh::workspace_bytes(cfg, big);
  std::printf("    7B svd workspace: %.1f MiB\n", bytes / 1048576.0);
  DevBuf<char> ws(bytes);
  EXPECT_NO_THROW(CudaProjectorRefresh(stream, cfg, big, ws.p, ws.n));
  // Too small a workspace is a clear error.
  EXPECT_THROW(CudaProjectorRefresh(stream, cfg, big, ws.p, bytes - 1), Error);
}

#endif  // GALORE_WITH_CUDA
