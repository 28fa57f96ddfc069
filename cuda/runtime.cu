// Device discovery for the dispatch layer (api.cpp).
#include <cuda_runtime.h>

#include "fp4gemm/fp4gemm.h"

namespace fp4gemm {

bool cuda_available() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

}  // namespace fp4gemm
