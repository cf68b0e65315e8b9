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
  // append = true when resuming (records after the resume step are dropped by the reader).
  void open(const std::string& path, bool append);
  ~MetricsLog();
  void write(const nlohmann::json& record);
  const std::string& path() const { return path_; }

 private:
  std::FILE* f_ = nullptr;
  std::string path_;
};

}  // namespace gt
