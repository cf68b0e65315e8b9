#include "data/shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "core/fs_util.h"
#include "data/tokenizer.h"

namespace gt {

namespace {
// Explicit little-endian packing: shards are portable between machines.
void put_u32(unsigned char* p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (v >> (8 * i)) & 0xff; }
void put_u64(unsigned char* p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (v >> (8 * i)) & 0xff; }
uint32_t get_u32(const unsigned char* p) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = (v << 8) | p[i]; return v; }
uint64_t get_u64(const unsigned char* p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = (v << 8) | p[i]; return v; }
constexpr const char* kRemake = "re-make it with galore-tokenize (see docs/DATA.md)";
}  // namespace

std::string encode_shard_header(const ShardHeader& h) {
  std::string s(kShardHeaderBytes, '\0');
  auto* p = reinterpret_cast<unsigned char*>(s.data());
  std::memcpy(p, kShardMagic, 8);
  put_u32(p + 8, h.version);
  put_u32(p + 12, h.token_bytes);
  put_u64(p + 16, h.vocab_size);
  put_u64(p + 24, h.num_tokens);
  put_u64(p + 32, h.tokenizer_hash);
  put_u32(p + 40, uint32_t(h.eos_id));
  put_u32(p + 44, uint32_t(h.bos_id));
  put_u64(p + 48, h.num_docs);
  put_u64(p + 56, fnv1a64(p, 56));
  return s;
}

ShardHeader decode_shard_header(const void* bytes, size_t n, const std::string& path) {
  const auto* p = static_cast<const unsigned char*>(bytes);
  if (n < kShardHeaderBytes)
    fail("{}: {} bytes, too small for the 64-byte shard header (truncated?); {}", path, n, kRemake);
  if (std::memcmp(p, kShardMagic, 8) != 0)
    fail("{}: bad magic at byte 0 (not a galore token shard); {}", path, kRemake);
  ShardHeader h;
  h.version = get_u32(p + 8);
  if (h.version != kShardVersion)
    fail("{}: shard format version {} at byte 8, this build reads version {}; {}", path, h.version,
         kShardVersion, kRemake);
  if (get_u64(p + 56) != fnv1a64(p, 56))
    fail("{}: header checksum mismatch at byte 56 (header corrupt); {}", path, kRemake);
  h.token_bytes = get_u32(p + 12);
  h.vocab_size = get_u64(p + 16);
  h.num_tokens = get_u64(p + 24);
  h.tokenizer_hash = get_u64(p + 32);
  h.eos_id = int32_t(get_u32(p + 40));
  h.bos_id = int32_t(get_u32(p + 44));
  h.num_docs = get_u64(p + 48);
  if (h.token_bytes != token_bytes_for_vocab(int64_t(h.vocab_size)))
    fail("{}: token width {} bytes does not fit vocab size {}; {}", path, h.token_bytes, h.vocab_size, kRemake);
  return h;
}

void write_shard(const std::string& path, ShardHeader h, const std::vector<int32_t>& tokens) {
  h.token_bytes = token_bytes_for_vocab(int64_t(h.vocab_size));
  h.num_tokens = tokens.size();
  std::string bytes = encode_shard_header(h);
  bytes.resize(kShardHeaderBytes + tokens.size() * h.token_bytes);
  auto* p = reinterpret_cast<unsigned char*>(bytes.data()) + kShardHeaderBytes;
  for (size_t i = 0; i < tokens.size(); i++) {
    if (h.token_bytes == 2) { p[2 * i] = tokens[i] & 0xff; p[2 * i + 1] = (tokens[i] >> 8) & 0xff; }
    else put_u32(p + 4 * i, uint32_t(tokens[i]));
  }
  write_file_atomic(path, bytes);
}

Shard::Shard(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail("cannot open shard {}: {}", path, std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  map_bytes_ = size_t(st.st_size);
  if (map_bytes_ > 0) {
    void* m = ::mmap(nullptr, map_bytes_, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
      ::close(fd);
      fail("cannot mmap shard {}: {}", path, std::strerror(errno));
    }
    map_ = static_cast<const unsigned char*>(m);
  }
  ::close(fd);  // the mapping stays valid
  try {
    h_ = decode_shard_header(map_, map_bytes_, path);
    // Compared in 128 bits: a num_tokens near 2^64 must not wrap onto the file size.
    using u128 = unsigned __int128;
    const u128 want = u128(kShardHeaderBytes) + u128(h_.num_tokens) * h_.token_bytes;
    if (u128(map_bytes_) != want)
      fail("{}: file is {} bytes but the header says 64 + {} tokens x {} bytes = {} (truncated or "
           "overwritten); {}", path, map_bytes_, h_.num_tokens, h_.token_bytes, want, kRemake);
  } catch (...) {
    if (map_) ::munmap(const_cast<unsigned char*>(map_), map_bytes_);
    throw;
  }
}

Shard::Shard(Shard&& o) noexcept : path_(std::move(o.path_)), h_(o.h_), map_(o.map_), map_bytes_(o.map_bytes_) {
  o.map_ = nullptr;
  o.map_bytes_ = 0;
}

Shard::~Shard() {
  if (map_) ::munmap(const_cast<unsigned char*>(map_), map_bytes_);
}

int64_t Shard::token(int64_t i) const {
  const unsigned char* p = map_ + kShardHeaderBytes + size_t(i) * h_.token_bytes;
  return h_.token_bytes == 2 ? int64_t(p[0] | (p[1] << 8)) : int64_t(int32_t(get_u32(p)));
}

void Shard::read(int64_t offset, int64_t n, int32_t* out) const {
  GT_ASSERT(offset >= 0 && n >= 0 && uint64_t(offset + n) <= h_.num_tokens);
  const unsigned char* p = map_ + kShardHeaderBytes + size_t(offset) * h_.token_bytes;
  const int64_t vocab = int64_t(h_.vocab_size);
  bool bad = false;
  if (h_.token_bytes == 2) {
    for (int64_t i = 0; i < n; i++) {
      out[i] = int32_t(p[2 * i] | (p[2 * i + 1] << 8));
      bad |= out[i] >= vocab;
    }
  } else {
    for (int64_t i = 0; i < n; i++) {
      out[i] = int32_t(get_u32(p + 4 * i));
      bad |= out[i] < 0 || out[i] >= vocab;
    }
  }
  if (bad) {
    for (int64_t i = 0; i < n; i++)
      if (out[i] < 0 || out[i] >= vocab)
        fail("{}: token id {} at token {} is outside the vocab of {} (corrupt shard); {}", path_, out[i],
             offset + i, vocab, kRemake);
  }
}

void Shard::will_need(int64_t offset, int64_t n) const {
  if (!map_ || n <= 0) return;
  const long page = ::sysconf(_SC_PAGESIZE);
  size_t begin = kShardHeaderBytes + size_t(offset) * h_.token_bytes;
  size_t end = std::min(map_bytes_, begin + size_t(n) * h_.token_bytes);
  begin = begin / page * page;
  ::madvise(const_cast<unsigned char*>(map_) + begin, end - begin, MADV_WILLNEED);
}

}  // namespace gt
