// Config loading, validation, overrides, to_json/hash and the docs table.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <unistd.h>

#include "config/config.h"
#include "config/schema.h"
#include "core/error.h"

namespace fs = std::filesystem;
using gt::Config;
using nlohmann::json;

namespace {

const std::string kSrc = GALORE_SOURCE_DIR;

// The message of the gt::Error that f throws (a test failure if none). Every
// error must be one line.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const gt::Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "error is not one line: " << msg;
    return msg;
  }
  ADD_FAILURE() << "expected a gt::Error";
  return "";
}

std::string from_json_error(const std::string& text, const std::vector<std::string>& overrides = {}) {
  return error_of([&] { gt::config_from_json(json::parse(text), "test.json", overrides); });
}

Config from_text(const std::string& text, const std::vector<std::string>& overrides = {}) {
  return gt::config_from_json(json::parse(text), "test.json", overrides);
}

// A file in a per-process temp dir (tests may run in parallel).
std::string write_temp(const std::string& name, const std::string& text) {
  const fs::path dir = fs::temp_directory_path() / ("galore_test_config_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const fs::path p = dir / name;
  std::ofstream(p) << text;
  return p.string();
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

#define EXPECT_HAS(msg, part) EXPECT_NE((msg).find(part), std::string::npos) << "message: " << (msg)
#define EXPECT_LACKS(msg, part) EXPECT_EQ((msg).find(part), std::string::npos) << "message: " << (msg)

}  // namespace

// ---- shipped configs ----

TEST(ConfigFiles, EveryShippedConfigLoads) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(kSrc + "/configs")) {
    if (e.path().extension() != ".json") continue;
    SCOPED_TRACE(e.path().string());
    EXPECT_NO_THROW(gt::load_config(e.path().string()));
    ++n;
  }
  EXPECT_GE(n, 6);
}

TEST(ConfigFiles, PaperSizes) {
  struct Row {
    const char* name;
    int hidden, inter, layers, heads, rank, steps, micro;
  };
  const Row rows[] = {{"llama60m", 512, 1376, 8, 8, 128, 10000, 128},
                      {"llama130m", 768, 2048, 12, 12, 256, 20000, 64},
                      {"llama350m", 1024, 2736, 24, 16, 256, 60000, 32},
                      {"llama1b", 2048, 5461, 24, 32, 512, 100000, 16},
                      {"llama7b_paper", 4096, 11008, 32, 32, 1024, 150000, 16}};
  for (const auto& r : rows) {
    SCOPED_TRACE(r.name);
    const Config c = gt::load_config(kSrc + "/configs/" + r.name + ".json");
    EXPECT_EQ(c.model.vocab_size, 32000);
    EXPECT_EQ(c.model.hidden_size, r.hidden);
    EXPECT_EQ(c.model.intermediate_size, r.inter);
    EXPECT_EQ(c.model.num_layers, r.layers);
    EXPECT_EQ(c.model.num_heads, r.heads);
    EXPECT_EQ(c.model.max_seq_len, 256);
    EXPECT_DOUBLE_EQ(c.model.rms_norm_eps, 1e-6);
    EXPECT_DOUBLE_EQ(c.model.rope_theta, 10000.0);
    EXPECT_EQ(c.optimizer.name, "galore_adamw8bit");
    EXPECT_TRUE(c.optimizer.per_layer_updates);
    EXPECT_DOUBLE_EQ(c.optimizer.lr, 0.01);
    EXPECT_DOUBLE_EQ(c.optimizer.weight_decay, 0.0);
    EXPECT_EQ(c.optimizer.galore.rank, r.rank);
    EXPECT_EQ(c.optimizer.galore.update_proj_gap, 200);
    EXPECT_DOUBLE_EQ(c.optimizer.galore.scale, 0.25);
    EXPECT_EQ(c.schedule.type, "cosine");
    EXPECT_EQ(c.schedule.warmup_steps, r.steps / 10);
    EXPECT_DOUBLE_EQ(c.schedule.min_lr_ratio, 0.1);
    EXPECT_EQ(c.training.max_steps, r.steps);
    EXPECT_EQ(c.training.seq_len, 256);
    EXPECT_EQ(c.training.total_batch_size, 512);
    EXPECT_EQ(c.training.micro_batch_size, r.micro);
    EXPECT_EQ(c.training.recompute, std::string(r.name) == "llama7b_paper");
    EXPECT_EQ(c.training.device, "auto");
    EXPECT_EQ(c.data.train_shards, std::vector<std::string>{"data/c4/shards/train_*.bin"});
    EXPECT_EQ(c.data.val_shards, std::vector<std::string>{"data/c4/shards/val_*.bin"});
    EXPECT_EQ(c.data.tokenizer, "data/c4/tokenizer.model");
    EXPECT_EQ(c.logging.dir, std::string("runs/") + r.name);
    EXPECT_EQ(c.checkpoint.every, 1000);
    EXPECT_EQ(c.eval.every, 1000);
    EXPECT_EQ(c.logging.every, 10);
  }
}

// llama7b.json: the single 24 GB GPU recipe (the official GaLore single-GPU
// script's settings: lr 0.005, update gap 500, clip 1.0, micro-batch 16 with
// checkpointing), one update per micro-batch of 16; the paper's 512-sequence
// batch is llama7b_paper.json. That it fits 24 GB is tests/test_memory_plan.cpp's.
TEST(ConfigFiles, Llama7bSingleGpuRecipe) {
  const Config c = gt::load_config(kSrc + "/configs/llama7b.json");
  const Config paper = gt::load_config(kSrc + "/configs/llama7b_paper.json");
  EXPECT_EQ(c.model.hidden_size, paper.model.hidden_size);
  EXPECT_EQ(c.model.num_layers, paper.model.num_layers);
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 0.005);
  EXPECT_EQ(c.optimizer.galore.rank, 1024);
  EXPECT_EQ(c.optimizer.galore.update_proj_gap, 500);
  EXPECT_DOUBLE_EQ(c.training.grad_clip, 1.0);
  EXPECT_EQ(c.training.micro_batch_size, 16);
  EXPECT_EQ(c.training.total_batch_size, 16);
  EXPECT_TRUE(c.training.recompute);
  EXPECT_TRUE(c.optimizer.per_layer_updates);
  EXPECT_EQ(c.optimizer.name, "galore_adamw8bit");
}

TEST(ConfigFiles, Tiny) {
  const Config c = gt::load_config(kSrc + "/configs/tiny.json");
  EXPECT_EQ(c.model.vocab_size, 2048);
  EXPECT_EQ(c.model.hidden_size, 128);
  EXPECT_EQ(c.model.num_layers, 4);
  EXPECT_EQ(c.training.seq_len, 128);
  EXPECT_EQ(c.training.max_steps, 200);
  EXPECT_EQ(c.optimizer.name, "adamw");
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 3e-3);
  EXPECT_EQ(c.optimizer.galore.rank, 32);
  EXPECT_EQ(c.data.tokenizer, "data/sample/tokenizer.model");
  EXPECT_EQ(c.grad_accum_steps(), 1);
  EXPECT_EQ(c.checkpoint_dir(), "runs/tiny/checkpoints");
}

// ---- defaults and schema ----

TEST(ConfigDefaults, EmptyObjectGivesStructDefaults) {
  const Config c = from_text("{}");
  EXPECT_EQ(c.hash(), Config{}.hash());
  EXPECT_EQ(c.model.hidden_size, 512);
  EXPECT_EQ(c.optimizer.name, "adamw");
  EXPECT_EQ(c.optimizer.galore.rank, 128);
  EXPECT_EQ(c.optimizer.galore.targets.size(), 7u);
  EXPECT_EQ(c.training.seed, 42u);
  EXPECT_TRUE(c.data.train_shards.empty());
  EXPECT_EQ(c.logging.dir, "runs/default");
  // Empty sections are fine too.
  EXPECT_EQ(from_text(R"({"model": {}, "optimizer": {"galore": {}}})").hash(), Config{}.hash());
}

TEST(ConfigSchema, WellFormed) {
  const std::set<std::string> sections = {"model", "optimizer", "schedule", "training",
                                          "data",  "checkpoint", "eval",    "logging"};
  std::set<std::string> keys;
  for (const auto& k : gt::config_schema()) {
    SCOPED_TRACE(k.key);
    EXPECT_TRUE(keys.insert(k.key).second) << "duplicate key";
    EXPECT_TRUE(sections.count(k.key.substr(0, k.key.find('.'))));
    EXPECT_FALSE(k.description.empty());
    EXPECT_EQ(k.description.find('|'), std::string::npos) << "breaks the docs table";
    if (!k.allowed.empty() && k.type == gt::KeyType::String) {
      EXPECT_NE(std::find(k.allowed.begin(), k.allowed.end(), k.default_value.get<std::string>()), k.allowed.end())
          << "default not among allowed values";
    }
  }
  EXPECT_EQ(gt::find_config_key("optimizer.galore.rank")->type, gt::KeyType::Int);
  EXPECT_EQ(gt::find_config_key("optimizer.lr")->type, gt::KeyType::Float);
  EXPECT_EQ(gt::find_config_key("data.train_shards")->type, gt::KeyType::StringList);
  EXPECT_EQ(gt::find_config_key("optimizer.galore.proj_type")->allowed,
            (std::vector<std::string>{"std", "reverse_std", "left", "right", "full"}));
  EXPECT_TRUE(gt::is_config_section("optimizer.galore"));
  EXPECT_FALSE(gt::is_config_section("optimizer.lr"));
}

TEST(ConfigSchema, ToJsonHasEveryKeyInSchemaOrder) {
  const auto j = Config{}.to_json();
  std::vector<std::string> flat;
  // Walk in document order (ordered_json keeps insertion order).
  std::function<void(const nlohmann::ordered_json&, const std::string&)> walk = [&](const auto& o, const std::string& p) {
    for (const auto& [k, v] : o.items()) {
      const std::string path = p.empty() ? k : p + "." + k;
      if (v.is_object()) walk(v, path);
      else flat.push_back(path);
    }
  };
  walk(j, "");
  std::vector<std::string> schema;
  for (const auto& k : gt::config_schema()) schema.push_back(k.key);
  EXPECT_EQ(flat, schema);
  std::vector<std::string> top;
  for (const auto& [k, v] : j.items()) top.push_back(k);
  EXPECT_EQ(top, (std::vector<std::string>{"model", "optimizer", "schedule", "training", "data", "checkpoint", "eval",
                                           "logging"}));
}

// ---- unknown keys ----

TEST(ConfigErrors, UnknownKeySuggestsClosest) {
  const auto msg = from_json_error(R"({"optimizer": {"lrr": 0.01}})");
  EXPECT_HAS(msg, "test.json");
  EXPECT_HAS(msg, "unknown key 'optimizer.lrr'");
  EXPECT_HAS(msg, "did you mean 'optimizer.lr'?");
}

TEST(ConfigErrors, UnknownNestedKey) {
  const auto msg = from_json_error(R"({"optimizer": {"galore": {"rnak": 8}}})");
  EXPECT_HAS(msg, "'optimizer.galore.rnak'");
  EXPECT_HAS(msg, "did you mean 'optimizer.galore.rank'?");
}

TEST(ConfigErrors, UnknownSection) {
  const auto msg = from_json_error(R"({"optimiser": {"lr": 0.01}})");
  EXPECT_HAS(msg, "unknown section 'optimiser'");
  EXPECT_HAS(msg, "did you mean 'optimizer'?");
}

TEST(ConfigErrors, KeyInWrongSectionSuggestsRightOne) {
  EXPECT_HAS(from_json_error(R"({"training": {"lr": 0.01}})"), "did you mean 'optimizer.lr'?");
  EXPECT_HAS(from_json_error(R"({"training": {"warmup_steps": 5}})"), "did you mean 'schedule.warmup_steps'?");
  EXPECT_HAS(from_json_error(R"({"optimizer": {"rank": 8}})"), "did you mean 'optimizer.galore.rank'?");
  EXPECT_HAS(from_json_error(R"({"model": {"layers": 8}})"), "did you mean 'model.num_layers'?");
}

TEST(ConfigErrors, NoSuggestionWhenNothingIsClose) {
  const auto msg = from_json_error(R"({"model": {"flux_capacitor": 1}})");
  EXPECT_HAS(msg, "unknown key 'model.flux_capacitor'");
  EXPECT_LACKS(msg, "did you mean");
  EXPECT_EQ(gt::suggest_config_key("zzzzzz.qqqqqq"), "");
  EXPECT_EQ(gt::suggest_config_key("model.dim"), "");  // not 'checkpoint.dir'
  EXPECT_EQ(gt::suggest_config_key("optimizer.lr"), "optimizer.lr");
}

TEST(ConfigErrors, DottedNamesAreRejected) {
  EXPECT_HAS(from_json_error(R"({"optimizer.lr": 0.01})"), "'optimizer.lr' contains '.'");
}

// ---- types and enums ----

TEST(ConfigErrors, WrongTypes) {
  auto msg = from_json_error(R"({"model": {"hidden_size": "512"}})");
  EXPECT_HAS(msg, "model.hidden_size must be an int");
  EXPECT_HAS(msg, "got string \"512\"");
  msg = from_json_error(R"({"model": {"hidden_size": 512.5}})");
  EXPECT_HAS(msg, "model.hidden_size must be an int");
  EXPECT_HAS(msg, "512.5");
  msg = from_json_error(R"({"optimizer": {"lr": "fast"}})");
  EXPECT_HAS(msg, "optimizer.lr must be a float");
  msg = from_json_error(R"({"optimizer": {"per_layer_updates": 1}})");
  EXPECT_HAS(msg, "optimizer.per_layer_updates must be a bool");
  EXPECT_HAS(msg, "got number 1");
  msg = from_json_error(R"({"data": {"train_shards": [1, 2]}})");
  EXPECT_HAS(msg, "data.train_shards must be a string or a list of strings");
  msg = from_json_error(R"({"model": 5})");
  EXPECT_HAS(msg, "'model' is a section and must be a JSON object");
  msg = from_json_error(R"({"model": {"hidden_size": 3000000000}})");
  EXPECT_HAS(msg, "model.hidden_size must be an int");
  msg = from_json_error(R"({"training": {"seed": -1}})");
  EXPECT_HAS(msg, "training.seed must be a non-negative int");
  msg = from_json_error("[1, 2]");
  EXPECT_HAS(msg, "top level must be a JSON object");
}

TEST(ConfigValues, NumericConversions) {
  const Config c = from_text(R"({"optimizer": {"lr": 1}, "training": {"max_steps": 1e3, "seed": 18446744073709551615}})");
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 1.0);  // floats accept ints
  EXPECT_EQ(c.training.max_steps, 1000);  // an integral float is an int
  EXPECT_EQ(c.training.seed, 18446744073709551615ull);
}

TEST(ConfigValues, StringListAcceptsSingleString) {
  const Config c = from_text(R"({"data": {"train_shards": "a/*.bin", "val_shards": ["b.bin", "c.bin"]},
                                 "optimizer": {"galore": {"targets": "q_proj"}}})");
  EXPECT_EQ(c.data.train_shards, std::vector<std::string>{"a/*.bin"});
  EXPECT_EQ(c.data.val_shards, (std::vector<std::string>{"b.bin", "c.bin"}));
  EXPECT_EQ(c.optimizer.galore.targets, std::vector<std::string>{"q_proj"});
}

TEST(ConfigErrors, BadEnumListsAllowedValues) {
  auto msg = from_json_error(R"({"optimizer": {"name": "adam"}})");
  EXPECT_HAS(msg, "optimizer.name must be one of sgd, adamw, adamw8bit, galore_adamw, galore_adamw8bit");
  EXPECT_HAS(msg, "got 'adam'");
  msg = from_json_error(R"({"schedule": {"type": "step"}})");
  EXPECT_HAS(msg, "schedule.type must be one of cosine, linear, constant");
  msg = from_json_error(R"({"optimizer": {"galore": {"targets": ["q_proj", "qkv"]}}})");
  EXPECT_HAS(msg, "optimizer.galore.targets entries must be among");
  EXPECT_HAS(msg, "'qkv'");
}

// ---- files ----

TEST(ConfigFiles, MissingFile) {
  const auto msg = error_of([] { gt::load_config("/nonexistent/dir/cfg.json"); });
  EXPECT_HAS(msg, "/nonexistent/dir/cfg.json");
  EXPECT_HAS(msg, "cannot open");
}

TEST(ConfigFiles, InvalidJsonNamesFileAndPosition) {
  const auto path = write_temp("bad.json", "{\n  \"model\": {\n    \"hidden_size\": 512,\n  }\n}\n");
  const auto msg = error_of([&] { gt::load_config(path); });
  EXPECT_HAS(msg, path);
  EXPECT_HAS(msg, "not valid JSON");
  EXPECT_HAS(msg, "line 4");
  EXPECT_LACKS(msg, "[json.exception");
}

TEST(ConfigFiles, ErrorsInFileNameTheFile) {
  const auto path = write_temp("typo.json", R"({"training": {"max_stpes": 10}})");
  const auto msg = error_of([&] { gt::load_config(path); });
  EXPECT_HAS(msg, path + ": unknown key 'training.max_stpes', did you mean 'training.max_steps'?");
}

// ---- overrides ----

TEST(ConfigOverrides, Values) {
  const Config c = gt::load_config(kSrc + "/configs/tiny.json",
                                   {"optimizer.lr=0.01", "data.tokenizer=foo.model", "training.recompute=true",
                                    "optimizer.galore.rank=64", "optimizer.name=galore_adamw",
                                    "data.train_shards=[\"x.bin\",\"y.bin\"]", "data.val_shards=v.bin",
                                    "logging.dir=2024", "checkpoint.dir=null"});
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 0.01);
  EXPECT_EQ(c.data.tokenizer, "foo.model");
  EXPECT_TRUE(c.training.recompute);
  EXPECT_EQ(c.optimizer.galore.rank, 64);
  EXPECT_EQ(c.optimizer.name, "galore_adamw");
  EXPECT_EQ(c.data.train_shards, (std::vector<std::string>{"x.bin", "y.bin"}));
  EXPECT_EQ(c.data.val_shards, std::vector<std::string>{"v.bin"});
  EXPECT_EQ(c.logging.dir, "2024");  // string keys take the raw text
  EXPECT_EQ(c.checkpoint.dir, "null");
  // Untouched keys keep the file's values.
  EXPECT_EQ(c.model.hidden_size, 128);
}

TEST(ConfigOverrides, LaterWinsAndSectionObjects) {
  const Config c = from_text("{}", {"optimizer.lr=0.5", "optimizer.lr=0.25", R"(optimizer.galore={"rank": 16})"});
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 0.25);
  EXPECT_EQ(c.optimizer.galore.rank, 16);
}

TEST(ConfigOverrides, UnknownKeySuggests) {
  const auto msg = from_json_error("{}", {"optimizr.lr=0.01"});
  EXPECT_EQ(msg, "--set optimizr.lr=0.01: unknown key 'optimizr.lr', did you mean 'optimizer.lr'?");
}

TEST(ConfigOverrides, Malformed) {
  auto msg = from_json_error("{}", {"optimizer.lr"});
  EXPECT_HAS(msg, "--set optimizer.lr");
  EXPECT_HAS(msg, "expected KEY=VALUE");
  msg = from_json_error("{}", {"=3"});
  EXPECT_HAS(msg, "key before '=' is empty");
  msg = from_json_error("{}", {"optimizer.lr=1e400"});  // not JSON: no double holds it
  EXPECT_HAS(msg, "--set optimizer.lr=1e400: 1e400 is out of range for optimizer.lr");
  msg = from_json_error("{}", {"training.max_steps=-1e999"});
  EXPECT_HAS(msg, "out of range for training.max_steps");
  // a string key takes the text as it is
  EXPECT_EQ(gt::config_from_json(json::object(), "x", {"logging.dir=1e400"}).logging.dir, "1e400");
}

TEST(ConfigOverrides, ValidatedLikeTheFile) {
  auto msg = from_json_error("{}", {"training.max_steps=abc"});
  EXPECT_HAS(msg, "--set training.max_steps=abc: training.max_steps must be an int");
  msg = from_json_error("{}", {"optimizer.name=lion"});
  EXPECT_HAS(msg, "--set optimizer.name=lion: optimizer.name must be one of");
  // Cross-checks see the overridden values.
  msg = from_json_error("{}", {"training.seq_len=1024"});
  EXPECT_HAS(msg, "training.seq_len (1024) must be <= model.max_seq_len (256)");
  EXPECT_HAS(msg, "--set");
}

// ---- cross-checks ----

TEST(ConfigCrossChecks, Errors) {
  struct Case {
    const char* json;
    const char* expect;
  };
  const Case cases[] = {
      {R"({"model": {"hidden_size": 0}})", "model.hidden_size must be > 0, got 0"},
      {R"({"model": {"num_layers": -1}})", "model.num_layers must be > 0"},
      {R"({"training": {"micro_batch_size": 0}})", "training.micro_batch_size must be > 0"},
      {R"({"model": {"hidden_size": 500, "num_heads": 8}})",
       "model.hidden_size (500) must be divisible by model.num_heads (8)"},
      {R"({"model": {"hidden_size": 24, "num_heads": 8}})", "must be even"},
      {R"({"model": {"num_heads": 8, "num_kv_heads": 3}})",
       "model.num_heads (8) must be a multiple of model.num_kv_heads (3)"},
      {R"({"model": {"num_heads": 8, "num_kv_heads": 16}})", "model.num_kv_heads (16)"},
      {R"({"training": {"seq_len": 512}})", "training.seq_len (512) must be <= model.max_seq_len (256)"},
      {R"({"training": {"total_batch_size": 12, "micro_batch_size": 8}})",
       "training.total_batch_size (12) must be a multiple of training.micro_batch_size (8)"},
      {R"({"schedule": {"warmup_steps": 1000}})", "schedule.warmup_steps (1000) must be < training.max_steps (1000)"},
      {R"({"optimizer": {"galore": {"rank": 0}}})", "optimizer.galore.rank must be >= 1, got 0"},
      {R"({"optimizer": {"lr": 0}})", "optimizer.lr must be > 0"},
      {R"({"optimizer": {"lr": -0.1}})", "optimizer.lr must be > 0"},
      {R"({"optimizer": {"beta1": 1.0}})", "optimizer.beta1 must be in [0, 1), got 1.0"},
      {R"({"optimizer": {"beta2": -0.5}})", "optimizer.beta2 must be in [0, 1)"},
      {R"({"schedule": {"min_lr_ratio": 1.5}})", "schedule.min_lr_ratio must be in [0, 1], got 1.5"},
      {R"({"training": {"gemm_autotune": 17}})", "training.gemm_autotune must be in [0, 16], got 17"},
      {R"({"training": {"gemm_autotune": -1}})", "training.gemm_autotune must be in [0, 16], got -1"},
      {R"({"model": {"shape_from_init": true}})", "model.init_from is empty"},
      {R"({"optimizer": {"name": "galore_adamw", "galore": {"targets": []}}})", "optimizer.galore.targets is empty"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.json);
    const auto msg = from_json_error(c.json);
    EXPECT_HAS(msg, "test.json: ");
    EXPECT_HAS(msg, c.expect);
  }
  // Edges that are allowed.
  EXPECT_NO_THROW(from_text(R"({"schedule": {"min_lr_ratio": 1.0, "warmup_steps": 999}, "optimizer": {"beta1": 0}})"));
  EXPECT_NO_THROW(from_text(R"({"model": {"num_heads": 8, "num_kv_heads": 2}})"));
  EXPECT_NO_THROW(from_text(R"({"training": {"gemm_autotune": 16}})"));
}

TEST(ConfigCrossChecks, ShapeFromInitDefersModelChecks) {
  // The model shape comes from init_from later; the caller re-validates then.
  const Config c = from_text(R"({"model": {"init_from": "hf/x", "shape_from_init": true, "hidden_size": 500},
                                 "training": {"seq_len": 2048}})");
  EXPECT_HAS(error_of([&] { gt::validate_config(c, "after init"); }), "after init: model.hidden_size (500)");
}

// ---- to_json / hash ----

TEST(ConfigJson, RoundTripKeepsHash) {
  for (const char* name : {"tiny", "llama60m", "llama7b"}) {
    SCOPED_TRACE(name);
    const Config c = gt::load_config(kSrc + "/configs/" + name + ".json", {"optimizer.galore.targets=q_proj"});
    const Config back = gt::config_from_json(c.to_json(), "round trip");
    EXPECT_EQ(back.hash(), c.hash());
    EXPECT_EQ(back.to_json().dump(), c.to_json().dump());
  }
}

TEST(ConfigJson, Hash) {
  const Config a = from_text("{}");
  const std::string h = a.hash();
  EXPECT_EQ(h.size(), 16u);
  EXPECT_EQ(h.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(from_text("{}").hash(), h);  // deterministic
  EXPECT_NE(from_text("{}", {"optimizer.lr=0.002"}).hash(), h);
  EXPECT_NE(from_text("{}", {"optimizer.galore.targets=q_proj"}).hash(), h);
  EXPECT_EQ(a.to_json()["optimizer"]["galore"]["rank"], 128);
}

// ---- docs ----

TEST(ConfigDocs, EveryKeyDocumented) {
  const std::string doc = read_text(kSrc + "/docs/CONFIG.md");
  ASSERT_FALSE(doc.empty()) << "docs/CONFIG.md is missing";
  for (const auto& k : gt::config_schema()) EXPECT_HAS(doc, "`" + k.key + "`");
}

TEST(ConfigDocs, TableMatchesSchema) {
  const std::string doc = read_text(kSrc + "/docs/CONFIG.md");
  const std::string table = gt::config_schema_markdown();
  EXPECT_NE(doc.find(table), std::string::npos)
      << "docs/CONFIG.md's key table is out of date with the schema (src/config/schema.cpp); replace it with:\n"
      << table;
}
