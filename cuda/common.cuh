// Small CUDA helpers shared by the kernels: error checks and input loads through numerics.h.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "fp4gemm/numerics.h"

#define FP4_CUDA_CHECK(expr)                                                                         \
  do {                                                                                               \
    cudaError_t e_ = (expr);                                                                         \
    if (e_ != cudaSuccess)                                                                           \
      throw std::runtime_error(std::string("fp4gemm CUDA error: ") + cudaGetErrorString(e_) + " (" #expr ")"); \
  } while (0)

namespace fp4gemm::cuda {

constexpr unsigned kFull = 0xFFFFFFFFu;

// Input element types as raw storage: the fp32 conversion goes through numerics.h (same bits as CPU).
struct F32In { using T = float; };
struct F16In { using T = uint16_t; };
struct BF16In { using T = uint16_t; };

template <class In> __device__ __forceinline__ float to_f32(typename In::T v);
template <> __device__ __forceinline__ float to_f32<F32In>(float v) { return v; }
template <> __device__ __forceinline__ float to_f32<F16In>(uint16_t v) { return num::f16_to_f32(v); }
template <> __device__ __forceinline__ float to_f32<BF16In>(uint16_t v) { return num::bf16_to_f32(v); }

}  // namespace fp4gemm::cuda
