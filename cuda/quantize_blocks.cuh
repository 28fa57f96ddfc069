// The block-per-thread machinery of the quantize kernels that own whole g-blocks per thread
// (quantize_rowblocks.cu: rowwise; quantize_tileblocks.cu: rowwise and columnwise from one tile):
// the TMA ring's pieces (tensor map, mbarrier wait, bulk tensor load) and the encode of one thread's
// 64 consecutive values of an output line (block amaxes, scales, codes). Every value goes through the
// fp32 operations of numerics.h (Codec), so the bytes equal the CPU path's.
#pragma once

#include <cuda.h>  // CUtensorMap
#include <cudaTypedefs.h>  // PFN_cuTensorMapEncodeTiled

#include <string>
#include <type_traits>

#include "quantize_lane.cuh"

namespace fp4gemm::cuda::blocks {

constexpr int kValues = 64;  // values per thread and pass (one 128-byte row of bf16)

__device__ __forceinline__ uint32_t smem_addr(const void* p) { return uint32_t(__cvta_generic_to_shared(p)); }

__device__ __forceinline__ void mbar_init(uint32_t bar) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(bar) : "memory");
}

__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred p;\nWAIT_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
      "@!p bra WAIT_%=;\n}" ::"r"(bar), "r"(parity) : "memory");
}

// Thread 0 readies the ring's kStages full-barriers (one arrival each: the TMA issuer's) and
// prefetches the tensor map; the caller's __syncthreads publishes them.
template <int kStages>
__device__ __forceinline__ void ring_init(uint64_t (&full)[kStages], const CUtensorMap* map) {
  if (threadIdx.x != 0) return;
  FP4_UNROLL
  for (int s = 0; s < kStages; ++s) mbar_init(smem_addr(&full[s]));
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  asm volatile("prefetch.tensormap [%0];" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}

// One TMA load of `bytes` (the box) at coordinates (x, y) into dst, completing on bar.
__device__ __forceinline__ void tma_load_2d(const CUtensorMap* map, uint32_t dst, uint32_t bar, int x, int y, int bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];"
      ::"r"(dst), "l"(reinterpret_cast<uint64_t>(map)), "r"(x), "r"(y), "r"(bar) : "memory");
}

// Before the barrier that lets TMA refill a stage: the refill is a write of the async proxy, so each
// reader orders its (generic-proxy) reads before it with a proxy fence; a barrier alone let TMA
// overwrite reads still in flight (rare wrong chunks, session 17).
__device__ __forceinline__ void release_stage() {
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
  __syncthreads();
}

// RHT sign flips as XOR masks per bf16 pair (piece_values): element j < n of a thread's values takes
// the sign of element j % g of the g-block (signs: the direction's sign bits), bit 16 (j % 2) + 15 of
// flip[j / 2]. g = 0: no flips.
inline void pair_flips(uint32_t* flip, const uint32_t (&signs)[8], int g, int n) {
  for (int j = 0; g && j < n; ++j)
    if (num::hadamard_negative(signs, j % g)) flip[j / 2] |= 0x8000u << (16 * (j % 2));
}

// The block kernels' scale rules as compile-time constants: fn(std::integral_constant<ScaleRule, R>{})
// with R = rule, for the rules of format F (MXFP4: floor, rceil, even; NVFP4: TE, torchao).
template <Format F, class Fn>
void with_block_rule(ScaleRule rule, Fn&& fn) {
  using std::integral_constant;
  if constexpr (F == Format::MXFP4) {
    if (rule == ScaleRule::Floor) fn(integral_constant<ScaleRule, ScaleRule::Floor>{});
    else if (rule == ScaleRule::RCeil) fn(integral_constant<ScaleRule, ScaleRule::RCeil>{});
    else fn(integral_constant<ScaleRule, ScaleRule::Even>{});
  } else {
    if (rule == ScaleRule::TE) fn(integral_constant<ScaleRule, ScaleRule::TE>{});
    else fn(integral_constant<ScaleRule, ScaleRule::Torchao>{});
  }
}

// A 2D tensor map over rows of `row_bytes` bytes (`rows` of them, `pitch` bytes apart), read in
// boxes of box_bytes x box_rows with the 128-byte swizzle (box_bytes <= 128); rows past the end read
// as zeros.
inline CUtensorMap tensor_map_2d(const void* x, int64_t row_bytes, int64_t rows, int64_t pitch, int box_bytes,
                                 int box_rows) {
  static const PFN_cuTensorMapEncodeTiled_v12000 encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult q{};
    FP4_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &q));
    if (q != cudaDriverEntryPointSuccess || !fn) throw std::runtime_error("fp4gemm: cuTensorMapEncodeTiled not found");
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
  }();
  CUtensorMap m;
  const cuuint64_t dims[2] = {cuuint64_t(row_bytes), cuuint64_t(rows)}, strides[1] = {cuuint64_t(pitch)};
  const cuuint32_t boxes[2] = {cuuint32_t(box_bytes), cuuint32_t(box_rows)}, ones[2] = {1, 1};
  const CUresult r = encode(&m, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, const_cast<void*>(x), dims, strides, boxes, ones,
                            CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) throw std::runtime_error("fp4gemm: cuTensorMapEncodeTiled failed (" + std::to_string(int(r)) + ")");
  return m;
}

// 16 bytes q (0..7) of 128-byte row `row` of a stage that TMA wrote with the 128-byte swizzle (it
// XORs q with row % 8, so 8 threads reading the same q of 8 consecutive rows hit distinct banks).
__device__ __forceinline__ uint4 swizzled_read16(uint32_t stage, int row, int q) {
  uint4 v;
  // "memory": the read must stay before the barrier that lets TMA refill the stage.
  asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(stage + row * 128 + ((q ^ (row & 7)) << 4))
               : "memory");
  return v;
}

// The kValues bf16 values of 128-byte row `row` of a stage as fp32, with the RHT signs applied: the
// sign bits of each raw bf16 pair k flipped by flip[k] (bit 15 / 31 for its element 2k / 2k + 1; a
// flip commutes with the exact conversion), then each half converted by a shift / mask.
__device__ __forceinline__ void piece_values(float (&v)[kValues], uint32_t stage, int row, const uint32_t* flip, bool g) {
  FP4_UNROLL
  for (int c = 0; c < kValues / 8; ++c) {  // 16 bytes: 8 values
    const uint4 u = swizzled_read16(stage, row, c);
    const uint32_t raw[4] = {u.x, u.y, u.z, u.w};
    FP4_UNROLL
    for (int k = 0; k < 4; ++k) {
      const uint32_t w = g ? raw[k] ^ flip[4 * c + k] : raw[k];
      v[8 * c + 2 * k] = num::bits_f32(w << 16);
      v[8 * c + 2 * k + 1] = num::bits_f32(w & 0xFFFF0000u);
    }
  }
}

// MXFP4 block encode without the multiply by its scale 2^-e per element (numerics.h e2m1_scaled):
// v = y * 2^-e is read off y by the grid. kShift > 0: u holds the RHT output before its 1/sqrt(g) =
// 2^-kShift (g = 16, 64), which the grid takes too. With the 3/4 prescale one multiply per element
// remains, by the exact constant 3/4 2^-kShift; its rounding equals the CPU's rounding of y * (3/4
// 2^-e) wherever the result is normal. Applies for e >= kMinExp: there a y (or u 2^-kShift, or
// 3/4 y) that is not exact is below 2^-126, so |v| < 2^(-126-e) <= 2^-26, where every code is zero
// and every SR threshold 0 in both forms. Returns false (the caller runs the plain form) for a NaN
// block and for e < kMinExp (block amax < 2^-98). e + kShift <= 126 always (u is finite), inside
// e2m1_scaled's range.
constexpr int kMinExp = -100;
template <Rounding Rd, int kShift, int N>
__device__ __forceinline__ bool encode_mx_scaled(const float (&u)[N], const DirArgs& d, bool prescale, uint32_t s,
                                                 num::Stream stream, int64_t pos, uint32_t (&words)[N / 8]) {
  const int e = int(s) - 127;
  if (s == num::kE8M0NaN || e < kMinExp) return false;
  auto encode = [&](auto kPre) {  // the prescale branch outside the per-element loop
    constexpr bool kPrescale = decltype(kPre)::value;
    const num::E2M1Scaled grid = num::e2m1_scaled(kPrescale ? e : e + kShift);
    pack_codes(u, d, Rd == Rounding::SR, stream, pos, words, [&](int, float x, uint32_t r) {
      const float y = kPrescale ? x * (0.75f * num::exp2i(-kShift)) : x;  // an exact constant
      if constexpr (Rd == Rounding::SR) return num::e2m1_sr_scaled_bits(y, grid, r);
      else return num::e2m1_rtn_scaled_bits(y, grid);
    });
  };
  if (prescale) encode(std::true_type{});
  else encode(std::false_type{});
  return true;
}

// One thread's kValues consecutive values v of an output line, at positions pos .. pos + 63 of
// `stream` (pos a multiple of 64): codes into words (little-endian nibbles), block scale bytes into
// scales. kShift: v holds RHT outputs still to be multiplied by 2^-kShift (MXFP4 takes it in the
// encoder; otherwise the multiply happens here, as numerics.h hadamard_block does it).
template <Format F, Rounding Rd, int kShift>
__device__ __forceinline__ void encode_values(const float (&v)[kValues], const DirArgs& d, const Codec& codec,
                                              const float* nv_mult, num::Stream stream, int64_t pos,
                                              uint32_t (&words)[kValues / 8],
                                              uint8_t (&scales)[kValues / (F == Format::NVFP4 ? num::kNvBlock : num::kMxBlock)]) {
  constexpr int BS = F == Format::NVFP4 ? num::kNvBlock : num::kMxBlock;
  FP4_UNROLL
  for (int b = 0; b < kValues / BS; ++b) {
    float u[BS];
    FP4_UNROLL
    for (int i = 0; i < BS; ++i) u[i] = v[b * BS + i];
    // The block amax of y = u 2^-kShift is the amax of u times 2^-kShift: rounding is monotonic.
    const float amax = lane_amax(u) * num::exp2i(-kShift);
    const uint32_t sc = codec.scale_from_amax(amax);
    scales[b] = uint8_t(sc);
    uint32_t bw[BS / 8], clipped = 0;
    bool done = false;
    if constexpr (F == Format::MXFP4) done = encode_mx_scaled<Rd, kShift>(u, d, codec.prescale, sc, stream, pos + b * BS, bw);
    if (!done) {
      if (kShift) {
        FP4_UNROLL
        for (int i = 0; i < BS; ++i) u[i] = u[i] * num::exp2i(-kShift);  // = inv_sqrt_pow2(g): the deferred multiply
      }
      encode_block(u, d, codec, sc, nv_mult, stream, pos + b * BS, bw, clipped);
    }
    FP4_UNROLL
    for (int i = 0; i < BS / 8; ++i) words[b * (BS / 8) + i] = bw[i];
  }
}

// A thread's 64 codes (32 bytes) and kValues / BS scale bytes at positions pos .. pos + 63 of d's
// output (pos % 64 == 0, so the code bytes are 16-byte aligned and the canonical scale bytes aligned
// for one store when K is a multiple of 64).
template <int BS>
__device__ __forceinline__ void store_values(const DirArgs& d, int64_t pos, const uint32_t (&words)[kValues / 8],
                                             const uint8_t (&scales)[kValues / BS]) {
  FP4_UNROLL
  for (int i = 0; i < kValues / 32; ++i)
    reinterpret_cast<uint4*>(d.data + pos / 2)[i] = make_uint4(words[4 * i], words[4 * i + 1], words[4 * i + 2], words[4 * i + 3]);
  if (d.scale_blocked) {
    FP4_UNROLL
    for (int b = 0; b < kValues / BS; ++b) d.store_scale(pos / d.K, (pos % d.K) / BS + b, scales[b], BS);
  } else {
    uint8_t* dst = static_cast<uint8_t*>(d.scale) + pos / BS;
    const uint32_t s = uint32_t(scales[0]) | uint32_t(scales[1]) << 8;
    if constexpr (kValues / BS == 2) *reinterpret_cast<uint16_t*>(dst) = uint16_t(s);
    else *reinterpret_cast<uint32_t*>(dst) = s | uint32_t(scales[2]) << 16 | uint32_t(scales[3]) << 24;
  }
}

// The 1/sqrt(g) that the MXFP4 encoder takes as 2^-kShift (g = 16, 64: a power of two); 0 otherwise.
template <Format F, int G>
constexpr int encoder_shift() { return F == Format::MXFP4 ? (G == 16 ? 2 : G == 64 ? 3 : 0) : 0; }

// Butterfly stages h = 1 .. min(G, 64)/2 of numerics.h hadamard_block on every G-block of v (its sign
// flips came with the values), then its 1/sqrt(G) multiply unless the encoder takes it (kShift).
template <int G, int kShift>
__device__ __forceinline__ void block_hadamard(float (&v)[kValues]) {
  register_butterflies(v, G < kValues ? G : kValues);  // a constant here: the stage loop ends at compile time
  if (kShift || G > kValues) return;  // G > 64: the caller's last stage, then the multiply
  const float scale = num::inv_sqrt_pow2(G);
  FP4_UNROLL
  for (int k = 0; k < kValues; ++k) v[k] = v[k] * scale;
}

}  // namespace fp4gemm::cuda::blocks
