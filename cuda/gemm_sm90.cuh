// Hopper (sm_90a) tensor-core GEMM of two folded operands (gemm_operand.cuh), built from CUTLASS
// collectives: TMA warp-specialized persistent mainloop, the ScaleBiasEpilogue visitor tree.
// FP8 operands use CUTLASS's blockwise-scaled FP8 mainloop with our consumer loop (mainloop_sm90.cuh):
// every 4 wgmma k-blocks (128 K) the fp32 partial sums are promoted into the main accumulators times
// A's chunk scale (gemm_operand.cuh), one FFMA per element; never "fast accumulation", which loses
// bits (SPEC.md 5).
#pragma once

#include <stdexcept>
#include <string>
#include <type_traits>

#include "common.cuh"
#include "cute/tensor.hpp"
#include "cutlass/cutlass.h"
#include "cutlass/detail/blockwise_scale_layout.hpp"
#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/gemm/collective/collective_builder.hpp"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
#include "cutlass/gemm/kernel/gemm_universal.hpp"
#include "cutlass/kernel_hardware_info.h"
#include "cutlass/util/packed_stride.hpp"
#include "epilogue_quantize.cuh"
#include "gemm_operand.cuh"
#include "mainloop_sm90.cuh"

namespace fp4gemm::cuda {

using namespace cute;

// A tile configuration: CTA tile, cluster, mainloop and epilogue schedules.
template <int M, int N, int K, int ClusterM, int ClusterN, class Mainloop, class Epilogue>
struct TileConfig {
  using TileShape = Shape<Int<M>, Int<N>, Int<K>>;
  using ClusterShape = Shape<Int<ClusterM>, Int<ClusterN>, _1>;
  using MainloopSchedule = Mainloop;
  using EpilogueSchedule = Epilogue;
};

// The output "type" of a kernel that writes D quantized (epilogue_quantize.cuh).
struct QuantizedD {};

// The epilogue collective: ScaleBiasEpilogue into ElementD, or, for QuantizedD, the quantizing root
// node with D void and one fp32 staging subtile of TileM x 128 (one stage: 64 KB for 128-row tiles).
template <class ElementD, class TileShape, class ClusterShape, class Schedule>
struct Sm90Epilogue {
  static constexpr int kAlignD = 16 / sizeof(ElementD);
  using CollectiveOp = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, float, double,
      void, cutlass::layout::RowMajor, kAlignD,       // no C operand
      ElementD, cutlass::layout::RowMajor, kAlignD,
      Schedule, ScaleBiasEpilogue<TileShape, ElementD>>::CollectiveOp;
};
template <class TileShape, class ClusterShape, class Schedule>
struct Sm90Epilogue<QuantizedD, TileShape, ClusterShape, Schedule> {
  static constexpr int kTileM = cute::size<0>(TileShape{});
  using EpilogueTile = Shape<Int<kTileM>, Int<kQuantEpiN>>;
  static constexpr int kThreads = std::is_same_v<Schedule, cutlass::epilogue::TmaWarpSpecializedCooperative> ? 256 : 128;
  using Policy = cutlass::epilogue::Sm90TmaWarpSpecialized<1, 1, kTileM * kQuantEpiN / kThreads, false, false>;
  using CollectiveOp = typename cutlass::epilogue::collective::detail::Sm90TmaBuilderImpl<
      TileShape, EpilogueTile, float, double, void, cutlass::layout::RowMajor, 4, void, cutlass::layout::RowMajor, 4,
      QuantizeDEpilogue<TileShape>, Policy>::CollectiveOp;
};

template <class ElementAB, class ElementD, class Config>
struct Sm90Gemm {
  using TileShape = typename Config::TileShape;
  using ClusterShape = typename Config::ClusterShape;
  static constexpr int kAlignAB = 16 / sizeof(ElementAB);
  static constexpr bool kQuantized = std::is_same_v<ElementD, QuantizedD>;

  // FP8: mainloop scales per (row of A, 128-K chunk) and per (tile of B's rows, chunk), the latter
  // ones (one scale per B tile keeps the promotion at one FFMA per element).
  static constexpr bool kChunked =
      std::is_same_v<typename Config::MainloopSchedule, cutlass::gemm::KernelTmaWarpSpecializedCooperativeFP8Blockwise> ||
      std::is_same_v<typename Config::MainloopSchedule, cutlass::gemm::KernelTmaWarpSpecializedPingpongFP8Blockwise>;
  static constexpr int kTileN = cute::size<1>(TileShape{});
  static_assert(!kChunked || kTileN == kOnesRows, "B's unit scales are written per 128 rows");
  using ScaleConfig = cutlass::detail::Sm90BlockwiseScaleConfig<1, kTileN, kChunkK, cute::GMMA::Major::MN,
                                                                 cute::GMMA::Major::K>;
  using LayoutSFA = decltype(ScaleConfig::deduce_layoutSFA());
  using LayoutA = std::conditional_t<kChunked, cute::tuple<cutlass::layout::RowMajor, LayoutSFA>, cutlass::layout::RowMajor>;
  using LayoutB = std::conditional_t<kChunked, cute::tuple<cutlass::layout::ColumnMajor, decltype(ScaleConfig::deduce_layoutSFB())>,
                                     cutlass::layout::ColumnMajor>;

  using Epilogue = typename Sm90Epilogue<ElementD, TileShape, ClusterShape, typename Config::EpilogueSchedule>::CollectiveOp;

  using BuiltMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp,
      ElementAB, LayoutA, kAlignAB,  // A [M, K], K-major
      ElementAB, LayoutB, kAlignAB,  // B [N, K], K-major ("TN")
      float, TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<int(sizeof(typename Epilogue::SharedStorage))>,
      typename Config::MainloopSchedule>::CollectiveOp;
  using Mainloop = std::conditional_t<kChunked, RotatedPromotion<BuiltMainloop>, BuiltMainloop>;

  using Kernel = cutlass::gemm::kernel::GemmUniversal<Shape<int, int, int, int>, Mainloop, Epilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

  static typename Gemm::Arguments arguments(const Sm90Args& g) {
    const int M = int(g.a.rows), N = int(g.b.rows), K = int(g.a.k);
    using StrideA = typename Gemm::GemmKernel::StrideA;
    using StrideB = typename Gemm::GemmKernel::StrideB;
    typename Gemm::Arguments args{};
    args.mode = cutlass::gemm::GemmUniversalMode::kGemm;
    args.problem_shape = {M, N, K, 1};
    args.mainloop.ptr_A = static_cast<const ElementAB*>(g.a.data);
    args.mainloop.dA = cutlass::make_cute_packed_stride(StrideA{}, make_shape(M, K, 1));
    args.mainloop.ptr_B = static_cast<const ElementAB*>(g.b.data);
    args.mainloop.dB = cutlass::make_cute_packed_stride(StrideB{}, make_shape(N, K, 1));
    if constexpr (kChunked) {
      // A's scales: [chunks, chunk_stride] with the stride padded to 4 rows (TMA); the pad rows are
      // zeros and their outputs are never stored.
      const int stride = int(g.a.chunk_stride), chunks = (K + kChunkK - 1) / kChunkK;
      args.mainloop.ptr_SFA = g.a.chunk_scale;
      args.mainloop.layout_SFA = make_layout(
          make_shape(make_shape(_1{}, stride), make_shape(Int<kChunkK>{}, chunks), 1),
          make_stride(make_stride(_0{}, _1{}), make_stride(_0{}, stride), stride * chunks));
      args.mainloop.ptr_SFB = g.b.ones;
      args.mainloop.layout_SFB = ScaleConfig::tile_atom_to_shape_SFB(make_shape(M, N, K, 1));
    }
    if constexpr (kQuantized) {
      auto& e = args.epilogue;
      e.ptr_C = nullptr;
      e.ptr_D = nullptr;
      e.dC = cutlass::make_cute_packed_stride(decltype(e.dC){}, make_shape(M, N, 1));
      e.dD = e.dC;
      set_scale_bias_tree(e.thread.op_0, g.a.factor, g.b.factor, g.bias, g.alpha);  // the child tree, then the node
      e.thread.op_1 = quantize_d_args(g);
    } else {
      set_scale_bias_arguments(args.epilogue, M, N, g.d, g.a.factor, g.b.factor, g.bias, g.alpha);
    }
    args.hw_info = hardware();
    args.scheduler.max_swizzle_size = g.swizzle;
    return args;
  }

  static cutlass::KernelHardwareInfo hardware() {
    cutlass::KernelHardwareInfo hw;
    FP4_CUDA_CHECK(cudaGetDevice(&hw.device_id));
    hw.sm_count = sm_count();
    return hw;
  }

  static size_t workspace_size(const Sm90Args& g) { return Gemm::get_workspace_size(arguments(g)); }

  static void run(const Sm90Args& g, cudaStream_t stream) {
    auto args = arguments(g);
    Gemm gemm;
    cutlass::Status st = gemm.can_implement(args);
    if (st != cutlass::Status::kSuccess)
      throw std::invalid_argument(std::string("fp4gemm sm90 GEMM: CUTLASS cannot run this problem: ") +
                                  cutlassGetStatusString(st));
    if (Gemm::get_workspace_size(args) > g.workspace_size)
      throw std::runtime_error("fp4gemm sm90 GEMM: workspace too small");
    st = gemm.initialize(args, g.workspace, stream);
    if (st != cutlass::Status::kSuccess)
      throw std::runtime_error(std::string("fp4gemm sm90 GEMM: initialize failed: ") + cutlassGetStatusString(st));
    st = gemm.run(stream);
    if (st != cutlass::Status::kSuccess)
      throw std::runtime_error(std::string("fp4gemm sm90 GEMM: launch failed: ") + cutlassGetStatusString(st));
  }
};

// Dispatch one operand type over the output types.
template <class ElementAB, class Config>
void sm90_run(const Sm90Args& g, cudaStream_t stream) {
  if (g.quantize_d) return Sm90Gemm<ElementAB, QuantizedD, Config>::run(g, stream);
  with_output(g.out_dtype, [&](auto d) { Sm90Gemm<ElementAB, decltype(d), Config>::run(g, stream); });
}
template <class ElementAB, class Config>
size_t sm90_workspace(const Sm90Args& g) {
  if (g.quantize_d) return Sm90Gemm<ElementAB, QuantizedD, Config>::workspace_size(g);
  return with_output(g.out_dtype, [&](auto d) { return Sm90Gemm<ElementAB, decltype(d), Config>::workspace_size(g); });
}

// Defines the entry points gemm_operand.cuh declares for one (operand type, tile).
#define FP4_SM90_DEFINE(name, ElementAB, Config)                                                 \
  void name(const Sm90Args& g, cudaStream_t stream) { sm90_run<ElementAB, Config>(g, stream); } \
  size_t name##_workspace(const Sm90Args& g) { return sm90_workspace<ElementAB, Config>(g); }

using Cooperative = cutlass::gemm::KernelTmaWarpSpecializedCooperative;
using CooperativeEpilogue = cutlass::epilogue::TmaWarpSpecializedCooperative;
using Pingpong = cutlass::gemm::KernelTmaWarpSpecializedPingpong;
using CooperativeChunked = cutlass::gemm::KernelTmaWarpSpecializedCooperativeFP8Blockwise;
using PingpongChunked = cutlass::gemm::KernelTmaWarpSpecializedPingpongFP8Blockwise;
using PingpongEpilogue = cutlass::epilogue::TmaWarpSpecialized;

}  // namespace fp4gemm::cuda
