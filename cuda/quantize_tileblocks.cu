// Rowwise and columnwise quantization from one read, with whole Hadamard blocks per thread: the fast
// path of row+col calls with a column RHT on contiguous bf16 input (quantize.cu's quantize() calls
// quantize_tileblocks(), which runs it where it applies; elsewhere the tile kernel quantize_tile runs).
//
// Why: the tile kernel gives a thread 16 values of a row and 32 of a column, so a column RHT of g = 64
// takes a shuffle per value, its per-row work is shared by few values, and it converts the tile to
// fp32 in shared memory first (98 instructions per element for SR + RHT64 both ways, 0.25x copy).
// Here TMA brings a 128 x 64 bf16 tile into shared memory (128-byte swizzle), and each of the 128
// threads owns 64 consecutive values twice: row t of the tile, then half t / 64 of column t % 64.
// Every RHT stage, block amax and sign flip stays in registers (both passes start at multiples of
// 64, so the sign patterns are kernel parameters), and the encode is the rowwise block kernel's
// (quantize_blocks.cuh). Every value goes through the fp32 operations of numerics.h, so the bytes
// equal the CPU path's.
#include "quantize_blocks.cuh"

namespace fp4gemm::cuda {
namespace {

using namespace blocks;

constexpr int kTbThreads = 128;
constexpr int kTileRows = 128, kTileCols = kValues;  // a tile row: 64 bf16 = the 128-byte swizzle span
constexpr int kColHalves = kTbThreads / kTileCols;     // column threads per tile column
static_assert(kColHalves * kValues == kTileRows, "the column pass covers the tile");
constexpr int kStageBytes = kTileRows * kTileCols * 2;
// Two stages, as the rowwise block kernel: registers then decide the CTAs per SM.
constexpr int kStages = 2;
constexpr int kSmem = kStages * kStageBytes + 1024;  // + alignment slack for the swizzle

struct TileBlockArgs {
  DirArgs row, col;
  int64_t R, C;
  int64_t tiles, col_tiles;  // tiles in all; tiles along C
  // Sign flips: per bf16 pair k of a row thread's 64 values (bit 15 / 31 for its elements 2k / 2k + 1;
  // the row g-block pattern at j % g), and per value i of a column thread's 64 (bit 31; the column
  // pattern at i % g).
  uint32_t row_flip[kValues / 2];
  uint32_t col_flip[kValues];
};

// The 64 values of column c, rows 64 h .. 64 h + 63 of the stage, as fp32 with the column signs: one
// 16-bit load each (a warp's 32 columns of a row share one 128-byte row: no bank conflicts).
__device__ __forceinline__ void column_values(float (&v)[kValues], uint32_t stage, int c, int h, const uint32_t* flip,
                                              bool g) {
  const uint32_t base = stage + h * kValues * 128 + (c & 7) * 2;
  FP4_UNROLL
  for (int i = 0; i < kValues; ++i) {
    uint16_t x;
    // The swizzle XORs the 16-byte chunk c / 8 with the row % 8 (= i % 8: 64 h is a multiple of 8).
    asm volatile("ld.shared.u16 %0, [%1];" : "=h"(x) : "r"(base + i * 128 + (((c >> 3) ^ (i & 7)) << 4)) : "memory");
    const uint32_t w = uint32_t(x) << 16;
    v[i] = num::bits_f32(g ? w ^ flip[i] : w);
  }
}

// 5 CTAs per SM (96 registers): unbounded, ptxas took 128 - 219 for most instances (4 CTAs or fewer);
// at this bound only the rceil instances with g = 32 both ways spill.
// P = Pass::Amax: NVFP4's tensor amaxes of both directions (after their transforms) instead of codes.
template <Pass P, Format F, ScaleRule Rule, Rounding Rd, int GR, int GC>
__global__ void __launch_bounds__(kTbThreads, 5) quantize_tileblocks(const __grid_constant__ CUtensorMap map,
                                                                   const __grid_constant__ TileBlockArgs a) {
  constexpr int BS = F == Format::NVFP4 ? num::kNvBlock : num::kMxBlock;
  constexpr int kShiftR = encoder_shift<F, GR>(), kShiftC = encoder_shift<F, GC>();
  extern __shared__ uint8_t smem_raw[];
  const uint32_t base = (smem_addr(smem_raw) + 1023u) & ~1023u;  // the swizzle pattern needs 1 KB alignment
  __shared__ __align__(8) uint64_t full[kStages];
  constexpr bool kNvTable = F == Format::NVFP4;
  __shared__ float nv_row[kNvTable ? kNvScales : 1], nv_col[kNvTable ? kNvScales : 1];

  Codec row_codec = kernel_codec<F, Rd>(a.row), col_codec = kernel_codec<F, Rd>(a.col);
  row_codec.rule = col_codec.rule = Rule;  // compile time: the per-block scale rule switch folds away
  if (kNvTable && P == Pass::Quant) {
    fill_nv_multipliers(nv_row, row_codec);
    fill_nv_multipliers(nv_col, col_codec);
  }
  ring_init(full, &map);
  __syncthreads();
  // Tile t: rows 128 (t / col_tiles), columns 64 (t % col_tiles); x in bytes (the map's elements).
  auto load = [&](int s, int64_t t) {
    tma_load_2d(&map, base + s * kStageBytes, smem_addr(&full[s]), int(t % a.col_tiles) * kTileCols * 2,
                int(t / a.col_tiles) * kTileRows, kStageBytes);
  };
  // The ring runs one tile ahead, as the rowwise block kernel's.
  if (threadIdx.x == 0 && blockIdx.x < a.tiles) load(0, blockIdx.x);

  const int c = threadIdx.x % kTileCols, h = threadIdx.x / kTileCols;  // the column pass's column and half
  float row_amax = 0.0f, col_amax = 0.0f;  // Pass::Amax
  int it = 0;
  for (int64_t tile = blockIdx.x; tile < a.tiles; tile += gridDim.x, ++it) {
    const int s = it % kStages;
    const uint32_t stage = base + s * kStageBytes;
    if (threadIdx.x == 0 && tile + gridDim.x < a.tiles) load((it + 1) % kStages, tile + gridDim.x);
    mbar_wait(smem_addr(&full[s]), uint32_t(it / kStages) & 1u);
    const int64_t r0 = tile / a.col_tiles * kTileRows, c0 = tile % a.col_tiles * kTileCols;

    // Rowwise: row threadIdx.x of the tile (rows past R are TMA's zero fill: computed, not stored).
    float v[kValues];
    piece_values(v, stage, int(threadIdx.x), a.row_flip, GR != 0);
    if constexpr (GR != 0) block_hadamard<GR, kShiftR>(v);
    if (P == Pass::Amax && r0 + threadIdx.x < a.R) {
      // integer amax, as the other kernels': the tensor amax keeps numerics.h's NaN bits
      FP4_UNROLL
      for (int k = 0; k < kValues; ++k) row_amax = num::amax_update(row_amax, v[k]);
    } else if (P == Pass::Quant && r0 + threadIdx.x < a.R) {
      const int64_t pos = (r0 + threadIdx.x) * a.C + c0;
      uint32_t words[kValues / 8];
      uint8_t scales[kValues / BS];
      encode_values<F, Rd, kShiftR>(v, a.row, row_codec, kNvTable ? nv_row : nullptr, num::Stream::Rowwise, pos, words,
                                    scales);
      store_values<BS>(a.row, pos, words, scales);
    }

    // Columnwise: rows 64 h .. 64 h + 63 of column c; the columnwise view is the transpose (line c0 + c).
    column_values(v, stage, c, h, a.col_flip, GC != 0);
    release_stage();  // every thread has read both its passes' values: the stage can be refilled
    if constexpr (GC != 0) block_hadamard<GC, kShiftC>(v);
    const bool in = r0 + h * kValues < a.R;  // R is a multiple of 64: the 64 rows are all in or all out
    if (P == Pass::Amax && in) {
      FP4_UNROLL
      for (int k = 0; k < kValues; ++k) col_amax = num::amax_update(col_amax, v[k]);
    } else if (P == Pass::Quant && in) {
      const int64_t pos = (c0 + c) * a.R + r0 + h * kValues;
      uint32_t words[kValues / 8];
      uint8_t scales[kValues / BS];
      encode_values<F, Rd, kShiftC>(v, a.col, col_codec, kNvTable ? nv_col : nullptr, num::Stream::Columnwise, pos,
                                    words, scales);
      store_values<BS>(a.col, pos, words, scales);
    }
  }
  if constexpr (P == Pass::Amax) {  // one atomic per warp and direction
    row_amax = lanes_amax(row_amax, 32);
    col_amax = lanes_amax(col_amax, 32);
    if ((threadIdx.x & 31) == 0) {
      atomic_amax(a.row.amax, row_amax);
      atomic_amax(a.col.amax, col_amax);
    }
  }
}

template <Pass P, Format F, ScaleRule Rule, Rounding Rd, int GR, int GC>
void launch(const void* x, int64_t R, int64_t C, const DirArgs& row, const DirArgs& col, cudaStream_t stream) {
  static int ctas[64] = {};
  auto kernel = quantize_tileblocks<P, F, Rule, Rd, GR, GC>;
  const int per_sm = once_per_device(ctas, [&](int) {
    FP4_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem));
    int n = 0;
    FP4_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kTbThreads, kSmem));
    return std::max(n, 1);
  });
  TileBlockArgs a{};
  a.row = row;
  a.col = col;
  a.R = R;
  a.C = C;
  a.col_tiles = C / kTileCols;
  a.tiles = (R + kTileRows - 1) / kTileRows * a.col_tiles;
  pair_flips(a.row_flip, row.signs, GR, kValues);
  for (int j = 0; GC && j < kValues; ++j)  // value j of a column thread's 64: the sign of element j % g
    if (num::hadamard_negative(col.signs, j % GC)) a.col_flip[j] = 0x80000000u;
  const CUtensorMap map = tensor_map_2d(x, C * 2, R, C * 2, kTileCols * 2, kTileRows);
  const int64_t grid = std::min<int64_t>(a.tiles, int64_t(sm_count()) * per_sm);
  kernel<<<unsigned(grid), kTbThreads, kSmem, stream>>>(map, a);
  FP4_CUDA_CHECK(cudaGetLastError());
}

// fn(integral_constant<int, GR>{}, integral_constant<int, GC>{}) for the (row g, column g) pairs
// the kernel serves: column g 16, 32 or 64, row g 0 or the same.
template <class Fn>
void with_g_pair(int gr, int gc, Fn&& fn) {
  using std::integral_constant;
  auto both = [&](auto g) { gr ? fn(g, g) : fn(integral_constant<int, 0>{}, g); };
  switch (gc) {
    case 16: return both(integral_constant<int, 16>{});
    case 32: return both(integral_constant<int, 32>{});
    default: return both(integral_constant<int, 64>{});
  }
}

}  // namespace

bool quantize_tileblocks(const void* x, DType dtype, int64_t R, int64_t C, int64_t ld, const DirArgs& row,
                         const DirArgs& col, bool amax_pass, cudaStream_t stream) {
  const Codec &rc = row.codec, &cc = col.codec;
  const int gr = row.g, gc = col.g;
  auto aligned = [](const void* p, int n) { return reinterpret_cast<uintptr_t>(p) % n == 0; };
  auto out_ok = [&](const DirArgs& d) {
    return !d.block_2d && !d.mask && aligned(d.data, 16) && (d.scale_blocked || aligned(d.scale, 4));
  };
  // One Rule, format and rounding for both directions; the column g is 16, 32 or 64, the row g 0 or the
  // same (the recipes': Tseng et al. and Quartet's both ways, TransformerEngine's columns only).
  // Without a column RHT the tile kernel stays: measured as fast at 8192 x 8192 and 8-15 % faster at
  // 65536 x 4096 (docs/kernels.md, session 18).
  const bool fits = block_kernels_enabled() && row.on && col.on && dtype == DType::BF16 && ld == C &&
                    (rc.fmt == Format::NVFP4 || (rc.fmt == Format::MXFP4 && rc.rule != ScaleRule::Quest)) &&
                    cc.fmt == rc.fmt && cc.rule == rc.rule && cc.rounding == rc.rounding &&
                    (gc == 16 || gc == 32 || gc == 64) && (gr == 0 || gr == gc) && out_ok(row) &&
                    out_ok(col) && R > 0 && C > 0 && R % kValues == 0 && C % kTileCols == 0 && aligned(x, 16) &&
                    R < (int64_t(1) << 31) && C * 2 < (int64_t(1) << 31) && (!amax_pass || rc.fmt == Format::NVFP4);
  if (!fits) return false;
  if (amax_pass) {  // NVFP4 (TransformerEngine's wgrad operands): no rule, rounding or prescale enters an amax
    with_g_pair(gr, gc, [&](auto g_row, auto g_col) {
      launch<Pass::Amax, Format::NVFP4, ScaleRule::TE, Rounding::RTN, decltype(g_row)::value, decltype(g_col)::value>(
          x, R, C, row, col, stream);
    });
    return true;
  }
  with_codec<Format::MXFP4, Format::NVFP4>(rc.fmt, rc.rounding == Rounding::SR, [&](auto k) {
    using K = decltype(k);
    auto with_g = [&](auto rule) {
      constexpr ScaleRule kRule = decltype(rule)::value;
      with_g_pair(gr, gc, [&](auto g_row, auto g_col) {
        launch<Pass::Quant, K::fmt, kRule, K::rounding, decltype(g_row)::value, decltype(g_col)::value>(x, R, C, row,
                                                                                                        col, stream);
      });
    };
    with_block_rule<K::fmt>(rc.rule, with_g);
  });
  return true;
}

}  // namespace fp4gemm::cuda
