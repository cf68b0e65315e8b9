#include "model/llama.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"

namespace gt {

namespace {
const char* kLayerNames[9] = {"input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                              "self_attn.o_proj", "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj",
                              "mlp.down_proj"};

bool is_target(const std::string& name, const std::vector<std::string>& targets) {
  for (auto& t : targets)
    if (name.find("." + t + ".") != std::string::npos) return true;
  return false;
}
}  // namespace

int64_t llama_ffn_width(const ModelConfig& cfg) { return (int64_t(cfg.intermediate_size) + 7) / 8 * 8; }

std::vector<ParamInfo> llama_params(const ModelConfig& cfg, const std::vector<std::string>& galore_targets) {
  const int64_t C = cfg.hidden_size, I = llama_ffn_width(cfg), V = cfg.vocab_size;
  const int64_t pad = I - cfg.intermediate_size;
  const int64_t Q = int64_t(cfg.num_heads) * cfg.head_dim(), KV = int64_t(cfg.kv_heads()) * cfg.head_dim();
  std::vector<ParamInfo> p;
  p.push_back({"model.embed_tokens.weight", ParamKind::Embedding, V, C, false});
  for (int l = 0; l < cfg.num_layers; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    const int64_t shapes[9][2] = {{C, 1}, {Q, C}, {KV, C}, {KV, C}, {C, Q}, {C, 1}, {I, C}, {I, C}, {C, I}};
    for (int j = 0; j < 9; ++j) {
      const std::string name = pre + kLayerNames[j] + ".weight";
      const bool norm = shapes[j][1] == 1;
      ParamInfo info{name, norm ? ParamKind::Norm : ParamKind::Linear, shapes[j][0], shapes[j][1],
                     !norm && is_target(name, galore_targets)};
      if (j == 6 || j == 7) info.pad_rows = pad;  // gate, up: [I, C]
      if (j == 8) info.pad_cols = pad;            // down: [C, I]
      p.push_back(info);
    }
  }
  p.push_back({"model.norm.weight", ParamKind::Norm, C, 1, false});
  p.push_back({"lm_head.weight", ParamKind::LmHead, V, C, false});
  return p;
}

namespace {
int64_t logits_chunk_rows(int64_t N, int logits_rows) { return logits_rows > 0 ? std::min<int64_t>(logits_rows, N) : N; }
}  // namespace

LlamaScratchOverlay llama_scratch_overlay(const ModelConfig& cfg, int B, int T, DType dt, int logits_rows,
                                          bool recompute) {
  const int64_t N = int64_t(B) * T, I = llama_ffn_width(cfg), V = cfg.vocab_size;
  const int64_t q_elems = N * cfg.num_heads * cfg.head_dim(), kv_elems = N * cfg.kv_heads() * cfg.head_dim();
  const int64_t mlp_elems = N * I;  // gate and up, each
  const int64_t align = int64_t(256 / dtype_size(dt));
  LlamaScratchOverlay o;
  o.dv_offset = (kv_elems + align - 1) / align * align;
  o.dqkv_over_mlp = q_elems <= mlp_elems && o.dv_offset + kv_elems <= mlp_elems;
  if (!o.dqkv_over_mlp) o.dv_offset = 0;
  o.logits_over_gate = recompute && size_t(logits_chunk_rows(N, logits_rows) * V) * sizeof(float) <=
                                        size_t(mlp_elems) * dtype_size(dt);
  return o;
}

std::vector<BufferSpec> llama_activation_specs(const ModelConfig& cfg, int B, int T, DType dt, int logits_rows,
                                               bool recompute) {
  const int64_t N = int64_t(B) * T, C = cfg.hidden_size, I = llama_ffn_width(cfg), V = cfg.vocab_size;
  const int64_t NH = cfg.num_heads, KV = cfg.kv_heads(), D = cfg.head_dim();
  const int64_t R = logits_chunk_rows(N, logits_rows);
  const LlamaScratchOverlay overlay = llama_scratch_overlay(cfg, B, T, dt, logits_rows, recompute);
  const DType f32 = DType::F32;
  std::vector<BufferSpec> s;
  s.push_back({"tokens", DType::I32, {N}});
  s.push_back({"targets", DType::I32, {N}});
  for (int l = 0; l < cfg.num_layers; ++l) {
    const std::string p = "layer" + std::to_string(l) + ".";
    s.push_back({p + "x", dt, {N, C}});
    if (recompute && l > 0) continue;  // layer 0's buffers are shared by all layers
    // ln1 and ln2 share one buffer: ln2 overwrites ln1 once q, k, v exist, and
    // backward recomputes ln1 (one RMSNorm) before the q/k/v weight gradients.
    s.push_back({p + "ln", dt, {N, C}});
    s.push_back({p + "rstd1", f32, {N}});
    s.push_back({p + "q", dt, {B, T, NH, D}});
    s.push_back({p + "k", dt, {B, T, KV, D}});
    s.push_back({p + "v", dt, {B, T, KV, D}});
    s.push_back({p + "att", dt, {B, T, NH, D}});
    s.push_back({p + "lse", f32, {B, NH, T}});
    s.push_back({p + "mid", dt, {N, C}});
    s.push_back({p + "rstd2", f32, {N}});
    s.push_back({p + "gate", dt, {N, I}});
    s.push_back({p + "up", dt, {N, I}});
    s.push_back({p + "h", dt, {N, I}});  // backward overwrites it with dh once dW_down exists
  }
  // With recompute, x_final and lnf live in layer 0's shared ln and mid
  // buffers: the last layer's forward is done with them (ln holds ln2, read
  // by the gate/up GEMMs before x_final is written), and backward refills
  // them only after the final norm's backward has read x_final.
  if (!recompute) {
    s.push_back({"x_final", dt, {N, C}});
    s.push_back({"lnf", dt, {N, C}});
  }
  s.push_back({"rstdf", f32, {N}});
  s.push_back({"losses", f32, {N}});
  if (!overlay.logits_over_gate) s.push_back({"logits", f32, {R, V}});
  // Backward scratch, reused by every layer. In place instead of buffers of
  // their own: dh over h, dgate/dup over gate/up (dead after SwiGLU's
  // backward), d(att) lives in dln (free between the two halves), and dq/dk/dv
  // over gate/up when they fit (llama_scratch_overlay).
  s.push_back({"dresid", dt, {N, C}});
  s.push_back({"dln", dt, {N, std::max(C, NH * D)}});
  if (!overlay.dqkv_over_mlp) {
    s.push_back({"dq", dt, {B, T, NH, D}});
    s.push_back({"dk", dt, {B, T, KV, D}});
    s.push_back({"dv", dt, {B, T, KV, D}});
  }
  return s;
}

LlamaModel::LlamaModel(const ModelConfig& cfg, Backend& backend, int B, int T, int logits_rows, bool recompute)
    : cfg_(cfg), be_(backend), B_(B), T_(T), logits_rows_(logits_rows), recompute_(recompute) {
  params_ = llama_params(cfg, {});
  embed_ = 0;
  for (int l = 0; l < cfg.num_layers; ++l) {
    const int b = 1 + 9 * l;
    layers_.push_back({b, b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 8});
  }
  normf_ = 1 + 9 * cfg.num_layers;
  lm_head_ = normf_ + 1;

  std::vector<BufferSpec> wspecs;
  for (auto& p : params_)
    wspecs.push_back({p.name, be_.compute_dtype(), p.cols == 1 ? std::vector<int64_t>{p.rows}
                                                                 : std::vector<int64_t>{p.rows, p.cols}});
  weights_ = weight_arena_.allocate(be_, wspecs);

  auto v = act_arena_.allocate(be_, llama_activation_specs(cfg, B, T, be_.compute_dtype(), logits_rows, recompute));
  size_t i = 0;
  tokens_ = v[i++];
  targets_ = v[i++];
  for (int l = 0; l < cfg.num_layers; ++l) {
    LayerActs a;
    a.x = v[i++];
    if (recompute && l > 0) {
      LayerActs shared = acts_[0];
      shared.x = a.x;
      acts_.push_back(shared);
      continue;
    }
    for (Tensor* t : {&a.ln1, &a.rstd1, &a.q, &a.k, &a.v, &a.att, &a.lse, &a.mid, &a.rstd2, &a.gate, &a.up, &a.h})
      *t = v[i++];
    a.ln2 = a.ln1;  // one buffer (see llama_activation_specs)
    acts_.push_back(a);
  }
  if (recompute) {
    x_final_ = acts_[0].ln1;
    lnf_ = acts_[0].mid;
  } else {
    x_final_ = v[i++];
    lnf_ = v[i++];
  }
  overlay_ = llama_scratch_overlay(cfg, B, T, be_.compute_dtype(), logits_rows, recompute);
  for (Tensor* t : {&rstdf_, &losses_}) *t = v[i++];
  const int64_t R = logits_chunk_rows(int64_t(B) * T, logits_rows);
  logits_ = overlay_.logits_over_gate ? Tensor(acts_[0].gate.data, DType::F32, acts_[0].gate.device, {R, cfg.vocab_size})
                                      : v[i++];
  for (Tensor* t : {&dresid_, &dln_}) *t = v[i++];
  if (!overlay_.dqkv_over_mlp)
    for (Tensor* t : {&dq_, &dk_, &dv_}) *t = v[i++];
  datt_ = reshape(dln_, {B, T, cfg.num_heads, cfg.head_dim()});  // d(att) in dln: see llama_activation_specs
  dln_ = reshape(dln_, {int64_t(B) * T, cfg.hidden_size});
  GT_ASSERT(i == v.size());
  const size_t N = size_t(B) * T;
  host_inputs_.resize(N);
  host_targets_.resize(N);
  host_losses_.resize(N);
}

int64_t LlamaModel::num_weights() const {
  int64_t n = 0;
  for (auto& p : params_) n += p.hf_numel();
  return n;
}

int LlamaModel::param_index(const std::string& hf_name) const {
  for (size_t i = 0; i < params_.size(); ++i)
    if (params_[i].name == hf_name) return int(i);
  return -1;
}

void LlamaModel::init_random(uint64_t seed) {
  // Normal(0, init_std) for every weight, ones for the norms. Chunks of 1M
  // elements draw from their own stream (seeded by seed, parameter, chunk), so
  // the values do not depend on the thread count and 7B initialises in
  // seconds on a many-core host.
  constexpr int64_t kChunk = int64_t(1) << 20;
  std::vector<float> host;
  for (int i = 0; i < num_params(); ++i) {
    const auto& p = params_[size_t(i)];
    const int64_t n = p.hf_numel();  // drawn unpadded: the padding changes no value
    host.assign(size_t(n), 1.0f);
    if (p.kind != ParamKind::Norm) {
      const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(dynamic)
      for (int64_t c = 0; c < chunks; ++c) {
        Rng rng(seed ^ (0x9e3779b97f4a7c15ULL * uint64_t(i + 1)) ^ (0xbf58476d1ce4e5b9ULL * uint64_t(c + 1)));
        for (int64_t j = c * kChunk; j < std::min(n, (c + 1) * kChunk); ++j)
          host[size_t(j)] = float(rng.normal() * cfg_.init_std);
      }
    }
    set_weight(i, host.data());
  }
}

void LlamaModel::set_weight(int i, const float* values) {
  const ParamInfo& p = params_[size_t(i)];
  if (p.numel() == p.hf_numel()) return be_.upload_f32(weights_[size_t(i)], values);
  std::vector<float> padded(size_t(p.numel()));
  pad_param(p, sizeof(float), values, padded.data());
  be_.upload_f32(weights_[size_t(i)], padded.data());
}

std::vector<float> LlamaModel::get_weight(int i) const {
  const ParamInfo& p = params_[size_t(i)];
  std::vector<float> padded(size_t(p.numel()));
  be_.download_f32(padded.data(), weights_[size_t(i)]);
  if (p.numel() == p.hf_numel()) return padded;
  std::vector<float> out(size_t(p.hf_numel()));
  unpad_param(p, sizeof(float), padded.data(), out.data());
  return out;
}

size_t LlamaModel::weight_file_bytes(int i) const {
  return size_t(params_[size_t(i)].hf_numel()) * dtype_size(weights_[size_t(i)].dtype);
}

// Raw device-dtype copies go through a host buffer of the padded size.
void LlamaModel::download_weight_bytes(int i, void* dst) const {
  const ParamInfo& p = params_[size_t(i)];
  const Tensor& w = weights_[size_t(i)];
  if (p.numel() == p.hf_numel()) return be_.download(dst, w.data, w.nbytes());
  std::vector<char> padded(w.nbytes());
  be_.download(padded.data(), w.data, w.nbytes());
  unpad_param(p, dtype_size(w.dtype), padded.data(), dst);
}

void LlamaModel::upload_weight_bytes(int i, const void* src) {
  const ParamInfo& p = params_[size_t(i)];
  const Tensor& w = weights_[size_t(i)];
  if (p.numel() == p.hf_numel()) return be_.upload(w.data, src, w.nbytes());
  std::vector<char> padded(w.nbytes());
  pad_param(p, dtype_size(w.dtype), src, padded.data());
  be_.upload(w.data, padded.data(), w.nbytes());
}

double LlamaModel::forward(const int32_t* tokens, GradSink* head_sink, float dloss_scale) {
  head_sink_ = nullptr;
  const int B = B_, T = T_, N = B * T;
  const float eps = float(cfg_.rms_norm_eps);
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      host_inputs_[size_t(b * T + t)] = tokens[b * (T + 1) + t];
      host_targets_[size_t(b * T + t)] = tokens[b * (T + 1) + t + 1];
    }
  for (int n = 0; n < N; ++n)
    if (host_inputs_[size_t(n)] < 0 || host_inputs_[size_t(n)] >= cfg_.vocab_size ||
        host_targets_[size_t(n)] < 0 || host_targets_[size_t(n)] >= cfg_.vocab_size)
      fail("token id out of range [0, {}) at batch position {}: the data does not match model.vocab_size",
           cfg_.vocab_size, n);
  be_.upload(tokens_.data, host_inputs_.data(), size_t(N) * 4);
  be_.upload(targets_.data, host_targets_.data(), size_t(N) * 4);

  be_.embedding_forward(acts_[0].x, tokens_, W(embed_));
  for (int l = 0; l < cfg_.num_layers; ++l) layer_forward(l, true);
  be_.rmsnorm_forward(lnf_, rstdf_, x_final_, W(normf_), eps);
  if (head_sink) {  // losses, d lnf into dln and lm_head's gradient in one pass over the logits
    bool acc = false;
    const Tensor g = grad_for(*head_sink, lm_head_, &acc);
    be_.classifier(losses_, dln_, g, lnf_, W(lm_head_), targets_, dloss_scale / float(N), acc, logits_);
    head_sink_ = head_sink;
    head_scale_ = dloss_scale;
  } else {
    be_.classifier(losses_, Tensor{}, Tensor{}, lnf_, W(lm_head_), targets_, 0.0f, false, logits_);
  }
  be_.download(host_losses_.data(), losses_.data, size_t(N) * 4);
  double sum = 0.0;
  for (float x : host_losses_) sum += x;
  return sum / N;
}

void LlamaModel::layer_forward(int l, bool write_output) {
  const int N = B_ * T_, NH = cfg_.num_heads, KV = cfg_.kv_heads(), D = cfg_.head_dim();
  const float eps = float(cfg_.rms_norm_eps), theta = float(cfg_.rope_theta);
  const Layer& L = layers_[size_t(l)];
  LayerActs& a = acts_[size_t(l)];
  be_.rmsnorm_forward(a.ln1, a.rstd1, a.x, W(L.ln1), eps);
  be_.matmul_forward(reshape(a.q, {N, NH * D}), a.ln1, W(L.q));
  be_.matmul_forward(reshape(a.k, {N, KV * D}), a.ln1, W(L.k));
  be_.matmul_forward(reshape(a.v, {N, KV * D}), a.ln1, W(L.v));
  be_.rope_forward(a.q, theta);
  be_.rope_forward(a.k, theta);
  be_.attention_forward(a.att, a.lse, a.q, a.k, a.v);
  be_.matmul_forward_add(a.mid, reshape(a.att, {N, NH * D}), W(L.o), a.x);  // mid = x + att·Woᵀ
  be_.rmsnorm_forward(a.ln2, a.rstd2, a.mid, W(L.ln2), eps);
  be_.matmul_forward(a.gate, a.ln2, W(L.gate));
  be_.matmul_forward(a.up, a.ln2, W(L.up));
  be_.swiglu_forward(a.h, a.gate, a.up);
  if (!write_output) return;  // recompute: x[l+1] is already stored
  const Tensor& x_next = l + 1 < cfg_.num_layers ? acts_[size_t(l + 1)].x : x_final_;
  be_.matmul_forward_add(x_next, a.h, W(L.down), a.mid);  // x[l+1] = mid + h·Wdownᵀ
}

Tensor LlamaModel::grad_for(GradSink& sink, int param, bool* acc) {
  Tensor g = sink.grad_buffer(param);
  GT_ASSERT(g.numel() == params_[size_t(param)].numel());
  *acc = sink.accumulate(param);
  const auto& p = params_[size_t(param)];
  return p.cols == 1 ? reshape(g, {p.rows}) : reshape(g, {p.rows, p.cols});
}

void GradSink::grad_factors(int param, const Tensor&, const Tensor&) {
  fail("gradient sink: parameter {} was handed as factors, which this sink does not take", param);
}

void LlamaModel::linear_backward(GradSink& sink, int param, const Tensor& dx, const Tensor& dy, const Tensor& x,
                                 bool dx_acc) {
  if (sink.takes_factors(param)) {
    sink.grad_factors(param, dy, x);
  } else {
    bool acc = false;
    const Tensor g = grad_for(sink, param, &acc);
    be_.matmul_backward(Tensor{}, g, dy, x, W(param), false, acc);
  }
  if (dx.data) be_.matmul_backward(dx, Tensor{}, dy, x, W(param), dx_acc, false);  // after dW: dx may alias x
}

std::array<Tensor, 3> LlamaModel::attention_grads(const LayerActs& a) const {
  if (!overlay_.dqkv_over_mlp) return {dq_, dk_, dv_};
  const DType dt = a.gate.dtype;
  const int64_t B = B_, T = T_, NH = cfg_.num_heads, KV = cfg_.kv_heads(), D = cfg_.head_dim();
  char* up = static_cast<char*>(a.up.data);
  return {Tensor(a.gate.data, dt, a.gate.device, {B, T, NH, D}), Tensor(up, dt, a.up.device, {B, T, KV, D}),
          Tensor(up + size_t(overlay_.dv_offset) * dtype_size(dt), dt, a.up.device, {B, T, KV, D})};
}

void LlamaModel::backward(GradSink& sink, float dloss_scale) {
  const int N = B_ * T_, NH = cfg_.num_heads, KV = cfg_.kv_heads(), D = cfg_.head_dim();
  const float theta = float(cfg_.rope_theta);
  bool acc = false;

  // lm_head + loss: dlnf into dln. Done by a training forward (head_sink) in
  // its pass over the logits; otherwise the logits are recomputed chunk by
  // chunk (one extra lm_head GEMM) so that they never have to be kept.
  Tensor g;
  if (head_sink_) {
    GT_ASSERT(head_sink_ == &sink && head_scale_ == dloss_scale);
  } else {
    g = grad_for(sink, lm_head_, &acc);
    be_.classifier(losses_, dln_, g, lnf_, W(lm_head_), targets_, dloss_scale / float(N), acc, logits_);
  }
  head_sink_ = nullptr;
  sink.grad_ready(lm_head_);

  // final norm: dresid = d x_final
  g = grad_for(sink, normf_, &acc);
  if (!acc) be_.zero(g);
  be_.zero(dresid_);
  be_.rmsnorm_backward(dresid_, g, dln_, x_final_, W(normf_), rstdf_);
  sink.grad_ready(normf_);

  for (int l = cfg_.num_layers - 1; l >= 0; --l) {
    const Layer& L = layers_[size_t(l)];
    LayerActs& a = acts_[size_t(l)];
    if (recompute_) layer_forward(l, false);  // refill the shared layer buffers
    // MLP: dresid holds dL/dx[l+1]
    // dW_down first, from h; then dh overwrites h (both before the update
    // that grad_ready may run, which changes W_down).
    const Tensor& dh = a.h;
    linear_backward(sink, L.down, dh, dresid_, a.h, false);
    sink.grad_ready(L.down);
    // In place: gate/up are dead after this (recompute refills them), so
    // dgate/dup need no buffers of their own ([N, I] each: 180 MB at 7B).
    const Tensor& dgate = a.gate;
    const Tensor& dup = a.up;
    be_.swiglu_backward(dgate, dup, dh, a.gate, a.up);
    linear_backward(sink, L.up, dln_, dup, a.ln2, false);
    sink.grad_ready(L.up);
    linear_backward(sink, L.gate, dln_, dgate, a.ln2, true);
    sink.grad_ready(L.gate);
    g = grad_for(sink, L.ln2, &acc);
    if (!acc) be_.zero(g);
    be_.rmsnorm_backward(dresid_, g, dln_, a.mid, W(L.ln2), a.rstd2);  // dresid += : now dL/dmid
    sink.grad_ready(L.ln2);

    // attention
    linear_backward(sink, L.o, reshape(datt_, {N, NH * D}), dresid_, reshape(a.att, {N, NH * D}), false);
    sink.grad_ready(L.o);
    const auto [dq, dk, dv] = attention_grads(a);  // over gate/up, dead since the MLP's backward
    // h (dh since the MLP's backward) is dead too: the backend's workspace (CUDA: the dS store).
    be_.attention_backward(dq, dk, dv, datt_, a.q, a.k, a.v, a.att, a.lse, a.h);
    be_.rope_backward(dq, theta);
    be_.rope_backward(dk, theta);
    // ln2 (dead now) shares ln1's buffer: recompute ln1 for the q/k/v weight
    // gradients. W(L.ln1) is unchanged until grad_ready(L.ln1) below.
    be_.rmsnorm_forward(a.ln1, a.rstd1, a.x, W(L.ln1), float(cfg_.rms_norm_eps));
    linear_backward(sink, L.v, dln_, reshape(dv, {N, KV * D}), a.ln1, false);
    sink.grad_ready(L.v);
    linear_backward(sink, L.k, dln_, reshape(dk, {N, KV * D}), a.ln1, true);
    sink.grad_ready(L.k);
    linear_backward(sink, L.q, dln_, reshape(dq, {N, NH * D}), a.ln1, true);
    sink.grad_ready(L.q);
    g = grad_for(sink, L.ln1, &acc);
    if (!acc) be_.zero(g);
    be_.rmsnorm_backward(dresid_, g, dln_, a.x, W(L.ln1), a.rstd1);  // now dL/dx[l]
    sink.grad_ready(L.ln1);
  }

  g = grad_for(sink, embed_, &acc);
  if (!acc) be_.zero(g);
  be_.embedding_backward(g, dresid_, tokens_);
  sink.grad_ready(embed_);
}

std::vector<float> LlamaModel::hidden_state(int i) const {
  const Tensor& t = i < cfg_.num_layers ? acts_[size_t(i)].x : lnf_;
  std::vector<float> out(size_t(t.numel()));
  be_.download_f32(out.data(), t);
  return out;
}

std::vector<float> LlamaModel::logits() const {
  GT_ASSERT(logits_.dim(0) == int64_t(B_) * T_);
  std::vector<float> out(size_t(logits_.numel()));
  be_.download(out.data(), logits_.data, out.size() * 4);
  return out;
}

double llama_flops_per_token(const ModelConfig& m, int T, int64_t num_weights) {
  return 6.0 * double(num_weights) + 12.0 * m.num_layers * double(m.hidden_size) * T;
}

}  // namespace gt
