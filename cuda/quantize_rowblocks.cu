// Rowwise quantization with whole Hadamard blocks per thread: the fast path of rowwise-only calls on
// contiguous input (quantize.cu's quantize() calls quantize_rowblocks(), which runs it where it applies;
// elsewhere the lane kernel quantize_rows runs).
//
// Why: the lane kernel (quantize_rows) gives a lane 16 values, so an RHT of g = 64 / 128 needs 2 / 3
// cross-lane stages (a shuffle per value and stage; the SM shuffles 32 values per clock, a quarter
// of its issue rate), a shuffle tree per block amax, run-time g loops and per-lane sign masks. Here
// a thread owns W = max(g, 64) consecutive values of a row: every butterfly stage, the block amaxes
// and the sign flips stay in its registers, and the sign masks are the same for every thread (a
// thread's W values start at a multiple of g), so they are kernel parameters. The input reaches
// shared memory by TMA (128-byte swizzle, so that a thread's 128-byte piece reads bank-conflict free)
// in a ring of stages, at no instruction cost per element. Every value goes through the fp32
// operations of numerics.h (hadamard_block, Codec), so the bytes equal the CPU path's.
#include <cuda.h>  // CUtensorMap
#include <cudaTypedefs.h>  // PFN_cuTensorMapEncodeTiled

#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "quantize_lane.cuh"

namespace fp4gemm::cuda {
namespace {

constexpr int kRbThreads = 128;  // threads per CTA; a stage holds one W-value chunk per thread
constexpr int kRbPiece = 128;    // bytes per TMA row (the span of the 128-byte swizzle)

// Elements per thread for an RHT block g (0 = none): W = max(g, 64), so the per-thread work (scales,
// stores, addresses) is shared by at least 64 values.
constexpr int rowblock_width(int g) { return g > 64 ? g : 64; }

// Input elements are bf16 (2 bytes): the only type dispatched here.
constexpr int kRbElemBytes = 2;

template <int W>
struct RowBlockShape {
  static constexpr int kPieces = W * kRbElemBytes / kRbPiece;  // 128-byte pieces per thread
  static constexpr int kStageBytes = kRbThreads * W * kRbElemBytes;
  // Two stages: at W = 64 shared memory then allows 6 CTAs per SM and registers decide (4-5 CTAs); at
  // W = 128 it is 3 either way. More warps hide more of the per-element dependency chains ("wait"
  // stalls in ncu); measured 2-4 % faster than 3 or 4 stages at 8192 x 8192 (docs/kernels.md).
  static constexpr int kStages = 2;
  static constexpr int kSmem = kStages * kStageBytes + 1024;       // + alignment slack for the swizzle
  static constexpr int kBox = kRbThreads * kPieces < 256 ? kRbThreads * kPieces : 256;  // TMA box rows
};

struct RowBlockArgs {
  DirArgs d;
  int64_t pieces;  // 128-byte pieces of the input (R * C * 2 / 128)
  int64_t tiles;   // one stage's worth of input each: ceil(pieces / (threads * pieces per thread))
  // RHT sign flips of the bf16 pair k of a thread's W values (the g-block pattern at element j % g):
  // bit 15 / 31 for its element 2k / 2k + 1. One XOR per pair with a kernel parameter (a constant-bank
  // operand, no register).
  uint32_t flip[64];
};

__device__ __forceinline__ uint32_t smem_addr(const void* p) { return uint32_t(__cvta_generic_to_shared(p)); }

__device__ __forceinline__ void rb_wait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred p;\nWAIT_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
      "@!p bra WAIT_%=;\n}" ::"r"(bar), "r"(parity) : "memory");
}

// One stage: the tile's 128-byte pieces [tile * per_tile, +per_tile) into smem, in boxes of kBox rows.
template <class Shape>
__device__ __forceinline__ void rb_load(const CUtensorMap* map, uint32_t dst, uint32_t bar, int64_t tile) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(Shape::kStageBytes) : "memory");
  constexpr int kPer = kRbThreads * Shape::kPieces;
  FP4_UNROLL
  for (int b = 0; b < kPer; b += Shape::kBox) {
    const int row = int(tile * kPer + b);  // piece index < 2^31 (checked on the host)
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];"
        ::"r"(dst + b * kRbPiece), "l"(reinterpret_cast<uint64_t>(map)), "r"(0), "r"(row), "r"(bar) : "memory");
  }
}

// 16 bytes q (0..7) of 128-byte piece `row` of a stage: the 128-byte swizzle XORs q with row % 8.
__device__ __forceinline__ uint4 rb_read(uint32_t stage, int row, int q) {
  uint4 v;
  // "memory": the read must stay before the __syncthreads that lets TMA refill the stage.
  asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(stage + row * kRbPiece + ((q ^ (row & 7)) << 4))
               : "memory");
  return v;
}

// The thread's W values as fp32 with the RHT signs applied: the sign bits of each raw bf16 pair flipped
// (a flip commutes with the exact conversion), then each half converted by a shift / mask.
template <int W>
__device__ __forceinline__ void rb_values(float (&v)[W], uint32_t stage, int row0, const uint32_t (&flip)[64], bool g) {
  FP4_UNROLL
  for (int c = 0; c < W / 8; ++c) {  // 16 bytes: 8 values
    const uint4 u = rb_read(stage, row0 + c / 8, c % 8);
    const uint32_t raw[4] = {u.x, u.y, u.z, u.w};
    FP4_UNROLL
    for (int k = 0; k < 4; ++k) {
      const uint32_t w = g ? raw[k] ^ flip[4 * c + k] : raw[k];
      v[8 * c + 2 * k] = num::bits_f32(w << 16);
      v[8 * c + 2 * k + 1] = num::bits_f32(w & 0xFFFF0000u);
    }
  }
}

// Butterfly stages h = 1 .. G/2 on every g-block of the W values, then the 1/sqrt(g) multiply unless
// kDeferScale (the encoder takes it): numerics.h hadamard_block's operations in its order (its sign
// flips came with the values).
template <int G, bool kDeferScale, int W>
__device__ __forceinline__ void rb_hadamard(float (&v)[W]) {
  register_butterflies(v, G);  // G a constant here: its stage loop ends at compile time
  if (kDeferScale) return;
  const float scale = num::inv_sqrt_pow2(G);
  FP4_UNROLL
  for (int k = 0; k < W; ++k) v[k] = v[k] * scale;
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
                                                 int64_t pos, uint32_t (&words)[N / 8]) {
  const int e = int(s) - 127;
  if (s == num::kE8M0NaN || e < kMinExp) return false;
  auto encode = [&](auto kPre) {  // the prescale branch outside the per-element loop
    constexpr bool kPrescale = decltype(kPre)::value;
    const num::E2M1Scaled grid = num::e2m1_scaled(kPrescale ? e : e + kShift);
    pack_codes(u, d, Rd == Rounding::SR, num::Stream::Rowwise, pos, words, [&](int, float x, uint32_t r) {
      const float y = kPrescale ? x * (0.75f * num::exp2i(-kShift)) : x;  // an exact constant
      if constexpr (Rd == Rounding::SR) return num::e2m1_sr_scaled_bits(y, grid, r);
      else return num::e2m1_rtn_scaled_bits(y, grid);
    });
  };
  if (prescale) encode(std::true_type{});
  else encode(std::false_type{});
  return true;
}

template <Format F, ScaleRule Rule, Rounding Rd, int G>
__global__ void __launch_bounds__(kRbThreads) quantize_rowblocks(const __grid_constant__ CUtensorMap map,
                                                                  const __grid_constant__ RowBlockArgs a) {
  constexpr int W = rowblock_width(G), BS = F == Format::NVFP4 ? num::kNvBlock : num::kMxBlock;
  using Shape = RowBlockShape<W>;
  constexpr int kPer = kRbThreads * Shape::kPieces, kElemsPerPiece = kRbPiece / kRbElemBytes;
  // MXFP4 with g = 16 / 64: 1/sqrt(g) = 2^-kShift is exact, and the encoder takes it with the block scale.
  constexpr int kShift = F == Format::MXFP4 ? (G == 16 ? 2 : G == 64 ? 3 : 0) : 0;
  extern __shared__ uint8_t smem_raw[];
  const uint32_t base = (smem_addr(smem_raw) + 1023u) & ~1023u;  // the swizzle pattern needs 1 KB alignment
  __shared__ __align__(8) uint64_t full[Shape::kStages];
  constexpr bool kNvTable = F == Format::NVFP4;
  __shared__ float nv_mult[kNvTable ? kNvScales : 1];

  const DirArgs& d = a.d;
  Codec codec = kernel_codec<F, Rd>(d);
  codec.rule = Rule;  // compile time: the per-block scale rule switch folds away
  if (kNvTable) fill_nv_multipliers(nv_mult, codec);
  if (threadIdx.x == 0) {
    FP4_UNROLL
    for (int s = 0; s < Shape::kStages; ++s)
      asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(smem_addr(&full[s])) : "memory");
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    asm volatile("prefetch.tensormap [%0];" ::"l"(reinterpret_cast<uint64_t>(&map)) : "memory");
  }
  __syncthreads();
  // The ring runs kStages - 1 tiles ahead: the prologue asks for the first tiles only, so that every
  // CTA's first tile arrives early (all CTAs fill at once), and each iteration asks for the tile
  // kStages - 1 ahead into the stage the previous iteration freed.
  constexpr int kAhead = Shape::kStages - 1;
  if (threadIdx.x == 0)
    for (int s = 0; s < kAhead && blockIdx.x + int64_t(s) * gridDim.x < a.tiles; ++s)
      rb_load<Shape>(&map, base + s * Shape::kStageBytes, smem_addr(&full[s]), blockIdx.x + int64_t(s) * gridDim.x);

  int it = 0;
  for (int64_t tile = blockIdx.x; tile < a.tiles; tile += gridDim.x, ++it) {
    const int s = it % Shape::kStages;
    const uint32_t stage = base + s * Shape::kStageBytes;
    const int64_t ahead = tile + int64_t(kAhead) * gridDim.x;
    if (threadIdx.x == 0 && ahead < a.tiles) {
      const int sa = (it + kAhead) % Shape::kStages;  // freed by the previous iteration's barrier
      rb_load<Shape>(&map, base + sa * Shape::kStageBytes, smem_addr(&full[sa]), ahead);
    }
    rb_wait(smem_addr(&full[s]), uint32_t(it / Shape::kStages) & 1u);
    float v[W];
    rb_values<W>(v, stage, int(threadIdx.x) * Shape::kPieces, a.flip, G != 0);
    // Every thread has read its values: the stage can be refilled. The refill is a write of the async
    // proxy, so each reader orders its (generic-proxy) reads before it with a proxy fence first; a
    // barrier alone let TMA overwrite reads still in flight (rare wrong chunks with two stages).
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    __syncthreads();

    const int64_t piece = tile * kPer + int64_t(threadIdx.x) * Shape::kPieces;
    if (piece >= a.pieces) continue;  // past the end (zero fill)
    if constexpr (G != 0) rb_hadamard<G, kShift != 0, W>(v);
    const int64_t pos = piece * kElemsPerPiece;  // = line * K + col: the input is contiguous
    uint32_t words[W / 8];
    uint8_t scales[W / BS];
    FP4_UNROLL
    for (int b = 0; b < W / BS; ++b) {
      float u[BS];
      FP4_UNROLL
      for (int i = 0; i < BS; ++i) u[i] = v[b * BS + i];
      // The block amax of y = u 2^-kShift is the amax of u times 2^-kShift: rounding is monotonic.
      const float amax = lane_amax(u) * num::exp2i(-kShift);
      const uint32_t sc = codec.scale_from_amax(amax);
      scales[b] = uint8_t(sc);
      uint32_t bw[BS / 8], clipped = 0;
      bool done = false;
      if constexpr (F == Format::MXFP4) done = encode_mx_scaled<Rd, kShift>(u, d, codec.prescale, sc, pos + b * BS, bw);
      if (!done) {
        if (kShift) {
          FP4_UNROLL
          for (int i = 0; i < BS; ++i) u[i] = u[i] * num::exp2i(-kShift);  // = inv_sqrt_pow2(G): the deferred multiply
        }
        encode_block(u, d, codec, sc, kNvTable ? nv_mult : nullptr, num::Stream::Rowwise, pos + b * BS, bw, clipped);
      }
      FP4_UNROLL
      for (int i = 0; i < BS / 8; ++i) words[b * (BS / 8) + i] = bw[i];
    }
    FP4_UNROLL
    for (int i = 0; i < W / 32; ++i)
      reinterpret_cast<uint4*>(d.data + pos / 2)[i] = make_uint4(words[4 * i], words[4 * i + 1], words[4 * i + 2], words[4 * i + 3]);
    if (d.scale_blocked) {
      FP4_UNROLL
      for (int b = 0; b < W / BS; ++b) d.store_scale(pos / d.K, (pos % d.K) / BS + b, scales[b], BS);
    } else {  // the W / BS bytes are consecutive and W / BS aligned (K is a multiple of W)
      uint8_t* dst = static_cast<uint8_t*>(d.scale) + pos / BS;
      if constexpr (W / BS == 2) *reinterpret_cast<uint16_t*>(dst) = uint16_t(scales[0] | scales[1] << 8);
      else {
        FP4_UNROLL
        for (int b = 0; b < W / BS; b += 4)
          *reinterpret_cast<uint32_t*>(dst + b) =
              uint32_t(scales[b]) | uint32_t(scales[b + 1]) << 8 | uint32_t(scales[b + 2]) << 16 | uint32_t(scales[b + 3]) << 24;
      }
    }
  }
}

// The input as rows of 128 bytes (pieces), read in boxes of `box` rows with the 128-byte swizzle.
CUtensorMap piece_map(const void* x, int64_t pieces, int box) {
  static const PFN_cuTensorMapEncodeTiled_v12000 encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult q{};
    FP4_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &q));
    if (q != cudaDriverEntryPointSuccess || !fn) throw std::runtime_error("fp4gemm: cuTensorMapEncodeTiled not found");
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
  }();
  CUtensorMap m;
  const cuuint64_t dims[2] = {cuuint64_t(kRbPiece), cuuint64_t(pieces)}, strides[1] = {cuuint64_t(kRbPiece)};
  const cuuint32_t boxes[2] = {cuuint32_t(kRbPiece), cuuint32_t(box)}, ones[2] = {1, 1};
  const CUresult r = encode(&m, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, const_cast<void*>(x), dims, strides, boxes, ones,
                            CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) throw std::runtime_error("fp4gemm: cuTensorMapEncodeTiled failed (" + std::to_string(int(r)) + ")");
  return m;
}

template <Format F, ScaleRule Rule, Rounding Rd, int G>
void launch(const void* x, int64_t R, int64_t C, const DirArgs& row, cudaStream_t stream) {
  using Shape = RowBlockShape<rowblock_width(G)>;
  static int ctas[64] = {};
  auto kernel = quantize_rowblocks<F, Rule, Rd, G>;
  const int per_sm = once_per_device(ctas, [&](int) {
    FP4_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Shape::kSmem));
    int n = 0;
    FP4_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kRbThreads, Shape::kSmem));
    return std::max(n, 1);
  });
  RowBlockArgs a{};
  a.d = row;
  a.pieces = R * C * kRbElemBytes / kRbPiece;
  constexpr int kPer = kRbThreads * Shape::kPieces;
  a.tiles = (a.pieces + kPer - 1) / kPer;
  constexpr int W = rowblock_width(G);
  for (int j = 0; j < W; ++j) {  // element j: bit 16 (j % 2) + 15 of pair j / 2
    const int i = G ? j % G : 0;
    if (G && ((row.signs[i >> 5] >> (i & 31)) & 1u)) a.flip[j / 2] |= 0x8000u << (16 * (j % 2));
  }
  const CUtensorMap map = piece_map(x, a.pieces, Shape::kBox);
  const int64_t grid = std::min<int64_t>(a.tiles, int64_t(sm_count()) * per_sm);
  kernel<<<unsigned(grid), kRbThreads, Shape::kSmem, stream>>>(map, a);
  FP4_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

// FP4GEMM_QUANTIZE_KERNEL=lanes: the lane kernel everywhere (A/B runs, debugging). Read per call.
static bool rowblocks_enabled() {
  const char* e = std::getenv("FP4GEMM_QUANTIZE_KERNEL");
  return !(e && std::strcmp(e, "lanes") == 0);
}

bool quantize_rowblocks(const void* x, DType dtype, int64_t R, int64_t C, int64_t ld, const DirArgs& row,
                        cudaStream_t stream) {
  const Codec& c = row.codec;
  const int g = row.g, W = rowblock_width(g);
  const bool fits = rowblocks_enabled() && row.on && !row.block_2d && !row.mask && dtype == DType::BF16 &&
                    (c.fmt == Format::NVFP4 || (c.fmt == Format::MXFP4 && c.rule != ScaleRule::Quest)) &&
                    (g == 0 || g == 16 || g == 32 || g == 64 || g == 128) && ld == C && C > 0 && C % W == 0 && R > 0 &&
                    reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(row.data) % 16 == 0 &&
                    (row.scale_blocked || reinterpret_cast<uintptr_t>(row.scale) % 8 == 0) &&
                    R * C * kRbElemBytes / kRbPiece < (int64_t(1) << 31) - 1024;
  if (!fits) return false;
  with_codec<Format::MXFP4, Format::NVFP4>(c.fmt, c.rounding == Rounding::SR, [&](auto k) {
    using K = decltype(k);
    auto with_g = [&](auto rule) {
      constexpr ScaleRule kRule = decltype(rule)::value;
      switch (g) {
        case 0: return launch<K::fmt, kRule, K::rounding, 0>(x, R, C, row, stream);
        case 16: return launch<K::fmt, kRule, K::rounding, 16>(x, R, C, row, stream);
        case 32: return launch<K::fmt, kRule, K::rounding, 32>(x, R, C, row, stream);
        case 64: return launch<K::fmt, kRule, K::rounding, 64>(x, R, C, row, stream);
        default: return launch<K::fmt, kRule, K::rounding, 128>(x, R, C, row, stream);
      }
    };
    using std::integral_constant;
    if constexpr (K::fmt == Format::MXFP4) {
      if (c.rule == ScaleRule::Floor) with_g(integral_constant<ScaleRule, ScaleRule::Floor>{});
      else if (c.rule == ScaleRule::RCeil) with_g(integral_constant<ScaleRule, ScaleRule::RCeil>{});
      else with_g(integral_constant<ScaleRule, ScaleRule::Even>{});
    } else {
      if (c.rule == ScaleRule::TE) with_g(integral_constant<ScaleRule, ScaleRule::TE>{});
      else with_g(integral_constant<ScaleRule, ScaleRule::Torchao>{});
    }
  });
  return true;
}

}  // namespace fp4gemm::cuda
