// Small CUDA helpers shared by the kernels: error checks and input loads through numerics.h.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
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

// fn(In{}) with the input type of dtype: the one run-time -> compile-time switch of the input kernels.
template <class Fn>
void with_input(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::F32: return fn(F32In{});
    case DType::F16: return fn(F16In{});
    case DType::BF16: return fn(BF16In{});
  }
}

// query(device) for the current device, computed once per device (ids < 64) and kept in `cache`.
template <class Query>
int once_per_device(int (&cache)[64], Query query) {
  int device = 0;
  FP4_CUDA_CHECK(cudaGetDevice(&device));
  if (device < 64 && cache[device]) return cache[device];
  const int v = query(device);
  if (device < 64) cache[device] = v;
  return v;
}

// Multiprocessors of the current device.
inline int sm_count() {
  static int cache[64] = {};
  return once_per_device(cache, [](int device) {
    int sms = 0;
    FP4_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    return sms;
  });
}

// Correct rounding of a float64 result to a 16-bit output type: sm_90's one-step conversions
// (F2F.BF16.F64 / F2F.F16.F64), round to nearest even from the exact double, subnormals kept.
__device__ __forceinline__ uint16_t bf16_bits_from_double(double v) {
  uint16_t b;
  asm("cvt.rn.bf16.f64 %0, %1;" : "=h"(b) : "d"(v));
  return b;
}
__device__ __forceinline__ uint16_t f16_bits_from_double(double v) {
  uint16_t b;
  asm("cvt.rn.f16.f64 %0, %1;" : "=h"(b) : "d"(v));
  return b;
}
__device__ __forceinline__ void store_rounded(void* d, int64_t i, DType dt, double v) {
  if (dt == DType::F32) static_cast<float*>(d)[i] = __double2float_rn(v);
  else if (dt == DType::BF16) static_cast<uint16_t*>(d)[i] = bf16_bits_from_double(v);
  else static_cast<uint16_t*>(d)[i] = f16_bits_from_double(v);
}

}  // namespace fp4gemm::cuda
