// Rowwise quantization with whole Hadamard blocks per thread: the fast path of rowwise-only calls on
// contiguous input (quantize.cu's quantize() calls quantize_rowblocks(), which runs it where it applies;
// elsewhere the lane kernel quantize_rows runs).
//
// Why: the lane kernel (quantize_rows) gives a lane 16 values, so an RHT of g = 64 / 128 needs 2 / 3
// cross-lane stages (a shuffle per value and stage; the SM shuffles 32 values per clock, a quarter
// of its issue rate), a shuffle tree per block amax, run-time g loops and per-lane sign masks. Here
// a thread owns 64 consecutive values of a row: for g <= 64 every butterfly stage, the block amaxes
// and the sign flips stay in its registers, and the sign masks are the same for every thread (a
// thread's values start at a multiple of g), so they are kernel parameters. g = 128 pairs two
// threads (kPairG): their last stage takes one shuffle per value (128 values per thread needed 168
// registers, 3 CTAs per SM: 0.72x copy). The input reaches shared memory by TMA (128-byte
// swizzle, so that a thread's 128-byte piece reads bank-conflict free) in a ring of stages, at no
// instruction cost per element. Every value goes through the fp32 operations of numerics.h
// (hadamard_block, Codec), so the bytes equal the CPU path's.
// The kOp instances (MXFP4, K a multiple of 128; qgemm's A on Hopper's FP8 path) also write the FP8
// GEMM's folded A and one uint16 per 128-K chunk (cuda_api.h OperandAOut), so gemm() skips A's fold.
#include <cstdlib>
#include <cstring>

#include "operand_e4m3.cuh"
#include "quantize_blocks.cuh"

namespace fp4gemm::cuda {
namespace {

using namespace blocks;

constexpr int kRbThreads = 128;  // threads per CTA; a stage holds one 128-byte piece per thread
constexpr int kRbPiece = 128;    // bytes per TMA row (the span of the 128-byte swizzle)

// Input elements are bf16 (2 bytes): the only type dispatched here.
constexpr int kRbElemBytes = 2;

// Values per thread: one 128-byte piece, so the per-thread work (scales, stores, addresses) is shared
// by 64 values.
constexpr int kW = kValues;
static_assert(kW == kRbPiece / kRbElemBytes, "a thread's values are one piece");
// The RHT block that two threads share (the pair of lanes 2m, 2m + 1 holds one block).
constexpr int kPairG = 2 * kW;

struct RowBlockShape {
  static constexpr int kStageBytes = kRbThreads * kRbPiece;
  // Two stages: shared memory then allows 6 CTAs per SM and registers decide (4-5 CTAs). More warps
  // hide more of the per-element dependency chains ("wait" stalls in ncu); measured 2-4 % faster than
  // 3 or 4 stages at 8192 x 8192 (docs/kernels.md).
  static constexpr int kStages = 2;
  static constexpr int kSmem = kStages * kStageBytes + 1024;  // + alignment slack for the swizzle
  static constexpr int kBox = kRbThreads;                     // TMA box rows (pieces)
};

struct RowBlockArgs {
  DirArgs d;
  int64_t pieces;  // 128-byte pieces of the input (R * C * 2 / 128)
  int64_t tiles;   // one stage's worth of input each (a piece per thread): ceil(pieces / kRbThreads)
  // RHT sign flips of the bf16 pair k of a thread's 64 values (the g-block pattern at element j % g):
  // bit 15 / 31 for its element 2k / 2k + 1. One XOR per pair with a kernel parameter (a constant-bank
  // operand, no register). g = 128: entries 32 p + k for the thread of parity p (its values are
  // elements 64 p .. 64 p + 63 of the block), read from shared memory.
  uint32_t flip[2 * kW / 2];
  OperandAOut op;  // kOp: the FP8 GEMM's A too (MXFP4, K a multiple of 128)
};

// One stage: the tile's 128-byte pieces [tile * kRbThreads, +kRbThreads) into smem, one box.
__device__ __forceinline__ void rb_load(const CUtensorMap* map, uint32_t dst, uint32_t bar, int64_t tile) {
  // piece index < 2^31 (checked on the host)
  tma_load_2d(map, dst, bar, 0, int(tile * kRbThreads), RowBlockShape::kStageBytes);
}

// g = kPairG: the stages up to h = 32 ran in each thread (block_hadamard); the thread of parity `odd`
// holds elements 64 odd .. 64 odd + 63 of the block, and the last stage (h = 64) pairs its value k
// with the partner's: the even thread becomes a + b = mine + partner, the odd a - b = partner + (-1) *
// mine, one FFMA each (the product is exact, so it rounds as the add / subtract). Then numerics.h
// hadamard_block's 1/sqrt(g) multiply.
__device__ __forceinline__ void pair_stage(float (&v)[kW], bool odd) {
  const float sign = odd ? -1.0f : 1.0f;
  FP4_UNROLL
  for (int k = 0; k < kW; ++k) v[k] = __fmaf_rn(v[k], sign, __shfl_xor_sync(0xFFFFFFFFu, v[k], 1));
  const float scale = num::inv_sqrt_pow2(kPairG);
  FP4_UNROLL
  for (int k = 0; k < kW; ++k) v[k] = v[k] * scale;
}

// kOp: a warp's E4M3 bytes are 2 KB in a row, 64 per thread. A uint4 store per lane straight from
// the threads spans all 2 KB (16 lines, a quarter of each line per instruction: measured 0.103 ms
// against 0.063 without the operand at 8192 x 8192, DRAM at 61 %, session 20); through a 512-byte
// buffer per warp, each of four stores covers 512 bytes in a row. Round i: the 8 threads whose bytes
// those are write them (XOR-swizzled, so that the 8 writers' uint4s fall in distinct banks), the 32
// lanes store one uint4 each.
constexpr int kOpBufUint4 = 32;  // per warp: 512 bytes
__device__ __forceinline__ void store_operand_bytes(uint4* buf, uint8_t* warp_dst, int64_t warp_piece, int64_t pieces,
                                                    const uint4 (&e)[kW / 16]) {
  static_assert(kW / 16 == 4, "a thread's 64 bytes are 4 uint4s");
  const int lane = threadIdx.x & 31;
  FP4_UNROLL
  for (int i = 0; i < 4; ++i) {
    if (lane / 8 == i) {
      const int k = lane % 8, x = (k >> 1) & 3;
      FP4_UNROLL
      for (int u = 0; u < 4; ++u) buf[4 * k + (u ^ x)] = e[u];
    }
    __syncwarp();
    const int k = lane / 4, u = lane % 4;
    const uint4 v = buf[4 * k + (u ^ ((k >> 1) & 3))];
    if (warp_piece + 8 * i + k < pieces) reinterpret_cast<uint4*>(warp_dst)[32 * i + lane] = v;
    __syncwarp();
  }
}

// kOp: the thread pair 2m, 2m + 1 holds one 128-K chunk of the operand (K % 128 == 0): each 16-value
// unit's E4M3 bytes count from the chunk's top block, found by one shuffle; a second one ORs the
// pair's flags. The bytes are fold_kernel<false, true>'s (gemm_operand.cu), unit by unit.
__device__ __forceinline__ void store_operand_a(const RowBlockArgs& a, const uint64_t* tables, uint4* buf, int64_t piece,
                                                const uint32_t (&words)[kW / 8], const uint8_t (&scales)[kW / 32]) {
  constexpr int kUnits = kW / 16;  // 16 values = 2 code words, one scale per 2 units
  bool nz[kUnits];
  unsigned top = 0;  // the chunk's largest scale byte of a nonzero unit + 1 (0: none)
  FP4_UNROLL
  for (int u = 0; u < kUnits; ++u) {
    const uint8_t s = scales[u / 2];
    nz[u] = operand::nonzero(make_uint2(words[2 * u], words[2 * u + 1]));
    if (nz[u] && s != num::kE8M0NaN) top = max(top, unsigned(s) + 1);
  }
  top = max(top, __shfl_xor_sync(0xFFFFFFFFu, top, 1));
  bool flag = false;  // a NaN block (the fixup writes the row's NaN outputs) or one below the window
  uint4 e[kUnits];
  FP4_UNROLL
  for (int u = 0; u < kUnits; ++u) {
    const uint8_t s = scales[u / 2];
    uint2 c = make_uint2(words[2 * u], words[2 * u + 1]);
    int d = 0;
    if (s == num::kE8M0NaN) {
      flag = true;
      c = make_uint2(0u, 0u);
    } else if (nz[u]) {
      d = int(s) - (int(top) - 1) + kWindowHigh;  // <= kWindowHigh: top is the chunk's largest
      if (d < kWindowLowE4M3) flag = true, c = make_uint2(0u, 0u), d = 0;  // the fixup recomputes the row
    }
    e[u] = operand::e4m3_bytes(c, tables[d - kWindowLowE4M3]);
  }
  const int64_t warp_piece = piece - (threadIdx.x & 31);
  store_operand_bytes(buf, a.op.data + warp_piece * kW, warp_piece, a.pieces, e);
  flag = __shfl_xor_sync(0xFFFFFFFFu, unsigned(flag), 1) | flag;
  const int64_t pos = piece * kW;
  if (piece < a.pieces && !(threadIdx.x & 1)) a.op.chunk_info[pos / kChunkK] = uint16_t(top | (flag ? kChunkFlag : 0u));
}

template <Format F, ScaleRule Rule, Rounding Rd, int G, bool kOp>
__global__ void __launch_bounds__(kRbThreads) quantize_rowblocks(const __grid_constant__ CUtensorMap map,
                                                                  const __grid_constant__ RowBlockArgs a) {
  using Shape = RowBlockShape;
  constexpr int BS = F == Format::NVFP4 ? num::kNvBlock : num::kMxBlock;
  constexpr bool kPair = G == kPairG;
  // MXFP4 with g = 16 / 64: 1/sqrt(g) = 2^-kShift is exact, and the encoder takes it with the block scale.
  constexpr int kShift = encoder_shift<F, G>();
  extern __shared__ uint8_t smem_raw[];
  const uint32_t base = (smem_addr(smem_raw) + 1023u) & ~1023u;  // the swizzle pattern needs 1 KB alignment
  __shared__ __align__(8) uint64_t full[Shape::kStages];
  constexpr bool kNvTable = F == Format::NVFP4;
  __shared__ float nv_mult[kNvTable ? kNvScales : 1];
  __shared__ __align__(16) uint32_t pair_flip[kPair ? kW : 1];  // g = 128: the flips differ by parity

  const DirArgs& d = a.d;
  Codec codec = kernel_codec<F, Rd>(d);
  codec.rule = Rule;  // compile time: the per-block scale rule switch folds away
  if (kNvTable) fill_nv_multipliers(nv_mult, codec);
  if (kPair && threadIdx.x < kW) pair_flip[threadIdx.x] = a.flip[threadIdx.x];
  __shared__ uint64_t e4m3_tables[kOp ? operand::kShifts : 1];
  __shared__ uint4 op_buf[kOp ? kRbThreads / 32 : 1][kOpBufUint4];
  if (kOp && threadIdx.x < operand::kShifts) e4m3_tables[threadIdx.x] = operand::e4m3_table(int(threadIdx.x) + kWindowLowE4M3);
  ring_init(full, &map);
  __syncthreads();
  const bool odd = threadIdx.x & 1;  // = the piece's parity
  const uint32_t* flip = kPair ? pair_flip + (odd ? kW / 2 : 0) : a.flip;
  // The ring runs kStages - 1 tiles ahead: the prologue asks for the first tiles only, so that every
  // CTA's first tile arrives early (all CTAs fill at once), and each iteration asks for the tile
  // kStages - 1 ahead into the stage the previous iteration freed.
  constexpr int kAhead = Shape::kStages - 1;
  if (threadIdx.x == 0)
    for (int s = 0; s < kAhead && blockIdx.x + int64_t(s) * gridDim.x < a.tiles; ++s)
      rb_load(&map, base + s * Shape::kStageBytes, smem_addr(&full[s]), blockIdx.x + int64_t(s) * gridDim.x);

  int it = 0;
  for (int64_t tile = blockIdx.x; tile < a.tiles; tile += gridDim.x, ++it) {
    const int s = it % Shape::kStages;
    const uint32_t stage = base + s * Shape::kStageBytes;
    const int64_t ahead = tile + int64_t(kAhead) * gridDim.x;
    if (threadIdx.x == 0 && ahead < a.tiles) {
      const int sa = (it + kAhead) % Shape::kStages;  // freed by the previous iteration's barrier
      rb_load(&map, base + sa * Shape::kStageBytes, smem_addr(&full[sa]), ahead);
    }
    mbar_wait(smem_addr(&full[s]), uint32_t(it / Shape::kStages) & 1u);
    float v[kW];
    piece_values(v, stage, int(threadIdx.x), flip, G != 0);
    release_stage();  // every thread has read its values: the stage can be refilled

    // Before the range check: g = 128 shuffles with the partner (past the end both of a pair are, as
    // the pieces are even in number; their values are TMA's zero fill).
    if constexpr (G != 0) block_hadamard<G, kShift>(v);
    if constexpr (kPair) pair_stage(v, odd);
    const int64_t piece = tile * kRbThreads + threadIdx.x;
    const bool in = piece < a.pieces;  // past the end: TMA's zero fill
    if (!kOp && !in) continue;  // kOp: the chunk shuffle needs every lane (pieces are even in number)
    const int64_t pos = piece * kW;  // = line * K + col: the input is contiguous
    uint32_t words[kW / 8];
    uint8_t scales[kW / BS];
    encode_values<F, Rd, kShift>(v, d, codec, kNvTable ? nv_mult : nullptr, num::Stream::Rowwise, pos, words, scales);
    if constexpr (kOp) store_operand_a(a, e4m3_tables, op_buf[threadIdx.x >> 5], piece, words, scales);
    if (in) store_values<BS>(d, pos, words, scales);
  }
}

template <Format F, ScaleRule Rule, Rounding Rd, int G, bool kOp>
void launch(const void* x, int64_t R, int64_t C, const DirArgs& row, const OperandAOut* op, cudaStream_t stream) {
  using Shape = RowBlockShape;
  static int ctas[64] = {};
  auto kernel = quantize_rowblocks<F, Rule, Rd, G, kOp>;
  const int per_sm = once_per_device(ctas, [&](int) {
    FP4_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Shape::kSmem));
    int n = 0;
    FP4_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kRbThreads, Shape::kSmem));
    return std::max(n, 1);
  });
  RowBlockArgs a{};
  a.d = row;
  if (op) a.op = *op;
  a.pieces = R * C * kRbElemBytes / kRbPiece;
  a.tiles = (a.pieces + kRbThreads - 1) / kRbThreads;
  pair_flips(a.flip, row.signs, G, G > kW ? G : kW);  // g = 128: the pair's 128 values
  // The input as rows of 128 bytes (pieces), read in boxes of kBox rows.
  const CUtensorMap map = tensor_map_2d(x, kRbPiece, a.pieces, kRbPiece, kRbPiece, Shape::kBox);
  const int64_t grid = std::min<int64_t>(a.tiles, int64_t(sm_count()) * per_sm);
  kernel<<<unsigned(grid), kRbThreads, Shape::kSmem, stream>>>(map, a);
  FP4_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

bool block_kernels_enabled() {
  const char* e = std::getenv("FP4GEMM_QUANTIZE_KERNEL");
  return !(e && std::strcmp(e, "lanes") == 0);
}

bool quantize_rowblocks(const void* x, DType dtype, int64_t R, int64_t C, int64_t ld, const DirArgs& row,
                        cudaStream_t stream, const OperandAOut* op) {
  const Codec& c = row.codec;
  const int g = row.g, span = std::max(g, kW);  // K holds whole g-blocks and whole pieces
  const bool fits = block_kernels_enabled() && row.on && !row.block_2d && !row.mask && dtype == DType::BF16 &&
                    (c.fmt == Format::NVFP4 || (c.fmt == Format::MXFP4 && c.rule != ScaleRule::Quest)) &&
                    (g == 0 || g == 16 || g == 32 || g == 64 || g == 128) && ld == C && C > 0 && C % span == 0 && R > 0 &&
                    reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(row.data) % 16 == 0 &&
                    (row.scale_blocked || reinterpret_cast<uintptr_t>(row.scale) % 4 == 0) &&
                    R * C * kRbElemBytes / kRbPiece < (int64_t(1) << 31) - 1024 &&
                    (!op || (c.fmt == Format::MXFP4 && C % kChunkK == 0 &&
                             reinterpret_cast<uintptr_t>(op->data) % 16 == 0));
  if (!fits) return false;
  with_codec<Format::MXFP4, Format::NVFP4>(c.fmt, c.rounding == Rounding::SR, [&](auto k) {
    using K = decltype(k);
    auto with_g = [&](auto rule) {
      constexpr ScaleRule kRule = decltype(rule)::value;
      auto go = [&](auto kg) {
        constexpr int kG = decltype(kg)::value;
        if constexpr (K::fmt == Format::MXFP4)
          if (op) return launch<K::fmt, kRule, K::rounding, kG, true>(x, R, C, row, op, stream);
        launch<K::fmt, kRule, K::rounding, kG, false>(x, R, C, row, nullptr, stream);
      };
      using std::integral_constant;
      switch (g) {
        case 0: return go(integral_constant<int, 0>{});
        case 16: return go(integral_constant<int, 16>{});
        case 32: return go(integral_constant<int, 32>{});
        case 64: return go(integral_constant<int, 64>{});
        default: return go(integral_constant<int, 128>{});
      }
    };
    with_block_rule<K::fmt>(c.rule, with_g);
  });
  return true;
}

}  // namespace fp4gemm::cuda
