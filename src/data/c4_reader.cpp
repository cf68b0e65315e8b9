#include "data/c4_reader.h"

#include <glob.h>
#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace gt {

std::vector<std::string> expand_globs(const std::vector<std::string>& patterns, const std::string& what,
                                      const std::string& hint) {
  if (patterns.empty()) fail("no {} given; {}", what, hint);
  std::vector<std::string> out;
  for (const auto& pat : patterns) {
    glob_t g{};
    int rc = ::glob(pat.c_str(), GLOB_NOSORT, nullptr, &g);
    size_t before = out.size();
    if (rc == 0)
      for (size_t i = 0; i < g.gl_pathc; i++) out.emplace_back(g.gl_pathv[i]);
    ::globfree(&g);
    if (out.size() == before) fail("no {} match '{}'; {}", what, pat, hint);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

LineReader::LineReader(const std::string& path) : path_(path), buf_(1 << 20) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail("cannot open {}: {}", path, std::strerror(errno));
  if (S_ISDIR(st.st_mode)) fail("{} is a directory; pass the .json.gz files in it (e.g. '{}/*.json.gz')", path, path);
  gzFile gz = gzopen(path.c_str(), "rb");
  if (!gz) fail("cannot open {}: {}", path, std::strerror(errno));
  gzbuffer(gz, 1 << 18);
  gz_ = gz;
  // zlib reads non-gzip files as-is; a .gz name that is not gzip is a mistake.
  if (path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0) {
    char c;
    int n = gzread(gz, &c, 1);  // gzdirect() is only known after the first read
    if (n == 1 && gzdirect(gz)) {
      gzclose(gz);
      gz_ = nullptr;
      fail("{}: not gzip data at byte 0 although the name ends in .gz", path);
    }
    if (n == 1) { buf_[0] = c; end_ = 1; }
  }
}

LineReader::~LineReader() {
  if (gz_) gzclose(static_cast<gzFile>(gz_));
}

int64_t LineReader::bytes_in() const { return gz_ ? int64_t(gzoffset(static_cast<gzFile>(gz_))) : 0; }

bool LineReader::fill() {
  if (eof_) return false;
  if (pos_ > 0) {  // keep the unfinished line at the front
    std::memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
    end_ -= pos_;
    pos_ = 0;
  }
  if (end_ == buf_.size()) buf_.resize(buf_.size() * 2);  // a line longer than the buffer
  auto* gz = static_cast<gzFile>(gz_);
  int n = gzread(gz, buf_.data() + end_, unsigned(buf_.size() - end_));
  if (n <= 0) {
    int code = Z_OK;
    const char* msg = gzerror(gz, &code);
    // zlib reports a stream that stops early as Z_BUF_ERROR "unexpected end of file".
    if (code == Z_BUF_ERROR)
      fail("{}: truncated gzip at compressed byte {} (after line {}): {}; the file is incomplete, "
           "download it again", path_, gzoffset(gz), line_no_, msg);
    if (code != Z_OK || n < 0)
      fail("{}: corrupt gzip data near compressed byte {} (after line {}): {}; download the file again",
           path_, gzoffset(gz), line_no_, msg);
    eof_ = true;
    return false;
  }
  end_ += size_t(n);
  return true;
}

bool LineReader::next(std::string* line) {
  size_t scan = pos_;
  for (;;) {
    const char* nl = static_cast<const char*>(std::memchr(buf_.data() + scan, '\n', end_ - scan));
    if (nl) {
      size_t len = size_t(nl - (buf_.data() + pos_));
      line->assign(buf_.data() + pos_, len);
      pos_ += len + 1;
      bytes_out_ += int64_t(len + 1);
      line_no_++;
      return true;
    }
    scan = end_ - pos_;  // offset of the unscanned part after fill() moves data to the front
    if (!fill()) break;
  }
  if (end_ > pos_) {  // last line without '\n'
    line->assign(buf_.data() + pos_, end_ - pos_);
    bytes_out_ += int64_t(end_ - pos_);
    pos_ = end_;
    line_no_++;
    return true;
  }
  return false;
}

int64_t find_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    unsigned c = p[i];
    if (c < 0x80) { i++; continue; }
    size_t len;
    unsigned min;
    if ((c & 0xe0) == 0xc0) { len = 2; min = 0x80; c &= 0x1f; }
    else if ((c & 0xf0) == 0xe0) { len = 3; min = 0x800; c &= 0x0f; }
    else if ((c & 0xf8) == 0xf0) { len = 4; min = 0x10000; c &= 0x07; }
    else return int64_t(i);
    if (i + len > n) return int64_t(i);
    for (size_t k = 1; k < len; k++) {
      if ((p[i + k] & 0xc0) != 0x80) return int64_t(i);
      c = (c << 6) | (p[i + k] & 0x3f);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are invalid.
    if (c < min || (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff) return int64_t(i);
    i += len;
  }
  return -1;
}

bool parse_c4_line(std::string_view line, std::string* text, std::string* why) {
  // Check UTF-8 first so the message gives the byte offset within the line.
  int64_t bad = find_invalid_utf8(line);
  if (bad >= 0) {
    *why = fmt::format("invalid UTF-8 at byte {} of the line", bad + 1);
    return false;
  }
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    // e.byte is 1-based; keep nlohmann's reason without its "[json.exception...]" prefix.
    std::string what = e.what();
    auto reason = what.find("syntax error");
    *why = fmt::format("not JSON at byte {} of the line ({})", e.byte,
                       reason == std::string::npos ? what : what.substr(reason));
    return false;
  } catch (const nlohmann::json::exception& e) {  // out_of_range: a number such as 1e400
    *why = fmt::format("not usable JSON ({})", json_reason(e));
    return false;
  }
  if (!j.is_object()) {
    *why = "JSON value is not an object with a \"text\" key";
    return false;
  }
  auto it = j.find("text");
  if (it == j.end()) {
    *why = "no \"text\" key";
    return false;
  }
  if (!it->is_string()) {
    *why = fmt::format("\"text\" is a {}, not a string", it->type_name());
    return false;
  }
  *text = it->get<std::string>();
  return true;
}

bool is_json_lines_name(const std::string& path) {
  auto ends = [&](const char* s) {
    size_t n = std::strlen(s);
    return path.size() >= n && path.compare(path.size() - n, n, s) == 0;
  };
  return ends(".json") || ends(".jsonl") || ends(".json.gz") || ends(".jsonl.gz");
}

}  // namespace gt
