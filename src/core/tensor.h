// A non-owning view of a buffer on some device. Memory is owned by arenas
// (one allocation each); tensors are views into them. Shapes are row-major.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>

namespace gt {

enum class DType : uint8_t { F32, BF16, I32, U8 };
enum class Device : uint8_t { CPU, CUDA };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: case DType::I32: return 4;
    case DType::BF16: return 2;
    case DType::U8: return 1;
  }
  return 0;
}
inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "fp32";
    case DType::BF16: return "bf16";
    case DType::I32: return "int32";
    case DType::U8: return "uint8";
  }
  return "?";
}

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::F32;
  Device device = Device::CPU;
  int ndim = 0;
  std::array<int64_t, 4> shape{};

  Tensor() = default;
  Tensor(void* p, DType t, Device d, std::initializer_list<int64_t> dims) : data(p), dtype(t), device(d) {
    for (auto x : dims) shape[size_t(ndim++)] = x;
  }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= shape[size_t(i)];
    return ndim ? n : 0;
  }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype); }
  int64_t dim(int i) const { return shape[size_t(i < 0 ? ndim + i : i)]; }
  template <typename T> T* as() const { return static_cast<T*>(data); }
  float* f32() const { return static_cast<float*>(data); }
};

}  // namespace gt

namespace gt {
// The same buffer seen with another shape (numel must match).
inline Tensor reshape(const Tensor& t, std::initializer_list<int64_t> dims) {
  Tensor r(t.data, t.dtype, t.device, dims);
  return r;
}
}  // namespace gt
