#include "data/tokenize.h"

#include <dirent.h>
#include <fcntl.h>
#include <omp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "core/error.h"
#include "core/fs_util.h"
#include "data/c4_reader.h"
#include "data/shard.h"
#include "data/tokenizer.h"

namespace gt {

const char* const kMakeShardsHint =
    "make shards with galore-tokenize (for the bundled sample: bash data_tools/prepare_sample.sh; "
    "for C4: bash data_tools/prepare_c4.sh; see docs/DATA.md)";

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// Input position of the first token not yet in a finished shard of a split:
// line `line` (0-based) of input file `file`, after its first `skip` tokens.
struct Cursor {
  int64_t file = 0, line = 0, skip = 0;
  bool before(int64_t f, int64_t l) const { return f < file || (f == file && l < line); }
  json to_json() const { return json::array({file, line, skip}); }
  static Cursor from_json(const json& j) { return {j.at(0).get<int64_t>(), j.at(1).get<int64_t>(), j.at(2).get<int64_t>()}; }
};

std::string basename_of(const std::string& p) {
  auto s = p.find_last_of('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

int64_t file_size(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 ? int64_t(st.st_size) : -1;
}

// One output stream (train or val) cut into fixed-size shards.
struct SplitWriter {
  std::string name;        // "train" | "val"
  Cursor cursor;           // where the unfinished shard starts
  std::vector<int32_t> buf;
  json shards = json::array();
  bool done = false;       // every shard of this split is finished
};

struct Input {
  std::string path;
  bool val = false;
};

// A run of lines from one file, read ahead by the reader thread.
struct Chunk {
  int64_t file = 0, first_line = 0;
  std::vector<std::string> lines;
  bool last_of_file = false;
  int64_t text_bytes = 0;
  std::string error;  // reader failure (truncated gzip, ...), raised in order
};

// Reads files [first_file, n) sequentially into chunks of ~8 MB, ahead of
// the tokenizer, through a small bounded queue.
class ChunkReader {
 public:
  ChunkReader(const std::vector<Input>& inputs, int64_t first_file) {
    thread_ = std::thread([this, &inputs, first_file] { run(inputs, first_file); });
  }
  ~ChunkReader() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  // Next chunk in order; nullopt after the last file.
  std::optional<Chunk> pop() {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return !q_.empty() || finished_; });
    if (q_.empty()) return std::nullopt;
    Chunk c = std::move(q_.front());
    q_.pop_front();
    cv_.notify_all();
    return c;
  }

 private:
  bool push(Chunk&& c) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return q_.size() < 3 || stop_; });
    if (stop_) return false;
    q_.push_back(std::move(c));
    cv_.notify_all();
    return true;
  }
  void run(const std::vector<Input>& inputs, int64_t first_file) {
    constexpr int64_t kChunkBytes = 8 << 20;
    for (int64_t f = first_file; f < int64_t(inputs.size()); f++) {
      Chunk c;
      c.file = f;
      try {
        LineReader r(inputs[f].path);
        std::string line;
        while (r.next(&line)) {
          c.text_bytes += int64_t(line.size()) + 1;
          c.lines.push_back(std::move(line));
          if (c.text_bytes >= kChunkBytes) {
            int64_t next_first = c.first_line + int64_t(c.lines.size());
            if (!push(std::move(c))) return;
            c = Chunk{};
            c.file = f;
            c.first_line = next_first;
          }
        }
        c.last_of_file = true;
        if (!push(std::move(c))) return;
      } catch (const std::exception& e) {
        c.error = e.what();
        push(std::move(c));
        break;
      }
    }
    std::lock_guard<std::mutex> lk(mu_);
    finished_ = true;
    cv_.notify_all();
  }

  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Chunk> q_;
  bool stop_ = false, finished_ = false;
};

// Exclusive lock on <output>/.lock so two runs never write one directory.
class DirLock {
 public:
  explicit DirLock(const std::string& dir) {
    const std::string path = dir + "/.lock";
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT, 0644);
    if (fd_ < 0) fail("cannot create {}: {} (is --output writable?)", path, std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      std::fprintf(stderr, "tokenize: waiting for another galore-tokenize writing %s\n", dir.c_str());
      ::flock(fd_, LOCK_EX);
    }
  }
  ~DirLock() { ::close(fd_); }

 private:
  int fd_ = -1;
};

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) out.emplace_back(e->d_name);
    ::closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool is_shard_name(const std::string& n) {
  return (n.rfind("train_", 0) == 0 || n.rfind("val_", 0) == 0) && n.size() > 4 &&
         n.compare(n.size() - 4, 4, ".bin") == 0;
}

void make_dirs(const std::string& dir) {
  std::string cur;
  for (size_t i = 0; i <= dir.size(); i++) {
    if (i == dir.size() || dir[i] == '/') {
      if (!cur.empty() && ::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST)
        fail("cannot create directory {}: {}", cur, std::strerror(errno));
    }
    if (i < dir.size()) cur += dir[i];
  }
}

// True when `shard` on disk is exactly what the manifest entry says.
bool shard_is_finished(const std::string& path, const json& entry, uint64_t hash) {
  try {
    Shard s(path);
    return s.num_tokens() == entry.at("tokens").get<int64_t>() && s.header().tokenizer_hash == hash;
  } catch (const Error&) {
    return false;
  }
}

// A manifest entry of a finished shard as this version writes it (its end
// cursor within the inputs), and a files_done entry.
bool valid_shard_entry(const json& e, int64_t nfiles) {
  const auto count = [](const json& v) { return v.is_number_unsigned(); };
  if (!e.is_object() || !e.contains("name") || !e["name"].is_string() || !count(e.value("tokens", json())) ||
      !count(e.value("docs", json())) || !e.contains("end") || !e["end"].is_array() || e["end"].size() != 3)
    return false;
  for (const json& v : e["end"])
    if (!count(v)) return false;
  const std::string name = e["name"].get<std::string>();
  return e["end"][0].get<uint64_t>() <= uint64_t(nfiles) && name.find('/') == std::string::npos;
}
bool valid_file_done(const json& f, int64_t nfiles) {
  return f.is_object() && f.contains("file") && f["file"].is_number_unsigned() &&
         f["file"].get<uint64_t>() < uint64_t(nfiles) && f.contains("bad_lines") && f["bad_lines"].is_number_unsigned();
}

// The finished shards of an earlier run (same settings and inputs) that are on
// disk as listed, in order: fills each split's shards and cursor and the
// per-file stats. Returns "" or why the manifest cannot be used, in which case
// split and files_done are left as they were.
std::string reuse_finished_shards(const json& old, const std::string& dir, uint64_t tokenizer_hash, int64_t nfiles,
                                  SplitWriter (&split)[2], json* files_done) {
  if (!old.is_object()) return "an unreadable manifest.json (not an object)";
  const bool complete = old.contains("complete") && old["complete"] == true;
  SplitWriter kept[2] = {split[0], split[1]};
  for (auto& sw : kept) {
    if (!old.contains(sw.name) || !old[sw.name].is_object() || !old[sw.name].contains("shards") ||
        !old[sw.name]["shards"].is_array())
      return fmt::format("an unreadable manifest.json (no {} shards)", sw.name);
    const json& listed = old[sw.name]["shards"];
    for (const json& e : listed) {
      if (!valid_shard_entry(e, nfiles)) return fmt::format("an unreadable manifest.json (shard entry {})", e.dump());
      if (!shard_is_finished(dir + "/" + e["name"].get<std::string>(), e, tokenizer_hash)) break;
      const Cursor end = Cursor::from_json(e["end"]);
      if (sw.cursor.before(end.file, end.line)) return "an unreadable manifest.json (shard ends out of order)";
      sw.shards.push_back(e);
      sw.cursor = end;
    }
    // A finished run covers all input even for a split that got no shards.
    if (complete && sw.shards.size() == listed.size()) sw.cursor = Cursor{nfiles, 0, 0};
    sw.done = sw.cursor.file >= nfiles;
  }
  const json done = old.value("files_done", json::array());
  if (!done.is_array()) return "an unreadable manifest.json (files_done)";
  for (const json& f : done)
    if (!valid_file_done(f, nfiles)) return fmt::format("an unreadable manifest.json (files_done entry {})", f.dump());
  split[0] = std::move(kept[0]);
  split[1] = std::move(kept[1]);
  *files_done = done;
  return "";
}

std::string human(double v) {
  if (v >= 1e9) return fmt::format("{:.2f}G", v / 1e9);
  if (v >= 1e6) return fmt::format("{:.1f}M", v / 1e6);
  if (v >= 1e3) return fmt::format("{:.1f}k", v / 1e3);
  return fmt::format("{:.0f}", v);
}

}  // namespace

TokenizeStats tokenize_corpus(const TokenizeOptions& opt) {
  const auto t0 = Clock::now();
  if (opt.output.empty()) fail("no --output directory given");
  if (opt.tokens_per_shard < 1) fail("--tokens-per-shard must be >= 1, got {}", opt.tokens_per_shard);
  if (opt.on_bad_line != "fail" && opt.on_bad_line != "skip")
    fail("--on-bad-line must be fail or skip, got '{}'", opt.on_bad_line);
  if (opt.val_fraction < 0 || opt.val_fraction >= 1)
    fail("--val-fraction must be in [0, 1), got {}", opt.val_fraction);
  const bool skip_bad = opt.on_bad_line == "skip";

  Tokenizer tok(opt.tokenizer);
  if (tok.eos_id() < 0)
    fail("{}: tokenizer has no EOS piece (documents are EOS-separated); train one with galore-spm-train",
         opt.tokenizer);
  if (opt.bos && tok.bos_id() < 0) fail("{}: --bos given but the tokenizer has no BOS piece", opt.tokenizer);
  const int eos = tok.eos_id(), bos = opt.bos ? tok.bos_id() : -1;

  // Inputs: train files, then held-out files; the order fixes the output.
  const std::string in_hint = "pass C4 files like c4-train.00000-of-01024.json.gz (paths or quoted globs)";
  std::vector<Input> inputs;
  for (auto& p : expand_globs(opt.inputs, "input files", in_hint)) inputs.push_back({p, false});
  if (!opt.val_inputs.empty())
    for (auto& p : expand_globs(opt.val_inputs, "validation input files", in_hint)) {
      for (auto& in : inputs)
        if (in.path == p) fail("{} is both a training and a validation input; list it once", p);
      inputs.push_back({p, true});
    }
  const bool val_from_files = !opt.val_inputs.empty();
  const int64_t nfiles = int64_t(inputs.size());

  json settings = {
      {"tokenizer_hash", tok.hash()},
      {"vocab_size", tok.vocab_size()},
      {"token_bytes", token_bytes_for_vocab(tok.vocab_size())},
      {"tokens_per_shard", opt.tokens_per_shard},
      {"eos_id", eos},
      {"bos_id", bos},
      {"val_split", val_from_files ? json{{"from", "files"}} : json{{"from", "fraction"}, {"fraction", opt.val_fraction}}},
  };
  json sources = json::array();
  for (auto& in : inputs)
    sources.push_back({{"path", in.path}, {"bytes", file_size(in.path)}, {"split", in.val ? "val" : "train"}});
  // Identity of the inputs for resuming: names and sizes, not the paths used to reach them.
  auto source_ids = [](const json& src) {
    json ids = json::array();
    for (auto& s : src) ids.push_back({basename_of(s.at("path").get<std::string>()), s.at("bytes"), s.at("split")});
    return ids;
  };

  make_dirs(opt.output);
  DirLock lock(opt.output);
  const std::string manifest_path = opt.output + "/manifest.json";
  for (auto& n : list_dir(opt.output))  // leftovers of an interrupted run
    if (n.find(".tmp.") != std::string::npos && (is_shard_name(n.substr(0, n.find(".tmp."))) || n.rfind("manifest.json", 0) == 0))
      ::unlink((opt.output + "/" + n).c_str());

  SplitWriter split[2];
  split[0].name = "train";
  split[1].name = "val";
  json files_done = json::array();  // per-file stats, for files read to the end
  TokenizeStats st;
  st.files = nfiles;

  // Resume from an earlier manifest made with the same settings and inputs.
  // Everything read from it is checked here: a manifest that does not parse as
  // what this version writes counts as unreadable (refused, or redone with
  // --overwrite), never as a raw JSON error later.
  std::string mismatch;  // why the earlier run's shards cannot be reused
  const bool have_manifest = file_size(manifest_path) >= 0;
  if (have_manifest) {
    try {
      const json old = json::parse(read_file(manifest_path));
      const json old_settings = old.value("settings", json::object());
      for (auto& [k, v] : settings.items())
        if (mismatch.empty() && old_settings.value(k, json()) != v)
          mismatch = fmt::format("other settings ({}: {} there, {} now)", k, old_settings.value(k, json()).dump(), v.dump());
      if (mismatch.empty() && source_ids(old.value("sources", json::array())) != source_ids(sources))
        mismatch = "other input files";
      if (mismatch.empty()) mismatch = reuse_finished_shards(old, opt.output, tok.hash_u64(), nfiles, split, &files_done);
    } catch (const json::exception& e) {
      mismatch = fmt::format("an unreadable manifest.json ({})", e.what());
    }
    if (!mismatch.empty() && !opt.overwrite)
      fail("{} holds shards made with {}; use another --output or pass --overwrite to replace them", opt.output,
           mismatch);
    for (auto& sw : split) st.shards_kept += int64_t(sw.shards.size());
  }
  if (!have_manifest || !mismatch.empty()) {
    bool any = false;
    for (auto& n : list_dir(opt.output)) any |= is_shard_name(n);
    if (any && !have_manifest && !opt.overwrite)
      fail("{} has shard files but no manifest.json; use an empty --output or pass --overwrite", opt.output);
    for (auto& n : list_dir(opt.output))
      if (is_shard_name(n) || n == "manifest.json") ::unlink((opt.output + "/" + n).c_str());
  }

  // Input position where reading resumes: the earlier of the two splits.
  const Cursor& tc = split[0].cursor;
  const Cursor& vc = split[1].cursor;
  const Cursor start = tc.before(vc.file, vc.line) ? vc : tc;
  while (!files_done.empty() && files_done.back().at("file").get<int64_t>() >= start.file) files_done.erase(files_done.size() - 1);

  auto write_manifest = [&](bool complete) {
    json m = {{"format", "galore-token-shards"}, {"version", 1}, {"complete", complete},
              {"tokenizer", opt.tokenizer}, {"settings", settings}, {"sources", sources},
              {"files_done", files_done}};
    // Flat copies of the common fields, for people and scripts reading the manifest.
    for (const char* k : {"tokenizer_hash", "vocab_size", "tokens_per_shard", "eos_id", "bos_id"}) m[k] = settings[k];
    for (auto& sw : split) {
      int64_t tokens = 0, docs = 0;
      for (auto& e : sw.shards) { tokens += e.at("tokens").get<int64_t>(); docs += e.at("docs").get<int64_t>(); }
      m[sw.name] = {{"tokens", tokens}, {"docs", docs}, {"shards", sw.shards}};
    }
    write_file_atomic(manifest_path, m.dump(1) + "\n");
  };

  // Writes the whole buffer as the split's next shard; `end` is where the next one starts.
  auto finish_shard = [&](SplitWriter& sw, const Cursor& end) {
    ShardHeader h;
    h.vocab_size = uint64_t(tok.vocab_size());
    h.tokenizer_hash = tok.hash_u64();
    h.eos_id = eos;
    h.bos_id = bos;
    h.num_docs = uint64_t(std::count(sw.buf.begin(), sw.buf.end(), eos));
    const size_t n = sw.buf.size();
    const std::string name = fmt::format("{}_{:05d}.bin", sw.name, sw.shards.size());
    write_shard(opt.output + "/" + name, h, sw.buf);
    sw.buf.clear();
    sw.shards.push_back({{"name", name}, {"tokens", n}, {"docs", h.num_docs}, {"end", end.to_json()}});
    sw.cursor = end;
    st.tokens += int64_t(n);
    st.shards_written++;
    write_manifest(false);
  };

  // Appends tokens [from, n) of the document at (file, line) to a split.
  const size_t tps = size_t(opt.tokens_per_shard);
  auto append = [&](SplitWriter& sw, int64_t file, int64_t line, const std::vector<int>& ids, size_t from) {
    size_t i = from;
    while (i < ids.size()) {
      size_t take = std::min(ids.size() - i, tps - sw.buf.size());
      sw.buf.insert(sw.buf.end(), ids.begin() + int64_t(i), ids.begin() + int64_t(i + take));
      i += take;
      if (sw.buf.size() == tps)
        finish_shard(sw, i < ids.size() ? Cursor{file, line, int64_t(i)} : Cursor{file, line + 1, 0});
    }
  };

  const bool all_done = split[0].done && split[1].done;
  const int threads = opt.threads > 0 ? opt.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  auto last_report = Clock::now();
  const bool tty = ::isatty(2);
  int64_t files_read = start.file;
  int warned = 0;

  if (!all_done) {
    ChunkReader reader(inputs, start.file);
    struct Result {
      int kind = 0;  // 0 blank, 1 document, 2 bad line
      int split = 0;
      std::vector<int> ids;
      std::string why;
    };
    std::vector<Result> res;
    int64_t file_docs = 0, file_bad = 0;
    while (auto chunk = reader.pop()) {
      if (!chunk->error.empty()) throw Error(chunk->error);
      const int64_t f = chunk->file;
      const int64_t n = int64_t(chunk->lines.size());
      res.assign(size_t(n), Result{});
      std::string encode_error;
#pragma omp parallel for schedule(dynamic, 8) num_threads(threads)
      for (int64_t i = 0; i < n; i++) {
        Result& r = res[size_t(i)];
        const std::string& line = chunk->lines[size_t(i)];
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank line
        std::string text;
        if (!parse_c4_line(line, &text, &r.why)) { r.kind = 2; continue; }
        r.kind = 1;
        if (inputs[size_t(f)].val) r.split = 1;
        else if (!val_from_files && opt.val_fraction > 0) {
          const uint64_t h = fnv1a64(text.data(), text.size());
          r.split = double(h >> 11) * 0x1.0p-53 < opt.val_fraction ? 1 : 0;
        }
        const int64_t l = chunk->first_line + i;
        if (split[r.split].cursor.before(f, l)) continue;  // already in a finished shard
        try {
          std::vector<int> body;
          tok.encode(text, &body);
          r.ids.reserve(body.size() + 2);
          if (bos >= 0) r.ids.push_back(bos);
          r.ids.insert(r.ids.end(), body.begin(), body.end());
          r.ids.push_back(eos);
        } catch (const std::exception& e) {
#pragma omp critical
          encode_error = e.what();
        }
      }
      if (!encode_error.empty()) throw Error(encode_error);

      // In input order: route documents, report bad lines, cut shards.
      for (int64_t i = 0; i < n; i++) {
        Result& r = res[size_t(i)];
        const int64_t l = chunk->first_line + i;
        if (r.kind == 2) {
          if (!skip_bad)
            fail("{}: line {}: {}; fix the file or pass --on-bad-line skip to skip (and count) such lines",
                 inputs[size_t(f)].path, l + 1, r.why);
          file_bad++;
          st.bad_lines++;
          if (warned++ < 5)
            std::fprintf(stderr, "tokenize: skipping %s line %lld: %s\n", inputs[size_t(f)].path.c_str(),
                         (long long)(l + 1), r.why.c_str());
          continue;
        }
        if (r.kind != 1) continue;
        file_docs++;
        SplitWriter& sw = split[r.split];
        if (sw.cursor.before(f, l)) continue;
        const size_t from = (sw.cursor.file == f && sw.cursor.line == l) ? size_t(sw.cursor.skip) : 0;
        append(sw, f, l, r.ids, from);
        st.docs++;
      }
      st.text_bytes += chunk->text_bytes;
      if (chunk->last_of_file) {
        if (file_docs == 0 && file_bad == 0)
          fail("{}: empty file (no documents); remove it from the inputs or download it again",
               inputs[size_t(f)].path);
        files_done.push_back({{"file", f}, {"path", inputs[size_t(f)].path}, {"docs", file_docs},
                              {"bad_lines", file_bad}, {"lines", chunk->first_line + n}});
        file_docs = file_bad = 0;
        files_read = f + 1;
      }
      const auto now = Clock::now();
      if (opt.progress && now - last_report >= std::chrono::seconds(1)) {
        last_report = now;
        const double sec = std::chrono::duration<double>(now - t0).count();
        std::fprintf(stderr, "%stokenize: %lld/%lld files, %s text (%.1f MB/s), %s tokens, %lld shards%s",
                     tty ? "\r" : "", (long long)files_read, (long long)nfiles,
                     (human(double(st.text_bytes)) + "B").c_str(), st.text_bytes / 1e6 / sec,
                     human(double(st.tokens + split[0].buf.size() + split[1].buf.size())).c_str(),
                     (long long)(split[0].shards.size() + split[1].shards.size()), tty ? "   " : "\n");
        std::fflush(stderr);
      }
    }
    if (opt.progress && tty) std::fprintf(stderr, "\n");
    // The last, shorter shard of each split.
    for (auto& sw : split)
      if (!sw.done && !sw.buf.empty()) finish_shard(sw, Cursor{nfiles, 0, 0});
  }

  int64_t total_bad = 0;
  for (auto& fd : files_done) total_bad += fd.at("bad_lines").get<int64_t>();
  st.bad_lines = total_bad;
  if (split[0].shards.empty())
    fail("no training documents in {} input files ({} bad lines skipped); check the inputs", nfiles, total_bad);
  if (!all_done) write_manifest(true);
  st.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return st;
}

}  // namespace gt
