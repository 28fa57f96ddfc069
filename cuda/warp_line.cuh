// Register-level steps of the quantization kernel: the GPU form of numerics.h's per-block steps.
// Rowwise, a lane holds 8 consecutive values of a row (lanes of one row form a "segment group");
// every function performs exactly the fp32 operations of its numerics.h counterpart, so results are
// bit-identical to the CPU path.
#pragma once

#include "common.cuh"

namespace fp4gemm::cuda {

constexpr int kPerLane = 8;

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
    if (h >= g) break;
    FP4_UNROLL
    for (int k = 0; k < N; ++k)
      if (!(k & h)) {
        const float a = v[k], b = v[k + h];
        v[k] = a + b;
        v[k + h] = a - b;
      }
  }
}

// x <- (x . s) H_g / sqrt(g) on 8 consecutive values per lane; element index (within the line,
// which starts at a multiple of g) = 8 * seg + j. Stages h < 8 in registers, h >= 8 across lanes.
__device__ __forceinline__ void lane8_hadamard(float (&v)[kPerLane], int g, const uint32_t (&signs)[8], int seg) {
  const int base = (kPerLane * seg) & (g - 1);
  const uint32_t w = sign_word(signs, base >> 5) >> (base & 31);  // bit j: sign of element j
  FP4_UNROLL
  for (int j = 0; j < kPerLane; ++j) v[j] = num::bits_f32(num::f32_bits(v[j]) ^ ((w >> j) & 1u) << 31);
  register_butterflies(v, g);
  for (int h = kPerLane; h < g; h <<= 1) {
    const int d = h / kPerLane;
    // The lane holding x[i + h] becomes a - b = partner + (-mine): IEEE subtraction is exactly that.
    const uint32_t flip = (seg & d) ? 0x80000000u : 0u;
    FP4_UNROLL
    for (int j = 0; j < kPerLane; ++j) {
      const float other = __shfl_xor_sync(kFull, v[j], d);
      v[j] = other + num::bits_f32(num::f32_bits(v[j]) ^ flip);
    }
  }
  const float scale = num::inv_sqrt_pow2(g);
  FP4_UNROLL
  for (int j = 0; j < kPerLane; ++j) v[j] = v[j] * scale;
}

// Hadamard steps on the N consecutive values i0 .. i0+N-1 of a line held by one thread (i0 % N == 0,
// N <= 32, so they share one sign word): the signs and the stages h < min(g, N), and the 1/sqrt(g)
// multiply when the whole g-block is here. Larger stages are done by the caller (shared memory).
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

__device__ __forceinline__ float lane8_amax(const float (&v)[kPerLane]) {
  float a = 0.0f;
  FP4_UNROLL
  for (int j = 0; j < kPerLane; ++j) a = num::amax_update(a, v[j]);
  return a;
}

// amax over `lanes` consecutive lanes (1, 2, 4 or 32), NaN-propagating; every lane gets the result.
__device__ __forceinline__ float lanes_amax(float a, int lanes) {
  for (int m = lanes >> 1; m >= 1; m >>= 1) a = num::amax_update(a, __shfl_xor_sync(kFull, a, m));
  return a;
}

// numerics.h pairwise_sum32 over a 32-block held by 4 lanes x 8: (i, i+16) is lane ^ 2, (i, i+8)
// lane ^ 1, then (j, j+4), (j, j+2), (j, j+1) in registers. Every lane gets the same bits.
__device__ __forceinline__ float lane8_pairwise_sum32(float (&s)[kPerLane]) {
  FP4_UNROLL
  for (int j = 0; j < kPerLane; ++j) s[j] = s[j] + __shfl_xor_sync(kFull, s[j], 2);
  FP4_UNROLL
  for (int j = 0; j < kPerLane; ++j) s[j] = s[j] + __shfl_xor_sync(kFull, s[j], 1);
  FP4_UNROLL
  for (int j = 0; j < 4; ++j) s[j] = s[j] + s[j + 4];
  s[0] = s[0] + s[2];
  s[1] = s[1] + s[3];
  return s[0] + s[1];
}

// QuEST scale byte of the 32-block held by 4 lanes (numerics.h quest_scale_byte). No early exit for
// non-finite blocks: the sums shuffle across the whole warp, so every lane must take part.
__device__ __forceinline__ uint8_t lane8_quest_scale(const float (&v)[kPerLane], float amax) {
  const int E = num::is_finite(amax) ? num::exp_field(amax) : 0;
  const float norm = num::exp2i(-E);
  float n[kPerLane];
  FP4_UNROLL
  for (int j = 0; j < kPerLane; ++j) n[j] = v[j] * norm;
  float t[kPerLane];
  FP4_UNROLL
  for (int j = 0; j < kPerLane; ++j) t[j] = n[j];
  const float mean = lane8_pairwise_sum32(t) * (1.0f / 32.0f);
  FP4_UNROLL
  for (int j = 0; j < kPerLane; ++j) { const float d = n[j] - mean; t[j] = d * d; }
  const float var = lane8_pairwise_sum32(t) * (1.0f / 32.0f);
  float sigma = __fsqrt_rn(var);
  sigma = sigma * num::exp2i(E);
  const float q = sigma * num::kQuestScale + num::kQuestEps;
  return num::is_finite(amax) ? uint8_t(num::clamp_i(num::exp_field(q), -127, 127) + 127) : num::kE8M0NaN;
}

}  // namespace fp4gemm::cuda
