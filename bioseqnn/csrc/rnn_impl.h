/* One instruction-set variant of the recurrent kernels; included by rnn.c once per
 * variant with VL (floats per vector) and SUFFIX defined, inside a target pragma.
 *
 * Layouts (row-major float32, one direction, zero initial state):
 *   T steps, B sequences, H hidden units, G = 4H (LSTM) or 3H (GRU)
 *   x    (T, B, K)   inputs, K channels (time-major rows)
 *   wih  (K, G)      input weights, transposed
 *   wt   (H, G)      recurrent weights, transposed (forward pass)
 *   w    (G, H)      recurrent weights as stored (backward pass)
 *   hs   (T + 1, B, H) hidden states, hs[0] = 0
 * Gate order as torch's nn.LSTM (i, f, g, o) and nn.GRU (r, z, n).
 *
 * With rev = 1 a kernel runs the sequences backwards in time, as the backward
 * direction of a bidirectional layer over sequences that fill the batch's width: step
 * s takes x[t], t = T - 1 - s, starts from hs[T] = 0 and writes its state to hs[t], so
 * hs[0 .. T - 1] is the output in the inputs' order. (The caller reversing the inputs
 * and the outputs instead cost two copies of the outputs a training step, 7% of a
 * BiLSTM step.) What a kernel keeps for the backward pass (cell states, gates) is
 * indexed by step s either way.
 */

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SUFFIX)

typedef float CAT(vf, SUFFIX) __attribute__((vector_size(VL * 4)));
#define VF CAT(vf, SUFFIX)

static inline __attribute__((always_inline)) VF FN(ld)(const float *p) {
    VF v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}

static inline __attribute__((always_inline)) void FN(st)(float *p, VF v) {
    __builtin_memcpy(p, &v, sizeof v);
}

typedef int CAT(vi, SUFFIX) __attribute__((vector_size(VL * 4)));
#define VI CAT(vi, SUFFIX)

/* exp_ of rnn.c on a vector: the same reduction and polynomial; n is rounded to the
 * nearest integer by the 1.5 * 2^23 trick. */
static inline __attribute__((always_inline)) VF FN(vexp)(VF x) {
    const VF lo = x - x - 87.0f, hi = x - x + 88.0f;
    VI m = x < lo;
    x = (VF)(((VI)lo & m) | ((VI)x & ~m));
    m = x > hi;
    x = (VF)(((VI)hi & m) | ((VI)x & ~m));
    const VF n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const VF r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
    VF p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const VI bits = (__builtin_convertvector(n, VI) + 127) << 23;
    return p * (VF)bits;
}

static inline __attribute__((always_inline)) VF FN(vsigm)(VF x) {
    return 1.0f / (1.0f + FN(vexp)(-x));
}

static inline __attribute__((always_inline)) VF FN(vtanh)(VF x) {
    return 2.0f * FN(vsigm)(2.0f * x) - 1.0f;
}

/* Each gate loop body is written once as a macro over (type, load, store, sigmoid,
 * tanh) and expanded twice: on whole vectors, then on the last H mod VL units. */
#define SLD(p) (*(p))
#define SST(p, v) (*(p) = (v))
#define VLD(p) FN(ld)(p)
#define VST(p, v) FN(st)(p, v)
#define ROW_LOOP(BODY)                                                              \
    {                                                                               \
        int j = 0;                                                                  \
        for (; j + VL <= H; j += VL) BODY(VF, VLD, VST, FN(vsigm), FN(vtanh))       \
        for (; j < H; j++) BODY(float, SLD, SST, sigm, tanh_)                       \
    }

/* The register block of the products: RB rows x NB vectors of accumulators, plus NB
 * vectors of Bm and one broadcast of A. AVX-512 has 32 vector registers: 4 x 4 (16
 * accumulators, 21 registers). AVX2 and SSE have 16: 6 x 2 (12 accumulators, 15
 * registers); a 4 x 4 block there spilled its accumulators to memory every step, and
 * the AVX2 LSTM trained no faster than torch's own module. The order in which each
 * output element sums over k is the same for every block, so results do not change. */
#if VL >= 16
#define RB 4
#define NB 4
#else
#define RB 6
#define NB 2
#endif

/* C[R rows][NV vectors] += A[R][K] @ Bm[K][NV * VL]: a register block (R <= RB,
 * NV <= NB). A's element (i, k) is A[i * ars + k * acs], so A may be a transposed view.
 * With init, C is not read: every row starts from init[NV * VL] instead. */
static inline __attribute__((always_inline)) void FN(block)(
    int R, int NV, int K, const float *A, long ars, long acs, const float *Bm, long ldb,
    float *C, long ldc, const float *init) {
    VF acc[RB][NB];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++)
            acc[r][v] = FN(ld)(init ? init + v * VL : C + r * ldc + v * VL);
    for (int k = 0; k < K; k++) {
        VF b[NB];
        for (int v = 0; v < NV; v++) b[v] = FN(ld)(Bm + k * ldb + v * VL);
        for (int r = 0; r < R; r++) {
            const float a = A[r * ars + k * acs];
            for (int v = 0; v < NV; v++) acc[r][v] += a * b[v];
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) FN(st)(C + r * ldc + v * VL, acc[r][v]);
}

/* Bm (K x N, leading dimension ldb) copied for gemm_acc into column panels of W = NB VL
 * floats: panel p holds columns [p W, p W + w) as K x w contiguous floats (w = W but
 * for the last), 64-byte aligned. NULL if memory is short: gemm_acc then reads Bm in
 * place. The caller frees it. */
static float *FN(packed)(int K, int N, const float *Bm, long ldb) {
    const int W = NB * VL;
    float *P = aligned_floats((size_t)K * N);
    if (P == NULL) return NULL;
    for (int j0 = 0; j0 < N; j0 += W) {
        const int w = N - j0 < W ? N - j0 : W;
        for (int k = 0; k < K; k++)
            __builtin_memcpy(P + (long)j0 * K + (long)k * w, Bm + k * ldb + j0,
                             (size_t)w * sizeof(float));
    }
    return P;
}

/* C[M][N] += A[M][K] @ Bm[K][N]: Bm and C row-major (leading dimensions ldb, ldc), A
 * strided as in block. K is taken in slices of at most 128 so that a column panel of Bm
 * (128 x NB VL floats) stays in L1 while every row block of A passes over it. It does
 * when the panels are read from P, Bm packed by packed(). Read in place, the rows of a
 * weight matrix lie 512 or 2,048 bytes apart (H = 128), so a panel fell into a quarter
 * of L1's sets or fewer and came again from L2 for every row block: the recurrent
 * products of a step, whose weights stay the same over the steps, take P; the others
 * (P NULL) read in place. Each output element sums over k in the same order either
 * way. With init (N floats), C = init + A @ Bm instead, without reading C: one pass
 * over C fewer. */
static void FN(gemm_acc)(int M, int N, int K, const float *A, long ars, long acs,
                         const float *Bm, long ldb, const float *P, float *C, long ldc,
                         const float *init) {
    const int W = NB * VL;
    for (int k0 = 0; k0 < K; k0 += 128) {
        const int kc = K - k0 < 128 ? K - k0 : 128;
        const float *Ak = A + k0 * acs;
        for (int j0 = 0; j0 < N; j0 += W) {
            const int w = N - j0 < W ? N - j0 : W;
            /* the panel of columns [j0, j0 + w) in this slice: its row k at Bp + k lb */
            const float *Bp = P ? P + (long)j0 * K + (long)k0 * w : Bm + k0 * ldb + j0;
            const long lb = P ? w : ldb;
            const float *in = init && k0 == 0 ? init + j0 : NULL;
            float *Cp = C + j0;
#define ROWS(NV, j)                                                                     \
    {                                                                                   \
        int i = 0;                                                                      \
        for (; i + RB <= M; i += RB)                                                    \
            FN(block)(RB, NV, kc, Ak + i * ars, ars, acs, Bp + (j), lb, Cp + i * ldc + (j), \
                      ldc, in ? in + (j) : NULL);                                       \
        for (; i < M; i++)                                                              \
            FN(block)(1, NV, kc, Ak + i * ars, ars, acs, Bp + (j), lb, Cp + i * ldc + (j), \
                      ldc, in ? in + (j) : NULL);                                       \
    }
            if (w == W) {
                ROWS(NB, 0)
                continue;
            }
            int j = 0;
            for (; j + VL <= w; j += VL) ROWS(1, j)
#undef ROWS
            for (; j < w; j++)
                for (int i = 0; i < M; i++) {
                    float s = in ? in[j] : Cp[i * ldc + j];
                    for (int k = 0; k < kc; k++) s += Ak[i * ars + k * acs] * Bp[k * lb + j];
                    Cp[i * ldc + j] = s;
                }
        }
    }
}
#undef RB
#undef NB

/* ------------------------------------------------------------------------------- LSTM */

/* The LSTM step with its products and gates in registers, for a group of VL hidden
 * units: FR rows (sequences) x the four gates' vectors of accumulators. AVX-512: 4 x 4
 * (16 accumulators, 21 of 32 registers); AVX2 and SSE: 2 x 4 (13 of 16). */
#if VL >= 16
#define FR 4
#else
#define FR 2
#endif

/* Whether lstm_forward takes the fused path: whole groups of VL units, few input
 * channels (one-hot inputs have 4 to 25; with 128, as after a convolution, the
 * separate products were faster, 45.8 against 49.4 ms with AVX2), and a group's packed
 * weights ((K + H) x 4 VL floats) within 40 KiB, so that they stay in L1 while every
 * row block passes over them. */
static inline int FN(lstm_fuses)(int K, int H) {
    return H % VL == 0 && K <= 32 && (long)(K + H) * 4 * VL * (long)sizeof(float) <= 40960;
}

/* The input and recurrent weights (wih (K, G), wt (H, G), transposed) and the bias,
 * packed for lstm_group: for each group u of VL units, (K + H) rows of the four gates'
 * VL weights side by side (rows 0..K-1 from wih, then wt), then after all groups the
 * bias likewise (4 VL floats a group). NULL if memory is short. */
static float *FN(lstm_fused_weights)(int K, int H, const float *wih, const float *wt,
                                     const float *bias) {
    const long G = 4L * H, U = H / VL, row = 4L * VL, per = (long)(K + H) * row;
    float *P = aligned_floats((size_t)(U * (per + row)));
    if (P == NULL) return NULL;
    for (long u = 0; u < U; u++) {
        for (int k = 0; k < K + H; k++) {
            const float *w = k < K ? wih + k * G : wt + (k - K) * G;
            for (int q = 0; q < 4; q++)
                __builtin_memcpy(P + u * per + k * row + q * VL, w + q * H + u * VL,
                                 VL * sizeof(float));
        }
        for (int q = 0; q < 4; q++)
            __builtin_memcpy(P + U * per + u * row + q * VL, bias + q * H + u * VL,
                             VL * sizeof(float));
    }
    return P;
}

/* One step of R <= FR rows for the group of VL units at j0: the gates' pre-activations
 * summed in registers in the order of lstm_forward's products (bias, the K input
 * terms, the H recurrent terms), then its gate pass, so the results are the same to
 * the bit. xr (R, K), hp (R, H): the rows' inputs and previous states; P, pb: the
 * group's packed weights and bias; cp, c, h: the rows' previous and new cell states and
 * new states; a: the rows' gates (R, G), not written when NULL (inference). */
static inline __attribute__((always_inline)) void FN(lstm_group)(
    int R, int K, int H, int j0, const float *xr, const float *hp, const float *P,
    const float *pb, const float *cp, float *a, float *c, float *h) {
    const long G = 4L * H;
    VF acc[FR][4];
    for (int r = 0; r < R; r++)
        for (int q = 0; q < 4; q++) acc[r][q] = FN(ld)(pb + q * VL);
#define TERMS(A, LDA, W, N)                                                        \
    for (int k = 0; k < (N); k++) {                                                \
        VF b[4];                                                                   \
        for (int q = 0; q < 4; q++) b[q] = FN(ld)((W) + k * 4 * VL + q * VL);     \
        for (int r = 0; r < R; r++) {                                              \
            const float av = (A)[r * (LDA) + k];                                   \
            for (int q = 0; q < 4; q++) acc[r][q] += av * b[q];                    \
        }                                                                          \
    }
    TERMS(xr, K, P, K)
    TERMS(hp, H, P + (long)K * 4 * VL, H)
#undef TERMS
    for (int r = 0; r < R; r++) {
        const VF i_ = FN(vsigm)(acc[r][0]), f = FN(vsigm)(acc[r][1]);
        const VF g = FN(vtanh)(acc[r][2]), o = FN(vsigm)(acc[r][3]);
        const VF cn = f * FN(ld)(cp + r * H + j0) + i_ * g;
        if (a != NULL) {
            float *ar = a + r * G + j0;
            FN(st)(ar, i_);
            FN(st)(ar + H, f);
            FN(st)(ar + 2 * H, g);
            FN(st)(ar + 3 * H, o);
        }
        FN(st)(c + r * H + j0, cn);
        FN(st)(h + r * H + j0, o * FN(vtanh)(cn));
    }
}

/* x (T, B, K) the inputs, wih (K, G) the input weights transposed, bias (G) both
 * biases. Each step's input projection is made in the step itself, into the storage
 * its gates take, where the recurrent product and the gate pass find it in cache:
 * projecting all steps first wrote (T, B, G) floats to memory and read them back, a
 * tenth of a training step. The sums are those of one product over all steps followed
 * by the recurrent one, so the results are the same to the bit. */
static void FN(lstm_forward)(int T, int B, int H, int K, const float *x, const float *wih,
                             const float *bias, const float *wt, float *hs, float *cs,
                             float *act, int keep, int rev) {
    const long G = 4L * H, BH = (long)B * H, BG = (long)B * G, BK = (long)B * K;
    /* Fused (P, see lstm_group): no pass over the gates' storage for the input
     * projection, none for the gate pass, and none at all without keep. LSTM on one-hot
     * DNA, 64 x 200 nt, hidden 128, one thread: forward 21.1 -> 18.5 ms in training,
     * and 67.4 -> 62.1 ms for 256 sequences in inference. */
    float *P = FN(lstm_fuses)(K, H) ? FN(lstm_fused_weights)(K, H, wih, wt, bias) : NULL;
    float *pwih = P ? NULL : FN(packed)(K, (int)G, wih, G);
    float *pwt = P ? NULL : FN(packed)(H, (int)G, wt, G);
    const long per = (long)(K + H) * 4 * VL, U = H / VL;
    for (int s = 0; s < T; s++) {
        const int t = rev ? T - 1 - s : s;
        float *a = act + (keep ? s * BG : 0);
        const float *cp = cs + (keep ? s : s % 2) * BH;
        float *c = cs + (keep ? s + 1 : (s + 1) % 2) * BH;
        const float *hp = hs + (t + rev) * BH;
        float *h = hs + (t + 1 - rev) * BH;
        if (P != NULL) {
            const float *xt = x + t * BK;
            for (long u = 0; u < U; u++) {
                const float *Pu = P + u * per, *pb = P + U * per + u * 4 * VL;
                const int j0 = (int)u * VL;
                int b = 0;
#define ROWS(R)                                                                          \
    FN(lstm_group)(R, K, H, j0, xt + b * K, hp + b * H, Pu, pb, cp + b * H,              \
                   keep ? a + b * G : NULL, c + b * H, h + b * H)
                for (; b + FR <= B; b += FR) ROWS(FR);
                for (; b < B; b++) ROWS(1);
#undef ROWS
            }
            continue;
        }
        FN(gemm_acc)(B, (int)G, K, x + t * BK, K, 1, wih, G, pwih, a, G, bias);
        FN(gemm_acc)(B, (int)G, H, hp, H, 1, wt, G, pwt, a, G, NULL);
        for (int b = 0; b < B; b++) {
            float *restrict ab = a + b * G;
            const float *restrict cpb = cp + b * H;
            float *restrict cb = c + b * H, *restrict hb = h + b * H;
#define BODY(T_, LD, ST, SG, TH)                                                    \
    {                                                                               \
        const T_ i_ = SG(LD(ab + j)), f = SG(LD(ab + H + j));                       \
        const T_ g = TH(LD(ab + 2 * H + j)), o = SG(LD(ab + 3 * H + j));            \
        const T_ cn = f * LD(cpb + j) + i_ * g;                                     \
        ST(ab + j, i_);                                                             \
        ST(ab + H + j, f);                                                          \
        ST(ab + 2 * H + j, g);                                                      \
        ST(ab + 3 * H + j, o);                                                      \
        ST(cb + j, cn);                                                             \
        ST(hb + j, o * TH(cn));                                                     \
    }
            ROW_LOOP(BODY)
#undef BODY
        }
    }
    free(P);
    free(pwih);
    free(pwt);
}

/* PIECES. The backward kernels sum the weight and bias gradients of each of P pieces of
 * the batch (rows cuts[p] to cuts[p + 1] - 1) into its own accumulator, dw + p G H and
 * the like, each in the order a call on that piece alone would sum it. The caller adds
 * the P accumulators in order, so one call over the whole batch gives the bits of P
 * calls on its pieces (run on P threads) whose gradients are added: training then has
 * the same results on one thread as on several. P = 1, cuts = {0, B}: one sum. */

/* Step t's gradients of the inputs and input weights, given the gradients of its gate
 * pre-activations d (B, G): dwih (K, G) += x[t]^T d, and, unless dx is NULL,
 * dx[t] (B, K) = d wih (wih (G, K) as stored). Made in the step, while d is in cache:
 * the gradients of all steps were written to memory and read back for two products
 * after the loop, about a seventh of a BiLSTM training step. */
static inline void FN(input_grads)(int B, int K, int G, const float *d, const float *x,
                                   const float *wih, const float *pwih, float *dx,
                                   float *dwih, int P, const int *cuts) {
    for (int p = 0; p < P; p++) /* each piece of the batch its own sum (see PIECES) */
        FN(gemm_acc)(K, G, cuts[p + 1] - cuts[p], x + (long)cuts[p] * K, 1, K,
                     d + (long)cuts[p] * G, G, NULL, dwih + (long)p * K * G, G, NULL);
    if (dx != NULL) {
        __builtin_memset(dx, 0, (size_t)B * K * sizeof(float));
        FN(gemm_acc)(B, K, G, d, G, 1, wih, K, pwih, dx, K, NULL);
    }
}

/* dout (T, B, H): gradient of the outputs, the row of step t and sequence b at dout +
 * t dts + b dbs (a slice of the joined directions' gradient is read in place); x (T, B, K) and wih (G, K): the layer's inputs
 * and input weights. Adds the gradients of the recurrent weights to dw (G, H), of the
 * input weights, transposed, to dwih (K, G), and of the biases (the sum of the gate
 * gradients over steps and sequences) to db (G); writes the gradient of x to dx
 * (T, B, K) unless dx is NULL. dpre holds two (B, G) steps of gate gradients, this
 * step's and the later one's; dh and dc are (B, H) work buffers. */
static void FN(lstm_backward)(int T, int B, int H, int K, const float *dout, long dts,
                              long dbs, const float *w,
                              const float *hs, const float *act, const float *cs,
                              const float *x, const float *wih, float *dx, float *dpre,
                              float *dw, float *dwih, float *db_sum, float *dh, float *dc,
                              int rev, int P, const int *cuts) {
    const long G = 4L * H, BH = (long)B * H, BG = (long)B * G, BK = (long)B * K;
    float *pw = FN(packed)((int)G, H, w, H), *pwih = dx ? FN(packed)((int)G, K, wih, K) : NULL;
    __builtin_memset(dc, 0, BH * sizeof(float));
    for (int s = T - 1; s >= 0; s--) {
        const int t = rev ? T - 1 - s : s;
        float *d = dpre + (s % 2) * BG;
        for (int b = 0; b < B; b++)
            __builtin_memcpy(dh + b * H, dout + t * dts + b * dbs, H * sizeof(float));
        if (s < T - 1) /* what reaches this step's state from step s + 1's gates */
            FN(gemm_acc)(B, H, (int)G, dpre + ((s + 1) % 2) * BG, G, 1, w, H, pw, dh, H, NULL);
        const float *a = act + s * BG, *cp = cs + s * BH, *c = cs + (s + 1) * BH;
        for (int b = 0, p = 0; b < B; b++) {
            while (b >= cuts[p + 1])
                p++;
            float *restrict dbp = db_sum + p * G;
            const float *restrict ab = a + b * G;
            const float *restrict cpb = cp + b * H, *restrict cb = c + b * H;
            const float *restrict dhb = dh + b * H;
            float *restrict dcb = dc + b * H, *restrict db = d + b * G;
#define BODY(T_, LD, ST, SG, TH)                                                    \
    {                                                                               \
        const T_ i_ = LD(ab + j), f = LD(ab + H + j);                               \
        const T_ g = LD(ab + 2 * H + j), o = LD(ab + 3 * H + j);                    \
        const T_ tc = TH(LD(cb + j)), dhj = LD(dhb + j);                            \
        const T_ dcj = LD(dcb + j) + dhj * o * (1.0f - tc * tc);                    \
        ST(db + j, dcj * g * i_ * (1.0f - i_));                                     \
        ST(db + H + j, dcj * LD(cpb + j) * f * (1.0f - f));                         \
        ST(db + 2 * H + j, dcj * i_ * (1.0f - g * g));                              \
        ST(db + 3 * H + j, dhj * tc * o * (1.0f - o));                              \
        ST(dcb + j, dcj * f); /* what reaches c[t - 1] */                           \
    }
            ROW_LOOP(BODY)
#undef BODY
            for (long i = 0; i < G; i++) dbp[i] += db[i];
        }
        /* dw += d^T (the state step s started from), piece by piece */
        for (int p = 0; p < P; p++)
            FN(gemm_acc)((int)G, H, cuts[p + 1] - cuts[p], d + cuts[p] * G, 1, G,
                         hs + (t + rev) * BH + (long)cuts[p] * H, H, NULL, dw + p * G * H, H,
                         NULL);
        FN(input_grads)(B, K, (int)G, d, x + t * BK, wih, pwih, dx ? dx + t * BK : NULL,
                        dwih, P, cuts);
    }
    free(pw);
    free(pwih);
}

/* -------------------------------------------------------------------------------- GRU */

/* x (T, B, K) the inputs, wih (K, G) the input weights transposed, bih (G) their bias;
 * each step's input projection is made in the step, as in lstm_forward. rz (T, B, 2H),
 * n (T, B, H), hgn (T, B, H): gates, candidates and the candidate's recurrent projection
 * W_hn h + b_hn, kept for the backward pass (one step's worth when keep = 0). hg and xw
 * are (B, 3H) work buffers. */
static void FN(gru_forward)(int T, int B, int H, int K, const float *x, const float *wih,
                            const float *bih, const float *wt, const float *bhh, float *hs,
                            float *rz, float *n, float *hgn, float *hg, float *xw, int keep,
                            int rev) {
    const long G = 3L * H, BH = (long)B * H, BK = (long)B * K;
    float *pwih = FN(packed)(K, (int)G, wih, G), *pwt = FN(packed)(H, (int)G, wt, G);
    for (int s = 0; s < T; s++) {
        const int t = rev ? T - 1 - s : s;
        const long k = keep ? s : 0;
        const float *hp = hs + (t + rev) * BH;
        float *h = hs + (t + 1 - rev) * BH;
        FN(gemm_acc)(B, (int)G, K, x + t * BK, K, 1, wih, G, pwih, xw, G, bih); /* b_ih + x W^T */
        FN(gemm_acc)(B, (int)G, H, hp, H, 1, wt, G, pwt, hg, G, bhh); /* hg = b_hh + h W^T */
        for (int b = 0; b < B; b++) {
            const float *restrict xb = xw + b * G, *restrict gb = hg + b * G;
            const float *restrict hpb = hp + b * H;
            float *restrict rzb = rz + k * 2 * BH + b * 2L * H;
            float *restrict nb = n + k * BH + b * H, *restrict hnb = hgn + k * BH + b * H;
            float *restrict hb = h + b * H;
#define BODY(T_, LD, ST, SG, TH)                                                    \
    {                                                                               \
        const T_ r = SG(LD(xb + j) + LD(gb + j));                                   \
        const T_ z = SG(LD(xb + H + j) + LD(gb + H + j));                           \
        const T_ hn = LD(gb + 2 * H + j);                                           \
        const T_ nn = TH(LD(xb + 2 * H + j) + r * hn);                              \
        ST(rzb + j, r);                                                             \
        ST(rzb + H + j, z);                                                         \
        ST(nb + j, nn);                                                             \
        ST(hnb + j, hn);                                                            \
        ST(hb + j, nn + z * (LD(hpb + j) - nn));                                    \
    }
            ROW_LOOP(BODY)
#undef BODY
        }
    }
    free(pwih);
    free(pwt);
}

/* x (T, B, K) and wih (G, K): the layer's inputs and input weights. Adds the
 * gradients of the recurrent weights and bias to dw (3H, H) and db_hh (3H), of the input
 * weights, transposed, and bias to dwih (K, 3H) and db_ih (3H); writes the gradient of
 * x to dx (T, B, K) unless dx is NULL. dxw (B, 3H), the gradient of one step's input
 * projections, dhg (B, 3H), that of its recurrent projections, dh and carry (B, H)
 * are work buffers. */
static void FN(gru_backward)(int T, int B, int H, int K, const float *dout, long dts,
                             long dbs, const float *w,
                             const float *hs, const float *rz, const float *n,
                             const float *hgn, const float *x, const float *wih,
                             float *dx, float *dw, float *dwih, float *db_ih, float *db_hh,
                             float *dxw, float *dhg, float *dh, float *carry, int rev,
                             int P, const int *cuts) {
    const long G = 3L * H, BH = (long)B * H, BK = (long)B * K;
    float *pw = FN(packed)((int)G, H, w, H), *pwih = dx ? FN(packed)((int)G, K, wih, K) : NULL;
    __builtin_memset(carry, 0, BH * sizeof(float));
    for (int s = T - 1; s >= 0; s--) {
        const int t = rev ? T - 1 - s : s;
        const float *hp = hs + (t + rev) * BH;
        for (int b = 0; b < B; b++)
            for (int j = 0; j < H; j++)
                dh[b * H + j] = dout[t * dts + b * dbs + j] + carry[b * H + j];
        for (int b = 0, p = 0; b < B; b++) {
            while (b >= cuts[p + 1])
                p++;
            const float *restrict rzb = rz + s * 2 * BH + b * 2L * H;
            const float *restrict nb = n + s * BH + b * H, *restrict hnb = hgn + s * BH + b * H;
            const float *restrict hpb = hp + b * H, *restrict dhb = dh + b * H;
            float *restrict dxb = dxw + b * G, *restrict dgb = dhg + b * G;
            float *restrict cb = carry + b * H;
#define BODY(T_, LD, ST, SG, TH)                                                    \
    {                                                                               \
        const T_ r = LD(rzb + j), z = LD(rzb + H + j), nn = LD(nb + j);             \
        const T_ g = LD(dhb + j);                                                   \
        const T_ dnp = g * (1.0f - z) * (1.0f - nn * nn);                           \
        const T_ dr = dnp * LD(hnb + j) * r * (1.0f - r);                           \
        const T_ dz = g * (LD(hpb + j) - nn) * z * (1.0f - z);                      \
        ST(dxb + j, dr);                                                            \
        ST(dxb + H + j, dz);                                                        \
        ST(dxb + 2 * H + j, dnp);                                                   \
        ST(dgb + j, dr);                                                            \
        ST(dgb + H + j, dz);                                                        \
        ST(dgb + 2 * H + j, dnp * r);                                               \
        ST(cb + j, g * z);                                                          \
    }
            ROW_LOOP(BODY)
#undef BODY
            for (long i = 0; i < G; i++) db_hh[p * G + i] += dgb[i];
            for (long i = 0; i < G; i++) db_ih[p * G + i] += dxb[i];
        }
        /* dw += dhg^T (the state step s started from), piece by piece; then what
         * reaches that state through the projections */
        for (int p = 0; p < P; p++)
            FN(gemm_acc)((int)G, H, cuts[p + 1] - cuts[p], dhg + cuts[p] * G, 1, G,
                         hp + (long)cuts[p] * H, H, NULL, dw + p * G * H, H, NULL);
        FN(gemm_acc)(B, H, (int)G, dhg, G, 1, w, H, pw, carry, H, NULL);
        FN(input_grads)(B, K, (int)G, dxw, x + t * BK, wih, pwih, dx ? dx + t * BK : NULL,
                        dwih, P, cuts);
    }
    free(pw);
    free(pwih);
}

/* ------------------------------------------------------------------------ convolution */

/* One convolution of the cnn backbones in inference, with its batch norm folded into
 * scale and shift and the ReLU after it:
 *   out[b][t][f] = max(0, scale[f] (sum over k, c of x[b][t + k dil - padl][c]
 *                  w[k C + c][f]) + shift[f])                for t < len[b], else 0,
 * an input position outside [0, len[b]) counting as 0 (the border padding and the
 * batch's padding alike). x (B, L, C), w (Kw C, F), out (B, L, F), row-major; cols is
 * scratch for conv_rows(Kw C) x Kw C floats. The windows of conv_rows positions are
 * copied side by side and multiplied by w in one product. Each output sums over
 * (k, c) in one order whatever its sequence's company, the batch's width or the rows
 * it is multiplied with, so a sequence's values do not depend on what it is batched
 * with. Kw C fits an int (the callers check); positions are computed in long. */
static void FN(conv_forward)(int B, int L, int C, int F, int Kw, long dil, long padl,
                             const float *x, const int *len, const float *w,
                             const float *scale, const float *shift, float *cols,
                             float *out) {
    const int KC = Kw * C;
    const int rows = conv_rows(KC);
    float *P = FN(packed)(KC, F, w, F);
    for (int b = 0; b < B; b++) {
        const int n = len[b] < 0 ? 0 : (len[b] < L ? len[b] : L);
        const float *xb = x + (long)b * L * C;
        float *ob = out + (long)b * L * F;
        for (int t0 = 0; t0 < n; t0 += rows) {
            const int m = n - t0 < rows ? n - t0 : rows;
            for (int i = 0; i < m; i++) {
                float *row = cols + (long)i * KC;
                for (int k = 0; k < Kw; k++) {
                    const long p = (long)t0 + i + k * dil - padl;
                    if (p >= 0 && p < n)
                        __builtin_memcpy(row + (long)k * C, xb + p * C, (size_t)C * sizeof(float));
                    else
                        __builtin_memset(row + (long)k * C, 0, (size_t)C * sizeof(float));
                }
            }
            float *o = ob + (long)t0 * F;
            __builtin_memset(o, 0, (size_t)m * F * sizeof(float));
            FN(gemm_acc)(m, F, KC, cols, KC, 1, w, F, P, o, F, NULL);
            for (long i = 0; i < (long)m * F; i += F)
                for (int f = 0; f < F; f++) {
                    const float v = o[i + f] * scale[f] + shift[f];
                    o[i + f] = v > 0.0f ? v : 0.0f;
                }
        }
        __builtin_memset(ob + (long)n * F, 0, (size_t)(L - n) * F * sizeof(float));
    }
    free(P);
}

#undef FR
#undef VF
#undef VI
#undef SLD
#undef SST
#undef VLD
#undef VST
#undef ROW_LOOP
#undef FN
#undef CAT
#undef CAT_
