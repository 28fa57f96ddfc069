// MXFP4 x MXFP4 and NVFP4 x NVFP4 on sm_120a (GeForce / RTX PRO Blackwell): warp-level block-scaled MMA
// (mma.sync ... kind::mxf4 / kind::mxf4nvf4), TMA loads, cooperative 128x128x128 tiles. sm_120 has no
// clusters with multicast, so the cluster is 1x1x1 (CUTLASS requires it).
// Compiled for sm_120a only (CMakeLists.txt); CUTLASS_ARCH_MMA_SM120_SUPPORTED = nvcc >= 12.8.
#include "gemm_native.cuh"

#if defined(CUTLASS_ARCH_MMA_SM120_SUPPORTED)
namespace fp4gemm::cuda {

using Sm120Tile = Shape<_128, _128, _128>;
using Sm120Cluster = Shape<_1, _1, _1>;
using Sm120MxConfig = NativeConfig<cutlass::arch::Sm120, cutlass::mx_float4_t<cutlass::float_e2m1_t>, Sm120Tile,
                                   Sm120Cluster, cutlass::gemm::KernelTmaWarpSpecializedMxf4Sm120,
                                   cutlass::epilogue::TmaWarpSpecializedCooperative>;
using Sm120NvConfig = NativeConfig<cutlass::arch::Sm120, cutlass::nv_float4_t<cutlass::float_e2m1_t>, Sm120Tile,
                                   Sm120Cluster, cutlass::gemm::KernelTmaWarpSpecializedNvf4Sm120,
                                   cutlass::epilogue::TmaWarpSpecializedCooperative>;
FP4_NATIVE_DEFINE(sm120, Sm120MxConfig, Sm120NvConfig)

}  // namespace fp4gemm::cuda
#else
#error "gemm_sm120.cu needs nvcc >= 12.8 (CUTLASS_ARCH_MMA_SM120_SUPPORTED); CMakeLists.txt leaves it out otherwise"
#endif
