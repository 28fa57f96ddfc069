// One Blackwell block-scaled GEMM kernel type from CUTLASS collectives (included by gemm_sm100.cu and
// gemm_sm120.cu only, each compiled for its own architecture). The mainloop reads packed E2M1 codes and
// 128x4-blocked scales straight from global memory (TMA) and multiplies them on the block-scaled tensor
// cores with fp32 accumulation; the epilogue is the Hopper GEMM's float64 visitor tree
// (ScaleBiasEpilogue), so alpha, the tensor factors and the bias are applied exactly and rounded once.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "common.cuh"
#include "cute/tensor.hpp"
#include "cutlass/cutlass.h"
#include "cutlass/detail/sm100_blockscaled_layout.hpp"
#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/gemm/collective/collective_builder.hpp"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
#include "cutlass/gemm/kernel/gemm_universal.hpp"
#include "cutlass/kernel_hardware_info.h"
#include "cutlass/util/packed_stride.hpp"
#include "epilogue.cuh"
#include "gemm_native.h"

namespace fp4gemm::cuda {

using namespace cute;

// What differs between kernels: architecture, operand type (data + scale type + block), CTA tile,
// cluster, and the mainloop / epilogue schedules.
template <class Arch_, class ElementPair_, class TileShape_, class ClusterShape_, class MainloopSchedule_,
          class EpilogueSchedule_>
struct NativeConfig {
  using Arch = Arch_;
  using ElementPair = ElementPair_;  // cutlass::mx_float4_t / nv_float4_t<float_e2m1_t>
  using TileShape = TileShape_;
  using ClusterShape = ClusterShape_;
  using MainloopSchedule = MainloopSchedule_;
  using EpilogueSchedule = EpilogueSchedule_;
};

template <class Config, class ElementD>
struct NativeGemm {
  using ElementPair = typename Config::ElementPair;
  using ElementData = typename ElementPair::DataType;         // float_e2m1_t
  using ElementScale = typename ElementPair::ScaleFactorType; // float_ue8m0_t / float_ue4m3_t
  using TileShape = typename Config::TileShape;
  static constexpr int kAlignAB = 32;                         // 32 E2M1 codes = 16 bytes (TMA)
  static constexpr int kAlignD = 16 / sizeof(ElementD);

  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      typename Config::Arch, cutlass::arch::OpClassBlockScaledTensorOp, TileShape, typename Config::ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, float, double,
      void, cutlass::layout::RowMajor, kAlignD,       // no C operand
      ElementD, cutlass::layout::RowMajor, kAlignD,
      typename Config::EpilogueSchedule, ScaleBiasEpilogue<TileShape, ElementD>>::CollectiveOp;

  using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      typename Config::Arch, cutlass::arch::OpClassBlockScaledTensorOp,
      ElementPair, cutlass::layout::RowMajor, kAlignAB,     // A [M, K], K-major
      ElementPair, cutlass::layout::ColumnMajor, kAlignAB,  // B [N, K], K-major ("TN")
      float, TileShape, typename Config::ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<int(sizeof(typename Epilogue::SharedStorage))>,
      typename Config::MainloopSchedule>::CollectiveOp;

  using Kernel = cutlass::gemm::kernel::GemmUniversal<Shape<int, int, int, int>, Mainloop, Epilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
  // The scale-factor layouts CUTLASS expects: the 128x4 blocked layout of SPEC.md 2.
  using ScaleConfig = typename Mainloop::Sm1xxBlkScaledConfig;
  static_assert(ScaleConfig::SFVecSize == (cute::is_same_v<ElementScale, cutlass::float_ue8m0_t> ? 32 : 16),
                "MXFP4: one E8M0 scale per 32 codes; NVFP4: one E4M3 scale per 16 (SPEC.md 2)");

  static typename Gemm::Arguments arguments(const NativeArgs& g) {
    const int M = int(g.m), N = int(g.n), K = int(g.k);
    using StrideA = typename Kernel::StrideA;
    using StrideB = typename Kernel::StrideB;
    typename Gemm::Arguments args{};
    args.mode = cutlass::gemm::GemmUniversalMode::kGemm;
    args.problem_shape = {M, N, K, 1};
    args.mainloop.ptr_A = reinterpret_cast<const ElementData*>(g.a);
    args.mainloop.dA = cutlass::make_cute_packed_stride(StrideA{}, make_shape(M, K, 1));
    args.mainloop.ptr_B = reinterpret_cast<const ElementData*>(g.b);
    args.mainloop.dB = cutlass::make_cute_packed_stride(StrideB{}, make_shape(N, K, 1));
    args.mainloop.ptr_SFA = reinterpret_cast<const ElementScale*>(g.sfa);
    args.mainloop.layout_SFA = ScaleConfig::tile_atom_to_shape_SFA(make_shape(M, N, K, 1));
    args.mainloop.ptr_SFB = reinterpret_cast<const ElementScale*>(g.sfb);
    args.mainloop.layout_SFB = ScaleConfig::tile_atom_to_shape_SFB(make_shape(M, N, K, 1));
    set_scale_bias_arguments(args.epilogue, M, N, g.d, g.factor_a, g.factor_b, g.bias, g.alpha);
    args.hw_info.device_id = 0;      // sm_count is only read when running (host checks need no GPU)
    args.hw_info.sm_count = 0;
    return args;
  }

  // Where the kernel reads scale (row, col) of operand A (or B) of a rows x k operand: CUTLASS's own
  // layout function, evaluated on the host, so tests can hold it against SPEC.md 2's blocked layout.
  static std::vector<int64_t> scale_offsets(int64_t rows, int64_t k, bool operand_b) {
    const int R = int(rows), K = int(k);
    constexpr int kVec = ScaleConfig::SFVecSize;
    const auto layout = operand_b ? ScaleConfig::tile_atom_to_shape_SFB(make_shape(1, R, K, 1))
                                  : ScaleConfig::tile_atom_to_shape_SFA(make_shape(R, 1, K, 1));
    std::vector<int64_t> out;
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < K / kVec; ++c) out.push_back(int64_t(layout(make_coord(r, c * kVec, 0))));
    return out;
  }

  // CUTLASS's own verdict on this problem (alignment, TMA constraints): host code only.
  static std::string can_implement(const NativeArgs& g) {
    const cutlass::Status st = Gemm::can_implement(arguments(g));
    return st == cutlass::Status::kSuccess ? std::string() : std::string(cutlassGetStatusString(st));
  }

  static typename Gemm::Arguments device_arguments(const NativeArgs& g) {
    auto args = arguments(g);
    FP4_CUDA_CHECK(cudaGetDevice(&args.hw_info.device_id));
    args.hw_info.sm_count = sm_count();
    return args;
  }

  static size_t workspace_size(const NativeArgs& g) { return Gemm::get_workspace_size(device_arguments(g)); }

  static void run(const NativeArgs& g, cudaStream_t stream, const char* name) {
    auto args = device_arguments(g);
    Gemm gemm;
    cutlass::Status st = gemm.can_implement(args);
    if (st != cutlass::Status::kSuccess)
      throw std::invalid_argument(std::string("fp4gemm ") + name + " GEMM: CUTLASS cannot run this problem: " +
                                  cutlassGetStatusString(st));
    if (Gemm::get_workspace_size(args) > g.workspace_size)
      throw std::runtime_error(std::string("fp4gemm ") + name + " GEMM: workspace too small");
    st = gemm.initialize(args, g.workspace, stream);
    if (st != cutlass::Status::kSuccess)
      throw std::runtime_error(std::string("fp4gemm ") + name + " GEMM: initialize failed: " + cutlassGetStatusString(st));
    st = gemm.run(stream);
    if (st != cutlass::Status::kSuccess)
      throw std::runtime_error(std::string("fp4gemm ") + name + " GEMM: launch failed: " + cutlassGetStatusString(st));
  }
};

// Dispatch one architecture's two configurations (MX, NV) over the output types.
template <class MxConfig, class NvConfig, class Fn>
decltype(auto) native_dispatch(const NativeArgs& g, Fn&& fn) {
  auto with = [&](auto config) -> decltype(auto) {
    return with_output(g.out_dtype, [&](auto d) -> decltype(auto) { return fn(NativeGemm<decltype(config), decltype(d)>{}); });
  };
  return g.scale == NativeScale::MX ? with(MxConfig{}) : with(NvConfig{});
}

// Defines the entry points gemm_native.h declares for one architecture.
#define FP4_NATIVE_DEFINE(prefix, MxConfig, NvConfig)                                                        \
  void prefix##_gemm(const NativeArgs& g, cudaStream_t stream) {                                         \
    native_dispatch<MxConfig, NvConfig>(g, [&](auto k) { decltype(k)::run(g, stream, #prefix); });       \
  }                                                                                                      \
  size_t prefix##_workspace_size(const NativeArgs& g) {                                                  \
    return native_dispatch<MxConfig, NvConfig>(g, [&](auto k) { return decltype(k)::workspace_size(g); }); \
  }                                                                                                      \
  std::string prefix##_can_implement(const NativeArgs& g) {                                              \
    return native_dispatch<MxConfig, NvConfig>(g, [&](auto k) { return decltype(k)::can_implement(g); });  \
  }                                                                                                      \
  std::vector<int64_t> prefix##_scale_offsets(NativeScale scale, int64_t rows, int64_t k, bool operand_b) { \
    NativeArgs g;                                                                                        \
    g.scale = scale;                                                                                     \
    return native_dispatch<MxConfig, NvConfig>(                                                          \
        g, [&](auto kernel) { return decltype(kernel)::scale_offsets(rows, k, operand_b); });            \
  }

}  // namespace fp4gemm::cuda
