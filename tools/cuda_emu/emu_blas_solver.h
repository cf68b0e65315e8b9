// Workspace regions for the emulated cuBLAS / cuSOLVER (emu_blas_solver.cpp).
// run_projector.sh inserts two calls into the generated projector_emu.cpp (not
// into cuda/projector.cu): emu_projector_regions(I) at the start of each
// refresh() registers the refresh's regions of the workspace (gf, big, y,
// p_old, ... with their planned byte sizes), and reproject_moments() registers
// its own (a_old ... tmp). While registered:
//   - every cuBLAS / cuSOLVER operand that starts inside a region must end
//     inside it (a call that spills into the next region of the same
//     workspace would pass every allocation-level check);
//   - the alignment padding after each region is ASan-poisoned, so a kernel
//     (or BLAS call) that runs past its region's planned size by less than the
//     padding faults at once.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cuda/projector.h"  // projector_align, kProjectorNormBlocks

void emu_region_clear();
void emu_region_add(const void* p, size_t bytes, size_t padded_bytes, const char* name);

template <class Impl>
void emu_projector_regions(const Impl& I) {
  emu_region_clear();
  const auto& w = I.plan;
#define EMU_REGION(ptr, bytes) emu_region_add(I.ptr, w.bytes, gt::projector_align(w.bytes), #ptr)
  EMU_REGION(gf, gf);
  EMU_REGION(gpanel, gpanel);
  EMU_REGION(big, big);
  EMU_REGION(y, y);
  EMU_REGION(p_old, p_old);
  EMU_REGION(p_new, p_new);
  EMU_REGION(yd, yd);
  EMU_REGION(s64, s64);
  EMU_REGION(eig, eig);
  EMU_REGION(tau, tau);
  EMU_REGION(sign, sign);
  EMU_REGION(lwork, lwork);
  EMU_REGION(svd_s, svd_s);
  EMU_REGION(svd_u, svd_u);
  EMU_REGION(svd_v, svd_v);
#undef EMU_REGION
  // `small`: partial [kProjectorNormBlocks] fp64, μ, info, status [2]
  emu_region_add(I.partial, gt::kProjectorNormBlocks * sizeof(double), gt::kProjectorNormBlocks * sizeof(double),
                 "partial");
  emu_region_add(I.info, sizeof(int), sizeof(int), "info");
  emu_region_add(I.status, 2 * sizeof(int), 2 * sizeof(int), "status");
}

// reproject_moments()'s regions (ProjectorWorkspace::reproject), fp32 element counts.
inline void emu_reproject_regions(const float* a_old, const float* a_new, int64_t na, const float* b_old,
                                  const float* b_new, int64_t nb, const float* M, const float* M2, int64_t rr,
                                  const float* tmp, int64_t nt) {
  emu_region_clear();
  auto add = [](const float* p, int64_t n, const char* name) {
    emu_region_add(p, size_t(n) * sizeof(float), gt::projector_align(size_t(n) * sizeof(float)), name);
  };
  add(a_old, na, "a_old");
  add(a_new, na, "a_new");
  add(b_old, nb, "b_old");
  add(b_new, nb, "b_new");
  add(M, rr, "M");
  add(M2, rr, "M2");
  add(tmp, nt, "tmp");
}
