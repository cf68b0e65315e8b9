// Host stand-in for CudaProjectorRefresh (cuda/projector.{h,cu}) in the
// emulated build: cuBLAS and cuSOLVER cannot run on the emulator, so the
// refresh and the moment reprojection call the CPU reference
// (compute_projector / reproject_moments, optim/projector.h) on fp32 copies of
// the bf16 device tensors ("device" memory is host memory here).
//
// What is kept from the real class, so that the plan arithmetic and the
// callers' contract are exercised:
//   - workspace_bytes() is the real one (projector_workspace_layout(...).total(),
//     host code in the header);
//   - the constructor checks the workspace size and 256-byte alignment, carves
//     the regions in the real order, and touches every planned byte (so
//     AddressSanitizer fails if the caller's buffer is smaller than it says);
//   - refresh() checks cfg and the geometry against the plan (memcmp, as the
//     real one), converts g to fp32 with non-finite -> 0 into the `gf` region
//     (as grad_to_f32_kernel), writes only the used sides, and refuses A/B
//     aliasing A_old/B_old;
//   - reproject_moments() checks the geometry's reproject bytes against the plan.
// What it cannot check: anything of cuBLAS / cuSOLVER (lwork, info codes,
// column-major mapping inside projector.cu). Those need the real GPU
// (tests/gpu/test_projector_cuda.cpp).
#include "emu_helpers.h"

#include <cstring>
#include <vector>

#include "core/error.h"
#include "cuda/projector.h"

namespace gt {

struct CudaProjectorRefresh::Impl {
  cudaStream_t stream = nullptr;
  GaloreConfig cfg;
  ProjectorWorkspace plan;
  char* base = nullptr;
  size_t bytes = 0;
  float* gf = nullptr;  // the real `gf` region: fp32 g [m, n]
  bool refreshed = false;
};

namespace {
std::vector<float> bf16_vec(const bf16* p, int64_t n) {
  std::vector<float> v(size_t(n > 0 ? n : 0));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = __bfloat162float(p[i]);
  return v;
}
void store_bf16(const std::vector<float>& v, bf16* p) {
  for (size_t i = 0; i < v.size(); ++i) p[i] = __float2bfloat16(v[i]);
}
}  // namespace

CudaProjectorRefresh::CudaProjectorRefresh(cudaStream_t stream, const GaloreConfig& cfg,
                                           const std::vector<ProjGeom>& geos, void* workspace,
                                           size_t workspace_bytes_)
    : impl_(std::make_unique<Impl>()) {
  Impl& I = *impl_;
  I.stream = stream;
  I.cfg = cfg;
  I.plan = projector_workspace_layout(cfg, geos);
  const size_t need = I.plan.total();
  if (workspace_bytes_ < need)
    fail("CudaProjectorRefresh: workspace of {} bytes is smaller than the {} bytes planned", workspace_bytes_, need);
  if (reinterpret_cast<uintptr_t>(workspace) % 256 != 0) fail("CudaProjectorRefresh: workspace must be 256-byte aligned");
  I.base = static_cast<char*>(workspace);
  I.bytes = workspace_bytes_;
  // Every planned byte must be addressable (ASan): poison it with NaNs (0xFF).
  std::memset(I.base, 0xFF, need);
  // The real carve order: cublas, small, then the refresh regions (gf first).
  char* p = I.base + projector_align(I.plan.cublas) + projector_align(I.plan.small);
  I.gf = reinterpret_cast<float*>(p);
}

CudaProjectorRefresh::~CudaProjectorRefresh() = default;

size_t CudaProjectorRefresh::workspace_bytes(const GaloreConfig& cfg, const std::vector<ProjGeom>& geos) {
  return projector_workspace_layout(cfg, geos).total();
}

cudaStream_t CudaProjectorRefresh::stream() const { return impl_->stream; }

void CudaProjectorRefresh::check_errors() {}

void CudaProjectorRefresh::refresh(const GaloreConfig& cfg, const ProjGeom& geo, const bf16* g, uint64_t seed,
                                   const bf16* A_old, const bf16* B_old, bf16* A, bf16* B) {
  Impl& I = *impl_;
  if (cfg.projector != I.cfg.projector || cfg.oversampling > I.cfg.oversampling)
    fail("CudaProjectorRefresh: built for projector {} with oversampling {}, called with {} / {}", I.cfg.projector,
         I.cfg.oversampling, cfg.projector, cfg.oversampling);
  {
    const ProjectorWorkspace w = projector_workspace_for(cfg, geo);
    ProjectorWorkspace merged = I.plan;
    merged.merge_max(w);
    if (std::memcmp(&merged, &I.plan, sizeof(merged)) != 0)
      fail("CudaProjectorRefresh: geometry {}x{} rank {} ({}) is not one of the planned shapes", geo.m, geo.n, geo.r,
           proj_side_name(geo.side));
  }
  const int64_t m = geo.m, n = geo.n, r = geo.r;
  const bool left = geo.side != ProjSide::Right, right = geo.side != ProjSide::Left;
  if (!g) fail("emu CudaProjectorRefresh::refresh: g is null");
  if ((left && !A) || (right && !B)) fail("emu CudaProjectorRefresh::refresh: missing output side");
  if ((A && A == A_old) || (B && B == B_old)) fail("emu CudaProjectorRefresh::refresh: A/B alias A_old/B_old");
  if ((A_old != nullptr) != (B_old != nullptr) && left && right)
    fail("emu CudaProjectorRefresh::refresh: proj_type full with only one old side");
  for (int64_t i = 0; i < m * n; ++i) {  // grad_to_f32_kernel into the planned region
    const float x = __bfloat162float(g[i]);
    I.gf[i] = std::isfinite(x) ? x : 0.0f;
  }
  std::vector<float> a_old, b_old, a(size_t(left ? m * r : 0)), b(size_t(right ? r * n : 0));
  if (left && A_old) a_old = bf16_vec(A_old, m * r);
  if (right && B_old) b_old = bf16_vec(B_old, r * n);
  compute_projector(cfg, geo, I.gf, seed, a_old.empty() ? nullptr : a_old.data(),
                    b_old.empty() ? nullptr : b_old.data(), left ? a.data() : nullptr, right ? b.data() : nullptr);
  if (left) store_bf16(a, A);
  if (right) store_bf16(b, B);
  I.refreshed = true;
}

void CudaProjectorRefresh::reproject_moments(const ProjGeom& geo, const bf16* A_old, const bf16* B_old, const bf16* A,
                                             const bf16* B, float* m, float* v) {
  Impl& I = *impl_;
  if (projector_workspace_for(I.cfg, geo).reproject > I.plan.reproject)
    fail("CudaProjectorRefresh: geometry {}x{} rank {} is not one of the planned shapes", geo.m, geo.n, geo.r);
  const bool left = geo.side != ProjSide::Right, right = geo.side != ProjSide::Left;
  if ((left && (!A_old || !A)) || (right && (!B_old || !B)))
    fail("emu CudaProjectorRefresh::reproject_moments: missing projector side");
  std::vector<float> a_old, a, b_old, b;
  if (left) a_old = bf16_vec(A_old, geo.a_numel()), a = bf16_vec(A, geo.a_numel());
  if (right) b_old = bf16_vec(B_old, geo.b_numel()), b = bf16_vec(B, geo.b_numel());
  gt::reproject_moments(geo, left ? a_old.data() : nullptr, right ? b_old.data() : nullptr, left ? a.data() : nullptr,
                        right ? b.data() : nullptr, m, v);
}

}  // namespace gt
