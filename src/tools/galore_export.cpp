// galore-export: a checkpoint -> a Hugging Face LlamaForCausalLM directory.
//   galore-export runs/tiny/checkpoints/step_00000200 out/tiny-hf [--dtype bf16|fp32]
//   galore-export runs/tiny out/tiny-hf     (a run or checkpoint root: its newest complete checkpoint)
// Writes <out>/config.json + <out>/model.safetensors (HF names and layout).
// The default dtype is the checkpoint's (lossless); fp32 -> bf16 rounds to
// nearest even. The result loads with transformers' LlamaForCausalLM and as
// model.init_from in galore-train. See docs/CHECKPOINTS.md.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <spdlog/spdlog.h>

#include "checkpoint/checkpoint.h"
#include "config/config.h"
#include "core/error.h"
#include "core/openmp_env.h"
#include "core/safetensors.h"
#include "model/hf_io.h"
#include "model/llama.h"

using namespace gt;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
// The model shape recorded in trainer_state.json's resolved config.
ModelConfig model_config_from_state(const json& st, const std::string& where) {
  const json& m = st.at("config").at("model");
  ModelConfig c;
  auto get = [&](const char* key, auto& dst) {
    if (!m.contains(key)) fail("{}: config.model has no \"{}\"", where, key);
    try {
      m.at(key).get_to(dst);
    } catch (const json::exception&) {
      fail("{}: config.model.{} has the wrong type ({})", where, key, m.at(key).dump());
    }
  };
  get("vocab_size", c.vocab_size);
  get("hidden_size", c.hidden_size);
  get("intermediate_size", c.intermediate_size);
  get("num_layers", c.num_layers);
  get("num_heads", c.num_heads);
  get("num_kv_heads", c.num_kv_heads);
  get("rms_norm_eps", c.rms_norm_eps);
  get("rope_theta", c.rope_theta);
  get("max_seq_len", c.max_seq_len);
  get("init_std", c.init_std);
  return c;
}
}  // namespace

int main(int argc, char** argv) {
  gt::prefer_passive_openmp(argv);
  CLI::App app{"galore-export: write a checkpoint as a Hugging Face LlamaForCausalLM directory"};
  std::string ckpt, out, dtype;
  bool force = false;
  app.add_option("checkpoint", ckpt, "checkpoint folder (step_NNNNNNNN), or a run directory / checkpoint root (takes the newest)")
      ->required();
  app.add_option("out_dir", out, "output directory (config.json + model.safetensors)")->required();
  app.add_option("--dtype", dtype, "bf16 or fp32 (default: the checkpoint's dtype, lossless)")
      ->check(CLI::IsMember({"bf16", "fp32"}));
  app.add_flag("--force", force, "export even if the checkpoint fails verification (damaged files)");
  CLI11_PARSE(app, argc, argv);

  try {
    // A run folder or a checkpoint root: take the newest complete checkpoint in it.
    if (!fs::exists(ckpt)) fail("{}: no such directory; give a step_NNNNNNNN folder, a checkpoint root or a run directory", ckpt);
    if (!fs::exists(ckpt + "/trainer_state.json")) {
      std::optional<std::string> latest;
      for (const std::string& root : {ckpt + "/checkpoints", ckpt})
        if (!latest && fs::is_directory(root) && !list_checkpoints(root).empty()) latest = find_latest_checkpoint(root);
      if (!latest)
        fail("{}: holds no checkpoint (no trainer_state.json, no complete step_NNNNNNNN folder here or in {}/checkpoints)",
             ckpt, ckpt);
      spdlog::info("exporting the newest complete checkpoint {}", *latest);
      ckpt = *latest;
    }
    const std::string why = verify_checkpoint(ckpt);
    if (!why.empty()) {
      if (!force) fail("{}: {}; pick another checkpoint (or --force to export it anyway)", ckpt, why);
      spdlog::warn("{}: {}; exporting anyway (--force)", ckpt, why);
    }
    std::error_code ec;
    if (fs::exists(out, ec) && fs::equivalent(out, ckpt, ec))
      fail("out_dir {} is the checkpoint itself; choose another directory", out);
    if (fs::exists(out + "/model.safetensors.index.json"))
      fail("{} holds a sharded model (model.safetensors.index.json), which would shadow the export; choose an empty "
           "directory",
           out);

    const json st = read_trainer_state(ckpt);
    const ModelConfig mc = model_config_from_state(st, ckpt + "/trainer_state.json");
    check_hf_shape(mc, ckpt);  // config.json in the checkpoint agrees with trainer_state.json
    const std::vector<ParamInfo> params = llama_params(mc, {});
    const std::string wf = ckpt + "/model.safetensors";
    auto file = SafetensorsFile::open(wf);
    bool all_bf16 = true;
    int64_t n = 0;
    for (const auto& p : params) {
      if (!file.has(p.name)) fail("{}: tensor '{}' missing (damaged checkpoint?)", wf, p.name);
      const StTensor& t = file.get(p.name);
      const std::vector<int64_t> want = p.hf_shape();
      if (t.shape != want)
        fail("{}: tensor '{}' has shape [{}] but the config says [{}]", wf, p.name, fmt::join(t.shape, ", "),
             fmt::join(want, ", "));
      if (t.dtype != StDType::F32 && t.dtype != StDType::BF16)
        fail("{}: tensor '{}' is {}, expected F32 or BF16", wf, p.name, st_dtype_name(t.dtype));
      all_bf16 = all_bf16 && t.dtype == StDType::BF16;
      n += t.numel();
    }
    if (file.names().size() != params.size())
      spdlog::warn("{}: {} tensors, the model has {}; extra tensors are not exported", wf, file.names().size(),
                   params.size());
    if (dtype.empty()) dtype = all_bf16 ? "bf16" : "fp32";
    // converted one tensor at a time while the file is written (a 7B export holds no copy of the
    // model); large exports log their progress every 10%
    int64_t done = 0, next_report = 1;
    size_t tensors = 0;  // written so far (the file is in name order, not parameter order)
    export_hf_weights(
        mc, params,
        [&](size_t i) {
          const StTensor& t = file.get(params[i].name);
          done += t.numel();
          ++tensors;
          if (n >= (int64_t(1) << 27) && done * 10 >= next_report * n) {
            spdlog::info("export: {}% ({} of {} tensors)", done * 100 / n, tensors, params.size());
            next_report = done * 10 / n + 1;
          }
          return t.to_f32();
        },
        out, dtype);
    char params_m[32];
    std::snprintf(params_m, sizeof params_m, "%.2fM", double(n) / 1e6);
    std::cout << "exported " << ckpt << " (step " << st.at("step").get<int64_t>() << ", " << params_m << " params) to "
              << out << " as " << dtype << std::endl;
    return 0;
  } catch (const std::exception& e) {
    spdlog::default_logger()->flush();
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  }
}
