// Register-level steps of the quantization kernel: the GPU form of numerics.h's per-block steps.
// Rowwise, a lane holds N consecutive values of a row (lanes of one row form a "segment group");
// every function performs exactly the fp32 operations of its numerics.h counterpart, so results are
// bit-identical to the CPU path.
#pragma once

#include "common.cuh"

namespace fp4gemm::cuda {

// Sign word for element i of a g-block without a run-time array index (which would go to local memory).
__device__ __forceinline__ uint32_t sign_word(const uint32_t (&signs)[8], int word) {
  uint32_t w = signs[0];
  FP4_UNROLL
  for (int k = 1; k < 8; ++k) w = word == k ? signs[k] : w;
  return w;
}

// Butterfly stages h = 1, 2, 4, ... below min(N, g) on N consecutive values held in registers:
// (x[k], x[k+h]) <- (a + b, a - b), as numerics.h hadamard_block.
template <int N>
__device__ __forceinline__ void register_butterflies(float (&v)[N], int g) {
  FP4_UNROLL
  for (int h = 1; h < N; h <<= 1) {
    if (N > 16 && h >= g) break;  // g >= 16: a run-time exit only where N exceeds it (it costs copies)
    FP4_UNROLL
    for (int k = 0; k < N; ++k)
      if (!(k & h)) {
        const float a = v[k], b = v[k + h];
        v[k] = a + b;
        v[k + h] = a - b;
      }
  }
}

// Butterfly stages h = N, 2N, ... below g on N values per lane, held by lanes `lane_stride` apart:
// part (the lane's index among them) pairs with part ^ (h / N). The holder of x[i + h] becomes
// a - b = partner + (-1) * mine: one FFMA with an exact product rounds as the subtraction does (and
// a + b = b + a for the other). All lanes of the warp must call this.
template <int N>
__device__ __forceinline__ void shuffle_butterflies(float (&v)[N], int g, int part, int lane_stride) {
  for (int h = N; h < g; h <<= 1) {
    const int d = h / N;
    const float sgn = (part & d) ? -1.0f : 1.0f;
    FP4_UNROLL
    for (int j = 0; j < N; ++j) v[j] = __fmaf_rn(v[j], sgn, __shfl_xor_sync(kFull, v[j], d * lane_stride));
  }
}

// Sign bits of a lane's N consecutive elements of a line (element index N * seg + j within the
// g-block pattern): bit j set = element j is negated.
template <int N>
__device__ __forceinline__ uint32_t lane_sign_bits(int g, const uint32_t (&signs)[8], int seg) {
  const int base = (N * seg) & (g - 1);
  return sign_word(signs, base >> 5) >> (base & 31);
}

// x <- (x . s) H_g / sqrt(g) on N consecutive values per lane; element index (within the line,
// which starts at a multiple of g) = N * seg + j. Stages h < N in registers, h >= N across lanes.
// kFlipped: the caller applied the signs already (on the raw input, see quantize_rows).
template <bool kFlipped = false, int N>
__device__ __forceinline__ void lane_hadamard(float (&v)[N], int g, const uint32_t (&signs)[8], int seg) {
  if (!kFlipped) {
    const uint32_t w = lane_sign_bits<N>(g, signs, seg);
    FP4_UNROLL
    for (int j = 0; j < N; ++j) v[j] = num::bits_f32(num::f32_bits(v[j]) ^ ((w >> j) & 1u) << 31);
  }
  register_butterflies(v, g);
  shuffle_butterflies(v, g, seg, 1);
  const float scale = num::inv_sqrt_pow2(g);
  FP4_UNROLL
  for (int j = 0; j < N; ++j) v[j] = v[j] * scale;
}

// Hadamard steps on the N consecutive values i0 .. i0+N-1 of a line held by one thread (i0 % N == 0,
// N <= 32, so they share one sign word): the signs and the stages h < min(g, N), and the 1/sqrt(g)
// multiply when the whole g-block is here. Larger stages are done by the caller (shuffles between spans).
template <int N>
__device__ __forceinline__ void thread_hadamard(float (&v)[N], int g, const uint32_t (&signs)[8], int i0) {
  const uint32_t w = sign_word(signs, g >= 32 ? (i0 & (g - 1)) >> 5 : 0);
  FP4_UNROLL
  for (int k = 0; k < N; ++k) v[k] = num::bits_f32(num::f32_bits(v[k]) ^ ((w >> ((i0 + k) & (g - 1) & 31)) & 1u) << 31);
  register_butterflies(v, g);
  if (g <= N) {
    const float scale = num::inv_sqrt_pow2(g);
    FP4_UNROLL
    for (int k = 0; k < N; ++k) v[k] = v[k] * scale;
  }
}

// max(|a|, |b|), NaN if either is NaN (PTX max.NaN): one FMNMX. For block scales only: they read
// the amax's value when finite and nothing else (a NaN's payload, which the tensor amax keeps, may differ).
__device__ __forceinline__ float max_abs_nan(float a, float b) {
  float r;
  asm("max.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(fabsf(a)), "f"(fabsf(b)));
  return r;
}

template <int N>
__device__ __forceinline__ float lane_amax(const float (&v)[N]) {
  float a = fabsf(v[0]);
  FP4_UNROLL
  for (int j = 1; j < N; ++j) a = max_abs_nan(a, v[j]);
  return a;
}

// amax over `lanes` consecutive lanes (1, 2, 4 or 32), NaN-propagating; every lane gets the result.
__device__ __forceinline__ float lanes_amax(float a, int lanes) {
  for (int m = lanes >> 1; m >= 1; m >>= 1) a = num::amax_update(a, __shfl_xor_sync(kFull, a, m));
  return a;
}
__device__ __forceinline__ float lanes_block_amax(float a, int lanes) {
  for (int m = lanes >> 1; m >= 1; m >>= 1) a = max_abs_nan(a, __shfl_xor_sync(kFull, a, m));
  return a;
}

// numerics.h pairwise_sum32 over a 32-block held by 32 / N lanes x N: stages h >= N pair lane ^ (h / N)
// (both lanes add the same two values: IEEE addition commutes), stages h < N run in registers.
// Every lane gets the same bits.
template <int N>
__device__ __forceinline__ float lane_pairwise_sum32(float (&s)[N]) {
  FP4_UNROLL
  for (int h = 16; h >= N; h >>= 1) {
    FP4_UNROLL
    for (int j = 0; j < N; ++j) s[j] = s[j] + __shfl_xor_sync(kFull, s[j], h / N);
  }
  // In-register stages with constant bounds (a loop over h would index s[] at run time).
  if constexpr (N >= 16) {
    FP4_UNROLL
    for (int j = 0; j < 8; ++j) s[j] = s[j] + s[j + 8];
  }
  if constexpr (N >= 8) {
    FP4_UNROLL
    for (int j = 0; j < 4; ++j) s[j] = s[j] + s[j + 4];
  }
  s[0] = s[0] + s[2];
  s[1] = s[1] + s[3];
  return s[0] + s[1];
}

// QuEST scale byte of the 32-block held by 32 / N lanes (numerics.h quest_scale_byte). No early exit for
// non-finite blocks: the sums shuffle across the whole warp, so every lane must take part.
template <int N>
__device__ __forceinline__ uint8_t lane_quest_scale(const float (&v)[N], float amax) {
  const int E = num::is_finite(amax) ? num::exp_field(amax) : 0;
  const float norm = num::exp2i(-E);
  float n[N];
  FP4_UNROLL
  for (int j = 0; j < N; ++j) n[j] = v[j] * norm;
  float t[N];
  FP4_UNROLL
  for (int j = 0; j < N; ++j) t[j] = n[j];
  const float mean = num::mul_rn(lane_pairwise_sum32(t), 1.0f / 32.0f);
  FP4_UNROLL
  for (int j = 0; j < N; ++j) { const float d = n[j] - mean; t[j] = num::mul_rn(d, d); }
  const float var = lane_pairwise_sum32(t) * (1.0f / 32.0f);
  float sigma = __fsqrt_rn(var);
  sigma = sigma * num::exp2i(E);
  const float q = num::mul_rn(sigma, num::kQuestScale) + num::kQuestEps;
  return num::is_finite(amax) ? uint8_t(num::clamp_i(num::exp_field(q), -127, 127) + 127) : num::kE8M0NaN;
}

}  // namespace fp4gemm::cuda
