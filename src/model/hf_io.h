// Hugging Face interop: LlamaConfig <-> ModelConfig, model.safetensors
// (single file or sharded with model.safetensors.index.json) <-> weights.
#pragma once
#include <functional>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>

#include "config/config.h"
#include "model/llama.h"

namespace gt {

// Reads <dir>/config.json (rope_theta at the top level or in rope_parameters).
ModelConfig model_config_from_hf(const std::string& dir);
// Checks that the HF config in `dir` has the same shape as `cfg`; the error names the differing key.
void check_hf_shape(const ModelConfig& cfg, const std::string& dir);
// Loads every parameter from <dir>/model.safetensors (or the sharded index) into the model.
void load_hf_weights(LlamaModel& model, const std::string& dir);
// The LlamaConfig JSON for this model shape (torch_dtype from dtype: bf16 | fp32).
nlohmann::json hf_config_json(const ModelConfig& cfg, const std::string& dtype);
// Writes <dir>/config.json + <dir>/model.safetensors (LlamaForCausalLM layout), dtype "bf16" or "fp32".
void export_hf(const LlamaModel& model, const std::string& dir, const std::string& dtype);
// weight(i): parameter i's fp32 values in its HF shape, asked for once, while the file is
// written (one tensor in host memory at a time, however large the model).
void export_hf_weights(const ModelConfig& cfg, const std::vector<ParamInfo>& params,
                       const std::function<std::vector<float>(size_t i)>& weight, const std::string& dir,
                       const std::string& dtype);

}  // namespace gt
