// The Hopper GEMM epilogue that writes D quantized (GemmArgs::d_quant): an EVT root node above the
// fp32 D of ScaleBiasEpilogue. The kernel's D is void; the collective's D staging buffer (fp32, one
// TileM x 128 subtile, allocated because the node names fp32 as its element) holds the subtile while
// the quantize kernels' per-lane code (quantize_lane.cuh) encodes its rows, so the bytes are those of
// quantize() of the fp32 D by construction.
// Rows of either operand outside the FP8 window are recomputed after the GEMM (gemm.cu): a row of A's
// is a whole D row, requantized afterwards from the fixup's fp32 values; a row of B's is a D column,
// which changes every row's block around it, so when B has any, the node writes the fp32 D instead
// (d32) and every row is quantized after the fixup.
#pragma once

#include "epilogue.cuh"
#include "quantize_d.cuh"

namespace fp4gemm::cuda {

// Staging offset of subtile element (r, c), c < 128. The XOR terms keep both access patterns at
// their fewest shared-memory wavefronts: the writes of an accumulator fragment (8 rows x 4 lanes x
// 2 values: rows spread by r & 7) and the rowwise reads (a row's 8 lanes x 16 values in 16-byte
// vectors: 16-float runs spread by c / 32). Both keep 4-aligned runs whole.
__device__ __forceinline__ int stage_at(int r, int c) {
  return r * kQuantEpiN + (c ^ (((c >> 5) & 3) << 2) ^ ((r & 7) << 3));
}

// Quantize the staged rows [0, kRows) of a subtile whose element (0, 0) is D[m0, n0].
template <Format F, Rounding Rd, int kRows, int kThreads>
__device__ __forceinline__ void quantize_staged(const float* stage, int64_t m0, int64_t n0, const QuantizeDArgs& q,
                                                int thread) {
  constexpr int N = kQuantLane, kSegs = kQuantEpiN / N, kRowsPerWarp = 32 / kSegs;
  const Codec codec = kernel_codec<F, Rd>(q.dir);
  const int lane = thread & 31, seg = lane % kSegs;
  float unused = 0.0f;
  for (int rg = thread >> 5; rg < kRows / kRowsPerWarp; rg += kThreads / 32) {
    const int r = rg * kRowsPerWarp + lane / kSegs;
    float v[N];
    FP4_UNROLL
    for (int k = 0; k < N / 4; ++k) {
      const float4 f = *reinterpret_cast<const float4*>(stage + stage_at(r, N * seg + 4 * k));
      v[4 * k] = f.x; v[4 * k + 1] = f.y; v[4 * k + 2] = f.z; v[4 * k + 3] = f.w;
    }
    const int64_t m = m0 + r, n = n0 + N * seg;  // N % 16 == 0: a lane is all in or all out
    rowwise_lane<Pass::Quant, kSegs>(v, m < q.M && n < q.N, m, n, seg, q.dir, codec, nullptr, 0.0f, unused);
  }
}

template <int kRows, int kThreads>
__device__ __forceinline__ void quantize_staged(const float* stage, int64_t m0, int64_t n0, const QuantizeDArgs& q,
                                                int thread) {
  with_codec<Format::MXFP4, Format::NVFP4>(q.dir.codec.fmt, q.dir.codec.rounding == Rounding::SR, [&](auto k) {
    using K = decltype(k);
    quantize_staged<K::fmt, K::rounding, kRows, kThreads>(stage, m0, n0, q, thread);
  });
}

// The root node: passes the fp32 D through visit(), then stages and quantizes it in reduce(), the
// collective's hook with a shared-memory buffer and the epilogue barrier.
struct QuantizeDNode {
  using ElementAux = float;  // with D void, the collective sizes its staging buffer by this type
  struct SharedStorage {};
  using Arguments = QuantizeDArgs;
  using Params = QuantizeDArgs;

  template <class ProblemShape>
  static constexpr Params to_underlying_arguments(ProblemShape const&, Arguments const& args, void*) { return args; }
  template <class ProblemShape>
  static bool can_implement(ProblemShape const&, Arguments const&) { return true; }
  template <class ProblemShape>
  static size_t get_workspace_size(ProblemShape const&, Arguments const&) { return 0; }
  template <class ProblemShape>
  static cutlass::Status initialize_workspace(ProblemShape const&, Arguments const&, void*, cudaStream_t,
                                              cutlass::CudaHostAdapter* = nullptr) {
    return cutlass::Status::kSuccess;
  }

  CUTLASS_HOST_DEVICE QuantizeDNode() {}
  CUTLASS_HOST_DEVICE QuantizeDNode(Params const& params, SharedStorage const&) : params(params) {}
  Params params;

  CUTLASS_DEVICE bool is_producer_load_needed() const { return false; }
  CUTLASS_DEVICE bool is_C_load_needed() const { return false; }

  template <class... Args>
  CUTLASS_DEVICE auto get_producer_load_callbacks(cutlass::epilogue::fusion::detail::ProducerLoadArgs<Args...> const&) {
    return cutlass::epilogue::fusion::EmptyProducerLoadCallbacks{};
  }

  template <class CTensor, int kEpiM, int kThreads>
  struct ConsumerStoreCallbacks : cutlass::epilogue::fusion::EmptyConsumerStoreCallbacks {
    CUTLASS_DEVICE ConsumerStoreCallbacks(CTensor tCcD, int64_t m0, int64_t n0, int tm, int tn, int thread,
                                          Params const& params)
        : tCcD(tCcD), m0(m0), n0(n0), tm(tm), tn(tn), thread(thread), params(params) {}
    CTensor tCcD;  // (CPY, CPY_M, CPY_N, EPI_M, EPI_N): each register's (m, n) from the thread's first
    int64_t m0, n0;  // the CTA tile's first element
    int tm, tn;      // the thread's first element within the CTA tile
    int thread;
    Params const& params;
    bool to_d32 = false;

    CUTLASS_DEVICE void begin() { to_d32 = params.b_special[0] > 0; }

    template <typename ElementAccumulator, int FragmentSize>
    CUTLASS_DEVICE cutlass::Array<float, FragmentSize> visit(cutlass::Array<ElementAccumulator, FragmentSize> const&,
                                                             int, int, int,
                                                             cutlass::Array<float, FragmentSize> const& d) {
      return d;
    }

    template <class STensor, class SyncFn, class VTensor>
    CUTLASS_DEVICE void reduce(STensor&& buffer, SyncFn const& sync, int epi_m, int epi_n, bool, VTensor results) {
      using Frag = cute::remove_cvref_t<decltype(results(0))>;
      constexpr int kFrag = Frag::kElements;
      auto crd = tCcD(cute::_, cute::_, cute::_, epi_m, epi_n);
      // store(r, c, value) for each register of the subtile, (r, c) within the CTA tile
      auto each = [&](auto&& store) {
        CUTLASS_PRAGMA_UNROLL
        for (int v = 0; v < int(cute::size(results)); ++v) {
          CUTLASS_PRAGMA_UNROLL
          for (int j = 0; j < kFrag; ++j) {
            const auto c = crd(v * kFrag + j);
            store(tm + int(cute::get<0>(c)), tn + int(cute::get<1>(c)), results(v)[j]);
          }
        }
      };
      if (to_d32) {  // B has rows outside the window: fp32 D out, quantized after the fixup (gemm.cu)
        each([&](int r, int c, float x) {
          const int64_t m = m0 + r, n = n0 + c;
          if (m < params.M && n < params.N) params.d32[m * params.N + n] = x;
        });
        return;
      }
      // The collective's barrier after each subtile already separates the last reads of the previous
      // subtile from these writes.
      float* stage = cute::raw_pointer_cast(buffer.data());
      each([&](int r, int c, float x) { stage[stage_at(r - epi_m * kEpiM, c - epi_n * kQuantEpiN)] = x; });
      sync();
      quantize_staged<kEpiM, kThreads>(stage, m0 + epi_m * kEpiM, n0 + epi_n * kQuantEpiN, params, thread);
    }
  };

  template <bool ReferenceSrc, class... Args>
  CUTLASS_DEVICE auto get_consumer_store_callbacks(
      cutlass::epilogue::fusion::detail::ConsumerStoreArgs<Args...> const& args) {
    using EpiTile = decltype(args.epi_tile);
    constexpr int kEpiM = int(cute::size<0>(EpiTile{}));
    constexpr int kThreads = int(cute::size(decltype(args.tiled_mma){}));
    static_assert(int(cute::size<1>(EpiTile{})) == kQuantEpiN, "subtiles of 128 columns");
    const int64_t m0 = int64_t(cute::get<0>(args.tile_coord_mnkl)) * cute::size<0>(args.tile_shape_mnk);
    const int64_t n0 = int64_t(cute::get<1>(args.tile_coord_mnkl)) * cute::size<1>(args.tile_shape_mnk);
    // tCcD counts from the thread's first element, whose distance to (M, N) is residue_tCcD.
    const int tm = int(int64_t(cute::get<0>(args.problem_shape_mnkl)) - cute::get<0>(args.residue_tCcD) - m0);
    const int tn = int(int64_t(cute::get<1>(args.problem_shape_mnkl)) - cute::get<1>(args.residue_tCcD) - n0);
    return ConsumerStoreCallbacks<decltype(args.tCcD), kEpiM, kThreads>(args.tCcD, m0, n0, tm, tn, args.thread_idx,
                                                                         params);
  }
};

template <class TileShape>
using QuantizeDEpilogue = cutlass::epilogue::fusion::Sm90EVT<QuantizeDNode, ScaleBiasEpilogue<TileShape, float>>;

}  // namespace fp4gemm::cuda
