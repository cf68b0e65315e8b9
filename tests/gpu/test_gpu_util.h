// Helpers for the GPU tests (plain C++: the kernels are reached through the
// host launchers declared in cuda/<family>.h). Every GPU test starts with
// GT_REQUIRE_GPU(), which skips it with the reason when no device is usable,
// or fails it when GALORE_REQUIRE_GPU=1 is set (scripts/gpu_check.sh sets it
// on a machine where nvidia-smi sees a GPU: a driver too old for the toolkit
// must not turn the whole GPU check into green skips).
//
// Method (see /work/.library/device/METHOD.md): fresh seeded random inputs,
// rounded to bf16 on the host so the CPU reference (fp32) and the kernel see
// the same values; outputs poisoned with 0xFF bytes (NaN in bf16 and fp32)
// before each run, so an element that is never written shows up as NaN;
// comparison by ||out - ref|| / ||ref||.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef GALORE_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#endif

namespace gt::test {

// GALORE_REQUIRE_GPU set (and not "0"): a missing device is a failure.
inline bool gpu_required() {
  const char* v = std::getenv("GALORE_REQUIRE_GPU");
  return v && *v && std::string(v) != "0";
}
// Skips (or, with GALORE_REQUIRE_GPU, fails) the current test or SetUp with `reason`.
#define GT_SKIP_OR_FAIL_WITHOUT_GPU(reason)                                                          \
  do {                                                                                               \
    if (::gt::test::gpu_required()) GTEST_FAIL() << "GALORE_REQUIRE_GPU is set but " << (reason);    \
    GTEST_SKIP() << "no CUDA device: " << (reason);                                                  \
  } while (0)

// ---- host bf16 (round to nearest even, as __float2bfloat16 does) ----
inline uint16_t f32_to_bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);  // NaN stays NaN (quiet)
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
inline float bf16_bits_to_f32(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float round_bf16(float f) { return bf16_bits_to_f32(f32_to_bf16_bits(f)); }
inline std::vector<float> round_bf16(std::vector<float> v) {
  for (float& x : v) x = round_bf16(x);
  return v;
}

// ---- seeded random inputs ----
// Base seed from GT_TEST_SEED (default 20261127); every call draws a new stream.
inline uint64_t next_seed() {
  static uint64_t counter = 0;
  static const uint64_t base = [] {
    const char* s = std::getenv("GT_TEST_SEED");
    return s ? std::strtoull(s, nullptr, 10) : uint64_t(20261127);
  }();
  return base * 1000003u + (++counter);
}
// Normal(mean, stddev) values rounded to bf16 (non-zero with probability 1).
inline std::vector<float> randn_bf16(size_t n, float stddev = 1.0f, float mean = 0.0f) {
  std::mt19937_64 rng(next_seed());
  std::normal_distribution<float> dist(mean, stddev);
  std::vector<float> v(n);
  for (float& x : v) {
    do x = round_bf16(dist(rng));
    while (x == 0.0f);
  }
  return v;
}
inline std::vector<int32_t> rand_tokens(size_t n, int V) {
  std::mt19937_64 rng(next_seed());
  std::uniform_int_distribution<int32_t> dist(0, V - 1);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// ---- comparison ----
inline size_t count_nonfinite(const std::vector<float>& v) {
  size_t n = 0;
  for (float x : v) n += !std::isfinite(x);
  return n;
}
inline double rel_err(const std::vector<float>& out, const std::vector<float>& ref) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < out.size(); ++i) {
    const double d = double(out[i]) - double(ref[i]);
    num += d * d;
    den += double(ref[i]) * ref[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}
// No NaN/inf (catches unwritten poisoned elements) and ||out-ref||/||ref|| <= tol.
inline void expect_close(const std::string& what, const std::vector<float>& out, const std::vector<float>& ref,
                         double tol) {
  ASSERT_EQ(out.size(), ref.size()) << what;
  const size_t bad = count_nonfinite(out);
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << out.size() << " elements are NaN/inf (unwritten?)";
  const double e = rel_err(out, ref);
  EXPECT_LE(e, tol) << what << ": relative error " << e << " > " << tol;
  if (std::getenv("GT_TEST_VERBOSE")) std::printf("    %-32s rel err %.3e (tol %.0e)\n", what.c_str(), e, tol);
}
template <typename T>
inline bool bitwise_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

#ifdef GALORE_WITH_CUDA

// Why GPU tests must skip, or "" when a device is usable.
inline std::string gpu_skip_reason() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return std::string("cudaGetDeviceCount failed: ") + cudaGetErrorString(e);
  }
  if (n == 0) return "cudaGetDeviceCount found 0 devices";
  return "";
}
// First statement of every GPU test (or its fixture's SetUp).
#define GT_REQUIRE_GPU()                                                        \
  do {                                                                          \
    const std::string gpu_reason_ = ::gt::test::gpu_skip_reason();              \
    if (!gpu_reason_.empty()) GT_SKIP_OR_FAIL_WITHOUT_GPU(gpu_reason_);         \
  } while (0)

inline void cuda_ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}
#define GT_CUDA_OK(call) ::gt::test::cuda_ok((call), #call)

// A device buffer of n elements of T (T = float, int32_t, __nv_bfloat16, double, char).
template <typename T>
struct DevBuf {
  T* p = nullptr;
  size_t n = 0;
  explicit DevBuf(size_t n_) : n(n_) { GT_CUDA_OK(cudaMalloc(&p, (n ? n : 1) * sizeof(T))); }
  ~DevBuf() { cudaFree(p); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  size_t bytes() const { return n * sizeof(T); }
  // 0xFF bytes: NaN in bf16 and fp32. Synchronous, so any stream sees it.
  void poison() {
    GT_CUDA_OK(cudaMemset(p, 0xFF, bytes()));
    GT_CUDA_OK(cudaDeviceSynchronize());
  }
  void upload(const std::vector<T>& h) {
    if (h.size() != n) throw std::runtime_error("DevBuf::upload: size mismatch");
    GT_CUDA_OK(cudaMemcpy(p, h.data(), bytes(), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> h(n);
    GT_CUDA_OK(cudaMemcpy(h.data(), p, bytes(), cudaMemcpyDeviceToHost));
    return h;
  }
};

// bf16 on the device, fp32 on the host.
struct Bf16Buf : DevBuf<__nv_bfloat16> {
  explicit Bf16Buf(size_t n_) : DevBuf<__nv_bfloat16>(n_) {}
  explicit Bf16Buf(const std::vector<float>& h) : DevBuf<__nv_bfloat16>(h.size()) { upload_f32(h); }
  void upload_f32(const std::vector<float>& h) {
    if (h.size() != n) throw std::runtime_error("Bf16Buf::upload_f32: size mismatch");
    std::vector<uint16_t> bits(n);
    for (size_t i = 0; i < n; ++i) bits[i] = f32_to_bf16_bits(h[i]);
    GT_CUDA_OK(cudaMemcpy(p, bits.data(), bytes(), cudaMemcpyHostToDevice));
  }
  std::vector<float> download_f32() const {
    std::vector<uint16_t> bits(n);
    GT_CUDA_OK(cudaMemcpy(bits.data(), p, bytes(), cudaMemcpyDeviceToHost));
    std::vector<float> h(n);
    for (size_t i = 0; i < n; ++i) h[i] = bf16_bits_to_f32(bits[i]);
    return h;
  }
  std::vector<uint16_t> download_bits() const {
    std::vector<uint16_t> bits(n);
    GT_CUDA_OK(cudaMemcpy(bits.data(), p, bytes(), cudaMemcpyDeviceToHost));
    return bits;
  }
};

// Fixture: skips without a device; one stream per test.
class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    GT_REQUIRE_GPU();
    GT_CUDA_OK(cudaStreamCreate(&stream));
  }
  void TearDown() override {
    if (stream) {
      cudaStreamSynchronize(stream);
      cudaStreamDestroy(stream);
    }
  }
  void sync() {
    GT_CUDA_OK(cudaStreamSynchronize(stream));
    GT_CUDA_OK(cudaGetLastError());
  }
  cudaStream_t stream = nullptr;
};

#endif  // GALORE_WITH_CUDA

}  // namespace gt::test
