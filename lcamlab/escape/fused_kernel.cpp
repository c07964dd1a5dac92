// The fused escape step: gradient, optimizer update and escape check in one pass over a tile of trials.
//
// Built by lcamlab/escape/fused.py with the system C++ compiler (no torch headers: a plain C ABI
// called through ctypes). One call advances every trial by `steps` iterations. Trials are processed
// in tiles of W lanes; a tile's state (parameters, optimizer moments) stays in L1 for all `steps`
// iterations, and the loops over lanes are written so that the compiler vectorises them across
// trials (one SIMD lane per trial). The random stream is either a counter-based Philox4x32-10
// keyed by (seed) with counter (step, phase, trial id, word) -- every trial's randomness is a pure
// function of its id and the step, so dropping escaped trials or resuming changes nothing -- or
// pre-drawn sample indices (the eager runner's torch stream, for the parity test). Tiles are
// independent, so one call splits them over `threads` worker threads with identical results. With
// AVX-512 (and float) the two steps the compiler vectorised worst have hand-written paths: the sampled
// rows are loaded whole and transposed in registers, and Philox multiplies with vpmuludq.
//
// The arithmetic of every optimizer follows lcamlab.optim / torch.optim operation by operation
// (see fused.py), so on the same stream and in float64 the fused runner reproduces the eager
// runner's escape steps.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <algorithm>
#include <limits>
#include <thread>
#include <vector>
#if defined(__AVX512F__)
#include <immintrin.h>
#define ESC_AVX512 1
#endif

namespace {

constexpr int W = 32;       // lanes (trials) per tile: two 16-lane registers (measured 1.07x against one)
constexpr int MAXD = 16;    // largest dimension
constexpr int MAXB = 8;     // largest mini-batch
constexpr int RING = 32;    // kick history per trial (power of two)

enum Kind { SGD = 0, LCAM = 1, ADAM = 2, ADAI = 3, ADAREM = 4, BERNOULLI = 5 };
enum Arm { DATA = 0, GAUSS = 1, ISO = 2 };

}  // namespace

extern "C" {

struct EscapeArgs {
    // sizes
    int64_t n;            // trials in this call
    int64_t dim;
    int64_t n_samples;
    int64_t batch;
    int64_t steps;        // iterations in this call
    int64_t t0;           // main-run step index of the first iteration (0-based); warm-up: its own index
    int64_t frozen;       // 1: warm-up (parameters held at the start point, no escape check)
    int64_t kind;
    int64_t arm;
    int64_t stream;       // 0: philox, 1: given indices
    int64_t diagnostics;  // 1: record kicks
    int64_t window;       // kick window (<= RING)
    uint64_t seed;
    // optimizer settings
    double lr, beta, beta_below, beta_above, beta1, beta2, eps, beta0, lam_t, kick_threshold;
    int64_t opt_step;      // optimizer steps taken before this call (Adam / Adai bias corrections)
    int64_t epoch_count;   // LCAM: losses already in this epoch's mean before this call
    int64_t epoch_length;  // LCAM: reset the mean every so many main-run steps (0: never)
    int64_t has_decision;  // LCAM: 0 before the very first step (initial momentum)
    double initial_momentum;
    // landscape (per coordinate) and data
    const void* data;          // (n_samples, dim) in T
    const double* moments;     // (dim, 3): m1, m2, m3
    const double* cov;         // (dim, 6): C11, C22, C33, C12, C13, C23 (covariances of x, x^2, x^3)
    const double* iso_sd;      // (dim,)
    const void* offset;        // (dim,) boundary * direction, in T
    const void* direction;     // (dim,) in T
    const int64_t* indices;    // stream == 1: (steps, n, batch)
    // per-trial arrays (length n; state arrays are (dim, n))
    const void* root;          // sqrt(k), T
    const int64_t* trial_id;
    const int64_t* budget;     // per-trial censoring step
    int64_t* escape_step;      // 0: not (yet) escaped
    void* theta;               // (dim, n) T
    void* buf1;                // momentum buffer / exp_avg / m          (dim, n) T
    void* buf2;                // exp_avg_sq / v                          (dim, n) T
    void* buf3;                // Adai: beta1 product                     (dim, n) T
    double* loss_sum;          // LCAM (n,)
    uint8_t* below;            // LCAM decision (n,)
    const double* momentum;    // SGD: per-trial momentum (n,) or null (use beta); BERNOULLI: p_below (n,)
    double* momentum_sum;      // sum of the momentum used before escape (n,) or null
    double* below_steps;       // LCAM / BERNOULLI: steps at the below value before escape (n,) or null
    float* ring;               // (n, RING) kicks
    float* kick_at_escape;     // (n,) largest kick in the window before the escape
    int64_t* kick_lag;         // (n,) steps from that kick to the escape
    double* kick_count;        // (n,) steps before escape with a kick above the threshold
    int64_t* first_flag;       // (n,) SGD/BERNOULLI/LCAM: 0 until the momentum buffer exists
    int64_t threads;           // worker threads (<= 1: the calling thread only)
};

}  // extern "C"

namespace {

inline void philox(uint32_t& c0, uint32_t& c1, uint32_t& c2, uint32_t& c3, uint32_t k0, uint32_t k1) {
#pragma GCC unroll 10
    for (int r = 0; r < 10; ++r) {
        const uint64_t p0 = (uint64_t)0xD2511F53u * c0;
        const uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
        const uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        const uint32_t n1 = (uint32_t)p1;
        const uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        const uint32_t n3 = (uint32_t)p0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
    }
}

// Vectorisable log and sin/cos for the Box-Muller normals (Cephes-style polynomials, float accuracy).
inline float fast_log(float x) {  // x in (0, 1]
    uint32_t bits; std::memcpy(&bits, &x, 4);
    int e = (int)((bits >> 23) & 0xff) - 126;
    bits = (bits & 0x007fffffu) | 0x3f000000u;  // mantissa in [0.5, 1)
    float m; std::memcpy(&m, &bits, 4);
    if (m < 0.70710678f) { e -= 1; m = m + m - 1.0f; } else { m = m - 1.0f; }
    const float z = m * m;
    float y = 7.0376836292e-2f;
    y = y * m - 1.1514610310e-1f; y = y * m + 1.1676998740e-1f; y = y * m - 1.2420140846e-1f;
    y = y * m + 1.4249322787e-1f; y = y * m - 1.6668057665e-1f; y = y * m + 2.0000714765e-1f;
    y = y * m - 2.4999993993e-1f; y = y * m + 3.3333331174e-1f;
    y = y * m * z;
    y += -2.12194440e-4f * (float)e;
    y += -0.5f * z;
    return m + y + 0.693359375f * (float)e;
}

inline void fast_sincos_2pi(float u, float& sn, float& cs) {  // angle 2*pi*u, u in [0, 1)
    // reduce to [-pi/4, pi/4] by octant
    float x8 = u * 8.0f;
    int q = (int)x8;                    // octant 0..7
    float r = (x8 - (float)q - 0.5f) * 0.78539816339f;  // offset within the octant, |r| <= pi/8
    // angle = (q + 0.5) * pi/4 + r; use the exact sin/cos of the octant centre
    const float z = r * r;
    float s = ((-1.9515295891e-4f * z + 8.3321608736e-3f) * z - 1.6666654611e-1f) * z * r + r;
    float c = ((2.443315711809948e-5f * z - 1.388731625493765e-3f) * z + 4.166664568298827e-2f) * z * z
              - 0.5f * z + 1.0f;
    // sin and cos of the octant centres (q + 0.5) pi / 4 (a table: gathers vectorise, a switch does not)
    static const float SC[8] = {0.38268343236f, 0.92387953251f, 0.92387953251f, 0.38268343236f,
                                -0.38268343236f, -0.92387953251f, -0.92387953251f, -0.38268343236f};
    static const float CC[8] = {0.92387953251f, 0.38268343236f, -0.38268343236f, -0.92387953251f,
                                -0.92387953251f, -0.38268343236f, 0.38268343236f, 0.92387953251f};
    const float sc = SC[q & 7], cc = CC[q & 7];
    sn = sc * c + cc * s;
    cs = cc * c - sc * s;
}


// The sampled rows as columns, x[c][w] = data[idx[w] * D + c] for c < D: one vector of lanes per
// coordinate (with AVX-512 and float, the specialisation below).
template <typename T>
inline void load_columns(const T* data, int64_t D, const int32_t* idx, T (*x)[W]) {
    for (int64_t c = 0; c < D; ++c)
#pragma omp simd
        for (int w = 0; w < W; ++w) x[c][w] = data[(int64_t)idx[w] * D + c];
}

#ifdef ESC_AVX512
static_assert(W % 16 == 0, "the AVX-512 paths work on 16-lane registers");

// Sixteen row loads and a 16x16 transpose in registers (64 shuffles) instead of D gathers: measured
// 1.2x on the whole SGD step (vgatherdps is slow on this machine's AMD EPYC).
template <>
inline void load_columns<float>(const float* data, int64_t D, const int32_t* idx, float (*x)[W]) {
    const __mmask16 m = (__mmask16)((1u << D) - 1u);
    for (int h = 0; h < W; h += 16) {
        __m512 r[16], t[16];
        for (int w = 0; w < 16; ++w) r[w] = _mm512_maskz_loadu_ps(m, data + (int64_t)idx[h + w] * D);
        for (int i = 0; i < 16; i += 2) {
            t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
            t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
        }
        for (int i = 0; i < 16; i += 4) {
            r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
            r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
            r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
            r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
        }
        for (int i = 0; i < 4; ++i) {
            t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
            t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
            t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
            t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
        }
        for (int i = 0; i < 8; ++i) {
            r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
            r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
        }
        for (int c = 0; c < D; ++c) _mm512_store_ps(x[c] + h, r[c]);  // r[c]: coordinate c of the 16 rows
    }
}

// Philox4x32-10 on 16 lanes, the same function as philox() above: the high words of the 32x32-bit
// products come from two vpmuludq (even and odd lanes). GCC's vectorisation of the scalar version widens
// to 64-bit lanes and multiplies with vpmullq; this is measured 1.15x on the whole SGD step.
inline __m512i mulhi_u32(__m512i a, __m512i m) {
    const __m512i even = _mm512_mul_epu32(a, m);
    const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);
    return _mm512_mask_blend_epi32((__mmask16)0xAAAA, _mm512_srli_epi64(even, 32), odd);
}
inline void philox16(__m512i& c0, __m512i& c1, __m512i& c2, __m512i& c3, uint32_t k0, uint32_t k1) {
    const __m512i M0 = _mm512_set1_epi64(0xD2511F53u), M1 = _mm512_set1_epi64(0xCD9E8D57u);
    const __m512i L0 = _mm512_set1_epi32((int)0xD2511F53u), L1 = _mm512_set1_epi32((int)0xCD9E8D57u);
    for (int r = 0; r < 10; ++r) {
        const __m512i h0 = mulhi_u32(c0, M0), h1 = mulhi_u32(c2, M1);
        const __m512i l0 = _mm512_mullo_epi32(c0, L0), l1 = _mm512_mullo_epi32(c2, L1);
        const __m512i n0 = _mm512_xor_si512(_mm512_xor_si512(h1, c1), _mm512_set1_epi32((int)k0));
        const __m512i n2 = _mm512_xor_si512(_mm512_xor_si512(h0, c3), _mm512_set1_epi32((int)k1));
        c0 = n0; c1 = l1; c2 = n2; c3 = l0;
        k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
    }
}
#endif

template <typename T>
struct Tile {
    T th[MAXD][W], b1[MAXD][W], b2[MAXD][W], b3[MAXD][W];
    T root[W];
    int64_t id[W], budget[W], esc[W], first[W];
    double lsum[W], mom[W], msum[W], bsteps[W], kcount[W];
    uint8_t below[W];
    float ring[RING][W];
    float kesc[W];
    int64_t klag[W];
};

// The mini-batch indices of main-run (or warm-up) step t for a tile's lanes: the Philox stream, or the
// eager runner's pre-drawn block (row st of it).
inline void draw_indices(const EscapeArgs& a, int64_t t, int64_t i0, int64_t lanes, int64_t st,
                         const uint32_t* id32, uint32_t phase, uint32_t k0, uint32_t k1, int32_t (*out)[W]) {
    const int64_t B = a.batch, n = a.n;
    if (a.stream == 1) {
        for (int64_t b = 0; b < B; ++b)
            for (int w = 0; w < W; ++w) {
                const int64_t i = i0 + std::min<int64_t>(w, lanes - 1);
                out[b][w] = (int32_t)a.indices[(st * n + i) * B + b];
            }
        return;
    }
    const uint64_t ns = (uint64_t)a.n_samples;
    const uint32_t tlo = (uint32_t)t, thi = (uint32_t)((uint64_t)t >> 32) ^ phase;
#ifdef ESC_AVX512
    const __m512i nsv = _mm512_set1_epi64(ns);
    for (int h = 0; h < W; h += 16)
        for (int64_t b = 0; b < B; ++b) {
            __m512i c0 = _mm512_set1_epi32((int)tlo), c1 = _mm512_set1_epi32((int)thi),
                    c2 = _mm512_loadu_si512(id32 + h), c3 = _mm512_set1_epi32((int)b);
            philox16(c0, c1, c2, c3, k0, k1);
            _mm512_storeu_si512(out[b] + h, mulhi_u32(c0, nsv));  // the index: (c0 * n_samples) >> 32
        }
#else
    for (int64_t b = 0; b < B; ++b) {
#pragma omp simd
        for (int w = 0; w < W; ++w) {
            uint32_t c0 = tlo, c1 = thi, c2 = id32[w], c3 = (uint32_t)b;
            philox(c0, c1, c2, c3, k0, k1);
            out[b][w] = (int32_t)(((uint64_t)c0 * ns) >> 32);
        }
    }
#endif
}

template <typename T, int KIND, int ARM, bool DIAG, bool B1, bool PLAIN>
void run_tile(const EscapeArgs& a, int64_t i0, int64_t lanes) {
    const int64_t n = a.n, D = a.dim, B = a.batch;
    const T* __restrict data = (const T*)a.data;
    const T* off = (const T*)a.offset;
    const T* dir = (const T*)a.direction;
    T* theta = (T*)a.theta;
    T* buf1 = (T*)a.buf1;
    T* buf2 = (T*)a.buf2;
    T* buf3 = (T*)a.buf3;
    const T* rootp = (const T*)a.root;
    const bool frozen = a.frozen != 0;
    Tile<T> s;
    uint32_t id32[W];
    // load (lanes beyond `lanes` copy the last real one and are never stored)
    for (int w = 0; w < W; ++w) {
        int64_t i = i0 + std::min<int64_t>(w, lanes - 1);
        s.root[w] = rootp[i];
        s.id[w] = a.trial_id[i];
        id32[w] = (uint32_t)a.trial_id[i];
        s.budget[w] = a.budget[i];
        s.esc[w] = w < lanes ? a.escape_step[i] : 1;  // padding lanes count as escaped
        s.first[w] = a.first_flag ? a.first_flag[i] : 1;
        s.lsum[w] = a.loss_sum ? a.loss_sum[i] : 0.0;
        s.below[w] = a.below ? a.below[i] : 0;
        s.mom[w] = a.momentum ? a.momentum[i] : a.beta;
        s.msum[w] = a.momentum_sum ? a.momentum_sum[i] : 0.0;
        s.bsteps[w] = a.below_steps ? a.below_steps[i] : 0.0;
        s.kcount[w] = a.kick_count ? a.kick_count[i] : 0.0;
        s.kesc[w] = a.kick_at_escape ? a.kick_at_escape[i] : 0.0f;
        s.klag[w] = a.kick_lag ? a.kick_lag[i] : 0;
        for (int r = 0; r < RING; ++r) s.ring[r][w] = (DIAG && a.ring) ? a.ring[i * RING + r] : 0.0f;
        for (int64_t c = 0; c < D; ++c) {
            s.th[c][w] = theta[c * n + i];
            s.b1[c][w] = buf1 ? buf1[c * n + i] : T(0);
            s.b2[c][w] = buf2 ? buf2[c * n + i] : T(0);
            s.b3[c][w] = buf3 ? buf3[c * n + i] : T(1);
        }
    }
    const uint32_t k0 = (uint32_t)a.seed, k1 = (uint32_t)(a.seed >> 32);
    const uint32_t phase = frozen ? 0x40000000u : 0u;
    int64_t epoch_count = a.epoch_count;
    bool has_decision = a.has_decision != 0;
    T cm1[MAXD], cm2[MAXD], cm3[MAXD], cc[MAXD][6], ciso[MAXD];
    for (int64_t c = 0; c < D; ++c) {
        cm1[c] = (T)a.moments[c * 3]; cm2[c] = (T)a.moments[c * 3 + 1]; cm3[c] = (T)a.moments[c * 3 + 2];
        for (int j = 0; j < 6; ++j) cc[c][j] = (T)a.cov[c * 6 + j];
        ciso[c] = (T)(a.iso_sd[c] / std::sqrt((double)B));
    }
    const T invB = T(1) / T(B);
    const T lr = (T)a.lr;
    const int32_t D32 = (int32_t)D;
    for (int64_t st = 0; st < a.steps; ++st) {
        const int64_t t = a.t0 + st;
        const int64_t opt_t = a.opt_step + st + 1;  // this step's optimizer step count (1-based)
        const uint32_t tlo = (uint32_t)t, thi = (uint32_t)((uint64_t)t >> 32) ^ phase;
        // LCAM: a new epoch starts at main-run steps that are multiples of the epoch length
        if (KIND == LCAM && !frozen && a.epoch_length > 0 && t % a.epoch_length == 0) {
            epoch_count = 0;
            for (int w = 0; w < W; ++w) s.lsum[w] = 0.0;
        }
        // ---- randomness of this step
        int32_t idx[MAXB][W];
        T z[MAXD][W];
        float ubern[W];
        if (ARM == DATA) {
            draw_indices(a, t, i0, lanes, st, id32, phase, k0, k1, idx);
        } else {
            for (int64_t c4 = 0; c4 < D; c4 += 4) {
                float zz[4][W];
#pragma omp simd
                for (int w = 0; w < W; ++w) {
                    uint32_t c0 = tlo, c1 = thi, c2 = id32[w], c3 = (uint32_t)(0x100 + c4);
                    philox(c0, c1, c2, c3, k0, k1);
                    // two Box-Muller pairs from four 32-bit words (24-bit uniforms: |z| <= 5.8)
                    const float u1 = ((float)(c0 >> 8) + 0.5f) * (1.0f / 16777216.0f);
                    const float u2 = (float)(c1 >> 8) * (1.0f / 16777216.0f);
                    const float u3 = ((float)(c2 >> 8) + 0.5f) * (1.0f / 16777216.0f);
                    const float u4 = (float)(c3 >> 8) * (1.0f / 16777216.0f);
                    const float r1 = std::sqrt(-2.0f * fast_log(u1)), r2 = std::sqrt(-2.0f * fast_log(u3));
                    float s1, co1, s2, co2;
                    fast_sincos_2pi(u2, s1, co1);
                    fast_sincos_2pi(u4, s2, co2);
                    zz[0][w] = r1 * co1; zz[1][w] = r1 * s1; zz[2][w] = r2 * co2; zz[3][w] = r2 * s2;
                }
                for (int j = 0; j < 4 && c4 + j < D; ++j)
                    for (int w = 0; w < W; ++w) z[c4 + j][w] = (T)zz[j][w];
            }
        }
        if (KIND == BERNOULLI) {
#pragma omp simd
            for (int w = 0; w < W; ++w) {
                uint32_t c0 = tlo, c1 = thi, c2 = id32[w], c3 = 0x200u;
                philox(c0, c1, c2, c3, k0, k1);
                ubern[w] = (float)(c0 >> 8) * (1.0f / 16777216.0f);
            }
        }
        // ---- gradient (and loss, kicks) at the current parameters
        T g[MAXD][W];
        T loss[W];
        alignas(64) T xcol[MAXD][W];
        if (ARM == DATA && B1) load_columns(data, D, idx[0], xcol);
        float kick[W];
        for (int w = 0; w < W; ++w) { loss[w] = T(0); kick[w] = 0.0f; }
        for (int64_t c = 0; c < D; ++c) {
            const T m1 = cm1[c], m2 = cm2[c], m3 = cm3[c];
            const T C0 = cc[c][0], C1 = cc[c][1], C2 = cc[c][2], C3 = cc[c][3], C4 = cc[c][4], C5 = cc[c][5];
            const T iso = ciso[c];
            const T* col = data + c;
#pragma omp simd
            for (int w = 0; w < W; ++w) {
                const T u = s.th[c][w] * s.root[w];
                T gv;
                T mu = 0, sd = 1;
                T lc = 0;  // this coordinate's loss (LCAM)
                if (ARM != DATA || DIAG) {
                    // mean and standard deviation of f'(u - x) over the training set
                    const T b0 = (T(2) * u * u - T(16)) * u + T(2.5);
                    const T bb1 = T(16) - T(6) * u * u, bb2 = T(6) * u, bb3 = T(-2);
                    mu = b0 + bb1 * m1 + bb2 * m2 + bb3 * m3;
                    const T var = C0 * bb1 * bb1 + C1 * bb2 * bb2 + C2 * bb3 * bb3
                                  + T(2) * (C3 * bb1 * bb2 + C4 * bb1 * bb3 + C5 * bb2 * bb3);
                    sd = std::sqrt((var > T(1e-30) ? var : T(1e-30)) * invB);
                }
                if (ARM == DATA) {
                    if (B1) {
                        const T y = u - xcol[c][w];
                        gv = T(2.5) + (T(-16) + T(2) * y * y) * y;  // torch.addcmul(2.5, addcmul(-16, y, y, 2), y)
                        if (KIND == LCAM) { const T y2 = y * y; lc = (y2 - T(16)) * y2 + T(5) * y; }
                    } else {
                        T acc = 0, lacc = 0;
                        for (int64_t b = 0; b < B; ++b) {
                            const T y = u - col[idx[b][w] * D32];
                            acc += T(2.5) + (T(-16) + T(2) * y * y) * y;
                            const T y2 = y * y;
                            lacc += (y2 - T(16)) * y2 + T(5) * y;
                        }
                        gv = acc / T(B);
                        if (KIND == LCAM) lc = lacc / T(B);
                    }
                    if (DIAG) { const float kz = (float)std::fabs((gv - mu) / sd); kick[w] = kick[w] > kz ? kick[w] : kz; }
                } else {
                    const T scale = (ARM == GAUSS) ? sd : iso;
                    gv = mu + scale * z[c][w];
                    if (DIAG) { const float kz = (float)std::fabs(z[c][w]); kick[w] = kick[w] > kz ? kick[w] : kz; }
                }
                g[c][w] = gv * s.root[w];
                if (KIND == LCAM) loss[w] = loss[w] + lc;
            }
        }
        // ---- the optimizer update
        if (KIND == SGD || KIND == LCAM || KIND == BERNOULLI) {
            // Every per-lane loop here is a vector loop (no scalar stores read back as a vector: those
            // store-forwarding stalls cost a quarter of LCAM's step).
            T beta[W];
            if (!PLAIN) {
                const double bb = a.beta_below, ba = a.beta_above, b0 = a.initial_momentum;
#pragma omp simd
                for (int w = 0; w < W; ++w) {
                    double bw;
                    if (KIND == SGD) bw = s.mom[w];
                    else if (KIND == LCAM) bw = has_decision ? (s.below[w] ? bb : ba) : b0;
                    else bw = (ubern[w] < (float)s.mom[w]) ? bb : ba;
                    beta[w] = (T)bw;
                    if (!frozen) {
                        const bool active = s.esc[w] == 0;
                        s.msum[w] += active ? bw : 0.0;  // + 0.0 leaves a (non-negative) sum unchanged
                        if (KIND != SGD) s.bsteps[w] += (active && bw == bb) ? 1.0 : 0.0;
                    }
                }
            }
            for (int64_t c = 0; c < D; ++c) {
#pragma omp simd
                for (int w = 0; w < W; ++w) {
                    T step;
                    if (PLAIN) step = g[c][w];
                    else {
                        const T b = s.first[w] != 0 ? s.b1[c][w] * beta[w] + g[c][w] : g[c][w];
                        s.b1[c][w] = b;
                        step = b;
                    }
                    const T moved = s.th[c][w] + (-lr) * step;
                    s.th[c][w] = frozen ? s.th[c][w] : moved;
                }
            }
            if (!PLAIN) for (int w = 0; w < W; ++w) s.first[w] = 1;
        } else if (KIND == ADAM) {
            const double bc1 = 1.0 - std::pow(a.beta1, (double)opt_t);
            const double bc2 = 1.0 - std::pow(a.beta2, (double)opt_t);
            const T step_size = (T)(a.lr / bc1);
            const T bc2_sqrt = (T)std::sqrt(bc2);
            const T w1 = (T)(1.0 - a.beta1), be2 = (T)a.beta2, w2 = (T)(1.0 - a.beta2), eps = (T)a.eps;
            for (int64_t c = 0; c < D; ++c) {
#pragma omp simd
                for (int w = 0; w < W; ++w) {
                    const T gv = g[c][w];
                    const T m = s.b1[c][w] + w1 * (gv - s.b1[c][w]);  // lerp(m, g, 1 - beta1)
                    const T v = s.b2[c][w] * be2 + (w2 * gv) * gv;  // mul_(beta2).addcmul_(g, g, value=1-beta2)
                    s.b1[c][w] = m;
                    s.b2[c][w] = v;
                    const T denom = std::sqrt(v) / bc2_sqrt + eps;
                    const T moved = s.th[c][w] + (-step_size) * (m / denom);
                    s.th[c][w] = frozen ? s.th[c][w] : moved;
                }
            }
        } else if (KIND == ADAI) {
            const double bc2 = 1.0 - std::pow(a.beta2, (double)opt_t);
            const T be2 = (T)a.beta2, w2 = (T)(1.0 - a.beta2), tbc2 = (T)bc2, beta0 = (T)a.beta0;
            const T top = (T)(1.0 - a.eps);
            T total[W];
            for (int w = 0; w < W; ++w) total[w] = 0;
            for (int64_t c = 0; c < D; ++c) {
#pragma omp simd
                for (int w = 0; w < W; ++w) {
                    const T v = s.b2[c][w] * be2 + (w2 * g[c][w]) * g[c][w];
                    s.b2[c][w] = v;
                    total[w] += v;
                }
            }
            T vbar[W];
            const T tiny = std::numeric_limits<T>::min();
            for (int w = 0; w < W; ++w) vbar[w] = std::max(total[w] / tbc2 / (T)D, tiny);
            for (int64_t c = 0; c < D; ++c) {
#pragma omp simd
                for (int w = 0; w < W; ++w) {
                    T b1 = (T(1) + (s.b2[c][w] / tbc2 / vbar[w]) * (-beta0));
                    b1 = std::min(std::max(b1, T(0)), top);
                    s.b3[c][w] = s.b3[c][w] * b1;
                    const T m = s.b1[c][w] * b1 + (T(1) - b1) * g[c][w];
                    s.b1[c][w] = m;
                    const T moved = s.th[c][w] + (-lr) * (m / (T(1) - s.b3[c][w]));
                    s.th[c][w] = frozen ? s.th[c][w] : moved;
                }
            }
        } else if (KIND == ADAREM) {
            T mmax[W];
            for (int w = 0; w < W; ++w) mmax[w] = 0;
            for (int64_t c = 0; c < D; ++c)
                for (int w = 0; w < W; ++w) mmax[w] = std::max(mmax[w], std::abs(s.b1[c][w]));
            const T lam = (T)a.lam_t, eps = (T)a.eps, be = (T)a.beta, w1 = (T)(1.0 - a.beta);
            for (int64_t c = 0; c < D; ++c) {
#pragma omp simd
                for (int w = 0; w < W; ++w) {
                    const T gv = g[c][w], m = s.b1[c][w];
                    const T denom = std::abs(gv) * mmax[w] + eps;
                    const T factor = ((gv * m) / denom) * lam + T(1);
                    const T moved = s.th[c][w] + (-lr) * (factor * gv);
                    s.th[c][w] = frozen ? s.th[c][w] : moved;
                    s.b1[c][w] = m * be + w1 * gv;
                }
            }
        }
        // ---- LCAM: feed this step's loss (at the parameters before the step) into the running mean
        if (KIND == LCAM) {
            epoch_count += 1;
#pragma omp simd
            for (int w = 0; w < W; ++w) {
                const T lw = T(0.5) * loss[w];
                s.lsum[w] += (double)lw;
                const double mean = s.lsum[w] / (double)epoch_count;
                s.below[w] = (double)lw < mean;
            }
            has_decision = true;
        }
        if (frozen) continue;
        // ---- kicks and the escape check
        if (DIAG) {
            for (int w = 0; w < W; ++w) {
                s.ring[t & (RING - 1)][w] = kick[w];
                if (s.esc[w] == 0 && kick[w] > (float)a.kick_threshold) s.kcount[w] += 1.0;
            }
        }
        // outside when any coordinate's (offset - u * direction) > 0: the largest of them > 0 (NaN never counts)
        T worst[W];
        for (int w = 0; w < W; ++w) worst[w] = T(0);
        for (int64_t c = 0; c < D; ++c) {
            const T o = off[c], d = dir[c];
#pragma omp simd
            for (int w = 0; w < W; ++w) {
                const T u = s.th[c][w] * s.root[w];
                const T v = o - u * d;
                worst[w] = v > worst[w] ? v : worst[w];
            }
        }
        uint8_t out[W];
        for (int w = 0; w < W; ++w) out[w] = worst[w] > T(0);
        int fresh = 0;  // any lane outside that has not escaped yet (rare: skip the lane loop otherwise)
        for (int w = 0; w < W; ++w) fresh |= (int)out[w] & (int)(s.esc[w] == 0);
        if (fresh) for (int w = 0; w < W; ++w) {
            if (out[w] && s.esc[w] == 0 && t + 1 <= s.budget[w]) {
                s.esc[w] = t + 1;
                if (DIAG) {
                    float best = -1.0f;
                    int64_t lag = 0;
                    for (int64_t j = 0; j < a.window && j <= t; ++j) {
                        const float kv = s.ring[(t - j) & (RING - 1)][w];
                        if (kv > best) { best = kv; lag = j; }
                    }
                    s.kesc[w] = best;
                    s.klag[w] = lag;
                }
            }
        }
    }
    // store
    for (int w = 0; w < lanes; ++w) {
        const int64_t i = i0 + w;
        a.escape_step[i] = s.esc[w];
        if (a.first_flag) a.first_flag[i] = s.first[w];
        if (a.loss_sum) a.loss_sum[i] = s.lsum[w];
        if (a.below) a.below[i] = s.below[w];
        if (a.momentum_sum) a.momentum_sum[i] = s.msum[w];
        if (a.below_steps) a.below_steps[i] = s.bsteps[w];
        if (a.kick_count) a.kick_count[i] = s.kcount[w];
        if (a.kick_at_escape) a.kick_at_escape[i] = s.kesc[w];
        if (a.kick_lag) a.kick_lag[i] = s.klag[w];
        if (DIAG && a.ring) for (int r = 0; r < RING; ++r) a.ring[i * RING + r] = s.ring[r][w];
        for (int64_t c = 0; c < D; ++c) {
            theta[c * n + i] = s.th[c][w];
            if (buf1) buf1[c * n + i] = s.b1[c][w];
            if (buf2) buf2[c * n + i] = s.b2[c][w];
            if (buf3) buf3[c * n + i] = s.b3[c][w];
        }
    }
}

}  // namespace

// One compiled variant per library (the build passes -DESC_T=... etc.; compiling every combination of
// kinds, arms and flags into one library took minutes, one variant takes about a second).
#ifndef ESC_T
#define ESC_T float
#endif
#ifndef ESC_KIND
#define ESC_KIND 0
#endif
#ifndef ESC_ARM
#define ESC_ARM 0
#endif
#ifndef ESC_DIAG
#define ESC_DIAG 0
#endif
#ifndef ESC_B1
#define ESC_B1 1
#endif
#ifndef ESC_PLAIN
#define ESC_PLAIN 0
#endif

extern "C" int escape_run(const EscapeArgs* a) {
    if (a->dim < 1 || a->dim > MAXD || a->batch < 1 || a->batch > MAXB || a->window > RING) return 1;
    if ((a->batch == 1) != (ESC_B1 != 0)) return 3;
    // Tiles are independent (every lane's randomness is a function of its trial id and the step), so
    // they split over threads in contiguous ranges with results identical for any thread count.
    const int64_t tiles = (a->n + W - 1) / W;
    const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(a->threads, tiles));
    auto work = [a, tiles, workers](int64_t part) {
        for (int64_t tile = tiles * part / workers; tile < tiles * (part + 1) / workers; ++tile) {
            const int64_t i0 = tile * W;
            const int64_t lanes = std::min<int64_t>(W, a->n - i0);
            run_tile<ESC_T, ESC_KIND, ESC_ARM, ESC_DIAG != 0, ESC_B1 != 0, ESC_PLAIN != 0>(*a, i0, lanes);
        }
    };
    std::vector<std::thread> pool;
    try {
        for (int64_t part = 1; part < workers; ++part) pool.emplace_back(work, part);
    } catch (...) {  // no threads to be had: the calling thread does the rest
    }
    const int64_t started = (int64_t)pool.size() + 1;
    for (int64_t part = started; part < workers; ++part) work(part);
    work(0);
    for (auto& thread : pool) thread.join();
    return 0;
}
extern "C" int escape_tile_width() { return W; }
extern "C" int escape_ring() { return RING; }
