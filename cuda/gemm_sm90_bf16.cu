// NVFP4 on Hopper: the folded BF16 operands (q * s_b, exact) through BF16 wgmma.
#include "gemm_sm90.cuh"

namespace fp4gemm::cuda {

using Bf16Tile = TileConfig<128, 256, 64, 2, 1, cutlass::gemm::KernelTmaWarpSpecializedCooperative,
                            cutlass::epilogue::TmaWarpSpecializedCooperative>;

void sm90_bf16(const Sm90Args& g, cudaStream_t stream) { sm90_run<cutlass::bfloat16_t, Bf16Tile>(g, stream); }
size_t sm90_bf16_workspace(const Sm90Args& g) { return sm90_workspace<cutlass::bfloat16_t, Bf16Tile>(g); }

}  // namespace fp4gemm::cuda
