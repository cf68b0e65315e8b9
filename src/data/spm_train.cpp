#include "data/spm_train.h"

#include <fcntl.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>

#include "core/error.h"
#include "core/fs_util.h"
#include "core/rng.h"
#include "data/c4_reader.h"
#include "data/tokenizer.h"

// Exported by libsentencepiece (common.h, not installed): silences its INFO log.
namespace sentencepiece::logging { void SetMinLogLevel(int v); }

namespace gt {

namespace {

// Feeds the in-memory sample to the sentencepiece trainer.
class VectorIterator : public sentencepiece::SentenceIterator {
 public:
  explicit VectorIterator(const std::vector<std::string>& v) : v_(v) {}
  bool done() const override { return i_ >= v_.size(); }
  void Next() override { i_++; }
  const std::string& value() const override { return v_[i_]; }
  sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }

 private:
  const std::vector<std::string>& v_;
  size_t i_ = 0;
};

}  // namespace

SpmTrainResult train_tokenizer(const SpmTrainOptions& opt) {
  if (opt.output.empty()) fail("no --output prefix given (e.g. --output data/my/tokenizer writes tokenizer.model)");
  if (opt.vocab_size < 8) fail("--vocab-size must be >= 8, got {}", opt.vocab_size);
  if (opt.model_type != "bpe" && opt.model_type != "unigram")
    fail("--model-type must be bpe or unigram, got '{}'", opt.model_type);
  if (opt.normalization != "identity" && opt.normalization != "nmt_nfkc")
    fail("--normalization must be identity or nmt_nfkc, got '{}'", opt.normalization);
  if (opt.character_coverage <= 0 || opt.character_coverage > 1)
    fail("--character-coverage must be in (0, 1], got {}", opt.character_coverage);
  if (opt.max_samples < 1) fail("--max-samples must be >= 1, got {}", opt.max_samples);
  for (auto& s : opt.special_tokens)
    if (s.empty() || s.find_first_of(", \t\n") != std::string::npos)
      fail("--special-tokens: '{}' must be non-empty without commas or whitespace", s);

  // The output folder is made and tried now, not after minutes of training.
  const std::filesystem::path out_dir = std::filesystem::path(opt.output).parent_path();
  std::error_code ec;
  if (!out_dir.empty()) std::filesystem::create_directories(out_dir, ec);
  if (ec) fail("--output {}: cannot create the folder {}: {}", opt.output, out_dir.string(), ec.message());
  const std::string probe = opt.output + ".probe." + std::to_string(::getpid());
  const int probe_fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (probe_fd < 0) fail("--output {}: cannot write there: {}", opt.output, std::strerror(errno));
  ::close(probe_fd);
  ::unlink(probe.c_str());

  // Sentences are text lines. Beyond max_samples keep a uniform reservoir
  // sample drawn with our own Rng, so the result is the same on every machine.
  SpmTrainResult res;
  std::vector<std::string> sample;
  Rng rng(opt.seed);
  auto add = [&](std::string_view s) {
    if (s.find_first_not_of(" \t\r") == std::string_view::npos) return;
    if (int64_t(sample.size()) < opt.max_samples) sample.emplace_back(s);
    else {
      uint64_t j = rng.below(uint64_t(res.sentences_seen) + 1);
      if (j < uint64_t(opt.max_samples)) sample[j].assign(s);
    }
    res.sentences_seen++;
  };
  for (auto& path : expand_globs(opt.inputs, "input files",
                                 "pass C4 .json.gz / .json files or plain text files (paths or quoted globs)")) {
    const bool c4 = is_json_lines_name(path);
    LineReader r(path);
    std::string line, text, why;
    int64_t docs = 0;
    while (r.next(&line)) {
      if (c4) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        if (!parse_c4_line(line, &text, &why)) fail("{}: line {}: {}; fix or remove the line", path, r.line_no(), why);
        size_t b = 0;
        for (size_t e; (e = text.find('\n', b)) != std::string::npos; b = e + 1) add(std::string_view(text).substr(b, e - b));
        add(std::string_view(text).substr(b));
      } else {
        int64_t bad = find_invalid_utf8(line);
        if (bad >= 0) fail("{}: line {}: invalid UTF-8 at byte {} of the line; fix the file", path, r.line_no(), bad + 1);
        add(line);
      }
      docs++;
    }
    if (docs == 0) fail("{}: empty file (no text); remove it from the inputs", path);
    res.docs += docs;
  }
  res.sentences_used = int64_t(sample.size());
  if (sample.empty()) fail("the inputs hold no text to train a tokenizer on");

  std::string special;
  for (auto& s : opt.special_tokens) special += (special.empty() ? "" : ",") + s;
  const int threads = opt.threads > 0 ? opt.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  // LLaMA-style settings: no whitespace folding, digits split, byte fallback on request.
  std::string args = fmt::format(
      "--vocab_size={} --model_type={} --byte_fallback={} --character_coverage={} "
      "--normalization_rule_name={} --remove_extra_whitespaces=false --add_dummy_prefix=true "
      "--split_digits=true --allow_whitespace_only_pieces=true --input_sentence_size=0 "
      "--shuffle_input_sentence=false --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --num_threads={}{}",
      opt.vocab_size, opt.model_type, opt.byte_fallback ? "true" : "false",
      opt.character_coverage, opt.normalization, threads,
      special.empty() ? "" : " --user_defined_symbols=" + special);
  sentencepiece::logging::SetMinLogLevel(opt.verbose ? 0 : 1);
  VectorIterator it(sample);
  std::string model;
  auto st = sentencepiece::SentencePieceTrainer::Train(args, &it, &model);
  if (!st.ok()) fail("sentencepiece training failed: {} (try a smaller --vocab-size or more text)", st.ToString());

  // Write both files atomically; the .vocab lists "piece<TAB>score" like spm_train's.
  sentencepiece::SentencePieceProcessor sp;
  if (!sp.LoadFromSerializedProto(model).ok()) fail("internal error: sentencepiece returned an unreadable model");
  std::string vocab;
  for (int i = 0; i < sp.GetPieceSize(); i++) vocab += fmt::format("{}\t{}\n", sp.IdToPiece(i), sp.GetScore(i));
  res.model_path = opt.output + ".model";
  write_file_atomic(res.model_path, model);
  write_file_atomic(opt.output + ".vocab", vocab);
  res.hash = hex64(fnv1a64(model.data(), model.size()));
  return res;
}

}  // namespace gt
