// The Hopper GEMM epilogue, as a CUTLASS epilogue visitor tree:
//   D[m, n] = round(alpha * acc[m, n] * factor_a[m] * factor_b[n] + bias[n])
// computed in float64 and rounded once to the output type, so the only error left is the fp32
// accumulation itself (the factors carry the folded base exponents and tensor-level scales).
#pragma once

#include <type_traits>

#include "common.cuh"
#include "cute/tensor.hpp"
#include "cutlass/bfloat16.h"
#include "cutlass/epilogue/fusion/sm90_callbacks_tma_warpspecialized.hpp"
#include "cutlass/epilogue/fusion/sm90_visitor_compute_tma_warpspecialized.hpp"
#include "cutlass/epilogue/fusion/sm90_visitor_load_tma_warpspecialized.hpp"
#include "cutlass/epilogue/fusion/sm90_visitor_tma_warpspecialized.hpp"
#include "cutlass/half.h"
#include "cutlass/util/packed_stride.hpp"

namespace fp4gemm::cuda {

// Correct rounding of the float64 result to ElementD (common.cuh).
template <class T> __device__ __forceinline__ T round_from_double(double v);
template <> __device__ __forceinline__ float round_from_double<float>(double v) { return __double2float_rn(v); }
template <> __device__ __forceinline__ cutlass::bfloat16_t round_from_double<cutlass::bfloat16_t>(double v) {
  return cutlass::bfloat16_t::bitcast(bf16_bits_from_double(v));
}
template <> __device__ __forceinline__ cutlass::half_t round_from_double<cutlass::half_t>(double v) {
  return cutlass::half_t::bitcast(f16_bits_from_double(v));
}

// fn(T{}) with the output element type T of dtype: the one run-time -> compile-time switch of the
// GEMM kernels' output types.
template <class Fn>
decltype(auto) with_output(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::BF16: return fn(cutlass::bfloat16_t{});
    case DType::F16: return fn(cutlass::half_t{});
    default: return fn(float{});
  }
}

// alpha * acc * factor_a * factor_b, rounded step by step like the CPU reference (no FMA contraction).
__device__ __forceinline__ double scaled_output(double acc, double factor_a, double factor_b, double alpha) {
  return __dmul_rn(alpha, __dmul_rn(acc, __dmul_rn(factor_a, factor_b)));
}

// The compute node: (acc, factor_a, factor_b, bias) in double -> ElementD. Without a bias nothing is
// added (a -0 stays -0, as in the CPU reference).
template <class ElementD>
struct ScaleBiasRound {
  struct Arguments {
    double alpha = 1.0;
    bool has_bias = false;
  };
  template <class Fragment>
  struct Fn {
    using Arguments = ScaleBiasRound::Arguments;
    template <int N>
    __device__ cutlass::Array<ElementD, N> operator()(cutlass::Array<double, N> const& acc,
                                                      cutlass::Array<double, N> const& factor_a,
                                                      cutlass::Array<double, N> const& factor_b,
                                                      cutlass::Array<double, N> const& bias,
                                                      Arguments const& args) const {
      cutlass::Array<ElementD, N> out;
      auto scaled = [&](int i) { return scaled_output(acc[i], factor_a[i], factor_b[i], args.alpha); };
      if (args.has_bias) {  // uniform over the kernel
        CUTLASS_PRAGMA_UNROLL
        for (int i = 0; i < N; ++i) out[i] = round_from_double<ElementD>(__dadd_rn(scaled(i), bias[i]));
      } else {
        CUTLASS_PRAGMA_UNROLL
        for (int i = 0; i < N; ++i) out[i] = round_from_double<ElementD>(scaled(i));
      }
      return out;
    }
  };
};

template <class TileShape, class ElementD>
using ScaleBiasEpilogue = cutlass::epilogue::fusion::Sm90EVT<
    cutlass::epilogue::fusion::Sm90Compute<ScaleBiasRound<ElementD>::template Fn, ElementD, double,
                                           cutlass::FloatRoundStyle::round_to_nearest>,
    cutlass::epilogue::fusion::Sm90AccFetch,
    // factor_a: one per row m
    cutlass::epilogue::fusion::Sm90ColBroadcast<0, TileShape, double, double, cute::Stride<cute::_1, cute::_0, int64_t>>,
    // factor_b: one per column n
    cutlass::epilogue::fusion::Sm90RowBroadcast<0, TileShape, double, double, cute::Stride<cute::_0, cute::_1, int64_t>>,
    // bias: one per column n, 0 when null
    cutlass::epilogue::fusion::Sm90RowBroadcast<0, TileShape, float, double, cute::Stride<cute::_0, cute::_1, int64_t>>>;

// The visitor-tree arguments of a ScaleBiasEpilogue: children in order, then the node.
template <class TreeArguments>
void set_scale_bias_tree(TreeArguments& t, const double* factor_a, const double* factor_b, const float* bias,
                         double alpha) {
  cute::get<0>(t) = {};            // acc
  cute::get<1>(t) = {factor_a};    // factor_a[m]
  cute::get<2>(t) = {factor_b};    // factor_b[n]
  cute::get<3>(t) = {bias};        // bias[n]
  cute::get<4>(t) = {alpha, bias != nullptr};
}

// The epilogue arguments of a ScaleBiasEpilogue kernel writing D [M, N] row-major, no C operand
// (the Hopper and the Blackwell GEMMs share them).
template <class EpilogueArguments>
void set_scale_bias_arguments(EpilogueArguments& e, int M, int N, void* d, const double* factor_a,
                              const double* factor_b, const float* bias, double alpha) {
  using ElementD = std::remove_pointer_t<decltype(e.ptr_D)>;
  e.ptr_C = nullptr;
  e.dC = cutlass::make_cute_packed_stride(decltype(e.dC){}, cute::make_shape(M, N, 1));
  e.ptr_D = static_cast<ElementD*>(d);
  e.dD = e.dC;
  set_scale_bias_tree(e.thread, factor_a, factor_b, bias, alpha);
}

}  // namespace fp4gemm::cuda
