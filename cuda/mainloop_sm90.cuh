// The consumer loop of the Hopper FP8 GEMMs: CUTLASS's blockwise-scaled FP8 collective (TMA loads,
// smem pipeline, A's per-(row, 128-K chunk) scales, B's unit scales) with its mma() replaced.
//
// Per k-tile a warp group issues its chunk's wgmmas, waits for them, then promotes them into the
// main accumulators (acc += part * scale, one FFMA per element). CUTLASS's loop does the pipeline
// bookkeeping, the full-barrier wait and the scale loads between the promotion and the next issue;
// here they run while the chunk's own wgmmas are in flight, so only the promotion separates one
// chunk's wgmmas from the next:
//   issue chunk 0
//   for each chunk k:  read k's scales, wait for k+1's stage    (under k's wgmmas)
//                      wait for k's wgmmas, release k's stage, promote k, issue k + 1
// and the two warp groups of a cooperative tile take turns to issue. Measured (H100, docs/kernels.md,
// session 12): the rotation alone was 4-7 % slower than CUTLASS's loop (the groups' wgmmas then
// interleave on the tensor cores), rotation with turns 1-5 % faster, turns without rotation 9-17 %
// slower.
// The sums are the same in the same order (acc = sum over chunks of part_c * scale_c, scale_c a power
// of two, so each FFMA rounds once): the bytes are those of CUTLASS's loop.
#pragma once

#include "cute/tensor.hpp"
#include "cutlass/arch/barrier.h"
#include "cutlass/gemm/collective/collective_builder.hpp"

namespace fp4gemm::cuda {

template <class Base>
struct RotatedPromotion : Base {
  using typename Base::ElementBlockScale;
  using typename Base::MainloopPipeline;
  using typename Base::Params;
  using typename Base::PipelineState;
  using typename Base::SmemLayoutA;
  using typename Base::SmemLayoutB;
  using typename Base::SmemLayoutSFA;
  using typename Base::SmemLayoutSFB;
  using typename Base::TensorStorage;
  using typename Base::TileShape;
  using typename Base::TiledMma;

  // One promotion per k-tile (TileK = the scale chunk = 128), one B scale per tile; a tile has at
  // least one k-tile (K > 0).
  static_assert(Base::ScalePromotionInterval * cute::size<2>(typename TiledMma::AtomShape_MNK{}) ==
                cute::size<2>(TileShape{}), "one promotion per k-tile");
  static_assert(Base::ScaleNsPerTile == 1, "one B scale per tile");

  // Releases every k-tile but the last; the kernel's mma_tail releases that one (CUTLASS's contract).
  template <class FrgTensorC>
  CUTLASS_DEVICE void mma(MainloopPipeline pipeline, PipelineState smem_pipe_read, FrgTensorC& accum,
                          int k_tile_count, int thread_idx, TensorStorage& shared_tensors, Params const&) {
    using namespace cute;
    Tensor sA = make_tensor(make_smem_ptr(shared_tensors.smem_A.data()), SmemLayoutA{});  // (BLK_M,BLK_K,PIPE)
    Tensor sB = make_tensor(make_smem_ptr(shared_tensors.smem_B.data()), SmemLayoutB{});  // (BLK_N,BLK_K,PIPE)
    // The scales as (BLK_M, BLK_N, (BLK_K, PIPE)) tensors broadcast over the other operand's mode, so
    // that the accumulator's partition picks each thread's rows.
    Tensor sSFA = make_tensor(make_smem_ptr(shared_tensors.smem_SFA.data()),
                              make_layout(make_shape(get<0>(shape(SmemLayoutSFA{})), get<1>(TileShape{}),
                                                     make_shape(get<1>(shape(SmemLayoutSFA{})), get<2>(shape(SmemLayoutSFA{})))),
                                          make_stride(get<0>(stride(SmemLayoutSFA{})), _0{},
                                                      make_stride(get<1>(stride(SmemLayoutSFA{})), get<2>(stride(SmemLayoutSFA{}))))));
    Tensor sSFB = make_tensor(make_smem_ptr(shared_tensors.smem_SFB.data()),
                              make_layout(make_shape(get<0>(TileShape{}), get<0>(shape(SmemLayoutSFB{})),
                                                     make_shape(get<1>(shape(SmemLayoutSFB{})), get<2>(shape(SmemLayoutSFB{})))),
                                          make_stride(_0{}, get<0>(stride(SmemLayoutSFB{})),
                                                      make_stride(get<1>(stride(SmemLayoutSFB{})), get<2>(stride(SmemLayoutSFB{}))))));

    constexpr int kWarpGroups = size(TiledMma{}) / cutlass::NumThreadsPerWarpGroup;
    const int warp_group = __shfl_sync(0xffffffff, thread_idx / cutlass::NumThreadsPerWarpGroup, 0);
    TiledMma tiled_mma;
    auto thread_mma = tiled_mma.get_slice(make_layout(Int<kWarpGroups>{}, Int<cutlass::NumThreadsPerWarpGroup>{})(warp_group));
    Tensor tCsSFA = tiled_mma.get_slice(thread_idx).partition_C(sSFA);  // (MMA,MMA_M,MMA_N,(MMA_K,PIPE))
    Tensor tCsSFB = tiled_mma.get_slice(thread_idx).partition_C(sSFB);
    Tensor tCrA = thread_mma.make_fragment_A(thread_mma.partition_A(sA));  // (MMA,MMA_M,MMA_K,PIPE)
    Tensor tCrB = thread_mma.make_fragment_B(thread_mma.partition_B(sB));  // (MMA,MMA_N,MMA_K,PIPE)

    Tensor part = make_fragment_like(accum);  // one chunk's partial sums
    Tensor scale = make_tensor_like<ElementBlockScale>(tCsSFA(_, _, _, _0{}));

    // The chunk in `stage` into `part` (zeroed by its first wgmma); not waited for.
    auto issue = [&](int stage) {
      tiled_mma.accumulate_ = GMMA::ScaleOut::Zero;
      warpgroup_fence_operand(part);
      warpgroup_arrive();  // orders the promotion's reads of `part` before these writes
      CUTLASS_PRAGMA_UNROLL
      for (int k_block = 0; k_block < size<2>(tCrA); ++k_block) {
        cute::gemm(tiled_mma, tCrA(_, _, k_block, stage), tCrB(_, _, k_block, stage), part);
        tiled_mma.accumulate_ = GMMA::ScaleOut::One;
      }
      warpgroup_commit_batch();
      warpgroup_fence_operand(part);
    };

    // Chunk k's scales, read under its wgmmas (the stage is released only after them).
    auto read_scale = [&](int stage) {
      copy(tCsSFA(_, _, _, make_coord(_0{}, stage)), scale);
      const ElementBlockScale scale_b = tCsSFB(_0{}, _0{}, _0{}, make_coord(_0{}, stage));
      CUTLASS_PRAGMA_UNROLL
      for (int i = 0; i < size(filter_zeros(scale)); ++i) filter_zeros(scale)(i) *= scale_b;
    };
    auto promote = [&] {
      warpgroup_fence_operand(accum);
      CUTLASS_PRAGMA_UNROLL
      for (int i = 0; i < size(accum); ++i) accum(i) += part(i) * scale(i);
      warpgroup_fence_operand(accum);
    };

    // Cooperative tiles: the two warp groups take turns to issue, so the tensor cores run one
    // group's chunk, then the other's, while each promotes under the other's wgmmas. User named
    // barriers (CUTLASS reserves those below them): 0 "group 0 may issue", 1 "group 1 may issue".
    constexpr bool kTurns = kWarpGroups == 2;
    auto ordered_issue = [&](int k, int stage) {
      if constexpr (kTurns) {
        if (warp_group == 0) cutlass::arch::NamedBarrier::sync(256, 0);
        else {
          if (k == 0) cutlass::arch::NamedBarrier::arrive(256, 0);  // group 0 goes first
          cutlass::arch::NamedBarrier::sync(256, 1);
        }
      }
      issue(stage);
      if constexpr (kTurns) {
        if (warp_group == 0) cutlass::arch::NamedBarrier::arrive(256, 1);
        else if (k + 1 < k_tile_count) cutlass::arch::NamedBarrier::arrive(256, 0);
      }
    };

    clear(accum);
    pipeline.consumer_wait(smem_pipe_read, pipeline.consumer_try_wait(smem_pipe_read));
    ordered_issue(0, smem_pipe_read.index());
    CUTLASS_PRAGMA_NO_UNROLL
    for (int k = 1; k < k_tile_count; ++k) {
      const PipelineState current = smem_pipe_read;
      read_scale(current.index());
      ++smem_pipe_read;
      pipeline.consumer_wait(smem_pipe_read, pipeline.consumer_try_wait(smem_pipe_read));
      warpgroup_wait<0>();
      pipeline.consumer_release(current);
      promote();
      ordered_issue(k, smem_pipe_read.index());
    }
    // The last chunk: its stage stays for mma_tail to release.
    read_scale(smem_pipe_read.index());
    warpgroup_wait<0>();
    promote();
  }
};

}  // namespace fp4gemm::cuda
