// One-line user-facing errors. Every bad input (config, data, checkpoint,
// command line) throws gt::Error with a message that names the file, key or
// position and says what to do; the tools print it and exit non-zero.
#pragma once
#include <stdexcept>
#include <string>
#include <fmt/format.h>

namespace gt {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
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
