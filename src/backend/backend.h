// The op interface the model calls. The CPU backend (fp32, the reference)
// and the CUDA backend (bf16 weights/activations, fp32 accumulation)
// implement it; each op's CPU reference and CUDA kernel live side by side in
// cuda/<family>{_cpu.cpp,.cu}. All tensors are views; backends never allocate
// inside an op (workspaces are planned up front).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace gt {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual DType compute_dtype() const = 0;  // weights and activations
  virtual std::string name() const = 0;

  // ---- memory (arenas call these once each) ----
  virtual void* alloc(size_t bytes) = 0;
  virtual void release(void* p) = 0;
  virtual void upload(void* dst, const void* src, size_t bytes) = 0;    // host -> device
  virtual void download(void* dst, const void* src, size_t bytes) = 0;  // device -> host
  virtual void zero(const Tensor& t) = 0;
  virtual void synchronize() = 0;
  // Bytes of device memory in use (progress display; 0 if unknown) and the
  // peak dense bf16/fp32 FLOP/s of the device for MFU (0 if unknown).
  virtual size_t memory_in_use() const { return 0; }
  virtual double peak_flops() const { return 0.0; }
  // ---- timing (galore-bench --profile; train/step_profile.h) ----
  // Stream-ordered timestamps that need no host sync: timer_reserve(n) first
  // (outside a step: it may create events), then timer_record(i) for stamps
  // i < n in the order the work is issued; after synchronize(), timer_ms(i) is
  // the time from stamp 0 to stamp i. The CPU's ops run on the calling thread,
  // so a host clock is exact there; the GPU records events on its stream.
  virtual void timer_reserve(int n) = 0;
  virtual void timer_record(int i) = 0;
  virtual double timer_ms(int i) = 0;
  // fp32 host values into a tensor of the compute dtype, and back.
  virtual void upload_f32(const Tensor& dst, const float* src) = 0;
  virtual void download_f32(float* dst, const Tensor& src) = 0;

  // ---- ops; N = B*T rows ----
  // out[N,C], tokens[N] (I32), wte[V,C]
  virtual void embedding_forward(const Tensor& out, const Tensor& tokens, const Tensor& wte) = 0;
  // dwte[V,C] += scatter(dout[N,C])
  virtual void embedding_backward(const Tensor& dwte, const Tensor& dout, const Tensor& tokens) = 0;
  // out[N,C], rstd[N] (F32), inp[N,C], weight[C]
  virtual void rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& inp, const Tensor& weight,
                               float eps) = 0;
  // dinp[N,C] +=, dweight[C] +=
  virtual void rmsnorm_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dout, const Tensor& inp,
                                const Tensor& weight, const Tensor& rstd) = 0;
  // out[N,OC] = inp[N,C] @ weight[OC,C]^T
  virtual void matmul_forward(const Tensor& out, const Tensor& inp, const Tensor& weight) = 0;
  // out[N,OC] = residual[N,OC] + inp[N,C] @ weight[OC,C]^T; out must not alias residual.
  // Default: matmul_forward, then residual_add (the CPU reference); CUDA adds the
  // residual in the GEMM's epilogue.
  virtual void matmul_forward_add(const Tensor& out, const Tensor& inp, const Tensor& weight, const Tensor& residual) {
    if (out.data == residual.data) fail("matmul_forward_add: out must not alias residual");
    matmul_forward(out, inp, weight);
    residual_add(out, out, residual);
  }
  // dinp[N,C] (=/+=) = dout @ weight; dweight[OC,C] (=/+=) = dout^T @ inp; either may be empty (data==nullptr)
  virtual void matmul_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dout, const Tensor& inp,
                               const Tensor& weight, bool accumulate_dinp, bool accumulate_dweight) = 0;
  // x[B,T,H,D] in place
  virtual void rope_forward(const Tensor& x, float theta) = 0;
  virtual void rope_backward(const Tensor& dx, float theta) = 0;
  // q[B,T,NH,D], k/v[B,T,NKV,D] -> out[B,T,NH,D], lse[B,NH,T] (F32)
  virtual void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k,
                                 const Tensor& v) = 0;
  // dq[B,T,NH,D], dk/dv[B,T,NKV,D] overwritten. `spare`: a buffer that is dead
  // during the call (may be empty), which the backend may overwrite as its
  // workspace (CUDA: the dS store, cuda/attention.h) or ignore (CPU).
  virtual void attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout,
                                  const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                  const Tensor& lse, const Tensor& spare) = 0;
  // out[N,I] = silu(gate) * up
  virtual void swiglu_forward(const Tensor& out, const Tensor& gate, const Tensor& up) = 0;
  // dgate/dup may alias gate/up (in place; the model does that).
  virtual void swiglu_backward(const Tensor& dgate, const Tensor& dup, const Tensor& dout, const Tensor& gate,
                               const Tensor& up) = 0;
  // lm_head + softmax cross-entropy, chunked over rows of `logits` (workspace [R,V], R <= N).
  // losses[N] (F32). If dx/dweight are non-empty: dx[N,C] = dL/dx (overwritten),
  // dweight[V,C] (=/+=) with dL = dloss * sum(losses). If R == N and no gradients
  // are requested, `logits` holds the logits afterwards.
  virtual void classifier(const Tensor& losses, const Tensor& dx, const Tensor& dweight, const Tensor& x,
                          const Tensor& weight, const Tensor& targets, float dloss, bool accumulate_dweight,
                          const Tensor& logits) = 0;
  // out = a + b (out may alias a)
  virtual void residual_add(const Tensor& out, const Tensor& a, const Tensor& b) = 0;
  // sum of squares of a tensor (double on the host; the only sync point, used for norms)
  virtual double sum_squares(const Tensor& t) = 0;
  // sum_squares(ts[0]) + sum_squares(ts[1]) + ..., added in that order; one sync
  // on the GPU for all of them (a global gradient norm without one per weight)
  virtual double sum_squares_total(const std::vector<Tensor>& ts) {
    double s = 0.0;
    for (const Tensor& t : ts) s += sum_squares(t);
    return s;
  }
  // t *= s
  virtual void scale(const Tensor& t, float s) = 0;
};

// "cpu" or "cuda" (or "auto": CUDA when a device is present, else CPU with a warning).
std::unique_ptr<Backend> make_backend(const std::string& device);
std::unique_ptr<Backend> make_cpu_backend();
bool cuda_device_available();

}  // namespace gt
