// Shared by the CPU references (*_cpu.cpp) and the CUDA kernels (*.cu).
// GT_HD marks per-element math written once for host and device, so the CPU
// tests cover exactly the arithmetic the GPU runs.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define GT_HD __host__ __device__ __forceinline__
#else
#define GT_HD inline
#endif

namespace gt {

// SplitMix64's output function (Steele, Lea, Flood 2014): a bijective 64-bit mixer.
GT_HD uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// 64 random bits for element `index` under `seed`, with no state: the
// index-th output of a SplitMix64 stream that starts at mix(seed) (the extra
// mix keeps nearby seeds, e.g. step counters, from giving shifted copies of
// one stream). Any thread can draw any element: host and device agree.
GT_HD uint64_t counter_random64(uint64_t seed, uint64_t index) {
  return splitmix64_mix(splitmix64_mix(seed) + (index + 1) * 0x9e3779b97f4a7c15ULL);
}

}  // namespace gt
