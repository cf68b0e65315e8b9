// Checkpoints (src/checkpoint) and Hugging Face import/export (src/model/hf_io):
// XXH64 vectors, write -> verify -> load round trips (bit-exact weights and
// optimizer state, adamw and galore_adamw8bit), damage detection, the newest
// complete checkpoint, pruning rules, replacement of an existing step,
// injected write failures, loader errors, and HF export/import round trips
// (fp32 exact, bf16 rounding, the tests/fixtures/tiny_llama HF directory,
// and the galore-export tool when GALORE_BIN is set).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "backend/backend.h"
#include "checkpoint/checkpoint.h"
#include "config/config.h"
#include "core/error.h"
#include "core/fs_util.h"
#include "core/hex.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "model/hf_io.h"
#include "model/llama.h"
#include "optim/optimizer.h"
#include "test_util.h"

using namespace gt;
namespace fs = std::filesystem;
using nlohmann::json;

using gt::test::TempDir;

namespace {

ModelConfig small_cfg(int hidden = 16) {
  ModelConfig c;
  c.vocab_size = 64;
  c.hidden_size = hidden;
  c.intermediate_size = 40;
  c.num_layers = 2;
  c.num_heads = 2;
  c.max_seq_len = 8;
  return c;
}

OptimizerConfig opt_cfg(const std::string& name) {
  OptimizerConfig o;
  o.name = name;
  o.lr = 1e-2;
  o.galore.rank = 4;
  o.galore.update_proj_gap = 2;
  o.momentum = 0.9;  // sgd: a state to save
  return o;
}

// A model + optimizer that took `steps` steps on random gradients (non-trivial state).
struct Trained {
  std::unique_ptr<Backend> be = make_cpu_backend();
  ModelConfig mc;
  std::unique_ptr<LlamaModel> model;
  std::vector<ParamInfo> params;
  std::unique_ptr<Optimizer> opt;
  Trained(const std::string& optimizer, int steps, uint64_t seed, int hidden = 16) : mc(small_cfg(hidden)) {
    model = std::make_unique<LlamaModel>(mc, *be, 1, 8);
    model->init_random(seed);
    const bool galore = optimizer.rfind("galore", 0) == 0;
    const OptimizerConfig oc = opt_cfg(optimizer);
    params = llama_params(mc, galore ? oc.galore.targets : std::vector<std::string>{});
    opt = make_optimizer(oc, params, *be);
    Rng r(seed + 1);
    for (int s = 0; s < steps; ++s)
      for (int p = 0; p < model->num_params(); ++p) {
        std::vector<float> g(size_t(params[size_t(p)].numel()));
        for (auto& x : g) x = float(r.normal()) * 0.1f;
        Tensor gt_(g.data(), DType::F32, Device::CPU, {params[size_t(p)].rows, params[size_t(p)].cols});
        opt->on_grad(p, model->weight(p), gt_, StepInfo{s, 1e-2, 1.0, 0.0, 0, 1});
      }
    opt->take_grad_sq_norm();
  }
  json state(int64_t step) const {
    Config c;
    c.model = mc;
    return {{"step", step},           {"tokens", step * 8},     {"prev_grad_norm", 0.5},
            {"data_position", json()}, {"config", c.to_json()}, {"config_hash", c.hash()},
            {"version", "test"}};
  }
};

std::string slurp(const std::string& p) { return read_file(p); }

void flip_byte(const std::string& path, size_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(std::streamoff(offset));
  char c;
  f.read(&c, 1);
  c = char(c ^ 0x40);
  f.seekp(std::streamoff(offset));
  f.write(&c, 1);
}

std::vector<std::string> scratch_entries(const std::string& root) {
  std::vector<std::string> out;
  for (auto& e : fs::directory_iterator(root)) {
    const std::string n = e.path().filename().string();
    if (n[0] == '.') out.push_back(n);
  }
  return out;
}

struct EnvGuard {
  std::string key;
  EnvGuard(const char* k, const char* v) : key(k) { ::setenv(k, v, 1); }
  ~EnvGuard() { ::unsetenv(key.c_str()); }
};

}  // namespace

TEST(Xxh64, MatchesPublishedVectors) {
  auto h = [](const char* s, uint64_t seed = 0) { return xxh64(s, std::strlen(s), seed); };
  EXPECT_EQ(h(""), 0xef46db3751d8e999ULL);
  EXPECT_EQ(h("a"), 0xd24ec4f1a98c6e5bULL);
  EXPECT_EQ(h("abc"), 0x44bc2cf5ad770999ULL);
  EXPECT_EQ(h("12345678901234567890123456789012"), 0x40fd1aa52d98274cULL);
  EXPECT_EQ(h("The quick brown fox jumps over the lazy dog"), 0x0b242d361fda71bcULL);
  EXPECT_EQ(h("abc", 5381), 0x19d1c1b5c673451fULL);
}

TEST(Xxh64, FileStreamingEqualsOneShot) {
  TempDir d;
  std::string bytes(size_t(9) * 1024 * 1024 + 77, '\0');  // crosses the 4 MiB read chunks at odd offsets
  Rng r(5);
  for (auto& c : bytes) c = char(r.below(256));
  write_file_atomic(d.path + "/f", bytes);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(xxh64(bytes.data(), bytes.size())));
  EXPECT_EQ(xxh64_file_hex(d.path + "/f"), hex);
  EXPECT_THROW(xxh64_file_hex(d.path + "/missing"), Error);
}

// trainer_state.json's gemm_algos (core/hex.h): bytes -> hex -> the same bytes;
// odd lengths and non-hex characters are refused and leave the output alone.
TEST(Hex, RoundTripsAndRefusesBadText) {
  std::vector<uint8_t> bytes(256);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = uint8_t(255 - i);
  const std::string text = hex_encode(bytes.data(), bytes.size());
  EXPECT_EQ(text.size(), 512u);
  EXPECT_EQ(text.substr(0, 6), "fffefd");
  std::vector<uint8_t> back;
  ASSERT_TRUE(hex_decode(text, &back));
  EXPECT_EQ(back, bytes);
  ASSERT_TRUE(hex_decode("0A0b", &back));
  EXPECT_EQ(back, (std::vector<uint8_t>{10, 11}));
  for (const char* bad : {"abc", "0g", "zz", " 0"}) {
    std::vector<uint8_t> out{7};
    EXPECT_FALSE(hex_decode(bad, &out)) << bad;
    EXPECT_EQ(out, std::vector<uint8_t>{7}) << bad;
  }
  EXPECT_TRUE(hex_decode("", &back));
  EXPECT_TRUE(back.empty());
}

TEST(Checkpoint, NamesAndSteps) {
  EXPECT_EQ(checkpoint_name(12), "step_00000012");
  EXPECT_EQ(checkpoint_step("step_00000012"), 12);
  EXPECT_EQ(checkpoint_step(checkpoint_name(123456789)), 123456789);  // more than 8 digits
  EXPECT_EQ(checkpoint_step("step_0000001a"), -1);
  EXPECT_EQ(checkpoint_step("step_12"), -1);
  EXPECT_EQ(checkpoint_step(".tmp_step_00000012_55"), -1);
}

class CheckpointRoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(CheckpointRoundTrip, WeightsAndOptimizerStateAreBitExact) {
  TempDir d;
  Trained a(GetParam(), 3, 11);
  const std::string path = write_checkpoint(d.path, 3, *a.model, *a.opt, a.state(3));
  EXPECT_EQ(path, d.path + "/step_00000003");
  EXPECT_EQ(verify_checkpoint(path), "");
  EXPECT_TRUE(scratch_entries(d.path).empty());
  for (const char* f : {"model.safetensors", "optimizer.safetensors", "trainer_state.json", "config.json", "COMPLETE"})
    EXPECT_TRUE(fs::exists(path + "/" + f)) << f;
  // config.json is an HF LlamaConfig of this shape
  EXPECT_NO_THROW(check_hf_shape(a.mc, path));

  Trained b(GetParam(), 0, 99);  // different weights, fresh optimizer
  load_checkpoint_weights(*b.model, path);
  load_checkpoint_optimizer(*b.opt, path);
  for (int i = 0; i < a.model->num_params(); ++i) {
    const auto wa = a.model->get_weight(i), wb = b.model->get_weight(i);
    ASSERT_EQ(0, std::memcmp(wa.data(), wb.data(), wa.size() * 4)) << a.params[size_t(i)].name;
  }
  // Saving the loaded state again gives the same bytes.
  TempDir d2;
  const std::string path2 = write_checkpoint(d2.path, 3, *b.model, *b.opt, a.state(3));
  for (const char* f : {"model.safetensors", "optimizer.safetensors", "trainer_state.json", "config.json"})
    EXPECT_EQ(slurp(path + "/" + f), slurp(path2 + "/" + f)) << f;
  const json st = read_trainer_state(path);
  EXPECT_EQ(st["step"], 3);
  EXPECT_EQ(st["config"]["model"]["hidden_size"], 16);
}

INSTANTIATE_TEST_SUITE_P(Optimizers, CheckpointRoundTrip, ::testing::Values("adamw", "galore_adamw8bit", "sgd"));

TEST(Checkpoint, VerifyDetectsDamage) {
  TempDir d;
  Trained a("adamw", 1, 3);
  const std::string p = write_checkpoint(d.path, 1, *a.model, *a.opt, a.state(1));
  ASSERT_EQ(verify_checkpoint(p), "");
  const std::string saved = slurp(p + "/optimizer.safetensors");

  flip_byte(p + "/optimizer.safetensors", saved.size() / 2);
  EXPECT_NE(verify_checkpoint(p).find("hash mismatch in optimizer.safetensors"), std::string::npos);
  write_file_atomic(p + "/optimizer.safetensors", saved.substr(0, saved.size() - 8));
  EXPECT_NE(verify_checkpoint(p).find("optimizer.safetensors has"), std::string::npos) << verify_checkpoint(p);
  write_file_atomic(p + "/optimizer.safetensors", saved);
  EXPECT_EQ(verify_checkpoint(p), "");

  fs::remove(p + "/config.json");
  EXPECT_EQ(verify_checkpoint(p), "missing config.json");
  write_file_atomic(p + "/COMPLETE", "{not json");
  EXPECT_NE(verify_checkpoint(p).find("unreadable COMPLETE"), std::string::npos);
  fs::remove(p + "/COMPLETE");
  EXPECT_NE(verify_checkpoint(p).find("no COMPLETE marker"), std::string::npos);
  EXPECT_EQ(verify_checkpoint(d.path + "/nope"), "no such directory");
  EXPECT_NE(verify_checkpoint(d.path).find("checkpoint root"), std::string::npos);  // holds step_ folders
}

TEST(Checkpoint, FindLatestSkipsDamagedAndIncomplete) {
  TempDir d;
  Trained a("adamw", 1, 3);
  EXPECT_FALSE(find_latest_checkpoint(d.path + "/none").has_value());
  for (int s : {2, 4, 6}) write_checkpoint(d.path, s, *a.model, *a.opt, a.state(s));
  EXPECT_EQ(*find_latest_checkpoint(d.path), d.path + "/step_00000006");
  flip_byte(d.path + "/step_00000006/model.safetensors", 100);
  fs::create_directories(d.path + "/step_00000008");  // an incomplete leftover
  fs::create_directories(d.path + "/.tmp_step_00000010_1");
  EXPECT_EQ(*find_latest_checkpoint(d.path), d.path + "/step_00000004");
  // list_checkpoints: complete by marker and sizes (the bit flip is not seen without hashing)
  auto all = list_checkpoints(d.path);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all.front().first, 2);
  EXPECT_EQ(all.back().first, 6);
}

TEST(Checkpoint, PruneKeepsNewestAndTheCurrentOne) {
  TempDir d;
  Trained a("adamw", 1, 3);
  for (int s : {1, 2, 3, 4}) write_checkpoint(d.path, s, *a.model, *a.opt, a.state(s));
  // scratch of a dead writer is removed, a live writer's is kept
  fs::create_directories(d.path + "/.tmp_step_00000009_2147483646");
  fs::create_directories(d.path + "/.old_step_00000001_2147483646");
  const std::string live = d.path + "/.tmp_step_00000009_" + std::to_string(::getppid());
  fs::create_directories(live);
  // our own pid: stale (this process is not writing while it prunes)
  fs::create_directories(d.path + "/.tmp_step_00000008_" + std::to_string(::getpid()));
  prune_checkpoints(d.path, 2, 4);
  EXPECT_FALSE(fs::exists(d.path + "/step_00000001"));
  EXPECT_FALSE(fs::exists(d.path + "/step_00000002"));
  EXPECT_TRUE(fs::exists(d.path + "/step_00000003"));
  EXPECT_TRUE(fs::exists(d.path + "/step_00000004"));
  EXPECT_FALSE(fs::exists(d.path + "/.tmp_step_00000009_2147483646"));
  EXPECT_FALSE(fs::exists(d.path + "/.old_step_00000001_2147483646"));
  EXPECT_FALSE(fs::exists(d.path + "/.tmp_step_00000008_" + std::to_string(::getpid())));
  EXPECT_TRUE(fs::exists(live));
  fs::remove_all(live);

  // A checkpoint written after newer ones (an earlier run's) is never pruned
  // itself; the newer ones are neither counted nor deleted.
  for (int s : {7, 8}) write_checkpoint(d.path, s, *a.model, *a.opt, a.state(s));
  write_checkpoint(d.path, 5, *a.model, *a.opt, a.state(5));
  prune_checkpoints(d.path, 1);  // default: the last one this process wrote (5)
  EXPECT_TRUE(fs::exists(d.path + "/step_00000005"));
  EXPECT_FALSE(fs::exists(d.path + "/step_00000004"));
  EXPECT_FALSE(fs::exists(d.path + "/step_00000003"));
  EXPECT_TRUE(fs::exists(d.path + "/step_00000007"));
  EXPECT_TRUE(fs::exists(d.path + "/step_00000008"));
  prune_checkpoints(d.path, 0, 8);  // keep all
  EXPECT_EQ(list_checkpoints(d.path).size(), 3u);
  EXPECT_TRUE(scratch_entries(d.path).empty());
}

TEST(Checkpoint, ReplacesAnExistingStepAtomically) {
  TempDir d;
  Trained a("adamw", 1, 3), b("adamw", 2, 4);
  const std::string p = write_checkpoint(d.path, 5, *a.model, *a.opt, a.state(5));
  write_checkpoint(d.path, 5, *b.model, *b.opt, b.state(5));
  EXPECT_EQ(verify_checkpoint(p), "");
  Trained c("adamw", 0, 1);
  load_checkpoint_weights(*c.model, p);
  EXPECT_EQ(c.model->get_weight(0), b.model->get_weight(0));
  EXPECT_TRUE(scratch_entries(d.path).empty());
  // an incomplete leftover under the final name is replaced too
  fs::remove(p + "/COMPLETE");
  write_checkpoint(d.path, 5, *a.model, *a.opt, a.state(5));
  EXPECT_EQ(verify_checkpoint(p), "");
}

TEST(Checkpoint, WriteFailureLeavesNoFolderAndEarlierIntact) {
  TempDir d;
  Trained a("adamw", 1, 3);
  const std::string p2 = write_checkpoint(d.path, 2, *a.model, *a.opt, a.state(2));
  const std::string before = slurp(p2 + "/model.safetensors");
  for (const char* what : {"step_00000004", "/optimizer.safetensors", "/COMPLETE", "/config.json"}) {
    EnvGuard env("GALORE_FAIL_WRITES", what);
    try {
      write_checkpoint(d.path, 4, *a.model, *a.opt, a.state(4));
      ADD_FAILURE() << "no error with GALORE_FAIL_WRITES=" << what;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("No space left on device"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("step_00000004"), std::string::npos);
    }
    EXPECT_FALSE(fs::exists(d.path + "/step_00000004")) << what;
    EXPECT_TRUE(scratch_entries(d.path).empty()) << what;
  }
  EXPECT_EQ(verify_checkpoint(p2), "");
  EXPECT_EQ(before, slurp(p2 + "/model.safetensors"));
  // a root under a regular file
  try {
    write_checkpoint("/dev/null/ckpt", 4, *a.model, *a.opt, a.state(4));
    ADD_FAILURE() << "no error for a root under /dev/null";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/dev/null/ckpt"), std::string::npos) << e.what();
  }
  EXPECT_NE(probe_checkpoint_dir("/dev/null/ckpt"), "");
  EXPECT_EQ(probe_checkpoint_dir(d.path + "/fresh"), "");
}

TEST(Checkpoint, LoaderErrorsNameTheProblem) {
  TempDir d;
  Trained a("adamw", 1, 3);
  const std::string p = write_checkpoint(d.path, 1, *a.model, *a.opt, a.state(1));
  // another model shape
  Trained wide("adamw", 0, 3, 32);
  try {
    load_checkpoint_weights(*wide.model, p);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("shape"), std::string::npos) << e.what();
  }
  // another optimizer
  Trained sgd("sgd", 0, 3);
  try {
    load_checkpoint_optimizer(*sgd.opt, p);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'adamw'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'sgd'"), std::string::npos) << e.what();
  }
  // optimizer states of another size, for each optimizer (the trainer compares the model
  // shape first; the loaders must not rely on it)
  for (const char* name : {"adamw", "sgd", "galore_adamw8bit"}) {
    Trained big(name, 1, 3, 32), small(name, 0, 3);
    if (std::string(name) == "sgd") ASSERT_GT(big.opt->state_bytes(), 0u) << "sgd without momentum state";
    const std::string q = write_checkpoint(d.path + "/" + name, 1, *big.model, *big.opt, big.state(1));
    try {
      load_checkpoint_optimizer(*small.opt, q);
      ADD_FAILURE() << name << ": states of a wider model were loaded";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("optimizer.safetensors"), std::string::npos) << e.what();
    }
  }
  // trainer_state.json without a required key
  json st = json::parse(slurp(p + "/trainer_state.json"));
  st.erase("data_position");
  write_file_atomic(p + "/trainer_state.json", st.dump());
  try {
    read_trainer_state(p);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("data_position"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------
// Hugging Face export / import

TEST(HfInterop, Fp32ExportImportIsExact) {
  TempDir d;
  Trained a("adamw", 2, 21);
  export_hf(*a.model, d.path + "/hf", "fp32");
  const ModelConfig back = model_config_from_hf(d.path + "/hf");
  EXPECT_EQ(back.hidden_size, a.mc.hidden_size);
  EXPECT_EQ(back.intermediate_size, a.mc.intermediate_size);
  EXPECT_EQ(back.num_layers, a.mc.num_layers);
  EXPECT_EQ(back.vocab_size, a.mc.vocab_size);
  Trained b("adamw", 0, 5);
  load_hf_weights(*b.model, d.path + "/hf");
  for (int i = 0; i < a.model->num_params(); ++i) EXPECT_EQ(a.model->get_weight(i), b.model->get_weight(i)) << i;
}

TEST(HfInterop, Bf16ExportRoundsToNearestEven) {
  TempDir d;
  Trained a("adamw", 2, 21);
  export_hf(*a.model, d.path + "/hf", "bf16");
  auto f = SafetensorsFile::open(d.path + "/hf/model.safetensors");
  for (int i = 0; i < a.model->num_params(); ++i) {
    const StTensor& t = f.get(a.params[size_t(i)].name);
    ASSERT_EQ(t.dtype, StDType::BF16);
    const auto w = a.model->get_weight(i);
    const auto got = t.to_f32();
    for (size_t k = 0; k < w.size(); ++k) ASSERT_EQ(got[k], bf16_to_f32(f32_to_bf16(w[k])));
  }
}

TEST(HfInterop, TinyLlamaFixtureRoundTripsExactly) {
  const std::string fix = std::string(GALORE_SOURCE_DIR) + "/tests/fixtures/tiny_llama";
  const ModelConfig mc = model_config_from_hf(fix);
  EXPECT_EQ(mc.vocab_size, 256);
  EXPECT_EQ(mc.hidden_size, 64);
  auto be = make_cpu_backend();
  const int B = 2, T = 16;
  LlamaModel m1(mc, *be, B, T);
  load_hf_weights(m1, fix);
  TempDir d;
  export_hf(m1, d.path + "/hf", "fp32");
  // every tensor of the export equals the fixture's, byte for byte
  auto a = SafetensorsFile::open(fix + "/model.safetensors");
  auto b = SafetensorsFile::open(d.path + "/hf/model.safetensors");
  for (auto& p : m1.params()) {
    const StTensor &ta = a.get(p.name), &tb = b.get(p.name);
    ASSERT_EQ(ta.shape, tb.shape) << p.name;
    ASSERT_EQ(ta.nbytes, tb.nbytes) << p.name;
    ASSERT_EQ(0, std::memcmp(ta.data, tb.data, ta.nbytes)) << p.name;
  }
  // the re-imported model (shape taken from the export) computes the same loss
  const ModelConfig mc2 = model_config_from_hf(d.path + "/hf");
  EXPECT_NO_THROW(check_hf_shape(mc, d.path + "/hf"));
  LlamaModel m2(mc2, *be, B, T);
  load_hf_weights(m2, d.path + "/hf");
  std::vector<int32_t> tokens(size_t(B) * (T + 1));
  Rng r(3);
  for (auto& t : tokens) t = int32_t(r.below(256));
  EXPECT_EQ(m1.forward(tokens.data()), m2.forward(tokens.data()));
  // a config of another shape is refused, naming the key
  ModelConfig other = mc;
  other.intermediate_size = 128;
  try {
    check_hf_shape(other, d.path + "/hf");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("intermediate_size"), std::string::npos) << e.what();
  }
}

TEST(HfInterop, ExportToolRoundTrip) {
  const char* bin = std::getenv("GALORE_BIN");
  if (!bin) GTEST_SKIP() << "GALORE_BIN not set (run through ctest)";
  TempDir d;
  Trained a("adamw", 2, 8);
  const std::string ck = write_checkpoint(d.path + "/ck", 2, *a.model, *a.opt, a.state(2));
  const std::string tool = std::string(bin) + "/galore-export";
  auto run = [&](const std::string& args) {
    return std::system((tool + " " + args + " >" + d.path + "/out.txt 2>&1").c_str());
  };
  ASSERT_EQ(run(ck + " " + d.path + "/fp32 --dtype fp32"), 0) << slurp(d.path + "/out.txt");
  Trained b("adamw", 0, 1);
  load_hf_weights(*b.model, d.path + "/fp32");
  for (int i = 0; i < a.model->num_params(); ++i) EXPECT_EQ(a.model->get_weight(i), b.model->get_weight(i)) << i;
  EXPECT_EQ(json::parse(slurp(d.path + "/fp32/config.json"))["torch_dtype"], "float32");
  // default dtype = the checkpoint's (fp32 on the CPU); a checkpoint root picks the newest
  ASSERT_EQ(run(d.path + "/ck " + d.path + "/dflt"), 0) << slurp(d.path + "/out.txt");
  EXPECT_EQ(slurp(d.path + "/fp32/model.safetensors"), slurp(d.path + "/dflt/model.safetensors"));
  ASSERT_EQ(run(ck + " " + d.path + "/bf16 --dtype bf16"), 0) << slurp(d.path + "/out.txt");
  EXPECT_EQ(json::parse(slurp(d.path + "/bf16/config.json"))["torch_dtype"], "bfloat16");
  // a damaged checkpoint is refused
  flip_byte(ck + "/model.safetensors", 300);
  EXPECT_NE(run(ck + " " + d.path + "/bad"), 0);
  EXPECT_NE(slurp(d.path + "/out.txt").find("error: "), std::string::npos);
  EXPECT_NE(slurp(d.path + "/out.txt").find("hash mismatch"), std::string::npos);
  EXPECT_FALSE(fs::exists(d.path + "/bad/model.safetensors"));
}
