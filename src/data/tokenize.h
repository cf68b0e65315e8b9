// Corpus -> token shards (the engine of galore-tokenize; docs/DATA.md).
//
// Documents are read in input order (sorted paths), tokenized on all cores,
// given EOS (and optionally BOS), and appended to one of two token streams:
// train or val. Each stream is cut into shards of exactly tokens_per_shard
// tokens (the last one shorter): <output>/train_00000.bin, val_00000.bin, ...
// manifest.json is rewritten after every shard and records, per shard, the
// input position where the next shard starts, so a re-run skips finished
// shards and resumes from there.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace gt {

struct TokenizeOptions {
  std::vector<std::string> inputs;      // C4 .json.gz / .json paths or globs
  std::vector<std::string> val_inputs;  // held-out files (e.g. c4-validation.*): all their documents go to val
  double val_fraction = 0.0005;         // without val_inputs: documents whose text hash falls below this go to val
  std::string tokenizer;                // sentencepiece .model
  std::string output;                   // directory
  int64_t tokens_per_shard = 100'000'000;
  bool bos = false;                     // prepend BOS to each document (EOS is always appended)
  std::string on_bad_line = "fail";     // fail | skip (skipped lines are counted and reported)
  int threads = 0;                      // 0 = all cores
  bool overwrite = false;               // replace shards made with other settings
  bool progress = true;                 // a progress line on stderr about every second
};

struct TokenizeStats {
  int64_t files = 0;           // input files
  int64_t docs = 0;            // documents tokenized in this run
  int64_t tokens = 0;          // tokens written in this run
  int64_t text_bytes = 0;      // uncompressed input bytes read in this run
  int64_t bad_lines = 0;       // skipped (--on-bad-line skip), over all files
  int64_t shards_written = 0;
  int64_t shards_kept = 0;     // finished shards from an earlier run
  double seconds = 0;
};

TokenizeStats tokenize_corpus(const TokenizeOptions& opt);

// Hint appended to "no shards" errors.
extern const char* const kMakeShardsHint;

}  // namespace gt
