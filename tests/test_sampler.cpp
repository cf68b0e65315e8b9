// Next-token sampler (galore-generate): determinism by seed, greedy edges
// (temperature 0 / -> 0, top-k = 1), top-k and top-p (nucleus) filtering,
// draw frequencies, non-finite logits and bad options; and generate_tokens on
// a small CPU model: padding after the context does not change its logits,
// greedy generation matches exact-length forwards, seeds, sliding window, stop id.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <set>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "model/llama.h"
#include "train/sampler.h"

using namespace gt;

namespace {
// Logits whose softmax is exactly `probs` (up to rounding).
std::vector<float> logits_for(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(float(std::log(p)));
  return l;
}

std::vector<float> random_logits(int V, uint64_t seed, double scale = 2.0) {
  Rng r(seed);
  std::vector<float> l(static_cast<size_t>(V));
  for (auto& x : l) x = float(scale * r.normal());
  return l;
}

std::vector<int> draw(Sampler& s, const std::vector<float>& l, int n) {
  std::vector<int> out;
  for (int i = 0; i < n; ++i) out.push_back(s.sample(l.data(), int(l.size())));
  return out;
}

SamplerOptions opts(double t, int k = 0, double p = 1.0) {
  SamplerOptions o;
  o.temperature = t;
  o.top_k = k;
  o.top_p = p;
  return o;
}
}  // namespace

TEST(Sampler, SameSeedSameTokensDifferentSeedDifferentTokens) {
  const auto l = random_logits(500, 1, 1.0);
  for (const auto& o : {opts(1.0), opts(0.7, 50), opts(1.2, 0, 0.9), opts(1.0, 100, 0.95)}) {
    Sampler a(o, 123), b(o, 123), c(o, 124);
    const auto ta = draw(a, l, 200), tb = draw(b, l, 200), tc = draw(c, l, 200);
    EXPECT_EQ(ta, tb);
    EXPECT_NE(ta, tc);
  }
}

TEST(Sampler, TopKOneIsArgmaxWhateverTheSeedOrTemperature) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const auto l = random_logits(1000, seed);
    const int want = int(std::max_element(l.begin(), l.end()) - l.begin());
    for (double t : {0.1, 1.0, 5.0}) {
      Sampler s(opts(t, 1), seed * 7 + 1);
      EXPECT_TRUE(s.greedy());
      for (int i = 0; i < 5; ++i) EXPECT_EQ(s.sample(l.data(), int(l.size())), want);
    }
  }
}

TEST(Sampler, TemperatureZeroIsGreedyAndTinyTemperatureConvergesToArgmax) {
  const auto l = random_logits(300, 5);
  const int want = int(std::max_element(l.begin(), l.end()) - l.begin());
  Sampler zero(opts(0.0), 1);
  EXPECT_TRUE(zero.greedy());
  EXPECT_EQ(zero.sample(l.data(), 300), want);
  Sampler negative(opts(-1.0), 1);
  EXPECT_EQ(negative.sample(l.data(), 300), want);
  for (double t : {1e-6, 1e-30, 1e-300, std::numeric_limits<double>::denorm_min()}) {
    Sampler tiny(opts(t), 9);
    EXPECT_FALSE(tiny.greedy());
    const auto c = tiny.candidates(l.data(), 300);
    ASSERT_EQ(c.size(), 1u) << "temperature " << t;
    EXPECT_EQ(c[0].id, want);
    EXPECT_DOUBLE_EQ(c[0].prob, 1.0);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(tiny.sample(l.data(), 300), want);
  }
}

TEST(Sampler, GreedyTiesPickTheLowestId) {
  const std::vector<float> l = {0.5f, 2.0f, -1.0f, 2.0f, 1.0f};
  EXPECT_EQ(argmax_logit(l.data(), 5), 1);
  Sampler g(opts(0.0), 3);
  EXPECT_EQ(g.sample(l.data(), 5), 1);
  // Tiny temperature: both maxima stay, equally likely, lower id first.
  Sampler tiny(opts(1e-12), 3);
  const auto c = tiny.candidates(l.data(), 5);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].id, 1);
  EXPECT_EQ(c[1].id, 3);
  EXPECT_DOUBLE_EQ(c[0].prob, 0.5);
}

TEST(Sampler, TemperatureOneKeepsTheSoftmax) {
  const std::vector<double> p = {0.1, 0.4, 0.2, 0.3};
  const auto l = logits_for(p);
  Sampler s(opts(1.0), 1);
  const auto c = s.candidates(l.data(), 4);
  ASSERT_EQ(c.size(), 4u);
  const int order[] = {1, 3, 2, 0};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(c[size_t(i)].id, order[i]);
    EXPECT_NEAR(c[size_t(i)].prob, p[size_t(order[i])], 1e-6);
  }
  // Temperature 2 flattens: p_i ~ sqrt(p_i).
  Sampler hot(opts(2.0), 1);
  const auto h = hot.candidates(l.data(), 4);
  double z = 0;
  for (double x : p) z += std::sqrt(x);
  EXPECT_NEAR(h[0].prob, std::sqrt(0.4) / z, 1e-6);
}

TEST(Sampler, TopKKeepsTheKMostLikelyRenormalised) {
  const std::vector<double> p = {0.05, 0.4, 0.1, 0.3, 0.15};
  const auto l = logits_for(p);
  Sampler s(opts(1.0, 2), 1);
  const auto c = s.candidates(l.data(), 5);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].id, 1);
  EXPECT_EQ(c[1].id, 3);
  EXPECT_NEAR(c[0].prob, 0.4 / 0.7, 1e-6);
  EXPECT_NEAR(c[1].prob, 0.3 / 0.7, 1e-6);
  // k larger than the vocabulary keeps everything.
  Sampler all(opts(1.0, 50), 1);
  EXPECT_EQ(all.candidates(l.data(), 5).size(), 5u);
  Sampler draws(opts(1.0, 2), 11);
  for (int t : draw(draws, l, 500)) EXPECT_TRUE(t == 1 || t == 3) << t;
}

TEST(Sampler, TopPKeepsTheSmallestSetWithMassAtLeastP) {
  const std::vector<double> p = {0.05, 0.5, 0.15, 0.3};  // sorted: 1 (0.5), 3 (0.3), 2 (0.15), 0 (0.05)
  const auto l = logits_for(p);
  struct Case { double top_p; size_t keep; };
  // (float logits carry ~1e-7 relative error, so the cases stay off the exact boundaries)
  for (const Case& k : {Case{0.01, 1}, Case{0.4999, 1}, Case{0.5001, 2}, Case{0.7999, 2}, Case{0.8001, 3},
                        Case{0.9499, 3}, Case{0.9501, 4}, Case{1.0, 4}}) {
    Sampler s(opts(1.0, 0, k.top_p), 1);
    const auto c = s.candidates(l.data(), 4);
    ASSERT_EQ(c.size(), k.keep) << "top_p " << k.top_p;
    double mass = 0, sum = 0;
    for (const auto& x : c) {
      mass += p[size_t(x.id)];
      sum += x.prob;
    }
    EXPECT_GE(mass, k.top_p - 1e-6);
    // Smallest: without the least likely kept token the mass is below p.
    if (c.size() > 1) EXPECT_LT(mass - p[size_t(c.back().id)], k.top_p);
    EXPECT_NEAR(sum, 1.0, 1e-12);
    EXPECT_EQ(c[0].id, 1);
  }
  // Exact boundary: two equally likely tokens, p = 0.5 keeps only the first.
  const std::vector<float> even = {3.0f, 3.0f};
  Sampler half(opts(1.0, 0, 0.5), 1);
  const auto h = half.candidates(even.data(), 2);
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].id, 0);
  // Draws come only from the nucleus.
  Sampler s(opts(1.0, 0, 0.79), 5);
  for (int t : draw(s, l, 500)) EXPECT_TRUE(t == 1 || t == 3) << t;
}

TEST(Sampler, TopKThenTopP) {
  const std::vector<double> p = {0.4, 0.3, 0.2, 0.1};
  const auto l = logits_for(p);
  // top-k 3 renormalises to {4/9, 3/9, 2/9}; top-p 0.7 then needs 4/9 + 3/9 = 7/9.
  Sampler s(opts(1.0, 3, 0.7), 1);
  const auto c = s.candidates(l.data(), 4);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_NEAR(c[0].prob, 4.0 / 7.0, 1e-6);
}

TEST(Sampler, DrawFrequenciesFollowTheProbabilities) {
  const std::vector<double> p = {0.5, 0.3, 0.2};
  const auto l = logits_for(p);
  Sampler s(opts(1.0), 2024);
  std::vector<int> count(3, 0);
  const int n = 40000;
  for (int t : draw(s, l, n)) count[size_t(t)]++;
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(double(count[size_t(i)]) / n, p[size_t(i)], 0.01) << i;
}

TEST(Sampler, NonFiniteLogitsAreNeverDrawnAndAllNonFiniteIsAnError) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const std::vector<float> l = {nan, 0.0f, -inf, 0.0f, inf};
  Sampler s(opts(1.0), 4);
  std::set<int> seen;
  for (int t : draw(s, l, 200)) seen.insert(t);
  EXPECT_EQ(seen, (std::set<int>{1, 3}));
  const std::vector<float> bad = {nan, -inf, inf};
  EXPECT_THROW(s.sample(bad.data(), 3), Error);
  Sampler g(opts(0.0), 4);
  EXPECT_THROW(g.sample(bad.data(), 3), Error);
}

TEST(Sampler, BadOptionsAreErrors) {
  EXPECT_THROW(Sampler(opts(std::nan("")), 1), Error);
  EXPECT_THROW(Sampler(opts(1.0, -1), 1), Error);
  EXPECT_THROW(Sampler(opts(1.0, 0, 0.0), 1), Error);
  EXPECT_THROW(Sampler(opts(1.0, 0, 1.5), 1), Error);
  EXPECT_NO_THROW(Sampler(opts(1.0, 0, 1.0), 1));
  try {
    Sampler(opts(1.0, 0, 2.0), 1);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--top-p"), std::string::npos);
  }
}

// ---- generate_tokens on a small CPU model ----
namespace {
ModelConfig small_model() {
  ModelConfig c;
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_layers = 2;
  c.num_heads = 4;
  c.max_seq_len = 16;
  c.init_std = 0.3;  // large weights: peaked, context-dependent logits
  return c;
}
const std::vector<int32_t> kContext = {5, 17, 42, 3, 60};
}  // namespace

TEST(Generate, PaddingAfterTheContextDoesNotChangeItsLogits) {
  auto be = make_cpu_backend();
  const int n = int(kContext.size()), V = 64;
  LlamaModel exact(small_model(), *be, 1, n), padded(small_model(), *be, 1, 12);
  exact.init_random(7);
  padded.init_random(7);
  std::vector<int32_t> a(kContext), b(kContext);
  a.push_back(0);
  b.resize(13, 0);
  for (int pad : {0, 9, 63}) {
    std::fill(b.begin() + n, b.end(), pad);
    exact.forward(a.data());
    padded.forward(b.data());
    const auto la = exact.logits(), lb = padded.logits();
    for (int v = 0; v < V; ++v)
      ASSERT_NEAR(la[size_t(n - 1) * V + v], lb[size_t(n - 1) * V + v], 1e-5) << "pad " << pad << " v " << v;
  }
}

TEST(Generate, GreedyMatchesExactLengthForwards) {
  auto be = make_cpu_backend();
  LlamaModel model(small_model(), *be, 1, 16);
  model.init_random(11);
  Sampler greedy(opts(0.0), 1);
  const auto got = generate_tokens(model, kContext, 8, greedy, 64);
  ASSERT_EQ(got.size(), 8u);
  std::vector<int32_t> ctx = kContext;
  for (size_t i = 0; i < got.size(); ++i) {
    const int n = int(ctx.size());
    LlamaModel m(small_model(), *be, 1, n);
    m.init_random(11);
    std::vector<int32_t> t = ctx;
    t.push_back(0);
    m.forward(t.data());
    const auto l = m.logits();
    EXPECT_EQ(got[i], argmax_logit(l.data() + size_t(n - 1) * 64, 64)) << "token " << i;
    ctx.push_back(got[i]);
  }
}

TEST(Generate, SeedsStopIdSampleVocabAndSlidingWindow) {
  auto be = make_cpu_backend();
  LlamaModel model(small_model(), *be, 1, 8);
  model.init_random(3);
  auto run = [&](const std::vector<int32_t>& ctx, uint64_t seed, int n, int vocab = 64, int stop = -1) {
    Sampler s(opts(1.5), seed);
    return generate_tokens(model, ctx, n, s, vocab, stop);
  };
  const auto a = run(kContext, 1, 20), b = run(kContext, 1, 20), c = run(kContext, 2, 20);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  // The stop id ends generation (and is returned).
  const auto stopped = run(kContext, 1, 20, 64, a[3]);
  ASSERT_LE(stopped.size(), 4u);
  EXPECT_EQ(stopped.back(), a[3]);
  // Only ids below sample_vocab are drawn.
  for (int32_t t : run(kContext, 4, 30, 10)) EXPECT_LT(t, 10);
  // Longer than T = 8: only the last 8 tokens matter.
  std::vector<int32_t> longer = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  const std::vector<int32_t> tail(longer.end() - 8, longer.end());
  EXPECT_EQ(run(longer, 5, 12), run(tail, 5, 12));
  // Bad inputs.
  Sampler s(opts(1.0), 1);
  EXPECT_THROW(generate_tokens(model, {}, 3, s, 64), Error);
  EXPECT_THROW(generate_tokens(model, {64}, 3, s, 64), Error);
}
