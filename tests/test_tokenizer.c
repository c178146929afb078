/*
 * test_tokenizer.c - the whole tokenizer (tokenizer.h) against the real
 * Hugging Face tokenizers.
 *
 * References (all produced by HF tokenizers 0.22, never by us):
 * 1. $SRA_SHARED/reference/tokenize/<name>.jsonl for the seven shipped
 *    tokenizers: every line's ids, byte offsets, ids_special and decoded
 *    text must be identical; decode(encode(x)) must give x back wherever
 *    HF's own round trip does (the exceptions are texts HF normalizes or
 *    that spell special tokens; they are counted and printed).
 * 2. llama.cpp's tokenizer test vectors, for the pairs that
 *    reference/llamacpp/README.md maps to our tokenizers.
 * 3. The TinyStories checkpoint's tokenizer on its reference prompts
 *    (ids with BOS as the model was run).
 * 4. Errors a user can cause: invalid UTF-8 (position), bad JSON, missing
 *    or unsupported components (named in the message).
 * Missing shared assets: skipped loudly, failed under CI=true.
 */
#include <cJSON.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "json_test.h"
#include "tokenizer.h"
#include "util.h"





static tok_tokenizer *load(const char *path) {
    tok_tokenizer *t = NULL;
    if (tok_load(&t, path)) {
        CHECK(0, "load %s: %s", path, t ? tok_errmsg(t) : "out of memory");
        tok_free(t);
        return NULL;
    }
    return t;
}

static void show_ids(const char *what, const int32_t *ids, size_t n) {
    printf("    %s:", what);
    for (size_t i = 0; i < n && i < 40; i++) printf(" %d", ids[i]);
    printf(n > 40 ? " ...\n" : "\n");
}

/* ============================================= 1. HF reference files */

typedef struct { int cases, fail, roundtrip_exempt; } tally;

static void check_case(tok_session *s, const char *tname, const char *line, tally *tl) {
    enum { CAP = 1 << 16 };
    static int32_t want[CAP], want_sp[CAP];
    size_t tlen = 0, dlen = 0;
    char *text = sra_json_get_string(line, "text", &tlen);
    char *dec = sra_json_get_string(line, "decoded", &dlen);
    cJSON *j = cJSON_Parse(line);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
    const char *nm = cJSON_IsString(name) ? name->valuestring : "?";
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(j, "offsets");
    int nw = json_ids(cJSON_GetObjectItemCaseSensitive(j, "ids"), want, CAP);
    int nws = json_ids(cJSON_GetObjectItemCaseSensitive(j, "ids_special"), want_sp, CAP);
    int bad = 0;
    if (!text || !dec || !j || nw < 0 || nws < 0 || cJSON_GetArraySize(offs) != nw) {
        printf("  %s/%s: reference line does not parse\n", tname, nm);
        bad = 1;
        goto done;
    }
    tl->cases++;
    tok_encoding e;
    if (tok_encode(s, text, tlen, 0, &e)) {
        printf("  %s/%s: encode failed: %s\n", tname, nm, tok_session_error(s));
        bad = 1;
        goto done;
    }
    int same = e.n == (size_t)nw;
    for (size_t i = 0; same && i < e.n; i++) {
        const cJSON *o = cJSON_GetArrayItem(offs, (int)i);
        same = e.ids[i] == want[i] && e.start[i] == (uint32_t)cJSON_GetArrayItem(o, 0)->valuedouble &&
               e.end[i] == (uint32_t)cJSON_GetArrayItem(o, 1)->valuedouble;
    }
    if (!same) {
        printf("  %s/%s: ids or offsets differ from HF\n", tname, nm);
        show_ids("want", want, (size_t)nw);
        show_ids("got ", e.ids, e.n);
        for (size_t i = 0; i < e.n && i < (size_t)nw; i++) {
            const cJSON *o = cJSON_GetArrayItem(offs, (int)i);
            uint32_t a = (uint32_t)cJSON_GetArrayItem(o, 0)->valuedouble, b = (uint32_t)cJSON_GetArrayItem(o, 1)->valuedouble;
            if (e.ids[i] != want[i] || e.start[i] != a || e.end[i] != b) {
                printf("    first difference at token %zu: want %d [%u,%u) got %d [%u,%u)\n", i, want[i], a, b,
                       e.ids[i], e.start[i], e.end[i]);
                break;
            }
        }
        bad = 1;
    }
    /* decode(ids) as HF, then the round trip */
    const char *out;
    size_t olen;
    if (tok_decode(s, want, (size_t)nw, 0, &out, &olen)) {
        printf("  %s/%s: decode failed: %s\n", tname, nm, tok_session_error(s));
        bad = 1;
    } else if (olen != dlen || memcmp(out, dec, dlen)) {
        printf("  %s/%s: decode differs from HF: want \"%.*s\" got \"%.*s\"\n", tname, nm, (int)dlen, dec,
               (int)olen, out);
        bad = 1;
    } else if (!bad && (olen != tlen || memcmp(out, text, tlen))) {
        if (dlen == tlen && !memcmp(dec, text, tlen)) {
            printf("  %s/%s: decode(encode(x)) != x\n", tname, nm);
            bad = 1;
        } else tl->roundtrip_exempt++;
    }
    if (tok_encode(s, text, tlen, 1, &e)) {
        printf("  %s/%s: encode with specials failed: %s\n", tname, nm, tok_session_error(s));
        bad = 1;
    } else {
        int ok = e.n == (size_t)nws;
        for (size_t i = 0; ok && i < e.n; i++) ok = e.ids[i] == want_sp[i];
        if (!ok) {
            printf("  %s/%s: ids_special differ from HF\n", tname, nm);
            show_ids("want", want_sp, (size_t)nws);
            show_ids("got ", e.ids, e.n);
            bad = 1;
        }
    }
done:
    if (bad) { tl->fail++; check_fails_++; }
    cJSON_Delete(j);
    free(text);
    free(dec);
}

/* Checks every line of the reference file ref (paths relative to the shared
 * folder unless absolute) against the tokenizer tokjson. */
static void reference_file(const char *test, const char *tokjson, const char *ref, int min_cases) {
    char tp[1024], rp[1024];
    snprintf(tp, sizeof tp, "%s%s%s", tokjson[0] == '/' ? "" : check_shared(), tokjson[0] == '/' ? "" : "/", tokjson);
    snprintf(rp, sizeof rp, "%s%s%s", ref[0] == '/' ? "" : check_shared(), ref[0] == '/' ? "" : "/", ref);
    size_t n;
    char *all = sra_read_file(rp, &n);
    FILE *probe = fopen(tp, "rb");
    if (!all || !probe) {
        check_missing_asset(test, all ? tp : rp);
        free(all);
        if (probe) fclose(probe);
        return;
    }
    fclose(probe);
    tok_tokenizer *t = load(tp);
    tok_session *s = t ? tok_session_new(t) : NULL;
    if (!s) { free(all); tok_free(t); return; }
    tally tl = {0, 0, 0};
    for (char *line = all, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (!nl) nl = line + strlen(line) - 1;
        else *nl = 0;
        if (*line) check_case(s, test, line, &tl);
        if (!nl[1]) break;
    }
    printf("  %s: %d cases, %d differ; %d round trips exempt (HF's own decode differs from the text)\n", test,
           tl.cases, tl.fail, tl.roundtrip_exempt);
    CHECK(tl.cases >= min_cases, "%s: only %d cases read", rp, tl.cases);
    tok_session_free(s);
    tok_free(t);
    free(all);
}

#define REF(name)                                                                          \
    TEST(hf_##name) {                                                                      \
        reference_file("hf_" #name, "tokenizers/" #name "/tokenizer.json",                 \
                       "reference/tokenize/" #name ".jsonl", 100);                              \
    }
REF(gpt2)
REF(llama2)
REF(llama3)
REF(mistral)
REF(qwen3)
REF(gemma3)
REF(deepseek_v3)

/* TinyStories: its prompts through the same checker, then the ids the model
 * was run with (BOS + encode) from each prompt folder's ids.json. */
TEST(hf_tinystories) {
    reference_file("hf_tinystories", "models/tinystories-656k/tokenizer.json",
                   "models/tinystories-656k/reference/prompts.tokenized.jsonl", 4);
    char tp[1024];
    snprintf(tp, sizeof tp, "%s/models/tinystories-656k/tokenizer.json", check_shared());
    FILE *probe = fopen(tp, "rb");
    if (!probe) return;
    fclose(probe);
    tok_tokenizer *t = load(tp);
    tok_session *s = t ? tok_session_new(t) : NULL;
    const char *names[] = {"once", "lily-tom", "dog-sad", "long"};
    for (int k = 0; s && k < 4; k++) {
        char p[1200];
        size_t n;
        snprintf(p, sizeof p, "%s/models/tinystories-656k/reference/%s/ids.json", check_shared(), names[k]);
        char *js = sra_read_file(p, &n);
        cJSON *j = js ? cJSON_Parse(js) : NULL;
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(j, "text");
        int32_t want[4096];
        int nw = json_ids(cJSON_GetObjectItemCaseSensitive(j, "ids"), want, 4096);
        tok_encoding e;
        if (!cJSON_IsString(text) || nw < 0) CHECK(0, "%s: unreadable", p);
        else if (tok_encode(s, text->valuestring, strlen(text->valuestring), 1, &e))
            CHECK(0, "%s: %s", names[k], tok_session_error(s));
        else {
            int ok = e.n == (size_t)nw;
            for (size_t i = 0; ok && i < e.n; i++) ok = e.ids[i] == want[i];
            CHECK(ok, "%s: %zu ids, want %d (BOS + encode as the model was run)", names[k], e.n, nw);
        }
        cJSON_Delete(j);
        free(js);
    }
    tok_session_free(s);
    tok_free(t);
}

/* Pipelines the shipped files never exercise (normalizers, pre-tokenizer
 * behaviors, Metaspace schemes, trim_offsets, added-token flags): variants
 * written with their HF encodings by tests/gen_tok_ref.js into
 * $SRA_TOK_REF (derived data, never committed; tests/run.sh makes it). */
TEST(hf_variants) {
    const char *dir = getenv("SRA_TOK_REF");
    char ip[1024];
    snprintf(ip, sizeof ip, "%s/index.txt", dir ? dir : "");
    FILE *f = dir && *dir ? fopen(ip, "r") : NULL;
    if (!f) {
        const char *why = "SRA_TOK_REF is not set or has no index.txt; make it with "
                          "NODE_PATH=.../node_modules node tests/gen_tok_ref.js SHARED DIR";
        check_missing("hf_variants", why);
        return;
    }
    char name[1200];
    int n = 0;
    while (fgets(name, sizeof name, f)) {
        name[strcspn(name, "\n")] = 0;
        if (!*name) continue;
        char tj[1400], rj[1400], *tab = strchr(name, '\t');
        if (tab) *tab = 0;
        if (tab) snprintf(tj, sizeof tj, "%s", tab + 1);
        else snprintf(tj, sizeof tj, "%s/%s.json", dir, name);
        snprintf(rj, sizeof rj, "%s/%s.jsonl", dir, name);
        reference_file(name, tj, rj, 100);
        n++;
    }
    fclose(f);
    CHECK(n >= 40, "%d tokenizers in %s", n, ip);
}

/* ================================================ 2. llama.cpp pairs */

static void llamacpp_pair(const char *test, const char *pair, const char *tok) {
    char ip[1024], op[1024], tp[1024];
    snprintf(ip, sizeof ip, "%s/reference/llamacpp/ggml-vocab-%s.gguf.inp", check_shared(), pair);
    snprintf(op, sizeof op, "%s/reference/llamacpp/ggml-vocab-%s.gguf.out", check_shared(), pair);
    snprintf(tp, sizeof tp, "%s/tokenizers/%s/tokenizer.json", check_shared(), tok);
    size_t ni, no;
    char *inp = sra_read_file(ip, &ni), *outp = sra_read_file(op, &no);
    if (!inp || !outp) {
        check_missing_asset(test, inp ? op : ip);
        free(inp);
        free(outp);
        return;
    }
    tok_tokenizer *t = load(tp);
    tok_session *s = t ? tok_session_new(t) : NULL;
    const char *sep = "\n__ggml_vocab_test__\n";
    size_t seplen = strlen(sep);
    char *p = inp, *o = outp;
    int cases = 0, fails = 0;
    while (s) {
        char *e = strstr(p, sep);
        if (!e) break;
        char *ol = o, *onl = strchr(o, '\n');
        if (!onl) { CHECK(0, "%s: fewer output lines than inputs", op); break; }
        *onl = 0;
        o = onl + 1;
        int32_t want[4096];
        int nw = 0;
        for (char *q = ol, *end; nw < 4096;) {
            long v = strtol(q, &end, 10);
            if (end == q) break;
            want[nw++] = (int32_t)v;
            q = end;
        }
        tok_encoding enc;
        cases++;
        if (tok_encode(s, p, (size_t)(e - p), 0, &enc)) {
            printf("  %s case %d: %s\n", pair, cases, tok_session_error(s));
            fails++;
        } else {
            int ok = enc.n == (size_t)nw;
            for (size_t i = 0; ok && i < enc.n; i++) ok = enc.ids[i] == want[i];
            if (!ok) {
                printf("  %s case %d (\"%.*s\"): ids differ\n", pair, cases, (int)(e - p > 60 ? 60 : e - p), p);
                show_ids("want", want, (size_t)nw);
                show_ids("got ", enc.ids, enc.n);
                fails++;
            }
        }
        p = e + seplen;
    }
    printf("  %s -> %s: %d cases, %d differ\n", pair, tok, cases, fails);
    CHECK(cases >= 11 && fails == 0, "%s: %d of %d cases differ", pair, fails, cases);
    tok_session_free(s);
    tok_free(t);
    free(inp);
    free(outp);
}

TEST(llamacpp_vectors) {
    static const char *pairs[][2] = {{"gpt-2", "gpt2"},      {"llama-spm", "llama2"}, {"phi-3", "llama2"},
                                     {"tinyllama", "llama2"}, {"llama-bpe", "llama3"}, {"qwen2", "qwen3"},
                                     {"deepseek-r1-qwen", "qwen3"}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) llamacpp_pair("llamacpp_vectors", pairs[i][0], pairs[i][1]);
}

/* ======================================================= 3. API facts */

TEST(api_facts) {
    char tp[1024];
    snprintf(tp, sizeof tp, "%s/tokenizers/llama2/tokenizer.json", check_shared());
    FILE *probe = fopen(tp, "rb");
    if (!probe) { check_missing_asset("api_facts", tp); return; }
    fclose(probe);
    tok_tokenizer *t = load(tp);
    if (!t) return;
    /* Llama-2: 32000 pieces, <s>=1 </s>=2, <0x0A>=13, "▁the"=278 (HF vocab) */
    CHECK(tok_vocab_size(t) == 32000, "vocab %d", tok_vocab_size(t));
    CHECK(tok_bos_id(t) == 1, "bos %d", tok_bos_id(t));
    CHECK(tok_token_id(t, "<0x0A>", 6) == 13, "<0x0A> -> %d", tok_token_id(t, "<0x0A>", 6));
    CHECK(tok_token_id(t, "\xe2\x96\x81the", 6) == 278, "_the -> %d", tok_token_id(t, "\xe2\x96\x81the", 6));
    char b[64];
    int n = tok_token_bytes(t, 13, b, sizeof b);
    CHECK(n == 1 && b[0] == '\n', "bytes(13) n=%d", n);
    n = tok_token_bytes(t, 278, b, sizeof b);
    CHECK(n == 4 && !memcmp(b, " the", 4), "bytes(278) = \"%.*s\"", n > 0 ? n : 0, b);
    CHECK(tok_token_bytes(t, 278, b, 2) == 4, "short buffer is a size query");
    CHECK(tok_token_bytes(t, 99999, b, sizeof b) == -1, "unused id");
    tok_free(t);
    snprintf(tp, sizeof tp, "%s/tokenizers/gpt2/tokenizer.json", check_shared());
    if ((t = load(tp))) {
        int32_t id = tok_token_id(t, "\xc4\xa0the", 5); /* "Ġthe" = 262 */
        CHECK(id == 262, "Gthe -> %d", id);
        n = tok_token_bytes(t, 262, b, sizeof b);
        CHECK(n == 4 && !memcmp(b, " the", 4), "gpt2 bytes(262) = \"%.*s\"", n > 0 ? n : 0, b);
        CHECK(tok_vocab_size(t) == 50257, "gpt2 vocab %d", tok_vocab_size(t));
        CHECK(tok_eos_id(t) == -1 && tok_bos_id(t) == -1, "gpt2 adds no specials");
        tok_free(t);
    }
}

/* Encode is thread-safe after load: four threads, each with its own
 * session, encode the same corpus slices at once and must agree with one
 * thread doing it alone. */
typedef struct {
    const tok_tokenizer *t;
    const char *text;
    size_t len;
    uint64_t sum; /* a digest of all ids and offsets */
    int err;
} thr_job;

static void *thr_encode(void *arg) {
    thr_job *j = arg;
    tok_session *s = tok_session_new(j->t);
    if (!s) { j->err = 1; return NULL; }
    uint64_t h = 1469598103934665603ull;
    for (int rep = 0; rep < 3; rep++)
        for (size_t off = 0; off < j->len;) {
            size_t n = j->len - off < 3000 ? j->len - off : 3000;
            while (off + n < j->len && ((unsigned char)j->text[off + n] & 0xc0) == 0x80) n++;
            tok_encoding e;
            if (tok_encode(s, j->text + off, n, 0, &e)) { j->err = 1; break; }
            for (size_t i = 0; i < e.n; i++)
                h = (h ^ ((uint64_t)e.ids[i] << 32 ^ e.start[i] << 16 ^ e.end[i])) * 1099511628211ull;
            off += n;
        }
    j->sum = h;
    tok_session_free(s);
    return NULL;
}

TEST(threads_agree) {
    const char *names[] = {"gpt2", "llama2", "gemma3"};
    char cp[1024];
    snprintf(cp, sizeof cp, "%s/corpus/moby-dick.txt", check_shared());
    size_t len;
    char *text = sra_read_file(cp, &len);
    if (!text) { check_missing_asset("threads_agree", cp); return; }
    if (len > 400000) len = 400000;
    while (len && ((unsigned char)text[len] & 0xc0) == 0x80) len--;
    for (int k = 0; k < 3; k++) {
        char tp[1024];
        snprintf(tp, sizeof tp, "%s/tokenizers/%s/tokenizer.json", check_shared(), names[k]);
        tok_tokenizer *t = load(tp);
        if (!t) continue;
        thr_job one = {t, text, len, 0, 0}, many[4];
        thr_encode(&one);
        pthread_t th[4];
        for (int i = 0; i < 4; i++) {
            many[i] = one;
            many[i].sum = 0;
            pthread_create(&th[i], NULL, thr_encode, &many[i]);
        }
        for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
        for (int i = 0; i < 4; i++)
            CHECK(!many[i].err && !one.err && many[i].sum == one.sum, "%s: thread %d disagrees", names[k], i);
        tok_free(t);
    }
    free(text);
}

/* ============================================================ 4. errors */

static void load_err(const char *json, const char *want) {
    tok_tokenizer *t = NULL;
    int rc = tok_load_json(&t, json, strlen(json), "t.json");
    const char *m = t ? tok_errmsg(t) : "";
    CHECK(rc != 0 && strstr(m, want) && strstr(m, "t.json"), "load of %s: rc %d, message \"%s\" should name \"%s\"",
          json, rc, m, want);
    tok_free(t);
}

#define MODEL "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]}"

TEST(errors) {
    load_err("{", "JSON");
    load_err("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"\xe2\x96\xff\": 0}}}", "not valid UTF-8 (byte 37)");
    load_err("{\"added_tokens\":[]}", "model");
    load_err("{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}", "WordPiece");
    load_err("{" MODEL ",\"normalizer\":{\"type\":\"BertNormalizer\"}}", "BertNormalizer");
    load_err("{" MODEL ",\"pre_tokenizer\":{\"type\":\"Punctuation\"}}", "Punctuation");
    load_err("{" MODEL ",\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(\"},\"behavior\":\"Isolated\"}}",
             "pre_tokenizer");
    load_err("{" MODEL ",\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\"},\"behavior\":\"Sideways\"}}",
             "Sideways");
    load_err("{" MODEL ",\"decoder\":{\"type\":\"WordPiece\"}}", "WordPiece");
    load_err("{" MODEL ",\"post_processor\":{\"type\":\"BertProcessing\"}}", "BertProcessing");
    load_err("{" MODEL ",\"added_tokens\":[{\"id\":\"x\"}]}", "added_tokens");

    tok_tokenizer *t = NULL;
    const char *ok = "{" MODEL "}";
    CHECK(tok_load_json(&t, ok, strlen(ok), "ok.json") == 0, "%s", t ? tok_errmsg(t) : "oom");
    tok_session *s = tok_session_new(t);
    tok_encoding e;
    CHECK(s && tok_encode(s, "ab", 2, 0, &e) == 0 && e.n == 1 && e.ids[0] == 2, "ab -> [2]");
    const char bad[] = "ab\xc3(";
    CHECK(s && tok_encode(s, bad, 4, 0, &e) < 0 && strstr(tok_session_error(s), "byte 2"),
          "invalid UTF-8 names byte 2: \"%s\"", s ? tok_session_error(s) : "");
    const char sur[] = "a\xed\xa0\x80"; /* a surrogate: invalid in UTF-8 */
    CHECK(s && tok_encode(s, sur, 4, 0, &e) < 0 && strstr(tok_session_error(s), "byte 1"), "surrogate at byte 1");
    CHECK(s && tok_encode(s, "", 0, 0, &e) == 0 && e.n == 0, "empty text");
    tok_session_free(s);
    tok_free(t);

    CHECK(tok_load(&t, "/nonexistent/tokenizer.json") != 0 && strstr(tok_errmsg(t), "/nonexistent/tokenizer.json"),
          "missing file named: %s", t ? tok_errmsg(t) : "");
    tok_free(t);
}

int main(void) {
    RUN(hf_gpt2);
    RUN(hf_llama2);
    RUN(hf_llama3);
    RUN(hf_mistral);
    RUN(hf_qwen3);
    RUN(hf_gemma3);
    RUN(hf_deepseek_v3);
    RUN(hf_tinystories);
    RUN(hf_variants);
    RUN(llamacpp_vectors);
    RUN(api_facts);
    RUN(threads_agree);
    RUN(errors);
    return check_summary();
}
