#include "checkpoint/checkpoint.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/fs_util.h"
#include "core/json_number.h"
#include "core/safetensors.h"
#include "model/hf_io.h"
#include "model/llama.h"
#include "optim/optimizer.h"

namespace gt {

namespace fs = std::filesystem;
using nlohmann::json;

// ---------------------------------------------------------------------------
// XXH64 (public-domain algorithm by Yann Collet), streaming.
namespace {
constexpr uint64_t P1 = 11400714785074694791ULL, P2 = 14029467366897019727ULL, P3 = 1609587929392839161ULL,
                   P4 = 9650029242287828579ULL, P5 = 2870177450012600261ULL;
inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
inline uint64_t rd64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;  // little-endian hosts only (x86-64, aarch64)
}
inline uint32_t rd32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t round64(uint64_t acc, uint64_t in) { return rotl(acc + in * P2, 31) * P1; }
inline uint64_t merge64(uint64_t acc, uint64_t v) { return (acc ^ round64(0, v)) * P1 + P4; }

class Xxh64 {
 public:
  explicit Xxh64(uint64_t seed = 0) : seed_(seed), v_{seed + P1 + P2, seed + P2, seed, seed - P1} {}
  void update(const void* data, size_t n) {
    const uint8_t* p = static_cast<const uint8_t*>(data);
    total_ += n;
    if (buf_n_ + n < 32) {
      std::memcpy(buf_ + buf_n_, p, n);
      buf_n_ += n;
      return;
    }
    if (buf_n_) {
      const size_t take = 32 - buf_n_;
      std::memcpy(buf_ + buf_n_, p, take);
      stripe(buf_);
      p += take;
      n -= take;
      buf_n_ = 0;
    }
    while (n >= 32) {
      stripe(p);
      p += 32;
      n -= 32;
    }
    std::memcpy(buf_, p, n);
    buf_n_ = n;
  }
  uint64_t digest() const {
    uint64_t h;
    if (total_ >= 32) {
      h = rotl(v_[0], 1) + rotl(v_[1], 7) + rotl(v_[2], 12) + rotl(v_[3], 18);
      for (uint64_t v : v_) h = merge64(h, v);
    } else {
      h = seed_ + P5;
    }
    h += total_;
    const uint8_t* p = buf_;
    const uint8_t* end = buf_ + buf_n_;
    for (; p + 8 <= end; p += 8) h = rotl(h ^ round64(0, rd64(p)), 27) * P1 + P4;
    if (p + 4 <= end) {
      h = rotl(h ^ (uint64_t(rd32(p)) * P1), 23) * P2 + P3;
      p += 4;
    }
    for (; p < end; ++p) h = rotl(h ^ (uint64_t(*p) * P5), 11) * P1;
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
  }

 private:
  void stripe(const uint8_t* p) {
    for (int i = 0; i < 4; ++i) v_[i] = round64(v_[i], rd64(p + 8 * i));
  }
  uint64_t seed_;
  uint64_t v_[4];
  uint8_t buf_[32];
  size_t buf_n_ = 0;
  uint64_t total_ = 0;
};
}  // namespace

uint64_t xxh64(const void* data, size_t n, uint64_t seed) {
  Xxh64 h(seed);
  h.update(data, n);
  return h.digest();
}

std::string xxh64_file_hex(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail("cannot read {}: {}", path, std::strerror(errno));
  Xxh64 h;
  std::vector<char> buf(size_t(4) << 20);
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      fail("cannot read {}: {}", path, std::strerror(err));
    }
    if (n == 0) break;
    h.update(buf.data(), size_t(n));
  }
  ::close(fd);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h.digest()));
  return hex;
}

// ---------------------------------------------------------------------------
namespace {
const char* kFiles[] = {"model.safetensors", "config.json", "optimizer.safetensors", "trainer_state.json"};
const char* kTmpPrefix = ".tmp_";  // .tmp_step_NNNNNNNN_<pid>: a checkpoint being written
const char* kOldPrefix = ".old_";  // .old_step_NNNNNNNN_<pid>: a replaced checkpoint being deleted

int64_t g_last_written_step = -1;  // by this process (prune_checkpoints' default protection)

StDType st_of(DType t) {
  switch (t) {
    case DType::F32: return StDType::F32;
    case DType::BF16: return StDType::BF16;
    case DType::I32: return StDType::I32;
    case DType::U8: return StDType::U8;
  }
  return StDType::F32;
}

// The pid at the end of ".tmp_step_NNNNNNNN_<pid>" (or -1).
long pid_of_scratch(const std::string& name) {
  const auto us = name.find_last_of('_');
  if (us == std::string::npos || us + 1 >= name.size()) return -1;
  const std::string s = name.substr(us + 1);
  if (!std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) return -1;
  try {
    return std::stol(s);
  } catch (...) {
    return -1;
  }
}

bool process_alive(long pid) { return pid > 0 && (::kill(pid_t(pid), 0) == 0 || errno == EPERM); }

// Cheap completeness check (no hashing): marker parses, every file has its size.
bool looks_complete(const fs::path& dir) {
  std::error_code ec;
  const fs::path marker = dir / "COMPLETE";
  if (!fs::is_regular_file(marker, ec)) return false;
  try {
    const json c = json::parse(read_file(marker.string()));
    for (const char* f : kFiles) {
      const auto size = fs::file_size(dir / f, ec);
      if (ec || size != c.at("files").at(f).at("bytes").get<uint64_t>()) return false;
    }
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

// Replaces the folder `dst` by `src` (both under the same parent); the old
// `dst` ends up deleted. Atomic where renameat2(RENAME_EXCHANGE) works.
void replace_dir(const std::string& src, const std::string& dst, const std::string& old_name) {
  std::error_code ec;
#ifdef RENAME_EXCHANGE
  if (::renameat2(AT_FDCWD, src.c_str(), AT_FDCWD, dst.c_str(), RENAME_EXCHANGE) == 0) {
    fs::remove_all(src, ec);  // now holds the old checkpoint
    return;
  }
#endif
  // Fallback: move the old one aside, then the new one in.
  fs::remove_all(old_name, ec);
  fs::rename(dst, old_name, ec);
  if (ec) fail("cannot move the old {} aside to replace it: {}", dst, ec.message());
  fs::rename(src, dst, ec);
  if (ec) {
    const std::string why = ec.message();
    fs::rename(old_name, dst, ec);  // put the old one back
    fail("cannot rename {} to {}: {}", src, dst, why);
  }
  fs::remove_all(old_name, ec);
}

std::string write_checkpoint_impl(const std::string& root, int64_t step, const LlamaModel& model,
                                  const Optimizer& opt, const json& trainer_state) {
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) fail("cannot create checkpoint directory {}: {} (check checkpoint.dir)", root, ec.message());
  if (!fs::is_directory(root, ec)) fail("checkpoint directory {} is not a directory (check checkpoint.dir)", root);
  const std::string name = checkpoint_name(step);
  const std::string final_path = root + "/" + name;
  const std::string suffix = name + "_" + std::to_string(::getpid());
  const std::string tmp = root + "/" + kTmpPrefix + suffix;
  fs::remove_all(tmp, ec);
  fs::create_directory(tmp, ec);
  if (ec) fail("cannot create {}: {} (check checkpoint.dir is writable)", tmp, ec.message());
  try {
    // model weights, native dtype (bit-exact), HF names and shapes
    {
      // deferred: each weight is downloaded while the file is written (one in host memory at a time)
      SafetensorsWriter w;
      w.set_metadata("format", "pt");
      for (int i = 0; i < model.num_params(); ++i) {
        const auto& p = model.params()[size_t(i)];
        w.add_deferred(p.name, st_of(model.weight(i).dtype), p.hf_shape(), model.weight_file_bytes(i),
                       [&model, i](void* dst) { model.download_weight_bytes(i, dst); });
      }
      w.write(tmp + "/model.safetensors");
    }
    {
      SafetensorsWriter o;
      opt.save_state(o);
      o.set_metadata("optimizer", opt.name());
      o.write(tmp + "/optimizer.safetensors");
    }
    write_file_atomic(tmp + "/trainer_state.json", trainer_state.dump(2) + "\n");
    // HF config so the folder is a loadable HF model directory
    const bool bf16 = model.num_params() > 0 && model.weight(0).dtype == DType::BF16;
    write_file_atomic(tmp + "/config.json", hf_config_json(model.config(), bf16 ? "bf16" : "fp32").dump(2) + "\n");
    // COMPLETE: sizes and hashes of what is on disk, written last (fsynced).
    json complete = {{"format", kCheckpointFormat}, {"step", step}, {"hash", "xxh64"}, {"files", json::object()}};
    for (const char* f : kFiles) {
      const std::string p = tmp + "/" + f;
      complete["files"][f] = {{"bytes", fs::file_size(p)}, {"xxh64", xxh64_file_hex(p)}};
    }
    write_file_atomic(tmp + "/COMPLETE", complete.dump(2) + "\n");
    fsync_dir(tmp);
    // Commit: one rename makes the whole folder appear.
    if (fs::exists(fs::symlink_status(final_path))) {
      spdlog::warn("replacing {} (left by an earlier run{})", final_path,
                   looks_complete(final_path) ? "" : ", incomplete");
      replace_dir(tmp, final_path, root + "/" + kOldPrefix + suffix);
    } else {
      fs::rename(tmp, final_path, ec);
      if (ec) fail("cannot rename {} to {}: {}", tmp, final_path, ec.message());
    }
    fsync_dir(root);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  g_last_written_step = step;
  return final_path;
}

std::string verify_impl(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return "no such directory";
  if (!fs::is_directory(path, ec)) return "not a directory";
  const std::string marker = path + "/COMPLETE";
  if (!fs::exists(marker, ec)) {
    for (auto& e : fs::directory_iterator(path, ec))
      if (checkpoint_step(e.path().filename().string()) >= 0)
        return "no COMPLETE marker: this is a checkpoint root, not a checkpoint (use --resume auto, or one of its "
               "step_NNNNNNNN folders)";
    return "no COMPLETE marker (an unfinished write, or not a checkpoint folder)";
  }
  json complete;
  try {
    complete = json::parse(read_file(marker));
  } catch (const std::exception& e) {
    return std::string("unreadable COMPLETE marker: ") + e.what();
  }
  if (!complete.is_object() || complete.value("format", 0) != kCheckpointFormat || !complete.contains("files") ||
      !complete["files"].is_object())
    return fmt::format("COMPLETE marker is not format {} (written by another version?)", kCheckpointFormat);
  for (const char* f : kFiles) {
    const std::string p = path + "/" + f;
    const json& files = complete["files"];
    if (!files.contains(f) || !files[f].contains("bytes") || !files[f].contains("xxh64"))
      return std::string("COMPLETE lacks ") + f;
    if (!fs::is_regular_file(p, ec)) return std::string("missing ") + f;
    const auto size = fs::file_size(p, ec);
    if (ec || !files[f]["bytes"].is_number_unsigned() || size != files[f]["bytes"].get<uint64_t>())
      return fmt::format("{} has {} bytes, COMPLETE says {} (truncated or damaged)", f, size,
                         files[f]["bytes"].dump());
    if (xxh64_file_hex(p) != files[f]["xxh64"].get<std::string>()) return fmt::format("hash mismatch in {} (damaged)", f);
  }
  return "";
}
}  // namespace

std::string checkpoint_name(int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step_%08lld", static_cast<long long>(step));
  return name;
}

int64_t checkpoint_step(const std::string& n) {
  if (n.rfind("step_", 0) != 0 || n.size() < 13 || n.size() > 23) return -1;
  const std::string digits = n.substr(5);
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) return -1;
  return std::stoll(digits);
}

std::string write_checkpoint(const std::string& root, int64_t step, const LlamaModel& model, const Optimizer& opt,
                             const json& trainer_state) {
  try {
    return write_checkpoint_impl(root, step, model, opt, trainer_state);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {  // std::filesystem_error, bad_alloc, ...
    fail("cannot write checkpoint {} under {}: {}", checkpoint_name(step), root, e.what());
  }
}

std::string verify_checkpoint(const std::string& path) {
  try {
    return verify_impl(path);
  } catch (const std::exception& e) {
    return std::string("cannot verify: ") + e.what();
  }
}

std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& root) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return found;
  for (auto& e : fs::directory_iterator(root, ec)) {
    const int64_t step = checkpoint_step(e.path().filename().string());
    if (step >= 0 && e.is_directory(ec) && looks_complete(e.path())) found.push_back({step, e.path().string()});
  }
  std::sort(found.begin(), found.end());
  return found;
}

std::optional<std::string> find_latest_checkpoint(const std::string& root) {
  std::error_code ec;
  if (!fs::exists(root, ec)) return std::nullopt;
  if (!fs::is_directory(root, ec)) fail("checkpoint directory {} is not a directory (check checkpoint.dir)", root);
  std::vector<std::pair<int64_t, std::string>> found;
  for (auto& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    const int64_t step = checkpoint_step(name);
    if (step >= 0 && e.is_directory(ec)) found.push_back({step, e.path().string()});
    else if (name.rfind(kTmpPrefix, 0) == 0)
      spdlog::info("ignoring {}: an unfinished checkpoint write (deleted at the next checkpoint)", e.path().string());
  }
  if (ec) fail("cannot list checkpoint directory {}: {}", root, ec.message());
  std::sort(found.rbegin(), found.rend());
  for (auto& [step, path] : found) {
    const std::string why = verify_checkpoint(path);
    if (why.empty()) return path;
    spdlog::warn("skipping checkpoint {}: {}", path, why);
  }
  return std::nullopt;
}

void prune_checkpoints(const std::string& root, int keep_last, int64_t current_step) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return;
  if (current_step < 0) current_step = g_last_written_step;
  std::vector<std::pair<int64_t, std::string>> complete;
  std::vector<fs::path> scratch;
  for (auto& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(kTmpPrefix, 0) == 0 || name.rfind(kOldPrefix, 0) == 0) {
      // Scratch folder of a writer that died, or an earlier one with our pid
      // (pids repeat across container restarts; this process is not writing
      // now). Another live writer's is left alone.
      const long pid = pid_of_scratch(name);
      if (pid == long(::getpid()) || !process_alive(pid)) scratch.push_back(e.path());
      continue;
    }
    const int64_t step = checkpoint_step(name);
    if (step < 0 || (current_step >= 0 && step > current_step)) continue;
    std::error_code ec2;
    if (e.is_directory(ec2) && looks_complete(e.path())) complete.push_back({step, e.path().string()});
  }
  for (auto& p : scratch) {
    std::error_code ec2;
    fs::remove_all(p, ec2);
  }
  if (keep_last <= 0) return;
  std::sort(complete.rbegin(), complete.rend());
  for (size_t i = size_t(keep_last); i < complete.size(); ++i) {
    if (complete[i].first == current_step) continue;
    // Rename first, so a kill mid-delete leaves a scratch folder (deleted
    // next time), never a half-deleted step_ folder.
    std::error_code ec2;
    const std::string doomed =
        root + "/" + kOldPrefix + checkpoint_name(complete[i].first) + "_" + std::to_string(::getpid());
    fs::remove_all(doomed, ec2);
    fs::rename(complete[i].second, doomed, ec2);
    if (!ec2) fs::remove_all(doomed, ec2);
    else fs::remove_all(complete[i].second, ec2);
    if (ec2) spdlog::warn("could not remove old checkpoint {}: {}", complete[i].second, ec2.message());
    else spdlog::info("removed old checkpoint {}", complete[i].second);
  }
}

std::string probe_checkpoint_dir(const std::string& root) {
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return fmt::format("cannot create {}: {}", root, ec.message());
  if (!fs::is_directory(root, ec)) return fmt::format("{} is not a directory", root);
  const std::string probe = root + "/.probe_" + std::to_string(::getpid());
  try {
    write_file_atomic(probe, "probe\n");
  } catch (const std::exception& e) {
    return e.what();
  }
  fs::remove(probe, ec);
  return "";
}

json read_trainer_state(const std::string& path) {
  const std::string f = path + "/trainer_state.json";
  json st;
  try {
    st = json::parse(read_file(f));
  } catch (const json::exception& e) {
    fail("{}: not valid JSON ({}); the checkpoint is damaged, pick another with --resume", f, e.what());
  }
  for (const char* key : {"step", "tokens", "prev_grad_norm", "data_position", "config", "version"})
    if (!st.is_object() || !st.contains(key))
      fail("{}: no \"{}\" (written by another version of galore-train?); pick another checkpoint", f, key);
  // The counters a resume reads back; optional ones were added after the first format.
  // Counts stay below 2^53 (exact in a double; far from int64 overflow when a step adds to them).
  const auto count = [](const json& v) {
    long double n;
    return integral_in(v, 0, 0x1p53L - 1, &n);
  };
  const auto small_count = [](const json& v) {
    long double n;
    return integral_in(v, 0, INT32_MAX, &n);
  };
  const auto number = [](const json& v) { return v.is_number() && std::isfinite(v.get<double>()); };
  const struct {
    const char* key;
    bool required;
    bool (*ok)(const json&);
    const char* expected;
  } fields[] = {{"step", true, count, "an integer from 0 to 2^53"},
                {"tokens", true, count, "an integer from 0 to 2^53"},
                {"prev_grad_norm", true, number, "a number"},
                {"skipped_steps", false, count, "an integer from 0 to 2^53"},
                {"log_loss_count", false, small_count, "an integer from 0 to 2^31-1"},
                {"elapsed_s", false, number, "a number"},
                {"log_loss_sum", false, number, "a number"}};
  for (const auto& field : fields)
    if ((field.required || st.contains(field.key)) && !field.ok(st[field.key]))
      fail("{}: \"{}\" is {}, expected {}; the checkpoint is damaged, pick another", f, field.key,
           st[field.key].dump(), field.expected);
  if (!st["config"].is_object() || !st["config"].contains("model") || !st["config"]["model"].is_object() ||
      !st["config"].contains("optimizer") || !st["config"]["optimizer"].is_object())
    fail("{}: \"config\" lacks its model or optimizer section; the checkpoint is damaged, pick another", f);
  if (!st["data_position"].is_null() && !st["data_position"].is_object())
    fail("{}: \"data_position\" is {}, expected an object or null; the checkpoint is damaged, pick another", f,
         st["data_position"].dump());
  return st;
}

void load_checkpoint_weights(LlamaModel& model, const std::string& path) {
  const std::string f = path + "/model.safetensors";
  auto st = SafetensorsFile::open(f);
  for (int i = 0; i < model.num_params(); ++i) {
    const auto& p = model.params()[size_t(i)];
    if (!st.has(p.name)) fail("{}: tensor '{}' missing (checkpoint of a different model shape?)", f, p.name);
    const StTensor& t = st.get(p.name);
    const Tensor& w = model.weight(i);
    if (t.shape != p.hf_shape())
      fail("{}: tensor '{}' has shape [{}] but the model needs [{}] (different model shape; check the config)", f,
           p.name, fmt::join(t.shape, ", "), fmt::join(p.hf_shape(), ", "));
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
