// Range checks of JSON numbers read from files (configs, HF config.json,
// trainer_state.json), shared so that every reader accepts the same values.
#pragma once
#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>

namespace gt {

// An integral JSON number (1e4 and 3.0 count, 2.5 does not) within [lo, hi];
// its value in *out.
inline bool integral_in(const nlohmann::json& v, long double lo, long double hi, long double* out) {
  if (v.is_number_unsigned()) *out = static_cast<long double>(v.get<uint64_t>());
  else if (v.is_number_integer()) *out = static_cast<long double>(v.get<int64_t>());
  else if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!std::isfinite(d) || d != std::floor(d)) return false;
    *out = d;
  } else return false;
  return *out >= lo && *out <= hi;
}

}  // namespace gt
