// MXFP4 / per-row FP4 on Hopper, small M: ping-pong 64x128x128 (twice the tiles of the large config;
// one warp group's promotion and epilogue overlap the other's MMAs).
#include "gemm_sm90.cuh"

namespace fp4gemm::cuda {
using Fp8SmallTile = TileConfig<64, 128, 128, 1, 1, PingpongChunked, PingpongEpilogue>;
FP4_SM90_DEFINE(sm90_fp8_small, cutlass::float_e4m3_t, Fp8SmallTile)
}  // namespace fp4gemm::cuda
