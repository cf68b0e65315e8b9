// Checkpoints: <root>/step_NNNNNNNN/ holding
//   model.safetensors      weights under HF names, in the device dtype (exact)
//   config.json            HF LlamaConfig (the folder loads in transformers)
//   optimizer.safetensors  every optimizer state tensor and counter
//   trainer_state.json     step, tokens, data position, RNG, resolved config + hash, version
//   COMPLETE               file sizes and xxh64 hashes (written last, before the rename)
// A checkpoint is written into <root>/.tmp_step_NNNNNNNN_<pid>/, every file
// fsynced, COMPLETE written and fsynced, then the folder is renamed to its
// final name and the root fsynced: a step_ folder is never seen half written.
// Older ones are pruned only after that. See docs/CHECKPOINTS.md.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>

namespace gt {

class LlamaModel;
class Optimizer;

constexpr int kCheckpointFormat = 1;  // COMPLETE's "format"

std::string checkpoint_name(int64_t step);  // step_00000100
// Step of a checkpoint folder name (step_ + at least 8 digits), or -1.
int64_t checkpoint_step(const std::string& folder_name);

// Writes the checkpoint for `step` under root; returns its path. Throws
// gt::Error on any write failure (naming the file), leaving earlier
// checkpoints untouched and no folder under the final name. A folder already
// at the final name (an earlier run's checkpoint of the same step) is replaced
// atomically, with a warning.
std::string write_checkpoint(const std::string& root, int64_t step, const LlamaModel& model, const Optimizer& opt,
                             const nlohmann::json& trainer_state);
// Deletes complete checkpoints beyond the newest keep_last (0 = keep all) and
// leftover scratch folders (.tmp_/.old_) of writers that died (or of this
// process: call it only after write_checkpoint returned). `current_step` is the
// checkpoint just written: it is never deleted, and checkpoints with a higher
// step (left by an earlier run) are neither counted nor deleted. -1 = the
// last checkpoint this process wrote (none: every checkpoint counts).
void prune_checkpoints(const std::string& root, int keep_last, int64_t current_step = -1);
// Verifies COMPLETE (sizes + hashes); returns an empty string if fine, else why not.
std::string verify_checkpoint(const std::string& path);
// Newest complete, verified checkpoint under root (warns about skipped ones).
std::optional<std::string> find_latest_checkpoint(const std::string& root);
// Complete checkpoints under root (marker present, sizes match; hashes not
// read), oldest first.
std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& root);
// Checks that checkpoints can be written under root (creates it, writes and
// removes a probe file). Returns "" if fine, else why not. Lets a run fail
// before training instead of at its first checkpoint.
std::string probe_checkpoint_dir(const std::string& root);

// Loaders (errors name the file).
// trainer_state.json, checked for the keys a resume needs.
nlohmann::json read_trainer_state(const std::string& path);
void load_checkpoint_weights(LlamaModel& model, const std::string& path);
void load_checkpoint_optimizer(Optimizer& opt, const std::string& path);

// XXH64 (the hash in COMPLETE); file version streams the file in chunks.
uint64_t xxh64(const void* data, size_t n, uint64_t seed = 0);
std::string xxh64_file_hex(const std::string& path);

}  // namespace gt
