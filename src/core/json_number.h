// Range checks of numbers read from files (configs, HF config.json,
// trainer_state.json, integer tensors of safetensors files), shared so that
// every reader accepts the same values.
#pragma once
#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>

namespace gt {

// A whole number (3.0 counts, 2.5, NaN and inf do not) within [lo, hi].
inline bool integral_value_in(long double v, long double lo, long double hi) {
  return std::isfinite(v) && v == std::floor(v) && v >= lo && v <= hi;
}

// An integral JSON number (1e4 and 3.0 count, 2.5 does not) within [lo, hi];
// its value in *out.
inline bool integral_in(const nlohmann::json& v, long double lo, long double hi, long double* out) {
  if (v.is_number_unsigned()) *out = static_cast<long double>(v.get<uint64_t>());
  else if (v.is_number_integer()) *out = static_cast<long double>(v.get<int64_t>());
  else if (v.is_number_float()) *out = v.get<double>();
  else return false;
  return integral_value_in(*out, lo, hi);
}

}  // namespace gt
