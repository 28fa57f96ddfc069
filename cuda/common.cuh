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

// Correct rounding of a float64 result to an output type (bits of a 16-bit type): fp32 directly;
// 16-bit types through an fp32 rounded to odd, whose extra bits make the second rounding exact.
__device__ __forceinline__ float to_odd_f32(double v) {
  float t = __double2float_rz(v);
  if (double(t) != v && v == v) t = __uint_as_float(__float_as_uint(t) | 1u);
  return t;
}
__device__ __forceinline__ uint16_t bf16_bits_from_double(double v) {
  return __bfloat16_as_ushort(__float2bfloat16_rn(to_odd_f32(v)));
}
__device__ __forceinline__ uint16_t f16_bits_from_double(double v) {
  return __half_as_ushort(__float2half_rn(to_odd_f32(v)));
}
__device__ __forceinline__ void store_rounded(void* d, int64_t i, DType dt, double v) {
  if (dt == DType::F32) static_cast<float*>(d)[i] = __double2float_rn(v);
  else if (dt == DType::BF16) static_cast<uint16_t*>(d)[i] = bf16_bits_from_double(v);
  else static_cast<uint16_t*>(d)[i] = f16_bits_from_double(v);
}

}  // namespace fp4gemm::cuda
