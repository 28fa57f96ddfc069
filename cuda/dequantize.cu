// Elementwise dequantization and the standalone Hadamard transform on the GPU (numerics.h steps).
#include "cuda_api.h"
#include "warp_line.cuh"

namespace fp4gemm::cuda {
namespace {

__global__ void dequantize_kernel(QuantizedIn q, float* __restrict__ out) {
  const int64_t n = q.rows * q.k;
  const float amax = q.fmt == Format::NVFP4 ? *q.amax : 0.0f;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = e / q.k, k = e % q.k;
    out[e] = num::dequantize_element(q.fmt, q.scale_rule, num::operand_code(q, r, k), num::operand_scale(q, r, k), amax,
                                     q.global_scale);
  }
}

// One warp per 256-wide segment of a row, 8 consecutive values per lane; segments start at
// multiples of 256, hence of g.
constexpr int kPerLane = 8;
template <class In>
__global__ void hadamard_kernel(const typename In::T* __restrict__ x, int64_t rows, int64_t K, int64_t ld, int g,
                                num::U32x4 s0, num::U32x4 s1, float* __restrict__ out) {
  const uint32_t signs[8] = {s0.x, s0.y, s0.z, s0.w, s1.x, s1.y, s1.z, s1.w};
  const int lane = threadIdx.x & 31;
  const int64_t segs = (K + 255) / 256;
  const int64_t w = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5;
  if (w >= rows * segs) return;  // whole warps leave together
  const int64_t r = w / segs, start = (w % segs) * 256 + kPerLane * lane;
  const bool live = start < K;   // K is a multiple of g >= 16: a lane's 8 values are all in or all out
  float v[kPerLane];
  FP4_UNROLL
  for (int j = 0; j < kPerLane; ++j) v[j] = live ? to_f32<In>(x[r * ld + start + j]) : 0.0f;
  lane_hadamard(v, g, signs, lane);
  if (live)
    FP4_UNROLL
    for (int j = 0; j < kPerLane; ++j) out[r * K + start + j] = v[j];
}

}  // namespace

void dequantize(const QuantizedIn& q, float* out, cudaStream_t stream) {
  const int64_t n = q.rows * q.k;
  const int blocks = int(std::min<int64_t>((n + 255) / 256, 65536));
  dequantize_kernel<<<blocks, 256, 0, stream>>>(q, out);
  FP4_CUDA_CHECK(cudaGetLastError());
}

void hadamard_transform(const void* x, DType dtype, int64_t rows, int64_t K, int64_t ld, int g,
                        const uint32_t signs[8], float* out, cudaStream_t stream) {
  const int64_t warps = rows * ((K + 255) / 256);
  const unsigned blocks = unsigned((warps * 32 + 255) / 256);
  const num::U32x4 s0{signs[0], signs[1], signs[2], signs[3]}, s1{signs[4], signs[5], signs[6], signs[7]};
  with_input(dtype, [&](auto in) {
    using In = decltype(in);
    hadamard_kernel<In><<<blocks, 256, 0, stream>>>(static_cast<const typename In::T*>(x), rows, K, ld, g, s0, s1, out);
  });
  FP4_CUDA_CHECK(cudaGetLastError());
}

}  // namespace fp4gemm::cuda
