// Blockwise 8-bit quantization of optimizer states, as bitsandbytes' blockwise
// 8-bit optimizers: blocks of kQuantBlock elements share one fp32 absmax; each
// element stores the index of the nearest entry of a sorted 256-entry "dynamic"
// code map for x / absmax. The per-element functions are written once for the
// CPU reference and the CUDA kernels (the kernel keeps the map in shared or
// constant memory and passes a pointer to it).
#pragma once
#include <cmath>
#include <cstdint>

#include "cuda/common.h"

namespace gt {

constexpr int kQuantBlock = 256;          // elements per absmax block
constexpr int64_t kMin8bitNumel = 4096;   // smaller tensors keep fp32 states (bitsandbytes min_8bit_size)

// Number of absmax blocks for n elements.
GT_HD int64_t quant8_blocks(int64_t n) { return (n + kQuantBlock - 1) / kQuantBlock; }

// True for finite x. fabsf(NaN) <= max is false, fabsf(Inf) > max; works on
// host and device without std::isfinite.
GT_HD bool finite_f32(float x) { return fabsf(x) <= 3.402823466e+38f; }

// Index of the entry of map[256] (sorted ascending) nearest to x; ties go to
// the lower index. Binary lifting over 8 levels: no data-dependent loop count.
GT_HD uint8_t quant8_nearest(const float* map, float x) {
  int lo = 0;  // largest index with map[lo] <= x (0 when x < map[0])
  for (int step = 128; step > 0; step >>= 1)
    if (lo + step <= 255 && map[lo + step] <= x) lo += step;
  const int hi = lo < 255 ? lo + 1 : 255;
  return uint8_t((x - map[lo] <= map[hi] - x) ? lo : hi);
}

// Code for value x of a block whose absmax has reciprocal inv_absmax
// (0 when the block is all zero, so every element maps to the code of 0).
GT_HD uint8_t quant8(const float* map, float x, float inv_absmax) { return quant8_nearest(map, x * inv_absmax); }

GT_HD float dequant8(const float* map, uint8_t code, float absmax) { return map[code] * absmax; }

GT_HD float quant8_inv_absmax(float absmax) { return absmax > 0.0f ? 1.0f / absmax : 0.0f; }

// ---- host only: the code maps ----

// bitsandbytes functional.create_dynamic_map(signed, max_exponent_bits, total_bits),
// reproduced step by step in float32 (torch.linspace's scalar formula, float
// means, float scaling by 10^e). out[256], sorted ascending.
void create_dynamic_map(bool is_signed, float* out, int max_exponent_bits = 7, int total_bits = 8);
// The maps the 8-bit Adam uses (built once): signed for m, unsigned for v.
const float* dynamic_map_signed();    // [256]
const float* dynamic_map_unsigned();  // [256]

// Quantizes x[n] blockwise into codes[n] and absmax[quant8_blocks(n)].
void quantize_blockwise_cpu(const float* map, const float* x, int64_t n, uint8_t* codes, float* absmax);
// The inverse: x[n] = map[codes] * absmax[block].
void dequantize_blockwise_cpu(const float* map, const uint8_t* codes, const float* absmax, int64_t n, float* x);

}  // namespace gt
