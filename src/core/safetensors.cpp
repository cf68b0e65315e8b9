#include "core/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_number.h"
#include "core/fs_util.h"

namespace gt {

namespace {
struct DTypeInfo { StDType t; const char* name; size_t size; };
constexpr DTypeInfo kDTypes[] = {
    {StDType::F64, "F64", 8}, {StDType::F32, "F32", 4}, {StDType::F16, "F16", 2},
    {StDType::BF16, "BF16", 2}, {StDType::I64, "I64", 8}, {StDType::I32, "I32", 4},
    {StDType::I16, "I16", 2}, {StDType::I8, "I8", 1}, {StDType::U8, "U8", 1},
    {StDType::BOOL, "BOOL", 1}};

bool parse_dtype(const std::string& s, StDType* out) {
  for (auto& d : kDTypes)
    if (s == d.name) { *out = d.t; return true; }
  return false;
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) bits = sign;
    else {  // subnormal
      exp = 127 - 15 + 1;
      while (!(mant & 0x400)) { mant <<= 1; --exp; }
      mant &= 0x3ff;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 31) bits = sign | 0x7f800000 | (mant << 13);
  else bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

template <typename Out>
std::vector<Out> convert(const StTensor& t) {
  const int64_t n = t.numel();
  std::vector<Out> out; out.resize(size_t(n));
  auto load = [&](auto tag) {
    using T = decltype(tag);
    for (int64_t i = 0; i < n; ++i) {
      T v;
      std::memcpy(&v, t.data + i * sizeof(T), sizeof(T));
      out[size_t(i)] = Out(v);
    }
  };
  switch (t.dtype) {
    case StDType::F64: load(double{}); break;
    case StDType::F32: load(float{}); break;
    case StDType::I64: load(int64_t{}); break;
    case StDType::I32: load(int32_t{}); break;
    case StDType::I16: load(int16_t{}); break;
    case StDType::I8: load(int8_t{}); break;
    case StDType::U8: case StDType::BOOL: load(uint8_t{}); break;
    case StDType::BF16: case StDType::F16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, t.data + i * 2, 2);
        out[size_t(i)] = Out(t.dtype == StDType::BF16 ? bf16_to_f32(h) : f16_to_f32(h));
      }
      break;
  }
  return out;
}
}  // namespace

const char* st_dtype_name(StDType t) {
  for (auto& d : kDTypes) if (d.t == t) return d.name;
  return "?";
}
size_t st_dtype_size(StDType t) {
  for (auto& d : kDTypes) if (d.t == t) return d.size;
  return 0;
}

float bf16_to_f32(uint16_t h) {
  uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffff) > 0x7f800000) return uint16_t((bits >> 16) | 0x40);  // quiet NaN
  bits += 0x7fff + ((bits >> 16) & 1);
  return uint16_t(bits >> 16);
}

int64_t StTensor::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}
std::vector<float> StTensor::to_f32() const { return convert<float>(*this); }
std::vector<double> StTensor::to_f64() const { return convert<double>(*this); }
// Through double, which holds every int32 (and every value an F32/BF16 index
// can carry), so that a non-integral or out-of-range element is an error, not
// an undefined conversion.
std::vector<int32_t> StTensor::to_i32() const {
  const std::vector<double> wide = convert<double>(*this);
  std::vector<int32_t> out(wide.size());
  for (size_t i = 0; i < wide.size(); ++i) {
    if (!integral_value_in(wide[i], INT32_MIN, INT32_MAX))
      fail("{}: tensor '{}': element {} ({}) is not a 32-bit integer", file, name, i, wide[i]);
    out[i] = int32_t(wide[i]);
  }
  return out;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail("cannot open {}: {}", path, std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  f.map_size_ = size_t(st.st_size);
  if (f.map_size_ < 8) {
    ::close(fd);
    fail("{}: not a safetensors file ({} bytes, need at least an 8-byte header length)", path, f.map_size_);
  }
  f.map_ = ::mmap(nullptr, f.map_size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (f.map_ == MAP_FAILED) { f.map_ = nullptr; fail("cannot mmap {}: {}", path, std::strerror(errno)); }
  const auto* base = static_cast<const uint8_t*>(f.map_);
  uint64_t hlen;
  std::memcpy(&hlen, base, 8);
  if (hlen > f.map_size_ - 8)
    fail("{}: header length {} exceeds file size {} (truncated or not safetensors)", path, hlen, f.map_size_);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(std::string(reinterpret_cast<const char*>(base + 8), hlen));
  } catch (const std::exception& e) {
    fail("{}: header is not valid JSON ({})", path, e.what());
  }
  if (!header.is_object()) fail("{}: header is not a JSON object", path);
  const uint8_t* data = base + 8 + hlen;
  const size_t data_size = f.map_size_ - 8 - hlen;
  for (auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      if (v.is_object())
        for (auto& [k, mv] : v.items()) f.metadata_[k] = mv.is_string() ? mv.get<std::string>() : mv.dump();
      continue;
    }
    StTensor t;
    t.file = path;
    t.name = name;
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      fail("{}: tensor '{}' lacks dtype/shape/data_offsets", path, name);
    const nlohmann::json &dtype = v["dtype"], &shape = v["shape"], &offsets = v["data_offsets"];
    if (!dtype.is_string() || !parse_dtype(dtype.get<std::string>(), &t.dtype))
      fail("{}: tensor '{}' has unsupported dtype {}", path, name, dtype.dump());
    // Each dimension a non-negative integer, their product (in elements) at
    // most the file's data bytes, so that it cannot overflow.
    bool shape_ok = shape.is_array();
    for (const auto& dim : shape)
      if (shape_ok) {
        shape_ok = dim.is_number_unsigned() && dim.get<uint64_t>() <= uint64_t(INT64_MAX);
        if (shape_ok) t.shape.push_back(int64_t(dim.get<uint64_t>()));
      }
    uint64_t numel = 1;
    if (shape_ok && std::find(t.shape.begin(), t.shape.end(), 0) != t.shape.end()) numel = 0;
    for (size_t i = 0; shape_ok && numel > 0 && i < t.shape.size(); ++i) {
      shape_ok = numel <= data_size / uint64_t(t.shape[i]);
      numel *= uint64_t(t.shape[i]);
    }
    if (!shape_ok)
      fail("{}: tensor '{}' has shape {}: not a list of non-negative integers within the file's {} data bytes", path,
           name, shape.dump(), data_size);
    const bool offsets_ok = offsets.is_array() && offsets.size() == 2 && offsets[0].is_number_unsigned() &&
                            offsets[1].is_number_unsigned() && offsets[0].get<uint64_t>() <= offsets[1].get<uint64_t>() &&
                            offsets[1].get<uint64_t>() <= data_size;
    if (!offsets_ok)
      fail("{}: tensor '{}' has data_offsets {} outside the {} data bytes (truncated file?)", path, name,
           offsets.dump(), data_size);
    const uint64_t off0 = offsets[0].get<uint64_t>();
    t.nbytes = offsets[1].get<uint64_t>() - off0;
    if (t.nbytes != numel * st_dtype_size(t.dtype))
      fail("{}: tensor '{}' has {} bytes but shape {} needs {}", path, name, t.nbytes, shape.dump(),
           numel * st_dtype_size(t.dtype));
    t.data = data + off0;
    f.index_.emplace(name, std::move(t));
  }
  return f;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept { *this = std::move(o); }
SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& o) noexcept {
  if (this != &o) {
    if (map_) ::munmap(map_, map_size_);
    path_ = std::move(o.path_);
    map_ = o.map_;
    map_size_ = o.map_size_;
    index_ = std::move(o.index_);
    metadata_ = std::move(o.metadata_);
    o.map_ = nullptr;
    o.map_size_ = 0;
  }
  return *this;
}
SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_size_);
}

const StTensor& SafetensorsFile::get(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail("{}: tensor '{}' not found", path_, name);
  return it->second;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  for (auto& [k, v] : index_) out.push_back(k);
  return out;
}

const StTensor& get_exact(const SafetensorsFile& f, const std::string& name, StDType dtype, size_t nbytes) {
  const StTensor& t = f.get(name);
  if (t.dtype != dtype || t.nbytes != nbytes)
    fail("{}: '{}' has {} bytes of {}, expected {} bytes of {} (written for another model or optimizer config?)",
         f.path(), name, t.nbytes, st_dtype_name(t.dtype), nbytes, st_dtype_name(dtype));
  return t;
}

int64_t read_count(const SafetensorsFile& f, const std::string& name) {
  const StTensor& t = f.get(name);
  const std::vector<double> v = t.to_f64();
  if (v.size() != 1 || !integral_value_in(v[0], 0, 0x1p53 - 1))
    fail("{}: '{}' should hold one step count (a non-negative integer), got {} values{}", f.path(), name, v.size(),
         v.size() == 1 ? fmt::format(" ({})", v[0]) : "");
  return int64_t(v[0]);
}

SafetensorsWriter::Entry& SafetensorsWriter::entry(const std::string& name, StDType dtype, std::vector<int64_t> shape,
                                                   size_t nbytes) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  GT_ASSERT(size_t(n) * st_dtype_size(dtype) == nbytes);
  Entry& e = entries_[name];
  e = Entry{dtype, std::move(shape), nbytes, {}, {}};
  return e;
}

void SafetensorsWriter::add(const std::string& name, StDType dtype, std::vector<int64_t> shape,
                            const void* data, size_t nbytes) {
  Entry& e = entry(name, dtype, std::move(shape), nbytes);
  e.bytes.assign(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + nbytes);
}

void SafetensorsWriter::add_f32(const std::string& name, std::vector<int64_t> shape, const float* data) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  add(name, StDType::F32, std::move(shape), data, size_t(n) * 4);
}

void SafetensorsWriter::add_deferred(const std::string& name, StDType dtype, std::vector<int64_t> shape,
                                     size_t nbytes, Fill fill) {
  GT_ASSERT(fill);
  entry(name, dtype, std::move(shape), nbytes).fill = std::move(fill);
}

void SafetensorsWriter::write(const std::string& path) const {
  nlohmann::ordered_json header;
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  uint64_t offset = 0;
  size_t largest_deferred = 0;
  for (auto& [name, e] : entries_) {
    header[name] = {{"dtype", st_dtype_name(e.dtype)}, {"shape", e.shape},
                    {"data_offsets", {offset, offset + e.nbytes}}};
    offset += e.nbytes;
    if (e.fill) largest_deferred = std::max(largest_deferred, e.nbytes);
  }
  std::string h = header.dump();
  while ((h.size() + 8) % 8) h.push_back(' ');  // align data to 8 bytes, as HF does
  AtomicFile out(path);
  const uint64_t hlen = h.size();
  out.write(&hlen, 8);
  out.write(h.data(), h.size());
  std::vector<uint8_t> buf(largest_deferred);
  for (auto& [name, e] : entries_) {
    if (!e.fill) {
      out.write(e.bytes.data(), e.nbytes);
      continue;
    }
    e.fill(buf.data());
    out.write(buf.data(), e.nbytes);
  }
  out.commit();
}

}  // namespace gt
