// MXFP4 / per-row FP4 on Hopper, large problems: E4M3 wgmma, fp32 promotion every 128 K times A's
// chunk scale (gemm_sm90.cuh), cooperative 128x128x128 (the promoted accumulators take 2 x 64 fp32
// registers per thread: no 128x256).
#include "gemm_sm90.cuh"

namespace fp4gemm::cuda {
using Fp8LargeTile = TileConfig<128, 128, 128, 2, 1, CooperativeChunked, CooperativeEpilogue>;
FP4_SM90_DEFINE(sm90_fp8_large, cutlass::float_e4m3_t, Fp8LargeTile)
}  // namespace fp4gemm::cuda
