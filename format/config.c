/*
 * config.c - Hugging Face config.json -> cfg_model (config.h).
 *
 * Defaults are those of transformers' LlamaConfig, MistralConfig,
 * Qwen2Config and Qwen3Config __init__ (4.4x); a key that is absent or null
 * takes its default. Every key that would change the forward pass in a way
 * we do not implement is refused with the key's name.
 */
#include "config.h"

#include <cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

/* ============================================================ reading */

typedef struct {
    const char *path;
    char *err;
    size_t errlen;
} ctx;

__attribute__((format(printf, 2, 3))) static int fail(ctx *x, const char *fmt, ...) {
    if (x->err && x->errlen) {
        int k = snprintf(x->err, x->errlen, "%s: ", x->path);
        if (k >= 0 && (size_t)k < x->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(x->err + k, x->errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

/* Present and not null. */
static const cJSON *get(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static void show(const cJSON *v, char *buf, size_t cap) {
    char *s = cJSON_PrintUnformatted(v);
    snprintf(buf, cap, "%s", s ? s : "?");
    free(s);
}

/* An integer in [lo, INT_MAX]; def when absent (required: def unused). */
static int get_int(ctx *x, const cJSON *o, const char *prefix, const char *key, int required, int def, int lo,
                   int *out) {
    const cJSON *v = get(o, key);
    if (!v) {
        if (required) return fail(x, "%s%s: missing, expected an integer >= %d", prefix, key, lo);
        *out = def;
        return 0;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= lo && d <= INT_MAX) || d != floor(d)) {
        char b[64];
        show(v, b, sizeof b);
        return fail(x, "%s%s: %s, expected an integer >= %d", prefix, key, b, lo);
    }
    *out = (int)d;
    return 0;
}

/* A number > 0 (finite); def when absent. */
static int get_pos(ctx *x, const cJSON *o, const char *prefix, const char *key, int required, double def,
                   double *out) {
    const cJSON *v = get(o, key);
    if (!v) {
        if (required) return fail(x, "%s%s: missing, expected a number > 0", prefix, key);
        *out = def;
        return 0;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d > 0 && isfinite(d))) {
        char b[64];
        show(v, b, sizeof b);
        return fail(x, "%s%s: %s, expected a number > 0", prefix, key, b);
    }
    *out = d;
    return 0;
}

static int get_bool(ctx *x, const cJSON *o, const char *key, int def, int *out) {
    const cJSON *v = get(o, key);
    if (!v) { *out = def; return 0; }
    if (!cJSON_IsBool(v)) {
        char b[64];
        show(v, b, sizeof b);
        return fail(x, "%s: %s, expected true or false", key, b);
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

/* bos/eos: an int, or the first of a list; -1 when absent. */
static int get_token_id(ctx *x, const cJSON *o, const char *key, int *out) {
    const cJSON *v = get(o, key);
    *out = -1;
    if (!v) return 0;
    if (cJSON_IsArray(v)) {
        v = cJSON_GetArrayItem(v, 0);
        if (!v) return 0;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= 0 && d <= INT_MAX) || d != floor(d)) {
        char b[64];
        show(v, b, sizeof b);
        return fail(x, "%s: %s, expected a token id (integer >= 0) or a list of them", key, b);
    }
    *out = (int)d;
    return 0;
}

/* rope_scaling (or transformers 5's rope_parameters): type and factors. */
static int read_rope(ctx *x, cfg_model *c, const cJSON *rs, const char *key) {
    c->rope_type = CFG_ROPE_NONE;
    c->rope_factor = 1;
    if (!rs) return 0;
    if (!cJSON_IsObject(rs)) return fail(x, "%s: expected null or an object", key);
    char pfx[40];
    snprintf(pfx, sizeof pfx, "%s.", key);
    const cJSON *ty = get(rs, "rope_type");
    const char *tkey = "rope_type";
    if (!ty) { ty = get(rs, "type"); tkey = "type"; }
    const char *t = cJSON_IsString(ty) ? ty->valuestring : NULL;
    if (ty && !t) return fail(x, "%s%s: expected a string", pfx, tkey);
    if (!t || !strcmp(t, "default")) return 0;
    if (!strcmp(t, "linear")) {
        c->rope_type = CFG_ROPE_LINEAR;
        return get_pos(x, rs, pfx, "factor", 1, 1, &c->rope_factor);
    }
    if (!strcmp(t, "llama3")) {
        c->rope_type = CFG_ROPE_LLAMA3;
        if (get_pos(x, rs, pfx, "factor", 1, 1, &c->rope_factor) ||
            get_pos(x, rs, pfx, "low_freq_factor", 1, 1, &c->rope_low_freq_factor) ||
            get_pos(x, rs, pfx, "high_freq_factor", 1, 1, &c->rope_high_freq_factor) ||
            get_int(x, rs, pfx, "original_max_position_embeddings", 1, 0, 1, &c->rope_original_max_pos))
            return -1;
        /* _compute_llama3_parameters divides by high - low. */
        if (!(c->rope_high_freq_factor > c->rope_low_freq_factor))
            return fail(x, "%shigh_freq_factor: %g, expected more than low_freq_factor %g", pfx,
                        c->rope_high_freq_factor, c->rope_low_freq_factor);
        return 0;
    }
    return fail(x, "%s%s: \"%.40s\" is not supported (expected \"default\", \"linear\" or \"llama3\")", pfx, tkey, t);
}

/* Sliding-window attention, as each model's HF attention applies it. */
static int check_sliding(ctx *x, const cJSON *o, const cfg_model *c) {
    if (!strcmp(c->model_type, "llama")) return 0; /* LlamaAttention has none */
    const cJSON *sw = cJSON_GetObjectItemCaseSensitive(o, "sliding_window");
    int window = 4096; /* the default of all three configs */
    if (sw && cJSON_IsNull(sw)) return 0;
    if (sw && get_int(x, o, "", "sliding_window", 0, 0, 1, &window)) return -1;
    int use;
    if (!strcmp(c->model_type, "mistral")) {
        use = 1; /* MistralConfig has no switch: a window is always used */
    } else {
        if (get_bool(x, o, "use_sliding_window", 0, &use)) return -1;
        /* Qwen2/Qwen3 attention slides only from layer max_window_layers
         * on, or on layers that layer_types marks "sliding_attention". */
        if (use) {
            const cJSON *lt = get(o, "layer_types");
            if (cJSON_IsArray(lt)) {
                int any = 0;
                const cJSON *e;
                cJSON_ArrayForEach(e, lt) any |= cJSON_IsString(e) && !strcmp(e->valuestring, "sliding_attention");
                use = any;
            } else {
                int mwl;
                if (get_int(x, o, "", "max_window_layers", 0, 28, 0, &mwl)) return -1;
                use = mwl < c->n_layers;
            }
        }
    }
    if (use && window < c->max_pos)
        return fail(x,
                    "sliding_window: %d is smaller than max_position_embeddings %d and %s: "
                    "sliding-window attention is not supported",
                    window, c->max_pos,
                    strcmp(c->model_type, "mistral") ? "use_sliding_window is true" : "mistral always applies it");
    return 0;
}

int cfg_load(cfg_model *c, const char *path, char *err, size_t errlen) {
    ctx x = {path ? path : "(null)", err, errlen};
    if (err && errlen) err[0] = 0;
    if (!c || !path) return fail(&x, "cfg_load: no config or path given");
    memset(c, 0, sizeof *c);

    char *joined = NULL;
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        size_t n = strlen(path);
        joined = malloc(n + sizeof "/config.json");
        if (!joined) return fail(&x, "out of memory");
        memcpy(joined, path, n);
        memcpy(joined + n, "/config.json", sizeof "/config.json");
        x.path = joined;
    }
    int rc = -1;
    size_t len = 0;
    char *text = sra_read_file(x.path, &len);
    cJSON *o = NULL;
    if (!text) {
        fail(&x, "cannot read: %s", strerror(errno));
        goto done;
    }
    const char *at = NULL;
    o = cJSON_ParseWithLengthOpts(text, len, &at, 0);
    if (!o) {
        long off = at && at >= text && at <= text + len ? (long)(at - text) : -1;
        fail(&x, "not valid JSON (near byte %ld)", off);
        goto done;
    }
    for (; at < text + len; at++)
        if (*at != ' ' && *at != '\t' && *at != '\r' && *at != '\n') {
            fail(&x, "not valid JSON: data after the object (byte %ld)", (long)(at - text));
            goto done;
        }
    if (!cJSON_IsObject(o)) {
        fail(&x, "expected a JSON object");
        goto done;
    }

    const cJSON *mt = get(o, "model_type");
    if (!cJSON_IsString(mt)) {
        fail(&x, "model_type: missing or not a string, expected \"llama\", \"mistral\", \"qwen2\" or \"qwen3\"");
        goto done;
    }
    const char *types[] = {"llama", "mistral", "qwen2", "qwen3"};
    int ti = -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(mt->valuestring, types[i])) ti = i;
    if (ti < 0) {
        fail(&x, "model_type: \"%.40s\" is not supported (expected \"llama\", \"mistral\", \"qwen2\" or \"qwen3\")",
             mt->valuestring);
        goto done;
    }
    snprintf(c->model_type, sizeof c->model_type, "%s", types[ti]);
    int mistral = ti == 1, qwen2 = ti == 2, qwen3 = ti == 3;

    if (get_int(&x, o, "", "hidden_size", 1, 0, 1, &c->hidden) ||
        get_int(&x, o, "", "num_hidden_layers", 1, 0, 1, &c->n_layers) ||
        get_int(&x, o, "", "num_attention_heads", 1, 0, 1, &c->n_heads) ||
        get_int(&x, o, "", "intermediate_size", 1, 0, 1, &c->intermediate) ||
        get_int(&x, o, "", "vocab_size", 1, 0, 1, &c->vocab) ||
        get_int(&x, o, "", "num_key_value_heads", 0, c->n_heads, 1, &c->n_kv_heads))
        goto done;
    if (c->n_heads % c->n_kv_heads) {
        fail(&x, "num_key_value_heads: %d does not divide num_attention_heads %d", c->n_kv_heads, c->n_heads);
        goto done;
    }
    /* head_dim: hidden / heads, except Qwen3Config whose default is 128. */
    if (!get(o, "head_dim") && !qwen3 && c->hidden % c->n_heads) {
        fail(&x, "head_dim: missing, and hidden_size %d is not divisible by num_attention_heads %d", c->hidden,
             c->n_heads);
        goto done;
    }
    if (get_int(&x, o, "", "head_dim", 0, qwen3 ? 128 : c->hidden / c->n_heads, 2, &c->head_dim)) goto done;
    if (c->head_dim % 2) {
        fail(&x, "head_dim: %d, expected an even number (RoPE rotates pairs)", c->head_dim);
        goto done;
    }
    /* max_position_embeddings: LlamaConfig 2048, MistralConfig 4096 * 32,
     * Qwen2Config and Qwen3Config 32768. */
    int def_pos = mistral ? 4096 * 32 : (qwen2 || qwen3) ? 32768 : 2048;
    if (get_int(&x, o, "", "max_position_embeddings", 0, def_pos, 1, &c->max_pos) ||
        get_pos(&x, o, "", "rms_norm_eps", 0, 1e-6, &c->rms_eps) ||
        get_bool(&x, o, "tie_word_embeddings", 0, &c->tie_embeddings) ||
        get_token_id(&x, o, "bos_token_id", &c->bos_id) || get_token_id(&x, o, "eos_token_id", &c->eos_id))
        goto done;

    const cJSON *act = get(o, "hidden_act");
    if (act && !(cJSON_IsString(act) && !strcmp(act->valuestring, "silu"))) {
        char b[64];
        show(act, b, sizeof b);
        fail(&x, "hidden_act: %s is not supported (expected \"silu\")", b);
        goto done;
    }
    int mlp_bias;
    if (get_bool(&x, o, "mlp_bias", 0, &mlp_bias)) goto done;
    if (mlp_bias) {
        fail(&x, "mlp_bias: true is not supported (expected false)");
        goto done;
    }
    /* Biases: Qwen2Attention has q/k/v bias and no o bias whatever the
     * config says; MistralAttention has none; LlamaAttention and
     * Qwen3Attention put attention_bias on q, k, v and o. */
    int ab;
    if (get_bool(&x, o, "attention_bias", 0, &ab)) goto done;
    if (mistral || qwen2) ab = 0;
    c->qkv_bias = qwen2 || ab;
    c->o_bias = ab;
    c->qk_norm = qwen3;

    /* RoPE: rope_theta and rope_scaling, or transformers 5's
     * rope_parameters {"rope_type", "rope_theta", ...} in their place. */
    const cJSON *rp = get(o, "rope_parameters");
    const cJSON *rs = get(o, "rope_scaling");
    if (rp && !rs) {
        if (!cJSON_IsObject(rp)) {
            fail(&x, "rope_parameters: expected null or an object");
            goto done;
        }
        if (get_pos(&x, o, "", "rope_theta", 0, 10000, &c->rope_theta) ||
            get_pos(&x, rp, "rope_parameters.", "rope_theta", 0, c->rope_theta, &c->rope_theta))
            goto done;
        if (read_rope(&x, c, rp, "rope_parameters")) goto done;
    } else {
        if (get_pos(&x, o, "", "rope_theta", 0, 10000, &c->rope_theta)) goto done;
        if (read_rope(&x, c, rs, "rope_scaling")) goto done;
    }
    if (check_sliding(&x, o, c)) goto done;
    rc = 0;
done:
    cJSON_Delete(o);
    free(text);
    free(joined);
    return rc;
}

/* ============================================================== RoPE */

void cfg_rope_inv_freq(const cfg_model *c, double *inv_freq) {
    int HS = c->head_dim;
    for (int i = 0; i < HS / 2; i++) {
        /* _compute_default_rope_parameters: 1 / theta^(2i/HS) */
        double f = 1.0 / pow(c->rope_theta, (double)(2 * i) / (double)HS);
        if (c->rope_type == CFG_ROPE_LINEAR) {
            f /= c->rope_factor;
        } else if (c->rope_type == CFG_ROPE_LLAMA3) {
            /* _compute_llama3_parameters: long wavelengths are slowed by
             * factor, short ones kept, the band between interpolated. */
            double orig = (double)c->rope_original_max_pos;
            double lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor;
            double wavelen = 2 * M_PI / f;
            double low_freq_wavelen = orig / lo, high_freq_wavelen = orig / hi;
            if (wavelen > low_freq_wavelen) {
                f /= c->rope_factor;
            } else if (!(wavelen < high_freq_wavelen)) {
                double smooth = (orig / wavelen - lo) / (hi - lo);
                f = (1 - smooth) * f / c->rope_factor + smooth * f;
            }
        }
        inv_freq[i] = f;
    }
}
