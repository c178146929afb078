/*
 * layers.h - the transformer's math on float arrays, no I/O (llm.c style).
 *
 * Dimensions: B batch, T time (sequence), C channels (hidden), OC output
 * channels, NH query heads, NKV key/value heads (GQA: query head h reads
 * kv head h / (NH / NKV)), HS head size, I MLP width, V vocabulary, N rows
 * (= B*T where the op is per position). All arrays are row-major, float32,
 * contiguous with the shape written beside each argument.
 *
 * Each X_forward overwrites its output. The backward halves join in issue 7
 * (each directly below its forward, gradients first, accumulating with +=);
 * the teacher (extract/) uses the forward halves only.
 *
 * Matmuls go through OpenBLAS (cblas_sgemm); every BLAS path has a
 * plain-loop reference (the *_ref functions) that the tests compare
 * against.
 *
 * Threads: the ops split their work over layers_threads() threads of their
 * own, each calling single-threaded BLAS. The first call takes OpenBLAS's
 * thread count (OPENBLAS_NUM_THREADS, default all cores) as that number and
 * sets OpenBLAS itself to one thread for the whole process (its spinning
 * workers would otherwise compete with ours; layers.c has the numbers).
 * Functions are thread-safe given distinct outputs.
 */
#ifndef SRA_LAYERS_H
#define SRA_LAYERS_H

#include <stddef.h>
#include <stdint.h>

/* Threads the ops use (see above); the first call fixes it. */
int layers_threads(void);
/* Fixes the thread count to n (>= 1) when called before the first
 * layers_threads(); later calls change nothing. For --threads flags. */
void layers_set_threads(int n);

/* out (N,OC) = inp (N,C) @ weight(OC,C)^T + bias(OC) (bias may be NULL) */
void matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC);
void matmul_forward_ref(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC);
/* A weight (OC,C) for matmul_forward_seq: float32 in place (f32), or
 * stored otherwise (F16/BF16 say) and written as float32 on demand:
 * fetch(ctx, r0, n, dst) fills dst (n,C) with rows [r0, r0+n). fetch is
 * called from several threads at once, on disjoint rows. */
typedef struct {
    const float *f32;
    void (*fetch)(const void *ctx, size_t r0, size_t n, float *dst);
    const void *ctx;
} matmul_weight;
/* out (B,T,OC) = inp (B,T,C) @ weight^T + bias: each of the B sequences
 * gets exactly the bits matmul_forward gives it alone (on the fetched
 * float32 weight), so results do not depend on B. A fetched weight is
 * converted once per call, a column block at a time while it is in cache
 * for wide outputs. scratch: matmul_seq_scratch_floats(C, OC) floats when
 * w is fetched (unused otherwise); its size depends on layers_threads(). */
void matmul_forward_seq(float *out, const float *inp, const matmul_weight *w, const float *bias, int B, int T, int C,
                        int OC, float *scratch);
size_t matmul_seq_scratch_floats(int C, int OC);
/* dinp (N,C) += dout (N,OC) @ weight (OC,C); dweight (OC,C) += dout^T @ inp;
 * dbias (OC) += sum over rows of dout. Any of dinp, dweight, dbias may be
 * NULL (not wanted: e.g. dinp of the first layer's input). */
void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC);

/* HF LlamaRMSNorm: out (N,C) = inp / sqrt(mean_c(inp^2) + eps) * weight(C),
 * the mean accumulated in double. out may equal inp. */
void rmsnorm_forward(float *out, const float *inp, const float *weight, int N, int C, float eps);
/* dinp (N,C) += d out / d inp applied to dout (N,C); dweight (C) +=
 * sum_n dout * inp * rstd. Recomputes rstd from inp (nothing saved). */
void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight, int N,
                      int C, float eps);

/* Token embedding: out (N,C) = wte (V,C) rows ids (N). */
void embedding_forward(float *out, const int32_t *ids, const float *wte, int N, int C);
/* dwte (V,C) += dout (N,C) scattered to the rows ids (N). */
void embedding_backward(float *dwte, const float *dout, const int32_t *ids, int N, int C);

/* RoPE tables for the positions pos[0..N): cos, sin (N, HS/2), angle =
 * pos * inv_freq[i] (inv_freq from cfg_rope_inv_freq, HS/2 values),
 * computed in double and rounded once. */
void rope_tables(float *cos, float *sin, const int32_t *pos, int N, const double *inv_freq, int HS);
/* Rotates x (N, NH, HS) in place, HF's rotate_half layout: pairs
 * (j, j + HS/2) with the row's cos/sin (N, HS/2). */
void rope_forward(float *x, const float *cos, const float *sin, int N, int NH, int HS);
/* The transpose of rope_forward (rotation by -angle), in place on the
 * gradient dx (N, NH, HS). */
void rope_backward(float *dx, const float *cos, const float *sin, int N, int NH, int HS);

/* Causal multi-head attention with GQA and key padding.
 *   q (B,Tq,NH,HS): the queries of the LAST Tq of Tk positions;
 *   k, v (B,Tk,NKV,HS); valid (B,Tk) 1 = a real token, 0 = padding (NULL:
 *   all real); out (B,Tq,NH,HS) = softmax(q k^T / sqrt(HS) + causal and
 *   padding masks) v. A query at a padding position gets zeros.
 *   Tq <= Tk; NH a multiple of NKV (else nothing is written). A valid query always sees its own key,
 *   so its softmax is never empty.
 *   mass (B,Tk) or NULL, only when Tq == Tk (not written otherwise): the
 *   attention each key RECEIVES, averaged over heads and over the valid
 *   queries that can see it (method.md §3):
 *   m_i = 1/NH sum_h 1/|Q_i| sum_{q in Q_i} A_h[q,i], Q_i = { valid q >= i };
 *   0 at padding keys. Computed per (b, h) block
 *   from the probabilities as they are made: never B*NH*T*T floats at once.
 *   scratch: attention_scratch_floats(Tq, Tk) floats (the caller owns it;
 *   any float alignment; O(min(Tq,64)*Tk)), used when the call runs on one
 *   thread; with layers_threads() > 1 the (b, h) items are shared among
 *   threads, each with scratch allocated for the call.
 *   Scores are made per (b, h) in blocks of 64 query rows, each against
 *   only the keys it can see, by cblas_sgemm (plain loops below 4 rows),
 *   normalized where they are used (output rows, mass weights).
 */
size_t attention_scratch_floats(int Tq, int Tk);
void attention_forward(float *out, float *mass, const float *q, const float *k, const float *v,
                       const uint8_t *valid, int B, int Tq, int Tk, int NH, int NKV, int HS, float *scratch);
/* Backward of attention_forward for Tq == Tk == T (training), recomputing
 * the probabilities one (b, h) at a time (never more than one head's T x T
 * block; no probabilities are saved by the forward):
 *   dq (B,T,NH,HS), dk, dv (B,T,NKV,HS) += gradients of out given dout
 *   (B,T,NH,HS); out is the forward's output (for the row terms
 *   D_q = dout_q . out_q). Padding keys get no gradient, padding queries
 *   contribute none. Threads take (b, kv-head) groups so that the GQA sums
 *   into dk, dv never race. */
void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                        const float *v, const float *out, const uint8_t *valid, int B, int T, int NH, int NKV,
                        int HS);
/* The paper preset's token weights (method.md §9.1, mass rule last:L):
 * the attention of each sequence's LAST real query in this layer, summed
 * over heads and normalized over the keys:
 *   w_t = sum_h A_h[q*, t] / sum_t' sum_h A_h[q*, t'],  q* = the last
 *   position with valid = 1 (valid is a prefix of each row; NULL = all real).
 * Every row of A sums to 1, so this is the head mean of the last query's
 * probabilities. q (B,T,NH,HS) and k (B,T,NKV,HS) post-RoPE, as attention
 * saw them; w (B,T): 0 at padding keys; a row without a valid token is all
 * 0. Not floored (the users floor each token at SPAN_MASS_FLOOR, as every
 * mass). Scores, exponentials and sums in double: O(B NH T HS), no
 * scratch, one query row per sequence (no T x T block). */
void attention_last_mass(float *w, const float *q, const float *k, const uint8_t *valid, int B, int T, int NH,
                         int NKV, int HS);
/* Plain loops, same contract, for the tests. */
void attention_forward_ref(float *out, float *mass, const float *q, const float *k, const float *v,
                           const uint8_t *valid, int B, int Tq, int Tk, int NH, int NKV, int HS);

/* SwiGLU: out (n) = silu(gate) * up, silu(x) = x / (1 + exp(-x)). out may
 * equal gate or up. */
void swiglu_forward(float *out, const float *gate, const float *up, size_t n);
/* dgate (n) += dout * d silu(gate) * up; dup (n) += dout * silu(gate). */
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n);

/* out (n) += x (n): the residual stream. */
void residual_forward(float *out, const float *x, size_t n);

/* Cross-entropy of next-token logits (N,V) against targets (N) (-1: the
 * row is not counted). Returns the sum of -log p(target) over counted rows
 * (double, log-softmax in double) and writes dlogits (N,V) = scale *
 * (softmax - onehot(target)) for counted rows, 0 for the others (dlogits
 * may equal logits: computed row by row in place). dlogits may be NULL
 * (loss only). */
double crossentropy_forward_backward(float *dlogits, const float *logits, const int32_t *targets, int N, int V,
                                     float scale);

/* Next-token distribution of a block of rows, never more than the block:
 * logits (N,V) -> log-softmax in double -> the k most probable ids (ties:
 * the lower id first) with their log-probs, and tail (N) = 1 - sum of the
 * top-k probabilities (clamped at 0). ids, logprobs (N,k), sorted by
 * decreasing probability; if k > V the last k - V slots get id -1 and
 * log-prob -inf. Selection by a k-heap: one pass over each row, no sort
 * of V, no allocation. */
void logsoftmax_topk(const float *logits, int N, int V, int k, int32_t *ids, float *logprobs, float *tail);

/* The `self:L` token mass of method.md §3, for one sequence: parameter-free
 * similarity attention on hidden states h (n,C) (the n real tokens of the
 * sequence, template tokens included, padding left out by the caller):
 *   x_i = h_i / std(h_i)   (population std over the C channels, from the
 *                           mean; h is not centered; 0 std counts as 1)
 *   s_qk = x_q . x_k / sqrt(C), the diagonal q == k masked,
 *   A = row softmax of s (over k != q),
 *   mass_i = column mean = 1/(n-1) sum_{q != i} A[q,i]   -> mass (n).
 * Not causal: every token sees every other (the rule reads the states, not
 * the model's attention). n == 1 gives mass 1. scratch: n*C + n*64 floats
 * (self_mass_scratch_floats), owned by the caller. The same function
 * serves the student (issue 8), so both sides follow one formula. */
size_t self_mass_scratch_floats(int n, int C);
void self_mass_forward(float *mass, const float *h, int n, int C, float *scratch);

#endif /* SRA_LAYERS_H */
