// Checkpoints: <root>/step_NNNNNNNN/ holding
//   model.safetensors      weights under HF names, in the device dtype (exact)
//   config.json            HF LlamaConfig (the folder loads in transformers)
//   optimizer.safetensors  every optimizer state tensor and counter
//   trainer_state.json     step, tokens, data position, RNG, resolved config + hash, version
//   COMPLETE               written last: file sizes and hashes
// A checkpoint is written into a temporary folder, fsynced, renamed, then
// marked complete; older ones are pruned only after that.
#pragma once
#include <optional>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>

namespace gt {

class LlamaModel;
class Optimizer;

std::string checkpoint_name(int64_t step);  // step_00000100
// Writes the checkpoint for `step` under root; returns its path. Throws
// gt::Error on any write failure, leaving earlier checkpoints untouched and
// no folder under the final name.
std::string write_checkpoint(const std::string& root, int64_t step, const LlamaModel& model, const Optimizer& opt,
                             const nlohmann::json& trainer_state);
// Deletes complete checkpoints beyond the newest keep_last (0 = keep all) and
// leftover temporary folders.
void prune_checkpoints(const std::string& root, int keep_last);
// Verifies COMPLETE (sizes + hashes); returns an empty string if fine, else why not.
std::string verify_checkpoint(const std::string& path);
// Newest complete, verified checkpoint under root (warns about skipped ones).
std::optional<std::string> find_latest_checkpoint(const std::string& root);
// Loaders (errors name the file).
nlohmann::json read_trainer_state(const std::string& path);
void load_checkpoint_weights(LlamaModel& model, const std::string& path);
void load_checkpoint_optimizer(Optimizer& opt, const std::string& path);

}  // namespace gt
