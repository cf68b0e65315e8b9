// Extra emulator-only checks of cuda/projector.cu (run_projector.sh builds them
// next to tests/gpu/test_projector_cuda.cpp), for what those tests do not
// reach: one CudaProjectorRefresh serving several planned geometries in turn
// (regions sized by the largest, used by smaller ones; refreshes interleaved
// with reproject_moments, which aliases the refresh regions), the oversampled
// width clamped to min(d, e) (c = r or c = e), and tiny shapes (r = 1, d < 32).
// Each GPU projector is compared with the CPU reference (compute_projector) on
// the same bf16 inputs: subspace angle, column agreement, orthonormality.
#include "tests/gpu/test_gpu_util.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

#include "config/config.h"
#include "cuda/projector.h"
#include "optim/projector.h"
#include "tests/projector_test_util.h"

using namespace gt;
using namespace gt::test;

namespace {

std::vector<float> gradient(int64_t m, int64_t n, uint64_t seed) {  // decaying columns, bf16
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> N(0.0f, 1.0f);
  std::vector<float> g(size_t(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) g[size_t(i * n + j)] = N(rng) * std::pow(0.8f, float(std::min(i, j)));
  return round_bf16(g);
}
void compare_basis(const std::string& what, const std::vector<float>& gpu, const std::vector<float>& cpu, int64_t d,
                   int64_t r) {  // both [d, r] row-major
  ASSERT_EQ(count_nonfinite(gpu), 0u) << what;
  const double a = subspace_sin_angle(cpu.data(), gpu.data(), d, r);
  double ortho = 0, agree = 1;
  for (int64_t j = 0; j < r; ++j)
    for (int64_t k = 0; k < r; ++k) {
      double s = 0, c = 0;
      for (int64_t i = 0; i < d; ++i) {
        s += double(gpu[size_t(i * r + j)]) * gpu[size_t(i * r + k)];
        if (j == k) c += double(gpu[size_t(i * r + j)]) * cpu[size_t(i * r + j)];
      }
      ortho = std::max(ortho, std::fabs(s - (j == k)));
      if (j == k) agree = std::min(agree, c);
    }
  if (std::getenv("GT_TEST_VERBOSE")) std::printf("    %-34s sin %.2e ortho %.2e col %.4f\n", what.c_str(), a, ortho, agree);
  EXPECT_LT(a, 2e-2) << what;
  EXPECT_LT(ortho, 1e-2) << what;
  EXPECT_GT(agree, 0.98) << what;
}

struct Case {
  const char* type;
  int64_t m, n;
  int r;
};

class EmuProjectorExtra : public GpuTest {};

// One object planned for several geometries; each refreshed cold then warm
// (the smaller ones after the larger), with a reproject_moments in between.
TEST_F(EmuProjectorExtra, SeveralGeometriesOneObject) {
  const std::vector<Case> cases = {{"full", 96, 70, 12},  {"left", 40, 24, 24},  {"right", 40, 24, 24},
                                   {"left", 24, 40, 20},  {"right", 5, 3, 1},    {"full", 7, 9, 2},
                                   {"left", 150, 60, 50}, {"right", 33, 130, 30}};
  GaloreConfig cfg;
  cfg.projector = "randomized";
  cfg.oversampling = 8;
  cfg.power_iters = 1;
  cfg.warm_start = true;
  std::vector<ProjGeom> geos;
  for (const Case& c : cases) geos.push_back(make_proj_geom(c.type, c.m, c.n, c.r));
  DevBuf<char> ws(CudaProjectorRefresh::workspace_bytes(cfg, geos));
  ws.poison();
  CudaProjectorRefresh pr(stream, cfg, geos, ws.p, ws.n);
  uint64_t seed = 100;
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const ProjGeom& geo = geos[ci];
    const std::string name = std::string(cases[ci].type) + " " + std::to_string(geo.m) + "x" + std::to_string(geo.n) +
                             " r" + std::to_string(geo.r);
    const int64_t m = geo.m, n = geo.n, r = geo.r;
    std::vector<float> prevA, prevB;
    std::unique_ptr<Bf16Buf> dAo, dBo;
    for (int pass = 0; pass < 2; ++pass, ++seed) {
      const auto g = gradient(m, n, seed);
      std::vector<float> A(size_t(geo.a_numel())), B(size_t(geo.b_numel()));
      compute_projector(cfg, geo, g.data(), seed, pass ? (prevA.empty() ? nullptr : prevA.data()) : nullptr,
                        pass ? (prevB.empty() ? nullptr : prevB.data()) : nullptr, A.data(), B.data());
      Bf16Buf dg(g), dA(size_t(std::max<int64_t>(geo.a_numel(), 1))), dB(size_t(std::max<int64_t>(geo.b_numel(), 1)));
      dA.poison();
      dB.poison();
      pr.refresh(cfg, geo, dg.p, seed, pass && dAo ? dAo->p : nullptr, pass && dBo ? dBo->p : nullptr, dA.p, dB.p);
      sync();
      pr.check_errors();
      const std::string what = name + (pass ? " warm" : " cold");
      std::vector<float> gA, gB;
      if (geo.a_numel()) {
        gA = dA.download_f32();
        compare_basis(what + " A", gA, A, m, r);
      }
      if (geo.b_numel()) {
        gB = dB.download_f32();
        compare_basis(what + " B", transpose(gB, r, n), transpose(B, r, n), n, r);
      }
      if (pass == 1) {  // moments rotated from the previous projector into this one
        std::vector<float> mom(size_t(geo.numel())), var(mom.size());
        std::mt19937_64 rng(seed);
        std::normal_distribution<float> N(0.0f, 1.0f);
        for (size_t i = 0; i < mom.size(); ++i) mom[i] = N(rng), var[i] = mom[i] * mom[i];
        auto m_ref = mom, v_ref = var;
        reproject_moments(geo, prevA.empty() ? nullptr : prevA.data(), prevB.empty() ? nullptr : prevB.data(),
                          gA.empty() ? nullptr : gA.data(), gB.empty() ? nullptr : gB.data(), m_ref.data(),
                          v_ref.data());
        DevBuf<float> dm(mom.size()), dv(var.size());
        dm.upload(mom);
        dv.upload(var);
        pr.reproject_moments(geo, dAo ? dAo->p : nullptr, dBo ? dBo->p : nullptr, dA.p, dB.p, dm.p, dv.p);
        sync();
        expect_close(what + " m", dm.download(), m_ref, 1e-5);
        expect_close(what + " v", dv.download(), v_ref, 1e-5);
      }
      // This pass's bf16 projector is the next pass's previous one (CPU and GPU alike).
      prevA = gA;
      prevB = gB;
      if (!gA.empty()) dAo = std::make_unique<Bf16Buf>(gA);
      if (!gB.empty()) dBo = std::make_unique<Bf16Buf>(gB);
    }
  }
}

// The svd option on the same kind of mixed plan (gesvdj of Gᵀ, both orientations).
TEST_F(EmuProjectorExtra, SvdSeveralGeometries) {
  const std::vector<Case> cases = {{"full", 50, 30, 6}, {"left", 20, 64, 5}, {"right", 64, 20, 20}, {"full", 3, 5, 1}};
  GaloreConfig cfg;
  cfg.projector = "svd";
  std::vector<ProjGeom> geos;
  for (const Case& c : cases) geos.push_back(make_proj_geom(c.type, c.m, c.n, c.r));
  DevBuf<char> ws(CudaProjectorRefresh::workspace_bytes(cfg, geos));
  ws.poison();
  CudaProjectorRefresh pr(stream, cfg, geos, ws.p, ws.n);
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const ProjGeom& geo = geos[ci];
    const int64_t m = geo.m, n = geo.n, r = geo.r;
    const auto g = gradient(m, n, 7 + ci);
    std::vector<float> A(size_t(geo.a_numel())), B(size_t(geo.b_numel()));
    compute_projector(cfg, geo, g.data(), 0, nullptr, nullptr, A.data(), B.data());
    Bf16Buf dg(g), dA(size_t(std::max<int64_t>(geo.a_numel(), 1))), dB(size_t(std::max<int64_t>(geo.b_numel(), 1)));
    dA.poison();
    dB.poison();
    pr.refresh(cfg, geo, dg.p, 0, nullptr, nullptr, dA.p, dB.p);
    sync();
    pr.check_errors();
    // LAPACK's signs are its own: align the CPU columns with the GPU's first.
    auto align = [](std::vector<float> cpu, const std::vector<float>& gpu, int64_t d, int64_t r) {
      for (int64_t j = 0; j < r; ++j) {
        double s = 0;
        for (int64_t i = 0; i < d; ++i) s += double(cpu[size_t(i * r + j)]) * gpu[size_t(i * r + j)];
        if (s < 0)
          for (int64_t i = 0; i < d; ++i) cpu[size_t(i * r + j)] *= -1.0f;
      }
      return cpu;
    };
    const std::string what = std::string("svd ") + cases[ci].type + " " + std::to_string(m) + "x" + std::to_string(n);
    if (geo.a_numel()) {
      const auto gA = dA.download_f32();
      compare_basis(what + " A", gA, align(A, gA, m, r), m, r);
    }
    if (geo.b_numel()) {
      const auto gB = transpose(dB.download_f32(), r, n);
      compare_basis(what + " B", gB, align(transpose(B, r, n), gB, n, r), n, r);
    }
  }
}

}  // namespace
