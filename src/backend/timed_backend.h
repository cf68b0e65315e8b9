// A Backend that forwards every call to another one and, while a timing is
// open, brackets each op with the inner backend's stream-ordered stamps
// (timer_record: CUDA events on the GPU, no host sync; a host clock on the
// CPU). galore-bench --op-report gives it to the model for one step and
// prints the time per op and shape: the kernels' share of a step, to set
// beside --gemm-report's GEMMs and --profile's phases.
//
// The model's ops only: the optimizer's kernels run on the inner backend and
// fall in the gaps between ops (--profile splits them). Uses the inner
// backend's timer slots, so it must not be open during a profiled step.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace gt {

// One op and shape over a timed stretch.
struct OpTiming {
  std::string op;     // "matmul_forward", "attention_backward", ...
  std::string shape;  // the main operand's dims, "4096x11008 <- 4096x4096" for a matmul
  int calls = 0;
  double ms = 0.0;
};

class TimedBackend final : public Backend {
 public:
  explicit TimedBackend(Backend& inner) : in_(inner) {}

  // Times ops from now on, up to max_ops of them (the timer slots are
  // reserved here: call it outside a step). Ops past max_ops run untimed and
  // finish() warns about them.
  void start(int max_ops);
  // Ends the timing, synchronizes, and returns the totals per (op, shape),
  // the longest first. *span_ms (if given): first op's start to the last op's end.
  std::vector<OpTiming> finish(double* span_ms = nullptr);
  bool timing() const { return timing_; }

  Device device() const override { return in_.device(); }
  DType compute_dtype() const override { return in_.compute_dtype(); }
  std::string name() const override { return in_.name(); }
  void* alloc(size_t bytes) override { return in_.alloc(bytes); }
  void release(void* p) override { in_.release(p); }
  void upload(void* dst, const void* src, size_t bytes) override { in_.upload(dst, src, bytes); }
  void download(void* dst, const void* src, size_t bytes) override { in_.download(dst, src, bytes); }
  void synchronize() override { in_.synchronize(); }
  size_t memory_in_use() const override { return in_.memory_in_use(); }
  double peak_flops() const override { return in_.peak_flops(); }
  void timer_reserve(int n) override { in_.timer_reserve(n); }
  void timer_record(int i) override { in_.timer_record(i); }
  double timer_ms(int i) override { return in_.timer_ms(i); }
  void upload_f32(const Tensor& dst, const float* src) override { in_.upload_f32(dst, src); }
  void download_f32(float* dst, const Tensor& src) override { in_.download_f32(dst, src); }

  void zero(const Tensor& t) override;
  void embedding_forward(const Tensor& out, const Tensor& tokens, const Tensor& wte) override;
  void embedding_backward(const Tensor& dwte, const Tensor& dout, const Tensor& tokens) override;
  void rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& inp, const Tensor& weight,
                       float eps) override;
  void rmsnorm_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dout, const Tensor& inp,
                        const Tensor& weight, const Tensor& rstd) override;
  void matmul_forward(const Tensor& out, const Tensor& inp, const Tensor& weight) override;
  void matmul_forward_add(const Tensor& out, const Tensor& inp, const Tensor& weight,
                          const Tensor& residual) override;
  void matmul_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dout, const Tensor& inp,
                       const Tensor& weight, bool accumulate_dinp, bool accumulate_dweight) override;
  void rope_forward(const Tensor& x, float theta) override;
  void rope_backward(const Tensor& dx, float theta) override;
  void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k,
                         const Tensor& v) override;
  void attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout, const Tensor& q,
                          const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                          const Tensor& spare) override;
  void swiglu_forward(const Tensor& out, const Tensor& gate, const Tensor& up) override;
  void swiglu_backward(const Tensor& dgate, const Tensor& dup, const Tensor& dout, const Tensor& gate,
                       const Tensor& up) override;
  void classifier(const Tensor& losses, const Tensor& dx, const Tensor& dweight, const Tensor& x,
                  const Tensor& weight, const Tensor& targets, float dloss, bool accumulate_dweight,
                  const Tensor& logits) override;
  void residual_add(const Tensor& out, const Tensor& a, const Tensor& b) override;
  double sum_squares(const Tensor& t) override;
  double sum_squares_total(const std::vector<Tensor>& ts) override;
  void scale(const Tensor& t, float s) override;

 private:
  // Stamps before and after one op, keyed by its name and shape (formatted
  // only while timing).
  template <class ShapeFn, class Run>
  auto timed(const char* op, ShapeFn shape, Run run) -> decltype(run());

  Backend& in_;
  bool timing_ = false;
  int max_ops_ = 0;
  int64_t untimed_ = 0;
  std::vector<int> calls_;  // keys_ index of each timed call, in issue order: stamps 2i and 2i+1
  std::vector<std::pair<std::string, std::string>> keys_;  // (op, shape)
};

}  // namespace gt
