#include "checkpoint/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/fs_util.h"
#include "core/safetensors.h"
#include "model/hf_io.h"
#include "model/llama.h"
#include "optim/optimizer.h"

namespace gt {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {
const char* kFiles[] = {"model.safetensors", "config.json", "optimizer.safetensors", "trainer_state.json"};

std::string hash_file(const std::string& path) {
  std::string bytes = read_file(path);
  uint64_t h = 1469598103934665603ULL;  // FNV-1a 64
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ULL;
  return fmt::format("{:016x}", h);
}

StDType st_of(DType t) {
  switch (t) {
    case DType::F32: return StDType::F32;
    case DType::BF16: return StDType::BF16;
    case DType::I32: return StDType::I32;
    case DType::U8: return StDType::U8;
  }
  return StDType::F32;
}

bool is_step_dir(const fs::path& p, int64_t* step) {
  const std::string n = p.filename().string();
  if (n.rfind("step_", 0) != 0 || n.size() != 13) return false;
  try {
    *step = std::stoll(n.substr(5));
  } catch (...) {
    return false;
  }
  return true;
}
}  // namespace

std::string checkpoint_name(int64_t step) { return fmt::format("step_{:08d}", step); }

std::string write_checkpoint(const std::string& root, int64_t step, const LlamaModel& model, const Optimizer& opt,
                             const json& trainer_state) {
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) fail("cannot create checkpoint directory {}: {} (check checkpoint.dir)", root, ec.message());
  const std::string final_path = root + "/" + checkpoint_name(step);
  if (fs::exists(final_path) && verify_checkpoint(final_path).empty()) return final_path;  // already there, complete
  const std::string tmp = root + "/.tmp_" + checkpoint_name(step) + "_" + std::to_string(::getpid());
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) fail("cannot create {}: {}", tmp, ec.message());
  try {
    // model weights, native dtype, HF names
    SafetensorsWriter w;
    w.set_metadata("format", "pt");
    std::vector<char> buf;
    for (int i = 0; i < model.num_params(); ++i) {
      const auto& p = model.params()[size_t(i)];
      const Tensor& t = model.weight(i);
      buf.resize(t.nbytes());
      // Backend::download is the only device access here; weights are read as stored.
      model.download_weight_bytes(i, buf.data());
      w.add(p.name, st_of(t.dtype), p.cols == 1 ? std::vector<int64_t>{p.rows} : std::vector<int64_t>{p.rows, p.cols},
            buf.data(), buf.size());
    }
    w.write(tmp + "/model.safetensors");
    SafetensorsWriter o;
    opt.save_state(o);
    o.set_metadata("optimizer", opt.name());
    o.write(tmp + "/optimizer.safetensors");
    write_file_atomic(tmp + "/trainer_state.json", trainer_state.dump(2) + "\n");
    // HF config so the folder is a loadable HF model directory
    const bool bf16 = model.weight(0).dtype == DType::BF16;
    write_file_atomic(tmp + "/config.json", hf_config_json(model.config(), bf16 ? "bf16" : "fp32").dump(2) + "\n");
    fsync_dir(tmp);
    if (fs::exists(final_path)) fs::remove_all(final_path);  // an incomplete or corrupt leftover
    fs::rename(tmp, final_path, ec);
    if (ec) fail("cannot rename {} to {}: {}", tmp, final_path, ec.message());
    fsync_dir(root);
    json complete;
    for (const char* f : kFiles) {
      const std::string p = final_path + "/" + f;
      complete[f] = {{"bytes", fs::file_size(p)}, {"fnv1a64", hash_file(p)}};
    }
    write_file_atomic(final_path + "/COMPLETE", complete.dump(2) + "\n");
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  return final_path;
}

std::string verify_checkpoint(const std::string& path) {
  const std::string marker = path + "/COMPLETE";
  if (!fs::exists(marker)) return "no COMPLETE marker (interrupted write)";
  json complete;
  try {
    complete = json::parse(read_file(marker));
  } catch (const std::exception& e) {
    return std::string("unreadable COMPLETE marker: ") + e.what();
  }
  for (const char* f : kFiles) {
    const std::string p = path + "/" + f;
    if (!complete.contains(f)) return std::string("COMPLETE lacks ") + f;
    if (!fs::exists(p)) return std::string("missing ") + f;
    if (fs::file_size(p) != complete[f]["bytes"].get<uint64_t>()) return std::string("wrong size of ") + f;
    if (hash_file(p) != complete[f]["fnv1a64"].get<std::string>()) return std::string("hash mismatch in ") + f;
  }
  return "";
}

std::optional<std::string> find_latest_checkpoint(const std::string& root) {
  if (!fs::exists(root)) return std::nullopt;
  std::vector<std::pair<int64_t, std::string>> found;
  for (auto& e : fs::directory_iterator(root)) {
    int64_t step;
    if (e.is_directory() && is_step_dir(e.path(), &step)) found.push_back({step, e.path().string()});
  }
  std::sort(found.rbegin(), found.rend());
  for (auto& [step, path] : found) {
    const std::string why = verify_checkpoint(path);
    if (why.empty()) return path;
    spdlog::warn("skipping checkpoint {}: {}", path, why);
  }
  return std::nullopt;
}

void prune_checkpoints(const std::string& root, int keep_last) {
  if (!fs::exists(root)) return;
  std::vector<std::pair<int64_t, std::string>> complete;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(root)) {
    const std::string name = e.path().filename().string();
    int64_t step;
    if (name.rfind(".tmp_", 0) == 0) {
      // a temporary folder of a dead writer (ours are renamed before we get here)
      const auto pid = name.substr(name.find_last_of('_') + 1);
      if (pid != std::to_string(::getpid())) fs::remove_all(e.path(), ec);
    } else if (e.is_directory() && is_step_dir(e.path(), &step) && fs::exists(e.path() / "COMPLETE")) {
      complete.push_back({step, e.path().string()});
    }
  }
  if (keep_last <= 0) return;
  std::sort(complete.rbegin(), complete.rend());
  for (size_t i = size_t(keep_last); i < complete.size(); ++i) {
    fs::remove_all(complete[i].second, ec);
    spdlog::info("removed old checkpoint {}", complete[i].second);
  }
}

json read_trainer_state(const std::string& path) {
  const std::string f = path + "/trainer_state.json";
  try {
    return json::parse(read_file(f));
  } catch (const json::exception& e) {
    fail("{}: not valid JSON ({}); the checkpoint is damaged, pick another with --resume", f, e.what());
  }
}

void load_checkpoint_weights(LlamaModel& model, const std::string& path) {
  const std::string f = path + "/model.safetensors";
  auto st = SafetensorsFile::open(f);
  for (int i = 0; i < model.num_params(); ++i) {
    const auto& p = model.params()[size_t(i)];
    if (!st.has(p.name)) fail("{}: tensor '{}' missing (checkpoint of a different model shape?)", f, p.name);
    const StTensor& t = st.get(p.name);
    const Tensor& w = model.weight(i);
    if (t.numel() != p.numel())
      fail("{}: tensor '{}' has {} elements but the model needs {} (different model shape; check the config)", f,
           p.name, t.numel(), p.numel());
    if (t.dtype == st_of(w.dtype)) {
      model.upload_weight_bytes(i, t.data);  // exact: same dtype as the device
    } else {
      auto v = t.to_f32();
      model.set_weight(i, v.data());
    }
  }
}

void load_checkpoint_optimizer(Optimizer& opt, const std::string& path) {
  const std::string f = path + "/optimizer.safetensors";
  auto st = SafetensorsFile::open(f);
  auto it = st.metadata().find("optimizer");
  if (it != st.metadata().end() && it->second != opt.name())
    fail("{}: the checkpoint was written by optimizer '{}' but the config asks for '{}'; resume with the same "
         "optimizer.name or start a new run",
         f, it->second, opt.name());
  opt.load_state(st);
}

}  // namespace gt
