#include "train/metrics.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/fs_util.h"

namespace gt {

void MetricsLog::open(const std::string& path, int64_t resume_step) {
  path_ = path;
  if (resume_step > 0 && std::filesystem::exists(path)) {
    std::ifstream in(path);
    std::string line, kept;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded()) continue;  // a torn last line of a killed run
      // drop the records of steps after the checkpoint (the run that died logged them); keep the rest
      const bool later = j.is_object() && j.contains("step") && j["step"].is_number() &&
                         j["step"].get<double>() > double(resume_step);
      if (!later) kept += line + "\n";
    }
    write_file_atomic(path, kept);
  }
  f_ = std::fopen(path.c_str(), resume_step > 0 ? "a" : "w");
  if (!f_) fail("cannot open metrics file {}: {}", path, std::strerror(errno));
}

MetricsLog::~MetricsLog() {
  if (f_) std::fclose(f_);
}

void MetricsLog::write(const nlohmann::json& record) {
  if (!f_) return;
  const std::string line = record.dump() + "\n";
  std::fwrite(line.data(), 1, line.size(), f_);
  std::fflush(f_);
}

}  // namespace gt
