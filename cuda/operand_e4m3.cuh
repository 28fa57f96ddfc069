// E4M3 bytes of the FP8 GEMM operand (gemm_operand.cuh) from packed E2M1 codes: code * 2^d for a
// block shift d of the E4M3 window, through a per-d table of the 8 magnitudes' bytes. Shared by the
// fold (gemm_operand.cu) and the quantize kernel that writes the operand itself (quantize_rowblocks.cu).
#pragma once

#include <cstdint>

#include "fp4gemm/numerics.h"
#include "gemm_operand.cuh"

namespace fp4gemm::cuda::operand {

constexpr int kShifts = kWindowHigh - kWindowLowE4M3 + 1;  // table per d in [kWindowLowE4M3, kWindowHigh]
constexpr uint64_t kMagnitudeBits = 0x7777777777777777ull;   // 16 codes are zero iff these bits are

// E4M3 bytes of the magnitudes of codes 0..7 times 2^d, byte c of the word (d in the window).
__device__ inline uint64_t e4m3_table(int d) {
  uint64_t t = 0;
  for (int c = 1; c < 8; ++c)
    t |= uint64_t(num::e4m3_rne_satfinite(num::e2m1_value(uint8_t(c)) * num::exp2i(d))) << (8 * c);
  return t;
}

// Four packed codes (in the low 16 bits of src) as byte-permute selectors: their magnitudes (c & 7)
// pick bytes of an 8-byte table; their sign bits pick 0x00 or 0x80 (sign_bytes).
__device__ __forceinline__ uint32_t magnitude_selectors(uint32_t src) { return src & 0x7777u; }
__device__ __forceinline__ uint32_t sign_bytes(uint32_t src) { return __byte_perm(0x8000u, 0u, (src >> 3) & 0x1111u); }

// 16 codes (element 2i in the low nibble of byte i) -> 16 E4M3 bytes through the table.
__device__ __forceinline__ uint4 e4m3_bytes(uint2 codes, uint64_t table) {
  const uint32_t lo = uint32_t(table), hi = uint32_t(table >> 32);
  uint32_t out[4];
  FP4_UNROLL
  for (int w = 0; w < 4; ++w) {
    const uint32_t src = (w < 2 ? codes.x : codes.y) >> (16 * (w & 1));  // codes 4w .. 4w + 3
    out[w] = __byte_perm(lo, hi, magnitude_selectors(src)) | sign_bytes(src);
  }
  return make_uint4(out[0], out[1], out[2], out[3]);
}

__device__ __forceinline__ bool nonzero(uint2 c) { return ((uint64_t(c.y) << 32 | c.x) & kMagnitudeBits) != 0; }

}  // namespace fp4gemm::cuda::operand
