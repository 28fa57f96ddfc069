// The GEMM-ready operand of the Hopper GEMMs (SPEC.md 5) and the pieces of one GPU GEMM call.
#pragma once

#include <cuda_runtime.h>

#include "cuda_api.h"
#include "fp4gemm/fp4gemm.h"

namespace fp4gemm::cuda {

// A quantized operand with its block scales folded into the elements, in a type the tensor cores
// multiply exactly, plus one float64 factor per row that the epilogue applies:
//   MXFP4    E4M3 or BF16  q * 2^d, d = e_blk - beta, beta = (largest exponent of a nonzero block) - 6
//                  taken over the block's 128-K chunk (A of the FP8 GEMM) or over the whole row
//                  (otherwise). Exact while d >= the type's low end: E4M3 holds q * 2^d for d in [-8, 6],
//                  BF16 for d in [-132, 6]. factor = 2^beta_r * global_scale (beta_r: the row's base);
//                  chunk_scale = 2^(beta_c - beta_r), applied by the mainloop at each 128-K promotion.
//   fp4_row  E4M3 or BF16  q;              factor = row scale * global_scale; chunk_scale = 1.
//   NVFP4    BF16  q * s_b (at most 6 significant bits, within range: exact); factor = tensor factor.
// Chunk bases exist because gradients have rows whose blocks span more than E4M3's 15 binades (tokens
// whose gradient all but vanishes) but almost never within 128 K (docs/kernels.md). Only A gets them:
// B's would need a scale per (column, chunk) in the mainloop, and the gradient is A in both backward
// GEMMs (dy in dgrad, dyᵀ in wgrad).
// Rows the fold cannot carry exactly (a nonzero block below the window, a chunk more than 100 binades
// below the row's top, a NaN block scale, a non-finite row scale) are appended to `special`
// ([0] = count, then row indices); the GEMM recomputes their outputs exactly afterwards (gemm.cu), so
// no block is ever dropped.
constexpr int kChunkK = 128;          // K per chunk base = the FP8 mainloop's promotion interval
static_assert(kChunkK == kOperandChunk, "qgemm sizes A's chunk info by cuda_api.h's constant");
constexpr int kChunkRangeLow = -100;  // chunk scales >= 2^-100: partial sums x scale stay normal fp32
constexpr int kOnesRows = 128;        // B's unit mainloop scales: one per tile N (128) rows

struct GemmOperand {
  void* data = nullptr;         // [rows, K]: E4M3 bytes or BF16
  double* factor = nullptr;     // [rows]
  int32_t* special = nullptr;   // [1 + rows], count zeroed by the caller
  float* chunk_scale = nullptr; // FP8 A: [ceil(K/128), chunk_stride], chunk-major (the mainloop's SFA)
  int64_t chunk_stride = 0;     // rows rounded up to 4 (16-byte TMA strides); the pad holds zeros
  float* ones = nullptr;        // FP8 B: [ceil(rows/128), ceil(K/128)] ones (the mainloop's SFB)
  int64_t rows = 0, k = 0;
  bool bf16 = false;
};

constexpr int kQuantEpiN = 128;      // the quantizing epilogue's subtile columns: RHT groups g <= 128

constexpr int kWindowHigh = 6;       // 6 * 2^6 = 384 <= 448: the largest block keeps every code
constexpr int kWindowLowE4M3 = -8;   // 0.5 * 2^-8 = 2^-9, the smallest E4M3 subnormal
constexpr int kWindowLowBF16 = -132; // 0.5 * 2^-132 = 2^-133, the smallest BF16 subnormal

void fold_operand(const QuantizedIn& q, const GemmOperand& out, cudaStream_t stream);

// A written by its quantizer (OperandAOut, cuda_api.h): the row-wide rest from the chunk info.
constexpr unsigned kChunkTopMask = 0xFF;  // chunk info: the chunk's top scale byte + 1 (0: no nonzero block)
constexpr unsigned kChunkFlag = 0x100;    // chunk info: a NaN block, or one below the E4M3 window
void finish_operand_a(const uint16_t* chunk_info, double global_scale, const GemmOperand& out, cudaStream_t stream);

// The tensor-core GEMM of two folded operands:
// D[m, n] = round(alpha * factor_a[m] * factor_b[n] * sum_c chunk_scale_a[c, m] * sum_{k in c} A[m, k] B[n, k]
//                 + bias[n]),
// each chunk's sum on the FP8 tensor cores, promoted into fp32 with its scale (one FFMA per element);
// BF16: plain fp32 accumulation, no chunk scales.
// Tiles: Large = cooperative 128x128 (FP8) / 128x256 (BF16), for problems with enough tiles to fill
// the GPU; Small = ping-pong 64x128, twice the tiles for small M (decode, M <= a few hundred).
enum class Sm90Tile : int { Large = 0, Small = 1 };
struct Sm90Args {
  GemmOperand a, b;
  double alpha = 1.0;
  const float* bias = nullptr;
  void* d = nullptr;
  DType out_dtype = DType::BF16;
  Sm90Tile tile = Sm90Tile::Large;
  int swizzle = 1;               // CUTLASS persistent scheduler: max_swizzle_size
  int fp8_block_m = 0;           // FP8 large tiles, plain D: 0 CUTLASS's kernel, 128 / 256 the hand-written one
  int fp8_cluster = 1;           // the hand-written kernel's cluster: 1, or 2 (B multicast)
  int fp8_group_m = 0;           // its tile order's group of tile rows; 0: the kernel's default (a bench sweep)
  // D quantized in the epilogue (epilogue_quantize.cuh) instead of stored in out_dtype: rowwise along
  // N by d_cfg (MXFP4, or NVFP4 with its amax given) into d_out; d32 [M, N] fp32 takes D instead
  // while B has special rows (the fixup then requantizes, gemm.cu).
  bool quantize_d = false;
  QuantizeConfig d_cfg{};
  QuantizedOut d_out{};
  float* d32 = nullptr;
  void* workspace = nullptr;
  size_t workspace_size = 0;
};
size_t sm90_workspace_size(const Sm90Args& args);
void sm90_gemm(const Sm90Args& args, cudaStream_t stream);

// The first half of a GPU gemm(): lay out `workspace` (gemm_workspace_size bytes), fold both
// operands into it (B only where A's quantizer wrote A: a_written), pick the tile; returns the
// arguments of sm90_gemm (gemm.cu).
Sm90Args fold_operands(const GemmArgs& g, void* workspace, cudaStream_t stream, const OperandAOut* a_written = nullptr);

// One kernel per (operand type, tile, output type), defined in gemm_sm90_<type>_<tile>.cu.
#define FP4_SM90_DECLARE(name)                          \
  void name(const Sm90Args& args, cudaStream_t stream); \
  size_t name##_workspace(const Sm90Args& args);
FP4_SM90_DECLARE(sm90_fp8_large)
FP4_SM90_DECLARE(sm90_fp8_small)
FP4_SM90_DECLARE(sm90_bf16_large)
FP4_SM90_DECLARE(sm90_bf16_small)
#undef FP4_SM90_DECLARE
void sm90_fp8_direct(const Sm90Args& args, cudaStream_t stream);  // kernel_sm90_fp8.cuh
// `spec` as FP4GEMM_SM90_FP8 spells it, "128" / "256" [+ "x2"]: the hand-written FP8 kernel's tile
// [cluster]; anything else selects CUTLASS's kernel (gemm.cu).
void select_fp8_kernel(Sm90Args& s, const char* spec);

}  // namespace fp4gemm::cuda
