// Reading and writing the safetensors format (Hugging Face): an 8-byte
// little-endian header length, a JSON header {name: {dtype, shape,
// data_offsets}, "__metadata__": {...}}, then the raw tensor bytes.
// Used for HF import/export, parity fixtures and checkpoints.
#pragma once
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace gt {

enum class StDType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };
const char* st_dtype_name(StDType t);
size_t st_dtype_size(StDType t);

struct StTensor {
  std::string file;  // the file it was read from (for errors)
  std::string name;
  StDType dtype;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // points into the mapped file
  size_t nbytes = 0;

  int64_t numel() const;
  // Converted copies (any float/int dtype).
  std::vector<float> to_f32() const;
  std::vector<double> to_f64() const;
  std::vector<int32_t> to_i32() const;
};

// A read-only, memory-mapped safetensors file. Every malformed header is a
// gt::Error that names the file.
class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::string& path);
  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
  ~SafetensorsFile();

  bool has(const std::string& name) const { return index_.count(name) != 0; }
  const StTensor& get(const std::string& name) const;  // error names file+tensor
  std::vector<std::string> names() const;             // sorted
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::map<std::string, StTensor> index_;
  std::map<std::string, std::string> metadata_;
};

// The tensor `name`, checked to be `dtype` with exactly `nbytes` bytes (a
// saved state read back); otherwise an error naming the file, the tensor and
// both sizes.
const StTensor& get_exact(const SafetensorsFile& f, const std::string& name, StDType dtype, size_t nbytes);
// The same, copied into dst, which holds the expected number of elements.
template <typename T>
void read_exact(const SafetensorsFile& f, const std::string& name, StDType dtype, std::vector<T>& dst) {
  const StTensor& t = get_exact(f, name, dtype, dst.size() * sizeof(T));
  if (t.nbytes) std::memcpy(dst.data(), t.data, t.nbytes);
}

// A step counter stored as a one-element tensor: a non-negative integral
// value below 2^53 (any numeric dtype). Errors name the file and the tensor.
int64_t read_count(const SafetensorsFile& f, const std::string& name);

// Collects tensors and writes them atomically (AtomicFile: <path>.tmp, fsync,
// rename), in name order. add() copies the bytes now; add_deferred() keeps
// only a function that produces them during write(), one tensor at a time, so
// a 7B checkpoint or export never holds a second copy of the model in host
// memory (write() streams with one buffer of the largest deferred tensor).
class SafetensorsWriter {
 public:
  using Fill = std::function<void(void* dst)>;  // writes exactly the tensor's nbytes into dst; may throw
  void add(const std::string& name, StDType dtype, std::vector<int64_t> shape,
           const void* data, size_t nbytes);
  void add_f32(const std::string& name, std::vector<int64_t> shape, const float* data);
  void add_deferred(const std::string& name, StDType dtype, std::vector<int64_t> shape, size_t nbytes, Fill fill);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  // An error (disk full, a fill that throws) leaves no file at path and an existing one untouched.
  void write(const std::string& path) const;

 private:
  struct Entry {
    StDType dtype;
    std::vector<int64_t> shape;
    size_t nbytes = 0;
    std::vector<uint8_t> bytes;  // add()
    Fill fill;                   // add_deferred()
  };
  Entry& entry(const std::string& name, StDType dtype, std::vector<int64_t> shape, size_t nbytes);
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

// bf16 <-> fp32 on the host (round to nearest even; NaN stays NaN).
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);

}  // namespace gt
