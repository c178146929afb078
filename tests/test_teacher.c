/*
 * test_teacher.c - the teacher engine (extract/teacher.h) against numpy.
 *
 * 1. TinyStories-656K, a real trained checkpoint, against the reference in
 *    $SRA_SHARED/models/tinystories-656k/reference/ (numpy float64 forward):
 *    logits, per-layer and final hidden states, the last layer's attention
 *    as received mass, top-k, greedy continuation through the KV cache;
 *    also all four prompts in one right-padded batch.
 * 2. Random checkpoints of the other families (qwen2 with biases, qwen3 with
 *    q/k norm, llama with GQA and llama3 RoPE scaling, mistral) and F16/BF16
 *    copies of TinyStories, written with their numpy reference outputs by
 *    tests/model_ref.py into $SRA_MODEL_REF (tests/run.sh makes it).
 * 3. Broken checkpoints: missing tensors, wrong shapes, bad config.
 */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "json_test.h"
#include "npy.h"
#include "teacher.h"
#include "util.h"




/* ====================================================== 1. TinyStories */

#define TS_PROMPTS 4
static const char *ts_names[TS_PROMPTS] = {"once", "lily-tom", "dog-sad", "long"};

typedef struct {
    int T;
    int32_t ids[512];
    npy_array logits, hidden, final, attn;
    int32_t greedy[64];
    int n_greedy;
} ts_ref;

static int ts_load_ref(ts_ref *r, const char *name) {
    char p[1024];
    memset(r, 0, sizeof *r);
    snprintf(p, sizeof p, "%s/models/tinystories-656k/reference/%s/ids.json", check_shared(), name);
    cJSON *j = read_json(p);
    r->T = json_ids(cJSON_GetObjectItemCaseSensitive(j, "ids"), r->ids, 512);
    cJSON_Delete(j);
    snprintf(p, sizeof p, "%s/models/tinystories-656k/reference/%s/greedy.json", check_shared(), name);
    j = read_json(p);
    r->n_greedy = json_ids(cJSON_GetObjectItemCaseSensitive(j, "new_ids"), r->greedy, 64);
    cJSON_Delete(j);
    const char *files[4] = {"logits", "hidden_states", "final_hidden", "attn_last_mean"};
    npy_array *dst[4] = {&r->logits, &r->hidden, &r->final, &r->attn};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/models/tinystories-656k/reference/%s/%s.npy", check_shared(), name, files[i]);
        if (npy_load(dst[i], p)) return -1;
    }
    return r->T > 0 && r->n_greedy > 0 ? 0 : -1;
}

static void ts_free_ref(ts_ref *r) {
    npy_free(&r->logits); npy_free(&r->hidden); npy_free(&r->final); npy_free(&r->attn);
}

/* The received mass of method.md §3 from the head-averaged attention
 * matrix A (T,T) of the reference: m_i = mean over q >= i of A[q,i]
 * (averaging over heads commutes with averaging over queries). */
static void mass_from_attn(const float *A, int T, float *m) {
    for (int i = 0; i < T; i++) {
        double s = 0;
        for (int q = i; q < T; q++) s += A[(size_t)q * T + i];
        m[i] = (float)(s / (T - i));
    }
}

static teacher *ts_load(void) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/models/tinystories-656k", check_shared());
    teacher *t = NULL;
    if (teacher_load(&t, dir)) {
        CHECK(0, "teacher_load %s: %s", dir, teacher_errmsg(t));
        teacher_free(t);
        return NULL;
    }
    return t;
}

TEST(tinystories_forward) {
    char probe[1024];
    snprintf(probe, sizeof probe, "%s/models/tinystories-656k/reference/once/logits.npy", check_shared());
    if (access(probe, R_OK)) { check_missing_asset("tinystories_forward", probe); return; }
    teacher *t = ts_load();
    if (!t) return;
    const cfg_model *c = teacher_config(t);
    int L = c->n_layers, C = c->hidden, V = c->vocab;
    for (int k = 0; k < TS_PROMPTS; k++) {
        ts_ref r;
        if (ts_load_ref(&r, ts_names[k])) { CHECK(0, "%s: reference unreadable", ts_names[k]); ts_free_ref(&r); continue; }
        int T = r.T;
        float *logits = malloc((size_t)T * V * 4), *fin = malloc((size_t)T * C * 4), *mass = malloc((size_t)T * 4);
        float *hid[8], *mref = malloc((size_t)T * 4);
        int layers[8];
        for (int l = 0; l <= L; l++) { layers[l] = l; hid[l] = malloc((size_t)T * C * 4); }
        int32_t tk_ids[6 * 512];
        float tk_lp[6 * 512], tail[512];
        teacher_capture cap = {.n_hidden = L + 1, .hidden_layers = layers, .hidden = hid, .final_hidden = fin,
                               .mass_layer = L, .mass = mass, .topk = 5, .topk_ids = tk_ids,
                               .topk_logprobs = tk_lp, .tail = tail, .logits = logits};
        if (teacher_forward(t, r.ids, NULL, 1, T, &cap)) {
            CHECK(0, "%s: %s", ts_names[k], teacher_errmsg(t));
        } else {
            double dl = check_max_abs_diff(logits, r.logits.data, (size_t)T * V);
            double df = check_max_abs_diff(fin, r.final.data, (size_t)T * C), dh = 0, hmax = 0;
            for (int l = 0; l <= L; l++) {
                double d = check_max_abs_diff(hid[l], r.hidden.data + (size_t)l * T * C, (size_t)T * C);
                if (d > dh) dh = d;
            }
            for (size_t i = 0; i < r.hidden.n; i++) if (fabs(r.hidden.data[i]) > hmax) hmax = fabs(r.hidden.data[i]);
            mass_from_attn(r.attn.data, T, mref);
            double dm = check_max_abs_diff(mass, mref, (size_t)T);
            /* top-k: the reference's argmax, and log-probs as log_softmax of
             * the reference logits computed here in double */
            int topok = 1;
            double dlp = 0;
            for (int q = 0; q < T; q++) {
                const float *row = r.logits.data + (size_t)q * V;
                double mx = row[0], s = 0;
                int am = 0;
                for (int v = 1; v < V; v++) if (row[v] > mx) { mx = row[v]; am = v; }
                for (int v = 0; v < V; v++) s += exp(row[v] - mx);
                if (tk_ids[q * 5] != am) topok = 0;
                for (int j = 0; j < 5; j++) {
                    double want = row[tk_ids[q * 5 + j]] - mx - log(s), d = fabs(want - tk_lp[q * 5 + j]);
                    if (d > dlp) dlp = d;
                }
            }
            printf("  %-8s T=%3d  max|dlogits| %.2e  max|dhidden| %.2e (of max|h| %.0f)  max|dfinal| %.2e  "
                   "max|dmass| %.2e  max|dlogprob| %.2e\n", ts_names[k], T, dl, dh, hmax, df, dm, dlp);
            CHECK(dl <= 1e-4, "%s: logits differ by %.3g", ts_names[k], dl);
            /* the residual stream grows to |h| ~ 1e2: float32 carries ~7
             * digits, so its tolerance is relative (1e-6 of the largest value) */
            CHECK(dh <= 1e-6 * hmax, "%s: hidden states differ by %.3g", ts_names[k], dh);
            CHECK(df <= 1e-4, "%s: final hidden differs by %.3g", ts_names[k], df);
            CHECK(dm <= 1e-5, "%s: mass differs by %.3g", ts_names[k], dm);
            CHECK(topok && dlp <= 1e-4, "%s: top-k (argmax %s, log-prob diff %.3g)", ts_names[k],
                  topok ? "ok" : "differs", dlp);
        }
        for (int l = 0; l <= L; l++) free(hid[l]);
        free(logits); free(fin); free(mass); free(mref);
        ts_free_ref(&r);
    }
    teacher_free(t);
}

/* The four prompts right-padded into one batch give each prompt's own
 * results: padding and neighbours change nothing. */
TEST(tinystories_batch) {
    char probe[1024];
    snprintf(probe, sizeof probe, "%s/models/tinystories-656k/reference/long/logits.npy", check_shared());
    if (access(probe, R_OK)) { check_missing_asset("tinystories_batch", probe); return; }
    teacher *t = ts_load();
    if (!t) return;
    const cfg_model *c = teacher_config(t);
    int V = c->vocab, C = c->hidden, L = c->n_layers;
    ts_ref r[TS_PROMPTS];
    int T = 0, ok = 1;
    for (int k = 0; k < TS_PROMPTS; k++) {
        if (ts_load_ref(&r[k], ts_names[k])) ok = 0;
        if (r[k].T > T) T = r[k].T;
    }
    int32_t *ids = calloc((size_t)TS_PROMPTS * T, sizeof *ids);
    uint8_t *valid = calloc((size_t)TS_PROMPTS * T, 1);
    float *logits = malloc((size_t)TS_PROMPTS * T * V * 4), *mass = malloc((size_t)TS_PROMPTS * T * 4);
    float *fin = malloc((size_t)TS_PROMPTS * T * C * 4), *mref = malloc((size_t)T * 4);
    for (int k = 0; ok && k < TS_PROMPTS; k++)
        for (int i = 0; i < r[k].T; i++) { ids[k * T + i] = r[k].ids[i]; valid[k * T + i] = 1; }
    for (int k = 0; ok && k < TS_PROMPTS; k++) /* padding filled with a real token on purpose */
        for (int i = r[k].T; i < T; i++) ids[k * T + i] = 2;
    teacher_capture cap = {.final_hidden = fin, .mass_layer = L, .mass = mass, .logits = logits};
    if (ok && teacher_forward(t, ids, valid, TS_PROMPTS, T, &cap)) CHECK(0, "batch: %s", teacher_errmsg(t));
    else if (ok) {
        double dl = 0, dm = 0, df = 0;
        for (int k = 0; k < TS_PROMPTS; k++) {
            double d = check_max_abs_diff(logits + (size_t)k * T * V, r[k].logits.data, (size_t)r[k].T * V);
            if (d > dl) dl = d;
            d = check_max_abs_diff(fin + (size_t)k * T * C, r[k].final.data, (size_t)r[k].T * C);
            if (d > df) df = d;
            mass_from_attn(r[k].attn.data, r[k].T, mref);
            d = check_max_abs_diff(mass + (size_t)k * T, mref, (size_t)r[k].T);
            if (d > dm) dm = d;
            for (int i = r[k].T; i < T; i++) CHECK(mass[k * T + i] == 0, "mass at padding %d,%d", k, i);
        }
        printf("  batch B=4 T=%d (right-padded): max|dlogits| %.2e  max|dfinal| %.2e  max|dmass| %.2e\n", T, dl,
               df, dm);
        CHECK(dl <= 1e-4 && df <= 1e-4 && dm <= 1e-5, "batched results differ from the reference");
        /* bit for bit the same as each sequence alone (sra-extract's
         * payload must not depend on --batch): layers.c pads tiny sgemm
         * calls and skips the padded query rows for this */
        float *l1 = malloc((size_t)T * V * 4), *m1 = malloc((size_t)T * 4), *f1 = malloc((size_t)T * C * 4);
        int same = 1;
        for (int k = 0; k < TS_PROMPTS; k++) {
            teacher_capture c1 = {.final_hidden = f1, .mass_layer = L, .mass = m1, .logits = l1};
            if (teacher_forward(t, ids + (size_t)k * T, NULL, 1, r[k].T, &c1)) { same = 0; break; }
            same &= !memcmp(l1, logits + (size_t)k * T * V, (size_t)r[k].T * V * 4) &&
                    !memcmp(f1, fin + (size_t)k * T * C, (size_t)r[k].T * C * 4) &&
                    !memcmp(m1, mass + (size_t)k * T, (size_t)r[k].T * 4);
        }
        CHECK(same, "a sequence alone and inside a padded batch give different bits");
        free(l1); free(m1); free(f1);
    } else CHECK(0, "references unreadable");
    for (int k = 0; k < TS_PROMPTS; k++) ts_free_ref(&r[k]);
    free(ids); free(valid); free(logits); free(mass); free(fin); free(mref);
    teacher_free(t);
}

/* Greedy continuation through the KV cache: the reference's ids. */
TEST(tinystories_greedy) {
    char probe[1024];
    snprintf(probe, sizeof probe, "%s/models/tinystories-656k/reference/once/greedy.json", check_shared());
    if (access(probe, R_OK)) { check_missing_asset("tinystories_greedy", probe); return; }
    teacher *t = ts_load();
    if (!t) return;
    int V = teacher_config(t)->vocab;
    float *logits = malloc((size_t)V * 4);
    for (int k = 0; k < TS_PROMPTS; k++) {
        ts_ref r;
        if (ts_load_ref(&r, ts_names[k])) { CHECK(0, "%s: reference unreadable", ts_names[k]); ts_free_ref(&r); continue; }
        int same = 0;
        if (teacher_gen_begin(t, r.T + r.n_greedy) || teacher_gen_step(t, r.ids, r.T, logits)) {
            CHECK(0, "%s: %s", ts_names[k], teacher_errmsg(t));
        } else {
            /* the first step's logits equal the full forward's last row */
            double d = check_max_abs_diff(logits, r.logits.data + (size_t)(r.T - 1) * V, (size_t)V);
            CHECK(d <= 1e-4, "%s: prompt logits through the cache differ by %.3g", ts_names[k], d);
            for (int s = 0; s < r.n_greedy; s++) {
                int32_t best = 0;
                for (int v = 1; v < V; v++) if (logits[v] > logits[best]) best = v;
                if (best != r.greedy[s]) break;
                same++;
                if (s + 1 < r.n_greedy && teacher_gen_step(t, &best, 1, logits)) { CHECK(0, "%s", teacher_errmsg(t)); break; }
            }
            printf("  %-8s greedy: %d of %d ids as the reference\n", ts_names[k], same, r.n_greedy);
            CHECK(same == r.n_greedy, "%s: greedy diverges at step %d", ts_names[k], same);
        }
        ts_free_ref(&r);
    }
    free(logits);
    teacher_free(t);
}

/* ================================================ 2. random families */

/* One family/dtype folder of $SRA_MODEL_REF: forward the batch of
 * ids.json right-padded, compare every sequence with ref/; then greedy
 * through the KV cache. Returns the max logit error against f32ref (the
 * same family's F32 reference) through *dtype_err when given. */
static void family_case(const char *dir, const char *name, const char *f32dir, double *dtype_err) {
    char p[1400];
    snprintf(p, sizeof p, "%s/ids.json", dir);
    cJSON *j = read_json(p);
    int B = cJSON_GetArraySize(j), T = 0, len[8];
    int32_t seq[8][64];
    for (int b = 0; b < B && b < 8; b++) {
        len[b] = json_ids(cJSON_GetArrayItem(j, b), seq[b], 64);
        if (len[b] > T) T = len[b];
    }
    cJSON_Delete(j);
    if (B < 1 || B > 8 || T < 1) { CHECK(0, "%s: bad ids.json", dir); return; }
    teacher *t = NULL;
    if (teacher_load(&t, dir)) { CHECK(0, "%s: %s", name, teacher_errmsg(t)); teacher_free(t); return; }
    const cfg_model *c = teacher_config(t);
    int L = c->n_layers, C = c->hidden, V = c->vocab;
    int32_t *ids = calloc((size_t)B * T, 4);
    uint8_t *valid = calloc((size_t)B * T, 1);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < T; i++) { ids[b * T + i] = i < len[b] ? seq[b][i] : 0; valid[b * T + i] = i < len[b]; }
    float *logits = malloc((size_t)B * T * V * 4), *fin = malloc((size_t)B * T * C * 4), *mass = malloc((size_t)B * T * 4);
    float *hid[16];
    int layers[16];
    for (int l = 0; l <= L; l++) { layers[l] = l; hid[l] = malloc((size_t)B * T * C * 4); }
    teacher_capture cap = {.n_hidden = L + 1, .hidden_layers = layers, .hidden = hid, .final_hidden = fin,
                           .mass_layer = 2, .mass = mass, .logits = logits};
    double dl = 0, dh = 0, df = 0, dm = 0, dd = 0;
    int greedy_ok = 1, alone_ok = 1;
    if (teacher_forward(t, ids, valid, B, T, &cap)) CHECK(0, "%s: %s", name, teacher_errmsg(t));
    else
        for (int b = 0; b < B; b++) {
            npy_array rl, rf, rh, rm, fl;
            char q[1500];
            int bad = 0;
#define LOADNPY(arr, base, stem) (snprintf(q, sizeof q, "%s/ref/%s_%d.npy", base, stem, b), npy_load(&arr, q))
            bad |= LOADNPY(rl, dir, "logits");
            bad |= LOADNPY(rf, dir, "final_hidden");
            bad |= LOADNPY(rh, dir, "hidden");
            bad |= LOADNPY(rm, dir, "mass");
            if (bad) { CHECK(0, "%s: reference %d unreadable", name, b); continue; }
            size_t n = (size_t)len[b];
            double d = check_max_abs_diff(logits + (size_t)b * T * V, rl.data, n * V);
            if (d > dl) dl = d;
            d = check_max_abs_diff(fin + (size_t)b * T * C, rf.data, n * C);
            if (d > df) df = d;
            for (int l = 0; l <= L; l++) {
                d = check_max_abs_diff(hid[l] + (size_t)b * T * C, rh.data + (size_t)l * n * C, n * C);
                if (d > dh) dh = d;
            }
            d = check_max_abs_diff(mass + (size_t)b * T, rm.data, n);
            if (d > dm) dm = d;
            if (f32dir && !LOADNPY(fl, f32dir, "logits")) {
                d = check_max_abs_diff(logits + (size_t)b * T * V, fl.data, n * V);
                if (d > dd) dd = d;
                npy_free(&fl);
            }
#undef LOADNPY
            npy_free(&rl); npy_free(&rf); npy_free(&rh); npy_free(&rm);
            /* the sequence alone: the same bits as inside the padded batch
             * (F16/BF16 matrices converted in column blocks included) */
            float *l1 = malloc(n * (size_t)V * 4);
            teacher_capture c1 = {.logits = l1};
            if (!l1 || teacher_forward(t, seq[b], NULL, 1, len[b], &c1) ||
                memcmp(l1, logits + (size_t)b * T * V, n * (size_t)V * 4))
                alone_ok = 0;
            free(l1);
            /* greedy through the KV cache */
            snprintf(q, sizeof q, "%s/ref/greedy_%d.json", dir, b);
            cJSON *g = read_json(q);
            int32_t want[64];
            int ng = json_ids(cJSON_GetObjectItemCaseSensitive(g, "new_ids"), want, 64);
            cJSON_Delete(g);
            float *lg = malloc((size_t)V * 4);
            if (ng < 1 || teacher_gen_begin(t, len[b] + ng) || teacher_gen_step(t, seq[b], len[b], lg)) greedy_ok = 0;
            for (int s2 = 0; greedy_ok && s2 < ng; s2++) {
                int32_t best = 0;
                for (int v = 1; v < V; v++) if (lg[v] > lg[best]) best = v;
                if (best != want[s2]) greedy_ok = 0;
                else if (s2 + 1 < ng && teacher_gen_step(t, &best, 1, lg)) greedy_ok = 0;
            }
            free(lg);
        }
    printf("  %-26s %s B=%d T=%d: max|dlogits| %.2e  max|dhidden| %.2e  max|dfinal| %.2e  max|dmass| %.2e%s\n",
           name, teacher_weight_dtype(t), B, T, dl, dh, df, dm, greedy_ok ? "  greedy ok" : "  GREEDY DIFFERS");
    CHECK(dl <= 1e-4 && dh <= 1e-4 && df <= 1e-4 && dm <= 1e-5, "%s: differs from its numpy reference", name);
    CHECK(greedy_ok, "%s: greedy continuation differs", name);
    CHECK(alone_ok, "%s: a sequence's logits alone differ from its rows in the batch", name);
    if (dtype_err) *dtype_err = dd;
    for (int l = 0; l <= L; l++) free(hid[l]);
    free(ids); free(valid); free(logits); free(fin); free(mass);
    teacher_free(t);
}

/* F16 and BF16 copies of TinyStories (tests/model_ref.py convert): logits
 * within a stated tolerance of the F32 reference. */
TEST(tinystories_half) {
    const char *mr = getenv("SRA_MODEL_REF");
    if (!mr || !*mr) { check_missing("tinystories_half", "SRA_MODEL_REF (tests/run.sh makes it)"); return; }
    const char *dts[2] = {"F16", "BF16"};
    const double tol[2] = {1e-2, 5e-2};
    for (int k = 0; k < 2; k++) {
        char dir[1200];
        snprintf(dir, sizeof dir, "%s/tinystories_%s", mr, dts[k]);
        teacher *t = NULL;
        if (teacher_load(&t, dir)) { CHECK(0, "%s: %s", dir, teacher_errmsg(t)); teacher_free(t); continue; }
        CHECK(!strcmp(teacher_weight_dtype(t), dts[k]), "%s: weights are %s", dir, teacher_weight_dtype(t));
        int V = teacher_config(t)->vocab;
        double worst = 0;
        for (int p = 0; p < TS_PROMPTS; p++) {
            ts_ref r;
            if (ts_load_ref(&r, ts_names[p])) { CHECK(0, "reference %s", ts_names[p]); ts_free_ref(&r); continue; }
            float *lg = malloc((size_t)r.T * V * 4);
            teacher_capture cap = {.logits = lg};
            if (teacher_forward(t, r.ids, NULL, 1, r.T, &cap)) CHECK(0, "%s", teacher_errmsg(t));
            else {
                double d = check_max_abs_diff(lg, r.logits.data, (size_t)r.T * V);
                if (d > worst) worst = d;
            }
            free(lg);
            ts_free_ref(&r);
        }
        printf("  tinystories %-4s logits vs the F32 reference: max|d| %.2e (tolerance %.0e)\n", dts[k], worst, tol[k]);
        CHECK(worst <= tol[k], "%s: logits %.3g from F32", dts[k], worst);
        teacher_free(t);
    }
}

TEST(random_families) {
    const char *mr = getenv("SRA_MODEL_REF");
    if (!mr || !*mr) { check_missing("random_families", "SRA_MODEL_REF (tests/run.sh makes it with tests/model_ref.py)"); return; }
    const char *fams[] = {"llama_gqa_llama3rope", "qwen2_bias", "qwen3_qknorm", "mistral"};
    for (int f = 0; f < 4; f++) {
        char d32[1024], d[1100], nm[128];
        snprintf(d32, sizeof d32, "%s/%s_F32", mr, fams[f]);
        family_case(d32, fams[f], NULL, NULL);
        /* F16 and BF16 copies: exact against numpy on the same rounded
         * weights, and within a stated tolerance of the F32 model */
        const char *dts[2] = {"F16", "BF16"};
        const double tol[2] = {5e-3, 5e-2};
        for (int k = 0; k < 2; k++) {
            double err = 0;
            snprintf(d, sizeof d, "%s/%s_%s", mr, fams[f], dts[k]);
            snprintf(nm, sizeof nm, "%s_%s", fams[f], dts[k]);
            family_case(d, nm, d32, &err);
            printf("  %-26s logits vs the F32 model: max|d| %.2e (tolerance %.0e)\n", nm, err, tol[k]);
            CHECK(err <= tol[k], "%s: %.3g from F32 logits", nm, err);
        }
    }
}

/* ========================================================== 3. errors */

/* A config that disagrees with the weights: the load names the tensor. */
static void broken(const char *tmp, const char *src, const char *config, const char *want) {
    char p[1200], q[1200], abs[4096];
    snprintf(p, sizeof p, "%s/model.safetensors", tmp);
    unlink(p);
    snprintf(q, sizeof q, "%s/model.safetensors", src);
    /* a symlink, as in a Hugging Face cache snapshot */
    if (!realpath(q, abs) || symlink(abs, p)) { CHECK(0, "symlink %s", p); return; }
    snprintf(p, sizeof p, "%s/config.json", tmp);
    FILE *f = fopen(p, "w");
    if (!f) { CHECK(0, "write %s", p); return; }
    fputs(config, f);
    fclose(f);
    teacher *t = NULL;
    int rc = teacher_load(&t, tmp);
    CHECK(rc != 0 && strstr(teacher_errmsg(t), want), "want an error naming \"%s\", got rc %d: %s", want, rc,
          teacher_errmsg(t));
    teacher_free(t);
}

TEST(broken_checkpoints) {
    char src[1024];
    snprintf(src, sizeof src, "%s/models/tinystories-656k", check_shared());
    if (access(src, R_OK)) { check_missing_asset("broken_checkpoints", src); return; }
    char tmp[] = "/tmp/sra-teacher-XXXXXX";
    if (!mkdtemp(tmp)) { CHECK(0, "mkdtemp"); return; }
#define CFG(extra) "{\"model_type\": \"llama\", \"hidden_size\": 128, \"intermediate_size\": 384, " \
                   "\"num_attention_heads\": 8, \"num_key_value_heads\": 4, \"vocab_size\": 2048, " \
                   "\"tie_word_embeddings\": true, \"max_position_embeddings\": 512" extra "}"
    broken(tmp, src, CFG(", \"num_hidden_layers\": 3"), "model.layers.2.input_layernorm.weight");
    broken(tmp, src, CFG(", \"num_hidden_layers\": 2, \"head_dim\": 8"), "model.layers.0.self_attn.q_proj.weight");
    broken(tmp, src,
           "{\"model_type\": \"llama\", \"hidden_size\": 128, \"intermediate_size\": 512, "
           "\"num_attention_heads\": 8, \"num_hidden_layers\": 2, \"num_key_value_heads\": 4, "
           "\"vocab_size\": 2048, \"tie_word_embeddings\": true}",
           "mlp.gate_proj.weight");
    broken(tmp, src,
           "{\"model_type\": \"gpt2\", \"hidden_size\": 128, \"intermediate_size\": 384, "
           "\"num_attention_heads\": 8, \"num_hidden_layers\": 2, \"vocab_size\": 2048}",
           "model_type");
    /* ids outside the vocabulary and too long inputs are refused */
    teacher *t = ts_load();
    if (t) {
        int32_t ids[3] = {1, 5000, 7};
        CHECK(teacher_forward(t, ids, NULL, 1, 3, NULL) < 0 && strstr(teacher_errmsg(t), "5000"), "id 5000: %s",
              teacher_errmsg(t));
        int32_t *many = calloc(600, 4);
        CHECK(teacher_forward(t, many, NULL, 1, 600, NULL) < 0 && strstr(teacher_errmsg(t), "512"), "T=600: %s",
              teacher_errmsg(t));
        free(many);
        teacher_free(t);
    }
    char p[1200];
    snprintf(p, sizeof p, "%s/model.safetensors", tmp); unlink(p);
    snprintf(p, sizeof p, "%s/config.json", tmp); unlink(p);
    rmdir(tmp);
}

int main(void) {
    RUN(tinystories_forward);
    RUN(tinystories_batch);
    RUN(tinystories_greedy);
    RUN(tinystories_half);
    RUN(random_families);
    RUN(broken_checkpoints);
    return check_summary();
}
