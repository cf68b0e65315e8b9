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
