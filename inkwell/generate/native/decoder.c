/* Inkwell's native CPU decoder: a llama-architecture transformer run straight on a GGUF's quantised blocks.
 *
 * Written by hand because no library measured fast enough for single-stream decoding on a small CPU: on a
 * 2-core AVX2 machine SmolLM2-135M (Q4_1) decodes at ~86-94 tok/s in llama.cpp, 83 tok/s in ONNX Runtime
 * GenAI (exact int4) and 22 tok/s in HF bf16, while its weights (~95 MB a token) could be streamed ~4x
 * faster than llama.cpp reads them. What the libraries spend beyond the bytes is per-op dispatch and thread
 * hand-offs (llama.cpp: 11.6 ms a token on 2 threads vs 14.3 ms on 1). This file does one token's whole
 * layer stack in a handful of OpenMP loops over the weight rows, with the same integer dot products as
 * llama.cpp (4-bit weights x 8-bit activations, AVX2 maddubs), so the numbers are those of the GGUF's own
 * grid: no re-quantisation (docs/generation.md has the figures).
 *
 * Scope: GGUF "llama" models whose matrices are Q4_0, Q4_1 or Q8_0 and whose norms are F32 (the embedded
 * SmolLM2); anything else stays on the ONNX / torch paths (checked in Python before this is loaded).
 *
 * The API is llama.cpp's batch idea in miniature: a context holds KV slots (fp16, sized per sequence), and one
 * call takes a flat list of (token, slot, position) entries - any mix of prompt chunks and decode steps -
 * writes their K/V into the slots and returns logits for the entries asked for. That is all continuous
 * batching needs: sequences join and leave between calls (generate/native_engine.py schedules them).
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>

enum { Q4_0 = 2, Q4_1 = 3, Q8_0 = 8 }; /* ggml type ids */

typedef struct { uint16_t d; uint8_t qs[16]; } blk_q40;           /* w = d * (q - 8)      */
typedef struct { uint16_t d, m; uint8_t qs[16]; } blk_q41;        /* w = d * q + m        */
typedef struct { uint16_t d; int8_t qs[32]; } blk_q80;            /* w = d * q            */
typedef struct { float d, s; int8_t qs[32]; } blk_x;              /* activations: d * q, s = d * sum(q) */

/* 8 weight rows interleaved per block of 32 columns (built once at load, "repacked" as llama.cpp calls it):
 * one 256-bit integer product then yields a partial sum for each of 8 output rows, so there is no horizontal
 * sum per row and the float work of a block (convert, scale) is shared by 8 rows. Same bytes as the GGUF. */
typedef struct { uint16_t d[8], m[8]; uint8_t qs[128]; } blk_q4x8;   /* Q4_1 (Q4_0 as m = -8d)          */
typedef struct { uint16_t d[8]; uint8_t qs[256]; } blk_q8x8;           /* Q8_0                              */
/* qs: chunk c (columns 4c..4c+3) of row r sits at bytes [32c + 4r, 32c + 4r + 4); for 4-bit weights chunk c
 * holds low nibbles = columns 4c..4c+3 and high nibbles = columns 16+4c..16+4c+3 (c < 4), which are the
 * GGUF's own bytes qs[4c..4c+3] of each row. */

typedef struct { const void *data; int type, rows, cols; void *packed; } mat_t;

enum { W_Q, W_K, W_V, W_O, W_GATE, W_UP, W_DOWN, W_COUNT };

typedef struct {
    int n_layer, dim, n_head, n_kv, head_dim, ffn, vocab, threads, pack;
    float eps;
    float *inv_freq;                 /* head_dim / 2 */
    mat_t embed, head;
    const float *out_norm;
    mat_t *w;                        /* n_layer * W_COUNT */
    const float **attn_norm, **ffn_norm;
} model_t;

/* A decoding context: KV slots for up to `rows` sequences plus scratch space. Several contexts can share one
 * model (a generation batch and a scoring pass), one thread each. */
typedef struct {
    const model_t *m;
    int rows;
    int *len;                        /* positions each slot holds room for (0: free) */
    uint16_t **kc, **vc;             /* per slot: [layer][len][n_kv * head_dim], fp16 as in llama.cpp */
    int scores_cap;
    float *scores;                   /* threads * scores_cap */
    int cap;                         /* entries the scratch below holds */
    float *x, *h, *q, *k, *v, *att, *gate, *up;
    blk_x *xq;
} ctx_t;

static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

static inline float hsum8(__m256 v) {
    __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    a = _mm_add_ss(a, _mm_movehdup_ps(a));
    return _mm_cvtss_f32(a);
}

/* ------------------------------------------------------------------ activations to 8-bit blocks */

static void quantize_rows(const float *x, int n, int k, blk_x *out) {
    int nb = k / 32;
    const __m256 sign = _mm256_set1_ps(-0.f);
    #pragma omp parallel for schedule(static) if (n * nb > 256)
    for (int i = 0; i < n * nb; i++) {
        const float *v = x + (size_t)(i / nb) * k + (size_t)(i % nb) * 32;
        __m256 a[4], mx = _mm256_setzero_ps();
        for (int j = 0; j < 4; j++) { a[j] = _mm256_loadu_ps(v + 8 * j); mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, a[j])); }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        float d = _mm_cvtss_f32(m4) / 127.f, id = d > 0.f ? 1.f / d : 0.f;
        __m256i q[4];
        for (int j = 0; j < 4; j++) q[j] = _mm256_cvtps_epi32(_mm256_mul_ps(a[j], _mm256_set1_ps(id)));  /* nearest-even */
        __m256i s32 = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s32), _mm256_extracti128_si256(s32, 1));
        s4 = _mm_hadd_epi32(s4, s4);
        s4 = _mm_hadd_epi32(s4, s4);
        /* int32 -> int8 keeping order: packs work per 128-bit lane, so undo the lane interleave */
        __m256i p16a = _mm256_packs_epi32(q[0], q[1]), p16b = _mm256_packs_epi32(q[2], q[3]);
        __m256i p8 = _mm256_packs_epi16(p16a, p16b);
        p8 = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)out[i].qs, p8);
        out[i].d = d;
        out[i].s = d * (float)_mm_cvtsi128_si32(s4);
    }
}

/* ------------------------------------------------------------------ one weight row against one activation row */

static inline __m256i unpack4(const uint8_t *qs) {
    __m128i q = _mm_loadu_si128((const __m128i *)qs);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0F));
}

static inline __m256 dot_u8s8(__m256i u, __m256i s) {
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
}

/* `t` (1..4, a constant after inlining) activation rows against weight row n: the 4-bit (or 8-bit) block is
 * unpacked once and used for every row of the tile, whose sums stay in registers. */
static inline __attribute__((always_inline)) void tile(const mat_t *W, int n, int nb, const blk_x *xr, const int t,
                                                       float *y, int ystride) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    float extra[4] = {0.f, 0.f, 0.f, 0.f};
    if (W->type == Q8_0) { /* signed x signed through maddubs(|w|, sign(x, w)) */
        const blk_q80 *w = (const blk_q80 *)W->data + (size_t)n * nb;
        for (int b = 0; b < nb; b++) {
            __m256i wq = _mm256_loadu_si256((const __m256i *)w[b].qs);
            __m256i wa = _mm256_sign_epi8(wq, wq);
            float d = h2f(w[b].d);
            for (int j = 0; j < t; j++) {
                const blk_x *xb = xr + (size_t)j * nb + b;
                __m256 p = dot_u8s8(wa, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)xb->qs), wq));
                acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(d * xb->d), p, acc[j]);
            }
        }
    } else {
        /* Q4_1: w = d*q + m, so w.x = d * (q.xq) * dx + m * sum(x); Q4_0: w = d*(q - 8), m = -8d */
        int q41 = W->type == Q4_1;
        const uint8_t *base = (const uint8_t *)W->data + (size_t)n * nb * (q41 ? sizeof(blk_q41) : sizeof(blk_q40));
        for (int b = 0; b < nb; b++) {
            float d, mm;
            __m256i q4;
            if (q41) {
                const blk_q41 *w = (const blk_q41 *)base + b;
                d = h2f(w->d); mm = h2f(w->m); q4 = unpack4(w->qs);
            } else {
                const blk_q40 *w = (const blk_q40 *)base + b;
                d = h2f(w->d); mm = -8.f * d; q4 = unpack4(w->qs);
            }
            for (int j = 0; j < t; j++) {
                const blk_x *xb = xr + (size_t)j * nb + b;
                __m256 p = dot_u8s8(q4, _mm256_loadu_si256((const __m256i *)xb->qs));
                acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(d * xb->d), p, acc[j]);
                extra[j] += mm * xb->s;
            }
        }
    }
    for (int j = 0; j < t; j++) y[(size_t)j * ystride + n] = hsum8(acc[j]) + extra[j];
}


/* ------------------------------------------------------------------ the interleaved kernels */

static void *pack_rows(const mat_t *W) {
    int nb = W->cols / 32, groups = W->rows / 8;
    if (W->rows % 8) return NULL;
    if (W->type == Q8_0) {
        blk_q8x8 *out = aligned_alloc(64, ((sizeof(blk_q8x8) * groups * nb + 63) / 64) * 64);
        if (!out) return NULL;
        for (int g = 0; g < groups; g++)
            for (int b = 0; b < nb; b++) {
                blk_q8x8 *o = out + (size_t)g * nb + b;
                for (int r = 0; r < 8; r++) {
                    const blk_q80 *w = (const blk_q80 *)W->data + (size_t)(8 * g + r) * nb + b;
                    o->d[r] = w->d;
                    for (int c = 0; c < 8; c++) memcpy(o->qs + 32 * c + 4 * r, w->qs + 4 * c, 4);
                }
            }
        return out;
    }
    blk_q4x8 *out = aligned_alloc(64, ((sizeof(blk_q4x8) * groups * nb + 63) / 64) * 64);
    if (!out) return NULL;
    for (int g = 0; g < groups; g++)
        for (int b = 0; b < nb; b++) {
            blk_q4x8 *o = out + (size_t)g * nb + b;
            for (int r = 0; r < 8; r++) {
                const uint8_t *qs;
                if (W->type == Q4_1) {
                    const blk_q41 *w = (const blk_q41 *)W->data + (size_t)(8 * g + r) * nb + b;
                    o->d[r] = w->d; o->m[r] = w->m; qs = w->qs;
                } else {
                    const blk_q40 *w = (const blk_q40 *)W->data + (size_t)(8 * g + r) * nb + b;
                    o->d[r] = w->d; o->m[r] = _cvtss_sh(-8.f * h2f(w->d), 0); qs = w->qs;  /* exact: a power of 2 */
                }
                for (int c = 0; c < 4; c++) memcpy(o->qs + 32 * c + 4 * r, qs + 4 * c, 4);
            }
        }
    return out;
}

static inline __m256i bcast4(const int8_t *p) { int v; memcpy(&v, p, 4); return _mm256_set1_epi32(v); }

/* `t` (1..4, constant after inlining) activation rows against the row groups [g0, g1) of a packed 4-bit
 * matrix: y[j][8g .. 8g+8) for each activation row j. The 8 int16 products of a block are summed before
 * widening: |q4 * x8| pairs are at most 2 * 15 * 127, times 8 = 30480 < 32767. */
static inline __attribute__((always_inline)) void q4x8_tile(const blk_q4x8 *W, int nb, int g0, int g1,
                                                           const blk_x *x, const int t, float *y, int ystride) {
    const __m256i lo = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    for (int g = g0; g < g1; g++) {
        const blk_q4x8 *w = W + (size_t)g * nb;
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int b = 0; b < nb; b++) {
            __m256i q[8];
            for (int c = 0; c < 4; c++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(w[b].qs + 32 * c));
                q[c] = _mm256_and_si256(v, lo);
                q[c + 4] = _mm256_and_si256(_mm256_srli_epi16(v, 4), lo);
            }
            __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)w[b].d));
            __m256 mm = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)w[b].m));
            for (int j = 0; j < t; j++) {
                const blk_x *xb = x + (size_t)j * nb + b;
                __m256i s = _mm256_maddubs_epi16(q[0], bcast4(xb->qs));
                s = _mm256_add_epi16(s, _mm256_maddubs_epi16(q[1], bcast4(xb->qs + 4)));
                s = _mm256_add_epi16(s, _mm256_maddubs_epi16(q[2], bcast4(xb->qs + 8)));
                s = _mm256_add_epi16(s, _mm256_maddubs_epi16(q[3], bcast4(xb->qs + 12)));
                s = _mm256_add_epi16(s, _mm256_maddubs_epi16(q[4], bcast4(xb->qs + 16)));
                s = _mm256_add_epi16(s, _mm256_maddubs_epi16(q[5], bcast4(xb->qs + 20)));
                s = _mm256_add_epi16(s, _mm256_maddubs_epi16(q[6], bcast4(xb->qs + 24)));
                s = _mm256_add_epi16(s, _mm256_maddubs_epi16(q[7], bcast4(xb->qs + 28)));
                __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(s, ones));
                acc[j] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(xb->d)), p, acc[j]);
                acc[j] = _mm256_fmadd_ps(mm, _mm256_set1_ps(xb->s), acc[j]);
            }
        }
        for (int j = 0; j < t; j++) _mm256_storeu_ps(y + (size_t)j * ystride + 8 * g, acc[j]);
    }
}

/* The same for packed Q8_0 (signed x signed: maddubs(|w|, sign(x, w)); pairs reach 2 * 127 * 127, so each
 * chunk is widened to int32 on its own). */
static inline __attribute__((always_inline)) void q8x8_tile(const blk_q8x8 *W, int nb, int g0, int g1,
                                                           const blk_x *x, const int t, float *y, int ystride) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (int g = g0; g < g1; g++) {
        const blk_q8x8 *w = W + (size_t)g * nb;
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int b = 0; b < nb; b++) {
            __m256i sum[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                              _mm256_setzero_si256()};
            for (int c = 0; c < 8; c++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(w[b].qs + 32 * c));
                __m256i a = _mm256_sign_epi8(v, v);
                for (int j = 0; j < t; j++) {
                    __m256i xs = _mm256_sign_epi8(bcast4(x[(size_t)j * nb + b].qs + 4 * c), v);
                    sum[j] = _mm256_add_epi32(sum[j], _mm256_madd_epi16(_mm256_maddubs_epi16(a, xs), ones));
                }
            }
            __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)w[b].d));
            for (int j = 0; j < t; j++)
                acc[j] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(x[(size_t)j * nb + b].d)),
                                         _mm256_cvtepi32_ps(sum[j]), acc[j]);
        }
        for (int j = 0; j < t; j++) _mm256_storeu_ps(y + (size_t)j * ystride + 8 * g, acc[j]);
    }
}

#define PACKED_TILES(KERNEL, TYPE)                                                                          \
    do {                                                                                                  \
        const TYPE *P = W->packed;                                                                        \
        int r0 = 0;                                                                                       \
        for (; r0 + 4 <= m; r0 += 4) KERNEL(P, nb, n0 / 8, n1 / 8, x + (size_t)r0 * nb, 4, y + (size_t)r0 * ystride, ystride); \
        switch (m - r0) {                                                                                 \
            case 3: KERNEL(P, nb, n0 / 8, n1 / 8, x + (size_t)r0 * nb, 3, y + (size_t)r0 * ystride, ystride); break; \
            case 2: KERNEL(P, nb, n0 / 8, n1 / 8, x + (size_t)r0 * nb, 2, y + (size_t)r0 * ystride, ystride); break; \
            case 1: KERNEL(P, nb, n0 / 8, n1 / 8, x + (size_t)r0 * nb, 1, y + (size_t)r0 * ystride, ystride); break; \
        }                                                                                                 \
    } while (0)

/* rows [n0, n1) of W times `m` activation rows (each nb blocks) into y[m][N] (n0, n1 multiples of 8 when W is
 * packed) */
static void mat_rows(const mat_t *W, int n0, int n1, const blk_x *x, int m, float *y, int ystride) {
    int nb = W->cols / 32;
    if (W->packed) {
        if (W->type == Q8_0) PACKED_TILES(q8x8_tile, blk_q8x8);
        else PACKED_TILES(q4x8_tile, blk_q4x8);
        return;
    }
    for (int n = n0; n < n1; n++) {
        int r0 = 0;
        for (; r0 + 4 <= m; r0 += 4) tile(W, n, nb, x + (size_t)r0 * nb, 4, y + (size_t)r0 * ystride, ystride);
        switch (m - r0) {
            case 3: tile(W, n, nb, x + (size_t)r0 * nb, 3, y + (size_t)r0 * ystride, ystride); break;
            case 2: tile(W, n, nb, x + (size_t)r0 * nb, 2, y + (size_t)r0 * ystride, ystride); break;
            case 1: tile(W, n, nb, x + (size_t)r0 * nb, 1, y + (size_t)r0 * ystride, ystride); break;
        }
    }
}

/* Several matrices reading the same activations, split over the threads as one range of output rows:
 * one fork/join for q,k,v (or gate,up) instead of one each. */
static void matmul_group(const mat_t **Ws, float **ys, int count, const blk_x *x, int m) {
    int total = 0;
    for (int i = 0; i < count; i++) total += Ws[i]->rows;
    #pragma omp parallel
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        /* boundaries on multiples of 8 rows, the packed kernels' unit (every packed matrix has 8k rows) */
        int lo = (int)((long)total * id / nt) & ~7, hi = id == nt - 1 ? total : (int)((long)total * (id + 1) / nt) & ~7;
        int base = 0;
        for (int i = 0; i < count; i++) {
            int a = lo > base ? lo - base : 0, b = hi - base < Ws[i]->rows ? hi - base : Ws[i]->rows;
            if (a < b) mat_rows(Ws[i], a, b, x, m, ys[i], Ws[i]->rows);
            base += Ws[i]->rows;
        }
    }
}

static void matmul(const mat_t *W, float *y, const blk_x *x, int m) {
    const mat_t *Ws[1] = {W};
    float *ys[1] = {y};
    matmul_group(Ws, ys, 1, x, m);
}

/* ------------------------------------------------------------------ small pieces */

static void rmsnorm(float *out, const float *x, const float *w, int n, int dim, float eps) {
    for (int i = 0; i < n; i++) {
        const float *a = x + (size_t)i * dim;
        float *o = out + (size_t)i * dim;
        __m256 acc = _mm256_setzero_ps();
        for (int j = 0; j < dim; j += 8) { __m256 v = _mm256_loadu_ps(a + j); acc = _mm256_fmadd_ps(v, v, acc); }
        __m256 r = _mm256_set1_ps(1.f / sqrtf(hsum8(acc) / dim + eps));
        for (int j = 0; j < dim; j += 8)
            _mm256_storeu_ps(o + j, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(a + j), r), _mm256_loadu_ps(w + j)));
    }
}

/* exp(x) for 8 lanes (x <= 0 here: scores minus their maximum): Cody-Waite range reduction and a degree-6
 * polynomial, the standard single-precision construction (relative error ~2e-7); expf one lane at a time was
 * 30% of a 500-token prefill. */
static inline __m256 exp8(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* One query against `len` cached positions (fp16 K/V rows `stride` values apart): softmax(q.K * scale) . V.
 * Written for throughput rather than latency: four positions' dot products at a time and the output kept in
 * registers across positions, so the loops are not chains of dependent FMAs. */
static inline __m256 ld8(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

static void attend(const float *q, const uint16_t *kc, const uint16_t *vc, int len, int stride, int hd, float scale,
                   float *sc, float *out) {
    float top = -INFINITY;
    int j = 0;
    for (; j + 4 <= len; j += 4) {
        const uint16_t *k0 = kc + (size_t)j * stride;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        for (int c = 0; c < hd; c += 8) {
            __m256 qc = _mm256_loadu_ps(q + c);
            a0 = _mm256_fmadd_ps(qc, ld8(k0 + c), a0);
            a1 = _mm256_fmadd_ps(qc, ld8(k0 + stride + c), a1);
            a2 = _mm256_fmadd_ps(qc, ld8(k0 + 2 * stride + c), a2);
            a3 = _mm256_fmadd_ps(qc, ld8(k0 + 3 * stride + c), a3);
        }
        sc[j] = hsum8(a0) * scale; sc[j + 1] = hsum8(a1) * scale;
        sc[j + 2] = hsum8(a2) * scale; sc[j + 3] = hsum8(a3) * scale;
    }
    for (; j < len; j++) {
        __m256 a = _mm256_setzero_ps();
        for (int c = 0; c < hd; c += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(q + c), ld8(kc + (size_t)j * stride + c), a);
        sc[j] = hsum8(a) * scale;
    }
    for (j = 0; j < len; j++) if (sc[j] > top) top = sc[j];
    __m256 tot8 = _mm256_setzero_ps();
    for (j = 0; j + 8 <= len; j += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(sc + j), _mm256_set1_ps(top)));
        _mm256_storeu_ps(sc + j, e);
        tot8 = _mm256_add_ps(tot8, e);
    }
    float total = hsum8(tot8);
    for (; j < len; j++) { sc[j] = expf(sc[j] - top); total += sc[j]; }
    float inv = 1.f / total;
    __m256 o[32];                    /* head_dim <= 256, checked when the model is opened */
    int nv = hd / 8;
    for (int c = 0; c < nv; c++) o[c] = _mm256_setzero_ps();
    for (j = 0; j < len; j++) {
        __m256 a = _mm256_set1_ps(sc[j]);
        const uint16_t *vr = vc + (size_t)j * stride;
        for (int c = 0; c < nv; c++) o[c] = _mm256_fmadd_ps(a, ld8(vr + 8 * c), o[c]);
    }
    for (int c = 0; c < nv; c++) _mm256_storeu_ps(out + 8 * c, _mm256_mul_ps(o[c], _mm256_set1_ps(inv)));
}

/* llama.cpp's "normal" rotary layout (adjacent pairs): GGUF converters permute q/k for it */
static void rope(float *v, int heads, int hd, int pos, const float *inv_freq) {
    for (int i = 0; i < hd / 2; i++) {
        float a = (float)pos * inv_freq[i], c = cosf(a), s = sinf(a);
        for (int h = 0; h < heads; h++) {
            float *p = v + h * hd + 2 * i;
            float x0 = p[0], x1 = p[1];
            p[0] = x0 * c - x1 * s;
            p[1] = x0 * s + x1 * c;
        }
    }
}

static void embed_row(const mat_t *E, int token, float *out) {
    int nb = E->cols / 32;
    if (E->type == Q8_0) {
        const blk_q80 *w = (const blk_q80 *)E->data + (size_t)token * nb;
        for (int b = 0; b < nb; b++) { float d = h2f(w[b].d); for (int j = 0; j < 32; j++) out[b * 32 + j] = d * w[b].qs[j]; }
    } else if (E->type == Q4_1) {
        const blk_q41 *w = (const blk_q41 *)E->data + (size_t)token * nb;
        for (int b = 0; b < nb; b++) {
            float d = h2f(w[b].d), m = h2f(w[b].m);
            for (int j = 0; j < 16; j++) { out[b * 32 + j] = d * (w[b].qs[j] & 15) + m; out[b * 32 + j + 16] = d * (w[b].qs[j] >> 4) + m; }
        }
    } else {
        const blk_q40 *w = (const blk_q40 *)E->data + (size_t)token * nb;
        for (int b = 0; b < nb; b++) {
            float d = h2f(w[b].d);
            for (int j = 0; j < 16; j++) { out[b * 32 + j] = d * ((w[b].qs[j] & 15) - 8); out[b * 32 + j + 16] = d * ((w[b].qs[j] >> 4) - 8); }
        }
    }
}

/* ------------------------------------------------------------------ the API (ctypes) */

void *ink_new(int n_layer, int dim, int n_head, int n_kv, int head_dim, int ffn, int vocab, float eps, float theta,
              int threads, int pack) {
    model_t *m = calloc(1, sizeof(model_t));
    m->n_layer = n_layer; m->dim = dim; m->n_head = n_head; m->n_kv = n_kv; m->head_dim = head_dim;
    m->ffn = ffn; m->vocab = vocab; m->eps = eps; m->threads = threads; m->pack = pack;
    m->inv_freq = malloc(sizeof(float) * head_dim / 2);
    for (int i = 0; i < head_dim / 2; i++) m->inv_freq[i] = powf(theta, -2.f * i / head_dim);
    m->w = calloc((size_t)n_layer * W_COUNT, sizeof(mat_t));
    m->attn_norm = calloc(n_layer, sizeof(float *));
    m->ffn_norm = calloc(n_layer, sizeof(float *));
    if (threads > 0) omp_set_num_threads(threads);
    return m;
}

/* kind: 0..6 a layer matrix (W_Q..W_DOWN), 7 attn norm, 8 ffn norm, 9 embedding, 10 head, 11 output norm */
void ink_set(void *p, int layer, int kind, int type, const void *data, int rows, int cols) {
    model_t *m = p;
    mat_t t = {data, type, rows, cols, NULL};
    if (m->pack && (kind < W_COUNT || kind == 10)) t.packed = pack_rows(&t);  /* NULL: the row-wise kernels */
    if (kind < W_COUNT) m->w[layer * W_COUNT + kind] = t;
    else if (kind == 7) m->attn_norm[layer] = data;
    else if (kind == 8) m->ffn_norm[layer] = data;
    else if (kind == 9) m->embed = t;
    else if (kind == 10) m->head = t;
    else m->out_norm = data;
}

void *ink_ctx(void *p, int rows) {
    ctx_t *c = calloc(1, sizeof(ctx_t));
    if (!c) return NULL;
    c->m = p;
    c->rows = rows;
    c->len = calloc(rows, sizeof(int));
    c->kc = calloc(rows, sizeof(uint16_t *));
    c->vc = calloc(rows, sizeof(uint16_t *));
    if (!c->len || !c->kc || !c->vc) { free(c->len); free(c->kc); free(c->vc); free(c); return NULL; }
    return c;
}

/* Give slot `row` room for `max_len` positions (its old contents are dropped; 0 frees it). 0 when out of memory. */
int ink_slot(void *p, int row, int max_len) {
    ctx_t *c = p;
    const model_t *m = c->m;
    if (row < 0 || row >= c->rows || max_len < 0) return 0;
    free(c->kc[row]); free(c->vc[row]);
    c->kc[row] = c->vc[row] = NULL;
    c->len[row] = 0;
    if (max_len == 0) return 1;
    size_t per = (size_t)m->n_layer * max_len * m->n_kv * m->head_dim;
    c->kc[row] = malloc(per * sizeof(uint16_t));
    c->vc[row] = malloc(per * sizeof(uint16_t));
    if (max_len > c->scores_cap) {
        free(c->scores);
        c->scores = malloc(sizeof(float) * (size_t)omp_get_max_threads() * max_len);
        c->scores_cap = c->scores ? max_len : 0;
    }
    if (!c->kc[row] || !c->vc[row] || !c->scores) {
        free(c->kc[row]); free(c->vc[row]);
        c->kc[row] = c->vc[row] = NULL;
        return 0;
    }
    c->len[row] = max_len;
    return 1;
}

static void free_scratch(ctx_t *c) {
    free(c->x); free(c->h); free(c->q); free(c->k); free(c->v); free(c->att); free(c->gate); free(c->up); free(c->xq);
    c->x = c->h = c->q = c->k = c->v = c->att = c->gate = c->up = NULL;
    c->xq = NULL;
    c->cap = 0;
}

static int grow(ctx_t *c, int n) {
    if (n <= c->cap) return 1;
    const model_t *m = c->m;
    free_scratch(c);
    int kv = m->n_kv * m->head_dim, qd = m->n_head * m->head_dim, wide = m->ffn > m->dim ? m->ffn : m->dim;
    if (qd > wide) wide = qd;
    c->x = malloc(sizeof(float) * n * m->dim);
    c->h = malloc(sizeof(float) * n * m->dim);
    c->q = malloc(sizeof(float) * n * qd);
    c->k = malloc(sizeof(float) * n * kv);
    c->v = malloc(sizeof(float) * n * kv);
    c->att = malloc(sizeof(float) * n * (qd > m->dim ? qd : m->dim));  /* also the final norm's gather */
    c->gate = malloc(sizeof(float) * n * m->ffn);
    c->up = malloc(sizeof(float) * n * m->ffn);
    c->xq = malloc(sizeof(blk_x) * n * (wide / 32));
    if (!(c->x && c->h && c->q && c->k && c->v && c->att && c->gate && c->up && c->xq)) { free_scratch(c); return 0; }
    c->cap = n;
    return 1;
}

static void store_f16(uint16_t *dst, const float *src, int n) {  /* n: a multiple of 8 */
    for (int i = 0; i < n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
}

/* One pass over the layer stack for n entries (token, slot, position). Every earlier position of a slot must
 * already be in its cache or come earlier in this call. Writes the logits of the entries listed in `want`
 * (n_want of them) to `logits` [n_want][vocab]. Returns 0 on success, nonzero (and does nothing) otherwise. */
int ink_forward(void *p, int n, const int *tokens, const int *rows, const int *pos, int n_want, const int *want,
                float *logits) {
    ctx_t *c = p;
    const model_t *m = c->m;
    for (int i = 0; i < n; i++)
        if (rows[i] < 0 || rows[i] >= c->rows || pos[i] < 0 || pos[i] >= c->len[rows[i]] || tokens[i] < 0
            || tokens[i] >= m->embed.rows) return 2;
    for (int i = 0; i < n_want; i++)
        if (want[i] < 0 || want[i] >= n) return 3;
    if (!grow(c, n)) return 1;
    /* flush denormals to zero on every thread: attention weights of far-away positions underflow, and
     * arithmetic on denormals runs ~100x slower. The calling thread's own mode is restored on return. */
    unsigned int caller_csr = _mm_getcsr();
    #pragma omp parallel
    _mm_setcsr(_mm_getcsr() | 0x8040);
    int dim = m->dim, hd = m->head_dim, kvd = m->n_kv * hd, qd = m->n_head * hd, group = m->n_head / m->n_kv;
    float scale = 1.f / sqrtf((float)hd);
    for (int i = 0; i < n; i++) embed_row(&m->embed, tokens[i], c->x + (size_t)i * dim);

    for (int l = 0; l < m->n_layer; l++) {
        const mat_t *w = m->w + l * W_COUNT;
        rmsnorm(c->h, c->x, m->attn_norm[l], n, dim, m->eps);
        quantize_rows(c->h, n, dim, c->xq);
        {
            const mat_t *Ws[3] = {&w[W_Q], &w[W_K], &w[W_V]};
            float *ys[3] = {c->q, c->k, c->v};
            matmul_group(Ws, ys, 3, c->xq, n);
        }
        for (int i = 0; i < n; i++) {
            rope(c->q + (size_t)i * qd, m->n_head, hd, pos[i], m->inv_freq);
            rope(c->k + (size_t)i * kvd, m->n_kv, hd, pos[i], m->inv_freq);
            size_t at = ((size_t)l * c->len[rows[i]] + pos[i]) * kvd;
            store_f16(c->kc[rows[i]] + at, c->k + (size_t)i * kvd, kvd);
            store_f16(c->vc[rows[i]] + at, c->v + (size_t)i * kvd, kvd);
        }
        #pragma omp parallel for schedule(dynamic, 1)
        for (int t = 0; t < n * m->n_head; t++) {
            int i = t / m->n_head, h = t % m->n_head, kvh = h / group, r = rows[i];
            size_t base = (size_t)l * c->len[r] * kvd + kvh * hd;
            float *sc = c->scores + (size_t)omp_get_thread_num() * c->scores_cap;
            attend(c->q + (size_t)i * qd + h * hd, c->kc[r] + base, c->vc[r] + base, pos[i] + 1, kvd, hd, scale, sc,
                   c->att + (size_t)i * qd + h * hd);
        }
        quantize_rows(c->att, n, qd, c->xq);
        matmul(&w[W_O], c->h, c->xq, n);
        for (size_t i = 0; i < (size_t)n * dim; i++) c->x[i] += c->h[i];

        rmsnorm(c->h, c->x, m->ffn_norm[l], n, dim, m->eps);
        quantize_rows(c->h, n, dim, c->xq);
        {
            const mat_t *Ws[2] = {&w[W_GATE], &w[W_UP]};
            float *ys[2] = {c->gate, c->up};
            matmul_group(Ws, ys, 2, c->xq, n);
        }
        for (size_t i = 0; i < (size_t)n * m->ffn; i++) {
            float g = c->gate[i];
            c->gate[i] = g / (1.f + expf(-g)) * c->up[i];
        }
        quantize_rows(c->gate, n, m->ffn, c->xq);
        matmul(&w[W_DOWN], c->h, c->xq, n);
        for (size_t i = 0; i < (size_t)n * dim; i++) c->x[i] += c->h[i];
    }
    if (n_want > 0) {
        for (int i = 0; i < n_want; i++) memcpy(c->att + (size_t)i * dim, c->x + (size_t)want[i] * dim, sizeof(float) * dim);
        rmsnorm(c->h, c->att, m->out_norm, n_want, dim, m->eps);
        quantize_rows(c->h, n_want, dim, c->xq);
        matmul(&m->head, logits, c->xq, n_want);
    }
    _mm_setcsr(caller_csr);
    return 0;
}

void ink_ctx_free(void *p) {
    ctx_t *c = p;
    if (!c) return;
    for (int r = 0; r < c->rows; r++) { free(c->kc[r]); free(c->vc[r]); }
    free(c->kc); free(c->vc); free(c->len); free(c->scores);
    free_scratch(c);
    free(c);
}

void ink_free(void *p) {
    model_t *m = p;
    if (!m) return;
    for (int i = 0; i < m->n_layer * W_COUNT; i++) free(m->w[i].packed);
    free(m->head.packed);
    free(m->inv_freq); free(m->w); free(m->attn_norm); free(m->ffn_norm);
    free(m);
}
