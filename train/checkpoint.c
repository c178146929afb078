/*
 * checkpoint.c - save and load training checkpoints (contract:
 * checkpoint.h).
 */
#include "checkpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safetensors.h"
#include "util.h"

static int rm_dir(const char *dir) {
    /* a checkpoint folder holds exactly our four files */
    static const char *files[] = {"config.json", "model.safetensors", "optimizer.safetensors", "extra.safetensors",
                                  "state.json"};
    char p[4400];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    return rmdir(dir);
}

int ckpt_save(const char *dir, const model *m, const float *am, const float *av, const st_out *extra, int n_extra,
              const char *state_json, char *err, size_t errlen) {
    char tmp[4200], p[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", dir);
    rm_dir(tmp);
    if (model_export_hf(m, tmp, err, errlen)) return -1;
    st_out *out = calloc(2 * (size_t)m->n_tensors, sizeof *out);
    char (*names)[104] = calloc(2 * (size_t)m->n_tensors, sizeof *names);
    if (!out || !names) { free(out); free(names); snprintf(err, errlen, "out of memory"); return -1; }
    for (int i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->tensors[i];
        snprintf(names[2 * i], sizeof names[0], "m.%s", t->name);
        snprintf(names[2 * i + 1], sizeof names[0], "v.%s", t->name);
        out[2 * i] = (st_out){names[2 * i], t->ndim, {t->shape[0], t->shape[1]}, am + t->off};
        out[2 * i + 1] = (st_out){names[2 * i + 1], t->ndim, {t->shape[0], t->shape[1]}, av + t->off};
    }
    snprintf(p, sizeof p, "%s/optimizer.safetensors", tmp);
    int rc = st_write_f32(p, out, 2 * m->n_tensors, NULL, 0, err, errlen);
    free(out);
    free(names);
    if (rc) return -1;
    snprintf(p, sizeof p, "%s/extra.safetensors", tmp);
    if (n_extra > 0 && st_write_f32(p, extra, n_extra, NULL, 0, err, errlen)) return -1;
    snprintf(p, sizeof p, "%s/state.json", tmp);
    FILE *f = fopen(p, "w");
    if (!f || fputs(state_json, f) < 0 || fputc('\n', f) == EOF || fflush(f) || fsync(fileno(f)) || fclose(f)) {
        snprintf(err, errlen, "%s: cannot write: %s", p, strerror(errno));
        return -1;
    }
    rm_dir(dir); /* an older checkpoint of the same step */
    if (rename(tmp, dir)) {
        snprintf(err, errlen, "%s: cannot rename to %s: %s", tmp, dir, strerror(errno));
        return -1;
    }
    return 0;
}

int ckpt_load(const char *dir, model *m, float **am, float **av, char **state_json, char *err, size_t errlen) {
    char p[4300];
    *am = *av = NULL;
    *state_json = NULL;
    snprintf(p, sizeof p, "%s/state.json", dir);
    size_t n;
    char *st = sra_read_file(p, &n);
    if (!st) { snprintf(err, errlen, "%s: cannot read (%s): not a complete checkpoint", p, strerror(errno)); return -1; }
    if (model_load_hf(m, dir, err, errlen)) { free(st); return -1; }
    snprintf(p, sizeof p, "%s/optimizer.safetensors", dir);
    st_file *sf = NULL;
    float *a = calloc(m->n_params, sizeof(float)), *b = calloc(m->n_params, sizeof(float));
    int rc = -1;
    if (!a || !b) { snprintf(err, errlen, "out of memory"); goto out; }
    if (st_open(&sf, p)) { snprintf(err, errlen, "%s", sf ? st_errmsg(sf) : "out of memory"); goto out; }
    for (int i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->tensors[i];
        char nm[110];
        for (int k = 0; k < 2; k++) {
            snprintf(nm, sizeof nm, "%c.%s", k ? 'v' : 'm', t->name);
            const st_tensor *x = st_get(sf, nm, t->ndim, t->shape);
            if (!x) { snprintf(err, errlen, "%s", st_errmsg(sf)); goto out; }
            st_to_f32(x, 0, t->n, (k ? b : a) + t->off);
        }
    }
    rc = 0;
out:
    st_close(sf);
    if (rc) { free(a); free(b); free(st); model_free(m); return -1; }
    *am = a;
    *av = b;
    *state_json = st;
    return 0;
}
