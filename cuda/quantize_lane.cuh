// The rowwise quantization of one lane's 16 consecutive values (RHT, scale rule, RTN / SR, packing,
// stores): the per-lane unit that the quantize kernels (quantize.cu) and the GEMM epilogue that
// writes D quantized (epilogue_quantize.cuh) share, so both give the bytes of src/quantize_cpu.cpp.
#pragma once

#include <algorithm>

#include "fp4gemm/fp4gemm.h"
#include "warp_line.cuh"

namespace fp4gemm::cuda {

using num::Codec;

enum class Pass { Amax, Quant };

// One output direction as the kernel sees it. The quantized view has lines of length K.
struct DirArgs {
  bool on = false;
  Codec codec{};
  int g = 0;
  uint32_t signs[8] = {};
  bool block_2d = false;
  uint64_t seed = 0, offset = 0;
  int64_t K = 0;
  uint8_t* data = nullptr;
  void* scale = nullptr;
  uint8_t* mask = nullptr;
  float* amax = nullptr;  // NVFP4: the tensor amax (amax-pass target); fp4_row: per-line amax [lines]
  bool scale_blocked = false;

  __device__ __forceinline__ void store_scale(int64_t line, int64_t blk, uint8_t s, int bs) const {
    const int64_t nb = K / bs;
    static_cast<uint8_t*>(scale)[scale_blocked ? num::blocked_offset(line, blk, nb) : line * nb + blk] = s;
  }
};

// The direction's codec with the format and rounding fixed at compile time (its switches fold away)
// and NVFP4's per-tensor parameter (S_enc or torchao's p) read from the device amax: no host sync.
template <Format F, Rounding Rd>
__device__ __forceinline__ Codec kernel_codec(const DirArgs& d) {
  Codec c = d.codec;
  c.fmt = F;
  c.rounding = Rd;
  if (d.on && F == Format::NVFP4)
    c.tensor = c.rule == ScaleRule::TE ? num::nv_encode_scale(*d.amax) : num::nv_torchao_tensor_scale(*d.amax);
  return c;
}

// fn(CodecTag<F, Rd>{}) with fmt and rounding as compile-time constants: the one run-time ->
// compile-time codec switch of the quantize launches and the quantizing GEMM epilogue. Only the
// formats listed are instantiated (the epilogue has no fp4_row); any other fmt calls nothing.
template <Format F, Rounding Rd>
struct CodecTag {
  static constexpr Format fmt = F;
  static constexpr Rounding rounding = Rd;
};
#pragma nv_exec_check_disable
template <Format... Fs, class Fn>
__host__ __device__ __forceinline__ void with_codec(Format fmt, bool sr, Fn&& fn) {
  (void)((fmt == Fs && (sr ? fn(CodecTag<Fs, Rounding::SR>{}) : fn(CodecTag<Fs, Rounding::RTN>{}), true)) || ...);
}

__device__ __forceinline__ void atomic_amax(float* p, float a) {
  atomicMax(reinterpret_cast<unsigned*>(p), num::f32_bits(a));  // |x| bits order like floats; NaN on top
}

// SR bits are drawn per run of kSrRun values, right before the run is encoded: a columnwise MXFP4
// block keeps its 32 values live but only one run's random numbers (all 32 at once spilled).
constexpr int kSrRun = 16;

// The 16-bit SR numbers of positions p0 .. p0 + N - 1 (p0 % 8 == 0): one Philox call per 8.
template <int N>
__device__ __forceinline__ void sr_numbers(uint32_t (&r)[N], const DirArgs& d, num::Stream stream, uint64_t p0) {
  FP4_UNROLL
  for (int q = 0; q < N / 8; ++q) {
    const num::U32x4 w = num::sr_bits8(d.seed, d.offset, stream, (p0 >> 3) + q);
    FP4_UNROLL
    for (int j = 0; j < 8; ++j) r[8 * q + j] = num::sr_number(w, j);
  }
}

// Encode N values: code i goes to bits 4 (i % 8) of words[i / 8] (little-endian packed bytes, two codes
// each); enc(i, v[i], r) gives code i as bits(2^23 + code | sign) (kPackBias), r its 16-bit SR number
// (positions pos .. pos + N - 1 of `stream`, pos % 8 == 0; drawn only for SR).
template <int N, class Enc>
__device__ __forceinline__ void pack_codes(const float (&v)[N], const DirArgs& d, bool sr, num::Stream stream,
                                            int64_t pos, uint32_t (&words)[N / 8], Enc&& enc) {
  constexpr int kRun = N < kSrRun ? N : kSrRun;
  FP4_UNROLL
  for (int r0 = 0; r0 < N; r0 += kRun) {
    uint32_t rbits[kRun] = {};
    if (sr) sr_numbers(rbits, d, stream, uint64_t(pos + r0));
    FP4_UNROLL
    for (int w = 0; w < kRun / 8; ++w) {  // eight codes per word, packed by multiply-adds
      uint32_t acc = 0;
      FP4_UNROLL
      for (int j = 0; j < 8; ++j) acc += enc(r0 + 8 * w + j, v[r0 + 8 * w + j], rbits[8 * w + j]) * (1u << (4 * j));
      words[(r0 + 8 * w) / 8] = acc - num::kPackBias;
    }
  }
}

// A block's values with scale s through the codec (scaled value, then E2M1): code i of v[i]; clip bit
// i (|scaled| >= 6) only when a QuEST mask is written.
template <int N, bool kMask>
__device__ __forceinline__ void encode_runs(const float (&v)[N], const DirArgs& d, const Codec& codec, uint32_t s,
                                            float mult, num::Stream stream, int64_t pos, uint32_t (&words)[N / 8],
                                            uint32_t& clipped) {
  pack_codes(v, d, codec.rounding == Rounding::SR, stream, pos, words, [&](int i, float x, uint32_t r) {
    const float a = codec.scaled(x, mult, s);
    if (kMask) clipped |= (num::abs_f(a) >= num::kE2M1Max ? 1u : 0u) << i;
    return codec.encode_bits(a, r);
  });
}

// NVFP4's element multiplier is a function of the block's E4M3 scale byte (0..126; 127 is NaN) and
// the tensor's S_enc (or p): in the rowwise-only and the block kernels a table per CTA (and direction),
// filled by codec.multiplier itself, replaces a division per block. Other formats pass no table, nor
// does the tile kernel (its 1 KB more shared memory per CTA measured slower: docs/kernels.md).
constexpr int kNvScales = 128;
__device__ __forceinline__ void fill_nv_multipliers(float* table, const Codec& codec) {
  for (int s = threadIdx.x; s < kNvScales; s += blockDim.x) table[s] = codec.multiplier(uint32_t(s));
}

// A block's N values -> N/8 words of packed codes (SR bits for the positions pos .. pos+N-1 of
// `stream`), and the clip bits when a QuEST mask is written. A NaN block (scale NaN) encodes to zeros.
template <int N>
__device__ __forceinline__ void encode_block(const float (&v)[N], const DirArgs& d, const Codec& codec, uint32_t s,
                                             const float* nv_mult, num::Stream stream, int64_t pos,
                                             uint32_t (&words)[N / 8], uint32_t& clipped) {
  FP4_UNROLL
  for (int w = 0; w < N / 8; ++w) words[w] = 0;
  if (codec.scale_is_nan(s)) return;
  const float mult = nv_mult ? nv_mult[s] : codec.multiplier(s);
  if (d.mask) encode_runs<N, true>(v, d, codec, s, mult, stream, pos, words, clipped);
  else encode_runs<N, false>(v, d, codec, s, mult, stream, pos, words, clipped);
}

// Rowwise, one lane's share: N consecutive values v of line `line` starting at column `col` (segment
// index seg among kSegs lanes of the row, all in one warp). All lanes of the warp must call this
// (shuffles); `live` lanes write. amax2d: the lane's 16x16 tile amax when block_2d.
template <Pass P, int kSegs, bool kFlipped = false, int N>
__device__ __forceinline__ void rowwise_lane(float (&v)[N], bool live, int64_t line, int64_t col, int seg,
                                             const DirArgs& d, const Codec& codec, const float* nv_mult, float amax2d,
                                             float& warp_amax) {
  static_assert(N == 16, "both kernels give a lane 16 values (one 8-byte store of codes)");
  const bool nv = codec.fmt == Format::NVFP4, row_fmt = codec.fmt == Format::FP4Row;
  const int bs = nv ? num::kNvBlock : num::kMxBlock, block_lanes = bs / N;
  if (d.g) lane_hadamard<kFlipped>(v, d.g, d.signs, seg);
  const int64_t pos = line * d.K + col;
  if (P == Pass::Amax) {  // integer amax: the tensor / line amax keeps numerics.h's NaN bits
    float a = 0.0f;
    if (live)
      FP4_UNROLL
      for (int j = 0; j < N; ++j) a = num::amax_update(a, v[j]);
    if (row_fmt) {
      const float ra = lanes_amax(a, kSegs);
      if (live && seg == 0) atomic_amax(d.amax + line, ra);
    } else {
      warp_amax = num::amax_update(warp_amax, a);
    }
    return;
  }
  uint32_t s;
  if (row_fmt) s = live ? codec.scale_from_amax(d.amax[line]) : 0u;
  else {
    const float a = d.block_2d ? amax2d : lanes_block_amax(lane_amax(v), block_lanes);
    s = codec.rule == ScaleRule::Quest ? lane_quest_scale(v, a) : codec.scale_from_amax(a);
  }
  if (!live) return;
  uint32_t words[N / 8], clipped = 0;
  encode_block(v, d, codec, s, nv_mult, num::Stream::Rowwise, pos, words, clipped);
  *reinterpret_cast<uint2*>(d.data + pos / 2) = make_uint2(words[0], words[1]);
  if (d.mask) *reinterpret_cast<uint16_t*>(d.mask + pos / 8) = uint16_t(clipped);
  if (row_fmt) {
    if (col == 0) static_cast<float*>(d.scale)[line] = num::bits_f32(s);
  } else if (seg % block_lanes == 0) {
    d.store_scale(line, col / bs, uint8_t(s), bs);
  }
}

// The kernels' view of one direction of a quantize() call; line_amax: fp4_row's per-line amax scratch.
inline DirArgs make_dir(const QuantizeConfig* cfg, const QuantizedOut* out, int64_t K, float* line_amax) {
  DirArgs d;
  if (!cfg) return d;
  d.on = true;
  d.codec = Codec{cfg->fmt, cfg->scale_rule, cfg->rounding, cfg->prescale, 0.0f};
  d.g = cfg->hadamard;
  std::copy(cfg->hadamard_signs, cfg->hadamard_signs + 8, d.signs);
  d.block_2d = cfg->block_2d;
  d.seed = cfg->seed;
  d.offset = cfg->offset;
  d.K = K;
  d.data = out->data;
  d.scale = out->scale;
  d.mask = out->clip_mask;
  d.scale_blocked = out->scale_blocked;
  d.amax = cfg->fmt == Format::NVFP4 ? out->amax : line_amax;
  return d;
}

// The block-per-thread kernels, the fast paths for contiguous bf16 input: each runs and returns true,
// or returns false where it does not apply (the caller runs the lane or tile kernel).
// quantize_rowblocks.cu: rowwise only. quantize_tileblocks.cu: rowwise and columnwise from one read.
// op: MXFP4 only, K % 128 == 0: also the FP8 GEMM's A (OperandAOut, cuda_api.h).
struct OperandAOut;
bool quantize_rowblocks(const void* x, DType dtype, int64_t R, int64_t C, int64_t ld, const DirArgs& row,
                        cudaStream_t stream, const OperandAOut* op = nullptr);
// amax_pass: NVFP4's amax pre-pass of both directions (their `on` flags) instead of the quantization.
bool quantize_tileblocks(const void* x, DType dtype, int64_t R, int64_t C, int64_t ld, const DirArgs& row,
                         const DirArgs& col, bool amax_pass, cudaStream_t stream);
// False when FP4GEMM_QUANTIZE_KERNEL=lanes (A/B runs, debugging: the lane and tile kernels everywhere).
// Read per call.
bool block_kernels_enabled();

}  // namespace fp4gemm::cuda
