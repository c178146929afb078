/*
 * adamw.h - the optimizer and its schedule (prefix adamw_).
 *
 * AdamW (Loshchilov & Hutter; torch.optim.AdamW's update, bit-level
 * formula order aside):
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   p -= lr * wd * p                      (decoupled decay, decayed tensors only)
 *   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * with t the 1-based step. Which tensors decay is the caller's (model.h:
 * matrices yes, norms and biases no).
 *
 * Schedule (adamw_lr): linear warmup over `warmup` steps to lr, then a
 * cosine from lr down to min_lr at step `total`:
 *   s < warmup:  lr * (s + 1) / warmup
 *   else:        min_lr + (lr - min_lr) * (1 + cos(pi * (s - warmup) / max(1, total - warmup))) / 2
 * (s 0-based; past `total` it stays at min_lr).
 *
 * Clipping (adamw_clip): global L2 norm of all gradients, scaled down to
 * max_norm when above it; returns the norm before clipping.
 */
#ifndef SRA_ADAMW_H
#define SRA_ADAMW_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
} adamw_cfg;

/* One update of n parameters p with gradients g and moments m, v (n each),
 * at step t (1-based); decay: apply weight decay to this range. */
void adamw_update(float *p, const float *g, float *m, float *v, size_t n, const adamw_cfg *c, float lr, int64_t t,
                  int decay);

float adamw_lr(const adamw_cfg *c, float min_lr, int64_t warmup, int64_t total, int64_t step);

/* Global L2 norm of g (n), in double; when max_norm > 0 and the norm is
 * above it, g is scaled by max_norm / norm. Returns the norm before. */
double adamw_clip(float *g, size_t n, double max_norm);

#endif /* SRA_ADAMW_H */
