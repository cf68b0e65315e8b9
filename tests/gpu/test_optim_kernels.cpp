// The CUDA OptimKernels (src/backend/cuda_optim_kernels.cu) against the CPU
// ones (optim/optim_kernels_cpu.cpp, the reference optimizers' functions), op
// by op, on the same bf16-rounded random inputs. Outputs are poisoned first
// (0xFF bytes: NaN), sizes are odd and not multiples of the 256-element absmax
// block, gradients carry non-finite elements, and every op run twice from
// the same state must give the same bits (bit-exact resume needs it).
// Tolerance: ||out - ref|| / ||ref|| <= 1e-2 where the GPU rounds to bf16,
// much tighter where it stays fp32. Without a device every test skips and
// says why (WorkspacePlan needs no device and always runs).
#include "tests/gpu/test_gpu_util.h"

#ifdef GALORE_WITH_CUDA

#include <algorithm>
#include <cmath>
#include <memory>

#include "backend/backend.h"
#include "backend/cuda_backend.h"
#include "config/config.h"
#include "core/error.h"
#include "cuda/adam8bit.h"
#include "cuda/projector.h"
#include "cuda/quant8.h"
#include "optim/optim_kernels.h"
#include "optim/projector.h"

using namespace gt;
using namespace gt::test;

namespace {

constexpr double kBf16Tol = 1e-2;
constexpr double kF32Tol = 1e-5;

std::string tag(const char* name, std::initializer_list<long> dims) {
  std::string s = name;
  for (long d : dims) s += " " + std::to_string(d);
  return s;
}

float bf16_ulp(float x) {  // distance from x's bf16 truncation to the next bf16 away from zero
  const int e = std::ilogb(x == 0.0f ? 1e-30f : x);
  return std::ldexp(1.0f, e - 7);
}

// Host fp32 tensors for the CPU kernels.
struct HostT {
  std::vector<float> v;
  Tensor t;
  explicit HostT(std::vector<float> x) : v(std::move(x)), t(v.data(), DType::F32, Device::CPU, {int64_t(v.size())}) {}
};

// Both implementations, device tensors freed at the end.
class OptimKernelsGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    GT_REQUIRE_GPU();
    cpu_ = make_cpu_backend();
    gpu_ = make_cuda_backend_or_null();
    ASSERT_TRUE(gpu_);
  }
  void TearDown() override {
    if (gpu_) {
      gpu_->synchronize();
      for (void* p : ptrs_) gpu_->release(p);
    }
  }
  void build(const OptimShapes& shapes = {}, const GaloreConfig& cfg = {}) {
    ck_ = make_optim_kernels(*cpu_, shapes, cfg);
    gk_ = make_cuda_optim_kernels(*gpu_, shapes, cfg);
    ASSERT_EQ(gk_->proj_dtype(), DType::BF16);
  }
  Tensor dev(std::initializer_list<int64_t> dims, DType t) {
    Tensor x(nullptr, t, Device::CUDA, dims);
    x.data = gpu_->alloc(std::max<size_t>(x.nbytes(), 16));
    ptrs_.push_back(x.data);
    return x;
  }
  // A device tensor (fp32 or bf16) holding h.
  Tensor dev_of(const std::vector<float>& h, DType t) {
    Tensor x = dev({int64_t(h.size())}, t);
    gpu_->upload_f32(x, h.data());
    return x;
  }
  void set(const Tensor& x, const std::vector<float>& h) { gpu_->upload_f32(x, h.data()); }
  std::vector<float> get(const Tensor& x) {
    std::vector<float> h(size_t(x.numel()));
    gpu_->download_f32(h.data(), x);
    return h;
  }
  template <typename T>
  std::vector<T> raw(const Tensor& x) {
    gpu_->synchronize();
    std::vector<T> h(x.nbytes() / sizeof(T));
    gpu_->download(h.data(), x.data, x.nbytes());
    return h;
  }
  template <typename T>
  void put(const Tensor& x, const std::vector<T>& h) {
    ASSERT_EQ(h.size() * sizeof(T), x.nbytes());
    gpu_->upload(x.data, h.data(), x.nbytes());
  }
  void poison(const Tensor& x) {
    gpu_->synchronize();
    GT_CUDA_OK(cudaMemset(x.data, 0xFF, x.nbytes()));
    GT_CUDA_OK(cudaDeviceSynchronize());  // the backend's stream does not wait for the legacy stream
  }

  std::unique_ptr<Backend> cpu_, gpu_;
  std::unique_ptr<OptimKernels> ck_, gk_;
  std::vector<void*> ptrs_;
};

// One Adam state on both sides: host fp32 / codes, device copies.
struct StatePair {
  int64_t n = 0;
  bool q8 = false;
  std::vector<float> m, v, am, av;  // host (fp32 states, or absmax)
  std::vector<uint8_t> cm, cv;      // host codes
  AdamState c, g;                   // CPU and CUDA views
};

// Random moments (quantized when q8), identical on both sides.
class OptimKernelsGpuAdam : public OptimKernelsGpu {
 protected:
  StatePair state(int64_t n, bool q8) {
    StatePair s;
    s.n = n;
    s.q8 = q8;
    auto m0 = randn_bf16(size_t(n), 0.01f), v0 = randn_bf16(size_t(n), 1e-3f);
    for (float& x : v0) x = x * x;
    const int64_t nb = quant8_blocks(n);
    if (q8) {
      s.cm.resize(size_t(n));
      s.cv.resize(size_t(n));
      s.am.resize(size_t(nb));
      s.av.resize(size_t(nb));
      quantize_blockwise_cpu(dynamic_map_signed(), m0.data(), n, s.cm.data(), s.am.data());
      quantize_blockwise_cpu(dynamic_map_unsigned(), v0.data(), n, s.cv.data(), s.av.data());
      s.c = AdamState{n, true, Tensor(s.cm.data(), DType::U8, Device::CPU, {n}),
                      Tensor(s.cv.data(), DType::U8, Device::CPU, {n}),
                      Tensor(s.am.data(), DType::F32, Device::CPU, {nb}),
                      Tensor(s.av.data(), DType::F32, Device::CPU, {nb})};
      s.g = AdamState{n, true, dev({n}, DType::U8), dev({n}, DType::U8), dev({nb}, DType::F32), dev({nb}, DType::F32)};
    } else {
      s.m = m0;
      s.v = v0;
      s.c = AdamState{n, false, Tensor(s.m.data(), DType::F32, Device::CPU, {n}),
                      Tensor(s.v.data(), DType::F32, Device::CPU, {n}), Tensor(), Tensor()};
      s.g = AdamState{n, false, dev({n}, DType::F32), dev({n}, DType::F32), Tensor(), Tensor()};
    }
    upload_state(s);
    return s;
  }
  // Device state := host state.
  void upload_state(const StatePair& s) {
    if (s.q8) {
      put(s.g.m, s.cm);
      put(s.g.v, s.cv);
      put(s.g.absmax_m, s.am);
      put(s.g.absmax_v, s.av);
    } else {
      put(s.g.m, s.m);
      put(s.g.v, s.v);
    }
  }
  // Compares the device state with the host one, then continues both from the
  // device's (8-bit codes may differ by one step where fp32 rounding lands on
  // a tie; the states must not drift apart over the steps).
  void compare_and_sync_state(StatePair& s) {
    if (s.q8) {
      const auto cm = raw<uint8_t>(s.g.m), cv = raw<uint8_t>(s.g.v);
      const auto am = raw<float>(s.g.absmax_m), av = raw<float>(s.g.absmax_v);
      expect_close("absmax m", am, s.am, 1e-5);
      expect_close("absmax v", av, s.av, 1e-5);
      int64_t same = 0;
      for (size_t i = 0; i < cm.size(); ++i) same += (cm[i] == s.cm[i]) + (cv[i] == s.cv[i]);
      EXPECT_GE(double(same) / double(2 * s.n), 0.995) << "8-bit codes differ from the CPU reference";
      // (copies into the buffers the CPU views point at)
      std::copy(cm.begin(), cm.end(), s.cm.begin());
      std::copy(cv.begin(), cv.end(), s.cv.begin());
      std::copy(am.begin(), am.end(), s.am.begin());
      std::copy(av.begin(), av.end(), s.av.begin());
    } else {
      const auto m = raw<float>(s.g.m), v = raw<float>(s.g.v);
      expect_close("m", m, s.m, kF32Tol);
      expect_close("v", v, s.v, kF32Tol);
      std::copy(m.begin(), m.end(), s.m.begin());
      std::copy(v.begin(), v.end(), s.v.begin());
    }
  }
  // Device state := bytes from state_bytes().
  void restore_state(const StatePair& s, const std::vector<uint8_t>& b) {
    size_t off = 0;
    for (const Tensor* t : {&s.g.m, &s.g.v, &s.g.absmax_m, &s.g.absmax_v}) {
      if (!t->data) continue;
      gpu_->upload(t->data, b.data() + off, t->nbytes());
      off += t->nbytes();
    }
  }
  // Raw bytes of the device state (determinism checks).
  std::vector<uint8_t> state_bytes(const StatePair& s) {
    std::vector<uint8_t> out;
    for (const Tensor* t : {&s.g.m, &s.g.v, &s.g.absmax_m, &s.g.absmax_v}) {
      if (!t->data) continue;
      const auto b = raw<uint8_t>(*t);
      out.insert(out.end(), b.begin(), b.end());
    }
    return out;
  }
};

// g with two non-finite elements (when n allows).
std::vector<float> grad_with_nonfinite(int64_t n, float stddev) {
  auto g = randn_bf16(size_t(n), stddev);
  if (n > 4000) {
    g[17] = NAN;
    g[4000] = INFINITY;
  }
  return g;
}

// Replaces the non-finite elements of a and b by 0 after checking both are non-finite there.
void mask_nonfinite(std::vector<float>& a, std::vector<float>& b) {
  for (size_t i = 0; i < a.size(); ++i)
    if (!std::isfinite(b[i])) {
      EXPECT_FALSE(std::isfinite(a[i])) << "element " << i;
      a[i] = b[i] = 0.0f;
    }
}

}  // namespace

// ============================================================ copy, accumulate
TEST_F(OptimKernelsGpu, CopyAndAccumulate) {
  build();
  for (int64_t n : {int64_t(4097), int64_t(255), int64_t(70001)}) {
    for (DType gdt : {DType::F32, DType::BF16}) {
      SCOPED_TRACE(tag("n bf16", {long(n), gdt == DType::BF16}));
      const auto g0 = randn_bf16(size_t(n)), g1 = randn_bf16(size_t(n));
      HostT c_acc(std::vector<float>(static_cast<size_t>(n))), c_g0(g0), c_g1(g1);
      ck_->accumulate(c_acc.t, c_g0.t, true);
      ck_->accumulate(c_acc.t, c_g1.t, false);
      const Tensor acc = dev({n}, DType::F32), dg0 = dev_of(g0, gdt), dg1 = dev_of(g1, gdt);
      std::vector<uint8_t> first_bits;
      for (int rep = 0; rep < 2; ++rep) {
        poison(acc);
        gk_->accumulate(acc, dg0, true);
        gk_->accumulate(acc, dg1, false);
        const auto out = get(acc);
        expect_close("acc", out, c_acc.v, 0.0);  // the same fp32 additions: exact
        if (rep == 0) first_bits = raw<uint8_t>(acc);
        else EXPECT_EQ(raw<uint8_t>(acc), first_bits) << "not deterministic";
      }
      // copy: the same bytes
      const Tensor dst = dev({n}, gdt);
      poison(dst);
      gk_->copy(dst, dg1);
      EXPECT_EQ(raw<uint8_t>(dst), raw<uint8_t>(dg1));
    }
  }
}

// ============================================================ clip + stats
TEST_F(OptimKernelsGpu, ClipAndStats) {
  build();
  struct Case {
    int64_t n;
    float clip_scale, clip_norm;
  };
  // clip_norm: off, clipping (below ‖g‖), not clipping (above ‖g‖).
  const Case cases[] = {{4097, 1.0f, 0.0f}, {4097, 0.5f, 0.0f}, {5001, 1.0f, 3.0f},  {300, 0.25f, 3.0f},
                        {70001, 1.0f, 1e6f}, {1, 1.0f, 0.1f},   {65536 * 5 + 3, 0.5f, 10.0f}};
  for (DType gdt : {DType::F32, DType::BF16}) {
    for (const Case& c : cases) {
      SCOPED_TRACE(tag("n scale norm bf16", {long(c.n), long(c.clip_scale * 100), long(c.clip_norm),
                                             gdt == DType::BF16}));
      const auto g = grad_with_nonfinite(c.n, 1.0f);
      HostT cg(g);
      ck_->clip_and_stats(cg.t, c.clip_scale, c.clip_norm);
      const Tensor dg = dev_of(g, gdt);
      gk_->clip_and_stats(dg, c.clip_scale, c.clip_norm);
      auto out = get(dg);
      auto ref = gdt == DType::BF16 ? round_bf16(cg.v) : cg.v;
      mask_nonfinite(out, ref);
      expect_close("clipped g", out, ref, gdt == DType::BF16 ? 1e-4 : 1e-6);
    }
    const GradStats c = ck_->take_stats(), d = gk_->take_stats();
    EXPECT_NEAR(d.sq_norm, c.sq_norm, 1e-12 * c.sq_norm) << "sum of squares";
    EXPECT_EQ(d.nonfinite, c.nonfinite);
    EXPECT_GT(c.nonfinite, 0);
    const GradStats z = gk_->take_stats();  // zeroed by the previous call
    EXPECT_EQ(z.sq_norm, 0.0);
    EXPECT_EQ(z.nonfinite, 0);
  }
}

TEST_F(OptimKernelsGpu, ClipAndStatsDeterministic) {
  build();
  const int64_t n = 300007;
  const auto g = grad_with_nonfinite(n, 0.3f);
  std::vector<uint16_t> first;
  double first_sq = 0.0;
  for (int rep = 0; rep < 2; ++rep) {
    const Tensor dg = dev_of(g, DType::BF16);
    gk_->clip_and_stats(dg, 0.5f, 1.0f);
    const GradStats s = gk_->take_stats();
    const auto bits = raw<uint16_t>(dg);
    if (rep == 0) {
      first = bits;
      first_sq = s.sq_norm;
    } else {
      EXPECT_TRUE(bitwise_equal(bits, first)) << "clipped g differs between runs";
      EXPECT_EQ(std::memcmp(&s.sq_norm, &first_sq, sizeof(double)), 0) << "sum of squares differs between runs";
    }
  }
}

// ============================================================ Adam
TEST_F(OptimKernelsGpuAdam, AdamReset) {
  build();
  for (bool q8 : {true, false}) {
    SCOPED_TRACE(q8 ? "8-bit" : "fp32");
    StatePair s = state(5001, q8);
    ck_->adam_reset(s.c);
    for (const Tensor* t : {&s.g.m, &s.g.v, &s.g.absmax_m, &s.g.absmax_v})
      if (t->data) poison(*t);
    gk_->adam_reset(s.g);
    if (q8) {
      EXPECT_EQ(raw<uint8_t>(s.g.m), s.cm);
      EXPECT_EQ(raw<uint8_t>(s.g.v), s.cv);
      EXPECT_TRUE(bitwise_equal(raw<float>(s.g.absmax_m), s.am));
      EXPECT_TRUE(bitwise_equal(raw<float>(s.g.absmax_v), s.av));
    } else {
      EXPECT_TRUE(bitwise_equal(raw<float>(s.g.m), s.m));
      EXPECT_TRUE(bitwise_equal(raw<float>(s.g.v), s.v));
    }
  }
}

TEST_F(OptimKernelsGpuAdam, AdamStepBf16Direction) {
  build();
  const float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-6f;
  for (bool q8 : {true, false}) {
    for (int64_t n : {int64_t(5000), int64_t(4097)}) {
      SCOPED_TRACE(tag(q8 ? "8-bit n" : "fp32 n", {long(n)}));
      StatePair s = state(n, q8);
      const Tensor dir = dev({n}, DType::BF16), dg = dev({n}, DType::F32);
      for (int step = 0; step < 3; ++step) {
        SCOPED_TRACE(tag("step", {step}));
        const auto g = grad_with_nonfinite(n, 0.01f);
        HostT cg(g), cdir(std::vector<float>(static_cast<size_t>(n)));
        ck_->adam_step(s.c, cg.t, cdir.t, beta1, beta2, eps);
        set(dg, g);
        poison(dir);
        const auto before = state_bytes(s);
        gk_->adam_step(s.g, dg, dir, beta1, beta2, eps);
        const auto out = get(dir);
        expect_close("dir", out, round_bf16(cdir.v), kBf16Tol);
        EXPECT_EQ(out[17], 0.0f);
        EXPECT_EQ(out[4000], 0.0f);
        // Determinism: the same step from the same state gives the same bits.
        const auto after = state_bytes(s);
        const auto dir_bits = raw<uint16_t>(dir);
        restore_state(s, before);
        poison(dir);
        gk_->adam_step(s.g, dg, dir, beta1, beta2, eps);
        EXPECT_EQ(state_bytes(s), after) << "states differ between two identical steps";
        EXPECT_TRUE(bitwise_equal(raw<uint16_t>(dir), dir_bits)) << "dir differs between two identical steps";
        compare_and_sync_state(s);
      }
    }
  }
}

// Full-rank AdamW fused (moments + update), every dtype combination, with and
// without stochastic rounding.
TEST_F(OptimKernelsGpuAdam, AdamUpdate) {
  build();
  const float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, step_size = 1e-2f, decay = 1e-3f;
  for (bool q8 : {true, false}) {
    for (DType gdt : {DType::F32, DType::BF16}) {
      for (DType wdt : {DType::F32, DType::BF16}) {
        for (uint64_t seed : {uint64_t(0), uint64_t(0x5eed)}) {
          if (wdt == DType::F32 && seed) continue;  // no effect on fp32
          const int64_t n = q8 ? 5000 : 3001;
          SCOPED_TRACE(tag("q8 g_bf16 w_bf16 sr n", {q8, gdt == DType::BF16, wdt == DType::BF16, seed != 0, long(n)}));
          StatePair s = state(n, q8);
          const auto w0 = randn_bf16(size_t(n));
          const Tensor dw = dev_of(w0, wdt), dg = dev({n}, gdt);
          HostT cw(w0);
          for (int step = 0; step < 2; ++step) {
            SCOPED_TRACE(tag("step", {step}));
            const auto g = grad_with_nonfinite(n, 0.01f);
            HostT cg(g);
            const auto wprev = get(dw);  // == cw.v (both continue from the device's weights)
            ck_->adam_update(s.c, cg.t, cw.t, beta1, beta2, eps, step_size, decay, seed);
            set(dg, g);
            const auto st_before = state_bytes(s);
            const uint64_t sr = seed ? seed + uint64_t(step) : 0;  // a fresh seed per step; 0: round to nearest
            gk_->adam_update(s.g, dg, dw, beta1, beta2, eps, step_size, decay, sr);
            const auto w = get(dw);
            const auto w_bits = raw<uint8_t>(dw);
            const auto st_after = state_bytes(s);
            // Elements with a non-finite g keep their weight.
            if (n > 4000) {
              EXPECT_EQ(w[17], wprev[17]);
              EXPECT_EQ(w[4000], wprev[4000]);
            }
            if (wdt == DType::F32) {
              expect_close("w fp32", w, cw.v, 1e-6);
            } else if (!seed) {
              expect_close("w bf16", w, round_bf16(cw.v), kBf16Tol);
              int64_t same = 0;
              for (int64_t i = 0; i < n; ++i) same += w[size_t(i)] == round_bf16(cw.v[size_t(i)]);
              EXPECT_GE(double(same) / double(n), 0.99) << "round-to-nearest should match the host rounding";
            } else {
              // Stochastic: one of the two bf16 neighbours of the fp32 result, unbiased.
              double bias = 0.0, ulps = 0.0;
              for (int64_t i = 0; i < n; ++i) {
                const float x = cw.v[size_t(i)], u = bf16_ulp(x);
                ASSERT_LE(std::fabs(w[size_t(i)] - x), 1.01f * u) << "element " << i;
                bias += double(w[size_t(i)]) - double(x);
                ulps += u;
              }
              EXPECT_LE(std::fabs(bias), 5.0 * (ulps / double(n)) * std::sqrt(double(n))) << "biased rounding";
            }
            // Determinism: the same update from the same state and weights.
            restore_state(s, st_before);
            set(dw, wprev);
            gk_->adam_update(s.g, dg, dw, beta1, beta2, eps, step_size, decay, sr);
            EXPECT_EQ(raw<uint8_t>(dw), w_bits) << "weights differ between two identical updates";
            EXPECT_EQ(state_bytes(s), st_after) << "states differ between two identical updates";
            compare_and_sync_state(s);
            std::copy(w.begin(), w.end(), cw.v.begin());  // continue both from the device's weights
          }
        }
      }
    }
  }
}

// clip_adam_step / clip_adam_update against the CPU's two ops (clip_and_stats,
// then the step): the 8-bit kernels clip in registers and sum the statistics
// in the same pass (or after a statistics pass, with per-tensor clipping).
// The large case makes every warp take several absmax blocks.
TEST_F(OptimKernelsGpuAdam, ClipAdamStepAndUpdate) {
  build();
  const float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-6f, step_size = 1e-2f, decay = 1e-3f;
  struct Case {
    int64_t n;
    float clip_scale, clip_norm;
  };
  // clip_norm: off, clipping (below ‖g‖ ≈ 0.1·sqrt(n)), not clipping.
  const Case cases[] = {{5000, 1.0f, 0.0f},    {5000, 0.5f, 0.0f},        {4097, 1.0f, 3.0f},
                        {4097, 0.25f, 3.0f},   {70001, 0.5f, 1e6f},       {int64_t(kAdam8MaxCtas) * 8 * 256 + 300, 0.7f, 0.0f}};
  for (bool update : {false, true}) {
    for (bool q8 : {true, false}) {
      for (const Case& c : cases) {
        if (!q8 && c.n > 100000) continue;  // (grid-stride fp32 kernel: no per-warp blocks)
        const DType gdt = update ? DType::BF16 : DType::F32;
        SCOPED_TRACE(tag("update q8 n scale norm", {update, q8, long(c.n), long(c.clip_scale * 100), long(c.clip_norm)}));
        StatePair s = state(c.n, q8);
        const auto g = grad_with_nonfinite(c.n, 0.1f);
        const auto w0 = randn_bf16(size_t(c.n));
        HostT cg(g), cout(update ? w0 : std::vector<float>(size_t(c.n)));
        const Tensor dg = dev_of(g, gdt), dout = update ? dev_of(w0, DType::BF16) : dev({c.n}, DType::BF16);
        auto run_gpu = [&] {
          if (update)
            gk_->clip_adam_update(s.g, dg, dout, c.clip_scale, c.clip_norm, beta1, beta2, eps, step_size, decay, 0);
          else
            gk_->clip_adam_step(s.g, dg, dout, c.clip_scale, c.clip_norm, beta1, beta2, eps);
        };
        if (update)
          ck_->clip_adam_update(s.c, cg.t, cout.t, c.clip_scale, c.clip_norm, beta1, beta2, eps, step_size, decay, 0);
        else
          ck_->clip_adam_step(s.c, cg.t, cout.t, c.clip_scale, c.clip_norm, beta1, beta2, eps);
        if (!update) poison(dout);
        const auto before = state_bytes(s);
        run_gpu();
        const GradStats cs = ck_->take_stats(), gs = gk_->take_stats();
        EXPECT_NEAR(gs.sq_norm, cs.sq_norm, 1e-12 * cs.sq_norm) << "sum of squares";
        EXPECT_EQ(gs.nonfinite, cs.nonfinite);
        EXPECT_EQ(gs.nonfinite, 2);
        const auto out = get(dout);
        expect_close(update ? "w" : "dir", out, round_bf16(cout.v), kBf16Tol);
        if (!update) {
          EXPECT_EQ(out[17], 0.0f);
          EXPECT_EQ(out[4000], 0.0f);
        } else {
          EXPECT_EQ(out[17], w0[17]);
          EXPECT_EQ(out[4000], w0[4000]);
          const auto ref = round_bf16(cout.v);
          int64_t same = 0;  // (the update is ~1% of w: the tolerance alone would not see it)
          for (int64_t i = 0; i < c.n; ++i) same += out[size_t(i)] == ref[size_t(i)];
          EXPECT_GE(double(same) / double(c.n), 0.99) << "round-to-nearest should match the host rounding";
        }
        // Determinism: the same step from the same state, the same bits (statistics too).
        const auto after = state_bytes(s);
        const auto out_bits = raw<uint16_t>(dout);
        restore_state(s, before);
        if (update) set(dout, w0); else poison(dout);
        set(dg, g);
        run_gpu();
        const GradStats gs2 = gk_->take_stats();
        EXPECT_EQ(std::memcmp(&gs.sq_norm, &gs2.sq_norm, sizeof(double)), 0) << "sum of squares differs between runs";
        EXPECT_EQ(state_bytes(s), after) << "states differ between two identical steps";
        EXPECT_TRUE(bitwise_equal(raw<uint16_t>(dout), out_bits)) << "output differs between two identical steps";
        compare_and_sync_state(s);
      }
    }
  }
}

TEST_F(OptimKernelsGpu, ApplyUpdate) {
  build();
  const float step_size = 3e-2f, decay = 1e-3f;
  for (DType wdt : {DType::F32, DType::BF16}) {
    for (uint64_t seed : {uint64_t(0), uint64_t(77)}) {
      const int64_t n = 4097;
      SCOPED_TRACE(tag("w_bf16 sr", {wdt == DType::BF16, seed != 0}));
      const auto w0 = randn_bf16(size_t(n)), d = randn_bf16(size_t(n));
      HostT cw(w0), cd(d);
      ck_->apply_update(cw.t, cd.t, step_size, decay, seed);
      const Tensor dw = dev_of(w0, wdt), dd = dev_of(d, DType::F32);
      gk_->apply_update(dw, dd, step_size, decay, seed);
      const auto w = get(dw);
      const auto bits = raw<uint8_t>(dw);
      if (wdt == DType::F32) {
        expect_close("w fp32", w, cw.v, 1e-6);
      } else if (!seed) {
        expect_close("w bf16", w, round_bf16(cw.v), 1e-3);
      } else {
        double bias = 0.0, ulps = 0.0;
        int64_t up = 0, exact = 0;
        for (int64_t i = 0; i < n; ++i) {
          const float x = cw.v[size_t(i)], u = bf16_ulp(x);
          ASSERT_LE(std::fabs(w[size_t(i)] - x), 1.01f * u) << "element " << i;
          bias += double(w[size_t(i)]) - double(x);
          ulps += u;
          up += std::fabs(w[size_t(i)]) > std::fabs(x);
          exact += w[size_t(i)] == round_bf16(x);
        }
        EXPECT_LE(std::fabs(bias), 5.0 * (ulps / double(n)) * std::sqrt(double(n))) << "biased rounding";
        EXPECT_GT(up, n / 5) << "stochastic rounding should round up often";
        EXPECT_LT(exact, n) << "stochastic rounding should differ from round-to-nearest somewhere";
      }
      // Determinism (stochastic rounding included: it is keyed by the seed).
      set(dw, w0);
      gk_->apply_update(dw, dd, step_size, decay, seed);
      EXPECT_EQ(raw<uint8_t>(dw), bits);
    }
  }
}

// ============================================================ projections
TEST_F(OptimKernelsGpu, ProjectAndBack) {
  // Left, right and full (both sides), odd sizes; A, B random (orthonormality is not needed here).
  const ProjGeom geoms[] = {{ProjSide::Left, 67, 129, 16}, {ProjSide::Right, 130, 70, 9}, {ProjSide::Both, 67, 45, 8}};
  OptimShapes shapes;
  shapes.max_numel = 130 * 129;
  for (const ProjGeom& g : geoms) shapes.galore.push_back(g);
  build(shapes);
  for (const ProjGeom& geo : geoms) {
    SCOPED_TRACE(tag(proj_side_name(geo.side), {long(geo.m), long(geo.n), long(geo.r)}));
    // Both goes through a bf16 intermediate; the others accumulate bf16 products in fp32.
    const double tol = geo.side == ProjSide::Both ? kBf16Tol : 1e-4;
    const auto A = randn_bf16(size_t(std::max<int64_t>(geo.a_numel(), 1)), 0.2f);
    const auto B = randn_bf16(size_t(std::max<int64_t>(geo.b_numel(), 1)), 0.2f);
    HostT cA(A), cB(B);
    const Tensor dA = geo.a_numel() ? dev_of(A, DType::BF16) : Tensor();
    const Tensor dB = geo.b_numel() ? dev_of(B, DType::BF16) : Tensor();
    const Tensor cAt = geo.a_numel() ? cA.t : Tensor(), cBt = geo.b_numel() ? cB.t : Tensor();
    const Tensor dAt = geo.a_numel() ? reshape(dA, {geo.m, geo.r}) : Tensor();
    const Tensor dBt = geo.b_numel() ? reshape(dB, {geo.r, geo.n}) : Tensor();
    // project: = then += (micro-batches)
    const auto g0 = randn_bf16(size_t(geo.m * geo.n)), g1 = randn_bf16(size_t(geo.m * geo.n));
    HostT cg0(g0), cg1(g1), cR(std::vector<float>(size_t(geo.numel())));
    const Tensor dg0 = dev_of(g0, DType::BF16), dg1 = dev_of(g1, DType::BF16), dR = dev({geo.numel()}, DType::F32);
    std::vector<uint8_t> first_bits;
    ck_->project(geo, cAt, cBt, cg0.t, cR.t, false);
    for (int rep = 0; rep < 2; ++rep) {
      poison(dR);
      gk_->project(geo, dAt, dBt, dg0, dR, false);
      expect_close("R first", get(dR), cR.v, tol);
      if (rep == 0) first_bits = raw<uint8_t>(dR);
      else EXPECT_EQ(raw<uint8_t>(dR), first_bits) << "project not deterministic";
    }
    ck_->project(geo, cAt, cBt, cg1.t, cR.t, true);
    gk_->project(geo, dAt, dBt, dg1, dR, true);
    expect_close("R accumulated", get(dR), cR.v, tol);
    // An fp32 gradient is refused with a clear error (the workspace has no [m, n] bf16 copy).
    EXPECT_THROW(gk_->project(geo, dAt, dBt, dev_of(g0, DType::F32), dR, false), gt::Error);

    // project_back
    const auto dir = randn_bf16(size_t(geo.numel()));
    HostT cdir(dir), cout(std::vector<float>(size_t(geo.m * geo.n)));
    ck_->project_back(geo, cAt, cBt, cdir.t, cout.t);
    const Tensor ddir = dev_of(dir, DType::BF16), dout = dev({geo.m, geo.n}, DType::F32);
    for (int rep = 0; rep < 2; ++rep) {
      poison(dout);
      gk_->project_back(geo, dAt, dBt, ddir, dout);
      expect_close("back", get(dout), cout.v, tol);
      if (rep == 0) first_bits = raw<uint8_t>(dout);
      else EXPECT_EQ(raw<uint8_t>(dout), first_bits) << "project_back not deterministic";
    }

    // project_back_update: W = (W - a·back(dir))·(1 - decay) in the GEMM epilogue, bf16 W in place.
    // Compared on the change of W against the reference's new W as stored in bf16, with a large
    // step so that the one-ulp storage rounding of W stays small next to the change.
    const float a = 2.0f, decay = 0.01f;
    const auto w0 = randn_bf16(size_t(geo.m * geo.n));
    HostT cw(w0);
    ck_->project_back_update(geo, cAt, cBt, cdir.t, cw.t, a, decay);
    const Tensor dw = dev_of(w0, DType::BF16);
    gk_->project_back_update(geo, dAt, dBt, ddir, reshape(dw, {geo.m, geo.n}), a, decay);
    const auto gw = get(dw);
    std::vector<float> got(gw.size()), want(gw.size());
    for (size_t i = 0; i < gw.size(); ++i) got[i] = gw[i] - w0[i], want[i] = round_bf16(cw.v[i]) - w0[i];
    expect_close("back+update delta", got, want, kBf16Tol);
  }
}

// R from the factors dy [N, m], x [N, n] of G = dyᵀ·x (per-layer GaLore between
// refreshes) against the CPU kernel, with a chunk that leaves a remainder.
TEST_F(OptimKernelsGpu, ProjectFactors) {
  const ProjGeom geoms[] = {{ProjSide::Left, 67, 129, 16}, {ProjSide::Right, 130, 70, 9}};
  OptimShapes shapes;
  shapes.max_numel = 130 * 129;
  for (const ProjGeom& g : geoms) shapes.galore.push_back(g);
  build(shapes);
  const int64_t N = 300, chunk = 128;  // chunks of 128, 128, 44 tokens
  for (const ProjGeom& geo : geoms) {
    SCOPED_TRACE(tag(proj_side_name(geo.side), {long(geo.m), long(geo.n), long(geo.r)}));
    const auto A = randn_bf16(size_t(std::max<int64_t>(geo.a_numel(), 1)), 0.2f);
    const auto B = randn_bf16(size_t(std::max<int64_t>(geo.b_numel(), 1)), 0.2f);
    HostT cA(A), cB(B);
    const Tensor cAt = geo.a_numel() ? cA.t : Tensor(), cBt = geo.b_numel() ? cB.t : Tensor();
    const Tensor dAt = geo.a_numel() ? reshape(dev_of(A, DType::BF16), {geo.m, geo.r}) : Tensor();
    const Tensor dBt = geo.b_numel() ? reshape(dev_of(B, DType::BF16), {geo.r, geo.n}) : Tensor();
    const auto dy0 = randn_bf16(size_t(N * geo.m)), x0 = randn_bf16(size_t(N * geo.n));
    const auto dy1 = randn_bf16(size_t(N * geo.m)), x1 = randn_bf16(size_t(N * geo.n));
    HostT cdy0(dy0), cx0(x0), cdy1(dy1), cx1(x1), cR(std::vector<float>(size_t(geo.numel())));
    HostT ctmp(std::vector<float>(size_t(chunk * geo.r)));
    const Tensor ddy0 = dev_of(dy0, DType::BF16), dx0 = dev_of(x0, DType::BF16);
    const Tensor ddy1 = dev_of(dy1, DType::BF16), dx1 = dev_of(x1, DType::BF16);
    const Tensor dtmp = dev({chunk, geo.r}, DType::BF16), dR = dev({geo.numel()}, DType::F32);
    const Tensor ctmp2 = reshape(ctmp.t, {chunk, geo.r});
    ck_->project_factors(geo, cAt, cBt, cdy0.t, cx0.t, ctmp2, cR.t, false);
    // the CPU factored projection is the projection of G = dyᵀ·x
    std::vector<float> G(size_t(geo.m * geo.n), 0.0f), RG(size_t(geo.numel()));
    for (int64_t t = 0; t < N; ++t)
      for (int64_t i = 0; i < geo.m; ++i)
        for (int64_t j = 0; j < geo.n; ++j) G[size_t(i * geo.n + j)] += dy0[size_t(t * geo.m + i)] * x0[size_t(t * geo.n + j)];
    HostT cG(G), cRG(RG);
    ck_->project(geo, cAt, cBt, cG.t, cRG.t, false);
    expect_close("CPU factors vs G", cR.v, cRG.v, kF32Tol);
    std::vector<uint8_t> first_bits;
    for (int rep = 0; rep < 2; ++rep) {
      poison(dR);
      poison(dtmp);
      gk_->project_factors(geo, dAt, dBt, ddy0, dx0, dtmp, dR, false);
      expect_close("R first", get(dR), cR.v, kBf16Tol);  // dy·A (x·Bᵀ) is rounded to bf16
      if (rep == 0) first_bits = raw<uint8_t>(dR);
      else EXPECT_EQ(raw<uint8_t>(dR), first_bits) << "project_factors not deterministic";
    }
    ck_->project_factors(geo, cAt, cBt, cdy1.t, cx1.t, ctmp2, cR.t, true);
    gk_->project_factors(geo, dAt, dBt, ddy1, dx1, dtmp, dR, true);
    expect_close("R accumulated", get(dR), cR.v, kBf16Tol);
    // an fp32 activation is refused with a clear error
    EXPECT_THROW(gk_->project_factors(geo, dAt, dBt, ddy0, dev_of(x0, DType::F32), dtmp, dR, false), gt::Error);
  }
}

TEST_F(OptimKernelsGpu, WorkspaceMatchesPlan) {
  GaloreConfig cfg;
  OptimShapes shapes;
  shapes.max_numel = 1 << 20;
  shapes.galore = {make_proj_geom("std", 512, 1024, 64), make_proj_geom("full", 300, 200, 32)};
  for (const char* mode : {"keep", "reproject"}) {
    cfg.moments_on_refresh = mode;
    auto k = make_cuda_optim_kernels(*gpu_, shapes, cfg);
    EXPECT_EQ(k->workspace_bytes(), cuda_optim_kernels_workspace_bytes(shapes, cfg)) << mode;
    EXPECT_EQ(k->workspace_bytes(), optim_kernels_workspace_bytes(Device::CUDA, shapes, cfg)) << mode;
  }
}

// The moment reprojection around the GPU projector math: 8-bit states are
// dequantized, rotated in fp32 and requantized, as the CPU does.
TEST_F(OptimKernelsGpuAdam, ReprojectMoments) {
  const ProjGeom geo = make_proj_geom("left", 75, 301, 24);  // moments [24, 301] = 7224 elements: 8-bit
  GaloreConfig cfg;
  cfg.moments_on_refresh = "reproject";
  OptimShapes shapes;
  shapes.max_numel = geo.m * geo.n;
  shapes.galore = {geo};
  build(shapes, cfg);
  for (bool q8 : {true, false}) {
    SCOPED_TRACE(q8 ? "8-bit" : "fp32");
    StatePair s = state(geo.numel(), q8);
    const auto A_old = randn_bf16(size_t(geo.a_numel()), 0.1f), A = randn_bf16(size_t(geo.a_numel()), 0.1f);
    HostT cAo(A_old), cA(A);
    const Tensor dAo = dev_of(A_old, DType::BF16), dA = dev_of(A, DType::BF16);
    ck_->reproject_moments(geo, cAo.t, Tensor(), cA.t, Tensor(), s.c);
    gk_->reproject_moments(geo, dAo, Tensor(), dA, Tensor(), s.g);
    compare_and_sync_state(s);
  }
}

// G [m, n] = X [m, r] · Y [r, n] (random), rounded to bf16: its column space is what a rank-r projector must find.
static std::vector<float> rank_r_gradient(const ProjGeom& geo) {
  const auto X = randn_bf16(size_t(geo.m * geo.r)), Y = randn_bf16(size_t(geo.r * geo.n));
  std::vector<float> g(size_t(geo.m * geo.n), 0.0f);
  for (int64_t i = 0; i < geo.m; ++i)
    for (int64_t k = 0; k < geo.r; ++k)
      for (int64_t j = 0; j < geo.n; ++j) g[size_t(i * geo.n + j)] += X[size_t(i * geo.r + k)] * Y[size_t(k * geo.n + j)];
  return round_bf16(g);
}

// The projector refresh goes to CudaProjectorRefresh (cuda/projector.h): the
// subspace of an exactly rank-r gradient is found as on the CPU.
TEST_F(OptimKernelsGpu, RefreshProjectorFindsTheSubspace) {
  const ProjGeom geo = make_proj_geom("left", 96, 200, 8);
  GaloreConfig cfg;
  OptimShapes shapes;
  shapes.max_numel = geo.m * geo.n;
  shapes.galore = {geo};
  build(shapes, cfg);
  const std::vector<float> g = rank_r_gradient(geo);
  HostT cg(g), cA(std::vector<float>(static_cast<size_t>(geo.a_numel())));
  ck_->refresh_projector(cfg, geo, cg.t, 123, Tensor(), Tensor(), cA.t, Tensor());
  const Tensor dg = dev_of(g, DType::BF16), dA = dev({geo.m, geo.r}, DType::BF16);
  poison(dA);
  gk_->refresh_projector(cfg, geo, dg, 123, Tensor(), Tensor(), dA, Tensor());
  const auto A = get(dA);
  EXPECT_EQ(count_nonfinite(A), 0u);
  EXPECT_LT(subspace_sin_angle(A.data(), cA.v.data(), geo.m, geo.r), 0.05);
}

// Per-layer updates: the trainer's gradient buffer is lent from the transient
// workspace, and a full-rank gradient larger than the GaLore target's (the
// embedding's) overwrites everything above the target's gradient. The
// projector's persistent state (sticky cuSOLVER status, norm partials) must
// not be there: overwrite the whole lent buffer before each refresh; the
// refreshes must not report errors (the status of one is checked at the
// next), and they must still find the subspace, identically each time.
TEST_F(OptimKernelsGpu, LentGradBufferLeavesTheProjectorStateAlone) {
  const ProjGeom geo = make_proj_geom("left", 96, 200, 8);
  GaloreConfig cfg;
  OptimShapes shapes;
  shapes.galore = {geo};
  shapes.lend_grad_buffer = true;
  shapes.max_galore_numel = geo.m * geo.n;
  shapes.max_numel = 40 * geo.m * geo.n;  // reaches past every transient region
  build(shapes, cfg);
  const Tensor lent = gk_->lent_grad_buffer();
  ASSERT_EQ(lent.numel(), shapes.max_numel);
  ASSERT_EQ(lent.dtype, DType::BF16);
  ASSERT_GE(gk_->workspace_bytes(), lent.nbytes());
  const std::vector<float> g = rank_r_gradient(geo);
  HostT cg(g), cA(std::vector<float>(static_cast<size_t>(geo.a_numel())));
  ck_->refresh_projector(cfg, geo, cg.t, 123, Tensor(), Tensor(), cA.t, Tensor());
  const Tensor G(lent.data, DType::BF16, Device::CUDA, {geo.m, geo.n});  // the target's gradient: the bottom
  std::vector<float> first;
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    poison(lent);  // a full-rank gradient over all of it
    set(G, g);
    const Tensor dA = dev({geo.m, geo.r}, DType::BF16);
    poison(dA);
    ASSERT_NO_THROW(gk_->refresh_projector(cfg, geo, G, 123, Tensor(), Tensor(), dA, Tensor()));
    gpu_->synchronize();  // the status copy lands: the next refresh checks it
    const auto A = get(dA);
    EXPECT_EQ(count_nonfinite(A), 0u);
    EXPECT_LT(subspace_sin_angle(A.data(), cA.v.data(), geo.m, geo.r), 0.05);
    if (round == 0) first = A;
    EXPECT_TRUE(bitwise_equal(A, first));
  }
}

// No device needed: the plan grows with what it must hold.
TEST(OptimKernelsPlan, WorkspacePlan) {
  GaloreConfig cfg;
  OptimShapes plain;
  plain.max_numel = 1 << 20;
  const size_t base = cuda_optim_kernels_workspace_bytes(plain, cfg);
  EXPECT_GT(base, 2 * 256 * sizeof(float));  // at least the two maps
  EXPECT_EQ(base % 256, 0u);
  auto align = [](size_t b) { return (b + 255) / 256 * 256; };
  OptimShapes left = plain, full = plain;
  left.galore = {make_proj_geom("left", 512, 1024, 64)};
  full.galore = {make_proj_geom("full", 512, 1024, 64)};
  // The refresh gets External memory: the backend GEMM's cuBLAS workspace, and
  // its persistent state next to the statistics (outside every overlay).
  const size_t proj_left = align(CudaProjectorRefresh::workspace_bytes(cfg, left.galore, true));
  const size_t proj_full = align(CudaProjectorRefresh::workspace_bytes(cfg, full.galore, true));
  const size_t state = align(kProjectorStateBytes);
  EXPECT_EQ(CudaProjectorRefresh::workspace_bytes(cfg, left.galore, false),
            CudaProjectorRefresh::workspace_bytes(cfg, left.galore, true) + kProjectorCublasWorkspace + state);
  EXPECT_EQ(cuda_optim_kernels_workspace_bytes(left, cfg), base + state + proj_left);  // no intermediate
  EXPECT_EQ(cuda_optim_kernels_workspace_bytes(full, cfg), base + state + 64 * 1024 * 2 + proj_full);  // bf16 [r, n]
  // The caller's step scratch overlays the refresh regions: only a larger one grows the plan.
  OptimShapes scratch = left;
  scratch.step_scratch_bytes = proj_left / 2;
  EXPECT_EQ(cuda_optim_kernels_workspace_bytes(scratch, cfg), base + state + proj_left);
  scratch.step_scratch_bytes = proj_left + 4096;
  EXPECT_EQ(cuda_optim_kernels_workspace_bytes(scratch, cfg), base + state + proj_left + 4096);
  // A lent gradient buffer: the GaLore target's gradient (bf16 512x1024) sits
  // below the transient regions; the largest gradient may overlay them.
  OptimShapes lend = left;
  lend.lend_grad_buffer = true;
  lend.max_galore_numel = 512 * 1024;
  EXPECT_EQ(cuda_optim_kernels_workspace_bytes(lend, cfg), base + state + 512 * 1024 * 2 + proj_left);
  lend.max_numel = int64_t(512) * 1024 + int64_t(proj_left);  // bf16: reaches past the end
  EXPECT_EQ(cuda_optim_kernels_workspace_bytes(lend, cfg), base + state + align(size_t(lend.max_numel) * 2));
  cfg.moments_on_refresh = "reproject";
  const size_t proj_left_r = align(CudaProjectorRefresh::workspace_bytes(cfg, left.galore, true));
  EXPECT_EQ(cuda_optim_kernels_workspace_bytes(left, cfg), base + state + 2 * 64 * 1024 * 4 + proj_left_r);  // 2 fp32 [rows, cols]
}

#else  // !GALORE_WITH_CUDA
TEST(OptimKernelsGpu, Skipped) { GT_SKIP_OR_FAIL_WITHOUT_GPU("this build has no CUDA backend (GALORE_WITH_CUDA unset)"); }
#endif
