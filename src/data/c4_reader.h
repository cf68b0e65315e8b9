// Reading C4 as distributed: c4-train.NNNNN-of-01024.json.gz (or plain .json),
// one JSON object per line with "text", "timestamp" and "url".
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gt {

// Expands paths and globs (sorted, duplicates removed). A pattern that
// matches nothing is an error whose message includes `hint` (how to make
// the missing files).
std::vector<std::string> expand_globs(const std::vector<std::string>& patterns, const std::string& what,
                                      const std::string& hint);

// Reads lines from a gzip or plain file (zlib reads both). Truncated or
// corrupt gzip data is an error naming the file, the compressed byte offset
// and the last complete line.
class LineReader {
 public:
  explicit LineReader(const std::string& path);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // Next line without its '\n'; false at the end of the file.
  bool next(std::string* line);
  int64_t line_no() const { return line_no_; }        // 1-based number of the last line returned
  int64_t bytes_out() const { return bytes_out_; }    // uncompressed bytes consumed
  int64_t bytes_in() const;                           // compressed bytes read so far
  const std::string& path() const { return path_; }

 private:
  bool fill();
  std::string path_;
  void* gz_ = nullptr;  // gzFile
  std::vector<char> buf_;
  size_t pos_ = 0, end_ = 0;
  bool eof_ = false;
  int64_t line_no_ = 0, bytes_out_ = 0;
};

// Offset of the first invalid UTF-8 byte in s, or -1 when s is valid UTF-8.
int64_t find_invalid_utf8(std::string_view s);

// Parses one C4 line. On success stores the document text and returns true;
// otherwise stores the reason ("not JSON: ...", "no \"text\" key", ...) in *why.
bool parse_c4_line(std::string_view line, std::string* text, std::string* why);

// True for names C4 readers treat as JSON lines (.json, .jsonl, with or without .gz).
bool is_json_lines_name(const std::string& path);

}  // namespace gt
