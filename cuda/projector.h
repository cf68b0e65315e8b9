// GaLore projector refresh on the GPU: the randomized algorithm of
// optim/projector.h (randomized_basis + fix_basis_signs, the CPU reference)
// with cuBLAS and cuSOLVER, or an exact SVD with cuSOLVER gesvdj
// (projector = svd), plus the moment reprojection (reproject_moments).
// See docs/OPTIMIZER.md, "Projector refresh".
//
// Layout: projectors and gradients are bf16 row-major as on the CPU (A [m, r],
// B [r, n], g [m, n]); the math runs in fp32 (fp64 for the small Gram /
// eigen problems) inside one caller-allocated workspace. The workspace size
// is a pure function of the shapes (ProjectorWorkspace below), so the memory
// planner computes it without a GPU.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "config/config.h"
#include "optim/projector.h"

namespace gt {

// Bytes of each workspace region: the largest over the planned geometries
// (both sides of a `full` one) for the configured method.
struct ProjectorWorkspace {
  // refresh (randomized: d = the projected side's dimension, e = the other,
  // c = max(min(r + oversampling, d, e), r))
  size_t gf = 0;     // projector = svd: fp32 copy of g [m, n] (non-finite -> 0)
  size_t gpanel = 0; // randomized: fp32 [d, min(e, kProjectorPanelCols)], one panel of X (non-finite -> 0)
  size_t big = 0;    // fp32 [e, c]: Ω, Z, W; then V[:, top r] [c, r]
  size_t y = 0;      // fp32 [d, c]: Y, Q
  size_t p_old = 0;  // fp32 [d, r]: previous basis, column-major (d of the sides projected)
  size_t p_new = 0;  // fp32 [d, r]: new basis / warm iterate
  size_t yd = 0;     // fp64 [d, r]: CholeskyQR pass 1
  size_t s64 = 0;    // fp64 2·[c, c]: R_w and Rayleigh-Ritz matrix, Gram (pass 2 uses it as fp32)
  size_t eig = 0;    // fp64 [c]
  size_t tau = 0;    // fp32 [c]: Householder scalars
  size_t sign = 0;   // fp32 [r]: column signs
  size_t small = 0;  // norm partials (fp64) + μ (fp32) + cuSOLVER info/status (int)
  size_t lwork = 0;  // cuSOLVER work: an upper bound of every lwork it asks for
  // projector = svd only: gesvdj of Gᵀ [n, m]
  size_t svd_s = 0;  // fp32 [min(m, n)]
  size_t svd_u = 0;  // fp32 [n, min(m, n)]
  size_t svd_v = 0;  // fp32 [m, min(m, n)]
  // reproject_moments (aliases the refresh regions): A_old, A [m, r], B_old, B [r, n],
  // M, M∘M [r, r], tmp [rows, cols], all fp32
  size_t reproject = 0;
  size_t cublas = 0;  // cuBLAS workspace (fixed)

  size_t refresh_bytes() const;  // the refresh regions but `small`, 256-byte aligned each
  size_t total() const;          // cublas + small + max(refresh, reproject): the carve order
  void merge_max(const ProjectorWorkspace& o);
};
// Region sizes one geometry needs (cfg.projector, cfg.oversampling), and
// their maximum over geos (what CudaProjectorRefresh needs). Defined below.
inline ProjectorWorkspace projector_workspace_for(const GaloreConfig& cfg, const ProjGeom& geo);
// external false: the workspace also holds the cuBLAS workspace and the
// persistent state (`small`); true: the caller provides both (see
// CudaProjectorRefresh::External), and the workspace is only the transient
// refresh / reproject regions, which the caller may overlay between refreshes.
inline ProjectorWorkspace projector_workspace_layout(const GaloreConfig& cfg, const std::vector<ProjGeom>& geos,
                                                     bool external = false);

constexpr size_t kProjectorCublasWorkspace = size_t(32) << 20;  // cuBLAS' recommended size on Hopper
// The randomized refresh multiplies by X (G or Gᵀ, [d, e]) one fp32 panel of
// this many of e's columns at a time, converted from the bf16 gradient, so no
// fp32 copy of all of G exists (172 MB at 7B; the panel is 16 MB).
constexpr int64_t kProjectorPanelCols = 1024;
constexpr int kProjectorNormBlocks = 256;  // fixed grid of the deterministic norm reduction
// The persistent state: norm partials (fp64) + μ + cuSOLVER info + the sticky status.
constexpr size_t kProjectorStateBytes = kProjectorNormBlocks * sizeof(double) + 64;

// Upper bounds of cuSOLVER's lwork (elements) for the calls the refresh makes.
// cuSOLVER documents no formula, so these are generous guesses (LAPACK's
// blocked algorithms need ~n·nb, syevd 1 + 6n + 2n²); the constructor checks
// them against the real queries and fails with both numbers if one is short.
inline size_t projector_lwork_qr(int64_t rows, int64_t cols) { return size_t(512 * (rows + cols)) + (size_t(1) << 20); }
// syevd: cuSOLVER 13.0 on an H200 asked for 4,424,147 doubles at n = 1032
// (about 4.15 n²; LAPACK's 1 + 6n + 2n² is 2.1M), above the old 3n² bound.
inline size_t projector_lwork_syevd(int64_t n) { return size_t(5 * n * n + 256 * n) + (size_t(1) << 20); }
inline size_t projector_lwork_potrf(int64_t n) { return size_t(512 * n) + (size_t(1) << 20); }
inline size_t projector_lwork_gesvdj(int64_t m, int64_t n) {
  const int64_t k = std::min(m, n);
  return size_t(m * n + 4 * k * k + 512 * (m + n)) + (size_t(1) << 20);
}

inline size_t projector_align(size_t b) { return (b + 255) & ~size_t(255); }

inline size_t ProjectorWorkspace::refresh_bytes() const {
  size_t t = 0;
  for (size_t b : {gf, gpanel, big, y, p_old, p_new, yd, s64, eig, tau, sign, lwork, svd_s, svd_u, svd_v})
    t += projector_align(b);
  return t;
}
inline size_t ProjectorWorkspace::total() const {
  return projector_align(cublas) + projector_align(small) + std::max(refresh_bytes(), projector_align(reproject));
}
inline void ProjectorWorkspace::merge_max(const ProjectorWorkspace& o) {
  size_t* a[] = {&gf,  &gpanel, &big,   &y,     &p_old, &p_new, &yd,    &s64,       &eig,
                 &tau, &sign,   &small, &lwork, &svd_s, &svd_u, &svd_v, &reproject, &cublas};
  const size_t* b[] = {&o.gf,  &o.gpanel, &o.big,   &o.y,     &o.p_old, &o.p_new, &o.yd,    &o.s64,       &o.eig,
                       &o.tau, &o.sign,   &o.small, &o.lwork, &o.svd_s, &o.svd_u, &o.svd_v, &o.reproject, &o.cublas};
  for (size_t i = 0; i < sizeof(a) / sizeof(a[0]); ++i) *a[i] = std::max(*a[i], *b[i]);
}

inline ProjectorWorkspace projector_workspace_for(const GaloreConfig& cfg, const ProjGeom& geo) {
  const size_t F = sizeof(float), D = sizeof(double);
  const int64_t m = geo.m, n = geo.n, r = geo.r;
  ProjectorWorkspace w;  // cublas: set by projector_workspace_layout
  w.sign = size_t(r) * F;  // small, cublas: set by projector_workspace_layout
  // the previous basis [d, r] of each projected side (d = m left, n right; also the svd path's signs)
  const int64_t d_old = std::max(geo.side != ProjSide::Right ? m : 0, geo.side != ProjSide::Left ? n : 0);
  w.p_old = size_t(d_old * r) * F;
  if (cfg.projector == "svd") {
    const int64_t k = std::min(m, n);
    w.gf = size_t(m * n) * F;
    w.svd_s = size_t(k) * F;
    w.svd_u = size_t(n * k) * F;
    w.svd_v = size_t(m * k) * F;
    w.lwork = projector_lwork_gesvdj(n, m) * F;
  } else {
    for (int side = 0; side < 2; ++side) {
      if (side == 0 ? geo.side == ProjSide::Right : geo.side == ProjSide::Left) continue;
      const int64_t d = side == 0 ? m : n, e = side == 0 ? n : m;
      const int64_t c = std::max(std::min<int64_t>({r + cfg.oversampling, d, e}), r);
      w.gpanel = std::max(w.gpanel, size_t(d * std::min(e, kProjectorPanelCols)) * F);
      w.big = std::max(w.big, size_t(e * c) * F);
      w.y = std::max(w.y, size_t(d * c) * F);
      w.p_new = std::max(w.p_new, size_t(d * r) * F);
      w.yd = std::max(w.yd, size_t(d * r) * D);
      w.s64 = std::max(w.s64, 2 * size_t(c * c) * D);
      w.eig = std::max(w.eig, size_t(c) * D);
      w.tau = std::max(w.tau, size_t(c) * F);
      w.lwork = std::max({w.lwork, projector_lwork_qr(d, c) * F, projector_lwork_qr(e, c) * F,
                          projector_lwork_syevd(c) * D, projector_lwork_potrf(r) * D});
    }
  }
  const int64_t na = geo.a_numel(), nb = geo.b_numel();
  w.reproject = (projector_align(size_t(na) * F) + projector_align(size_t(nb) * F)) * 2 +
                projector_align(size_t(r * r) * F) * 2 + projector_align(size_t(geo.numel()) * F);
  return w;
}

inline ProjectorWorkspace projector_workspace_layout(const GaloreConfig& cfg, const std::vector<ProjGeom>& geos,
                                                     bool external) {
  ProjectorWorkspace w;
  for (const ProjGeom& g : geos) w.merge_max(projector_workspace_for(cfg, g));
  w.cublas = external ? 0 : kProjectorCublasWorkspace;
  w.small = external ? 0 : kProjectorStateBytes;
  return w;
}

}  // namespace gt

#ifdef GALORE_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <memory>

namespace gt {

// Refreshes projectors on one stream. Owns its cuBLAS and cuSOLVER handles
// (bound to `stream`; cuBLAS uses 32 MiB of the workspace unless the caller
// provides External memory), never allocates
// device memory after construction and never synchronizes the host in
// refresh()/reproject_moments(): cuSOLVER's info outputs are collected on the
// device into a sticky status word that is copied to pinned host memory after
// each refresh and checked lazily (at the next refresh if that copy has
// finished, or by check_errors(), which waits for it). Not thread-safe.
class CudaProjectorRefresh {
 public:
  // `geos`: every geometry refresh() will see; `workspace`: a device buffer of
  // at least workspace_bytes(cfg, geos) bytes, alive as long as this object.
  // Queries cuSOLVER's real work sizes and fails (gt::Error) if the planned
  // bound is too small.
  // External: memory the caller provides instead of carving it from
  // `workspace` (then plan with workspace_bytes(cfg, geos, true)): a cuBLAS
  // workspace to share (same stream, e.g. CudaGemm::workspace()) and the
  // persistent state [kProjectorStateBytes], which must not be overlaid. The
  // workspace then holds only transient regions, free between refreshes.
  struct External {
    void* cublas_workspace = nullptr;
    size_t cublas_workspace_bytes = 0;
    void* state = nullptr;  // [kProjectorStateBytes], 256-byte aligned
  };
  CudaProjectorRefresh(cudaStream_t stream, const GaloreConfig& cfg, const std::vector<ProjGeom>& geos,
                       void* workspace, size_t workspace_bytes, const External* external = nullptr);
  ~CudaProjectorRefresh();
  CudaProjectorRefresh(const CudaProjectorRefresh&) = delete;
  CudaProjectorRefresh& operator=(const CudaProjectorRefresh&) = delete;

  // Computable without a GPU (pure function of the shapes).
  static size_t workspace_bytes(const GaloreConfig& cfg, const std::vector<ProjGeom>& geos, bool external = false);

  // New projector of geometry geo from g [m, n] into A [m, r] / B [r, n] (per
  // side; the unused one may be null), as compute_projector: A_old [m, r] /
  // B_old [r, n] are the previous projector or null (first refresh). cfg must
  // be the construction's (projector, oversampling may not grow); `seed` as
  // the CPU's (galore_sketch_seed). A/B may not alias A_old/B_old.
  void refresh(const GaloreConfig& cfg, const ProjGeom& geo, const __nv_bfloat16* g, uint64_t seed,
               const __nv_bfloat16* A_old, const __nv_bfloat16* B_old, __nv_bfloat16* A, __nv_bfloat16* B);

  // reproject_moments (optim/projector.h) on the GPU: m, v [rows, cols] fp32,
  // rotated in place from the old projector's basis into the new one's.
  void reproject_moments(const ProjGeom& geo, const __nv_bfloat16* A_old, const __nv_bfloat16* B_old,
                         const __nv_bfloat16* A, const __nv_bfloat16* B, float* m, float* v);

  // Waits for the last refresh and throws gt::Error if any cuSOLVER call since
  // construction reported a non-zero info (e.g. a failed Cholesky: non-finite
  // previous projector).
  void check_errors();

  cudaStream_t stream() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gt
#endif  // GALORE_WITH_CUDA
