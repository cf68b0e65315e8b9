// The config schema table and the per-key machinery built on it (type
// checks, suggestions, the docs table). Cross-key checks live in config.cpp.
#include "config/schema.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <set>

#include "core/error.h"
#include "core/json_number.h"

namespace gt {
namespace {

using json = nlohmann::json;

struct Row {
  const char* key;
  std::function<FieldRef(Config&)> field;
  const char* description;
  std::vector<std::string> allowed;
};

// KEY("dotted.key", member path, "meaning", enum values...)
#define KEY(name, member, desc, ...) \
  Row { name, [](Config& c) -> FieldRef { return &c.member; }, desc, std::vector<std::string>{__VA_ARGS__} }

// Order = struct order = to_json order = docs order.
std::vector<Row> rows() {
  return {
      KEY("model.vocab_size", model.vocab_size, "Vocabulary size (must match the tokenizer)."),
      KEY("model.hidden_size", model.hidden_size, "Width of the residual stream."),
      KEY("model.intermediate_size", model.intermediate_size, "Width of the SwiGLU MLP (held padded to a multiple of 8 in memory for fast GEMMs; files and exports keep this width)."),
      KEY("model.num_layers", model.num_layers, "Number of transformer blocks."),
      KEY("model.num_heads", model.num_heads, "Attention (query) heads; hidden_size / num_heads is the head dim (even)."),
      KEY("model.num_kv_heads", model.num_kv_heads, "Key/value heads for grouped-query attention; 0 = num_heads (no GQA)."),
      KEY("model.rms_norm_eps", model.rms_norm_eps, "Epsilon of the RMSNorm layers."),
      KEY("model.rope_theta", model.rope_theta, "Base of the rotary position embedding."),
      KEY("model.max_seq_len", model.max_seq_len, "Longest sequence the model supports (RoPE table size)."),
      KEY("model.init_std", model.init_std, "Standard deviation of the random weight init."),
      KEY("model.init_from", model.init_from, "HF model directory to start from; empty = random init."),
      KEY("model.shape_from_init", model.shape_from_init, "Take the model shape from init_from's config.json instead of the keys above."),

      KEY("optimizer.name", optimizer.name, "Optimizer.", "sgd", "adamw", "adamw8bit", "galore_adamw", "galore_adamw8bit"),
      KEY("optimizer.lr", optimizer.lr, "Peak learning rate (after warmup)."),
      KEY("optimizer.weight_decay", optimizer.weight_decay, "Decoupled weight decay (AdamW style)."),
      KEY("optimizer.beta1", optimizer.beta1, "Adam first-moment decay, in [0, 1)."),
      KEY("optimizer.beta2", optimizer.beta2, "Adam second-moment decay, in [0, 1)."),
      KEY("optimizer.eps", optimizer.eps, "Adam epsilon."),
      KEY("optimizer.momentum", optimizer.momentum, "SGD momentum, in [0, 1) (sgd only)."),
      KEY("optimizer.per_layer_updates", optimizer.per_layer_updates, "Update each layer during backward and free its gradient (saves memory)."),
      KEY("optimizer.stochastic_rounding", optimizer.stochastic_rounding, "Round bf16 weight updates stochastically (GPU; fp32 weights are unaffected)."),
      KEY("optimizer.galore.rank", optimizer.galore.rank, "GaLore projection rank."),
      KEY("optimizer.galore.update_proj_gap", optimizer.galore.update_proj_gap, "Steps between projector refreshes."),
      KEY("optimizer.galore.scale", optimizer.galore.scale, "Scale applied to the projected-back update (GaLore alpha)."),
      KEY("optimizer.galore.proj_type", optimizer.galore.proj_type, "Which side is projected (std: the smaller dimension).", "std", "reverse_std", "left", "right", "full"),
      KEY("optimizer.galore.projector", optimizer.galore.projector, "How the projector is computed: exact SVD or randomized range finder.", "svd", "randomized"),
      KEY("optimizer.galore.oversampling", optimizer.galore.oversampling, "Extra columns for the randomized projector."),
      KEY("optimizer.galore.power_iters", optimizer.galore.power_iters, "Power iterations for the randomized projector."),
      KEY("optimizer.galore.warm_start", optimizer.galore.warm_start, "Start the randomized range finder from the previous projector."),
      KEY("optimizer.galore.moments_on_refresh", optimizer.galore.moments_on_refresh, "What happens to Adam moments when the projector changes.", "keep", "reset", "reproject"),
      KEY("optimizer.galore.factored_projection", optimizer.galore.factored_projection, "Per-layer updates: between refreshes, project a weight gradient from its factors (dY, X) without forming it (fewer FLOPs; false forms G as the reference does)."),
      KEY("optimizer.galore.targets", optimizer.galore.targets, "Linear layers trained with GaLore (all other parameters get full-rank updates).",
          "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),

      KEY("schedule.type", schedule.type, "Decay after warmup, down to min_lr_ratio * lr at the last step.", "cosine", "linear", "constant"),
      KEY("schedule.warmup_steps", schedule.warmup_steps, "Linear warmup steps (< training.max_steps)."),
      KEY("schedule.min_lr_ratio", schedule.min_lr_ratio, "Final learning rate as a fraction of optimizer.lr, in [0, 1]."),

      KEY("training.max_steps", training.max_steps, "Optimizer steps to train."),
      KEY("training.seq_len", training.seq_len, "Tokens per training sequence (<= model.max_seq_len)."),
      KEY("training.micro_batch_size", training.micro_batch_size, "Sequences per forward/backward pass."),
      KEY("training.total_batch_size", training.total_batch_size, "Sequences per optimizer step (a multiple of micro_batch_size; the rest is accumulation)."),
      KEY("training.grad_clip", training.grad_clip, "Gradient-norm clip threshold; 0 = off."),
      KEY("training.clip_mode", training.clip_mode, "Clip the global gradient norm or each tensor's norm.", "global", "per_tensor"),
      KEY("training.seed", training.seed, "Seed for init, data order and randomized projectors."),
      KEY("training.device", training.device, "Where to train; auto = CUDA when a GPU is present.", "auto", "cuda", "cpu"),
      KEY("training.dtype", training.dtype, "Weight/activation dtype on the GPU (the CPU always uses fp32).", "bf16", "fp32"),
      KEY("training.recompute", training.recompute, "Recompute each layer's activations in backward (GPU; saves memory)."),
      KEY("training.gemm_autotune", training.gemm_autotune, "GPU: after the first step, time this many of cuBLASLt's candidate algorithms per GEMM shape and keep the fastest (saved in checkpoints for bit-exact resume); 0 = the heuristic's first, up to 16."),
      KEY("training.nan_policy", training.nan_policy, "On a non-finite loss or gradient: skip the step or stop the run.", "skip", "stop"),
      KEY("training.threads", training.threads, "CPU threads; 0 = all cores."),

      KEY("data.train_shards", data.train_shards, "Training token shards (paths or globs; a single string is accepted)."),
      KEY("data.val_shards", data.val_shards, "Validation token shards (paths or globs; a single string is accepted)."),
      KEY("data.tokenizer", data.tokenizer, "SentencePiece .model file."),
      KEY("data.prefetch", data.prefetch, "Batches prefetched by the loader thread."),

      KEY("checkpoint.dir", checkpoint.dir, "Checkpoint directory; empty = logging.dir + /checkpoints."),
      KEY("checkpoint.every", checkpoint.every, "Steps between checkpoints; 0 = only at the end and on SIGINT/SIGTERM."),
      KEY("checkpoint.keep_last", checkpoint.keep_last, "Checkpoints kept; 0 = keep all."),
      KEY("checkpoint.on_write_error", checkpoint.on_write_error, "When writing a checkpoint fails: stop the run or log and continue.", "stop", "continue"),

      KEY("eval.every", eval.every, "Steps between validation runs; 0 = only at the end."),
      KEY("eval.batches", eval.batches, "Validation batches (of micro_batch_size sequences) per evaluation."),

      KEY("logging.dir", logging.dir, "Run directory: metrics.jsonl and (by default) checkpoints."),
      KEY("logging.every", logging.every, "Steps between log lines."),
      KEY("logging.progress", logging.progress, "Console output: auto = live line on a terminal, plain otherwise.", "auto", "line", "plain"),
  };
}
#undef KEY

std::string parent_of(const std::string& p) {
  const auto dot = p.rfind('.');
  return dot == std::string::npos ? "" : p.substr(0, dot);
}
std::string leaf_of(const std::string& p) {
  const auto dot = p.rfind('.');
  return dot == std::string::npos ? p : p.substr(dot + 1);
}

// Optimal string alignment distance (Levenshtein + adjacent transpositions,
// so "optimzier" is one edit from "optimizer").
size_t edit_distance(const std::string& a, const std::string& b) {
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (size_t i = 1; i <= n; ++i)
    for (size_t j = 1; j <= m; ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[n][m];
}

// A short, one-line rendering of what the user gave, for type errors.
std::string describe(const json& v) {
  std::string s = v.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  switch (v.type()) {
    case json::value_t::string: return "string " + s;
    case json::value_t::boolean: return "bool " + s;
    case json::value_t::array: return "array " + s;
    case json::value_t::object: return "object " + s;
    case json::value_t::null: return "null";
    default: return "number " + s;
  }
}

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}

}  // namespace

const std::vector<KeyInfo>& config_schema() {
  static const std::vector<KeyInfo> schema = [] {
    std::vector<KeyInfo> out;
    Config defaults;
    for (auto& r : rows()) {
      KeyInfo k{r.key, KeyType::Int, {}, r.allowed, r.description, r.field};
      k.type = std::visit(
          [](auto* p) {
            using T = std::remove_pointer_t<decltype(p)>;
            if constexpr (std::is_same_v<T, int> || std::is_same_v<T, uint64_t>) return KeyType::Int;
            else if constexpr (std::is_same_v<T, double>) return KeyType::Float;
            else if constexpr (std::is_same_v<T, bool>) return KeyType::Bool;
            else if constexpr (std::is_same_v<T, std::string>) return KeyType::String;
            else return KeyType::StringList;
          },
          k.field(defaults));
      k.default_value = get_config_value(defaults, k);
      out.push_back(std::move(k));
    }
    return out;
  }();
  return schema;
}

const KeyInfo* find_config_key(const std::string& key) {
  for (const auto& k : config_schema())
    if (k.key == key) return &k;
  return nullptr;
}

bool is_config_section(const std::string& path) {
  if (path.empty()) return false;
  for (const auto& k : config_schema())
    if (k.key.size() > path.size() && k.key.compare(0, path.size(), path) == 0 && k.key[path.size()] == '.') return true;
  return false;
}

const char* key_type_name(KeyType t) {
  switch (t) {
    case KeyType::Int: return "int";
    case KeyType::Float: return "float";
    case KeyType::Bool: return "bool";
    case KeyType::String: return "string";
    case KeyType::StringList: return "string-list";
  }
  return "?";
}

std::string suggest_config_key(const std::string& unknown) {
  // Candidates: every key and every section ("optimizer.galore").
  std::vector<std::string> cands;
  std::set<std::string> seen;
  for (const auto& k : config_schema()) {
    for (std::string p = parent_of(k.key); !p.empty(); p = parent_of(p))
      if (seen.insert(p).second) cands.push_back(p);
    cands.push_back(k.key);
  }
  const std::string u_parent = parent_of(unknown), u_leaf = leaf_of(unknown);
  std::string best;
  size_t best_score = SIZE_MAX;
  bool best_same = false;
  for (const auto& c : cands) {
    const bool same = parent_of(c) == u_parent;
    const size_t moved = same ? 0 : 1;  // a key in the wrong section costs one edit
    const std::string c_leaf = leaf_of(c);
    // A moved key must match (nearly) exactly, or short names pair up at
    // random ("model.dim" is not "checkpoint.dir").
    const size_t leaf_d = edit_distance(u_leaf, c_leaf);
    size_t score = std::min(edit_distance(unknown, c), same ? leaf_d : leaf_d == 0 ? 1 : leaf_d + 2);
    // "layers" -> "num_layers", "shards" -> "train_shards"
    const auto& shorter = u_leaf.size() < c_leaf.size() ? u_leaf : c_leaf;
    const auto& longer = u_leaf.size() < c_leaf.size() ? c_leaf : u_leaf;
    if (shorter.size() >= 4 && longer.find(shorter) != std::string::npos) score = std::min(score, 1 + moved);
    if (score < best_score || (score == best_score && same && !best_same)) {
      best = c, best_score = score, best_same = same;
    }
  }
  const size_t limit = std::max<size_t>(2, u_leaf.size() / 3);
  return best_score <= limit ? best : "";
}

nlohmann::json get_config_value(const Config& cfg, const KeyInfo& info) {
  // The accessor only takes an address; nothing is written.
  return std::visit([](auto* p) { return json(*p); }, info.field(const_cast<Config&>(cfg)));
}

void set_config_value(Config& cfg, const KeyInfo& info, const nlohmann::json& v, const std::string& origin) {
  const auto type_error = [&](const char* expected) {
    fail("{}: {} must be {}, got {}", origin, info.key, expected, describe(v));
  };
  std::visit(
      [&](auto* p) {
        using T = std::remove_pointer_t<decltype(p)>;
        long double n = 0;
        if constexpr (std::is_same_v<T, int>) {
          if (!integral_in(v, INT_MIN, INT_MAX, &n)) type_error("an int (a whole number)");
          *p = static_cast<int>(n);
        } else if constexpr (std::is_same_v<T, uint64_t>) {
          if (!integral_in(v, 0, static_cast<long double>(UINT64_MAX), &n)) type_error("a non-negative int");
          *p = v.is_number_unsigned() ? v.get<uint64_t>() : static_cast<uint64_t>(n);
        } else if constexpr (std::is_same_v<T, double>) {
          if (!v.is_number()) type_error("a float");
          *p = v.get<double>();
        } else if constexpr (std::is_same_v<T, bool>) {
          if (!v.is_boolean()) type_error("a bool (true or false)");
          *p = v.get<bool>();
        } else if constexpr (std::is_same_v<T, std::string>) {
          if (!v.is_string()) type_error("a string");
          const auto s = v.get<std::string>();
          if (!info.allowed.empty() && std::find(info.allowed.begin(), info.allowed.end(), s) == info.allowed.end())
            fail("{}: {} must be one of {}, got '{}'", origin, info.key, join(info.allowed, ", "), s);
          *p = s;
        } else {
          std::vector<std::string> list;
          if (v.is_string()) list.push_back(v.get<std::string>());
          else if (v.is_array()) {
            for (const auto& e : v) {
              if (!e.is_string()) type_error("a string or a list of strings");
              list.push_back(e.get<std::string>());
            }
          } else type_error("a string or a list of strings");
          for (const auto& s : list)
            if (!info.allowed.empty() && std::find(info.allowed.begin(), info.allowed.end(), s) == info.allowed.end())
              fail("{}: {} entries must be among {}, got '{}'", origin, info.key, join(info.allowed, ", "), s);
          *p = std::move(list);
        }
      },
      info.field(cfg));
}

std::string config_schema_markdown() {
  std::string md = "| key | type | default | meaning |\n|---|---|---|---|\n";
  for (const auto& k : config_schema()) {
    std::string meaning = k.description;
    if (!k.allowed.empty())
      meaning += (k.type == KeyType::StringList ? " Entries from: `" : " One of: `") + join(k.allowed, "`, `") + "`.";
    md += fmt::format("| `{}` | {} | `{}` | {} |\n", k.key, key_type_name(k.type), k.default_value.dump(), meaning);
  }
  return md;
}

}  // namespace gt
