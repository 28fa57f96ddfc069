// The GEMM-ready operand of the Hopper GEMMs (SPEC.md 5) and the pieces of one GPU GEMM call.
#pragma once

#include <cuda_runtime.h>

#include "fp4gemm/fp4gemm.h"

namespace fp4gemm::cuda {

// A quantized operand with its block scales folded into the elements, in a type the tensor cores
// multiply exactly, plus one float64 factor per row that the epilogue applies:
//   MXFP4    E4M3 or BF16  q * 2^d, d = e_blk - beta_r, beta_r = (largest exponent of a nonzero block
//                  of the row) - 6. Exact while d >= the type's low end: E4M3 holds q * 2^d for d in
//                  [-8, 6], BF16 for d in [-132, 6]. factor = 2^beta_r * global_scale.
//   fp4_row  E4M3 or BF16  q;              factor = row scale * global_scale.
//   NVFP4    BF16  q * s_b (at most 6 significant bits, within range: exact); factor = tensor factor.
// Rows the fold cannot carry exactly (a nonzero block below the window, a NaN block scale, a
// non-finite row scale) are appended to `special` ([0] = count, then row indices); the GEMM
// recomputes their outputs exactly afterwards (gemm.cu), so no block is ever dropped.
struct GemmOperand {
  void* data = nullptr;         // [rows, K]: E4M3 bytes or BF16
  double* factor = nullptr;     // [rows]
  int32_t* special = nullptr;   // [1 + rows], count zeroed by the caller
  int64_t rows = 0, k = 0;
  bool bf16 = false;
};

constexpr int kWindowHigh = 6;       // 6 * 2^6 = 384 <= 448: the largest block keeps every code
constexpr int kWindowLowE4M3 = -8;   // 0.5 * 2^-8 = 2^-9, the smallest E4M3 subnormal
constexpr int kWindowLowBF16 = -132; // 0.5 * 2^-132 = 2^-133, the smallest BF16 subnormal

void fold_operand(const QuantizedIn& q, const GemmOperand& out, cudaStream_t stream);

// The tensor-core GEMM of two folded operands:
// D[m, n] = round(alpha * factor_a[m] * factor_b[n] * sum_k A[m, k] B[n, k] + bias[n]), the sum in fp32
// with promotion every 128 K (FP8) or plain fp32 (BF16).
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
  void* workspace = nullptr;
  size_t workspace_size = 0;
};
size_t sm90_workspace_size(const Sm90Args& args);
void sm90_gemm(const Sm90Args& args, cudaStream_t stream);

// The first half of a GPU gemm(): lay out `workspace` (gemm_workspace_size bytes), fold both
// operands into it, pick the tile; returns the arguments of sm90_gemm (gemm.cu).
Sm90Args fold_operands(const GemmArgs& g, void* workspace, cudaStream_t stream);

// One kernel per (operand type, tile, output type), defined in gemm_sm90_<type>_<tile>.cu.
#define FP4_SM90_DECLARE(name)                          \
  void name(const Sm90Args& args, cudaStream_t stream); \
  size_t name##_workspace(const Sm90Args& args);
FP4_SM90_DECLARE(sm90_fp8_large)
FP4_SM90_DECLARE(sm90_fp8_small)
FP4_SM90_DECLARE(sm90_bf16_large)
FP4_SM90_DECLARE(sm90_bf16_small)
#undef FP4_SM90_DECLARE

}  // namespace fp4gemm::cuda
