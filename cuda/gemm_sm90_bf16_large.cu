// NVFP4 (and mma="bf16") on Hopper, large problems: BF16 wgmma on the exact folded values,
// cooperative 128x256x64.
#include "gemm_sm90.cuh"

namespace fp4gemm::cuda {
using Bf16LargeTile = TileConfig<128, 256, 64, 2, 1, Cooperative, CooperativeEpilogue>;
FP4_SM90_DEFINE(sm90_bf16_large, cutlass::bfloat16_t, Bf16LargeTile)
}  // namespace fp4gemm::cuda
