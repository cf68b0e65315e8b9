// Helpers the projector tests share (CPU: tests/test_projector.cpp; GPU:
// tests/gpu/test_projector_cuda.cpp; emulator: tools/cuda_emu/emu_projector_extra_test.cpp):
// synthetic gradients with a known spectrum and checks on projectors.
#pragma once
#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "optim/projector.h"

namespace gt::test {

using RMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// [d, k] with orthonormal columns (seeded Gaussian, Householder QR).
inline Eigen::MatrixXd random_orthonormal(int64_t d, int64_t k, uint64_t seed) {
  Rng rng(seed);
  Eigen::MatrixXd x(d, k);
  for (int64_t j = 0; j < k; ++j)
    for (int64_t i = 0; i < d; ++i) x(i, j) = rng.normal();
  Eigen::HouseholderQR<Eigen::MatrixXd> qr(x);
  return qr.householderQ() * Eigen::MatrixXd::Identity(d, k);
}

// G [m, n] row-major = U diag(s) Vᵀ with s_i = decay^i over `rank` singular
// values (min(m, n) when rank <= 0), plus optional Gaussian noise.
inline std::vector<float> synthetic(int64_t m, int64_t n, double decay, uint64_t seed, double noise = 0.0,
                                    int64_t rank = -1) {
  const int64_t k = rank > 0 ? rank : std::min(m, n);
  // Three streams per seed: different seeds never share U, V or the noise.
  const Eigen::MatrixXd U = random_orthonormal(m, k, 3 * seed), V = random_orthonormal(n, k, 3 * seed + 1);
  Eigen::VectorXd s(k);
  for (int64_t i = 0; i < k; ++i) s(i) = std::pow(decay, double(i));
  Eigen::MatrixXd G = U * s.asDiagonal() * V.transpose();
  if (noise > 0) {
    Rng rng(3 * seed + 2);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) G(i, j) += noise * rng.normal();
  }
  const RMat gf = G.cast<float>();
  return std::vector<float>(gf.data(), gf.data() + m * n);
}

inline std::vector<float> transpose(const std::vector<float>& b, int64_t r, int64_t n) {  // [r, n] -> [n, r]
  std::vector<float> t(size_t(r * n));
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < n; ++j) t[size_t(j * r + i)] = b[size_t(i * n + j)];
  return t;
}

// max |PᵀP − I| for p [d, r].
inline double orthonormality_error(const std::vector<float>& p, int64_t d, int64_t r) {
  Eigen::Map<const RMat> P(p.data(), d, r);
  return (P.transpose() * P - Eigen::MatrixXf::Identity(r, r)).cwiseAbs().maxCoeff();
}

// ‖R‖² / ‖G‖² for R = the projection of G through (A, B): 1 when the
// projector keeps all of G's energy (G of rank <= r).
inline double energy_kept(const ProjGeom& geo, const float* A, const float* B, const std::vector<float>& G) {
  std::vector<float> R(size_t(geo.numel()));
  galore_project(geo, A, B, G.data(), R.data());
  double e = 0, e0 = 0;
  for (float x : R) e += double(x) * x;
  for (float x : G) e0 += double(x) * x;
  return e / e0;
}

}  // namespace gt::test
