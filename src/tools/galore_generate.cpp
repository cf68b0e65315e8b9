// galore-generate: sample text from a training checkpoint.
//   galore-generate runs/tiny/checkpoints/step_00000200 --prompt "The" --max-tokens 50 --seed 1
//   galore-generate runs/tiny --temperature 0.8 --top-k 40 --top-p 0.95   (newest checkpoint of the run)
// The model shape and the tokenizer come from the checkpoint's trainer_state.json
// (config model.* and data.tokenizer; --tokenizer overrides the latter). There is
// no KV cache: every new token reruns the forward over the context, placed at
// positions 0..n-1 of a fixed window of T = min(model.max_seq_len, context +
// max tokens) positions (causal attention: the padding after n cannot change
// the logits at n-1). Longer contexts keep their last max_seq_len tokens.
// Same checkpoint, options and --seed give the same text on the same device.
#include <CLI/CLI.hpp>
#include <omp.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "backend/backend.h"
#include "checkpoint/checkpoint.h"
#include "config/config.h"
#include "core/error.h"
#include "core/openmp_env.h"
#include "data/tokenizer.h"
#include "model/llama.h"
#include "train/sampler.h"

using namespace gt;
namespace fs = std::filesystem;

namespace {

// A checkpoint folder, a run folder (<logging.dir>, newest of its checkpoints/)
// or a checkpoints root (newest of its step_* folders).
std::string resolve_checkpoint(const std::string& arg) {
  if (!fs::exists(arg)) fail("checkpoint {}: no such file or directory; give a step_NNNNNNNN folder or a run directory", arg);
  if (fs::exists(fs::path(arg) / "trainer_state.json")) {
    const std::string why = verify_checkpoint(arg);
    if (!why.empty()) fail("checkpoint {}: {}; pick another checkpoint", arg, why);
    return arg;
  }
  for (const fs::path& root : {fs::path(arg) / "checkpoints", fs::path(arg)}) {
    if (!fs::is_directory(root)) continue;
    if (auto latest = find_latest_checkpoint(root.string())) return *latest;
  }
  fail("checkpoint {}: holds no trainer_state.json and no complete step_NNNNNNNN checkpoint (also looked in {}/checkpoints)",
       arg, arg);
}

double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  gt::prefer_passive_openmp(argv);
  CLI::App app{"galore-generate: sample text from a galore-train checkpoint"};
  std::string checkpoint, tokenizer_path, prompt, device = "cpu";
  int max_tokens = 64, threads = 0;
  uint64_t seed = 0;
  bool ignore_eos = false, bos = false, quiet = false;
  SamplerOptions so;
  app.add_option("checkpoint", checkpoint,
                 "checkpoint folder (step_NNNNNNNN), or a run directory / checkpoints folder (its newest checkpoint)")
      ->required();
  app.add_option("--prompt,-p", prompt, "text to continue (empty: start a new document)");
  app.add_option("--max-tokens,-n", max_tokens, "tokens to generate at most")->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--temperature,-t", so.temperature, "softmax temperature; 0 = greedy (argmax)")->capture_default_str();
  app.add_option("--top-k", so.top_k, "sample from the k most likely tokens only (0 = off, 1 = greedy)")
      ->capture_default_str();
  app.add_option("--top-p", so.top_p, "nucleus: the smallest most-likely set with mass >= p (1 = off)")
      ->capture_default_str();
  app.add_option("--seed", seed, "random seed: the same seed gives the same text")->capture_default_str();
  app.add_option("--tokenizer", tokenizer_path,
                 "sentencepiece .model (default: the checkpoint config's data.tokenizer)");
  app.add_option("--device", device, "cpu | cuda | auto")->capture_default_str()
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  app.add_option("--threads", threads, "CPU threads (0 = all cores)")->capture_default_str();
  app.add_flag("--ignore-eos", ignore_eos, "keep going after an end-of-document token");
  app.add_flag("--bos", bos, "prepend BOS to the prompt (for shards tokenized with --bos)");
  app.add_flag("--quiet,-q", quiet, "no summary line on stderr");
  CLI11_PARSE(app, argc, argv);

  // stdout carries only the text; logs go to stderr.
  spdlog::set_default_logger(spdlog::stderr_color_mt("generate"));
  if (quiet) spdlog::set_level(spdlog::level::warn);
  try {
    if (threads > 0) omp_set_num_threads(threads);
    Sampler sampler(so, seed);
    const std::string ckpt = resolve_checkpoint(checkpoint);
    const nlohmann::json st = read_trainer_state(ckpt);
    if (!st.contains("config") || !st["config"].is_object())
      fail("{}/trainer_state.json: has no \"config\" object; the checkpoint was not written by galore-train", ckpt);
    const Config cfg = config_from_json(st["config"], ckpt + "/trainer_state.json (config)");

    if (tokenizer_path.empty()) {
      tokenizer_path = cfg.data.tokenizer;
      if (tokenizer_path.empty())
        fail("{}: the run's config has no data.tokenizer; pass --tokenizer <file.model>", ckpt);
      if (!fs::exists(tokenizer_path))
        fail("{}: the run's tokenizer {} (config data.tokenizer) is not found from {}; pass --tokenizer <file.model>",
             ckpt, tokenizer_path, fs::current_path().string());
    } else if (!fs::exists(tokenizer_path)) {
      fail("--tokenizer {}: file not found", tokenizer_path);
    }
    Tokenizer tok(tokenizer_path);
    const int V = cfg.model.vocab_size;
    if (tok.vocab_size() > V)
      fail("--tokenizer {}: {} pieces but the model has vocab_size {}; use the tokenizer the run was trained with",
           tokenizer_path, tok.vocab_size(), V);
    const int sample_vocab = int(tok.vocab_size());  // ids the tokenizer can decode

    std::vector<int> prompt_ids;
    tok.encode(prompt, &prompt_ids);
    std::vector<int32_t> ctx;
    if (bos) {
      if (tok.bos_id() < 0) fail("--bos: tokenizer {} has no BOS piece", tokenizer_path);
      ctx.push_back(tok.bos_id());
    }
    for (int id : prompt_ids) ctx.push_back(id);
    if (ctx.empty()) {  // an empty prompt starts a new document: training streams separate documents with EOS
      const int start = tok.eos_id() >= 0 ? tok.eos_id() : tok.bos_id();
      if (start < 0) fail("--prompt is empty and tokenizer {} has neither EOS nor BOS; give a --prompt", tokenizer_path);
      ctx.push_back(start);
    }

    std::unique_ptr<Backend> backend;
    try {
      backend = make_backend(device);
    } catch (const Error& e) {
      fail("--device {}: {}", device, e.what());
    }
    const int T = int(std::min<int64_t>(cfg.model.max_seq_len, int64_t(ctx.size()) + max_tokens));
    if (int64_t(ctx.size()) > T)
      spdlog::warn("the prompt has {} tokens but model.max_seq_len is {}: the model sees only the last {}", ctx.size(),
                   cfg.model.max_seq_len, T);
    LlamaModel model(cfg.model, *backend, 1, T, 0);
    load_checkpoint_weights(model, ckpt);
    spdlog::info("checkpoint {} (step {}) | {} | {:.2f}M params | window {} | prompt {} tokens", ckpt,
                 st.value("step", int64_t(-1)), backend->name(), double(model.num_weights()) / 1e6, T, ctx.size());

    const double t0 = now_s();
    const std::vector<int32_t> gen =
        generate_tokens(model, ctx, max_tokens, sampler, sample_vocab, ignore_eos ? -1 : tok.eos_id());
    const double secs = now_s() - t0;

    const int generated = int(gen.size());
    const bool hit_eos = !ignore_eos && generated > 0 && gen.back() == tok.eos_id();
    std::vector<int> out_ids(ctx.begin(), ctx.end());
    out_ids.insert(out_ids.end(), gen.begin(), gen.end() - (hit_eos ? 1 : 0));
    std::cout << tok.decode(out_ids) << std::endl;
    spdlog::info("{} tokens in {:.2f} s ({:.1f} tokens/s){}", generated, secs, generated / std::max(secs, 1e-9),
                 hit_eos ? ", stopped at EOS" : "");
    return 0;
  } catch (const Error& e) {
    spdlog::default_logger()->flush();
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  }
}
