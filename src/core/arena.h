// One allocation per arena (weights, gradients, activations, workspace);
// tensors are aligned views into it. Sizes are planned before allocation by
// the same code that prints --estimate-memory, so estimate == allocation.
#pragma once
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"

namespace gt {

constexpr size_t kArenaAlign = 256;
inline size_t align_up(size_t n, size_t a = kArenaAlign) { return (n + a - 1) / a * a; }

// A planned buffer: name, dtype, shape.
struct BufferSpec {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  size_t bytes() const {
    size_t n = dtype_size(dtype);
    for (auto d : shape) n *= size_t(d);
    return n;
  }
};

// Bytes an arena needs for these buffers (each aligned).
inline size_t arena_bytes(const std::vector<BufferSpec>& specs) {
  size_t total = 0;
  for (auto& s : specs) total += align_up(s.bytes());
  return total;
}

// Aligned views of specs laid out from base (the arena layout), in spec order.
inline std::vector<Tensor> carve_views(char* base, Device device, const std::vector<BufferSpec>& specs) {
  std::vector<Tensor> views;
  size_t off = 0;
  for (auto& s : specs) {
    Tensor t;
    t.data = base + off;
    t.dtype = s.dtype;
    t.device = device;
    GT_ASSERT(s.shape.size() <= 4);
    t.ndim = int(s.shape.size());
    for (size_t i = 0; i < s.shape.size(); ++i) t.shape[i] = s.shape[i];
    views.push_back(t);
    off += align_up(s.bytes());
  }
  return views;
}

class Arena {
 public:
  Arena() = default;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  ~Arena() { reset(); }

  // Allocates once for all specs; returns the views in spec order.
  std::vector<Tensor> allocate(Backend& backend, const std::vector<BufferSpec>& specs) {
    reset();
    backend_ = &backend;
    bytes_ = arena_bytes(specs);
    base_ = static_cast<char*>(backend.alloc(bytes_ ? bytes_ : 1));
    return carve_views(base_, backend.device(), specs);
  }
  size_t bytes() const { return bytes_; }
  void* base() const { return base_; }
  void reset() {
    if (base_ && backend_) backend_->release(base_);
    base_ = nullptr;
    bytes_ = 0;
  }

 private:
  Backend* backend_ = nullptr;
  char* base_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace gt
