// Training a sentencepiece tokenizer from C4-format or plain text files
// (the engine of galore-spm-train).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace gt {

struct SpmTrainOptions {
  std::vector<std::string> inputs;   // .json/.jsonl(.gz) read as C4 ("text" key); anything else as plain text
  int vocab_size = 32000;
  std::string model_type = "bpe";    // bpe | unigram
  bool byte_fallback = false;        // unknown characters become UTF-8 byte pieces (lossless)
  double character_coverage = 0.9995;
  std::string normalization = "identity";  // identity keeps decode(encode(x)) == x; or nmt_nfkc
  int64_t max_samples = 2'000'000;   // sentences (text lines) used; a deterministic uniform sample beyond that
  std::vector<std::string> special_tokens;  // user-defined symbols, never split
  std::string output;                // prefix: writes <output>.model and <output>.vocab
  int threads = 0;                   // 0 = all cores
  uint64_t seed = 0;                 // for the sample
  bool verbose = false;              // sentencepiece's own log
};

struct SpmTrainResult {
  int64_t sentences_seen = 0, sentences_used = 0, docs = 0;
  std::string model_path, hash;
};

SpmTrainResult train_tokenizer(const SpmTrainOptions& opt);

}  // namespace gt
