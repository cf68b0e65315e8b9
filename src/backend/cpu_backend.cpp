// The CPU backend: fp32 everywhere, calls the reference ops in cuda/*_cpu.cpp.
#include <omp.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "cuda/attention.h"
#include "cuda/crossentropy.h"
#include "cuda/embedding.h"
#include "cuda/matmul.h"
#include "cuda/residual.h"
#include "cuda/rmsnorm.h"
#include "cuda/rope.h"
#include "cuda/swiglu.h"

namespace gt {

namespace {

float* f32(const Tensor& t) {
  GT_ASSERT(t.dtype == DType::F32 && t.device == Device::CPU);
  return static_cast<float*>(t.data);
}
const int32_t* i32(const Tensor& t) {
  GT_ASSERT(t.dtype == DType::I32);
  return static_cast<const int32_t*>(t.data);
}
int rows(const Tensor& t) { return int(t.numel() / t.dim(-1)); }

class CpuBackend final : public Backend {
 public:
  Device device() const override { return Device::CPU; }
  DType compute_dtype() const override { return DType::F32; }
  std::string name() const override { return "cpu (fp32, " + std::to_string(omp_get_max_threads()) + " threads)"; }

  void* alloc(size_t bytes) override {
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p && bytes) fail("out of host memory allocating {} bytes", bytes);
    return p;
  }
  void release(void* p) override { std::free(p); }
  void upload(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void download(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void zero(const Tensor& t) override { std::memset(t.data, 0, t.nbytes()); }
  void synchronize() override {}
  void timer_reserve(int n) override { stamps_.resize(size_t(n)); }
  void timer_record(int i) override { stamps_.at(size_t(i)) = std::chrono::steady_clock::now(); }
  double timer_ms(int i) override {
    return std::chrono::duration<double, std::milli>(stamps_.at(size_t(i)) - stamps_.at(0)).count();
  }
  void upload_f32(const Tensor& dst, const float* src) override { std::memcpy(f32(dst), src, dst.nbytes()); }
  void download_f32(float* dst, const Tensor& src) override { std::memcpy(dst, f32(src), src.nbytes()); }

  void embedding_forward(const Tensor& out, const Tensor& tokens, const Tensor& wte) override {
    embedding_forward_cpu(f32(out), i32(tokens), f32(wte), int(tokens.numel()), int(wte.dim(-1)));
  }
  void embedding_backward(const Tensor& dwte, const Tensor& dout, const Tensor& tokens) override {
    embedding_backward_cpu(f32(dwte), f32(dout), i32(tokens), int(tokens.numel()), int(dwte.dim(-1)));
  }
  void rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& inp, const Tensor& weight,
                       float eps) override {
    rmsnorm_forward_cpu(f32(out), f32(rstd), f32(inp), f32(weight), rows(inp), int(inp.dim(-1)), eps);
  }
  void rmsnorm_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dout, const Tensor& inp,
                        const Tensor& weight, const Tensor& rstd) override {
    rmsnorm_backward_cpu(f32(dinp), f32(dweight), f32(dout), f32(inp), f32(weight), f32(rstd), rows(inp),
                         int(inp.dim(-1)));
  }
  void matmul_forward(const Tensor& out, const Tensor& inp, const Tensor& weight) override {
    matmul_forward_cpu(f32(out), f32(inp), f32(weight), rows(inp), int(inp.dim(-1)), int(weight.dim(0)));
  }
  void matmul_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dout, const Tensor& inp,
                       const Tensor& weight, bool accumulate_dinp, bool accumulate_dweight) override {
    matmul_backward_cpu(dinp.data ? f32(dinp) : nullptr, dweight.data ? f32(dweight) : nullptr, f32(dout), f32(inp),
                        f32(weight), rows(inp), int(inp.dim(-1)), int(weight.dim(0)), accumulate_dinp,
                        accumulate_dweight);
  }
  void rope_forward(const Tensor& x, float theta) override {
    rope_forward_cpu(f32(x), int(x.dim(0)), int(x.dim(1)), int(x.dim(2)), int(x.dim(3)), theta);
  }
  void rope_backward(const Tensor& dx, float theta) override {
    rope_backward_cpu(f32(dx), int(dx.dim(0)), int(dx.dim(1)), int(dx.dim(2)), int(dx.dim(3)), theta);
  }
  void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k,
                         const Tensor& v) override {
    attention_forward_cpu(f32(out), f32(lse), f32(q), f32(k), f32(v), int(q.dim(0)), int(q.dim(1)), int(q.dim(2)),
                          int(k.dim(2)), int(q.dim(3)));
  }
  void attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout, const Tensor& q,
                          const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                          const Tensor&) override {  // the reference needs no workspace
    attention_backward_cpu(f32(dq), f32(dk), f32(dv), f32(dout), f32(q), f32(k), f32(v), f32(out), f32(lse),
                           int(q.dim(0)), int(q.dim(1)), int(q.dim(2)), int(k.dim(2)), int(q.dim(3)));
  }
  void swiglu_forward(const Tensor& out, const Tensor& gate, const Tensor& up) override {
    swiglu_forward_cpu(f32(out), f32(gate), f32(up), out.numel());
  }
  void swiglu_backward(const Tensor& dgate, const Tensor& dup, const Tensor& dout, const Tensor& gate,
                       const Tensor& up) override {
    swiglu_backward_cpu(f32(dgate), f32(dup), f32(dout), f32(gate), f32(up), dout.numel());
  }
  void classifier(const Tensor& losses, const Tensor& dx, const Tensor& dweight, const Tensor& x,
                  const Tensor& weight, const Tensor& targets, float dloss, bool accumulate_dweight,
                  const Tensor& logits) override {
    const int N = rows(x), C = int(x.dim(-1)), V = int(weight.dim(0)), R = int(logits.dim(0));
    const bool grads = dx.data || dweight.data;
    for (int r0 = 0; r0 < N; r0 += R) {
      const int n = std::min(R, N - r0);
      float* lg = f32(logits);
      const float* xr = f32(x) + int64_t(r0) * C;
      matmul_forward_cpu(lg, xr, f32(weight), n, C, V);
      crossentropy_forward_backward_cpu(f32(losses) + r0, grads ? lg : nullptr, lg, i32(targets) + r0, n, V, dloss);
      if (grads)
        matmul_backward_cpu(dx.data ? f32(dx) + int64_t(r0) * C : nullptr, dweight.data ? f32(dweight) : nullptr, lg,
                            xr, f32(weight), n, C, V, false, accumulate_dweight || r0 > 0);
    }
  }
  void residual_add(const Tensor& out, const Tensor& a, const Tensor& b) override {
    residual_add_cpu(f32(out), f32(a), f32(b), out.numel());
  }
  double sum_squares(const Tensor& t) override {
    const float* p = f32(t);
    double s = 0.0;
    for (int64_t i = 0, n = t.numel(); i < n; ++i) s += double(p[i]) * p[i];
    return s;
  }
  void scale(const Tensor& t, float s) override {
    float* p = f32(t);
    for (int64_t i = 0, n = t.numel(); i < n; ++i) p[i] *= s;
  }

 private:
  std::vector<std::chrono::steady_clock::time_point> stamps_;  // timer_record
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

#ifndef GALORE_WITH_CUDA
bool cuda_device_available() { return false; }
std::unique_ptr<Backend> make_cuda_backend_or_null() { return nullptr; }
#else
std::unique_ptr<Backend> make_cuda_backend_or_null();
#endif

std::unique_ptr<Backend> make_backend(const std::string& device) {
  if (device == "cpu") return make_cpu_backend();
  if (device == "cuda" || device == "auto") {
    if (cuda_device_available()) {
      auto b = make_cuda_backend_or_null();
      if (b) return b;
      if (device == "cuda")
        fail("training.device=cuda: the CUDA backend does not implement the full model yet; use training.device=cpu");
      spdlog::warn("a GPU is present but the CUDA backend is not complete yet; running on the CPU");
      return make_cpu_backend();
    }
    if (device == "cuda")
      fail("training.device=cuda but no CUDA device is available{}; set training.device=cpu or auto",
#ifdef GALORE_WITH_CUDA
           ""
#else
           " (this build has no CUDA backend)"
#endif
      );
    spdlog::warn("no CUDA device found: running on the CPU (fp32). Set training.device=cpu to silence this.");
    return make_cpu_backend();
  }
  fail("training.device must be auto, cuda or cpu (got '{}')", device);
}

}  // namespace gt
