// LLaMA with explicit forward and backward (no autograd), calling its ops
// through a Backend. Parameters use Hugging Face names and layouts.
//
// Per layer l (N = B*T rows, C hidden, I intermediate, NH/KV heads, D head dim):
//   ln1 = rmsnorm(x[l])            q = ln1 Wq^T, k = ln1 Wk^T, v = ln1 Wv^T; rope(q, k)
//   att = attention(q, k, v)       mid = x[l] + att Wo^T
//   ln2 = rmsnorm(mid)             h = silu(ln2 Wgate^T) * (ln2 Wup^T)
//   x[l+1] = mid + h Wdown^T
// then lnf = rmsnorm(x[L]), loss = CE(lnf Wlm^T, targets).
#pragma once
#include <array>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "config/config.h"
#include "core/arena.h"
#include "optim/optimizer.h"

namespace gt {

// Rows of the lm_head + cross-entropy workspace for N = B*T rows: the fp32
// logits of at most this many rows exist at once (62.5 MiB at V = 32000).
// 512 rows still make the logits GEMM large (512 x V x C); each chunk adds
// one read-modify-write of the lm_head gradient (~1 ms per 7B step in all).
inline int logits_workspace_rows(int N) { return N < 512 ? N : 512; }

// The MLP width in memory: intermediate_size rounded up to a multiple of 8.
// bf16 GEMMs whose dimensions are not multiples of 8 (16-byte rows) miss the
// fast tensor-core kernels: llama1b's 5461 runs 4-5x slower on an H100
// (shared/MEASURED.md). The extra rows of gate/up and columns of down are
// zeros, so h's extra columns are silu(0)*0 = 0 and every gradient and
// optimizer state of the padding stays zero: exact. Files keep 5461.
int64_t llama_ffn_width(const ModelConfig& cfg);

// Parameter list in HF order with GaLore targets marked; rows/cols are the
// in-memory shapes (pad_rows/pad_cols say what is padding).
std::vector<ParamInfo> llama_params(const ModelConfig& cfg, const std::vector<std::string>& galore_targets);

// Activation buffers for micro-batch B x T (the memory planner's source of truth).
// With recompute, only each layer's input x is kept; one set of layer buffers
// is shared and refilled by re-running a layer's forward before its backward.
std::vector<BufferSpec> llama_activation_specs(const ModelConfig& cfg, int B, int T, DType dtype, int logits_rows,
                                               bool recompute = false);

// Scratch that needs no buffer of its own when it fits in a dead one:
// - dq/dk/dv over the layer's gate/up: those are dead once the MLP's backward
//   (which runs first) is done; dq at gate's start, dk at up's start and dv
//   after dk (256-byte aligned). 96 MiB at 7B, micro-batch 16.
// - with recompute, the fp32 logits chunk over the shared layer buffers' gate:
//   the lm_head runs after the last layer's forward and before the first
//   recompute in backward, when gate is dead. 62.5 MiB at 7B.
// Each needs its size to fit; otherwise it gets its own buffer.
struct LlamaScratchOverlay {
  bool dqkv_over_mlp = false;
  int64_t dv_offset = 0;  // elements into up (when dqkv_over_mlp)
  bool logits_over_gate = false;
};
LlamaScratchOverlay llama_scratch_overlay(const ModelConfig& cfg, int B, int T, DType dtype, int logits_rows,
                                          bool recompute);

// Where backward puts each weight gradient, and who is told when it is complete.
class GradSink {
 public:
  virtual ~GradSink() = default;
  virtual Tensor grad_buffer(int param) = 0;  // [rows, cols] (or [n]) in the compute dtype
  virtual bool accumulate(int param) = 0;     // add into the buffer instead of overwriting
  virtual void grad_ready(int param) = 0;     // dW is complete: it may be consumed (and the weight updated) now
  // Linear weights (dW = dyᵀ·x): true if the sink takes this micro-batch's dW as
  // its factors through grad_factors instead of in grad_buffer (per-layer GaLore
  // between refreshes). grad_ready follows either way.
  virtual bool takes_factors(int /*param*/) { return false; }
  virtual void grad_factors(int param, const Tensor& dy, const Tensor& x);  // dy [N, rows], x [N, cols]
};

class LlamaModel {
 public:
  // logits_rows: rows of the lm_head workspace (0 = all N rows, keeps logits for inspection).
  // recompute: keep only layer inputs and recompute each layer in backward.
  LlamaModel(const ModelConfig& cfg, Backend& backend, int B, int T, int logits_rows = 0, bool recompute = false);

  const ModelConfig& config() const { return cfg_; }
  const std::vector<ParamInfo>& params() const { return params_; }
  int num_params() const { return int(params_.size()); }
  int64_t num_weights() const;  // total parameter elements, unpadded (the model's size)
  const Tensor& weight(int i) const { return weights_[size_t(i)]; }
  int param_index(const std::string& hf_name) const;  // -1 if absent
  int B() const { return B_; }
  int T() const { return T_; }

  // GaLore-style init: normal(0, init_std) for embeddings and linears, ones for norms.
  void init_random(uint64_t seed);
  // fp32 host values for parameter i in its HF shape, unpadded (any order of calls).
  void set_weight(int i, const float* values);
  std::vector<float> get_weight(int i) const;
  // Raw bytes in the device dtype, HF shape (exact checkpoints): hf_numel * dtype size.
  size_t weight_file_bytes(int i) const;
  void download_weight_bytes(int i, void* dst) const;
  void upload_weight_bytes(int i, const void* src);

  // tokens[B*(T+1)] on the host: inputs are [:, :T], targets [:, 1:].
  // Returns the mean cross-entropy over the B*T targets.
  // head_sink (training): the lm_head + loss backward runs here too, in the same
  // chunked pass over the logits (lm_head's gradient into head_sink, d lnf kept
  // for backward), so backward need not compute the logits again; the next
  // backward must get the same sink and scale. The gradient is not handed on
  // (grad_ready) before backward: a caller that skips backward (a non-finite
  // loss) leaves every weight untouched.
  double forward(const int32_t* tokens, GradSink* head_sink = nullptr, float dloss_scale = 1.0f);
  // Backward of the last forward; dloss_scale multiplies d(mean loss) (1/n_micro for accumulation).
  // It consumes that forward (SwiGLU gradients overwrite gate/up): forward again before another backward.
  void backward(GradSink& sink, float dloss_scale = 1.0f);

  // Inspection (parity tool, tests): hidden.0..L as in HF, logits (if logits_rows == 0).
  std::vector<float> hidden_state(int i) const;  // [B,T,C]
  std::vector<float> logits() const;             // [B,T,V]
  size_t activation_bytes() const { return act_arena_.bytes(); }
  // The activation arena as raw device memory. Between steps nothing in it is
  // live (the next forward refills it), so the trainer lends it out then
  // (GEMM autotuning's scratch operands).
  void* activation_scratch() const { return act_arena_.base(); }
  size_t weight_bytes() const { return weight_arena_.bytes(); }

 private:
  struct Layer {  // param indices
    int ln1, q, k, v, o, ln2, gate, up, down;
  };
  struct LayerActs {  // activation views of one layer
    Tensor x, ln1, rstd1, q, k, v, att, lse, mid, ln2, rstd2, gate, up, h;  // ln2 is ln1's buffer
  };
  const Tensor& W(int i) const { return weights_[size_t(i)]; }
  // Layer l's forward from acts_[l].x; writes x[l+1] unless only recomputing.
  void layer_forward(int l, bool write_output);
  Tensor grad_for(GradSink& sink, int param, bool* acc);
  // Linear param y = x·Wᵀ: its dW = dyᵀ·x into the sink (or as the factors dy, x when the
  // sink takes them), then dx (=, or += when dx_acc) = dy·W unless dx is empty. dx may alias x.
  void linear_backward(GradSink& sink, int param, const Tensor& dx, const Tensor& dy, const Tensor& x, bool dx_acc);
  // dq, dk, dv for layer activations a: views over a.gate / a.up (overlay_) or the own buffers.
  std::array<Tensor, 3> attention_grads(const LayerActs& a) const;

  ModelConfig cfg_;
  Backend& be_;
  int B_, T_, logits_rows_;
  bool recompute_;
  std::vector<ParamInfo> params_;
  std::vector<Layer> layers_;
  int embed_ = 0, normf_ = 0, lm_head_ = 0;

  Arena weight_arena_, act_arena_;
  std::vector<Tensor> weights_;
  std::vector<LayerActs> acts_;
  Tensor tokens_, targets_, x_final_, lnf_, rstdf_, losses_, logits_;
  Tensor dresid_, dln_, dq_, dk_, dv_, datt_;  // datt_ is a view of dln's buffer; dq/dk/dv may be empty (overlay)
  LlamaScratchOverlay overlay_;
  GradSink* head_sink_ = nullptr;  // set by a forward that ran the lm_head backward (until backward)
  float head_scale_ = 0.0f;
  std::vector<int32_t> host_inputs_, host_targets_;
  std::vector<float> host_losses_;
};

// Model FLOPs per trained token: 6 per weight (forward + backward) plus
// attention scores and values, 12*L*C*T (PaLM's convention, causal not
// halved). Recompute's extra forward is not counted (model FLOPs, not
// hardware FLOPs).
double llama_flops_per_token(const ModelConfig& m, int T, int64_t num_weights);

}  // namespace gt
