// NVFP4 (and mma="bf16") on Hopper, small M: ping-pong 64x128x64.
#include "gemm_sm90.cuh"

namespace fp4gemm::cuda {
using Bf16SmallTile = TileConfig<64, 128, 64, 1, 1, Pingpong, PingpongEpilogue>;
FP4_SM90_DEFINE(sm90_bf16_small, cutlass::bfloat16_t, Bf16SmallTile)
}  // namespace fp4gemm::cuda
