// Finite-difference gradient checks of every CPU reference op on random
// tiny shapes (odd sizes, GQA, T=1). Loss = <op(x), r> for a random r, so
// backward gets dout = r.
#include <gtest/gtest.h>

#include <cstring>

#include "backend/backend.h"
#include "cuda/attention.h"
#include "cuda/crossentropy.h"
#include "cuda/embedding.h"
#include "cuda/matmul.h"
#include "cuda/residual.h"
#include "cuda/rmsnorm.h"
#include "cuda/rope.h"
#include "cuda/swiglu.h"
#include "fd_util.h"

using namespace gt;
using namespace gt::test;

// fp32 forward + central differences with h = 1e-2: errors ~1e-4; a wrong
// gradient gives O(1).
constexpr double kTol = 2e-3;

TEST(Ops, MatmulForwardMatchesNaive) {
  const int N = 5, C = 19, OC = 7;  // C not a multiple of the 16-lane dot
  auto x = randn(N * C, 1), w = randn(OC * C, 2);
  std::vector<float> out(N * OC);
  matmul_forward_cpu(out.data(), x.data(), w.data(), N, C, OC);
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < OC; ++o) {
      double s = 0;
      for (int c = 0; c < C; ++c) s += double(x[n * C + c]) * w[o * C + c];
      EXPECT_NEAR(out[n * OC + o], s, 1e-4);
    }
}

// The backend's fused op (the model's o and down projections): the product
// plus the residual, the two ops the CPU reference runs; out may not alias it.
TEST(Ops, MatmulForwardAddIsMatmulPlusResidual) {
  const int N = 5, C = 7, OC = 6;
  auto be = make_cpu_backend();
  std::vector<float> x = randn(size_t(N) * C, 1), w = randn(size_t(OC) * C, 2), r = randn(size_t(N) * OC, 3);
  std::vector<float> out(size_t(N) * OC, -1.0f), ref(size_t(N) * OC);
  matmul_forward_cpu(ref.data(), x.data(), w.data(), N, C, OC);
  for (size_t i = 0; i < ref.size(); ++i) ref[i] += r[i];
  const Tensor tx(x.data(), DType::F32, Device::CPU, {N, C}), tw(w.data(), DType::F32, Device::CPU, {OC, C});
  const Tensor tr(r.data(), DType::F32, Device::CPU, {N, OC}), tout(out.data(), DType::F32, Device::CPU, {N, OC});
  be->matmul_forward_add(tout, tx, tw, tr);
  EXPECT_EQ(out, ref);
  EXPECT_THROW(be->matmul_forward_add(tr, tx, tw, tr), Error);
}

TEST(Ops, MatmulBackward) {
  const int N = 6, C = 21, OC = 9;
  auto x = randn(N * C, 1), w = randn(OC * C, 2), r = randn(N * OC, 3);
  std::vector<float> out(N * OC), dx(N * C, 5.0f), dw(OC * C, 5.0f);
  auto loss = [&] {
    matmul_forward_cpu(out.data(), x.data(), w.data(), N, C, OC);
    return dot(out, r);
  };
  matmul_backward_cpu(dx.data(), dw.data(), r.data(), x.data(), w.data(), N, C, OC, false, false);
  EXPECT_LT(fd_rel_error(loss, x.data(), x.size(), dx.data()), kTol);
  EXPECT_LT(fd_rel_error(loss, w.data(), w.size(), dw.data()), kTol);
  // accumulate adds once more (the sum starts from the old value, so rounding differs slightly)
  auto dx2 = dx, dw2 = dw;
  matmul_backward_cpu(dx2.data(), dw2.data(), r.data(), x.data(), w.data(), N, C, OC, true, true);
  for (size_t i = 0; i < dx.size(); ++i) EXPECT_NEAR(dx2[i], 2 * dx[i], 1e-5 * (1 + std::abs(dx[i])));
  for (size_t i = 0; i < dw.size(); ++i) EXPECT_NEAR(dw2[i], 2 * dw[i], 1e-5 * (1 + std::abs(dw[i])));
}

TEST(Ops, Embedding) {
  const int N = 7, C = 5, V = 4;
  std::vector<int32_t> tok = {0, 3, 3, 1, 0, 3, 2};  // repeats
  auto wte = randn(V * C, 1), r = randn(N * C, 2);
  std::vector<float> out(N * C), dwte(V * C, 0.0f);
  auto loss = [&] {
    embedding_forward_cpu(out.data(), tok.data(), wte.data(), N, C);
    return dot(out, r);
  };
  embedding_backward_cpu(dwte.data(), r.data(), tok.data(), N, C);
  EXPECT_LT(fd_rel_error(loss, wte.data(), wte.size(), dwte.data(), 100), kTol);
}

TEST(Ops, RmsNorm) {
  const int N = 4, C = 13;
  auto x = randn(N * C, 1), w = randn(C, 2), r = randn(N * C, 3);
  for (auto& v : w) v += 1.0f;
  std::vector<float> out(N * C), rstd(N), dx(N * C, 0.0f), dw(C, 0.0f);
  auto loss = [&] {
    rmsnorm_forward_cpu(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-6f);
    return dot(out, r);
  };
  loss();
  rmsnorm_backward_cpu(dx.data(), dw.data(), r.data(), x.data(), w.data(), rstd.data(), N, C);
  EXPECT_LT(fd_rel_error(loss, x.data(), x.size(), dx.data(), 52), kTol);
  EXPECT_LT(fd_rel_error(loss, w.data(), w.size(), dw.data()), kTol);
}

TEST(Ops, RopeIsRotationAndMatchesHfConvention) {
  const int B = 2, T = 5, H = 3, D = 8;
  auto x = randn(B * T * H * D, 1), r = randn(B * T * H * D, 2);
  std::vector<float> y;
  auto loss = [&] {
    y = x;
    rope_forward_cpu(y.data(), B, T, H, D, 10000.0f);
    return dot(y, r);
  };
  auto dx = r;
  rope_backward_cpu(dx.data(), B, T, H, D, 10000.0f);
  EXPECT_LT(fd_rel_error(loss, x.data(), x.size(), dx.data(), 60), kTol);
  // position 0 is the identity; position t rotates pair (i, i+D/2) by t*theta^(-2i/D)
  loss();
  for (int d = 0; d < D; ++d) EXPECT_FLOAT_EQ(y[d], x[d]);
  const int t = 3, i = 1, half = D / 2;
  const double a = t * std::pow(10000.0, -2.0 * i / D);
  const size_t base = size_t(t) * H * D;
  EXPECT_NEAR(y[base + i], x[base + i] * std::cos(a) - x[base + i + half] * std::sin(a), 1e-5);
  EXPECT_NEAR(y[base + i + half], x[base + i + half] * std::cos(a) + x[base + i] * std::sin(a), 1e-5);
}

TEST(Ops, SwiGlu) {
  const int n = 37;
  auto g = randn(n, 1, 2.0f), u = randn(n, 2), r = randn(n, 3);
  std::vector<float> out(n), dg(n), du(n);
  auto loss = [&] {
    swiglu_forward_cpu(out.data(), g.data(), u.data(), n);
    return dot(out, r);
  };
  swiglu_backward_cpu(dg.data(), du.data(), r.data(), g.data(), u.data(), n);
  EXPECT_LT(fd_rel_error(loss, g.data(), n, dg.data(), n), kTol);
  EXPECT_LT(fd_rel_error(loss, u.data(), n, du.data(), n), kTol);
  // In place (the model writes dgate/dup over gate/up): the same values.
  std::vector<float> g2 = g, u2 = u;
  swiglu_backward_cpu(g2.data(), u2.data(), r.data(), g2.data(), u2.data(), n);
  EXPECT_EQ(g2, dg);
  EXPECT_EQ(u2, du);
}

TEST(Ops, CrossEntropy) {
  const int N = 5, V = 11;
  auto z = randn(N * V, 1, 2.0f);
  std::vector<int32_t> y = {0, 10, 3, 3, 7};
  std::vector<float> losses(N), dz(N * V);
  auto loss = [&] {
    crossentropy_forward_backward_cpu(losses.data(), nullptr, z.data(), y.data(), N, V, 0.0f);
    double s = 0;
    for (float l : losses) s += l;
    return s / N;
  };
  crossentropy_forward_backward_cpu(losses.data(), dz.data(), z.data(), y.data(), N, V, 1.0f / N);
  EXPECT_LT(fd_rel_error(loss, z.data(), z.size(), dz.data(), 55), kTol);
  // in place (dlogits aliasing logits) gives the same values
  auto zz = z;
  crossentropy_forward_backward_cpu(losses.data(), zz.data(), zz.data(), y.data(), N, V, 1.0f / N);
  for (size_t i = 0; i < dz.size(); ++i) EXPECT_FLOAT_EQ(zz[i], dz[i]);
}

TEST(Ops, ResidualAdd) {
  auto a = randn(9, 1), b = randn(9, 2);
  std::vector<float> out(9);
  residual_add_cpu(out.data(), a.data(), b.data(), 9);
  for (int i = 0; i < 9; ++i) EXPECT_FLOAT_EQ(out[i], a[i] + b[i]);
}

struct AttnShape { int B, T, NH, NKV, D; };
void PrintTo(const AttnShape& s, std::ostream* os) {
  *os << "B" << s.B << "_T" << s.T << "_NH" << s.NH << "_KV" << s.NKV << "_D" << s.D;
}
class Attention : public ::testing::TestWithParam<AttnShape> {};

TEST_P(Attention, GradientsMatchFiniteDifferences) {
  const auto s = GetParam();
  const size_t nq = size_t(s.B) * s.T * s.NH * s.D, nk = size_t(s.B) * s.T * s.NKV * s.D;
  auto q = randn(nq, 1), k = randn(nk, 2), v = randn(nk, 3), r = randn(nq, 4);
  std::vector<float> out(nq), lse(size_t(s.B) * s.NH * s.T), dq(nq), dk(nk), dv(nk);
  auto loss = [&] {
    attention_forward_cpu(out.data(), lse.data(), q.data(), k.data(), v.data(), s.B, s.T, s.NH, s.NKV, s.D);
    return dot(out, r);
  };
  loss();
  attention_backward_cpu(dq.data(), dk.data(), dv.data(), r.data(), q.data(), k.data(), v.data(), out.data(),
                         lse.data(), s.B, s.T, s.NH, s.NKV, s.D);
  EXPECT_LT(fd_rel_error(loss, q.data(), nq, dq.data(), 40), kTol);
  EXPECT_LT(fd_rel_error(loss, k.data(), nk, dk.data(), 40), kTol);
  EXPECT_LT(fd_rel_error(loss, v.data(), nk, dv.data(), 40), kTol);
}

TEST(Ops, AttentionIsCausal) {
  const int B = 1, T = 6, NH = 2, NKV = 1, D = 4;
  auto q = randn(B * T * NH * D, 1), k = randn(B * T * NKV * D, 2), v = randn(B * T * NKV * D, 3);
  std::vector<float> out1(q.size()), out2(q.size()), lse(B * NH * T);
  attention_forward_cpu(out1.data(), lse.data(), q.data(), k.data(), v.data(), B, T, NH, NKV, D);
  for (int d = 0; d < D; ++d) v[(T - 1) * NKV * D + d] += 10.0f, k[(T - 1) * NKV * D + d] -= 3.0f;  // change the last key
  attention_forward_cpu(out2.data(), lse.data(), q.data(), k.data(), v.data(), B, T, NH, NKV, D);
  for (size_t i = 0; i < size_t((T - 1) * NH * D); ++i) EXPECT_EQ(out1[i], out2[i]) << i;  // earlier rows unchanged
}

INSTANTIATE_TEST_SUITE_P(Shapes, Attention,
                         ::testing::Values(AttnShape{2, 5, 4, 4, 8},    // MHA
                                           AttnShape{2, 7, 4, 2, 6},    // GQA, odd T
                                           AttnShape{1, 1, 2, 1, 4},    // T = 1
                                           AttnShape{1, 9, 6, 3, 10}));  // GQA groups of 2
