// fp4gemm numerics: every rounding, scale rule, random-bit mapping and Hadamard butterfly of
// SPEC.md sections 1-3, written once for the CPU path and the CUDA kernels alike.
//
// Everything here is plain fp32 / integer arithmetic with IEEE round-to-nearest, no fused
// multiply-add and no approximate intrinsics, so the host compiler and nvcc produce identical bits.
// (CMake builds with -ffp-contract=off, and every CUDA source that runs this code with --fmad=false.)
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "fp4gemm/fp4gemm.h"

#if defined(__CUDACC__)
#define FP4_HD __host__ __device__ __forceinline__
#define FP4_UNROLL _Pragma("unroll")
#else
#define FP4_HD inline
#define FP4_UNROLL
#endif

namespace fp4gemm::num {

constexpr float kE2M1Max = 6.0f;
constexpr float kE4M3Max = 448.0f;
constexpr float kFltMax = 3.40282346638528859812e+38f;
constexpr int kMxBlock = 32;
constexpr int kNvBlock = 16;
constexpr uint8_t kE8M0NaN = 0xFF;
constexpr uint8_t kE4M3NaN = 0x7F;
// Quartet: 2.92247856 = MSE-optimal clip / sigma for a Gaussian on E2M1; divided by 6 in double.
constexpr float kQuestScale = float(2.92247856 / 6.0);
constexpr float kQuestEps = 1e-8f;

// ---------------------------------------------------------------- bit helpers
FP4_HD uint32_t f32_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t u; std::memcpy(&u, &x, 4); return u;
#endif
}
FP4_HD float bits_f32(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float x; std::memcpy(&x, &u, 4); return x;
#endif
}
FP4_HD bool is_finite(float x) { return (f32_bits(x) & 0x7F800000u) != 0x7F800000u; }
FP4_HD bool is_nan(float x) { return (f32_bits(x) & 0x7FFFFFFFu) > 0x7F800000u; }
FP4_HD float abs_f(float x) { return bits_f32(f32_bits(x) & 0x7FFFFFFFu); }
FP4_HD bool sign_bit(float x) { return (f32_bits(x) >> 31) != 0; }
// Unbiased exponent field: 2^E <= |x| < 2^(E+1) for normal x; zero and subnormals give -127.
FP4_HD int exp_field(float x) { return int((f32_bits(x) >> 23) & 0xFF) - 127; }
// 2^e as fp32 for e in [-149, 127] (exact, subnormal below -126).
FP4_HD float exp2i(int e) {
  return e >= -126 ? bits_f32(uint32_t(e + 127) << 23) : bits_f32(1u << (e + 149));
}
FP4_HD int clamp_i(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }
FP4_HD float min_f(float a, float b) { return b < a ? b : a; }  // a if b is NaN

// Running amax of |x|: the maximum of the sign-cleared bit patterns, which orders non-negative
// floats like their values and puts NaN above Inf. One integer max, NaN-propagating, and
// order-independent (the NaN payload is the largest), so any reduction tree gives the same bits.
FP4_HD float amax_update(float amax, float x) {
  const uint32_t a = f32_bits(amax), b = f32_bits(x) & 0x7FFFFFFFu;
  return bits_f32(a > b ? a : b);
}

// ---------------------------------------------------------------- input conversion
FP4_HD float bf16_to_f32(uint16_t h) { return bits_f32(uint32_t(h) << 16); }
FP4_HD float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16, e = (h >> 10) & 0x1F, m = h & 0x3FF;
  if (e == 0x1F) return bits_f32(sign | 0x7F800000u | (m << 13));
  if (e == 0) {  // subnormal: m * 2^-24, exact in fp32
    float v = float(m) * exp2i(-24);
    return sign ? -v : v;
  }
  return bits_f32(sign | ((e + 112) << 23) | (m << 13));
}

// High word of a * b. On the GPU an IMAD.HI, which issues on the FMA pipe where a shift would take the ALU's.
FP4_HD uint32_t mulhi32(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __umulhi(a, b);
#else
  return uint32_t((uint64_t(a) * uint64_t(b)) >> 32);
#endif
}

FP4_HD int block_size_of(Format fmt) { return fmt == Format::MXFP4 ? kMxBlock : fmt == Format::NVFP4 ? kNvBlock : 0; }

// ---------------------------------------------------------------- E2M1 (FP4)
// Magnitudes of codes 0..7.
FP4_HD float e2m1_value(uint8_t code) {
  // 0, 0.5 (subnormal), then (1 + m/2) * 2^(e-1) for e = code >> 1, m = code & 1. No table: a
  // run-time indexed array would live in local memory on the GPU.
  const int c = code & 7, e = c >> 1;
  const float m = c < 2 ? 0.5f * float(c) : (1.0f + 0.5f * float(c & 1)) * float(1 << (e - 1));
  return (code & 8) ? -m : m;
}

// a * b rounded on its own: the GPU form is never fused into a following add. The quantizer also runs
// in the Hopper GEMMs' quantizing epilogue, whose sources compile with FMA contraction (gemm_sm90.cuh);
// every product that feeds a sum goes through this, so contraction cannot change a bit.
FP4_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

// a * f + c with one rounding, for a product a * f that is exact (f a power of two that neither
// overflows nor drops bits of a): then fused and unfused agree, and the GPU issues one FFMA.
FP4_HD float fma_exact(float a, float f, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, f, c);
#else
  return a * f + c;
#endif
}

// The E2M1 grid around |v|, for encoders that run on the GPU's FMA pipe (integer compares and
// selects share its half-rate ALU pipe, which bound the quantize kernels): a = min(|v|, 6) (NaN
// gives 6), k = clamp(E(a), 0, 2) read off max(a, 1), f = 2^(1-k), M = 2^23 + 2k + 8 sign(v). Grid
// points are the integers a * f on [2^k, 2^(k+1)) (spacing 0.5 below 2), so the code is 2k + a * f
// rounded to an integer, and that rounding is fp32's own at M (spacing 1 on [2^23, 2^24), M even:
// ties go to the even code), with a * f exact. M's 8 sign(v) lands on the code's sign bit.
struct E2M1Grid { float a, f, M; };

// The same grid for v = y * 2^-e read off y itself, for a multiplier 2^-e that is a power of two (an
// MXFP4 block's; its 1/sqrt(g) RHT factor too where that is a power of two): with L = 6 2^e and U = 2^e
// per block, a = min(|y|, L) = min(|v|, 6) 2^e, max(a, U) = 2^(k+e), f = 2^(1-k-e) and M = 2^23 + 2k +
// 8 sign(y), so a * f equals e2m1_grid(v)'s a * f exactly and the encoders round the same. That holds
// wherever y * 2^-e is exact; where it is not (|v| < 2^-126) both forms give the signed zero code and
// the SR threshold 0. Saves the multiply by 2^-e per element. Needs -126 <= e <= 127 (2^e normal);
// L is Inf for e >= 126, and min(|y|, Inf) = |y| is right. Checked equal over all fp32 y for several e
// (tests/check_encoders.cpp). e2m1_grid is the case e = 0.
struct E2M1Scaled { float L, U; uint32_t C; int e; };
FP4_HD E2M1Scaled e2m1_scaled(int e) {
  return {6.0f * exp2i(e), exp2i(e), 0x4B000000u - 254u - 2u * uint32_t(e), e};
}
FP4_HD E2M1Grid e2m1_grid_scaled(float y, const E2M1Scaled& s) {
  // a = min(|y|, L), and L for a NaN y (any NaN: 6 at e = 0). On the GPU fminf / fmaxf, one FMNMX each
  // (|y| a free operand modifier; the compares would be FSETP + FSEL, L not being a constant); on the
  // host the compares, as fminf would quiet a signaling NaN instead.
#if defined(__CUDA_ARCH__)
  const float a = fminf(fabsf(y), s.L);
  const float b = fmaxf(a, s.U);
#else
  const float m = abs_f(y), a = m < s.L ? m : s.L;
  const float b = a > s.U ? a : s.U;
#endif
  // M = 2^23 + 2k + 8 sign(y), with 2(127 + k + e) = p >> 22 and sign(y) = y >> 31 as mulhi.
  const uint32_t p = f32_bits(b) & 0x7F800000u;  // 2^(k+e)
  const uint32_t M = mulhi32(p, 1u << 10) + s.C + 8u * mulhi32(f32_bits(y), 2u);
  return {a, bits_f32(0x7F800000u - p), bits_f32(M)};
}
FP4_HD E2M1Grid e2m1_grid(float v) { return e2m1_grid_scaled(v, e2m1_scaled(0)); }
constexpr uint32_t kGridBase = 0x4B000000u;  // bits of 2^23: nibble = bits(rounded) - kGridBase

// Round-to-nearest, ties to the even code, saturating at 6; the sign survives a round to zero; NaN
// gives 6 with its sign. Returns bits(2^23 + code | sign): checked equal, over all 2^32 inputs, to
// the integer form (RNE on the fp32 bits at bit 22 from 1 on, thresholds 0.25 / 0.75 below).
FP4_HD uint32_t e2m1_rtn_bits(float v) {
  const E2M1Grid g = e2m1_grid(v);
  return f32_bits(fma_exact(g.a, g.f, g.M));
}
FP4_HD uint8_t e2m1_rtn(float v) { return uint8_t(e2m1_rtn_bits(v) - kGridBase); }

// Eight nibbles from their bits(2^23 + nibble) forms: the sum of bits_i * 16^i (nibbles cannot
// carry) less this constant. Integer multiply-adds, which the GPU issues on its FMA pipe.
constexpr uint32_t kPackBias = kGridBase * 0x11111111u;

// Stochastic rounding with a 16-bit random number r (SR draws 16 bits per element: sr_bits8, sr_number). With
// grid neighbours lo <= |v| < hi the code of hi is chosen iff r < floor(t * 2^16), t = (|v| - lo) /
// (hi - lo), so P(hi) = t - e with 0 <= e < 2^-16. t is exact and read off the bits: from 1 on the
// grid is the floats with one mantissa bit, so t 2^32 is the 22 mantissa bits below it (u << 10); in
// [0.5, 1) (step 0.5) all 23 (u << 9); below 0.5, t = 2|v| and t 2^32 = |v| 2^33 < 2^32, an exact
// multiply and truncation; floor(t 2^16) is that >> 16. |v| >= 6 and NaN give 6 (code 7, sign kept;
// NaN never reaches an encoder: its block encodes to zeros first). Branch-free, one conversion.
FP4_HD uint8_t e2m1_sr(float v, uint32_t r) {
  const uint32_t u = f32_bits(v) & 0x7FFFFFFFu, sign = (f32_bits(v) >> 28) & 8u;
  const bool ge1 = u >= 0x3F800000u, ge_half = u >= 0x3F000000u;
  const uint32_t lo = ge1 ? (u >> 22) - 252u : (ge_half ? 1u : 0u);
  const float small = ge_half ? 0.0f : bits_f32(u);
  const uint32_t thr = ge1 ? u << 10 : (ge_half ? u << 9 : uint32_t(small * 8589934592.0f));
  const uint32_t c = lo + (r < (thr >> 16) ? 1u : 0u);
  return uint8_t((c < 7u ? c : 7u) | sign);  // NaN: lo >= 258, so 6 as for RTN
}

// e2m1_sr as bits(2^23 + code | sign). The GPU computes the same decision on its FMA pipe: with
// x = a f exact (e2m1_grid, t = frac(x)) and w = (2^16 - 1 - r) 2^-16 (exact in fp32), "r < floor(t 2^16)"
// is frac(x) >= 1 - w, i.e. x + w >= floor(x) + 1, so the code is 2k + floor(x + w); floor(x + w) =
// floor(RZ(x + w)) (truncation cannot cross an integer), and M + floor(.) is one more truncating add.
// Checked equal to e2m1_sr over all 2^32 v (r at 0, 2^16 - 1, the threshold and its neighbours, and a
// random r), with the host FPU rounding toward zero (tests/check_encoders.cpp).
FP4_HD float sr_addend(uint32_t r) { return (2.0f - 0x1p-16f) - bits_f32((r << 7) + 0x3F800000u); }  // exact
FP4_HD uint32_t e2m1_sr_bits(float v, uint32_t r) {
#if defined(__CUDA_ARCH__)
  const E2M1Grid g = e2m1_grid(v);
  return f32_bits(__fadd_rz(__fmaf_rz(g.a, g.f, sr_addend(r)), g.M));
#else
  return kGridBase + e2m1_sr(v, r);
#endif
}

FP4_HD uint32_t e2m1_rtn_scaled_bits(float y, const E2M1Scaled& s) {
  const E2M1Grid g = e2m1_grid_scaled(y, s);
  return f32_bits(fma_exact(g.a, g.f, g.M));
}
// As e2m1_sr_bits: the GPU's two truncating operations, the host's integer form of the same decision.
FP4_HD uint32_t e2m1_sr_scaled_bits(float y, const E2M1Scaled& s, uint32_t r) {
#if defined(__CUDA_ARCH__)
  const E2M1Grid g = e2m1_grid_scaled(y, s);
  return f32_bits(__fadd_rz(__fmaf_rz(g.a, g.f, sr_addend(r)), g.M));
#else
  return kGridBase + e2m1_sr(mul_rn(y, exp2i(-s.e)), r);
#endif
}

// ---------------------------------------------------------------- E4M3 (OCP float8_e4m3fn)
FP4_HD float e4m3_value(uint8_t b) {
  uint32_t e = (b >> 3) & 0xF, m = b & 7;
  float v;
  if (e == 0xF && m == 7) v = bits_f32(0x7FC00000u);
  else if (e == 0) v = float(m) * exp2i(-9);
  else v = bits_f32(((e + 120) << 23) | (m << 20));
  return (b & 0x80) ? -v : v;
}

// fp32 -> E4M3, round to nearest even, finite values saturate to +-448, NaN -> 0x7F (sign kept),
// +-Inf -> +-448 (satfinite, as cvt.rn.satfinite.e4m3x2.f32).
FP4_HD uint8_t e4m3_rne_satfinite(float x) {
  uint32_t u = f32_bits(x);
  uint8_t sign = uint8_t((u >> 24) & 0x80);
  uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return uint8_t(sign | kE4M3NaN);
  if (a >= 0x43E00000u) return uint8_t(sign | 0x7E);       // >= 448 (and Inf) saturates
  int e = int(a >> 23) - 127;
  if (e < -6) {
    // Subnormal E4M3: multiples of 2^-9. a * 2^9 rounded to an integer (RNE); 8 -> min normal.
    float q = bits_f32(a) * 512.0f;                         // exact (power of two, no overflow)
    uint32_t n = uint32_t(q);
    float frac = q - float(n);
    if (frac > 0.5f || (frac == 0.5f && (n & 1))) ++n;
    return uint8_t(sign | n);                                // n == 8 encodes 2^-6 correctly
  }
  // Normal: keep 3 mantissa bits, RNE on the 20 dropped bits; a carry bumps the exponent.
  uint32_t mant = a & 0x7FFFFFu, keep = mant >> 20, rest = mant & 0xFFFFFu;
  uint32_t biased = uint32_t(e + 7), code = (biased << 3) | keep;
  if (rest > 0x80000u || (rest == 0x80000u && (keep & 1))) ++code;
  if (code > 0x7E) code = 0x7E;                              // 464 would round past 448
  return uint8_t(sign | code);
}

// ---------------------------------------------------------------- E8M0 scale rules (MXFP4)
enum class MxRule : int { Floor = 0, RCeil = 1, Even = 2 };

// Biased E8M0 byte of the block scale from the block amax (NaN/Inf amax -> 0xFF).
FP4_HD uint8_t mx_scale_byte(float amax, MxRule rule) {
  if (!is_finite(amax)) return kE8M0NaN;
  int e;
  if (rule == MxRule::Floor) {
    e = exp_field(amax) - 2;                                 // 2 = emax of E2M1
  } else if (rule == MxRule::Even) {
    // torchao EVEN: round amax's mantissa to 1 bit (add half an ulp of a 1-bit mantissa,
    // let the carry reach the exponent), then floor.
    uint32_t u = f32_bits(amax) + (1u << 21);
    e = int((u >> 23) & 0xFF) - 127 - 2;
  } else {  // RCeil: smallest power of two >= fp32(amax / 6)
    float q = amax / 6.0f;
    uint32_t u = f32_bits(q);
    int fe = int((u >> 23) & 0xFF);
    if (fe == 0) e = -127;                                   // zero or subnormal quotient
    else e = fe - 127 + ((u & 0x7FFFFFu) ? 1 : 0);
  }
  return uint8_t(clamp_i(e, -127, 127) + 127);
}

// Value of a biased E8M0 byte, 2^(b-127), NaN for 0xFF.
FP4_HD float e8m0_value(uint8_t b) {
  return b == kE8M0NaN ? bits_f32(0x7FC00000u) : exp2i(int(b) - 127);
}

// Multiplier that maps block values onto the E2M1 grid: 2^-(b-127). Exact in fp32.
FP4_HD float e8m0_inverse(uint8_t b) { return exp2i(127 - int(b)); }

// QuEST (Quartet forward): s = 2^floor(log2(sigma * 2.92247856 / 6 + 1e-8)), sigma the centred
// population std of the 32 values. For a fixed fp32 order that cannot overflow, the block is first
// normalized by 2^-E(amax) (exact), two-pass mean / variance with pairwise sums, sqrt, then scaled
// back by 2^E. Non-finite blocks give 0xFF.
FP4_HD float pairwise_sum32(const float* v) {
  // Halving stages written out with constant bounds so that nvcc keeps s[] in registers.
  float s[16];
  FP4_UNROLL
  for (int i = 0; i < 16; ++i) s[i] = v[i] + v[i + 16];
  FP4_UNROLL
  for (int i = 0; i < 8; ++i) s[i] = s[i] + s[i + 8];
  FP4_UNROLL
  for (int i = 0; i < 4; ++i) s[i] = s[i] + s[i + 4];
  s[0] = s[0] + s[2];
  s[1] = s[1] + s[3];
  return s[0] + s[1];
}
FP4_HD uint8_t quest_scale_byte(const float* v /* 32 values */, float amax) {
  if (!is_finite(amax)) return kE8M0NaN;
  int E = exp_field(amax);
  float norm = exp2i(-E), n[32];
FP4_UNROLL
  for (int i = 0; i < 32; ++i) n[i] = v[i] * norm;
  float mean = mul_rn(pairwise_sum32(n), 1.0f / 32.0f);
FP4_UNROLL
  for (int i = 0; i < 32; ++i) { float d = n[i] - mean; n[i] = mul_rn(d, d); }
  float var = pairwise_sum32(n) * (1.0f / 32.0f);
#if defined(__CUDA_ARCH__)
  float sigma = __fsqrt_rn(var);
#else
  float sigma = __builtin_sqrtf(var);
#endif
  sigma = sigma * exp2i(E);                                  // < 2^128: no overflow
  float t = mul_rn(sigma, kQuestScale) + kQuestEps;          // t >= 1e-8 > 0: a normal number
  return uint8_t(clamp_i(exp_field(t), -127, 127) + 127);
}

// ---------------------------------------------------------------- NVFP4 (two-level scale)
// TransformerEngine global encode scale S_enc = 448*6/A, FLT_MAX if that overflows,
// 1 when A is 0, not finite, or the quotient underflows to 0.
FP4_HD float nv_encode_scale(float tensor_amax) {
  if (!is_finite(tensor_amax) || tensor_amax == 0.0f) return 1.0f;
  float s = min_f((kE4M3Max * kE2M1Max) / tensor_amax, kFltMax);
  return s == 0.0f ? 1.0f : s;
}
// TE block decode scale, in TE's fp32 order: amax_b * (S_enc * fp32(1/6)).
FP4_HD uint8_t nv_te_scale_byte(float block_amax, float s_enc) {
  if (!is_finite(block_amax)) return kE4M3NaN;
  return e4m3_rne_satfinite(block_amax * (s_enc * (1.0f / 6.0f)));
}
// TE element multiplier: min(1 / (f32(s_b) * (1 / S_enc)), FLT_MAX).
FP4_HD float nv_te_multiplier(uint8_t s_b, float s_enc) {
  float denom = e4m3_value(s_b) * (1.0f / s_enc);
  return min_f(1.0f / denom, kFltMax);
}
// Dequantization scale of an NVFP4 block in float64: f32(s_b) * A / 2688 (TE rule) or p * f32(s_b)
// (torchao). Exact up to one rounding; an fp32 order would overflow for huge A or go subnormal for
// tiny A (docs/numerics.md).
FP4_HD double nv_te_decode(uint8_t s_b, float tensor_amax) {
  return double(e4m3_value(s_b)) * double(tensor_amax) / (double(kE4M3Max) * double(kE2M1Max));
}
// torchao rule: per-tensor scale p = A / (448*6); s_b = e4m3(clamp((amax_b / 6) / p, 2^-6, 448));
// element multiplier (1 / p) / f32(s_b). A = 0 (p = 0) gives scales 2^-6 and all-zero codes.
FP4_HD float nv_torchao_tensor_scale(float tensor_amax) {
  return tensor_amax / (kE4M3Max * kE2M1Max);
}
FP4_HD uint8_t nv_torchao_scale_byte(float block_amax, float tensor_scale) {
  if (!is_finite(block_amax)) return kE4M3NaN;
  float s = (block_amax / 6.0f) / tensor_scale;
  if (is_nan(s) || s < 0.015625f) s = 0.015625f;            // 0/0 when A = 0
  return e4m3_rne_satfinite(min_f(s, kE4M3Max));
}
FP4_HD float nv_torchao_multiplier(uint8_t s_b, float tensor_scale) {
  if (tensor_scale == 0.0f || !is_finite(tensor_scale)) return 0.0f;  // A = 0, or a NaN/Inf tensor
  return min_f((1.0f / tensor_scale) / e4m3_value(s_b), kFltMax);     // tiny A would give Inf (0 * Inf)
}
FP4_HD double nv_torchao_decode(uint8_t s_b, float tensor_scale) {
  return double(tensor_scale) * double(e4m3_value(s_b));
}

// ---------------------------------------------------------------- per-row FP4 (Microsoft recipe)
// pow2 (MS-AMP): multiplier 2^floor(log2(6 / amax)), never clips; amax rule: scale amax / 6.
// Returns the fp32 dequantization scale of the row; amax 0 gives scale 1.
FP4_HD float row_scale_pow2(float amax) {
  if (!is_finite(amax)) return bits_f32(0x7FC00000u);
  if (amax == 0.0f) return 1.0f;
  float q = 6.0f / amax;                                     // may be +Inf for tiny amax
  int e = is_finite(q) ? exp_field(q) : 127;
  e = clamp_i(e, -126, 127);
  return exp2i(-e);
}
FP4_HD float row_scale_amax(float amax) {
  if (!is_finite(amax)) return bits_f32(0x7FC00000u);
  if (amax == 0.0f) return 1.0f;
  const float s = amax / 6.0f;
  return s == 0.0f ? exp2i(-149) : s;  // amax < 3 * 2^-149: the smallest scale keeps y / s finite (0..3)
}


// ---------------------------------------------------------------- one block, one format
// The per-block step every path shares: scale from the block (amax, or the values for QuEST),
// multiplier from the stored scale, element encode. `tensor` is the per-tensor parameter:
// S_enc (NVFP4 TE), the per-tensor scale p (NVFP4 torchao), unused otherwise.
struct Codec {
  Format fmt;
  ScaleRule rule;
  Rounding rounding;
  bool prescale;
  float tensor;

  // Block / row scale from its amax. MXFP4 and NVFP4 return the byte in the low 8 bits of a
  // float-free uint32; per-row FP4 returns the fp32 bits of the row scale.
  FP4_HD uint32_t scale_from_amax(float amax) const {
    switch (rule) {
      case ScaleRule::Floor: return mx_scale_byte(amax, MxRule::Floor);
      case ScaleRule::RCeil: return mx_scale_byte(amax, MxRule::RCeil);
      case ScaleRule::Even: return mx_scale_byte(amax, MxRule::Even);
      case ScaleRule::TE: return nv_te_scale_byte(amax, tensor);
      case ScaleRule::Torchao: return nv_torchao_scale_byte(amax, tensor);
      case ScaleRule::Pow2: return f32_bits(row_scale_pow2(amax));
      case ScaleRule::Amax: return f32_bits(row_scale_amax(amax));
      default: return kE8M0NaN;  // Quest: use quest_scale_byte
    }
  }
  FP4_HD bool scale_is_nan(uint32_t s) const {
    if (fmt == Format::MXFP4) return s == kE8M0NaN;
    if (fmt == Format::NVFP4) return (s & 0x7F) == kE4M3NaN;
    return is_nan(bits_f32(s));
  }
  // Per-block multiplier onto the E2M1 grid (computed once per block; unused by the exact `amax` row
  // rule), with the 3/4 prescale folded in where the multiplier is a power of two 2^k (MXFP4, pow2 rows):
  // y * (2^k * 3/4) rounds as (y * 2^k) * 3/4 whenever y * 2^k is exact, and where it is not (below
  // 2^-126) both encode to a signed zero. One multiply per element instead of two.
  FP4_HD float multiplier(uint32_t s) const {
    if (rule == ScaleRule::TE) return nv_te_multiplier(uint8_t(s), tensor);
    if (rule == ScaleRule::Torchao) return nv_torchao_multiplier(uint8_t(s), tensor);
    const float m = fmt == Format::MXFP4 ? e8m0_inverse(uint8_t(s)) : exp2i(-exp_field(bits_f32(s)));
    return prescale ? m * 0.75f : m;
  }
  // Scaled value v that is rounded: y * multiplier (y / s for the `amax` row rule), then * 3/4 where
  // the multiplier does not carry it.
  FP4_HD float scaled(float y, float mult, uint32_t s) const {
    if (fmt == Format::FP4Row && rule == ScaleRule::Amax) {
      const float v = y / bits_f32(s);
      return prescale ? v * 0.75f : v;
    }
    const float v = y * mult;
    return prescale && fmt == Format::NVFP4 ? v * 0.75f : v;
  }
  FP4_HD uint8_t encode(float v, uint32_t rbits) const {
    return rounding == Rounding::SR ? e2m1_sr(v, rbits) : e2m1_rtn(v);
  }
  // The code as bits(2^23 + code | sign), for packing by multiply-adds (kPackBias).
  FP4_HD uint32_t encode_bits(float v, uint32_t rbits) const {
    return rounding == Rounding::SR ? e2m1_sr_bits(v, rbits) : e2m1_rtn_bits(v);
  }
};

// ---------------------------------------------------------------- scale layouts
// Byte offset of scale (r, c) of a [rows, cols] scale matrix in the 128x4 blocked layout of cuBLAS /
// CUTLASS sm100: 512-byte tiles of 128 rows x 4 columns, tiles of one 128-row group in K order, then the
// next group; inside a tile (r, c) sits at 16 * (r % 32) + 4 * ((r % 128) / 32) + c % 4.
FP4_HD int64_t blocked_offset(int64_t r, int64_t c, int64_t cols) {
  const int64_t col_tiles = (cols + 3) / 4;
  return ((r / 128) * col_tiles + c / 4) * 512 + 16 * (r % 32) + 4 * ((r % 128) / 32) + c % 4;
}

// Element (r, k) of a quantized operand: its E2M1 code, and its scale (the block's byte, or the fp32
// bits of the row scale).
FP4_HD uint8_t operand_code(const QuantizedIn& q, int64_t r, int64_t k) {
  const uint8_t byte = q.data[(r * q.k + k) >> 1];
  return k & 1 ? uint8_t(byte >> 4) : uint8_t(byte & 0xF);
}
FP4_HD uint32_t operand_scale(const QuantizedIn& q, int64_t r, int64_t k) {
  if (q.fmt == Format::FP4Row) return f32_bits(static_cast<const float*>(q.scale)[r]);
  const int64_t bs = block_size_of(q.fmt), nb = q.k / bs;
  return static_cast<const uint8_t*>(q.scale)[q.scale_blocked ? blocked_offset(r, k / bs, nb) : r * nb + k / bs];
}
// The block (or row) scale alone, exact: E8M0, E4M3 or fp32. NVFP4's tensor factor is not included.
FP4_HD double block_scale_value(Format fmt, uint32_t scale) {
  return fmt == Format::FP4Row ? double(bits_f32(scale))
         : fmt == Format::MXFP4 ? double(e8m0_value(uint8_t(scale))) : double(e4m3_value(uint8_t(scale)));
}

// Element (r, k) as code * block (or row) scale, exact in float64; tensor-level factors excluded.
FP4_HD double operand_value(const QuantizedIn& q, int64_t r, int64_t k) {
  return double(e2m1_value(operand_code(q, r, k))) * block_scale_value(q.fmt, operand_scale(q, r, k));
}

// Dequantized value of one element (code, its scale byte or row scale bits), times the tensor's
// global_scale: computed in float64, rounded once to fp32.
FP4_HD float dequantize_element(Format fmt, ScaleRule rule, uint8_t code, uint32_t scale, float amax, double global) {
  double s;
  if (fmt != Format::NVFP4) s = block_scale_value(fmt, scale);
  else if (rule == ScaleRule::Torchao) s = nv_torchao_decode(uint8_t(scale), nv_torchao_tensor_scale(amax));
  else s = nv_te_decode(uint8_t(scale), amax);
  return float(double(e2m1_value(code)) * s * global);
}

// global_scale of a quantization with the 3/4 prescale: the GEMM undoes it exactly in float64.
constexpr double kPrescaleUndo = 4.0 / 3.0;

// The operand's tensor-level factor, applied once to the GEMM sum: global_scale, times NVFP4's amax
// term (A / 2688 for the TE rule, the per-tensor scale p for torchao). A non-finite amax gives NaN,
// as quantize() then encodes the tensor as NaN (docs/numerics.md).
FP4_HD double tensor_factor(Format fmt, ScaleRule rule, float amax, double global) {
  if (fmt != Format::NVFP4) return global;
  if (!is_finite(amax)) return double(bits_f32(0x7FC00000u));
  return global * (rule == ScaleRule::Torchao ? double(nv_torchao_tensor_scale(amax))
                                              : double(amax) / (double(kE4M3Max) * double(kE2M1Max)));
}

// The tensor factor of a quantized operand (its amax is read where the operand lives).
FP4_HD double operand_tensor_factor(const QuantizedIn& q) {
  return tensor_factor(q.fmt, q.scale_rule, q.fmt == Format::NVFP4 ? *q.amax : 0.0f, q.global_scale);
}

// ---------------------------------------------------------------- Philox4x32-10
struct U32x4 { uint32_t x, y, z, w; };

// Random123 Philox4x32 with 10 rounds (the generator of curand and torch's CUDA RNG).
FP4_HD U32x4 philox4x32_10(U32x4 c, uint32_t k0, uint32_t k1) {
FP4_UNROLL
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0 = mulhi32(0xD2511F53u, c.x), lo0 = 0xD2511F53u * c.x;
    uint32_t hi1 = mulhi32(0xCD9E8D57u, c.z), lo1 = 0xCD9E8D57u * c.z;
    c = U32x4{hi1 ^ c.y ^ k0, lo1, hi0 ^ c.w ^ k1, lo0};
    k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
  }
  return c;
}

// Random streams. SR of the rowwise and the columnwise quantization of one tensor draw from
// different streams; sign vectors of the Hadamard transform from their own.
enum class Stream : uint32_t { Rowwise = 0, Columnwise = 1 };

// The SR bits of the elements at logical positions p = row * K + k of the quantized [rows, K] view (for
// a columnwise output, the view is the transpose), 16 per element, 8 elements per Philox call:
// Philox(key = seed, counter = (lo(p/8), hi(p/8) | stream << 31, lo(offset), hi(offset))), element p
// takes half p % 2 (0 = the low 16 bits) of word (p / 2) % 4 (sr_number).
FP4_HD U32x4 sr_bits8(uint64_t seed, uint64_t offset, Stream stream, uint64_t group /* p / 8 */) {
  U32x4 c{uint32_t(group), uint32_t(group >> 32) | (uint32_t(stream) << 31),
          uint32_t(offset), uint32_t(offset >> 32)};
  return philox4x32_10(c, uint32_t(seed), uint32_t(seed >> 32));
}
FP4_HD uint32_t u32x4_get(const U32x4& r, int i) { return i == 0 ? r.x : i == 1 ? r.y : i == 2 ? r.z : r.w; }
// The 16-bit SR number of position p from its call's words, j = p % 8.
FP4_HD uint32_t sr_number(const U32x4& w, int j) {
  const uint32_t word = u32x4_get(w, j >> 1);
  return (j & 1) ? word >> 16 : word & 0xFFFFu;
}

// Hadamard sign vector from a seed: bit i of the 256-bit string made of
// Philox(key = seed, counter = (j, 0, 0, 0x48414441 'HADA')) for j = 0, 1 (words x, y, z, w in order);
// a set bit means sign -1.
FP4_HD void hadamard_sign_bits(uint64_t seed, uint32_t out[8]) {
  for (uint32_t j = 0; j < 2; ++j) {
    U32x4 r = philox4x32_10(U32x4{j, 0u, 0u, 0x48414441u}, uint32_t(seed), uint32_t(seed >> 32));
    out[4 * j + 0] = r.x; out[4 * j + 1] = r.y; out[4 * j + 2] = r.z; out[4 * j + 3] = r.w;
  }
}

// Whether element i of a g-block takes sign -1 under the sign bits (hadamard_sign_bits' layout).
FP4_HD bool hadamard_negative(const uint32_t sign_bits[8], int i) { return (sign_bits[i >> 5] >> (i & 31)) & 1u; }

// ---------------------------------------------------------------- Hadamard transform
// In-place x <- (x . s) H_g / sqrt(g) on one block of g values (g a power of two <= 256):
// sign flips, butterflies in stages h = 1, 2, 4, ... (Sylvester order), then one multiply by
// fp32(1/sqrt(g)). Every CPU and GPU path uses exactly this sequence of fp32 operations.
FP4_HD float inv_sqrt_pow2(int g) {
  // fp32(1/sqrt(g)) for g = 2^n: exact power of two for even n, else 2^-(n+1)/2 * sqrt(2) rounded.
  // n by a bit scan, not a loop: the GPU evaluates this per lane and row.
#if defined(__CUDA_ARCH__)
  const int n = __ffs(g) - 1;
#else
  const int n = __builtin_ctz(unsigned(g));
#endif
  float v = exp2i(-(n / 2));
  return (n & 1) ? v * 0.70710678118654752440f : v;
}
FP4_HD void hadamard_block(float* x, int g, const uint32_t sign_bits[8]) {
  for (int i = 0; i < g; ++i)
    if (hadamard_negative(sign_bits, i)) x[i] = -x[i];
  for (int h = 1; h < g; h <<= 1)
    for (int i = 0; i < g; i += 2 * h)
      for (int j = i; j < i + h; ++j) {
        float a = x[j], b = x[j + h];
        x[j] = a + b;
        x[j + h] = a - b;
      }
  float scale = inv_sqrt_pow2(g);
  for (int i = 0; i < g; ++i) x[i] = x[i] * scale;
}

}  // namespace fp4gemm::num
