// Device discovery for the dispatch layer (api.cpp).
#include <cuda_runtime.h>

#include "common.cuh"
#include "fp4gemm/fp4gemm.h"

namespace fp4gemm {

bool cuda_available() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

int cuda_capability() {
  if (!cuda_available()) return 0;
  static int cache[64] = {};
  return cuda::once_per_device(cache, [](int device) {
    int major = 0, minor = 0;
    FP4_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    FP4_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
    return 10 * major + minor;
  });
}

}  // namespace fp4gemm
