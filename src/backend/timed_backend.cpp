#include "backend/timed_backend.h"

#include <algorithm>
#include <cstdio>
#include <type_traits>

namespace gt {

namespace {
std::string dims(const Tensor& t) {
  if (!t.data) return "-";
  std::string s;
  for (int i = 0; i < t.ndim; ++i) {
    if (i) s += 'x';
    s += std::to_string(t.dim(i));
  }
  return s;
}
// [rows, cols] of a matrix view: the last dim and the product of the others.
std::string as_matrix(const Tensor& t) {
  const int64_t cols = t.ndim ? t.dim(-1) : 1;
  return std::to_string(cols ? t.numel() / cols : 0) + "x" + std::to_string(cols);
}
}  // namespace

void TimedBackend::start(int max_ops) {
  GT_ASSERT(!timing_ && max_ops > 0);
  in_.timer_reserve(2 * max_ops);
  max_ops_ = max_ops;
  calls_.clear();
  calls_.reserve(size_t(max_ops));
  keys_.clear();
  untimed_ = 0;
  timing_ = true;
}

std::vector<OpTiming> TimedBackend::finish(double* span_ms) {
  GT_ASSERT(timing_);
  timing_ = false;
  in_.synchronize();
  if (untimed_)
    std::fprintf(stderr, "warning: op timing: %lld ops past the %d timed ones are not in the report\n",
                 (long long)untimed_, max_ops_);
  std::vector<OpTiming> out(keys_.size());
  for (size_t k = 0; k < keys_.size(); ++k) out[k].op = keys_[k].first, out[k].shape = keys_[k].second;
  for (size_t i = 0; i < calls_.size(); ++i) {
    OpTiming& t = out[size_t(calls_[i])];
    t.calls += 1;
    t.ms += in_.timer_ms(int(2 * i + 1)) - in_.timer_ms(int(2 * i));
  }
  if (span_ms) *span_ms = calls_.empty() ? 0.0 : in_.timer_ms(int(2 * calls_.size() - 1));
  std::stable_sort(out.begin(), out.end(), [](const OpTiming& a, const OpTiming& b) { return a.ms > b.ms; });
  calls_.clear();
  keys_.clear();
  return out;
}

template <class ShapeFn, class Run>
auto TimedBackend::timed(const char* op, ShapeFn shape, Run run) -> decltype(run()) {
  if (!timing_) return run();
  if (int(calls_.size()) >= max_ops_) {
    ++untimed_;
    return run();
  }
  std::pair<std::string, std::string> key{op, shape()};
  auto it = std::find(keys_.begin(), keys_.end(), key);  // a few dozen keys per step
  const int k = int(it - keys_.begin());
  if (it == keys_.end()) keys_.push_back(std::move(key));
  const int i = int(calls_.size());
  calls_.push_back(k);
  in_.timer_record(2 * i);
  if constexpr (std::is_void_v<decltype(run())>) {
    run();
    in_.timer_record(2 * i + 1);
  } else {
    auto result = run();
    in_.timer_record(2 * i + 1);
    return result;
  }
}

void TimedBackend::zero(const Tensor& t) {
  timed("zero", [&] { return dims(t); }, [&] { in_.zero(t); });
}
void TimedBackend::embedding_forward(const Tensor& out, const Tensor& tokens, const Tensor& wte) {
  timed("embedding_forward", [&] { return dims(out); }, [&] { in_.embedding_forward(out, tokens, wte); });
}
void TimedBackend::embedding_backward(const Tensor& dwte, const Tensor& dout, const Tensor& tokens) {
  timed("embedding_backward", [&] { return dims(dwte); }, [&] { in_.embedding_backward(dwte, dout, tokens); });
}
void TimedBackend::rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& inp, const Tensor& weight,
                                   float eps) {
  timed("rmsnorm_forward", [&] { return as_matrix(inp); },
        [&] { in_.rmsnorm_forward(out, rstd, inp, weight, eps); });
}
void TimedBackend::rmsnorm_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dout, const Tensor& inp,
                                    const Tensor& weight, const Tensor& rstd) {
  timed("rmsnorm_backward", [&] { return as_matrix(inp); },
        [&] { in_.rmsnorm_backward(dinp, dweight, dout, inp, weight, rstd); });
}
void TimedBackend::matmul_forward(const Tensor& out, const Tensor& inp, const Tensor& weight) {
  timed("matmul_forward", [&] { return as_matrix(out) + " <- " + as_matrix(inp); },
        [&] { in_.matmul_forward(out, inp, weight); });
}
void TimedBackend::matmul_forward_add(const Tensor& out, const Tensor& inp, const Tensor& weight,
                                      const Tensor& residual) {
  timed("matmul_forward_add", [&] { return as_matrix(out) + " <- " + as_matrix(inp); },
        [&] { in_.matmul_forward_add(out, inp, weight, residual); });
}
void TimedBackend::matmul_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dout, const Tensor& inp,
                                   const Tensor& weight, bool accumulate_dinp, bool accumulate_dweight) {
  // Which outputs it writes is part of the key: dinp only is one GEMM, dweight another.
  const char* op = dinp.data && dweight.data ? "matmul_backward" : dinp.data ? "matmul_backward_dinp"
                                                                              : "matmul_backward_dweight";
  timed(op, [&] { return as_matrix(dout) + " x " + as_matrix(inp); },
        [&] { in_.matmul_backward(dinp, dweight, dout, inp, weight, accumulate_dinp, accumulate_dweight); });
}
void TimedBackend::rope_forward(const Tensor& x, float theta) {
  timed("rope_forward", [&] { return dims(x); }, [&] { in_.rope_forward(x, theta); });
}
void TimedBackend::rope_backward(const Tensor& dx, float theta) {
  timed("rope_backward", [&] { return dims(dx); }, [&] { in_.rope_backward(dx, theta); });
}
void TimedBackend::attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k,
                                     const Tensor& v) {
  timed("attention_forward", [&] { return dims(q); }, [&] { in_.attention_forward(out, lse, q, k, v); });
}
void TimedBackend::attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout,
                                      const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                      const Tensor& lse, const Tensor& spare) {
  timed("attention_backward", [&] { return dims(q); },
        [&] { in_.attention_backward(dq, dk, dv, dout, q, k, v, out, lse, spare); });
}
void TimedBackend::swiglu_forward(const Tensor& out, const Tensor& gate, const Tensor& up) {
  timed("swiglu_forward", [&] { return as_matrix(out); }, [&] { in_.swiglu_forward(out, gate, up); });
}
void TimedBackend::swiglu_backward(const Tensor& dgate, const Tensor& dup, const Tensor& dout, const Tensor& gate,
                                   const Tensor& up) {
  timed("swiglu_backward", [&] { return as_matrix(dout); },
        [&] { in_.swiglu_backward(dgate, dup, dout, gate, up); });
}
void TimedBackend::classifier(const Tensor& losses, const Tensor& dx, const Tensor& dweight, const Tensor& x,
                              const Tensor& weight, const Tensor& targets, float dloss, bool accumulate_dweight,
                              const Tensor& logits) {
  timed(dx.data || dweight.data ? "classifier_with_grads" : "classifier",
        [&] { return as_matrix(x) + " x " + as_matrix(weight); },
        [&] { in_.classifier(losses, dx, dweight, x, weight, targets, dloss, accumulate_dweight, logits); });
}
void TimedBackend::residual_add(const Tensor& out, const Tensor& a, const Tensor& b) {
  timed("residual_add", [&] { return as_matrix(out); }, [&] { in_.residual_add(out, a, b); });
}
double TimedBackend::sum_squares(const Tensor& t) {
  return timed("sum_squares", [&] { return dims(t); }, [&] { return in_.sum_squares(t); });
}
double TimedBackend::sum_squares_total(const std::vector<Tensor>& ts) {
  return timed("sum_squares_total", [&] { return std::to_string(ts.size()) + " tensors"; },
               [&] { return in_.sum_squares_total(ts); });
}
void TimedBackend::scale(const Tensor& t, float s) {
  timed("scale", [&] { return dims(t); }, [&] { in_.scale(t, s); });
}

}  // namespace gt
