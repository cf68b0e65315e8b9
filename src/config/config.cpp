// Loading (file + --set overrides), cross-key validation, to_json and hash.
// Per-key types, defaults and enum values come from the schema (schema.cpp).
#include "config/config.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/schema.h"
#include "core/error.h"

namespace gt {
namespace {

using json = nlohmann::json;

void apply_value(Config& cfg, const std::string& path, const json& v, const std::string& origin);

void apply_object(Config& cfg, const json& obj, const std::string& prefix, const std::string& origin) {
  for (const auto& [name, v] : obj.items()) {
    // Dotted member names would make one key settable in two places.
    if (name.find('.') != std::string::npos)
      fail("{}: '{}' contains '.'; nest it instead, e.g. {{\"optimizer\": {{\"lr\": 0.01}}}}", origin,
           prefix.empty() ? name : prefix + "." + name);
    apply_value(cfg, prefix.empty() ? name : prefix + "." + name, v, origin);
  }
}

void apply_value(Config& cfg, const std::string& path, const json& v, const std::string& origin) {
  if (const KeyInfo* k = find_config_key(path)) return set_config_value(cfg, *k, v, origin);
  if (is_config_section(path)) {
    if (!v.is_object()) fail("{}: '{}' is a section and must be a JSON object, got {}", origin, path, v.type_name());
    return apply_object(cfg, v, path, origin);
  }
  const std::string what = path.find('.') == std::string::npos ? "section" : "key";
  const std::string guess = suggest_config_key(path);
  if (!guess.empty()) fail("{}: unknown {} '{}', did you mean '{}'?", origin, what, path, guess);
  fail("{}: unknown {} '{}' (docs/CONFIG.md lists the valid keys)", origin, what, path);
}

// "--set a.b=value": value is JSON when it parses, else a plain string.
void apply_override(Config& cfg, const std::string& ov) {
  const std::string origin = "--set " + ov;
  const auto eq = ov.find('=');
  if (eq == std::string::npos) fail("{}: expected KEY=VALUE, e.g. --set optimizer.lr=0.01", origin);
  std::string key = ov.substr(0, eq);
  const std::string raw = ov.substr(eq + 1);
  while (!key.empty() && std::isspace(static_cast<unsigned char>(key.back()))) key.pop_back();
  while (!key.empty() && std::isspace(static_cast<unsigned char>(key.front()))) key.erase(key.begin());
  if (key.empty()) fail("{}: the key before '=' is empty; expected KEY=VALUE, e.g. --set optimizer.lr=0.01", origin);
  json v = json::parse(raw, nullptr, /*allow_exceptions=*/false);
  if (v.is_discarded()) v = raw;
  // For string keys the raw text is meant (--set logging.dir=2024, --set checkpoint.dir=null).
  const KeyInfo* k = find_config_key(key);
  if (k && k->type == KeyType::String && !v.is_string()) v = raw;
  if (k && k->type == KeyType::StringList && !v.is_string() && !v.is_array()) v = raw;
  if (k && (k->type == KeyType::Int || k->type == KeyType::Float) && v.is_string()) {
    // A number JSON cannot hold (1e400) is not meant as a string.
    char* end = nullptr;
    errno = 0;
    const double d = std::strtod(raw.c_str(), &end);
    if (!raw.empty() && end == raw.c_str() + raw.size() && errno == ERANGE && !std::isfinite(d))
      fail("{}: {} is out of range for {}; pass a finite number", origin, raw, key);
  }
  apply_value(cfg, key, v, origin);
}

double num(const Config& cfg, const std::string& key) {
  const KeyInfo* k = find_config_key(key);
  GT_ASSERT(k != nullptr);
  return get_config_value(cfg, *k).get<double>();
}

}  // namespace

void validate_config(const Config& cfg, const std::string& origin, bool check_model_shape) {
  // Single-key ranges: lo/hi bounds, *_open = bound excluded.
  struct Range {
    const char* key;
    double lo;
    bool lo_open;
    double hi;
    bool hi_open;
  };
  constexpr double inf = HUGE_VAL;
  static const Range ranges[] = {
      {"model.vocab_size", 0, true, inf, false},
      {"model.hidden_size", 0, true, inf, false},
      {"model.intermediate_size", 0, true, inf, false},
      {"model.num_layers", 0, true, inf, false},
      {"model.num_heads", 0, true, inf, false},
      {"model.num_kv_heads", 0, false, inf, false},
      {"model.rms_norm_eps", 0, true, inf, false},
      {"model.rope_theta", 0, true, inf, false},
      {"model.max_seq_len", 0, true, inf, false},
      {"model.init_std", 0, false, inf, false},
      {"optimizer.lr", 0, true, inf, false},
      {"optimizer.weight_decay", 0, false, inf, false},
      {"optimizer.beta1", 0, false, 1, true},
      {"optimizer.beta2", 0, false, 1, true},
      {"optimizer.eps", 0, true, inf, false},
      {"optimizer.momentum", 0, false, 1, true},
      {"optimizer.galore.rank", 1, false, inf, false},
      {"optimizer.galore.update_proj_gap", 1, false, inf, false},
      {"optimizer.galore.scale", 0, true, inf, false},
      {"optimizer.galore.oversampling", 0, false, inf, false},
      {"optimizer.galore.power_iters", 0, false, inf, false},
      {"schedule.warmup_steps", 0, false, inf, false},
      {"schedule.min_lr_ratio", 0, false, 1, false},
      {"training.max_steps", 0, true, inf, false},
      {"training.seq_len", 0, true, inf, false},
      {"training.micro_batch_size", 0, true, inf, false},
      {"training.total_batch_size", 0, true, inf, false},
      {"training.grad_clip", 0, false, inf, false},
      {"training.threads", 0, false, inf, false},
      {"training.gemm_autotune", 0, false, 16, false},
      {"data.prefetch", 1, false, inf, false},
      {"checkpoint.every", 0, false, inf, false},
      {"checkpoint.keep_last", 0, false, inf, false},
      {"eval.every", 0, false, inf, false},
      {"eval.batches", 1, false, inf, false},
      {"logging.every", 1, false, inf, false},
  };
  for (const auto& r : ranges) {
    if (!check_model_shape && std::strncmp(r.key, "model.", 6) == 0) continue;
    const double v = num(cfg, r.key);
    const bool below = r.lo_open ? !(v > r.lo) : !(v >= r.lo);
    const bool above = r.hi_open ? !(v < r.hi) : !(v <= r.hi);
    if (!below && !above) continue;
    const std::string value = get_config_value(cfg, *find_config_key(r.key)).dump();
    if (r.hi == inf) fail("{}: {} must be {} {}, got {}", origin, r.key, r.lo_open ? ">" : ">=", r.lo, value);
    fail("{}: {} must be in {}{}, {}{}, got {}", origin, r.key, r.lo_open ? "(" : "[", r.lo, r.hi, r.hi_open ? ")" : "]",
         value);
  }

  const auto& m = cfg.model;
  if (check_model_shape) {
    if (m.hidden_size % m.num_heads != 0)
      fail("{}: model.hidden_size ({}) must be divisible by model.num_heads ({})", origin, m.hidden_size, m.num_heads);
    if (m.head_dim() % 2 != 0)
      fail("{}: the head dim model.hidden_size / model.num_heads = {} / {} = {} must be even (RoPE rotates pairs)", origin,
           m.hidden_size, m.num_heads, m.head_dim());
    if (m.kv_heads() > m.num_heads || m.num_heads % m.kv_heads() != 0)
      fail("{}: model.num_heads ({}) must be a multiple of model.num_kv_heads ({})", origin, m.num_heads, m.kv_heads());
    if (cfg.training.seq_len > m.max_seq_len)
      fail("{}: training.seq_len ({}) must be <= model.max_seq_len ({})", origin, cfg.training.seq_len, m.max_seq_len);
  }
  if (m.shape_from_init && m.init_from.empty())
    fail("{}: model.shape_from_init is true but model.init_from is empty; set model.init_from to an HF model directory",
         origin);
  const auto& t = cfg.training;
  if (t.total_batch_size % t.micro_batch_size != 0)
    fail("{}: training.total_batch_size ({}) must be a multiple of training.micro_batch_size ({})", origin,
         t.total_batch_size, t.micro_batch_size);
  if (cfg.schedule.warmup_steps >= t.max_steps)
    fail("{}: schedule.warmup_steps ({}) must be < training.max_steps ({})", origin, cfg.schedule.warmup_steps,
         t.max_steps);
  const auto& o = cfg.optimizer;
  if (o.name.rfind("galore_", 0) == 0 && o.galore.targets.empty())
    fail("{}: optimizer.galore.targets is empty, so optimizer.name '{}' would project nothing; list layers or use {}",
         origin, o.name, o.name.substr(7));
}

Config config_from_json(const nlohmann::json& j, const std::string& origin, const std::vector<std::string>& overrides) {
  if (!j.is_object())
    fail("{}: the top level must be a JSON object with sections model, optimizer, schedule, training, data, "
         "checkpoint, eval, logging; got {}",
         origin, j.type_name());
  Config cfg;
  apply_object(cfg, j, "", origin);  // every schema key has a section, so top-level names must be sections
  for (const auto& ov : overrides) apply_override(cfg, ov);
  validate_config(cfg, overrides.empty() ? origin : origin + " with --set overrides", !cfg.model.shape_from_init);
  return cfg;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    fail("config file {}: is a directory; pass a .json file such as configs/tiny.json", path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("config file {}: cannot open ({}); check the path, e.g. configs/tiny.json", path, std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) fail("config file {}: read error ({})", path, std::strerror(errno));
  json j;
  try {
    j = json::parse(text.str());
  } catch (const json::exception& e) {  // parse_error (with line/column), or out_of_range for a number like 1e400
    fail("{}: not valid JSON: {}", path, json_reason(e));
  }
  return config_from_json(j, path, overrides);
}

nlohmann::ordered_json Config::to_json() const {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  Config& self = const_cast<Config&>(*this);  // the schema accessors only take addresses
  for (const auto& k : config_schema()) {
    nlohmann::ordered_json* node = &out;
    std::string rest = k.key;
    for (auto dot = rest.find('.'); dot != std::string::npos; dot = rest.find('.')) {
      node = &(*node)[rest.substr(0, dot)];
      rest = rest.substr(dot + 1);
    }
    (*node)[rest] = std::visit([](auto* p) { return nlohmann::ordered_json(*p); }, k.field(self));
  }
  return out;
}

std::string Config::hash() const {
  // FNV-1a 64: stable across platforms and library versions, unlike std::hash.
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : to_json().dump()) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return fmt::format("{:016x}", h);
}

}  // namespace gt
