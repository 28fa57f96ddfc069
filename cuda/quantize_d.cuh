// D's rowwise quantization as the quantizing GEMM epilogue (epilogue_quantize.cuh) and the GEMM's
// fixup (gemm.cu) see it. No CUTLASS here.
#pragma once

#include "gemm_operand.cuh"
#include "quantize_lane.cuh"

namespace fp4gemm::cuda {

constexpr int kQuantLane = 16;   // values per lane, as the quantize kernels

// D's rowwise quantization as the epilogue sees it (dir.K = N).
struct QuantizeDArgs {
  DirArgs dir;
  const int32_t* b_special = nullptr;  // [0] = count of B's rows outside the window
  float* d32 = nullptr;                // [M, N] fp32 D, written when that count is nonzero
  int64_t M = 0, N = 0;
};

inline QuantizeDArgs quantize_d_args(const Sm90Args& g) {
  QuantizeDArgs q;
  q.dir = make_dir(&g.d_cfg, &g.d_out, g.b.rows, nullptr);
  q.b_special = g.b.special;
  q.d32 = g.d32;
  q.M = g.a.rows;
  q.N = g.b.rows;
  return q;
}

}  // namespace fp4gemm::cuda
