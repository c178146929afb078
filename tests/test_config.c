/*
 * test_config - config.json reading (config.h): the real TinyStories-656K
 * config, minimal llama/mistral/qwen2/qwen3 configs written here with HF's
 * defaults, sliding windows, RoPE inverse frequencies (default, linear,
 * llama3) against values computed with Python, and errors naming the key.
 * Missing shared assets: skipped loudly, failed under CI=true.
 */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"

static char g_dir[256];




/* Writes json to g_dir/name and returns the path (static buffer). */
static const char *put(const char *name, const char *json) {
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    FILE *fp = fopen(p, "wb");
    if (!fp) { CHECK(0, "cannot write %s", p); return p; }
    fputs(json, fp);
    fclose(fp);
    return p;
}

#define REQ "\"hidden_size\":256,\"num_hidden_layers\":4,\"num_attention_heads\":8,\"intermediate_size\":512,\"vocab_size\":1000"

static int load_ok(int line, cfg_model *c, const char *name, const char *json) {
    char err[512];
    const char *p = put(name, json);
    int rc = cfg_load(c, p, err, sizeof err);
    CHECK(rc == 0, "line %d: %s: %s", line, name, err);
    return rc == 0;
}
#define LOAD_OK(c, name, json) load_ok(__LINE__, c, name, json)

/* cfg_load must fail with a message naming the file and holding `needle`. */
static void load_bad(int line, const char *name, const char *json, const char *needle) {
    char err[512] = "";
    cfg_model c;
    const char *p = put(name, json);
    int rc = cfg_load(&c, p, err, sizeof err);
    CHECK(rc < 0, "line %d: %s accepted", line, name);
    CHECK(strstr(err, p), "line %d: no file in: %s", line, err);
    CHECK(strstr(err, needle), "line %d: no \"%s\" in: %s", line, needle, err);
    if (getenv("SRA_VERBOSE")) printf("    %s\n", err);
}
#define LOAD_BAD(name, json, needle) load_bad(__LINE__, name, json, needle)

static int close_rel(double a, double b) { return fabs(a - b) <= 1e-12 * fabs(b); }

/* ============================================================ real */

TEST(tinystories_config) {
    char dir[1024], file[1100];
    snprintf(dir, sizeof dir, "%s/models/tinystories-656k", check_shared());
    snprintf(file, sizeof file, "%s/config.json", dir);
    if (access(file, R_OK)) { check_missing_asset("tinystories_config", file); return; }
    cfg_model c;
    char err[512];
    int rc = cfg_load(&c, dir, err, sizeof err); /* a folder holding config.json */
    CHECK(rc == 0, "%s", err);
    if (rc) return;
    CHECK(!strcmp(c.model_type, "llama"), "%s", c.model_type);
    CHECK(c.hidden == 128 && c.n_layers == 2 && c.n_heads == 8 && c.n_kv_heads == 4, "dims");
    CHECK(c.head_dim == 16 && c.intermediate == 384 && c.vocab == 2048 && c.max_pos == 512, "dims 2");
    CHECK(c.rms_eps == 1e-6 && c.rope_theta == 10000 && c.rope_type == CFG_ROPE_NONE, "eps/theta/rope");
    CHECK(c.tie_embeddings == 1, "tie_word_embeddings true");
    CHECK(!c.qkv_bias && !c.o_bias && !c.qk_norm, "biases/qk_norm");
    CHECK(c.bos_id == 1 && c.eos_id == 2, "bos %d eos %d", c.bos_id, c.eos_id);
    double inv[8];
    cfg_rope_inv_freq(&c, inv);
    /* python3 -c "print(repr(1/10000**(2/16)), repr(1/10000**(14/16)))"
     * -> 0.31622776601683794 0.00031622776601683794 */
    CHECK(inv[0] == 1.0, "inv[0] %.17g", inv[0]);
    CHECK(close_rel(inv[1], 0.31622776601683794), "inv[1] %.17g", inv[1]);
    CHECK(close_rel(inv[7], 0.00031622776601683794), "inv[7] %.17g", inv[7]);

    CHECK(cfg_load(&c, file, err, sizeof err) == 0, "the file itself: %s", err);
}

/* ==================================================== minimal configs */

TEST(defaults_per_model) {
    cfg_model c;
    if (LOAD_OK(&c, "llama.json", "{\"model_type\":\"llama\"," REQ "}")) {
        CHECK(!strcmp(c.model_type, "llama"), "%s", c.model_type);
        CHECK(c.hidden == 256 && c.n_layers == 4 && c.n_heads == 8 && c.intermediate == 512 && c.vocab == 1000,
              "required keys");
        CHECK(c.n_kv_heads == 8, "kv heads default = heads: %d", c.n_kv_heads);
        CHECK(c.head_dim == 32, "head_dim default = hidden/heads: %d", c.head_dim);
        CHECK(c.rms_eps == 1e-6 && c.rope_theta == 10000 && c.max_pos == 2048, "eps %g theta %g max_pos %d",
              c.rms_eps, c.rope_theta, c.max_pos);
        CHECK(c.rope_type == CFG_ROPE_NONE && !c.tie_embeddings, "rope none, untied");
        CHECK(!c.qkv_bias && !c.o_bias && !c.qk_norm, "no biases");
        CHECK(c.bos_id == -1 && c.eos_id == -1, "bos %d eos %d", c.bos_id, c.eos_id);
    }
    /* null is the same as absent */
    if (LOAD_OK(&c, "nulls.json", "{\"model_type\":\"llama\"," REQ ",\"num_key_value_heads\":null,"
                                  "\"rope_theta\":null,\"rope_scaling\":null,\"bos_token_id\":null,\"head_dim\":null}"))
        CHECK(c.n_kv_heads == 8 && c.rope_theta == 10000 && c.bos_id == -1 && c.head_dim == 32, "nulls");
    /* llama with attention_bias: q, k, v and o */
    if (LOAD_OK(&c, "llama_bias.json", "{\"model_type\":\"llama\"," REQ ",\"attention_bias\":true,"
                                       "\"eos_token_id\":[7,8],\"bos_token_id\":3,\"num_key_value_heads\":2}"))
        CHECK(c.qkv_bias && c.o_bias && c.eos_id == 7 && c.bos_id == 3 && c.n_kv_heads == 2, "llama bias");

    if (LOAD_OK(&c, "mistral.json", "{\"model_type\":\"mistral\"," REQ ",\"sliding_window\":null,"
                                     "\"attention_bias\":true,\"tie_word_embeddings\":true}")) {
        CHECK(!strcmp(c.model_type, "mistral") && c.max_pos == 131072, "mistral default max_pos %d", c.max_pos);
        CHECK(!c.qkv_bias && !c.o_bias && !c.qk_norm, "MistralAttention has no bias");
        CHECK(c.tie_embeddings, "tie");
    }
    if (LOAD_OK(&c, "qwen2.json", "{\"model_type\":\"qwen2\"," REQ ",\"rms_norm_eps\":1e-5,\"rope_theta\":1000000}")) {
        CHECK(c.qkv_bias && !c.o_bias && !c.qk_norm, "qwen2: q/k/v bias only");
        CHECK(c.max_pos == 32768 && c.rms_eps == 1e-5 && c.rope_theta == 1e6, "qwen2 defaults");
    }
    if (LOAD_OK(&c, "qwen3.json", "{\"model_type\":\"qwen3\"," REQ ",\"rope_theta\":1000000}")) {
        CHECK(c.qk_norm && !c.qkv_bias && !c.o_bias, "qwen3: qk norm, no bias");
        CHECK(c.head_dim == 128, "Qwen3Config head_dim default 128: %d", c.head_dim);
        double inv[64];
        cfg_rope_inv_freq(&c, inv);
        /* python3 -c "print(repr(1/1000000.0**(20/128)))" -> 0.1154781984689458 */
        CHECK(close_rel(inv[10], 0.1154781984689458), "qwen3 inv[10] %.17g", inv[10]);
    }
    if (LOAD_OK(&c, "qwen3_hd.json", "{\"model_type\":\"qwen3\"," REQ ",\"head_dim\":64,\"attention_bias\":true}"))
        CHECK(c.head_dim == 64 && c.qkv_bias && c.o_bias, "qwen3 head_dim 64, attention_bias");
}

TEST(sliding_window) {
    cfg_model c;
    /* mistral always applies its window; 4096 (also the default) < 32768 */
    LOAD_BAD("mis_sw.json", "{\"model_type\":\"mistral\"," REQ ",\"sliding_window\":4096,"
                            "\"max_position_embeddings\":32768}", "sliding_window");
    LOAD_BAD("mis_sw_def.json", "{\"model_type\":\"mistral\"," REQ ",\"max_position_embeddings\":32768}",
             "sliding_window");
    LOAD_OK(&c, "mis_sw_ok.json", "{\"model_type\":\"mistral\"," REQ ",\"max_position_embeddings\":4096}");
    /* qwen2: only with use_sliding_window, from layer max_window_layers on */
    LOAD_OK(&c, "q2_off.json", "{\"model_type\":\"qwen2\"," REQ ",\"sliding_window\":4096,\"use_sliding_window\":false}");
    LOAD_BAD("q2_on.json", "{\"model_type\":\"qwen2\"," REQ ",\"sliding_window\":4096,\"use_sliding_window\":true,"
                           "\"max_window_layers\":2}", "use_sliding_window is true");
    LOAD_OK(&c, "q2_mwl.json", "{\"model_type\":\"qwen2\"," REQ ",\"sliding_window\":4096,\"use_sliding_window\":true,"
                               "\"max_window_layers\":28}");
    LOAD_OK(&c, "q2_big.json", "{\"model_type\":\"qwen2\"," REQ ",\"sliding_window\":32768,\"use_sliding_window\":true,"
                               "\"max_window_layers\":0}");
    LOAD_BAD("q3_lt.json", "{\"model_type\":\"qwen3\"," REQ ",\"sliding_window\":4096,\"use_sliding_window\":true,"
                           "\"layer_types\":[\"full_attention\",\"sliding_attention\"]}", "sliding_window");
    /* llama has no sliding window whatever the keys say */
    LOAD_OK(&c, "llama_sw.json", "{\"model_type\":\"llama\"," REQ ",\"sliding_window\":16,\"use_sliding_window\":true}");
}

/* ================================================================ RoPE */

TEST(rope_linear) {
    cfg_model c;
    const char *j = "{\"model_type\":\"llama\",\"hidden_size\":256,\"num_hidden_layers\":1,\"num_attention_heads\":4,"
                    "\"intermediate_size\":8,\"vocab_size\":10,\"rope_scaling\":{\"type\":\"linear\",\"factor\":4.0}}";
    if (!LOAD_OK(&c, "linear.json", j)) return;
    CHECK(c.rope_type == CFG_ROPE_LINEAR && c.rope_factor == 4 && c.head_dim == 64, "linear parsed");
    double inv[32];
    cfg_rope_inv_freq(&c, inv);
    /* python3 -c "[print(i, repr(1.0/10000.0**(2*i/64)/4.0)) for i in (0,5,31)]"
     * -> 0.25, 0.059284342641541386, 3.33380358040831e-05 */
    CHECK(inv[0] == 0.25, "inv[0] %.17g", inv[0]);
    CHECK(close_rel(inv[5], 0.059284342641541386), "inv[5] %.17g", inv[5]);
    CHECK(close_rel(inv[31], 3.33380358040831e-05), "inv[31] %.17g", inv[31]);
    /* "rope_type": "default" is no scaling */
    j = "{\"model_type\":\"llama\"," REQ ",\"rope_scaling\":{\"rope_type\":\"default\"}}";
    if (LOAD_OK(&c, "default.json", j)) CHECK(c.rope_type == CFG_ROPE_NONE, "default rope type");
}

/* Llama-3.1: theta 500000, HS 128, factor 8, low 1, high 4, original 8192.
 * Reference values (HF _compute_llama3_parameters in plain Python):
 *   python3 -c "
 *   import math
 *   th,HS,fa,lo,hi,orig=500000.0,128,8.0,1.0,4.0,8192
 *   for i in range(HS//2):
 *       f=1.0/th**(2*i/HS); w=2*math.pi/f
 *       if w>orig/lo: o=f/fa
 *       elif w<orig/hi: o=f
 *       else:
 *           s=(orig/w-lo)/(hi-lo); o=(1-s)*f/fa+s*f
 *       print(i, repr(o))"
 * (indices 0..28 unchanged, 29..34 interpolated, 35..63 divided by 8). */
static const struct { int i; double v; } LLAMA31[] = {
    {0, 1.0},
    {1, 0.8146172338565447},
    {20, 0.016560440080994446},
    {28, 0.0032114459947525913},
    {29, 0.002166570763503359},
    {30, 0.0013718935677611381},
    {31, 0.0008567514129196321},
    {32, 0.0005248461609929547},
    {33, 0.00031269375038406517},
    {34, 0.00017850781276799638},
    {35, 9.556212353964683e-05},
    {36, 7.78465527393245e-05},
    {40, 3.428102195952591e-05},
    {63, 3.068925988914511e-07},
};

static void check_llama31(const cfg_model *c, const char *what) {
    CHECK(c->rope_type == CFG_ROPE_LLAMA3 && c->rope_factor == 8 && c->rope_low_freq_factor == 1 &&
              c->rope_high_freq_factor == 4 && c->rope_original_max_pos == 8192 && c->rope_theta == 500000 &&
              c->head_dim == 128,
          "%s: llama3 parameters", what);
    double inv[64];
    cfg_rope_inv_freq(c, inv);
    double worst = 0;
    for (size_t k = 0; k < sizeof LLAMA31 / sizeof LLAMA31[0]; k++) {
        double d = fabs(inv[LLAMA31[k].i] - LLAMA31[k].v) / LLAMA31[k].v;
        if (d > worst) worst = d;
        CHECK(d <= 1e-12, "%s: inv[%d] = %.17g, python %.17g", what, LLAMA31[k].i, inv[LLAMA31[k].i], LLAMA31[k].v);
    }
    printf("  %s: max relative difference to python %.2g\n", what, worst);
}

TEST(rope_llama3) {
    cfg_model c;
    const char *j =
        "{\"model_type\":\"llama\",\"hidden_size\":4096,\"num_hidden_layers\":32,\"num_attention_heads\":32,"
        "\"num_key_value_heads\":8,\"intermediate_size\":14336,\"vocab_size\":128256,"
        "\"max_position_embeddings\":131072,\"rope_theta\":500000.0,\"bos_token_id\":128000,"
        "\"eos_token_id\":[128001,128008,128009],\"rope_scaling\":{\"factor\":8.0,\"low_freq_factor\":1.0,"
        "\"high_freq_factor\":4.0,\"original_max_position_embeddings\":8192,\"rope_type\":\"llama3\"}}";
    if (LOAD_OK(&c, "llama31.json", j)) {
        CHECK(c.eos_id == 128001 && c.bos_id == 128000, "ids");
        check_llama31(&c, "rope_scaling");
    }
    /* transformers 5 writes rope_parameters (with rope_theta inside) */
    j = "{\"model_type\":\"llama\",\"hidden_size\":4096,\"num_hidden_layers\":32,\"num_attention_heads\":32,"
        "\"intermediate_size\":14336,\"vocab_size\":128256,\"rope_parameters\":{\"rope_theta\":500000.0,"
        "\"factor\":8.0,\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,"
        "\"original_max_position_embeddings\":8192,\"rope_type\":\"llama3\"}}";
    if (LOAD_OK(&c, "llama31_v5.json", j)) check_llama31(&c, "rope_parameters");
}

/* ============================================================== errors */

TEST(errors_name_the_key) {
    LOAD_BAD("e_type.json", "{\"model_type\":\"gpt2\"," REQ "}", "model_type: \"gpt2\"");
    LOAD_BAD("e_notype.json", "{" REQ "}", "model_type");
    LOAD_BAD("e_act.json", "{\"model_type\":\"llama\"," REQ ",\"hidden_act\":\"gelu\"}", "hidden_act: \"gelu\"");
    LOAD_BAD("e_kv.json", "{\"model_type\":\"llama\"," REQ ",\"num_key_value_heads\":3}", "num_key_value_heads: 3");
    LOAD_BAD("e_kv0.json", "{\"model_type\":\"llama\"," REQ ",\"num_key_value_heads\":0}", "num_key_value_heads");
    LOAD_BAD("e_hidden.json",
             "{\"model_type\":\"llama\",\"num_hidden_layers\":4,\"num_attention_heads\":8,"
             "\"intermediate_size\":512,\"vocab_size\":1000}",
             "hidden_size: missing");
    LOAD_BAD("e_hidden_str.json",
             "{\"model_type\":\"llama\",\"hidden_size\":\"256\",\"num_hidden_layers\":4,\"num_attention_heads\":8,"
             "\"intermediate_size\":512,\"vocab_size\":1000}",
             "hidden_size: \"256\"");
    LOAD_BAD("e_vocab.json",
             "{\"model_type\":\"llama\",\"hidden_size\":256,\"num_hidden_layers\":4,\"num_attention_heads\":8,"
             "\"intermediate_size\":512,\"vocab_size\":-5}",
             "vocab_size: -5");
    LOAD_BAD("e_div.json",
             "{\"model_type\":\"llama\",\"hidden_size\":100,\"num_hidden_layers\":4,\"num_attention_heads\":8,"
             "\"intermediate_size\":512,\"vocab_size\":1000}",
             "head_dim");
    LOAD_BAD("e_odd.json", "{\"model_type\":\"llama\"," REQ ",\"head_dim\":33}", "head_dim: 33");
    LOAD_BAD("e_rope.json", "{\"model_type\":\"llama\"," REQ ",\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4}}",
             "rope_scaling.rope_type: \"yarn\"");
    LOAD_BAD("e_rope_type.json", "{\"model_type\":\"llama\"," REQ ",\"rope_scaling\":{\"type\":\"dynamic\",\"factor\":2}}",
             "rope_scaling.type: \"dynamic\"");
    LOAD_BAD("e_rope_obj.json", "{\"model_type\":\"llama\"," REQ ",\"rope_scaling\":4}", "rope_scaling");
    LOAD_BAD("e_linear.json", "{\"model_type\":\"llama\"," REQ ",\"rope_scaling\":{\"rope_type\":\"linear\"}}",
             "rope_scaling.factor: missing");
    LOAD_BAD("e_llama3.json",
             "{\"model_type\":\"llama\"," REQ ",\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8,"
             "\"high_freq_factor\":4,\"original_max_position_embeddings\":8192}}",
             "rope_scaling.low_freq_factor: missing");
    LOAD_BAD("e_llama3_hl.json",
             "{\"model_type\":\"llama\"," REQ ",\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8,"
             "\"low_freq_factor\":4,\"high_freq_factor\":4,\"original_max_position_embeddings\":8192}}",
             "rope_scaling.high_freq_factor");
    LOAD_BAD("e_theta.json", "{\"model_type\":\"llama\"," REQ ",\"rope_theta\":-1}", "rope_theta: -1");
    LOAD_BAD("e_eps.json", "{\"model_type\":\"llama\"," REQ ",\"rms_norm_eps\":0}", "rms_norm_eps: 0");
    LOAD_BAD("e_mlp.json", "{\"model_type\":\"llama\"," REQ ",\"mlp_bias\":true}", "mlp_bias");
    LOAD_BAD("e_tie.json", "{\"model_type\":\"llama\"," REQ ",\"tie_word_embeddings\":\"yes\"}", "tie_word_embeddings");
    LOAD_BAD("e_eos.json", "{\"model_type\":\"llama\"," REQ ",\"eos_token_id\":\"</s>\"}", "eos_token_id");
    LOAD_BAD("e_json.json", "{\"model_type\":\"llama\",", "not valid JSON");
    LOAD_BAD("e_array.json", "[1,2,3]", "JSON object");

    char err[512], p[512];
    cfg_model c;
    snprintf(p, sizeof p, "%s/absent.json", g_dir);
    CHECK(cfg_load(&c, p, err, sizeof err) < 0 && strstr(err, p), "absent file: %s", err);
    CHECK(cfg_load(&c, g_dir, err, sizeof err) < 0 && strstr(err, "config.json"), "folder without config: %s", err);
    /* a short buffer is cut, never overrun */
    char small[8];
    CHECK(cfg_load(&c, p, small, sizeof small) < 0 && strlen(small) == 7, "short err buffer");
    CHECK(cfg_load(&c, p, NULL, 0) < 0, "NULL err buffer");
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/sra-test-cfg-XXXXXX");
    if (!mkdtemp(g_dir)) { perror("mkdtemp"); return 1; }
    RUN(tinystories_config);
    RUN(defaults_per_model);
    RUN(sliding_window);
    RUN(rope_linear);
    RUN(rope_llama3);
    RUN(errors_name_the_key);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd)) return 1;
    return check_summary();
}
