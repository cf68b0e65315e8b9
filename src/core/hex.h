// Bytes as lowercase hex text and back (binary blobs inside JSON files).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace gt {

inline std::string hex_encode(const uint8_t* p, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string s(2 * n, '0');
  for (size_t i = 0; i < n; ++i) s[2 * i] = kDigits[p[i] >> 4], s[2 * i + 1] = kDigits[p[i] & 15];
  return s;
}

// false (and *out unchanged) if s has odd length or a non-hex character.
inline bool hex_decode(const std::string& s, std::vector<uint8_t>* out) {
  auto digit = [](char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
  };
  if (s.size() % 2) return false;
  std::vector<uint8_t> v(s.size() / 2);
  for (size_t i = 0; i < v.size(); ++i) {
    const int hi = digit(s[2 * i]), lo = digit(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    v[i] = uint8_t(hi * 16 + lo);
  }
  *out = std::move(v);
  return true;
}

}  // namespace gt
