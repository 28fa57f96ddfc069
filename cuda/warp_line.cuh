// Warp-level steps on one "line" of L = 32*V values (lane l holds elements i = l + 32*j): the GPU form
// of numerics.h's per-block steps. Every function performs exactly the fp32 operations of its
// numerics.h counterpart, so the results are bit-identical to the CPU path whatever the lane layout.
#pragma once

#include "common.cuh"

namespace fp4gemm::cuda {

// x <- (x . s) H_g / sqrt(g) blockwise along the line (numerics.h hadamard_block).
template <int V>
__device__ __forceinline__ void line_hadamard(float (&v)[V], int g, const uint32_t (&signs)[8], int lane) {
  FP4_UNROLL
  for (int j = 0; j < V; ++j) {
    // Element i = lane + 32j sits at (i mod g) in its g-block (lines start at multiples of g):
    // sign word (j mod g/32), bit (lane mod g). Selected without a run-time array index.
    const int word = g >= 32 ? (j & ((g >> 5) - 1)) : 0;
    uint32_t w = signs[0];
    FP4_UNROLL
    for (int k = 1; k < 8; ++k) w = word == k ? signs[k] : w;
    if ((w >> (lane & (g - 1) & 31)) & 1u) v[j] = -v[j];
  }
  for (int h = 1; h < g; h <<= 1) {
    if (h < 32) {
      const bool upper = lane & h;  // holds x[j + h]: becomes a - b = partner - mine
      FP4_UNROLL
      for (int j = 0; j < V; ++j) {
        const float other = __shfl_xor_sync(kFull, v[j], h);
        v[j] = upper ? other - v[j] : v[j] + other;
      }
    } else {
      const int d = h >> 5;
      FP4_UNROLL
      for (int j = 0; j < V; ++j)
        if (!(j & d)) {
          const float a = v[j], b = v[j + d];
          v[j] = a + b;
          v[j + d] = a - b;
        }
    }
  }
  const float scale = num::inv_sqrt_pow2(g);
  FP4_UNROLL
  for (int j = 0; j < V; ++j) v[j] = v[j] * scale;
}

// amax over `width` consecutive lanes (16 or 32), NaN-propagating; every lane gets the result.
__device__ __forceinline__ float group_amax(float a, int width) {
  for (int m = width >> 1; m >= 1; m >>= 1) a = num::amax_update(a, __shfl_xor_sync(kFull, a, m));
  return a;
}
__device__ __forceinline__ float warp_sum_pairwise(float s) {
  // Order of numerics.h pairwise_sum32 over lanes: (i, i+16), then (i, i+8), ..., (i, i+1).
  for (int m = 16; m >= 1; m >>= 1) s = s + __shfl_xor_sync(kFull, s, m);
  return s;
}

// QuEST scale byte of the 32-value block held one value per lane (numerics.h quest_scale_byte).
__device__ __forceinline__ uint8_t warp_quest_scale(float v, float amax) {
  if (!num::is_finite(amax)) return num::kE8M0NaN;
  const int E = num::exp_field(amax);
  const float n = v * num::exp2i(-E);
  const float mean = warp_sum_pairwise(n) * (1.0f / 32.0f);
  const float d = n - mean;
  const float var = warp_sum_pairwise(d * d) * (1.0f / 32.0f);
  float sigma = __fsqrt_rn(var);
  sigma = sigma * num::exp2i(E);
  const float t = sigma * num::kQuestScale + num::kQuestEps;
  return uint8_t(num::clamp_i(num::exp_field(t), -127, 127) + 127);
}

// SR words for the line's elements: lane l draws Philox for the 4-element groups l + 32*t of the line
// (group index = first_group + l + 32*t), then element i = l + 32*j takes word i % 4 of group i / 4.
template <int V>
__device__ __forceinline__ void line_sr_bits(uint32_t (&r)[V], uint64_t seed, uint64_t offset, num::Stream stream,
                                             uint64_t first_group, int lane) {
  static_assert(V % 4 == 0, "one Philox call covers 4 elements");
  num::U32x4 w[V / 4];
  FP4_UNROLL
  for (int t = 0; t < V / 4; ++t) w[t] = num::sr_bits4(seed, offset, stream, first_group + uint64_t(lane + 32 * t));
  const int word = lane & 3;
  FP4_UNROLL
  for (int j = 0; j < V; ++j) {
    const int src = (lane >> 2) + 8 * (j & 3), t = j >> 2;
    const uint32_t x = __shfl_sync(kFull, w[t].x, src), y = __shfl_sync(kFull, w[t].y, src);
    const uint32_t z = __shfl_sync(kFull, w[t].z, src), q = __shfl_sync(kFull, w[t].w, src);
    r[j] = word == 0 ? x : word == 1 ? y : word == 2 ? z : q;
  }
}

}  // namespace fp4gemm::cuda
