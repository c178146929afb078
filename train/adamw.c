/*
 * adamw.c - AdamW, its learning-rate schedule and gradient clipping
 * (contract: adamw.h).
 */
#include "adamw.h"

#include <math.h>

void adamw_update(float *p, const float *g, float *m, float *v, size_t n, const adamw_cfg *c, float lr, int64_t t,
                  int decay) {
    // p, g, m, v (n); bias corrections in double, as torch computes them on the host
    double bc1 = 1.0 - pow((double)c->beta1, (double)t), bc2 = 1.0 - pow((double)c->beta2, (double)t);
    float step = (float)(lr / bc1), bc2s = (float)sqrt(bc2);
    float wd = decay ? 1.0f - lr * c->weight_decay : 1.0f;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        m[i] = c->beta1 * m[i] + (1.0f - c->beta1) * gi;
        v[i] = c->beta2 * v[i] + (1.0f - c->beta2) * gi * gi;
        float denom = sqrtf(v[i]) / bc2s + c->eps;
        p[i] = p[i] * wd - step * m[i] / denom;
    }
}

float adamw_lr(const adamw_cfg *c, float min_lr, int64_t warmup, int64_t total, int64_t s) {
    if (s < warmup) return c->lr * (float)(s + 1) / (float)warmup;
    if (s >= total) return min_lr;
    int64_t span = total - warmup > 1 ? total - warmup : 1;
    double f = 0.5 * (1.0 + cos(M_PI * (double)(s - warmup) / (double)span));
    return (float)(min_lr + (c->lr - min_lr) * f);
}

double adamw_clip(float *g, size_t n, double max_norm) {
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double)g[i] * g[i];
    double norm = sqrt(ss);
    if (max_norm > 0 && norm > max_norm) {
        float s = (float)(max_norm / (norm + 1e-6));
        for (size_t i = 0; i < n; i++) g[i] *= s;
    }
    return norm;
}
