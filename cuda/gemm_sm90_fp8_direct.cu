// MXFP4 / per-row FP4 on Hopper, large problems, plain output: the hand-written FP8 kernel
// (kernel_sm90_fp8.cuh), tiles 128x128 and 256x128, alone or in clusters of two.
#include "kernel_sm90_fp8.cuh"

namespace fp4gemm::cuda {

template <int kBlockM>
static void run_direct(const Sm90Args& g, cudaStream_t stream) {
  with_output(g.out_dtype, [&](auto d) {
    if (g.fp8_cluster == 2) fp8_kernel::run<kBlockM, 2, decltype(d)>(g, stream);
    else fp8_kernel::run<kBlockM, 1, decltype(d)>(g, stream);
  });
}

void sm90_fp8_direct(const Sm90Args& g, cudaStream_t stream) {
  switch (g.fp8_block_m) {
    case 128: return run_direct<128>(g, stream);
    case 256: return run_direct<256>(g, stream);
  }
  throw std::invalid_argument("fp4gemm sm90 FP8 GEMM: the hand-written kernel's tiles are 128 and 256 rows, got " +
                              std::to_string(g.fp8_block_m));
}

}  // namespace fp4gemm::cuda
