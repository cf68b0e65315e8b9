#include "train/sampler.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/llama.h"

namespace gt {

int argmax_logit(const float* logits, int vocab) {
  int best = -1;
  for (int i = 0; i < vocab; ++i)
    if (std::isfinite(logits[i]) && (best < 0 || logits[i] > logits[best])) best = i;
  if (best < 0) fail("sampler: all {} logits are non-finite (NaN or inf); the checkpoint's weights are broken", vocab);
  return best;
}

Sampler::Sampler(const SamplerOptions& opts, uint64_t seed) : opts_(opts), rng_(seed) {
  if (std::isnan(opts_.temperature)) fail("--temperature is NaN; give a number >= 0 (0 = greedy)");
  if (opts_.top_k < 0) fail("--top-k {} is negative; give 0 (off) or a count >= 1", opts_.top_k);
  if (!(opts_.top_p > 0.0 && opts_.top_p <= 1.0))
    fail("--top-p {} is outside (0, 1]; give e.g. 0.9 (1 = off)", opts_.top_p);
}

std::vector<Candidate> Sampler::candidates(const float* logits, int vocab) const {
  if (greedy()) return {Candidate{argmax_logit(logits, vocab), 1.0}};
  const int top = argmax_logit(logits, vocab);
  const double inv_t = 1.0 / opts_.temperature;
  std::vector<Candidate> c;
  c.reserve(size_t(vocab));
  for (int i = 0; i < vocab; ++i) {
    if (!std::isfinite(logits[i])) continue;
    // exp((l - max) / t) in double: d <= 0, so nothing overflows, and a tiny
    // temperature sends every non-maximal token to exactly 0.
    const double d = double(logits[i]) - double(logits[top]);
    const double p = d == 0.0 ? 1.0 : std::exp(d * inv_t);
    if (p > 0.0) c.push_back({i, p});  // underflowed tokens can never be drawn
  }
  auto more_likely = [](const Candidate& a, const Candidate& b) {
    return a.prob != b.prob ? a.prob > b.prob : a.id < b.id;
  };
  if (opts_.top_k > 0 && size_t(opts_.top_k) < c.size()) {
    std::partial_sort(c.begin(), c.begin() + opts_.top_k, c.end(), more_likely);
    c.resize(size_t(opts_.top_k));
  } else {
    std::sort(c.begin(), c.end(), more_likely);
  }
  double sum = 0.0;
  for (const auto& x : c) sum += x.prob;
  for (auto& x : c) x.prob /= sum;
  if (opts_.top_p < 1.0) {
    // Smallest most-likely prefix with mass >= top_p (a relative 1e-12 slack
    // absorbs rounding, so p = 0.5 over {0.5, 0.3, 0.2} keeps one token).
    double cum = 0.0;
    size_t keep = 0;
    while (keep < c.size()) {
      cum += c[keep].prob;
      ++keep;
      if (cum >= opts_.top_p * (1.0 - 1e-12)) break;
    }
    c.resize(keep);
    for (auto& x : c) x.prob /= cum;
  }
  return c;
}

int Sampler::sample(const float* logits, int vocab) {
  const std::vector<Candidate> c = candidates(logits, vocab);
  if (c.size() == 1) return c[0].id;
  const double u = rng_.uniform();
  double cum = 0.0;
  for (const auto& x : c) {
    cum += x.prob;
    if (u < cum) return x.id;
  }
  return c.back().id;  // u within rounding of 1
}

std::vector<int32_t> generate_tokens(LlamaModel& model, const std::vector<int32_t>& context, int max_tokens,
                                     Sampler& sampler, int sample_vocab, int stop_id) {
  if (model.B() != 1) fail("generate_tokens: the model must have B = 1 (got {})", model.B());
  if (context.empty()) fail("generate_tokens: the context is empty; start with at least one token");
  const int T = model.T(), V = model.config().vocab_size;
  if (sample_vocab <= 0 || sample_vocab > V) sample_vocab = V;
  for (int32_t id : context)
    if (id < 0 || id >= V) fail("generate_tokens: token id {} is outside the model's vocabulary [0, {})", id, V);
  std::vector<int32_t> ctx = context, out;
  std::vector<int32_t> window(size_t(T) + 1, 0);
  for (int i = 0; i < max_tokens; ++i) {
    const size_t n = std::min(ctx.size(), size_t(T));
    std::fill(window.begin(), window.end(), 0);
    std::copy(ctx.end() - std::ptrdiff_t(n), ctx.end(), window.begin());
    model.forward(window.data());
    const std::vector<float> logits = model.logits();  // [T, V]
    const int next = sampler.sample(logits.data() + (n - 1) * size_t(V), sample_vocab);
    ctx.push_back(next);
    out.push_back(next);
    if (next == stop_id) break;
  }
  return out;
}

}  // namespace gt
