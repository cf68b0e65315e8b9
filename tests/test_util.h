// Helpers shared by the CPU tests.
#pragma once
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/safetensors.h"
#include "optim/optimizer.h"

namespace gt::test {

// A fresh directory under the system temp dir, removed with everything in it.
struct TempDir {
  std::string path;
  explicit TempDir(const std::string& prefix = "gt_test") {
    std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "_XXXXXX")).string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed for " + tmpl);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

// n normal(0, 1) values times scale, from the project's seeded Rng.
inline std::vector<float> randn(size_t n, uint64_t seed, float scale = 1.0f) {
  Rng rng(seed);
  std::vector<float> x(n);
  for (auto& v : x) v = scale * float(rng.normal());
  return x;
}

// An optimizer's checkpoint tensors by name (raw bytes), through a save to
// `path` (removed afterwards unless keep_file): what two optimizers must agree
// on bit for bit.
inline std::map<std::string, std::vector<uint8_t>> state_of(const Optimizer& opt, const std::string& path,
                                                             bool keep_file = false) {
  SafetensorsWriter out;
  opt.save_state(out);
  out.write(path);
  SafetensorsFile f = SafetensorsFile::open(path);
  std::map<std::string, std::vector<uint8_t>> m;
  for (const std::string& name : f.names()) {
    const StTensor& t = f.get(name);
    m[name] = std::vector<uint8_t>(t.data, t.data + t.nbytes);
  }
  if (!keep_file) std::filesystem::remove(path);
  return m;
}

}  // namespace gt::test
