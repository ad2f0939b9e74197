/* Fused CPU kernels for LSTM and GRU layers: the whole time loop of one direction in C;
 * and one convolution with its batch norm and ReLU, for inference.
 *
 * Python (bioseqnn/models/native.py) calls these through ctypes, which releases the GIL,
 * so the directions and batch slices that runtime.run_concurrently hands to its worker
 * threads run truly in parallel. Each step is two register-blocked matrix products
 * (the step's inputs times the input weights, then the hidden state times the recurrent
 * weights, added to it) and one fused pass over the gates; the backward step likewise
 * makes its own products for the weights' and inputs' gradients.
 *
 * The file is built as an optional extension module (setup.py); when it is missing,
 * bioseqnn falls back to kernels written with torch operations. The module itself has
 * no Python functions: it is loaded with ctypes.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

/* exp on the reduced range: x = n ln2 + r with |r| <= ln2 / 2, exp(r) by the classic
 * degree-6 minimax polynomial of Cephes' expf, 2^n put straight into the exponent bits.
 * Plain arithmetic, the same in the vector form (rnn_impl.h), and independent of the C
 * library. The scalar form serves the last H mod VL units of each row. */
static inline __attribute__((always_inline)) float exp_(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const int bits = ((int)n + 127) << 23;
    float scale;
    __builtin_memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline __attribute__((always_inline)) float sigm(float x) {
    return 1.0f / (1.0f + exp_(-x));
}

static inline __attribute__((always_inline)) float tanh_(float x) {
    return 2.0f * sigm(2.0f * x) - 1.0f;
}

/* Storage for n floats, 64-byte aligned (whole vectors and cache lines), or NULL when n
 * is 0 or memory is short; freed with free(). */
static float *aligned_floats(size_t n) {
    const size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    return bytes ? aligned_alloc(64, bytes) : NULL;
}

/* Positions a convolution's product takes at once, their windows side by side: 96, or
 * fewer where Kw C inputs a position would take more than the 240 KiB of 96 of the
 * default network's second layer (5 x 128), at least one. */
static inline int conv_rows(int KC) {
    const int most = 96 * 640 / (KC > 0 ? KC : 1);
    return most < 1 ? 1 : (most > 96 ? 96 : most);
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define MULTI_ISA 1

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512dq,fma,avx2")
#define VL 16
#define SUFFIX _avx512
#include "rnn_impl.h"
#undef VL
#undef SUFFIX
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define VL 8
#define SUFFIX _avx2
#include "rnn_impl.h"
#undef VL
#undef SUFFIX
#pragma GCC pop_options
#endif

#define VL 4
#define SUFFIX _base
#include "rnn_impl.h"
#undef VL
#undef SUFFIX

static int isa = -1; /* 2: AVX-512, 1: AVX2 + FMA, 0: baseline */

/* Called first by bsnn_isa() from one thread (native.py does so when it loads the
 * library): the CPU-feature probe must not run from two threads at once. */
static int pick_isa(void) {
    if (isa < 0) {
        int found = 0;
#ifdef MULTI_ISA
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
            __builtin_cpu_supports("avx512dq"))
            found = 2;
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
            found = 1;
#endif
        /* BIOSEQNN_ISA=avx2 or baseline: a narrower instruction set than the CPU's
         * (to measure what a CPU without AVX-512 gets); never a wider one. */
        const char *want = getenv("BIOSEQNN_ISA");
        if (want != NULL && strcmp(want, "avx2") == 0 && found > 1)
            found = 1;
        else if (want != NULL && strcmp(want, "baseline") == 0)
            found = 0;
        isa = found;
    }
    return isa;
}

#ifdef MULTI_ISA
#define DISPATCH(name, ...)                          \
    switch (pick_isa()) {                            \
    case 2: name##_avx512(__VA_ARGS__); break;       \
    case 1: name##_avx2(__VA_ARGS__); break;         \
    default: name##_base(__VA_ARGS__);               \
    }
#else
#define DISPATCH(name, ...) name##_base(__VA_ARGS__)
#endif

#define EXPORT __attribute__((visibility("default")))

EXPORT int bsnn_isa(void) { return pick_isa(); }

/* A version number, bumped whenever a signature changes. */
EXPORT int bsnn_abi(void) { return 11; }

EXPORT void bsnn_lstm_forward(int T, int B, int H, int K, const float *x, const float *wih,
                              const float *bias, const float *wt, float *hs, float *cs,
                              float *act, int keep, int rev) {
    DISPATCH(lstm_forward, T, B, H, K, x, wih, bias, wt, hs, cs, act, keep, rev);
}

EXPORT void bsnn_lstm_backward(int T, int B, int H, int K, const float *dout, long dts, long dbs,
                               const float *w,
                               const float *hs, const float *act, const float *cs,
                               const float *x, const float *wih, float *dx, float *dpre,
                               float *dw, float *dwih, float *db, float *dh, float *dc,
                               int rev, int P, const int *cuts) {
    DISPATCH(lstm_backward, T, B, H, K, dout, dts, dbs, w, hs, act, cs, x, wih, dx, dpre, dw, dwih, db,
             dh, dc, rev, P, cuts);
}

EXPORT void bsnn_gru_forward(int T, int B, int H, int K, const float *x, const float *wih,
                             const float *bih, const float *wt, const float *bhh, float *hs,
                             float *rz, float *n, float *hgn, float *hg, float *xw, int keep,
                             int rev) {
    DISPATCH(gru_forward, T, B, H, K, x, wih, bih, wt, bhh, hs, rz, n, hgn, hg, xw, keep, rev);
}

EXPORT void bsnn_gru_backward(int T, int B, int H, int K, const float *dout, long dts, long dbs,
                              const float *w,
                              const float *hs, const float *rz, const float *n,
                              const float *hgn, const float *x, const float *wih, float *dx,
                              float *dw, float *dwih, float *db_ih, float *db_hh, float *dxw,
                              float *dhg, float *dh, float *carry, int rev, int P,
                              const int *cuts) {
    DISPATCH(gru_backward, T, B, H, K, dout, dts, dbs, w, hs, rz, n, hgn, x, wih, dx, dw, dwih, db_ih,
             db_hh, dxw, dhg, dh, carry, rev, P, cuts);
}

/* The scratch floats bsnn_conv_forward takes for Kw C inputs a position. */
EXPORT long bsnn_conv_scratch(int Kw, int C) { return (long)conv_rows(Kw * C) * Kw * C; }

EXPORT void bsnn_conv_forward(int B, int L, int C, int F, int Kw, long dil, long padl,
                              const float *x, const int *len, const float *w,
                              const float *scale, const float *shift, float *cols,
                              float *out) {
    DISPATCH(conv_forward, B, L, C, F, Kw, dil, padl, x, len, w, scale, shift, cols, out);
}

/* A batch norm in inference as the scale and shift conv_forward applies:
 * scale = weight / sqrt(var + eps), shift = bias - mean scale, in float32. */
EXPORT void bsnn_norm_fold(int F, const float *weight, const float *bias, const float *mean,
                           const float *var, float eps, float *scale, float *shift) {
    for (int f = 0; f < F; f++) {
        scale[f] = weight[f] / sqrtf(var[f] + eps);
        shift[f] = bias[f] - mean[f] * scale[f];
    }
}

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rnn",
    "Fused LSTM/GRU and convolution CPU kernels (loaded with ctypes; see bioseqnn/kernels.py).",
    -1, NULL,
};

PyMODINIT_FUNC PyInit__rnn(void) { return PyModule_Create(&module); }
