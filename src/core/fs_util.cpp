#include "core/fs_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace gt {

bool injected_write_failure(const std::string& path) {
  const char* pat = std::getenv("GALORE_FAIL_WRITES");
  return pat && *pat && path.find(pat) != std::string::npos;
}

void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)), tmp_(path_ + ".tmp." + std::to_string(::getpid())) {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd_ < 0) fail("cannot write {}: {} (check the directory exists and is writable)", path_, std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (committed_) return;
  if (fd_ >= 0) ::close(fd_);
  ::unlink(tmp_.c_str());
}

void AtomicFile::fail_with(int err) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(tmp_.c_str());
  fail("cannot write {}: {} (free disk space or choose another directory)", path_, std::strerror(err));
}

void AtomicFile::write(const void* data, size_t n) {
  GT_ASSERT(fd_ >= 0 && !committed_);
  if (injected_write_failure(path_)) fail_with(ENOSPC);
  const char* p = static_cast<const char*>(data);
  size_t done = 0;
  while (done < n) {
    const ssize_t k = ::write(fd_, p + done, n - done);
    if (k < 0) {
      if (errno == EINTR) continue;
      fail_with(errno);
    }
    done += size_t(k);
  }
}

void AtomicFile::commit() {
  GT_ASSERT(fd_ >= 0 && !committed_);
  if (injected_write_failure(path_)) fail_with(ENOSPC);  // also for empty files
  if (::fsync(fd_) != 0) fail_with(errno);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail_with(errno);
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail_with(errno);
  committed_ = true;
  auto slash = path_.find_last_of('/');
  fsync_dir(slash == std::string::npos ? "." : path_.substr(0, slash));
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  AtomicFile f(path);
  f.write(bytes.data(), bytes.size());
  f.commit();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read {}: {}", path, std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace gt
