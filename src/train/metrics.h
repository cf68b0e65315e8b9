// Metrics: one JSON object per line (JSONL) in <logging.dir>/metrics.jsonl,
// flushed per line so a crash loses at most the line being written.
#pragma once
#include <cstdio>
#include <string>
#include <nlohmann/json.hpp>

namespace gt {

class MetricsLog {
 public:
  MetricsLog() = default;
  // Opens for appending; when resuming at `resume_step` > 0, records of later
  // steps (written after that checkpoint by the run that died) are dropped
  // first, so the file reads as one uninterrupted run. resume_step 0 truncates.
  void open(const std::string& path, int64_t resume_step);
  ~MetricsLog();
  void write(const nlohmann::json& record);
  const std::string& path() const { return path_; }

 private:
  std::FILE* f_ = nullptr;
  std::string path_;
};

}  // namespace gt
