// GaLore projectors: which side a weight is projected on, the projection and
// its inverse, and the refresh (exact SVD or a randomized range finder).
// All matrices are fp32, row-major; G is a weight's gradient [m, n]
// (m = out_features, n = in_features).
#pragma once
#include <cstdint>
#include <string>

#include "config/config.h"

namespace gt {

// Left:  A [m, r] = U[:, :r],          R = Aᵀ·G    [r, n], back A·R
// Right: B [r, n] = Vᵀ[:r],            R = G·Bᵀ    [m, r], back R·B
// Both (proj_type full): A and B,      R = Aᵀ·G·Bᵀ [r, r], back A·R·B
enum class ProjSide { Left, Right, Both };
const char* proj_side_name(ProjSide s);

// Shapes of one GaLore target.
struct ProjGeom {
  ProjSide side = ProjSide::Left;
  int64_t m = 0, n = 0;  // weight [m, n]
  int64_t r = 0;         // effective rank: min(rank, m, n)
  int64_t rows() const { return side == ProjSide::Right ? m : r; }  // projected gradient [rows, cols]
  int64_t cols() const { return side == ProjSide::Left ? n : r; }
  int64_t numel() const { return rows() * cols(); }
  int64_t a_numel() const { return side == ProjSide::Right ? 0 : m * r; }  // A [m, r]
  int64_t b_numel() const { return side == ProjSide::Left ? 0 : r * n; }   // B [r, n]
};

// proj_type std | reverse_std | left | right | full. std: m >= n projects on
// the right, m < n on the left (the smaller dimension shrinks to r);
// reverse_std the opposite. Bad names are a gt::Error naming the key.
ProjGeom make_proj_geom(const std::string& proj_type, int64_t m, int64_t n, int rank);

// Checks optimizer.galore.* values (names the key on error).
void validate_galore_config(const GaloreConfig& g);

// Whether a GaLore target computes a new projector at micro-batch `micro` of
// its update number `steps` (counted from 0) after `refreshes` refreshes: at
// micro-batch 0 of every update_proj_gap-th update, and before its first update.
bool galore_refresh_due(const GaloreConfig& g, int64_t steps, int micro, int64_t refreshes);

// Exact SVD of g[m, n] with LAPACKE_sgesdd (the driver torch.linalg.svd uses on
// the CPU, so the singular vectors' signs follow the same convention):
// U[m, r] = U[:, :r] and Vt[r, n] = Vᵀ[:r]; either may be null.
void svd_top(const float* g, int64_t m, int64_t n, int64_t r, float* U, float* Vt);

// ---- the randomized refresh (docs/OPTIMIZER.md, "Projector refresh") ----
// One algorithm, run by this CPU reference and by the CUDA refresh
// (cuda/projector.h); only the floating-point summation order differs.

// Shift of the warm iteration: Y = (X·Xᵀ + μI)·P with μ = kWarmShift·‖X·Xᵀ·P‖_F
// (μ = 1 when that is 0). It keeps σ_min(Y) >= μ, so Y has full rank and a
// condition number <= ~1/kWarmShift even for a rank-deficient X, which the
// first (fp64) CholeskyQR pass handles; the shift does not move the singular
// vectors and slows convergence only for directions with σ² < ~μ.
constexpr double kWarmShift = 1e-6;

// Orthonormal basis P [d, r] (row-major) of the top-r left singular subspace of
// x [d, e] (row-major), r <= min(d, e).
// Cold (warm_P null): k = min(r + oversampling, d, e); Q = hqr(X·Ω) with the
//   sketch Ω [e, k] of cuda/sketch.h (element (i, j) = sketch_normal(seed,
//   j·e + i)); power_iters times Z = hqr(Xᵀ·Q), Q = hqr(X·Z) (hqr: Householder
//   QR's thin Q, exact for rank-deficient blocks); Rayleigh-Ritz: W = Xᵀ·Q
//   [e, k] = Q_w·R_w (Householder), eigenvectors V of R_wᵀ·R_w [k, k] in fp64
//   (= Qᵀ·X·Xᵀ·Q), P = Q·V[:, top r] in descending eigenvalue order.
// Warm (warm_P [d, r], the previous basis): max(power_iters, 1) times
//   Z = Xᵀ·P, Y = X·Z + μ·P (kWarmShift), P = cholqr2(Y): pass 1 with the Gram
//   matrix, Cholesky and triangular solve in fp64, pass 2 in fp32. No
//   oversampling, no sketch and no Rayleigh-Ritz: one step of orthogonal
//   iteration per refresh, which keeps each column close to the old one.
// Signs are left as they come; compute_projector fixes them (fix_basis_signs).
void randomized_basis(const float* x, int64_t d, int64_t e, int64_t r, int oversampling, int power_iters,
                      const float* warm_P, uint64_t seed, float* P);

// Column signs of P [d, r] (row-major): with P_old [d, r], flip column j where
// P[:, j]·P_old[:, j] < 0; without, make each column's largest-magnitude entry
// (the first on ties) positive, so the result does not depend on the QR or
// eigensolver's sign conventions.
void fix_basis_signs(float* P, const float* P_old, int64_t d, int64_t r);

// New projector of geometry geo from gradient g[m, n] (non-finite elements are
// read as 0) into A [m, r] / B [r, n] (per side). A_old/B_old: the previous
// projector or null (first refresh). Randomized: A = randomized_basis(G), B =
// randomized_basis(Gᵀ)ᵀ (full: both, B with sketch_seed_right(seed)); the
// previous projector is the warm start (cfg.warm_start) and the signs follow
// fix_basis_signs (aligned with the previous projector, diag(P_newᵀ·P_old) >= 0,
// so that kept moments stay meaningful). The exact SVD keeps LAPACK's signs,
// as the official code.
void compute_projector(const GaloreConfig& cfg, const ProjGeom& geo, const float* g, uint64_t seed,
                       const float* A_old, const float* B_old, float* A, float* B);

// R [rows, cols] = projection of g [m, n].
void galore_project(const ProjGeom& geo, const float* A, const float* B, const float* g, float* R);
// The same projection of g = dyᵀ·x (dy [N, m], x [N, n]; a linear layer's weight
// gradient) without forming g, over row chunks of at most tmp_rows tokens:
//   Left   R [r, n] = Σ_c (dy_c·A)ᵀ·x_c        tmp [tmp_rows, r] holds dy_c·A
//   Right  R [m, r] = Σ_c dy_cᵀ·(x_c·Bᵀ)       tmp holds x_c·Bᵀ
// 2·N·r·(m+n) FLOPs against 2·N·m·n + 2·r·m·n. R += when accumulate. Both: not
// supported (galore_factors_supported).
inline bool galore_factors_supported(const ProjGeom& geo) { return geo.side != ProjSide::Both; }
void galore_project_factors(const ProjGeom& geo, const float* A, const float* B, const float* dy, const float* x,
                            int64_t N, float* tmp, int64_t tmp_rows, float* R, bool accumulate);
// out [m, n] = back-projection of R [rows, cols] (without GaLore's scale).
void galore_project_back(const ProjGeom& geo, const float* A, const float* B, const float* R, float* out);

// Rotates Adam moments m, v [rows, cols] from the old projector's basis into
// the new one's: M = P_newᵀ·P_old (left: Mₐ = A_newᵀ·A_old [r, r], m' = Mₐ·m;
// right: M_b = B_new·B_oldᵀ [r, r], m' = m·M_bᵀ; full: both). Second moment
// under the independent-coordinates approximation: v' = (M∘M)·v (resp.
// v·(M∘M)ᵀ), which stays non-negative.
void reproject_moments(const ProjGeom& geo, const float* A_old, const float* B_old, const float* A_new,
                       const float* B_new, float* m, float* v);

// Sine of the largest principal angle between span(P1) and span(P2), both
// with orthonormal columns [d, r] (row-major). For tests and diagnostics.
double subspace_sin_angle(const float* P1, const float* P2, int64_t d, int64_t r);

}  // namespace gt
