#include "model/hf_io.h"

#include <climits>
#include <cmath>
#include <cstring>

#include <filesystem>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fs_util.h"
#include "core/json_number.h"
#include "core/safetensors.h"

namespace gt {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {
json read_json(const std::string& path) {
  try {
    return json::parse(read_file(path));
  } catch (const json::exception& e) {
    fail("{}: not valid JSON ({})", path, e.what());
  }
}
// Typed reads of config.json keys; each error names the file and the key.
// An integer key must be a JSON integer in [lo, INT_MAX]; absent or null
// optional keys take their default.
int int_key(const json& j, const std::string& key, const std::string& path, int lo, std::optional<int> dflt = {}) {
  if (!j.contains(key) || j[key].is_null()) {
    if (dflt) return *dflt;
    fail("{}: missing key '{}' (is this a Hugging Face LlamaConfig?)", path, key);
  }
  long double n = 0;
  if (!integral_in(j[key], lo, INT_MAX, &n))
    fail("{}: key '{}' is {}, expected an integer from {} to {}", path, key, j[key].dump(), lo, INT_MAX);
  return int(n);
}
double number_key(const json& j, const std::string& key, const std::string& path, double dflt, bool zero_ok = false) {
  if (!j.contains(key) || j[key].is_null()) return dflt;
  const json& v = j[key];
  if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < 0 || (!zero_ok && v.get<double>() == 0))
    fail("{}: key '{}' is {}, expected a {} number", path, key, v.dump(), zero_ok ? "non-negative" : "positive");
  return v.get<double>();
}
bool bool_key(const json& j, const std::string& key, const std::string& path) {
  if (!j.contains(key) || j[key].is_null()) return false;
  if (!j[key].is_boolean()) fail("{}: key '{}' is {}, expected true or false", path, key, j[key].dump());
  return j[key].get<bool>();
}
}  // namespace

ModelConfig model_config_from_hf(const std::string& dir) {
  const std::string path = dir + "/config.json";
  json j = read_json(path);
  if (!j.is_object()) fail("{}: not a JSON object (is this a Hugging Face LlamaConfig?)", path);
  ModelConfig m;
  m.vocab_size = int_key(j, "vocab_size", path, 1);
  m.hidden_size = int_key(j, "hidden_size", path, 1);
  m.intermediate_size = int_key(j, "intermediate_size", path, 1);
  m.num_layers = int_key(j, "num_hidden_layers", path, 1);
  m.num_heads = int_key(j, "num_attention_heads", path, 1);
  m.num_kv_heads = int_key(j, "num_key_value_heads", path, 1, m.num_heads);
  m.rms_norm_eps = number_key(j, "rms_norm_eps", path, 1e-6);
  // transformers >= 4.56 may hold rope_theta in rope_parameters
  const json* rope = &j;
  if ((!j.contains("rope_theta") || j["rope_theta"].is_null()) && j.contains("rope_parameters") &&
      j["rope_parameters"].is_object())
    rope = &j["rope_parameters"];
  m.rope_theta = number_key(*rope, "rope_theta", path, m.rope_theta);
  m.max_seq_len = int_key(j, "max_position_embeddings", path, 1, 2048);
  m.init_std = number_key(j, "initializer_range", path, 0.02, true);
  if (m.hidden_size % m.num_heads || m.num_heads % m.kv_heads())
    fail("{}: hidden_size {}, num_attention_heads {} and num_key_value_heads {} are inconsistent (hidden_size must "
         "divide by the heads, the heads by the kv heads)",
         path, m.hidden_size, m.num_heads, m.kv_heads());
  if (int_key(j, "head_dim", path, 1, m.hidden_size / m.num_heads) != m.hidden_size / m.num_heads)
    fail("{}: head_dim {} != hidden_size/num_attention_heads = {}; only the standard LLaMA layout is supported", path,
         j["head_dim"].dump(), m.hidden_size / m.num_heads);
  if (bool_key(j, "tie_word_embeddings", path))
    fail("{}: tie_word_embeddings is true; galore-train trains untied LLaMA models only", path);
  for (const char* bias : {"attention_bias", "mlp_bias"})
    if (bool_key(j, bias, path)) fail("{}: {} is true; LLaMA without biases is supported only", path, bias);
  return m;
}

void check_hf_shape(const ModelConfig& cfg, const std::string& dir) {
  ModelConfig h = model_config_from_hf(dir);
  auto same = [&](const char* key, int64_t a, int64_t b) {
    if (a != b)
      fail("model.init_from={}: {} is {} in its config.json but model.{} is {}; fix the config or set "
           "model.shape_from_init=true",
           dir, key, b, key, a);
  };
  same("vocab_size", cfg.vocab_size, h.vocab_size);
  same("hidden_size", cfg.hidden_size, h.hidden_size);
  same("intermediate_size", cfg.intermediate_size, h.intermediate_size);
  same("num_layers", cfg.num_layers, h.num_layers);
  same("num_heads", cfg.num_heads, h.num_heads);
  same("num_kv_heads", cfg.kv_heads(), h.kv_heads());
}

void load_hf_weights(LlamaModel& model, const std::string& dir) {
  // name -> file: single model.safetensors or a sharded index
  std::map<std::string, std::string> where;
  const std::string index = dir + "/model.safetensors.index.json";
  if (fs::exists(index)) {
    json j = read_json(index);
    if (!j.contains("weight_map")) fail("{}: no weight_map", index);
    for (auto& [k, v] : j["weight_map"].items()) where[k] = dir + "/" + v.get<std::string>();
  } else if (fs::exists(dir + "/model.safetensors")) {
    for (auto& p : model.params()) where[p.name] = dir + "/model.safetensors";
  } else {
    fail("{}: no model.safetensors or model.safetensors.index.json (is this a Hugging Face model directory?)", dir);
  }
  std::map<std::string, SafetensorsFile> files;
  for (int i = 0; i < model.num_params(); ++i) {
    const auto& p = model.params()[size_t(i)];
    auto it = where.find(p.name);
    if (it == where.end()) fail("{}: tensor '{}' is not in the weight map", index, p.name);
    if (!files.count(it->second)) files.emplace(it->second, SafetensorsFile::open(it->second));
    const StTensor& t = files.at(it->second).get(p.name);
    if (t.numel() != p.hf_numel() || (p.cols > 1 && t.shape != p.hf_shape()))
      fail("{}: tensor '{}' has shape [{}] but the model needs [{}]", it->second, p.name, fmt::join(t.shape, ", "),
           fmt::join(p.hf_shape(), ", "));
    auto values = t.to_f32();
    model.set_weight(i, values.data());
  }
}

json hf_config_json(const ModelConfig& cfg, const std::string& dtype) {
  return {{"architectures", {"LlamaForCausalLM"}},
            {"model_type", "llama"},
            {"vocab_size", cfg.vocab_size},
            {"hidden_size", cfg.hidden_size},
            {"intermediate_size", cfg.intermediate_size},
            {"num_hidden_layers", cfg.num_layers},
            {"num_attention_heads", cfg.num_heads},
            {"num_key_value_heads", cfg.kv_heads()},
            {"head_dim", cfg.head_dim()},
            {"hidden_act", "silu"},
            {"max_position_embeddings", cfg.max_seq_len},
            {"rms_norm_eps", cfg.rms_norm_eps},
            {"rope_theta", cfg.rope_theta},
            {"initializer_range", cfg.init_std},
            {"tie_word_embeddings", false},
            {"attention_bias", false},
            {"mlp_bias", false},
            {"torch_dtype", dtype == "bf16" ? "bfloat16" : "float32"}};
}

void export_hf_weights(const ModelConfig& cfg, const std::vector<ParamInfo>& params,
                       const std::function<std::vector<float>(size_t i)>& weight, const std::string& dir,
                       const std::string& dtype) {
  if (dtype != "bf16" && dtype != "fp32") fail("--dtype must be bf16 or fp32 (got '{}')", dtype);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("cannot create {}: {}", dir, ec.message());
  SafetensorsWriter w;
  w.set_metadata("format", "pt");
  const bool bf16 = dtype == "bf16";
  for (size_t i = 0; i < params.size(); ++i) {
    const ParamInfo& p = params[i];
    const size_t n = size_t(p.hf_numel());
    w.add_deferred(p.name, bf16 ? StDType::BF16 : StDType::F32, p.hf_shape(), n * (bf16 ? 2 : 4),
                   [&weight, &p, i, n, bf16](void* dst) {
                     const std::vector<float> v = weight(i);
                     if (v.size() != n) fail("export: {} has {} values, expected {}", p.name, v.size(), n);
                     if (!bf16) {
                       std::memcpy(dst, v.data(), n * 4);
                       return;
                     }
                     uint16_t* h = static_cast<uint16_t*>(dst);
                     for (size_t k = 0; k < n; ++k) h[k] = f32_to_bf16(v[k]);
                   });
  }
  w.write(dir + "/model.safetensors");
  write_file_atomic(dir + "/config.json", hf_config_json(cfg, dtype).dump(2) + "\n");
}

void export_hf(const LlamaModel& model, const std::string& dir, const std::string& dtype) {
  export_hf_weights(model.config(), model.params(), [&model](size_t i) { return model.get_weight(int(i)); }, dir,
                    dtype);
}

}  // namespace gt
