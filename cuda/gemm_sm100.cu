// MXFP4 x MXFP4 and NVFP4 x NVFP4 on sm_100a (B200 / GB200): tcgen05 block-scaled MMA (kind::mxf4 with
// E8M0 scales per 32, kind::mxf4nvf4 with E4M3 scales per 16), accumulators in tensor memory.
// One-SM 128x128x256 tiles (256 E2M1 = 128 bytes of K per stage), no cluster: the simplest
// configuration of CUTLASS's sm100 block-scaled collectives; tuning waits for hardware to measure on.
// Compiled for sm_100a only (CMakeLists.txt); CUTLASS_ARCH_MMA_SM100_SUPPORTED = nvcc >= 12.8.
#include "gemm_native.cuh"

#if defined(CUTLASS_ARCH_MMA_SM100_SUPPORTED)
namespace fp4gemm::cuda {

using Sm100Tile = Shape<_128, _128, _256>;
using Sm100Cluster = Shape<_1, _1, _1>;
using Sm100MxConfig = NativeConfig<cutlass::arch::Sm100, cutlass::mx_float4_t<cutlass::float_e2m1_t>, Sm100Tile,
                                   Sm100Cluster, cutlass::gemm::KernelTmaWarpSpecialized1SmMxf4Sm100,
                                   cutlass::epilogue::TmaWarpSpecialized1Sm>;
using Sm100NvConfig = NativeConfig<cutlass::arch::Sm100, cutlass::nv_float4_t<cutlass::float_e2m1_t>, Sm100Tile,
                                   Sm100Cluster, cutlass::gemm::KernelTmaWarpSpecialized1SmNvf4Sm100,
                                   cutlass::epilogue::TmaWarpSpecialized1Sm>;
FP4_NATIVE_DEFINE(sm100, Sm100MxConfig, Sm100NvConfig)

}  // namespace fp4gemm::cuda
#else
#error "gemm_sm100.cu needs nvcc >= 12.8 (CUTLASS_ARCH_MMA_SM100_SUPPORTED); CMakeLists.txt leaves it out otherwise"
#endif
