// One-line user-facing errors. Every bad input (config, data, checkpoint,
// command line) throws gt::Error with a message that names the file, key or
// position and says what to do; the tools print it and exit non-zero.
#pragma once
#include <stdexcept>
#include <string>
#include <fmt/format.h>

namespace gt {

// Control characters (a newline in a tensor name or in a library's message
// about a damaged file) are escaped as \xNN so that the message stays one line.
inline std::string one_line(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) out += fmt::format("\\x{:02x}", u);
    else out += c;
  }
  return out;
}

// nlohmann::json's message without its "[json.exception.parse_error.101] " prefix.
inline std::string json_reason(const std::exception& e) {
  const std::string what = e.what();
  const auto p = what.find("] ");
  return what.rfind("[json.exception", 0) == 0 && p != std::string::npos ? what.substr(p + 2) : what;
}

struct Error : std::runtime_error {
  explicit Error(const std::string& message) : std::runtime_error(one_line(message)) {}
};

template <typename... Args>
[[noreturn]] inline void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

// Internal invariant (a bug, not bad input).
#define GT_ASSERT(cond)                                                             \
  do {                                                                              \
    if (!(cond)) ::gt::fail("internal error: {} failed at {}:{}", #cond, __FILE__, __LINE__); \
  } while (0)

}  // namespace gt
