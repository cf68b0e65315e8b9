// Whole-model checks on the CPU reference: finite-difference gradients of
// every parameter (GQA, odd sizes, T=1), per-layer sink == full gradients,
// and HF parity through the galore-parity tool.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "backend/backend.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "fd_util.h"
#include "model/grads.h"
#include "model/llama.h"

using namespace gt;
using namespace gt::test;

namespace {
struct Shape { int V, C, I, L, NH, NKV, B, T; };
void PrintTo(const Shape& s, std::ostream* os) {
  *os << "V" << s.V << "_C" << s.C << "_I" << s.I << "_L" << s.L << "_NH" << s.NH << "_KV" << s.NKV << "_B" << s.B
      << "_T" << s.T;
}

ModelConfig make_cfg(const Shape& s) {
  ModelConfig c;
  c.vocab_size = s.V;
  c.hidden_size = s.C;
  c.intermediate_size = s.I;
  c.num_layers = s.L;
  c.num_heads = s.NH;
  c.num_kv_heads = s.NKV;
  c.max_seq_len = s.T;
  c.init_std = 0.3;  // large weights so every gradient carries signal
  return c;
}

std::vector<int32_t> random_tokens(int B, int T, int V, uint64_t seed) {
  Rng r(seed);
  std::vector<int32_t> t(size_t(B) * (T + 1));
  for (auto& x : t) x = int32_t(r.below(uint64_t(V)));
  return t;
}
}  // namespace

class ModelGrad : public ::testing::TestWithParam<Shape> {};

TEST_P(ModelGrad, EveryParameterMatchesFiniteDifferences) {
  const Shape s = GetParam();
  auto be = make_cpu_backend();
  LlamaModel model(make_cfg(s), *be, s.B, s.T);
  model.init_random(3);
  {  // norm weights away from 1 so their gradients are generic
    Rng r(9);
    for (int i = 0; i < model.num_params(); ++i)
      if (model.params()[size_t(i)].kind == ParamKind::Norm) {
        auto w = model.get_weight(i);
        for (auto& x : w) x = 1.0f + 0.2f * float(r.normal());
        model.set_weight(i, w.data());
      }
  }
  auto tokens = random_tokens(s.B, s.T, s.V, 11);
  model.forward(tokens.data());
  FullGradients grads(*be, model.params());
  model.backward(grads);
  for (int i = 0; i < model.num_params(); ++i) {
    auto w = model.get_weight(i);
    auto loss = [&] {
      model.set_weight(i, w.data());
      return model.forward(tokens.data());
    };
    // Gradients are in the padded in-memory shape (llama_ffn_width); the
    // padding's must be exactly zero.
    const ParamInfo& p = model.params()[size_t(i)];
    const float* padded = grads.grad(i).f32();
    std::vector<float> g(size_t(p.hf_numel()));
    unpad_param(p, sizeof(float), padded, g.data());
    ASSERT_EQ(padding_abs_sum(p, padded), 0.0) << p.name;
    const double err = fd_rel_error(loss, w.data(), w.size(), g.data(), 12, 5e-3f);
    model.set_weight(i, w.data());
    EXPECT_LT(err, 5e-3) << p.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, ModelGrad,
                         ::testing::Values(Shape{23, 16, 36, 2, 4, 4, 2, 6},   // MHA
                                           Shape{17, 24, 41, 2, 4, 2, 2, 5},   // GQA, odd sizes
                                           Shape{13, 12, 20, 1, 2, 1, 3, 1},   // T = 1, MQA
                                           Shape{11, 16, 8, 2, 2, 2, 2, 3}));  // MLP narrower than C

TEST(Model, SharedBufferSinkSeesTheSameGradients) {
  const Shape s{19, 16, 28, 2, 4, 2, 2, 5};
  auto be = make_cpu_backend();
  LlamaModel model(make_cfg(s), *be, s.B, s.T);
  model.init_random(5);
  auto tokens = random_tokens(s.B, s.T, s.V, 2);
  model.forward(tokens.data());
  FullGradients full(*be, model.params());
  model.backward(full);
  SharedGradBuffer shared(*be, model.params());
  std::vector<int> order;
  shared.set_consumer([&](int p, const Tensor& g) {
    order.push_back(p);
    const float* a = g.f32();
    const float* b = full.grad(p).f32();
    for (int64_t k = 0; k < g.numel(); ++k) ASSERT_EQ(a[k], b[k]) << model.params()[size_t(p)].name;
  });
  model.forward(tokens.data());  // backward consumes the forward's activations (gate/up in place)
  model.backward(shared);
  EXPECT_EQ(int(order.size()), model.num_params());  // every weight exactly once
  EXPECT_EQ(order.front(), model.num_params() - 1);  // lm_head first
  EXPECT_EQ(order.back(), 0);                        // embeddings last
}

// A training forward that runs the lm_head backward in its pass over the
// logits (head_sink) gives the same loss and bit-identical gradients as
// backward doing it, with and without recompute and a chunked logits
// workspace, for accumulation (scale 0.5, second micro-batch) too; the
// gradient reaches the sink only in backward, and backward must get the same
// sink and scale.
TEST(Model, LmHeadBackwardInForwardIsBitIdentical) {
  const Shape s{19, 16, 28, 2, 4, 2, 2, 5};
  for (bool recompute : {false, true}) {
    SCOPED_TRACE(recompute ? "recompute" : "plain");
    auto be = make_cpu_backend();
    LlamaModel a(make_cfg(s), *be, s.B, s.T, 3, recompute), b(make_cfg(s), *be, s.B, s.T, 3, recompute);
    a.init_random(6);
    b.init_random(6);
    FullGradients ga(*be, a.params()), gb(*be, b.params());
    for (int micro = 0; micro < 2; ++micro) {
      auto tokens = random_tokens(s.B, s.T, s.V, 11 + uint64_t(micro));
      ga.set_accumulate(micro > 0);
      gb.set_accumulate(micro > 0);
      const double la = a.forward(tokens.data());
      a.backward(ga, 0.5f);
      const double lb = b.forward(tokens.data(), &gb, 0.5f);
      EXPECT_EQ(la, lb);
      b.backward(gb, 0.5f);
    }
    for (int p = 0; p < a.num_params(); ++p)
      ASSERT_EQ(0, std::memcmp(ga.grad(p).data, gb.grad(p).data, ga.grad(p).nbytes())) << a.params()[size_t(p)].name;
    // per-layer sink: lm_head's gradient is handed on by backward, first
    SharedGradBuffer shared(*be, b.params());
    std::vector<int> order;
    shared.set_consumer([&](int p, const Tensor&) { order.push_back(p); });
    auto tokens = random_tokens(s.B, s.T, s.V, 3);
    b.forward(tokens.data(), &shared, 1.0f);
    EXPECT_TRUE(order.empty()) << "forward must not hand on a gradient";
    b.backward(shared, 1.0f);
    ASSERT_EQ(int(order.size()), b.num_params());
    EXPECT_EQ(order.front(), b.num_params() - 1);
    b.forward(tokens.data(), &shared, 1.0f);
    EXPECT_THROW(b.backward(shared, 0.5f), Error) << "another scale than forward's";
  }
}

TEST(Model, PaddedWeightsLeaveInTheHfShape) {
  // I = 20 is held as 24: values and raw bytes come out in the HF shape and
  // go back in exactly; the padding stays zero in memory.
  const Shape s{13, 12, 20, 1, 2, 1, 1, 4};
  auto be = make_cpu_backend();
  LlamaModel a(make_cfg(s), *be, s.B, s.T), b(make_cfg(s), *be, s.B, s.T);
  a.init_random(7);
  int padded = 0;
  for (int i = 0; i < a.num_params(); ++i) {
    const ParamInfo& p = a.params()[size_t(i)];
    if (p.numel() == p.hf_numel()) continue;
    ++padded;
    ASSERT_EQ(a.weight_file_bytes(i), size_t(p.hf_numel()) * sizeof(float)) << p.name;
    std::vector<char> bytes(a.weight_file_bytes(i));
    a.download_weight_bytes(i, bytes.data());
    b.upload_weight_bytes(i, bytes.data());
    EXPECT_EQ(a.get_weight(i), b.get_weight(i)) << p.name;
    EXPECT_EQ(0, std::memcmp(bytes.data(), a.get_weight(i).data(), bytes.size())) << p.name;
    EXPECT_EQ(padding_abs_sum(p, b.weight(i).f32()), 0.0) << p.name;
  }
  EXPECT_EQ(padded, 3);  // gate, up, down
}

TEST(Model, RecomputeGivesBitIdenticalGradientsWithLessMemory) {
  const Shape s{19, 16, 28, 3, 4, 2, 2, 5};
  auto be = make_cpu_backend();
  LlamaModel plain(make_cfg(s), *be, s.B, s.T, 0, false), recompute(make_cfg(s), *be, s.B, s.T, 0, true);
  plain.init_random(4);
  recompute.init_random(4);
  auto tokens = random_tokens(s.B, s.T, s.V, 8);
  EXPECT_EQ(plain.forward(tokens.data()), recompute.forward(tokens.data()));
  FullGradients ga(*be, plain.params()), gb(*be, recompute.params());
  plain.backward(ga);
  recompute.backward(gb);
  for (int p = 0; p < plain.num_params(); ++p)
    ASSERT_EQ(0, std::memcmp(ga.grad(p).data, gb.grad(p).data, ga.grad(p).nbytes())) << plain.params()[size_t(p)].name;
  EXPECT_LT(recompute.activation_bytes(), plain.activation_bytes());
  EXPECT_EQ(recompute.activation_bytes(),
            arena_bytes(llama_activation_specs(make_cfg(s), s.B, s.T, DType::F32, s.B * s.T, true)));
}

// The finite-difference shapes above cover both sides of llama_scratch_overlay
// (dq/dk/dv over gate/up, or buffers of their own), the recompute tests the
// logits over gate: here, which is which, and that the 7B run uses both.
TEST(Model, BackwardScratchOverlaysDeadMlpBuffersWhenItFits) {
  auto has = [](const std::vector<BufferSpec>& specs, const std::string& name) {
    for (const BufferSpec& b : specs)
      if (b.name == name) return true;
    return false;
  };
  ModelConfig m7 = make_cfg({32000, 4096, 11008, 32, 32, 32, 16, 256});
  for (bool recompute : {true, false}) {
    const LlamaScratchOverlay o = llama_scratch_overlay(m7, 16, 256, DType::BF16, logits_workspace_rows(4096), recompute);
    EXPECT_TRUE(o.dqkv_over_mlp);
    EXPECT_EQ(o.dv_offset, 4096 * 4096);
    EXPECT_EQ(o.logits_over_gate, recompute);
    const auto specs = llama_activation_specs(m7, 16, 256, DType::BF16, logits_workspace_rows(4096), recompute);
    EXPECT_FALSE(has(specs, "dq") || has(specs, "dk") || has(specs, "dv"));
    EXPECT_EQ(has(specs, "logits"), !recompute);
  }
  struct Case { Shape s; bool dqkv; };
  for (const Case& c : {Case{{23, 16, 36, 2, 4, 4, 2, 6}, true}, Case{{17, 24, 41, 2, 4, 2, 2, 5}, true},
                        Case{{13, 12, 20, 1, 2, 1, 3, 1}, false},  // dv after dk's 256-byte alignment does not fit
                        Case{{11, 16, 8, 2, 2, 2, 2, 3}, false}}) {
    const LlamaScratchOverlay o = llama_scratch_overlay(make_cfg(c.s), c.s.B, c.s.T, DType::F32, 0, false);
    EXPECT_EQ(o.dqkv_over_mlp, c.dqkv) << ::testing::PrintToString(c.s);
    EXPECT_EQ(has(llama_activation_specs(make_cfg(c.s), c.s.B, c.s.T, DType::F32, 0, false), "dq"), !c.dqkv);
  }
  // logits [N, V] fp32 do not fit over gate [N, I] when V > I: a buffer of their own
  const Shape wide{40, 16, 28, 2, 4, 2, 2, 5};
  EXPECT_FALSE(llama_scratch_overlay(make_cfg(wide), 2, 5, DType::F32, 0, true).logits_over_gate);
  EXPECT_TRUE(llama_scratch_overlay(make_cfg(wide), 2, 5, DType::F32, 0, true).dqkv_over_mlp);
}

TEST(Model, ForwardIsDeterministicAndInitMatchesGaloreConvention) {
  const Shape s{29, 32, 64, 2, 4, 4, 2, 8};
  auto be = make_cpu_backend();
  ModelConfig cfg = make_cfg(s);
  cfg.init_std = 0.02;
  LlamaModel a(cfg, *be, s.B, s.T), b(cfg, *be, s.B, s.T);
  a.init_random(1);
  b.init_random(1);
  auto tokens = random_tokens(s.B, s.T, s.V, 3);
  EXPECT_EQ(a.forward(tokens.data()), b.forward(tokens.data()));
  for (int i = 0; i < a.num_params(); ++i) {
    auto w = a.get_weight(i);
    double sum = 0, sq = 0;
    for (float x : w) sum += x, sq += double(x) * x;
    const double mean = sum / w.size(), std = std::sqrt(sq / w.size() - mean * mean);
    if (a.params()[size_t(i)].kind == ParamKind::Norm) {
      EXPECT_EQ(mean, 1.0);
    } else {
      EXPECT_NEAR(std, 0.02, 0.004) << a.params()[size_t(i)].name;
    }
  }
}

TEST(Model, ParityToolPassesOnTheHfFixture) {
  const char* bin = std::getenv("GALORE_BIN");
  ASSERT_NE(bin, nullptr) << "run through ctest (GALORE_BIN is set there)";
  const std::string cmd = std::string(bin) + "/galore-parity " + GALORE_SOURCE_DIR +
                          "/tests/fixtures/tiny_llama > /tmp/galore_parity_test.json";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << "see /tmp/galore_parity_test.json";
}

// A fixture whose tokens are not vocabulary ids (out of range, or not integers
// in a float tensor) is refused with one line that names reference.safetensors.
TEST(Model, ParityToolRefusesTokensOutsideTheVocabulary) {
  const char* bin = std::getenv("GALORE_BIN");
  ASSERT_NE(bin, nullptr) << "run through ctest (GALORE_BIN is set there)";
  const std::string src = std::string(GALORE_SOURCE_DIR) + "/tests/fixtures/tiny_llama";
  auto orig = SafetensorsFile::open(src + "/reference.safetensors");
  const StTensor& tok = orig.get("tokens");
  const std::vector<int32_t> ids = tok.to_i32();
  for (int variant = 0; variant < 2; ++variant) {
    TempDir dir("gt_parity_tokens");
    for (const char* f : {"config.json", "model.safetensors"})
      std::filesystem::copy_file(src + "/" + f, dir / f);
    SafetensorsWriter w;
    for (const std::string& name : orig.names()) {
      if (name == "tokens") continue;
      const StTensor& t = orig.get(name);
      w.add(name, t.dtype, t.shape, t.data, t.nbytes);
    }
    if (variant == 0) {  // one id equal to the vocabulary size
      std::vector<int64_t> bad(ids.begin(), ids.end());
      bad[3] = 256;
      w.add("tokens", StDType::I64, tok.shape, bad.data(), bad.size() * 8);
    } else {  // a float tensor holding 2.5
      std::vector<float> bad(ids.begin(), ids.end());
      bad[1] = 2.5f;
      w.add_f32("tokens", tok.shape, bad.data());
    }
    w.write(dir / "reference.safetensors");
    const std::string log = dir / "log.txt";
    const std::string cmd = std::string(bin) + "/galore-parity " + dir.path + " > " + log + " 2>&1";
    EXPECT_NE(std::system(cmd.c_str()), 0) << "variant " << variant;
    std::ifstream in(log);
    const std::string text((std::istreambuf_iterator<char>(in)), {});
    EXPECT_NE(text.find("reference.safetensors"), std::string::npos) << text;
    EXPECT_NE(text.find(variant == 0 ? "outside the vocabulary" : "not a 32-bit integer"), std::string::npos) << text;
  }
}
