// Token shard files (docs/DATA.md): a 64-byte little-endian header followed
// by num_tokens token ids of token_bytes each. Read with mmap.
//
//   offset size field
//        0    8 magic "GLTOKSH1"
//        8    4 version (1)
//       12    4 token_bytes: 2 when vocab_size <= 65536, else 4
//       16    8 vocab_size
//       24    8 num_tokens
//       32    8 tokenizer_hash (FNV-1a 64 of the .model bytes)
//       40    4 eos_id (int32)
//       44    4 bos_id (int32, -1 when documents carry no BOS)
//       48    8 num_docs (EOS tokens in this shard)
//       56    8 header checksum: FNV-1a 64 of bytes 0..55
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace gt {

constexpr char kShardMagic[9] = "GLTOKSH1";
constexpr uint32_t kShardVersion = 1;
constexpr size_t kShardHeaderBytes = 64;

struct ShardHeader {
  uint32_t version = kShardVersion;
  uint32_t token_bytes = 2;
  uint64_t vocab_size = 0;
  uint64_t num_tokens = 0;
  uint64_t tokenizer_hash = 0;
  int32_t eos_id = -1;
  int32_t bos_id = -1;
  uint64_t num_docs = 0;
};

inline uint32_t token_bytes_for_vocab(int64_t vocab) { return vocab <= 65536 ? 2 : 4; }

// The 64 header bytes (checksum filled in).
std::string encode_shard_header(const ShardHeader& h);
// Parses and checks magic, version, checksum and fields; errors name `path`.
ShardHeader decode_shard_header(const void* bytes, size_t n, const std::string& path);

// Writes header + tokens atomically (<path>.tmp.<pid>, fsync, rename).
void write_shard(const std::string& path, ShardHeader h, const std::vector<int32_t>& tokens);

// A read-only, memory-mapped shard. Opening checks the header and that the
// file size is exactly 64 + num_tokens * token_bytes.
class Shard {
 public:
  explicit Shard(const std::string& path);
  ~Shard();
  Shard(Shard&& o) noexcept;
  Shard& operator=(Shard&&) = delete;
  Shard(const Shard&) = delete;

  const std::string& path() const { return path_; }
  const ShardHeader& header() const { return h_; }
  int64_t num_tokens() const { return int64_t(h_.num_tokens); }
  int64_t token(int64_t i) const;
  // Copies tokens [offset, offset+n) into out; errors on ids >= vocab_size
  // (a corrupt shard would otherwise index past the embedding table).
  void read(int64_t offset, int64_t n, int32_t* out) const;
  // Asks the kernel to start reading [offset, offset+n) (prefetch hint).
  void will_need(int64_t offset, int64_t n) const;

 private:
  std::string path_;
  ShardHeader h_;
  const unsigned char* map_ = nullptr;
  size_t map_bytes_ = 0;
};

}  // namespace gt
