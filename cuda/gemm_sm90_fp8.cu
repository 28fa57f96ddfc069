// MXFP4 and per-row FP4 on Hopper: E4M3 x E4M3 wgmma with fp32 promotion every 128 K.
#include "gemm_sm90.cuh"

namespace fp4gemm::cuda {

// 128 x 128 keeps the promoted accumulators (2 x 64 fp32 registers per thread) within budget.
using Fp8Tile = TileConfig<128, 128, 128, 2, 1, cutlass::gemm::KernelTmaWarpSpecializedCooperative,
                           cutlass::epilogue::TmaWarpSpecializedCooperative>;

void sm90_fp8(const Sm90Args& g, cudaStream_t stream) { sm90_run<cutlass::float_e4m3_t, Fp8Tile>(g, stream); }
size_t sm90_fp8_workspace(const Sm90Args& g) { return sm90_workspace<cutlass::float_e4m3_t, Fp8Tile>(g); }

}  // namespace fp4gemm::cuda
