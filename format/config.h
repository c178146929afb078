/*
 * config.h - a Hugging Face config.json as model hyperparameters (prefix
 * cfg_).
 *
 * Supported model_type: "llama", "mistral", "qwen2" (q/k/v projections with
 * bias), "qwen3" (per-head RMSNorm on q and k before RoPE). Read keys, with
 * HF's defaults where the key is absent or null:
 *   hidden_size, num_hidden_layers, num_attention_heads, intermediate_size,
 *   vocab_size (required); num_key_value_heads (= heads), head_dim
 *   (= hidden / heads; qwen3: 128, Qwen3Config's default), rms_norm_eps
 *   (1e-6), rope_theta (10000), max_position_embeddings (llama 2048,
 *   mistral 131072, qwen2/qwen3 32768: each config class's default),
 *   tie_word_embeddings (false for llama, mistral, qwen2 and qwen3 alike:
 *   HF's PretrainedConfig default), attention_bias (false; read for llama
 *   and qwen3, where it puts a bias on q, k, v and o; qwen2 always has
 *   q/k/v bias and no o bias, mistral none, whatever the key says),
 *   mlp_bias (false),
 *   hidden_act ("silu" only), rope_scaling (null, or {"rope_type" or "type":
 *   "linear" with factor, or "llama3" with factor, low_freq_factor,
 *   high_freq_factor, original_max_position_embeddings; "default" = null;
 *   transformers 5's "rope_parameters", with rope_theta inside, is read the
 *   same way), sliding_window / use_sliding_window (refused when it would
 *   apply to the lengths we run: a window smaller than
 *   max_position_embeddings with use_sliding_window true - for qwen2/qwen3
 *   only when some layer slides, i.e. max_window_layers < layers or
 *   layer_types holds "sliding_attention"; mistral has no switch and
 *   always applies sliding_window, default 4096, unless it is null; llama
 *   has none), bos_token_id, eos_token_id (int or first of a list; -1 when
 *   absent).
 * Anything else that changes the math (another model_type, hidden_act,
 * rope type, heads not dividing, mlp_bias true) is an error naming the key.
 *
 * Plain data: no allocation, nothing to free.
 */
#ifndef SRA_CONFIG_H
#define SRA_CONFIG_H

#include <stddef.h>

typedef enum { CFG_ROPE_NONE, CFG_ROPE_LINEAR, CFG_ROPE_LLAMA3 } cfg_rope_type;

typedef struct {
    char model_type[16];
    int hidden;          /* C */
    int n_layers;        /* L */
    int n_heads;         /* NH */
    int n_kv_heads;      /* NKV (divides NH) */
    int head_dim;        /* HS */
    int intermediate;    /* I */
    int vocab;           /* V */
    int max_pos;
    double rms_eps;
    double rope_theta;
    cfg_rope_type rope_type;
    double rope_factor;          /* linear, llama3 */
    double rope_low_freq_factor; /* llama3 */
    double rope_high_freq_factor;
    int rope_original_max_pos;
    int tie_embeddings;
    int qkv_bias;        /* qwen2, or attention_bias: q/k/v (and o when attention_bias) */
    int o_bias;          /* attention_bias true */
    int qk_norm;         /* qwen3 */
    int bos_id, eos_id;  /* -1 when absent */
} cfg_model;

/* Reads path (a config.json, or a folder holding one). Returns 0, or -1
 * with a message naming the file and key in err. */
int cfg_load(cfg_model *c, const char *path, char *err, size_t errlen);

/* Inverse frequencies of RoPE after scaling: inv_freq[i] for i < HS/2, as
 * HF's _compute_default_rope_parameters / _compute_linear_scaling... /
 * _compute_llama3_parameters (computed in double). */
void cfg_rope_inv_freq(const cfg_model *c, double *inv_freq);

#endif /* SRA_CONFIG_H */
