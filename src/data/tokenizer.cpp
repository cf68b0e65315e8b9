#include "data/tokenizer.h"

#include <sentencepiece_processor.h>

#include "core/error.h"
#include "core/fs_util.h"

namespace gt {

uint64_t fnv1a64(const void* data, size_t n, uint64_t h) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::string hex64(uint64_t v) { return fmt::format("{:016x}", v); }

std::string tokenizer_hash(const std::string& model_path) {
  const std::string bytes = read_file(model_path);
  return hex64(fnv1a64(bytes.data(), bytes.size()));
}

Tokenizer::Tokenizer(const std::string& model_path)
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()), path_(model_path) {
  // Hash and load the same bytes, so the hash always describes the model in use.
  const std::string bytes = read_file(model_path);
  hash_u64_ = fnv1a64(bytes.data(), bytes.size());
  hash_ = hex64(hash_u64_);
  auto st = sp_->LoadFromSerializedProto(bytes);
  if (!st.ok())
    fail("{}: not a sentencepiece model ({}); pass a .model file made by galore-spm-train or spm_train",
         model_path, st.ToString());
}

Tokenizer::~Tokenizer() = default;

void Tokenizer::encode(std::string_view text, std::vector<int>* ids) const {
  auto st = sp_->Encode(text, ids);
  if (!st.ok()) fail("tokenizer {}: encode failed: {}", path_, st.ToString());
}

std::string Tokenizer::decode(const std::vector<int>& ids) const {
  std::string out;
  auto st = sp_->Decode(ids, &out);
  if (!st.ok()) fail("tokenizer {}: decode failed: {}", path_, st.ToString());
  return out;
}

std::string Tokenizer::piece(int id) const { return sp_->IdToPiece(id); }
int64_t Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }
int Tokenizer::eos_id() const { return sp_->eos_id(); }
int Tokenizer::bos_id() const { return sp_->bos_id(); }

}  // namespace gt
