// The CUDA backend: bf16 weights and activations, fp32 accumulation, fp32
// side outputs (rstd, lse, losses). Each op calls the host launcher of its
// kernel family in cuda/<family>.cu. Everything runs on one stream owned by the
// backend; ops never synchronize with the host, except sum_squares(_total) (it returns
// a host double) and the one-time growth of the scratch buffer / RoPE table
// (see below). upload/download/upload_f32/download_f32 are synchronous.
//
// Weight gradients (dwte, rmsnorm dweight, matmul dweight, classifier dweight)
// may be fp32 or bf16 tensors; activation gradients are bf16.
//
// Scratch: the embedding sort, the RMSNorm dweight partials, attention's
// rowsum(dout*out) and the sum-of-squares partials share one device buffer
// that grows on demand (cudaStreamSynchronize + cudaFree + cudaMalloc; only in
// the first step, since shapes repeat). cuda_backend_reserve_scratch() sizes
// it up front, and cuda_backend_prepare_rope() builds the RoPE tables (the
// trainer calls both before its first step).
#include "cuda/cuda_check.h"  // first: see the note there

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <string>
#include <vector>

#include "backend/cuda_backend.h"
#include "backend/device_plan.h"
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

const char* device_name(Device d) { return d == Device::CUDA ? "cuda" : "cpu"; }

void check_tensor(const Tensor& t, DType want, const char* what) {
  if (t.device != Device::CUDA || t.dtype != want)
    fail("cuda backend: {} must be a {} CUDA tensor (got {} on {})", what, dtype_name(want), dtype_name(t.dtype),
         device_name(t.device));
}
bf16* bf(const Tensor& t, const char* what) {
  check_tensor(t, DType::BF16, what);
  return static_cast<bf16*>(t.data);
}
float* f32(const Tensor& t, const char* what) {
  check_tensor(t, DType::F32, what);
  return static_cast<float*>(t.data);
}
const int32_t* i32(const Tensor& t, const char* what) {
  check_tensor(t, DType::I32, what);
  return static_cast<const int32_t*>(t.data);
}
// A weight gradient: fp32 or bf16.
struct Grad {
  void* p = nullptr;
  bool is_f32 = false;
};
Grad grad(const Tensor& t, const char* what) {
  if (!t.data) return {};
  if (t.device != Device::CUDA || (t.dtype != DType::F32 && t.dtype != DType::BF16))
    fail("cuda backend: {} must be an fp32 or bf16 CUDA tensor (got {} on {})", what, dtype_name(t.dtype),
         device_name(t.device));
  return {t.data, t.dtype == DType::F32};
}
int rows(const Tensor& t) { return int(t.numel() / t.dim(-1)); }
int as_int(int64_t x, const char* what) {
  if (x < 0 || x > INT32_MAX) fail("cuda backend: {} = {} does not fit in int32", what, x);
  return int(x);
}

#ifndef GALORE_CUDA_ARCHS  // set by CMakeLists.txt
#define GALORE_CUDA_ARCHS "unknown"
#endif

// Compiled like every kernel of the library: if the device has no code for
// it, it has none for any of them.
__global__ void arch_probe_kernel() {}

// A build without code for this device's architecture (an A100 or RTX 3090
// with the default sm_89;sm_90 build) fails at the first launch with "no
// kernel image"; say so at startup, with the fix.
void check_kernels_built_for(const cudaDeviceProp& prop) {
  cudaFuncAttributes attr{};
  const cudaError_t e = cudaFuncGetAttributes(&attr, reinterpret_cast<const void*>(arch_probe_kernel));
  if (e == cudaSuccess) return;
  (void)cudaGetLastError();
  fail("this build has no GPU code for {} (sm_{}{}; built for CMAKE_CUDA_ARCHITECTURES={}): {}; rebuild with "
       "cmake -DCMAKE_CUDA_ARCHITECTURES={}{} (or native), or run with training.device=cpu",
       prop.name, prop.major, prop.minor, GALORE_CUDA_ARCHS, cudaGetErrorString(e), prop.major, prop.minor);
}

class CudaBackend final : public Backend {
 public:
  CudaBackend() {
    try {
      CUDA_CHECK(cudaGetDevice(&device_));
      CUDA_CHECK(cudaGetDeviceProperties(&prop_, device_));
      check_kernels_built_for(prop_);
      CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
      gemm_ = std::make_unique<CudaGemm>(stream_, kCudaGemmWorkspaceBytes);
      CUDA_CHECK(cudaMalloc(&staging_, sizeof(float) * kCudaStagingElems));
      CUDA_CHECK(cudaMalloc(&d_sum_, sizeof(double)));
      CUDA_CHECK(cudaMallocHost(&h_sum_, sizeof(double)));
    } catch (...) {
      cleanup();
      throw;
    }
  }
  ~CudaBackend() override { cleanup(); }

  Device device() const override { return Device::CUDA; }
  DType compute_dtype() const override { return DType::BF16; }
  std::string name() const override {
    return std::string("cuda (") + prop_.name + ", sm_" + std::to_string(prop_.major) + std::to_string(prop_.minor) +
           ", bf16)";
  }

  // ---- memory ----
  void* alloc(size_t bytes) override {
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      fail("CUDA out of memory allocating {} MiB ({} MiB free of {} MiB): {}", bytes >> 20, free_b >> 20,
           total_b >> 20, cudaGetErrorString(e));
    }
    return p;
  }
  void release(void* p) override {
    if (!p) return;
    // Wait for the work that may still use p (cudaFree's implicit device
    // synchronisation is not something to lean on). No throw: destructors call this.
    cudaError_t e = cudaStreamSynchronize(stream_);
    if (e == cudaSuccess) e = cudaFree(p);
    if (e != cudaSuccess) std::fprintf(stderr, "warning: freeing device memory failed: %s\n", cudaGetErrorString(e));
  }
  void upload(void* dst, const void* src, size_t bytes) override {
    if (!bytes) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void download(void* dst, const void* src, size_t bytes) override {
    if (!bytes) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void zero(const Tensor& t) override {
    if (t.nbytes()) CUDA_CHECK(cudaMemsetAsync(t.data, 0, t.nbytes(), stream_));
  }
  void synchronize() override { CUDA_CHECK(cudaStreamSynchronize(stream_)); }
  void timer_reserve(int n) override {
    while (int(timer_events_.size()) < n) {
      cudaEvent_t e = nullptr;
      CUDA_CHECK(cudaEventCreate(&e));
      timer_events_.push_back(e);
    }
  }
  void timer_record(int i) override { CUDA_CHECK(cudaEventRecord(timer_events_.at(size_t(i)), stream_)); }
  double timer_ms(int i) override {
    float ms = 0.0f;
    CUDA_CHECK(cudaEventElapsedTime(&ms, timer_events_.at(0), timer_events_.at(size_t(i))));
    return ms;
  }
  size_t memory_in_use() const override {
    size_t free_b = 0, total_b = 0;
    return cudaMemGetInfo(&free_b, &total_b) == cudaSuccess ? total_b - free_b : 0;
  }
  double peak_flops() const override { return cuda_peak_bf16_flops(); }

  // fp32 host values <-> a bf16 (or fp32) device tensor, through the staging buffer.
  void upload_f32(const Tensor& dst, const float* src) override {
    if (dst.dtype == DType::F32) return upload(f32(dst, "upload_f32 dst"), src, dst.nbytes());
    bf16* d = bf(dst, "upload_f32 dst");
    const int64_t n = dst.numel();
    for (int64_t off = 0; off < n; off += kCudaStagingElems) {
      const int64_t m = std::min<int64_t>(kCudaStagingElems, n - off);
      // Stream order keeps the next chunk's copy behind this chunk's conversion.
      CUDA_CHECK(cudaMemcpyAsync(staging_, src + off, sizeof(float) * m, cudaMemcpyHostToDevice, stream_));
      convert_f32_to_bf16_cuda(d + off, staging_, m, stream_);
    }
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void download_f32(float* dst, const Tensor& src) override {
    if (src.dtype == DType::F32) return download(dst, f32(src, "download_f32 src"), src.nbytes());
    const bf16* s = bf(src, "download_f32 src");
    const int64_t n = src.numel();
    for (int64_t off = 0; off < n; off += kCudaStagingElems) {
      const int64_t m = std::min<int64_t>(kCudaStagingElems, n - off);
      convert_bf16_to_f32_cuda(staging_, s + off, m, stream_);
      CUDA_CHECK(cudaMemcpyAsync(dst + off, staging_, sizeof(float) * m, cudaMemcpyDeviceToHost, stream_));
      CUDA_CHECK(cudaStreamSynchronize(stream_));  // pageable destination: wait before reusing staging
    }
  }

  // ---- ops ----
  void embedding_forward(const Tensor& out, const Tensor& tokens, const Tensor& wte) override {
    embedding_forward_cuda(bf(out, "embedding out"), i32(tokens, "tokens"), bf(wte, "wte"),
                           as_int(tokens.numel(), "N"), as_int(wte.dim(-1), "C"), stream_);
  }
  void embedding_backward(const Tensor& dwte, const Tensor& dout, const Tensor& tokens) override {
    const int N = as_int(tokens.numel(), "N"), C = as_int(dwte.dim(-1), "C"), V = as_int(dwte.dim(0), "V");
    const Grad g = grad(dwte, "dwte");
    const size_t ws_bytes = embedding_backward_cuda_workspace(N, V);
    void* ws = scratch(ws_bytes);
    if (g.is_f32)
      embedding_backward_cuda(static_cast<float*>(g.p), bf(dout, "embedding dout"), i32(tokens, "tokens"), N, C, V,
                              ws, ws_bytes, stream_);
    else
      embedding_backward_cuda(static_cast<bf16*>(g.p), bf(dout, "embedding dout"), i32(tokens, "tokens"), N, C, V, ws,
                              ws_bytes, stream_);
  }
  void rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& inp, const Tensor& weight,
                       float eps) override {
    rmsnorm_forward_cuda(bf(out, "rmsnorm out"), f32(rstd, "rstd"), bf(inp, "rmsnorm inp"), bf(weight, "rmsnorm weight"),
                         rows(inp), as_int(inp.dim(-1), "C"), eps, stream_);
  }
  void rmsnorm_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dout, const Tensor& inp,
                        const Tensor& weight, const Tensor& rstd) override {
    const int N = rows(inp), C = as_int(inp.dim(-1), "C");
    const Grad g = grad(dweight, "rmsnorm dweight");
    GT_ASSERT(g.p);
    const size_t ws_bytes = rmsnorm_backward_cuda_workspace(N, C);
    void* ws = scratch(ws_bytes);
    if (g.is_f32)
      rmsnorm_backward_cuda(bf(dinp, "rmsnorm dinp"), static_cast<float*>(g.p), bf(dout, "rmsnorm dout"),
                            bf(inp, "rmsnorm inp"), bf(weight, "rmsnorm weight"), f32(rstd, "rstd"), N, C, ws,
                            ws_bytes, stream_);
    else
      rmsnorm_backward_cuda(bf(dinp, "rmsnorm dinp"), static_cast<bf16*>(g.p), bf(dout, "rmsnorm dout"),
                            bf(inp, "rmsnorm inp"), bf(weight, "rmsnorm weight"), f32(rstd, "rstd"), N, C, ws,
                            ws_bytes, stream_);
  }
  void matmul_forward(const Tensor& out, const Tensor& inp, const Tensor& weight) override {
    matmul_forward_cuda(*gemm_, bf(out, "matmul out"), bf(inp, "matmul inp"), bf(weight, "matmul weight"), rows(inp),
                        as_int(inp.dim(-1), "C"), as_int(weight.dim(0), "OC"));
  }
  // The residual is the GEMM's C operand (beta = 1): no separate add kernel.
  void matmul_forward_add(const Tensor& out, const Tensor& inp, const Tensor& weight, const Tensor& residual) override {
    if (out.data == residual.data) fail("matmul_forward_add: out must not alias residual");
    if (residual.numel() != out.numel())
      fail("cuda backend: matmul_forward_add: residual has {} elements, out {}", residual.numel(), out.numel());
    matmul_forward_cuda(*gemm_, bf(out, "matmul out"), bf(inp, "matmul inp"), bf(weight, "matmul weight"), rows(inp),
                        as_int(inp.dim(-1), "C"), as_int(weight.dim(0), "OC"), bf(residual, "matmul residual"));
  }
  void matmul_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dout, const Tensor& inp,
                       const Tensor& weight, bool accumulate_dinp, bool accumulate_dweight) override {
    const Grad g = grad(dweight, "matmul dweight");
    matmul_backward_cuda(*gemm_, dinp.data ? bf(dinp, "matmul dinp") : nullptr, g.p, g.is_f32,
                         bf(dout, "matmul dout"), bf(inp, "matmul inp"), bf(weight, "matmul weight"), rows(inp),
                         as_int(inp.dim(-1), "C"), as_int(weight.dim(0), "OC"), accumulate_dinp, accumulate_dweight);
  }
  void rope_forward(const Tensor& x, float theta) override {
    const int B = int(x.dim(0)), T = int(x.dim(1)), H = int(x.dim(2)), D = int(x.dim(3));
    ensure_rope_table(T, D, theta);
    rope_forward_cuda(bf(x, "rope x"), rope_cos_, rope_sin_, B, T, H, D, stream_);
  }
  void rope_backward(const Tensor& dx, float theta) override {
    const int B = int(dx.dim(0)), T = int(dx.dim(1)), H = int(dx.dim(2)), D = int(dx.dim(3));
    ensure_rope_table(T, D, theta);
    rope_backward_cuda(bf(dx, "rope dx"), rope_cos_, rope_sin_, B, T, H, D, stream_);
  }
  void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k,
                         const Tensor& v) override {
    attention_forward_cuda(bf(out, "attention out"), f32(lse, "lse"), bf(q, "q"), bf(k, "k"), bf(v, "v"),
                           int(q.dim(0)), int(q.dim(1)), int(q.dim(2)), int(k.dim(2)), int(q.dim(3)), stream_);
  }
  void attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout, const Tensor& q,
                          const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                          const Tensor& spare) override {
    const int B = int(q.dim(0)), T = int(q.dim(1)), NH = int(q.dim(2)), NKV = int(k.dim(2)), D = int(q.dim(3));
    const size_t ws_bytes = attention_backward_cuda_workspace(B, T, NH);
    void* ws = scratch(ws_bytes);
    if (spare.data && spare.device != Device::CUDA) fail("attention backward: the spare buffer must be on the device");
    const size_t spare_bytes = spare.data ? spare.nbytes() : 0;
    const bool used = attention_backward_cuda(bf(dq, "dq"), bf(dk, "dk"), bf(dv, "dv"), bf(dout, "attention dout"),
                                              bf(q, "q"), bf(k, "k"), bf(v, "v"), bf(out, "attention out"),
                                              f32(lse, "lse"), B, T, NH, NKV, D, ws, ws_bytes, spare.data, spare_bytes,
                                              stream_);
    const size_t ds_bytes = attention_backward_cuda_ds_bytes(B, T, NH);
    if (!used && spare_bytes && spare_bytes < ds_bytes) {
      static std::atomic<bool> told{false};  // once per process: the shapes repeat every layer and step
      if (!told.exchange(true))
        std::fprintf(stderr,
                     "note: attention backward: the dS store (%.1f MiB at B=%d, T=%d, %d heads) does not fit the "
                     "model's spare buffer (%.1f MiB); dq recomputes the scores instead (slower; docs/CUDA.md)\n",
                     double(ds_bytes) / (1 << 20), B, T, NH, double(spare_bytes) / (1 << 20));
    }
  }
  void swiglu_forward(const Tensor& out, const Tensor& gate, const Tensor& up) override {
    swiglu_forward_cuda(bf(out, "swiglu out"), bf(gate, "gate"), bf(up, "up"), out.numel(), stream_);
  }
  void swiglu_backward(const Tensor& dgate, const Tensor& dup, const Tensor& dout, const Tensor& gate,
                       const Tensor& up) override {
    swiglu_backward_cuda(bf(dgate, "dgate"), bf(dup, "dup"), bf(dout, "swiglu dout"), bf(gate, "gate"), bf(up, "up"),
                         dout.numel(), stream_);
  }
  void classifier(const Tensor& losses, const Tensor& dx, const Tensor& dweight, const Tensor& x,
                  const Tensor& weight, const Tensor& targets, float dloss, bool accumulate_dweight,
                  const Tensor& logits) override {
    const int N = rows(x), C = as_int(x.dim(-1), "C"), V = as_int(weight.dim(0), "V");
    const int R = as_int(logits.dim(0), "R");
    if (logits.dim(-1) != V) fail("cuda backend: classifier logits workspace is [{}, {}], want [R, {}]", R, logits.dim(-1), V);
    if (logits.device != Device::CUDA || (logits.dtype != DType::F32 && logits.dtype != DType::BF16))
      fail("cuda backend: classifier logits workspace must be an fp32 or bf16 CUDA tensor");
    const Grad g = grad(dweight, "classifier dweight");
    classifier_cuda(*gemm_, f32(losses, "losses"), dx.data ? bf(dx, "classifier dx") : nullptr, g.p, g.is_f32,
                    bf(x, "classifier x"), bf(weight, "lm_head weight"), i32(targets, "targets"), N, C, V, dloss,
                    accumulate_dweight, logits.data, logits.dtype == DType::F32, R);
  }
  void residual_add(const Tensor& out, const Tensor& a, const Tensor& b) override {
    residual_add_cuda(bf(out, "residual out"), bf(a, "residual a"), bf(b, "residual b"), out.numel(), stream_);
  }
  double sum_squares(const Tensor& t) override { return sum_squares_total({t}); }
  // Each tensor's sum is added to d_sum_ (from 0) on the device, in order: the
  // same double additions as the host loop of Backend's default.
  double sum_squares_total(const std::vector<Tensor>& ts) override {
    void* ws = scratch(sum_squares_cuda_workspace());
    CUDA_CHECK(cudaMemsetAsync(d_sum_, 0, sizeof(double), stream_));
    for (const Tensor& t : ts) {
      if (t.dtype == DType::F32)
        sum_squares_cuda(d_sum_, f32(t, "sum_squares"), t.numel(), ws, stream_, /*accumulate=*/true);
      else
        sum_squares_cuda(d_sum_, bf(t, "sum_squares"), t.numel(), ws, stream_, /*accumulate=*/true);
    }
    CUDA_CHECK(cudaMemcpyAsync(h_sum_, d_sum_, sizeof(double), cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));  // the one op that syncs: its result is a host value
    return *h_sum_;
  }
  void scale(const Tensor& t, float s) override {
    if (t.dtype == DType::F32)
      scale_cuda(f32(t, "scale"), s, t.numel(), stream_);
    else
      scale_cuda(bf(t, "scale"), s, t.numel(), stream_);
  }

  void reserve_scratch(size_t bytes) { scratch(bytes); }
  void prepare_rope(int T, int D, float theta) { ensure_rope_table(T, D, theta); }
  CudaBackendHandles handles() { return {stream_, gemm_.get()}; }  // cuda_backend_handles()

 private:

  // The shared scratch buffer, grown on demand (see the file comment).
  void* scratch(size_t bytes) {
    if (bytes <= scratch_bytes_) return scratch_;
    CUDA_CHECK(cudaStreamSynchronize(stream_));  // earlier ops may still read the old buffer
    if (scratch_) CUDA_CHECK(cudaFree(scratch_));
    scratch_ = nullptr;
    scratch_bytes_ = 0;
    CUDA_CHECK(cudaMalloc(&scratch_, bytes));
    scratch_bytes_ = bytes;
    return scratch_;
  }

  // cos/sin [T, D/2] for (D, theta); rebuilt (once, synchronously) when T grows or D/theta change.
  void ensure_rope_table(int T, int D, float theta) {
    if (rope_cos_ && T <= rope_T_ && D == rope_D_ && theta == rope_theta_) return;
    if (D % 2) fail("cuda backend: RoPE head dim {} must be even", D);
    const int Tn = (D == rope_D_ && theta == rope_theta_) ? std::max(T, rope_T_) : T;
    const size_t n = size_t(Tn) * size_t(D / 2);
    std::vector<float> c(n), s(n);
    rope_table_host(c.data(), s.data(), Tn, D, theta);
    CUDA_CHECK(cudaStreamSynchronize(stream_));  // earlier rope ops may still read the old table
    if (rope_cos_) CUDA_CHECK(cudaFree(rope_cos_));
    if (rope_sin_) CUDA_CHECK(cudaFree(rope_sin_));
    rope_cos_ = rope_sin_ = nullptr;
    rope_T_ = 0;
    CUDA_CHECK(cudaMalloc(&rope_cos_, sizeof(float) * std::max<size_t>(n, 1)));
    CUDA_CHECK(cudaMalloc(&rope_sin_, sizeof(float) * std::max<size_t>(n, 1)));
    CUDA_CHECK(cudaMemcpyAsync(rope_cos_, c.data(), sizeof(float) * n, cudaMemcpyHostToDevice, stream_));
    CUDA_CHECK(cudaMemcpyAsync(rope_sin_, s.data(), sizeof(float) * n, cudaMemcpyHostToDevice, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));  // the host vectors die here
    rope_T_ = Tn, rope_D_ = D, rope_theta_ = theta;
  }

  // Frees everything without throwing (destructor and failed constructor).
  void cleanup() noexcept {
    if (stream_) cudaStreamSynchronize(stream_);
    gemm_.reset();
    if (scratch_) cudaFree(scratch_);
    if (rope_cos_) cudaFree(rope_cos_);
    if (rope_sin_) cudaFree(rope_sin_);
    if (staging_) cudaFree(staging_);
    if (d_sum_) cudaFree(d_sum_);
    if (h_sum_) cudaFreeHost(h_sum_);
    for (cudaEvent_t e : timer_events_) cudaEventDestroy(e);
    timer_events_.clear();
    if (stream_) cudaStreamDestroy(stream_);
    scratch_ = nullptr;
    rope_cos_ = rope_sin_ = staging_ = nullptr;
    d_sum_ = h_sum_ = nullptr;
    stream_ = nullptr;
  }

  int device_ = 0;
  cudaDeviceProp prop_{};
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<CudaGemm> gemm_;
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
  float* staging_ = nullptr;  // [kCudaStagingElems] fp32
  double* d_sum_ = nullptr;   // device result of sum_squares
  double* h_sum_ = nullptr;   // pinned host copy
  float* rope_cos_ = nullptr;  // [rope_T_, rope_D_/2]
  float* rope_sin_ = nullptr;
  int rope_T_ = 0, rope_D_ = 0;
  float rope_theta_ = 0.0f;
  std::vector<cudaEvent_t> timer_events_;  // timer_record's stamps
};

}  // namespace

bool cuda_device_available() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);  // no driver / no device: an error code, not a crash
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return n > 0;
}

std::unique_ptr<Backend> make_cuda_backend_or_null() { return std::make_unique<CudaBackend>(); }

void cuda_backend_reserve_scratch(Backend& backend, size_t bytes) {
  if (auto* c = dynamic_cast<CudaBackend*>(&backend)) c->reserve_scratch(bytes);
}

void cuda_backend_prepare_rope(Backend& backend, int T, int D, float theta) {
  if (auto* c = dynamic_cast<CudaBackend*>(&backend)) c->prepare_rope(T, D, theta);
}

GemmTuneResult cuda_backend_autotune_gemms(Backend& backend, void* scratch, size_t scratch_bytes, int candidates) {
  auto* c = dynamic_cast<CudaBackend*>(&backend);
  return c ? c->handles().gemm->autotune(scratch, scratch_bytes, candidates) : GemmTuneResult{};
}

std::vector<uint8_t> cuda_backend_export_gemm_algos(Backend& backend) {
  auto* c = dynamic_cast<CudaBackend*>(&backend);
  return c ? c->handles().gemm->export_algos() : std::vector<uint8_t>{};
}

std::string cuda_backend_import_gemm_algos(Backend& backend, const std::vector<uint8_t>& table) {
  auto* c = dynamic_cast<CudaBackend*>(&backend);
  return c ? c->handles().gemm->import_algos(table) : "the backend is not CUDA";
}

CudaBackendHandles cuda_backend_handles(Backend& backend) {
  auto* c = dynamic_cast<CudaBackend*>(&backend);
  if (!c) fail("cuda_backend_handles: backend {} is not the CUDA backend", backend.name());
  return c->handles();
}

}  // namespace gt
