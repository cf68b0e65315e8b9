// Next-token sampling for galore-generate: temperature, top-k and top-p
// (nucleus) filtering, then a draw from a seeded gt::Rng, so the same seed and
// the same logits always give the same token.
//
// Order (as in Hugging Face generate): logits / temperature -> softmax ->
// keep the top_k most likely -> keep the smallest most-likely prefix whose
// mass is >= top_p -> renormalise -> draw.
//   temperature <= 0      greedy: the argmax (lowest id on ties), no draw
//   top_k = 0             no top-k filter; top_k = 1 is greedy
//   top_p >= 1            no top-p filter
// Non-finite logits (NaN, -inf) never get sampled; all non-finite is an error.
#pragma once
#include <cstdint>
#include <vector>

#include "core/rng.h"

namespace gt {

class LlamaModel;

struct SamplerOptions {
  double temperature = 1.0;  // <= 0: greedy
  int top_k = 0;             // 0: off
  double top_p = 1.0;        // (0, 1]; 1: off
};

struct Candidate {
  int id;
  double prob;  // renormalised over the kept candidates
};

class Sampler {
 public:
  // Throws gt::Error for temperature NaN, top_k < 0 or top_p outside (0, 1].
  Sampler(const SamplerOptions& opts, uint64_t seed);

  // Tokens that may be drawn from `logits[vocab]`, most likely first (ties:
  // lower id first), with probabilities that sum to 1. Greedy gives one.
  std::vector<Candidate> candidates(const float* logits, int vocab) const;

  // Draws the next token id (the Rng advances only when more than one candidate is left).
  int sample(const float* logits, int vocab);

  const SamplerOptions& options() const { return opts_; }
  bool greedy() const { return opts_.temperature <= 0.0 || opts_.top_k == 1; }

 private:
  SamplerOptions opts_;
  Rng rng_;
};

// Index of the largest finite logit (lowest index on ties); throws if none is finite.
int argmax_logit(const float* logits, int vocab);

// Autoregressive generation without a KV cache: for each new token the
// context is placed at positions 0..n-1 of the model's [1, T] window (the rest
// padded with token 0, which causal attention hides from position n-1), the
// forward is rerun and the logits at n-1 are sampled. Contexts longer than T
// keep their last T tokens. `model` needs B = 1 and logits_rows = 0.
// Stops after max_tokens or when stop_id (>= 0) is drawn (it is included).
// Only ids < sample_vocab are drawn (the tokenizer's vocabulary).
std::vector<int32_t> generate_tokens(LlamaModel& model, const std::vector<int32_t>& context, int max_tokens,
                                     Sampler& sampler, int sample_vocab, int stop_id = -1);

}  // namespace gt
