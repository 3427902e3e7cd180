/* tfm.h — the transformer executor on the CPU: the policy that Rein's objectives train.
 *
 * A Llama / Qwen2 / Qwen3-style decoder (token embedding, RMSNorm, rotary embeddings,
 * grouped-query attention, SwiGLU MLP, optional q/k/v (and o) bias, Qwen3's per-head RMSNorm of q
 * and k, tied or untied output head), configured by a Hugging Face config.json and stored as
 * safetensors with the Hugging Face tensor names.
 *
 * Two paths:
 *   - training: a packed batch of variable-length sequences (offsets, causal attention inside each
 *     sequence, no padding) → per-token logp of the target token and per-token entropy; backward
 *     from per-token dlogp / dentropy through the whole model into one gradient allocation;
 *     AdamW with decoupled weight decay and global grad-norm clipping;
 *   - rollout: batched sampling with a KV cache, recording for every sampled token its log-prob
 *     under the policy (temperature 1), under the policy at the sampling temperature (before
 *     top-k / top-p) and under the distribution actually sampled from.
 *
 * It is the only executor (the GPU runs compiled objectives, rein/runtime.h, not the policy) and
 * the reference the PyTorch oracle is compared with (tests/oracle).  Arithmetic is float32
 * (matrix products by OpenBLAS) with float64 accumulation of every reduction over the model
 * dimension or the vocabulary; compiled with TFM_F64 (library reintfm64) every value is float64,
 * which the finite-difference tests use.  Results are bit-identical for the same inputs, seed and
 * thread count.  Forward, backward and generation count float32 subnormals as zero (the CPU's
 * flush modes, set for the call on its OpenMP team and then restored; docs/executor.md).
 */
#ifndef REIN_TFM_H
#define REIN_TFM_H

#include <stddef.h>
#include <stdint.h>

#ifdef TFM_F64
typedef double tfm_f;
#else
typedef float tfm_f;
#endif

/* --- configuration (config.json) ------------------------------------------------------------ */
enum { TFM_LLAMA = 1, TFM_QWEN2 = 2, TFM_QWEN3 = 3 };
enum { TFM_ROPE_DEFAULT = 0, TFM_ROPE_LINEAR = 1, TFM_ROPE_LLAMA3 = 2 };
#define TFM_MAX_EOS 8
#define TFM_MAX_PARAMS 16e9   /* a config with more parameters is rejected (64 GB in float32) */

typedef struct {
  int arch;            /* TFM_LLAMA, TFM_QWEN2 or TFM_QWEN3 */
  int vocab;           /* vocab_size */
  int dim;             /* hidden_size */
  int n_layers;        /* num_hidden_layers */
  int n_heads;         /* num_attention_heads */
  int n_kv_heads;      /* num_key_value_heads (default n_heads) */
  int head_dim;        /* head_dim (default dim / n_heads; Qwen3: 128) */
  int hidden;          /* intermediate_size */
  int max_pos;         /* max_position_embeddings */
  int tie_embeddings;  /* tie_word_embeddings */
  int qkv_bias;        /* Qwen2 always; Llama and Qwen3 when attention_bias */
  int o_bias;          /* Llama and Qwen3 attention_bias */
  int qk_norm;         /* Qwen3: RMSNorm (weights of head_dim) on every q and k head before RoPE */
  double norm_eps;     /* rms_norm_eps */
  double rope_theta;
  int rope_kind;       /* rope_scaling.rope_type / type */
  double rope_factor, rope_low_freq, rope_high_freq;
  int rope_orig_max;
  double init_range;   /* initializer_range, for `rein model init` */
  int bos;             /* bos_token_id, -1 when absent */
  int n_eos;           /* eos_token_id (int or list) */
  int eos[TFM_MAX_EOS];
} TfmConfig;

/* Parse a config.json; on error write "PATH: field 'NAME': problem" to err and return -1. */
int tfm_config_load(const char *path, TfmConfig *cfg, char *err, size_t errlen);
/* The same from a string (path is used in messages only). */
int tfm_config_parse(const char *text, const char *path, TfmConfig *cfg, char *err, size_t errlen);
/* An architecture's config.json model_type ("llama", "qwen2", "qwen3") and class name
 * ("LlamaForCausalLM", ...). */
const char *tfm_arch_name(int arch);
const char *tfm_arch_class(int arch);

/* --- dtypes of the tensors in files --------------------------------------------------------- */
/* What a safetensors file holds: TFM_DT_SAME (for writers) means the model's own m->dtype. */
enum { TFM_DT_SAME = -1, TFM_DT_F32 = 0, TFM_DT_BF16 = 1, TFM_DT_F16 = 2 };
#define TFM_NDT 3
/* "same", "f32", "bf16", "f16" -> TFM_DT_*; -2 for anything else. */
int tfm_dtype_parse(const char *s);
/* The safetensors dtype string of TFM_DT_F32/BF16/F16: "F32", "BF16", "F16". */
const char *tfm_dtype_name(int dt);
/* float32 -> bfloat16 / float16, rounding to nearest, ties to even (as PyTorch and numpy do):
 * overflow gives infinity, a NaN stays a NaN (quiet, sign kept), float16 keeps subnormals. */
uint16_t tfm_f32_to_bf16(float x);
uint16_t tfm_f32_to_f16(float x);

/* --- generation_config.json ----------------------------------------------------------------- */
/* The sampling defaults a model directory ships beside config.json (Hugging Face's
 * generation_config.json), shared by `rein model generate` and the trainer: the stop ids and the
 * sampling parameters the model's authors recommend.  Explicit command-line options override
 * them; fields absent or null are left unset. */
typedef struct {
  int found;                 /* DIR/generation_config.json exists */
  int n_eos;                 /* eos_token_id (an int or a list; 0: absent) */
  int eos[TFM_MAX_EOS];
  int bos;                   /* bos_token_id, -1 when absent */
  int do_sample;             /* -1 absent, else 0 / 1 */
  int has_temperature, has_top_p, has_top_k;
  double temperature, top_p;
  int top_k;
} TfmGenConfig;

/* Reads DIR/generation_config.json when there is one (else *g has found = 0 and nothing set).
 * Token ids must lie in [0, vocab); temperature >= 0, top_p in (0, 1], top_k >= 0.  -1 with
 * "PATH: field 'NAME': problem" in err. */
int tfm_genconfig_load(const char *dir, int vocab, TfmGenConfig *g, char *err, size_t errlen);

/* --- the model ------------------------------------------------------------------------------ */
typedef struct {
  char name[80];       /* Hugging Face name, e.g. "model.layers.3.self_attn.q_proj.weight" */
  int ndim;
  int64_t shape[2];
  size_t off, n;       /* element offset into params / grads, element count */
  int decay;           /* AdamW weight decay applies (matrices: ndim == 2) */
} TfmTensor;

typedef struct {       /* element offsets of one layer's tensors (SIZE_MAX: absent) */
  size_t attn_norm, wq, bq, wk, bk, wv, bv, wo, bo, qn, kn, mlp_norm, wg, wu, wd;
} TfmLayerW;

typedef struct {
  TfmConfig cfg;
  int ntensors;
  TfmTensor *tensors;  /* in file order: embed, layers, norm, [lm_head] */
  size_t nparams;
  tfm_f *params;       /* one allocation, all parameters */
  tfm_f *grads;        /* one allocation, same layout (NULL until the first backward) */
  tfm_f *opt;          /* AdamW state: m then v, one allocation (NULL until the first step) */
  long step;           /* AdamW steps taken */
  int dtype;           /* TFM_DT_*: the dtype the weights came in (tfm_model_load: the one that
                          held the most elements; F32 for tfm_model_new) */
  size_t embed, norm, head;   /* offsets; head == embed when tied */
  TfmLayerW *layers;
  double *inv_freq;    /* (head_dim/2) rotary inverse frequencies, scaling applied */
  tfm_f *ws;           /* activation workspace kept between steps (no page faults per step) */
  size_t ws_cap;       /* its size in elements */
  int ws_busy;         /* held by a live TfmActs (free acts before the model) */
} TfmModel;

/* A model with the config's shapes and every parameter zero; NULL + err on a bad config. */
TfmModel *tfm_model_new(const TfmConfig *cfg, char *err, size_t errlen);
void tfm_model_free(TfmModel *m);
/* Random init: matrices N(0, init_range) from a counter-based generator keyed by (seed, tensor,
 * element), norms 1, biases 0.  Independent of threads. */
void tfm_model_init(TfmModel *m, uint64_t seed);
const TfmTensor *tfm_model_tensor(const TfmModel *m, const char *name);

/* Load DIR/config.json and DIR/model.safetensors (or the shards of
 * DIR/model.safetensors.index.json).  F32, BF16 and F16 tensors are converted to tfm_f; m->dtype
 * records the dtype they came in. */
TfmModel *tfm_model_load(const char *dir, char *err, size_t errlen);
/* Write DIR/config.json (copied from config_text, or generated when NULL, with torch_dtype for
 * dtype) and DIR/model.safetensors in dtype (TFM_DT_SAME: m->dtype), each to a temporary name
 * then renamed.  Creates DIR.  Rounding to BF16/F16 loses the low bits: a trainer that goes on
 * from such a file keeps its float32 masters in the optimizer state (tfm_opt_save). */
int tfm_model_save(const TfmModel *m, const char *dir, const char *config_text, int dtype,
                   char *err, size_t errlen);

/* --- safetensors ---------------------------------------------------------------------------- */
/* Read the tensors of m in the file at path (all of the file's, a shard may hold a part) into
 * m->params.  `seen` (m->ntensors flags) is set for every tensor read; counts (TFM_NDT entries,
 * NULL: not wanted) gets the elements read added per dtype. */
int tfm_st_read(TfmModel *m, const char *path, unsigned char *seen, size_t *counts, char *err,
                size_t errlen);
/* Write values (laid out as m's tensors) as a safetensors file of dtype (TFM_DT_F32, BF16 or
 * F16), atomically. */
int tfm_st_write(const TfmModel *m, const tfm_f *values, int dtype, const char *path, char *err,
                 size_t errlen);

/* AdamW state (m, v, step) as safetensors: NAME.exp_avg and NAME.exp_avg_sq for every tensor,
 * "step" in the metadata; with masters, also NAME.master: the parameters themselves, for a model
 * file written in BF16/F16.  All F32, so a float32 model resumes bit-identically.  Written
 * atomically.  tfm_opt_load reads the masters, when the file has them, into m->params (over the
 * rounded weights of the model file); it has all of them or none. */
int tfm_opt_save(const TfmModel *m, const char *path, int masters, char *err, size_t errlen);
int tfm_opt_load(TfmModel *m, const char *path, char *err, size_t errlen);

/* --- training path -------------------------------------------------------------------------- */
typedef struct {
  int nseq;
  const int *offsets;      /* (nseq+1) into tokens; sequence s is tokens[offsets[s]..offsets[s+1]) */
  const int32_t *tokens;   /* (N) input tokens */
  const int32_t *targets;  /* (N) the token predicted at each position, or -1: no output there */
  double temperature;      /* > 0: the distribution is softmax(logits / temperature) (1: the
                              model's own); the trainer passes its rollout temperature */
} TfmBatch;

typedef struct TfmActs TfmActs;   /* activations kept for backward */

/* Forward: logp[i] = log p(targets[i] | tokens up to i of its sequence), entropy[i] the entropy
 * of that distribution (both 0 where targets[i] < 0), p = softmax(logits / b->temperature); the
 * backward differentiates the same scaled distribution.  Keeps the activations for tfm_backward
 * (acts_out NULL: inference only).  Returns -1 with err on a bad batch (token out of range...). */
int tfm_forward(TfmModel *m, const TfmBatch *b, tfm_f *logp, tfm_f *entropy, TfmActs **acts_out,
                char *err, size_t errlen);
/* Backward from dloss/dlogp and dloss/dentropy (N each), ADDING into m->grads (allocated and
 * zeroed on first use), so micro-batches accumulate.  Frees acts. */
void tfm_backward(TfmModel *m, TfmActs *acts, const tfm_f *dlogp, const tfm_f *dentropy);
void tfm_acts_free(TfmActs *acts);
void tfm_zero_grad(TfmModel *m);

typedef struct {
  double lr, beta1, beta2, eps, weight_decay;
  double max_grad_norm;    /* <= 0: no clipping */
} TfmAdamW;
/* Defaults: lr 1e-5, betas (0.9, 0.999), eps 1e-8, weight decay 0.01, max grad norm 1.0. */
TfmAdamW tfm_adamw_defaults(void);
/* Global L2 norm of m->grads (float64 accumulation, fixed order). */
double tfm_grad_norm(const TfmModel *m);
/* Clip (scale = min(1, max_norm / (norm + 1e-6))), then one AdamW step:
 *   p -= lr*wd*p (matrices only);  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *   p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps).
 * Returns the pre-clip gradient norm.  Does not zero the gradients. */
double tfm_adamw_step(TfmModel *m, const TfmAdamW *o);

/* --- rollout path --------------------------------------------------------------------------- */
typedef struct {
  double temperature;      /* 0: greedy */
  double top_p;            /* 1: off */
  int top_k;               /* 0: off */
  int max_new;             /* tokens generated at most per sequence */
  int nstop;
  const int32_t *stop;     /* stop tokens (kept in the output; generation ends after one) */
  uint64_t seed;
  int seq0;                /* sequence s of the call draws as sequence seq0 + s (a share of a
                              larger batch draws what the whole batch would: 0 otherwise) */
} TfmSampling;

typedef struct {
  int nseq;
  int max_new;
  int32_t *tokens;         /* (nseq, max_new) generated tokens */
  tfm_f *logp;             /* (nseq, max_new) log p under the policy at temperature 1 */
  tfm_f *temp_logp;        /* (nseq, max_new) log p_T, p_T = softmax(logits / temperature), before
                              top-k / top-p (greedy: logp, the policy at temperature 1) */
  tfm_f *sample_logp;      /* (nseq, max_new) log q under the sampling distribution, p_T cut by
                              top-k then top-p and renormalized (0: greedy) */
  int *len;                /* (nseq) tokens generated */
  int *stopped;            /* (nseq) 1: ended on a stop token, 0: reached max_new */
} TfmGenOut;

/* Sample continuations of nseq prompts (prompt s: prompt[off[s]..off[s+1]), at least one token).
 * Sequence s draws its random numbers from (seed, seq0 + s, step), so its tokens do not depend on the
 * other sequences of the call or on threads.  Returns -1 with err on bad input. */
int tfm_generate(TfmModel *m, int nseq, const int *off, const int32_t *prompt,
                 const TfmSampling *s, TfmGenOut *out, char *err, size_t errlen);
void tfm_genout_free(TfmGenOut *out);

/* `rein model ...` (init, logprobs, generate); argv[0] is "model". */
int tfm_cli_main(int argc, char **argv);

#endif
