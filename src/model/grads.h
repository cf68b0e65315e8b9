// Gradient destinations for LlamaModel::backward.
//  - FullGradients: one arena with every parameter's gradient; backward
//    accumulates into it over micro-batches (all-at-once optimizer step).
//  - SharedGradBuffer (per-layer updates): one buffer the size of the largest
//    weight, reused; each gradient is handed on as soon as it is complete.
#pragma once
#include <functional>
#include <vector>

#include "core/arena.h"
#include "core/error.h"
#include "model/llama.h"

namespace gt {

inline std::vector<BufferSpec> full_grad_specs(const std::vector<ParamInfo>& params, DType dt) {
  std::vector<BufferSpec> s;
  for (auto& p : params) s.push_back({"grad." + p.name, dt, {p.numel()}});
  return s;
}
inline int64_t largest_param(const std::vector<ParamInfo>& params) {
  int64_t n = 0;
  for (auto& p : params) n = std::max(n, p.numel());
  return n;
}

class FullGradients final : public GradSink {
 public:
  FullGradients(Backend& be, const std::vector<ParamInfo>& params)
      : grads_(arena_.allocate(be, full_grad_specs(params, be.compute_dtype()))) {}
  Tensor grad_buffer(int p) override { return grads_[size_t(p)]; }
  bool accumulate(int) override { return accumulate_; }
  void grad_ready(int) override {}
  // false for the first micro-batch of a step (overwrite), true after.
  void set_accumulate(bool a) { accumulate_ = a; }
  const Tensor& grad(int p) const { return grads_[size_t(p)]; }
  const std::vector<Tensor>& all() const { return grads_; }  // in parameter order
  size_t bytes() const { return arena_.bytes(); }

 private:
  Arena arena_;
  std::vector<Tensor> grads_;
  bool accumulate_ = false;
};

class SharedGradBuffer final : public GradSink {
 public:
  using Consumer = std::function<void(int param, const Tensor& grad)>;
  // lent: a buffer the optimizer lends (Optimizer::lent_grad_buffer), used
  // instead of an allocation of our own when it is not empty.
  SharedGradBuffer(Backend& be, const std::vector<ParamInfo>& params, const Tensor& lent = {})
      : params_(params),
        buf_(lent.data ? lent : arena_.allocate(be, {{"grad.shared", be.compute_dtype(), {largest_param(params)}}})[0]) {
    GT_ASSERT(buf_.dtype == be.compute_dtype() && buf_.numel() >= largest_param(params));
  }
  // Per-layer GaLore: `takes` says whether param's gradient comes as factors this
  // micro-batch (Optimizer::takes_grad_factors), `c` receives them; the consumer
  // then gets an empty gradient at grad_ready.
  using TakesFactors = std::function<bool(int param)>;
  using FactorConsumer = std::function<void(int param, const Tensor& dy, const Tensor& x)>;
  void set_consumer(Consumer c) { consumer_ = std::move(c); }
  void set_factor_consumer(TakesFactors takes, FactorConsumer c) {
    takes_factors_ = std::move(takes);
    factor_consumer_ = std::move(c);
  }
  Tensor grad_buffer(int p) override {
    Tensor t = buf_;
    t.shape[0] = params_[size_t(p)].numel();
    return t;
  }
  bool accumulate(int) override { return false; }
  bool takes_factors(int p) override { return takes_factors_ && takes_factors_(p); }
  void grad_factors(int p, const Tensor& dy, const Tensor& x) override {
    factored_ = p;
    factor_consumer_(p, dy, x);
  }
  void grad_ready(int p) override {
    const bool factored = factored_ == p;
    factored_ = -1;
    consumer_(p, factored ? Tensor{} : grad_buffer(p));
  }
  size_t bytes() const { return arena_.bytes(); }

 private:
  std::vector<ParamInfo> params_;
  Arena arena_;
  Tensor buf_;
  Consumer consumer_;
  TakesFactors takes_factors_;
  FactorConsumer factor_consumer_;
  int factored_ = -1;  // the parameter whose factors were handed on and whose grad_ready is pending
};

}  // namespace gt
