/*
 * extract.c - stage one: records → atoms → teacher batches → shard files
 * and manifest (contract: extract.h).
 *
 * One shard at a time: read its records in order, plan each (plan.h), queue
 * the pieces, and whenever `batch` pieces wait run the teacher over them as
 * one right-padded batch, then reduce every piece to its atoms (mass, CoM
 * per stored layer, top-k at the atom's last token) and append it to the
 * shard writer. Pieces leave in the order they came, so the payload does
 * not depend on the batch size.
 */
#include "extract.h"

#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache_head.h"
#include "config.h"
#include "layers.h"
#include "plan.h"
#include "teacher.h"
#include "tokenizer.h"

/* Text per automatic shard: small enough that a killed run loses little,
 * large enough that a cluster's file count stays sane. */
#define EXT_AUTO_SHARD_BYTES ((int64_t)16 << 20)

void ext_settings_default(ext_settings *s) {
    memset(s, 0, sizeof *s);
    s->atoms = SPAN_ATOMS_WORD;
    s->mass = EXT_MASS_LAST; /* the paper preset (method.md §9.1) */
    s->n_layers = 1;
    s->layers[0] = CACHE_LAYER_FINAL;
    s->topk = 64;
    s->dtype = CACHE_BF16;
    s->zstd_level = 1;
    s->batch = 8;
    s->shard_index = -1;
}

int ext_mass_parse(const char *s, ext_mass_kind *kind, int *layer) {
    char *end;
    if (!strcmp(s, "uniform")) { *kind = EXT_MASS_UNIFORM; *layer = 0; return 0; }
    if (!strcmp(s, "attn")) { *kind = EXT_MASS_ATTN; *layer = 0; return 0; }
    if (!strcmp(s, "last")) { *kind = EXT_MASS_LAST; *layer = 0; return 0; }
    if (!strncmp(s, "attn:", 5) || !strncmp(s, "self:", 5) || !strncmp(s, "last:", 5)) {
        errno = 0;
        long l = strtol(s + 5, &end, 10);
        if (errno || end == s + 5 || *end || l < 0 || l > 100000) return -1;
        if (s[0] == 'l' && l == 0) return -1; /* "last" alone means the last layer; layers count from 1 */
        *kind = s[0] == 'a' ? EXT_MASS_ATTN : s[0] == 'l' ? EXT_MASS_LAST : EXT_MASS_SELF;
        *layer = (int)l;
        return 0;
    }
    return -1;
}

/* 1 once the caller's signal handler has asked us to stop (extract.h). */
static int ext_stopping(const ext_settings *s) { return s->stop && *s->stop; }

/* ============================================================ pass one */

typedef struct {
    int64_t records, text_bytes;
    char (*sha)[65]; /* (n_data) */
} data_survey;

/* sha256 of every input file and the number of records (one read of the
 * dataset through the same reader the shards use, so numbering agrees). */
static int survey(const ext_settings *s, data_survey *sv, sra_err *e) {
    sv->records = sv->text_bytes = 0;
    if (!(sv->sha = calloc((size_t)s->n_data, sizeof *sv->sha)))
        return sra_err_set(e, SRA_E_NOMEM, "out of memory");
    for (int i = 0; i < s->n_data; i++)
        if (sra_sha256_file(s->data[i], sv->sha[i], e)) return e->code;
    data_reader *r = NULL;
    int rc = data_open(&r, s->data, s->n_data, &s->data_opts);
    data_record rec;
    while (!rc) {
        if (ext_stopping(s)) { rc = SRA_E_STOPPED; break; }
        if ((rc = data_next(r, &rec)) != 1) break;
        rc = 0;
        sv->records++;
        if (!rec.error) sv->text_bytes += (int64_t)rec.len;
    }
    if (rc == SRA_E_STOPPED)
        rc = sra_err_set(e, rc, "stopped while reading the dataset, before any shard (nothing was written)");
    else if (rc < 0) rc = sra_err_set(e, rc, "%s", r ? data_errmsg(r) : "out of memory");
    data_close(r);
    return rc;
}

/* ============================================================ settings */

static const char *mass_name(const ext_settings *s, int L, char *buf, size_t n) {
    int attention = s->mass == EXT_MASS_ATTN || s->mass == EXT_MASS_LAST; /* 0 = the last layer */
    if (s->mass == EXT_MASS_UNIFORM) snprintf(buf, n, "uniform");
    else snprintf(buf, n, "%s:%d", s->mass == EXT_MASS_ATTN ? "attn" : s->mass == EXT_MASS_LAST ? "last" : "self",
             attention && s->mass_layer == 0 ? L : s->mass_layer);
    return buf;
}

typedef struct {
    char config_sha[65], tok_sha[65], student_sha[65];
    char *weights_sha;   /* "HEX  file\n" lines */
    char dataset_sha[65];
    char mass[32];
    int max_tokens, shards;
    cJSON *json;         /* the settings object */
    char *json_str;      /* unformatted */
} resolved;

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* "HEX  name\n" for every *.safetensors file in dir, sorted by name. */
static int weights_sha(const char *dir, char **out, sra_err *e) {
    DIR *d = opendir(dir);
    if (!d) return sra_err_set(e, SRA_E_IO, "%s: cannot open the teacher folder: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 12 || strcmp(de->d_name + l - 12, ".safetensors")) continue;
        if (sra_grow((void **)&names, &cap, n + 1, sizeof *names) || !(names[n++] = strdup(de->d_name))) {
            rc = sra_err_set(e, SRA_E_NOMEM, "out of memory");
            break;
        }
    }
    closedir(d);
    if (!rc && !n) rc = sra_err_set(e, SRA_E_MISSING, "%s: no *.safetensors file", dir);
    if (!rc) qsort(names, n, sizeof *names, cmp_str);
    size_t len = 0;
    char *buf = NULL;
    for (size_t i = 0; !rc && i < n; i++) {
        char path[4096], hex[65];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (sra_sha256_file(path, hex, e)) { rc = e->code; break; }
        size_t add = 64 + 2 + strlen(names[i]) + 1;
        char *nb = realloc(buf, len + add + 1);
        if (!nb) { rc = sra_err_set(e, SRA_E_NOMEM, "out of memory"); break; }
        buf = nb;
        len += (size_t)sprintf(buf + len, "%s  %s\n", hex, names[i]);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    if (rc) { free(buf); return rc; }
    *out = buf;
    return 0;
}

static cJSON *build_settings(const ext_settings *s, const resolved *rs, const data_survey *sv) {
    cJSON *o = cJSON_CreateObject(), *data = cJSON_CreateArray(), *layers = cJSON_CreateArray();
    if (!o || !data || !layers) { cJSON_Delete(o); cJSON_Delete(data); cJSON_Delete(layers); return NULL; }
    cJSON_AddNumberToObject(o, "format_version", CACHE_VERSION);
    cJSON_AddStringToObject(o, "teacher_config_sha256", rs->config_sha);
    cJSON_AddStringToObject(o, "teacher_weights_sha256", rs->weights_sha);
    cJSON_AddStringToObject(o, "teacher_tokenizer_sha256", rs->tok_sha);
    for (int i = 0; i < s->n_data; i++) cJSON_AddItemToArray(data, cJSON_CreateString(sv->sha[i]));
    cJSON_AddItemToObject(o, "data_sha256", data);
    const data_opts *d = &s->data_opts;
    int pr = d->prompt_field && d->response_field;
    cJSON_AddStringToObject(o, "text_field", pr ? "" : d->text_field ? d->text_field : "text");
    cJSON_AddStringToObject(o, "prompt_field", pr ? d->prompt_field : "");
    cJSON_AddStringToObject(o, "response_field", pr ? d->response_field : "");
    cJSON_AddNumberToObject(o, "max_bytes", (double)(d->max_bytes ? d->max_bytes : DATA_TXT_MAX_BYTES));
    cJSON_AddStringToObject(o, "student_tokenizer_sha256", rs->student_sha);
    cJSON_AddStringToObject(o, "atoms", span_atoms_mode_name(s->atoms));
    cJSON_AddStringToObject(o, "mass", rs->mass);
    for (int i = 0; i < s->n_layers; i++) cJSON_AddItemToArray(layers, cJSON_CreateNumber(s->layers[i]));
    cJSON_AddItemToObject(o, "layers", layers);
    cJSON_AddNumberToObject(o, "topk", s->topk);
    cJSON_AddStringToObject(o, "dtype", cache_dtype_name(s->dtype));
    cJSON_AddNumberToObject(o, "zstd_level", s->zstd_level);
    cJSON_AddNumberToObject(o, "max_tokens", rs->max_tokens);
    cJSON_AddNumberToObject(o, "shards", rs->shards);
    return o;
}

/* 0 when a and b are the same settings; otherwise a message naming the
 * first key that differs. */
static int settings_differ(const cJSON *want, const cJSON *have, const char *where, sra_err *e) {
    for (const cJSON *w = want->child; w; w = w->next) {
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(have, w->string);
        if (h && cJSON_Compare(w, h, 1)) continue;
        char *ws = cJSON_PrintUnformatted(w), *hs = h ? cJSON_PrintUnformatted(h) : NULL;
        sra_err_set(e, SRA_E_ARG,
                    "%s: setting '%s' differs: the output was made with %s, this run asks for %s "
                    "(use a new --out, or the same settings)",
                    where, w->string, hs ? hs : "(none)", ws ? ws : "?");
        free(ws);
        free(hs);
        return 1;
    }
    for (const cJSON *h = have->child; h; h = h->next)
        if (!cJSON_GetObjectItemCaseSensitive(want, h->string)) {
            sra_err_set(e, SRA_E_ARG, "%s: setting '%s' is not known to this sra-extract", where, h->string);
            return 1;
        }
    return 0;
}

/* settings.json: created when absent, otherwise compared. */
static int check_settings_file(const char *dir, const cJSON *want, sra_err *e) {
    char path[4200];
    snprintf(path, sizeof path, "%s/settings.json", dir);
    size_t n;
    char *text = sra_read_file(path, &n);
    if (!text) {
        if (errno != ENOENT) return sra_err_set(e, SRA_E_IO, "%s: cannot read: %s", path, strerror(errno));
        char *s = cJSON_Print(want);
        if (!s) return sra_err_set(e, SRA_E_NOMEM, "out of memory");
        size_t l = strlen(s);
        char *s2 = realloc(s, l + 2);
        if (s2) { s = s2; s[l] = '\n'; s[l + 1] = 0; }
        int rc = sra_write_file_atomic(path, s, e);
        free(s);
        return rc;
    }
    cJSON *have = cJSON_ParseWithLength(text, n);
    free(text);
    if (!cJSON_IsObject(have)) {
        cJSON_Delete(have);
        return sra_err_set(e, SRA_E_FORMAT, "%s: not a JSON object (remove it or use a new --out)", path);
    }
    int rc = settings_differ(want, have, path, e) ? SRA_E_ARG : 0;
    cJSON_Delete(have);
    return rc;
}

static void shard_path(char *out, size_t n, const char *dir, int i, int N) {
    snprintf(out, n, "%s/shard-%05d-of-%05d.h5", dir, i, N);
}

/* ====================================================== one shard's work */

/* A piece waiting for the teacher: everything its cache document needs,
 * copied out of the plan (whose arrays the next record reuses). */
typedef struct {
    int64_t record;
    char *text;
    int64_t len, loss_start;
    int32_t n_seq, A;
    int32_t *ids;       /* (n_seq) */
    int32_t *pos_atom;  /* (n_seq) atom of each position or -1 */
    span_atom *atoms;   /* (A) byte ranges relative to the piece, first/last = positions */
} piece;

static void piece_free(piece *p) {
    free(p->text); free(p->ids); free(p->pos_atom); free(p->atoms);
    memset(p, 0, sizeof *p);
}

typedef struct {
    const ext_settings *s;
    teacher *t;
    const cfg_model *c;
    int mass_layer;              /* resolved */
    int self_slot;               /* hidden capture slot of the self:L layer, or -1 */
    /* capture: slots 0..n_cap-1 for hidden layers >= 0; final separately */
    int n_cap;
    int cap_layers[CACHE_MAX_LAYERS + 1];
    int layer_slot[CACHE_MAX_LAYERS]; /* per stored layer: slot, or -1 = final */
    /* batch buffers, grown to B*T */
    size_t cap_rows;
    int32_t *ids;
    uint8_t *valid, *rows;
    float *hidden[CACHE_MAX_LAYERS + 1], *final_h, *mass, *lp, *tail;
    int32_t *topk_ids;
    /* per piece scratch */
    float *m, *com, *M, *self_scratch;
    size_t cap_seq, cap_atoms, cap_self;
    void *com_out[CACHE_MAX_LAYERS];
    int32_t *out_start, *out_end, *out_ids;
    uint16_t *out_lp;
    float *out_tail, *out_mass;
    /* queue */
    piece *q;
    int nq;
    cache_writer *w;
    ext_report *rep;
    double t_forward, t_write, t_plan;
} worker;

static int grow_batch(worker *k, size_t rows, sra_err *e) {
    if (rows <= k->cap_rows) return 0;
    /* --topk 0 keeps one unused column: no malloc(0) */
    size_t C = (size_t)k->c->hidden, K = (size_t)(k->s->topk ? k->s->topk : 1);
    void **bufs[] = {(void **)&k->ids, (void **)&k->valid, (void **)&k->rows, (void **)&k->final_h,
                     (void **)&k->mass, (void **)&k->lp, (void **)&k->tail, (void **)&k->topk_ids};
    size_t sizes[] = {4, 1, 1, 4 * C, 4, 4 * K, 4, 4 * K};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        free(*bufs[i]);
        if (!(*bufs[i] = malloc(rows * sizes[i]))) return sra_err_set(e, SRA_E_NOMEM, "out of memory for a batch of %zu tokens", rows);
    }
    for (int i = 0; i < k->n_cap; i++) {
        free(k->hidden[i]);
        if (!(k->hidden[i] = malloc(rows * C * sizeof(float))))
            return sra_err_set(e, SRA_E_NOMEM, "out of memory for a batch of %zu tokens", rows);
    }
    k->cap_rows = rows;
    return 0;
}

static int grow_piece(worker *k, size_t n_seq, size_t A, sra_err *e) {
    size_t C = (size_t)k->c->hidden, K = (size_t)(k->s->topk ? k->s->topk : 1);
    if (n_seq > k->cap_seq) {
        free(k->m);
        if (!(k->m = malloc(n_seq * sizeof(float)))) return sra_err_set(e, SRA_E_NOMEM, "out of memory");
        k->cap_seq = n_seq;
    }
    if (k->s->mass == EXT_MASS_SELF && self_mass_scratch_floats((int)n_seq, (int)C) > k->cap_self) {
        free(k->self_scratch);
        k->cap_self = self_mass_scratch_floats((int)n_seq, (int)C);
        if (!(k->self_scratch = malloc(k->cap_self * sizeof(float)))) return sra_err_set(e, SRA_E_NOMEM, "out of memory");
    }
    if (A <= k->cap_atoms) return 0;
    size_t es = cache_dtype_size(k->s->dtype);
    free(k->com); free(k->M); free(k->out_start); free(k->out_end); free(k->out_ids);
    free(k->out_lp); free(k->out_tail); free(k->out_mass);
    k->com = malloc(A * C * sizeof(float));
    k->M = malloc(A * sizeof(float));
    k->out_start = malloc(A * sizeof(int32_t));
    k->out_end = malloc(A * sizeof(int32_t));
    k->out_ids = malloc(A * K * sizeof(int32_t));
    k->out_lp = malloc(A * K * sizeof(uint16_t));
    k->out_tail = malloc(A * sizeof(float));
    k->out_mass = malloc(A * sizeof(float));
    int bad = !k->com || !k->M || !k->out_start || !k->out_end || !k->out_ids || !k->out_lp ||
              !k->out_tail || !k->out_mass;
    for (int j = 0; j < k->s->n_layers; j++) {
        free(k->com_out[j]);
        bad |= !(k->com_out[j] = malloc(A * C * es));
    }
    if (bad) { k->cap_atoms = 0; return sra_err_set(e, SRA_E_NOMEM, "out of memory for %zu atoms", A); }
    k->cap_atoms = A;
    return 0;
}

static void worker_free(worker *k) {
    free(k->ids); free(k->valid); free(k->rows); free(k->final_h); free(k->mass); free(k->lp);
    free(k->tail); free(k->topk_ids);
    for (int i = 0; i <= CACHE_MAX_LAYERS; i++) free(k->hidden[i]);
    free(k->m); free(k->com); free(k->M); free(k->self_scratch);
    for (int j = 0; j < CACHE_MAX_LAYERS; j++) free(k->com_out[j]);
    free(k->out_start); free(k->out_end); free(k->out_ids); free(k->out_lp); free(k->out_tail);
    free(k->out_mass);
    for (int i = 0; i < k->nq; i++) piece_free(&k->q[i]);
    free(k->q);
}

/* Runs the teacher over the queued pieces and writes them, in order. */
static int flush_batch(worker *k, sra_err *e) {
    if (!k->nq) return 0;
    const ext_settings *s = k->s;
    int B = k->nq, T = 0, C = k->c->hidden, K = s->topk;
    for (int b = 0; b < B; b++) if (k->q[b].n_seq > T) T = k->q[b].n_seq;
    size_t N = (size_t)B * (size_t)T;
    if (grow_batch(k, N, e)) return e->code;
    memset(k->valid, 0, N);
    memset(k->rows, 0, N);
    for (int b = 0; b < B; b++) {
        const piece *p = &k->q[b];
        int32_t *row = k->ids + (size_t)b * T;
        memcpy(row, p->ids, (size_t)p->n_seq * sizeof *row);
        for (int j = p->n_seq; j < T; j++) row[j] = p->ids[0]; /* padding: any valid id */
        memset(k->valid + (size_t)b * T, 1, (size_t)p->n_seq);
        for (int a = 0; a < p->A; a++) k->rows[(size_t)b * T + p->atoms[a].last] = 1;
    }
    teacher_capture cap = {0};
    cap.n_hidden = k->n_cap;
    cap.hidden_layers = k->cap_layers;
    cap.hidden = k->hidden;
    for (int j = 0; j < s->n_layers; j++) if (k->layer_slot[j] < 0) cap.final_hidden = k->final_h;
    if (s->mass == EXT_MASS_ATTN || s->mass == EXT_MASS_LAST) {
        cap.mass_layer = k->mass_layer;
        cap.mass_rule = s->mass == EXT_MASS_LAST ? TEACHER_MASS_LAST : TEACHER_MASS_RECEIVED;
        cap.mass = k->mass;
    }
    cap.topk = K; /* 0 (--topk 0): the teacher skips its LM head altogether */
    cap.topk_ids = k->topk_ids;
    cap.topk_logprobs = k->lp;
    cap.tail = k->tail;
    cap.rows = k->rows;
    double t0 = sra_now();
    if (teacher_forward(k->t, k->ids, k->valid, B, T, &cap))
        return sra_err_set(e, SRA_E_ARG, "teacher: %s", teacher_errmsg(k->t));
    double t1 = sra_now();
    k->t_forward += t1 - t0;
    for (int b = 0; b < B; b++) {
        piece *p = &k->q[b];
        size_t off = (size_t)b * T;
        if (grow_piece(k, (size_t)p->n_seq, (size_t)p->A, e)) return e->code;
        /* token masses (method.md §3; last: §9.1, each piece is its own
         * sequence of the batch, so its last real token is the query) */
        if (s->mass == EXT_MASS_ATTN || s->mass == EXT_MASS_LAST) memcpy(k->m, k->mass + off, (size_t)p->n_seq * sizeof(float));
        else if (s->mass == EXT_MASS_SELF)
            self_mass_forward(k->m, k->hidden[k->self_slot] + off * C, p->n_seq, C, k->self_scratch);
        else for (int j = 0; j < p->n_seq; j++) k->m[j] = 1.0f;
        cache_doc d = {0};
        d.record = p->record;
        d.text = p->text;
        d.text_len = p->len;
        d.loss_start = p->loss_start;
        d.n_atoms = p->A;
        for (int j = 0; j < s->n_layers; j++) {
            const float *h = k->layer_slot[j] < 0 ? k->final_h : k->hidden[k->layer_slot[j]];
            int rc = span_com(p->atoms, (size_t)p->A, p->pos_atom, (size_t)p->n_seq, (size_t)C, h + off * C,
                              k->m, k->com, k->M);
            if (rc) return sra_err_set(e, rc, "record %lld: center of mass failed (%s)",
                                       (long long)p->record, sra_err_name(rc));
            size_t n = (size_t)p->A * C;
            if (s->dtype == CACHE_F32) memcpy(k->com_out[j], k->com, n * sizeof(float));
            else if (s->dtype == CACHE_F16)
                for (size_t i = 0; i < n; i++) ((uint16_t *)k->com_out[j])[i] = sra_f32_to_f16(k->com[i]);
            else
                for (size_t i = 0; i < n; i++) ((uint16_t *)k->com_out[j])[i] = sra_f32_to_bf16(k->com[i]);
            d.com[j] = k->com_out[j];
        }
        for (int a = 0; a < p->A; a++) {
            const span_atom *at = &p->atoms[a];
            size_t r = off + (size_t)at->last;
            k->out_start[a] = (int32_t)at->start;
            k->out_end[a] = (int32_t)at->end;
            k->out_mass[a] = k->M[a];
            k->out_tail[a] = K ? k->tail[r] : 1.0f; /* not stored when K = 0 */
            memcpy(k->out_ids + (size_t)a * K, k->topk_ids + r * K, (size_t)K * sizeof(int32_t));
            for (int i = 0; i < K; i++) k->out_lp[(size_t)a * K + i] = sra_f32_to_f16(k->lp[r * K + i]);
        }
        d.atom_start = k->out_start;
        d.atom_end = k->out_end;
        d.mass = k->out_mass;
        d.topk_ids = k->out_ids;
        d.topk_logprob = k->out_lp;
        d.tail_mass = k->out_tail;
        if (cache_writer_add(k->w, &d))
            return sra_err_set(e, SRA_E_IO, "%s", cache_writer_errmsg(k->w));
        k->rep->docs++;
        k->rep->atoms += p->A;
        k->rep->text_bytes += p->len;
        piece_free(p);
    }
    k->nq = 0;
    k->t_write += sra_now() - t1;
    return 0;
}

/* Queues every piece of a planned record. */
static int queue_record(worker *k, const data_record *rec, const plan_doc *d, sra_err *e) {
    k->rep->tokens += (int64_t)d->n_tokens;
    if (d->n_pieces > 1) k->rep->pieces_split++;
    for (int pi = 0; pi < d->n_pieces; pi++) {
        const plan_piece *pc = &d->pieces[pi];
        piece *p = &k->q[k->nq];
        memset(p, 0, sizeof *p);
        p->record = rec->index;
        p->len = pc->text_end - pc->text_start;
        p->loss_start = pc->loss_start;
        p->n_seq = pc->n_seq;
        p->A = pc->atom_last - pc->atom_first + 1;
        p->text = malloc((size_t)p->len + 1);
        p->ids = malloc((size_t)p->n_seq * sizeof *p->ids);
        p->pos_atom = malloc((size_t)p->n_seq * sizeof *p->pos_atom);
        p->atoms = malloc((size_t)p->A * sizeof *p->atoms);
        if (!p->text || !p->ids || !p->pos_atom || !p->atoms) {
            piece_free(p);
            return sra_err_set(e, SRA_E_NOMEM, "out of memory");
        }
        k->nq++;
        memcpy(p->text, rec->text + pc->text_start, (size_t)p->len);
        plan_piece_sequence(d, pi, p->ids, p->pos_atom); /* pos_atom holds token indices for now */
        for (int j = 0; j < p->n_seq; j++) {
            int32_t a = d->tok_atom[p->pos_atom[j]];
            p->pos_atom[j] = a < 0 ? -1 : a - pc->atom_first;
        }
        /* positions of each atom's first and last token in the sequence:
         * body token i sits at n_prefix + (i - tok_first) */
        for (int a = 0; a < p->A; a++) {
            const span_atom *src = &d->atoms[pc->atom_first + a];
            p->atoms[a].start = src->start - pc->text_start;
            p->atoms[a].end = src->end - pc->text_start;
            p->atoms[a].first = d->n_prefix + (src->first - pc->tok_first);
            p->atoms[a].last = d->n_prefix + (src->last - pc->tok_first);
        }
        if (k->nq == k->s->batch) {
            int rc = flush_batch(k, e);
            if (rc) return rc;
        }
    }
    return 0;
}

typedef struct {
    const ext_settings *s;
    const resolved *rs;
    const data_survey *sv;
    teacher *t;
    const tok_tokenizer *tt, *st;
    const char *tok_json, *cfg_json, *stu_json;
    size_t tok_len, cfg_len, stu_len;
    sra_progress *prog;
    int64_t prog_base;
} run_ctx;

static void add_bad(ext_report *r, cJSON *list, int64_t record, const char *msg) {
    if (r->n_first_bad < EXT_BAD_NAMED) r->first_bad[r->n_first_bad++] = record;
    if (list && cJSON_GetArraySize(list) < EXT_BAD_NAMED) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "record", (double)record);
        cJSON_AddStringToObject(o, "error", msg);
        cJSON_AddItemToArray(list, o);
    }
    r->bad_records++;
}

static int make_shard(run_ctx *x, int idx, int64_t rec0, int64_t rec1, const char *path, ext_report *rep,
                      sra_err *e) {
    const ext_settings *s = x->s;
    const cfg_model *c = teacher_config(x->t);
    ext_report my = {0};
    worker k = {0};
    k.s = s;
    k.t = x->t;
    k.c = c;
    k.rep = &my;
    k.self_slot = -1;
    k.mass_layer = s->mass_layer ? s->mass_layer : c->n_layers;
    for (int j = 0; j < s->n_layers; j++) {
        k.layer_slot[j] = -1;
        if (s->layers[j] == CACHE_LAYER_FINAL) continue;
        k.layer_slot[j] = k.n_cap;
        k.cap_layers[k.n_cap++] = s->layers[j];
    }
    if (s->mass == EXT_MASS_SELF) {
        for (int i = 0; i < k.n_cap; i++) if (k.cap_layers[i] == s->mass_layer) k.self_slot = i;
        if (k.self_slot < 0) { k.self_slot = k.n_cap; k.cap_layers[k.n_cap++] = s->mass_layer; }
    }
    if (!(k.q = calloc((size_t)s->batch, sizeof *k.q))) return sra_err_set(e, SRA_E_NOMEM, "out of memory");

    cache_meta m = {0};
    m.teacher_name = s->teacher_dir;
    m.teacher_config_sha256 = x->rs->config_sha;
    m.teacher_weights_sha256 = x->rs->weights_sha;
    m.teacher_vocab_size = c->vocab;
    m.atoms = span_atoms_mode_name(s->atoms);
    m.mass = x->rs->mass;
    m.n_layers = s->n_layers;
    memcpy(m.layers, s->layers, sizeof m.layers);
    m.hidden_size = c->hidden;
    m.hidden_dtype = s->dtype;
    m.topk = s->topk;
    m.temperature = 1.0;
    m.dataset_sha256 = x->rs->dataset_sha;
    m.record_start = rec0;
    m.record_end = rec1;
    m.shard_index = idx;
    m.shard_count = x->rs->shards;
    m.settings_json = x->rs->json_str;
    m.teacher_tokenizer_json = (const uint8_t *)x->tok_json;
    m.teacher_tokenizer_len = x->tok_len;
    m.teacher_config_json = (const uint8_t *)x->cfg_json;
    m.teacher_config_len = x->cfg_len;
    if (s->atoms == SPAN_ATOMS_STUDENT) {
        m.student_tokenizer_json = (const uint8_t *)x->stu_json;
        m.student_tokenizer_len = x->stu_len;
    }
    cache_write_opts wo;
    cache_write_opts_default(&wo);
    wo.zstd_level = s->zstd_level;
    int rc = cache_writer_open(&k.w, path, &m, &wo);
    if (rc) {
        rc = sra_err_set(e, rc, "%s", cache_writer_errmsg(k.w));
        goto done;
    }
    plan_ctx *pc = plan_ctx_new(x->tt, x->st, s->atoms, s->max_tokens ? s->max_tokens : x->rs->max_tokens);
    data_reader *r = NULL;
    cJSON *bad = cJSON_CreateArray();
    if (!pc || !bad) { rc = sra_err_set(e, SRA_E_NOMEM, "out of memory"); goto done2; }
    if ((rc = data_open(&r, s->data, s->n_data, &s->data_opts))) {
        rc = sra_err_set(e, rc, "%s", r ? data_errmsg(r) : "out of memory");
        goto done2;
    }
    data_record rec;
    char err[512];
    while ((rc = data_next(r, &rec)) == 1 && rec.index < rec1) {
        if (ext_stopping(s)) { rc = SRA_E_STOPPED; break; }
        if (rec.index < rec0) continue;
        my.records++;
        if (x->prog) {
            double el = sra_now() - x->prog->t0;
            snprintf(x->prog->note, sizeof x->prog->note, "%.0f tok/s",
                     el > 0 ? (double)(rep->tokens + my.tokens) / el : 0.0);
            sra_progress_update(x->prog, (double)(x->prog_base + my.records));
        }
        if (rec.error) {
            if (s->strict) { rc = sra_err_set(e, SRA_E_ARG, "%s (--strict)", rec.error); goto done2; }
            add_bad(&my, bad, rec.index, rec.error);
            continue;
        }
        plan_doc d;
        double tp = sra_now();
        rc = plan_build(pc, rec.text, rec.len, rec.loss_start, &d, err, sizeof err);
        k.t_plan += sra_now() - tp;
        if (rc == SRA_E_NOMEM) { rc = sra_err_set(e, rc, "out of memory"); goto done2; }
        if (rc) {
            char msg[700];
            snprintf(msg, sizeof msg, "%s:%lld: record %lld: %s", s->data[rec.file], (long long)rec.line,
                     (long long)rec.index, err);
            if (s->strict) { rc = sra_err_set(e, SRA_E_ARG, "%s (--strict)", msg); goto done2; }
            add_bad(&my, bad, rec.index, msg);
            continue;
        }
        if ((rc = queue_record(&k, &rec, &d, e))) goto done2;
    }
    if (rc == SRA_E_STOPPED || (rc >= 0 && ext_stopping(s))) {
        /* cache_writer_free below removes PATH.tmp */
        rc = sra_err_set(e, SRA_E_STOPPED, "stopped while making shard %d of %d (its partial file was removed)", idx,
                         x->rs->shards);
        goto done2;
    }
    if (rc < 0) { rc = sra_err_set(e, rc, "%s", data_errmsg(r)); goto done2; }
    if ((rc = flush_batch(&k, e))) goto done2;
    if (my.docs == 0) {
        /* a shard file needs at least... nothing: an empty shard is valid */
    }
    {
        cJSON *st = cJSON_CreateObject();
        cJSON_AddNumberToObject(st, "records", (double)my.records);
        cJSON_AddNumberToObject(st, "bad_records", (double)my.bad_records);
        cJSON_AddItemToObject(st, "first_bad", bad);
        bad = NULL;
        cJSON_AddNumberToObject(st, "docs", (double)my.docs);
        cJSON_AddNumberToObject(st, "split_records", (double)my.pieces_split);
        cJSON_AddNumberToObject(st, "atoms", (double)my.atoms);
        cJSON_AddNumberToObject(st, "teacher_tokens", (double)my.tokens);
        cJSON_AddNumberToObject(st, "text_bytes", (double)my.text_bytes);
        char *js = cJSON_PrintUnformatted(st);
        cJSON_Delete(st);
        if (!js || cache_writer_set_stats(k.w, js) || cache_writer_finish(k.w)) {
            free(js);
            rc = sra_err_set(e, SRA_E_IO, "%s", js ? cache_writer_errmsg(k.w) : "out of memory");
            goto done2;
        }
        free(js);
    }
    rc = 0;
done2:
    data_close(r);
    plan_ctx_free(pc);
    cJSON_Delete(bad);
done:
    cache_writer_free(k.w); /* removes PATH.tmp unless finished */
    worker_free(&k);
    rep->records += my.records;
    rep->bad_records += my.bad_records;
    for (int i = 0; i < my.n_first_bad && rep->n_first_bad < EXT_BAD_NAMED; i++)
        rep->first_bad[rep->n_first_bad++] = my.first_bad[i];
    rep->docs += my.docs;
    rep->atoms += my.atoms;
    rep->tokens += my.tokens;
    rep->pieces_split += my.pieces_split;
    rep->text_bytes += my.text_bytes;
    rep->forward_seconds += k.t_forward;
    rep->write_seconds += k.t_write;
    rep->plan_seconds += k.t_plan;
    return rc;
}

/* 1 when path is a complete shard made with these settings. */
static int shard_done(const char *path, const resolved *rs, FILE *log) {
    struct stat st;
    if (stat(path, &st)) return 0;
    cache_reader *r = NULL;
    int ok = 0;
    if (cache_open(&r, path) == 0) {
        const cache_meta *m = cache_meta_get(r);
        ok = m->settings_json && !strcmp(m->settings_json, rs->json_str);
        if (!ok && log) fprintf(log, "sra-extract: %s was made with other settings: making it again\n", path);
    } else if (log) {
        fprintf(log, "sra-extract: %s: %s: making it again\n", path, r ? cache_errmsg(r) : "out of memory");
    }
    cache_close(r);
    return ok;
}

/* The teacher's LM head into the cache folder (cache_head.h), its bytes as
 * the checkpoint stores them. Every process of a sharded extraction writes
 * it (or finds the same bytes there), so --finalize finds it whichever
 * tasks ran; a different head already there is refused. */
static int write_head(const char *dir, const teacher *t, const resolved *rs, sra_err *e) {
    const st_tensor *h = teacher_head_tensor(t);
    const char *base = strrchr(h->file, '/') ? strrchr(h->file, '/') + 1 : h->file;
    char sha[65] = "";
    /* its file's sha256, from the "HEX  name" lines already computed */
    for (const char *l = rs->weights_sha; l && *l;) {
        const char *nl = strchr(l, '\n');
        size_t len = nl ? (size_t)(nl - l) : strlen(l);
        if (len == 66 + strlen(base) && !memcmp(l + 66, base, len - 66)) snprintf(sha, sizeof sha, "%.64s", l);
        l += len + (nl ? 1 : 0);
    }
    cache_head_src src = {h->dtype_str, h->shape[0], h->shape[1], h->data, h->name, base, sha};
    return cache_head_write(dir, &src, e);
}

static char *slurp(const char *dir, const char *name, size_t *n, sra_err *e) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *b = sra_read_file(path, n);
    if (!b) sra_err_set(e, SRA_E_IO, "%s: cannot read: %s", path, strerror(errno));
    return b;
}

int ext_run(const ext_settings *s, ext_report *rep, sra_err *e) {
    memset(rep, 0, sizeof *rep);
    double t0 = sra_now();
    if (!s->teacher_dir || !s->out_dir || s->n_data < 1)
        return sra_err_set(e, SRA_E_ARG, "need a teacher folder, at least one data file and an output folder");
    if (s->topk < 0) return sra_err_set(e, SRA_E_ARG, "--topk %d: must be >= 0", s->topk);
    if (s->batch < 1) return sra_err_set(e, SRA_E_ARG, "--batch %d: must be >= 1", s->batch);
    if (s->zstd_level < 0 || s->zstd_level > 22)
        return sra_err_set(e, SRA_E_ARG, "--zstd-level %d: must be in 0..22", s->zstd_level);
    if (s->n_layers < 1 || s->n_layers > CACHE_MAX_LAYERS)
        return sra_err_set(e, SRA_E_ARG, "--layers: 1..%d layers", CACHE_MAX_LAYERS);
    if (s->atoms == SPAN_ATOMS_STUDENT && !s->student_tokenizer)
        return sra_err_set(e, SRA_E_ARG, "--atoms student needs --student-tokenizer");
    if (s->shards < 0 || (s->shard_index >= 0 && s->shard_index >= s->shards))
        return sra_err_set(e, SRA_E_ARG, "--shard %d/%d: need 0 <= i < N", s->shard_index, s->shards);
    if (s->task_count < 0 || (s->task_count > 0 && (s->task_index < 0 || s->task_index >= s->task_count)))
        return sra_err_set(e, SRA_E_ARG, "--task %d/%d: need 0 <= I < T", s->task_index, s->task_count);
    if (s->task_count > 0 && s->shard_index >= 0)
        return sra_err_set(e, SRA_E_ARG, "--task and --shard exclude each other");
    rep->stopped_shard = -1;

    resolved rs = {0};
    data_survey sv = {0};
    teacher *t = NULL;
    tok_tokenizer *tt = NULL, *st = NULL;
    char *tok_json = NULL, *cfg_json = NULL, *stu_json = NULL;
    size_t tok_len = 0, cfg_len = 0, stu_len = 0;
    int rc = 0;

    /* the teacher: model, tokenizer, and what identifies them */
    if (teacher_load(&t, s->teacher_dir)) {
        rc = sra_err_set(e, SRA_E_ARG, "%s", t ? teacher_errmsg(t) : "out of memory");
        goto out;
    }
    const cfg_model *c = teacher_config(t);
    if (!(cfg_json = slurp(s->teacher_dir, "config.json", &cfg_len, e)) ||
        !(tok_json = slurp(s->teacher_dir, "tokenizer.json", &tok_len, e))) {
        rc = e->code;
        goto out;
    }
    if (tok_load_json(&tt, tok_json, tok_len, "tokenizer.json")) {
        rc = sra_err_set(e, SRA_E_ARG, "%s/tokenizer.json: %s", s->teacher_dir, tt ? tok_errmsg(tt) : "out of memory");
        goto out;
    }
    if (tok_vocab_size(tt) > c->vocab) {
        rc = sra_err_set(e, SRA_E_ARG,
                         "%s: tokenizer.json has %d tokens but config.json's vocab_size is %d: "
                         "they do not belong together",
                         s->teacher_dir, tok_vocab_size(tt), c->vocab);
        goto out;
    }
    sra_sha256_hex(cfg_json, cfg_len, rs.config_sha);
    sra_sha256_hex(tok_json, tok_len, rs.tok_sha);
    if ((rc = weights_sha(s->teacher_dir, &rs.weights_sha, e))) goto out;
    if (ext_stopping(s)) {
        rc = sra_err_set(e, SRA_E_STOPPED, "stopped while loading the teacher (nothing was written)");
        goto out;
    }
    if (s->student_tokenizer) {
        if (!(stu_json = sra_read_file(s->student_tokenizer, &stu_len))) {
            rc = sra_err_set(e, SRA_E_IO, "%s: cannot read: %s", s->student_tokenizer, strerror(errno));
            goto out;
        }
        if (tok_load_json(&st, stu_json, stu_len, s->student_tokenizer)) {
            rc = sra_err_set(e, SRA_E_ARG, "%s: %s", s->student_tokenizer, st ? tok_errmsg(st) : "out of memory");
            goto out;
        }
        sra_sha256_hex(stu_json, stu_len, rs.student_sha);
    }
    /* settings that depend on the teacher */
    if (s->topk > c->vocab) { rc = sra_err_set(e, SRA_E_ARG, "--topk %d: the teacher has %d tokens", s->topk, c->vocab); goto out; }
    for (int j = 0; j < s->n_layers; j++)
        if (s->layers[j] != CACHE_LAYER_FINAL && (s->layers[j] < 0 || s->layers[j] > c->n_layers)) {
            rc = sra_err_set(e, SRA_E_ARG, "--layers %d: the teacher has hidden layers 0..%d (or 'final')",
                             s->layers[j], c->n_layers);
            goto out;
        }
    if (s->mass == EXT_MASS_ATTN && (s->mass_layer < 0 || s->mass_layer > c->n_layers)) {
        rc = sra_err_set(e, SRA_E_ARG, "--mass attn:%d: the teacher has attention layers 1..%d", s->mass_layer, c->n_layers);
        goto out;
    }
    if (s->mass == EXT_MASS_LAST && (s->mass_layer < 0 || s->mass_layer > c->n_layers)) {
        rc = sra_err_set(e, SRA_E_ARG, "--mass last:%d: the teacher has attention layers 1..%d", s->mass_layer, c->n_layers);
        goto out;
    }
    if (s->mass == EXT_MASS_SELF && (s->mass_layer < 0 || s->mass_layer > c->n_layers)) {
        rc = sra_err_set(e, SRA_E_ARG, "--mass self:%d: the teacher has hidden layers 0..%d", s->mass_layer, c->n_layers);
        goto out;
    }
    mass_name(s, c->n_layers, rs.mass, sizeof rs.mass);
    rs.max_tokens = s->max_tokens ? s->max_tokens : (c->max_pos < 2048 ? c->max_pos : 2048);
    if (rs.max_tokens < 2 || rs.max_tokens > c->max_pos) {
        rc = sra_err_set(e, SRA_E_ARG, "--max-tokens %d: must be in 2..%d (the teacher's max_position_embeddings)",
                         rs.max_tokens, c->max_pos);
        goto out;
    }

    /* pass one: the dataset */
    if ((rc = survey(s, &sv, e))) goto out;
    {
        sra_sha256 h;
        uint8_t dig[32];
        sra_sha256_init(&h);
        for (int i = 0; i < s->n_data; i++) sra_sha256_update(&h, sv.sha[i], 64);
        sra_sha256_final(&h, dig);
        for (int i = 0; i < 32; i++) sprintf(rs.dataset_sha + 2 * i, "%02x", dig[i]);
    }
    rs.shards = s->shards ? s->shards : (int)((sv.text_bytes + EXT_AUTO_SHARD_BYTES - 1) / EXT_AUTO_SHARD_BYTES);
    if (rs.shards < 1) rs.shards = 1;
    if (!s->shards && rs.shards < s->task_count) rs.shards = s->task_count; /* every task gets work */
    if (sv.records < rs.shards) {
        rc = sra_err_set(e, SRA_E_ARG, "%d shards for %lld records: every shard needs at least one record",
                         rs.shards, (long long)sv.records);
        goto out;
    }
    if (!(rs.json = build_settings(s, &rs, &sv)) || !(rs.json_str = cJSON_PrintUnformatted(rs.json))) {
        rc = sra_err_set(e, SRA_E_NOMEM, "out of memory");
        goto out;
    }
    if (mkdir(s->out_dir, 0777) && errno != EEXIST) {
        rc = sra_err_set(e, SRA_E_IO, "%s: cannot create: %s", s->out_dir, strerror(errno));
        goto out;
    }
    if ((rc = check_settings_file(s->out_dir, rs.json, e))) goto out;
    if ((rc = write_head(s->out_dir, t, &rs, e))) goto out;

    /* the shards this process owns */
    rep->setup_seconds = sra_now() - t0;
    rep->shards_total = rs.shards;
    /* shards lo, lo+step, ... below hi (extract.h: who makes which shard) */
    int lo = 0, hi = rs.shards, step = 1;
    if (s->shard_index >= 0) { lo = s->shard_index; hi = lo + 1; }
    else if (s->task_count > 0) { lo = s->task_index; step = s->task_count; }
    int64_t todo = 0;
    char path[4200];
    for (int i = lo; i < hi; i += step) rep->shards_owned++;
    if (!rep->shards_owned && s->progress)
        fprintf(s->progress, "sra-extract: task %d of %d has no shard to make (--shards %d is below the task count)\n",
                s->task_index, s->task_count, rs.shards);
    for (int i = lo; i < hi; i += step) {
        shard_path(path, sizeof path, s->out_dir, i, rs.shards);
        if (!shard_done(path, &rs, NULL))
            todo += sv.records * (i + 1) / rs.shards - sv.records * i / rs.shards;
    }
    sra_progress prog;
    sra_progress_begin(&prog, s->progress, "records", (double)todo);
    run_ctx x = {s, &rs, &sv, t, tt, st, tok_json, cfg_json, stu_json, tok_len, cfg_len, stu_len,
                 s->progress ? &prog : NULL, 0};
    for (int i = lo; i < hi; i += step) {
        int64_t r0 = sv.records * i / rs.shards, r1 = sv.records * (i + 1) / rs.shards;
        shard_path(path, sizeof path, s->out_dir, i, rs.shards);
        if (ext_stopping(s)) {
            rc = sra_err_set(e, SRA_E_STOPPED, "stopped before making shard %d of %d (nothing partial was written)", i,
                             rs.shards);
            goto out;
        }
        if (shard_done(path, &rs, s->progress)) { rep->shards_skipped++; continue; }
        int64_t before = rep->records;
        if ((rc = make_shard(&x, i, r0, r1, path, rep, e))) {
            if (rc == SRA_E_STOPPED) rep->stopped_shard = i;
            goto out;
        }
        x.prog_base += rep->records - before;
        rep->shards_made++;
    }
    rep->seconds = sra_now() - t0;
    if (s->progress) {
        char extra[256];
        snprintf(extra, sizeof extra,
                 "(%lld tokens, %.0f tok/s; %lld docs, %lld atoms; %lld bad records; shards: %d made, %d "
                 "already complete, of %d)",
                 (long long)rep->tokens, rep->seconds > 0 ? rep->tokens / rep->seconds : 0.0,
                 (long long)rep->docs, (long long)rep->atoms, (long long)rep->bad_records, rep->shards_made,
                 rep->shards_skipped, rep->shards_total);
        sra_progress_end(&prog, extra);
        if (rep->bad_records) {
            fprintf(s->progress, "sra-extract: skipped %lld bad records; the first:", (long long)rep->bad_records);
            for (int i = 0; i < rep->n_first_bad; i++) fprintf(s->progress, " %lld", (long long)rep->first_bad[i]);
            fprintf(s->progress, " (their messages: sra-inspect on the shard, stats)\n");
        }
    }
    if (s->shard_index < 0 && s->task_count == 0) {
        ext_report fin;
        if (ext_stopping(s)) { /* verification reads every shard: not worth starting now */
            rc = sra_err_set(e, SRA_E_STOPPED, "stopped after the last shard, before verifying the shards and "
                                               "writing manifest.json (nothing partial was written)");
            goto out;
        }
        double tf = sra_now();
        rc = ext_finalize(s->out_dir, s->progress, &fin, e);
        rep->finalize_seconds = sra_now() - tf;
        rep->payload_bytes = fin.payload_bytes;
        rep->file_bytes = fin.file_bytes;
    }
out:
    cJSON_Delete(rs.json);
    free(rs.json_str);
    free(rs.weights_sha);
    free(sv.sha);
    tok_free(tt);
    tok_free(st);
    free(tok_json);
    free(cfg_json);
    free(stu_json);
    teacher_free(t);
    return rc;
}

/* ============================================================ finalize */

int ext_finalize(const char *dir, FILE *log, ext_report *rep_out, sra_err *e) {
    ext_report rep = {0};
    char path[4200];
    size_t n;
    snprintf(path, sizeof path, "%s/settings.json", dir);
    char *text = sra_read_file(path, &n);
    if (!text)
        return sra_err_set(e, SRA_E_MISSING, "%s: cannot read (%s): is %s an sra-extract output folder?", path,
                           strerror(errno), dir);
    cJSON *want = cJSON_ParseWithLength(text, n);
    free(text);
    const cJSON *jn = want ? cJSON_GetObjectItemCaseSensitive(want, "shards") : NULL;
    if (!cJSON_IsNumber(jn) || jn->valuedouble < 1 || jn->valuedouble > 1e6) {
        cJSON_Delete(want);
        return sra_err_set(e, SRA_E_FORMAT, "%s: no valid \"shards\" count", path);
    }
    int N = (int)jn->valuedouble, rc = 0, missing = 0, broken = 0;
    cJSON *man = cJSON_CreateObject(), *shards = cJSON_CreateArray();
    char first_problem[4400] = "";
    int64_t next_record = 0, head_V = 0, head_d = 0;
    for (int i = 0; i < N; i++) {
        shard_path(path, sizeof path, dir, i, N);
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", base);
        cJSON_AddNumberToObject(o, "index", i);
        cJSON_AddItemToArray(shards, o);
        struct stat stt;
        if (stat(path, &stt)) {
            missing++;
            cJSON_AddBoolToObject(o, "complete", 0);
            if (!first_problem[0]) snprintf(first_problem, sizeof first_problem, "%s: missing", path);
            continue;
        }
        cache_reader *r = NULL;
        const char *why = NULL;
        char whybuf[1100];
        if (cache_open(&r, path)) why = r ? cache_errmsg(r) : "out of memory";
        const cache_meta *m = why ? NULL : cache_meta_get(r);
        cJSON *have = m ? cJSON_Parse(m->settings_json) : NULL;
        sra_err de;
        if (!why && (!have || settings_differ(want, have, path, &de)))
            why = have ? (snprintf(whybuf, sizeof whybuf, "%s", de.msg), whybuf) : "settings_json unreadable";
        cJSON_Delete(have);
        if (!why && (m->shard_index != i || m->shard_count != N || m->record_start != next_record))
            why = "shard index, count or record range does not follow the previous shard";
        /* decode every document: zstd checksums, ranges, ids */
        if (!why) {
            cache_doc d;
            int it = cache_iter_begin(r, 0, cache_n_docs(r), 1);
            while (!it && (it = cache_iter_next(r, &d)) == 1) {}
            cache_iter_end(r);
            if (it < 0) why = cache_errmsg(r);
        }
        char hex[65];
        sra_err he;
        if (!why && sra_sha256_file(path, hex, &he)) why = he.msg;
        if (why) {
            broken++;
            cJSON_AddBoolToObject(o, "complete", 0);
            cJSON_AddStringToObject(o, "error", why);
            if (!first_problem[0]) snprintf(first_problem, sizeof first_problem, "%s", why);
            cache_close(r);
            continue;
        }
        next_record = m->record_end;
        head_V = m->teacher_vocab_size; /* the same in every shard: the settings say so */
        head_d = m->hidden_size;
        cJSON_AddNumberToObject(o, "record_start", (double)m->record_start);
        cJSON_AddNumberToObject(o, "record_end", (double)m->record_end);
        cJSON_AddNumberToObject(o, "docs", (double)cache_n_docs(r));
        cJSON_AddNumberToObject(o, "atoms", (double)cache_n_atoms(r));
        cJSON_AddNumberToObject(o, "text_bytes", (double)cache_text_bytes(r));
        cJSON *stats = cJSON_Parse(m->stats_json);
        const cJSON *b = stats ? cJSON_GetObjectItemCaseSensitive(stats, "bad_records") : NULL;
        cJSON_AddNumberToObject(o, "bad_records", cJSON_IsNumber(b) ? b->valuedouble : 0);
        const cJSON *tk = stats ? cJSON_GetObjectItemCaseSensitive(stats, "teacher_tokens") : NULL;
        cJSON_AddNumberToObject(o, "teacher_tokens", cJSON_IsNumber(tk) ? tk->valuedouble : 0);
        if (cJSON_IsNumber(b)) rep.bad_records += (int64_t)b->valuedouble;
        if (cJSON_IsNumber(tk)) rep.tokens += (int64_t)tk->valuedouble;
        cJSON_Delete(stats);
        cJSON_AddNumberToObject(o, "bytes", (double)stt.st_size);
        cJSON_AddStringToObject(o, "sha256", hex);
        cJSON_AddBoolToObject(o, "complete", 1);
        rep.docs += cache_n_docs(r);
        rep.atoms += cache_n_atoms(r);
        rep.text_bytes += cache_text_bytes(r);
        rep.records += m->record_end - m->record_start;
        rep.file_bytes += stt.st_size;
        cache_dataset_info info[40];
        int nd = cache_dataset_stats(r, info, 40);
        for (int j = 0; j < nd && j < 40; j++) rep.payload_bytes += (int64_t)info[j].raw_bytes;
        cache_close(r);
    }
    /* the teacher's LM head, checked against the shards' vocabulary and
     * hidden size (cache_head.h); without a good shard there is nothing to
     * check it against, and the manifest is incomplete anyway */
    cJSON *head = cJSON_CreateObject();
    char head_problem[1100] = "";
    cJSON_AddStringToObject(head, "file", CACHE_HEAD_FILE);
    if (head_V > 0) {
        cache_head_info hi;
        sra_err he;
        if (cache_head_check(dir, head_V, head_d, &hi, &he)) {
            snprintf(head_problem, sizeof head_problem, "%s", he.msg);
            cJSON_AddBoolToObject(head, "complete", 0);
            cJSON_AddStringToObject(head, "error", he.msg);
        } else {
            cJSON *shape = cJSON_CreateArray();
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)hi.shape[0]));
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)hi.shape[1]));
            cJSON_AddStringToObject(head, "sha256", hi.sha256);
            cJSON_AddNumberToObject(head, "bytes", (double)hi.bytes);
            cJSON_AddStringToObject(head, "dtype", hi.dtype);
            cJSON_AddItemToObject(head, "shape", shape);
            cJSON_AddStringToObject(head, "source_tensor", hi.source_tensor);
            cJSON_AddStringToObject(head, "source_file", hi.source_file);
            cJSON_AddStringToObject(head, "source_file_sha256", hi.source_sha256);
        }
    } else {
        cJSON_AddBoolToObject(head, "complete", 0);
        cJSON_AddStringToObject(head, "error", "not checked: no shard is complete");
    }
    int ok = !missing && !broken && !head_problem[0];
    cJSON_AddStringToObject(man, "format", "sra-cache-manifest");
    cJSON_AddNumberToObject(man, "format_version", 1);
    cJSON_AddBoolToObject(man, "complete", ok);
    cJSON_AddNumberToObject(man, "records", (double)rep.records);
    cJSON_AddNumberToObject(man, "docs", (double)rep.docs);
    cJSON_AddNumberToObject(man, "atoms", (double)rep.atoms);
    cJSON_AddNumberToObject(man, "teacher_tokens", (double)rep.tokens);
    cJSON_AddNumberToObject(man, "bad_records", (double)rep.bad_records);
    cJSON_AddItemToObject(man, "settings", want);
    want = NULL;
    cJSON_AddItemToObject(man, "teacher_head", head);
    cJSON_AddItemToObject(man, "shards", shards);
    char *js = cJSON_Print(man);
    cJSON_Delete(man);
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    if (!js) rc = sra_err_set(e, SRA_E_NOMEM, "out of memory");
    else {
        size_t l = strlen(js);
        char *j2 = realloc(js, l + 2);
        if (j2) { js = j2; js[l] = '\n'; js[l + 1] = 0; }
        rc = sra_write_file_atomic(path, js, e);
        free(js);
    }
    if (!rc && !ok && (missing || broken))
        rc = sra_err_set(e, SRA_E_INCOMPLETE, "%s: %d of %d shards missing, %d broken (first: %s); "
                         "manifest.json says complete: false. Run the missing shards again, then --finalize",
                         dir, missing, N, broken, first_problem);
    else if (!rc && !ok)
        rc = sra_err_set(e, SRA_E_INCOMPLETE, "%s: the teacher head is not usable: %s; manifest.json says "
                         "complete: false", dir, head_problem);
    if (!rc && log)
        fprintf(log, "sra-extract: %s: %d shards verified, %lld records, %lld docs, %lld atoms; manifest.json written\n",
                dir, N, (long long)rep.records, (long long)rep.docs, (long long)rep.atoms);
    if (rep_out) *rep_out = rep;
    cJSON_Delete(want);
    return rc;
}
