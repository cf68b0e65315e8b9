// File-system helpers for writes that never leave a half-written file under
// its final name: write to <path>.tmp.<pid>, fsync, rename, fsync the folder.
#pragma once
#include <string>
#include <string_view>

namespace gt {

// Writes bytes atomically; throws gt::Error naming the path on any failure
// (the temporary file is removed, an existing file at `path` is untouched).
void write_file_atomic(const std::string& path, std::string_view bytes);
void fsync_dir(const std::string& dir);
std::string read_file(const std::string& path);  // error names the path

// Test hook: when set (GALORE_FAIL_WRITES=<substring>), writes whose path
// contains the substring fail as if the disk were full.
bool injected_write_failure(const std::string& path);

}  // namespace gt
