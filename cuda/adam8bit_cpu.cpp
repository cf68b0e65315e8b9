// CPU reference of the blockwise 8-bit quantization and the 8-bit Adam step:
// loops over blocks calling the per-element functions of quant8.h / adam8bit.h.
#include "cuda/adam8bit.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace gt {

namespace {

// torch.linspace(start, end, steps) for float32 on the CPU (the scalar formula:
// the first half counts up from start, the second half down from end). The
// product goes through a volatile so that no FMA contraction changes rounding.
std::vector<float> linspace_f32(float start, float end, int64_t steps) {
  std::vector<float> out(static_cast<size_t>(steps));
  if (steps == 1) {
    out[0] = start;
    return out;
  }
  const float step = (end - start) / float(steps - 1);
  const int64_t halfway = steps / 2;
  for (int64_t i = 0; i < steps; ++i) {
    volatile float prod = step * float(i < halfway ? i : steps - i - 1);
    out[size_t(i)] = i < halfway ? start + prod : end - prod;
  }
  return out;
}

// bitsandbytes' `means` of one exponent decade: midpoints of linspace(0.1, 1, k),
// scaled by 10^e (float32 tensor times a Python scalar: the scalar is cast to float).
void append_decade(std::vector<float>& data, int64_t items, int exponent, bool is_signed) {
  const auto b = linspace_f32(0.1f, 1.0f, items);
  const float scale = float(std::pow(10.0, double(exponent)));
  std::vector<float> means(b.size() - 1);  // [items - 1]
  for (size_t j = 0; j + 1 < b.size(); ++j) means[j] = (b[j] + b[j + 1]) / 2.0f;
  for (float x : means) data.push_back(scale * x);
  if (is_signed)
    for (float x : means) data.push_back(-scale * x);
}

}  // namespace

void create_dynamic_map(bool is_signed, float* out, int max_exponent_bits, int total_bits) {
  std::vector<float> data;
  // bitsandbytes writes (1 if signed else 1): one bit is always reserved.
  const int non_sign_bits = total_bits - 1;
  const double additional_items = std::pow(2.0, non_sign_bits - max_exponent_bits) - 1.0;
  int i = 0;
  for (i = 0; i < max_exponent_bits; ++i) {
    const double items = is_signed ? std::pow(2.0, i + non_sign_bits - max_exponent_bits) + 1.0
                                   : std::pow(2.0, i + non_sign_bits - max_exponent_bits + 1) + 1.0;
    append_decade(data, int64_t(items), -(max_exponent_bits - 1) + i, is_signed);
  }
  // As bitsandbytes: the extra items reuse the last decade's exponent.
  if (additional_items > 0)
    append_decade(data, int64_t(additional_items) + 1, -(max_exponent_bits - 1) + (i - 1), is_signed);
  data.push_back(0.0f);
  data.push_back(1.0f);
  if (data.size() != (size_t(1) << total_bits)) fail("create_dynamic_map: {} entries, expected 2^{}", data.size(), total_bits);
  data.resize(256, 0.0f);
  std::sort(data.begin(), data.end());
  std::copy(data.begin(), data.end(), out);
}

const float* dynamic_map_signed() {
  static const auto map = [] {
    std::vector<float> m(256);
    create_dynamic_map(true, m.data());
    return m;
  }();
  return map.data();
}

const float* dynamic_map_unsigned() {
  static const auto map = [] {
    std::vector<float> m(256);
    create_dynamic_map(false, m.data());
    return m;
  }();
  return map.data();
}

void quantize_blockwise_cpu(const float* map, const float* x, int64_t n, uint8_t* codes, float* absmax) {
  for (int64_t b = 0; b < quant8_blocks(n); ++b) {
    const int64_t lo = b * kQuantBlock, hi = std::min(n, lo + kQuantBlock);
    float amax = 0.0f;
    for (int64_t i = lo; i < hi; ++i) amax = fmaxf(amax, fabsf(x[i]));
    absmax[b] = amax;
    const float inv = quant8_inv_absmax(amax);
    for (int64_t i = lo; i < hi; ++i) codes[i] = quant8(map, x[i], inv);
  }
}

void dequantize_blockwise_cpu(const float* map, const uint8_t* codes, const float* absmax, int64_t n, float* x) {
  for (int64_t i = 0; i < n; ++i) x[i] = dequant8(map, codes[i], absmax[i / kQuantBlock]);
}

void adam8bit_step_cpu(const float* g, float* dir, uint8_t* cm, uint8_t* cv, float* am, float* av, int64_t n,
                       const float* map_m, const float* map_v, float beta1, float beta2, float eps) {
  float m[kQuantBlock], v[kQuantBlock];  // one block's fresh fp32 moments
  for (int64_t b = 0; b < quant8_blocks(n); ++b) {
    const int64_t lo = b * kQuantBlock, len = std::min<int64_t>(kQuantBlock, n - lo);
    float amax_m = 0.0f, amax_v = 0.0f;
    for (int64_t j = 0; j < len; ++j) {
      const int64_t i = lo + j;
      const bool ok = adam8_moments(g[i], cm[i], cv[i], am[b], av[b], map_m, map_v, beta1, beta2, &m[j], &v[j]);
      dir[i] = ok ? adam8_direction(m[j], v[j], eps) : 0.0f;
      amax_m = fmaxf(amax_m, fabsf(m[j]));
      amax_v = fmaxf(amax_v, v[j]);
    }
    am[b] = amax_m;
    av[b] = amax_v;
    const float inv_m = quant8_inv_absmax(amax_m), inv_v = quant8_inv_absmax(amax_v);
    for (int64_t j = 0; j < len; ++j) {
      cm[lo + j] = quant8(map_m, m[j], inv_m);
      cv[lo + j] = quant8(map_v, v[j], inv_v);
    }
  }
}

void adam32_step_cpu(const float* g, float* dir, float* m, float* v, int64_t n, float beta1, float beta2, float eps) {
  for (int64_t i = 0; i < n; ++i) {
    if (!finite_f32(g[i])) {  // drop this element's history; no update
      m[i] = v[i] = 0.0f;
      dir[i] = 0.0f;
      continue;
    }
    dir[i] = adam_moments_update(g[i], &m[i], &v[i], beta1, beta2, eps);
  }
}

}  // namespace gt
