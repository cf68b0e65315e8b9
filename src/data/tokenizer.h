// Sentencepiece tokenizer wrapper and the tokenizer hash that ties shards to
// the exact .model file they were made with.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece { class SentencePieceProcessor; }

namespace gt {

// FNV-1a 64 over bytes (stable across platforms and builds).
uint64_t fnv1a64(const void* data, size_t n, uint64_t h = 0xcbf29ce484222325ULL);
std::string hex64(uint64_t v);  // 16 lowercase hex digits

// Stable hash of a .model file's bytes: FNV-1a 64 as 16 hex digits.
std::string tokenizer_hash(const std::string& model_path);

class Tokenizer {
 public:
  // Loads any sentencepiece .model; the error names the path.
  explicit Tokenizer(const std::string& model_path);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Thread-safe (sentencepiece encoding is const).
  void encode(std::string_view text, std::vector<int>* ids) const;
  std::string decode(const std::vector<int>& ids) const;
  std::string piece(int id) const;

  int64_t vocab_size() const;
  int eos_id() const;  // -1 when the model has none
  int bos_id() const;
  const std::string& path() const { return path_; }
  const std::string& hash() const { return hash_; }   // tokenizer_hash(path)
  uint64_t hash_u64() const { return hash_u64_; }

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string path_, hash_;
  uint64_t hash_u64_ = 0;
};

}  // namespace gt
