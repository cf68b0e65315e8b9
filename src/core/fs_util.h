// File-system helpers for writes that never leave a half-written file under
// its final name: write to <path>.tmp.<pid>, fsync, rename, fsync the folder.
#pragma once
#include <string>
#include <string_view>

namespace gt {

// A file streamed to <path>.tmp.<pid> and renamed to `path` by commit() (after
// fsync, then the folder is fsynced). Destroyed without commit (an error, an
// exception in the caller), it removes the temporary: an existing file at
// `path` is untouched. Errors are gt::Error naming the path.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  void write(const void* data, size_t n);
  void commit();

 private:
  [[noreturn]] void fail_with(int err);
  std::string path_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

// Writes bytes atomically (AtomicFile).
void write_file_atomic(const std::string& path, std::string_view bytes);
void fsync_dir(const std::string& dir);
std::string read_file(const std::string& path);  // error names the path

// Test hook: when set (GALORE_FAIL_WRITES=<substring>), writes whose path
// contains the substring fail as if the disk were full.
bool injected_write_failure(const std::string& path);

}  // namespace gt
