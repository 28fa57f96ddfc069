// The Hopper FP8 GEMM as one hand-written kernel, in DeepGEMM's form: persistent, warp-specialized,
// one TMA thread, two math warp groups, fp32 promotion of every 128-K chunk times A's chunk scale.
// It computes what the CUTLASS kernel of gemm_sm90.cuh computes, bit for bit (same wgmma atoms in the
// same order, the same FFMA promotion, the same float64 epilogue), without that collective's
// per-stage copy of B's unit scales and with a lighter epilogue: each warp group stores its own rows
// through two small shared-memory slabs and TMA, one 128-thread barrier per slab.
//
//   producer (1 thread)   for each tile, chunk: wait empty[s]; TMA A, B, A's chunk scales -> full[s]
//                         (kCluster = 2: two CTAs own vertically adjacent tiles; each loads half of
//                         B's tile for both, multicast, so the L2 serves B once per cluster)
//   math group g (128)    for each tile, chunk: wait full[s]; per 64-row wave, in turns with the
//                         other group: wait for the previous wave's wgmmas, release its stage (if
//                         its chunk's last), acc += part * scale[row], then 4 wgmma 64x128x32 into part
//                         epilogue: alpha * acc * factor_a[m] * factor_b[n] (+ bias[n]) in float64
//
// Tile kBlockM x 128 x 128: kBlockM = 128 (a 64-row wave per group, as the CUTLASS kernel) or 256
// (two waves per group: a quarter less TMA traffic per MMA, B read once for 256 rows, for 64 more
// accumulator registers).
#pragma once

#include <cuda.h>
#include <cudaTypedefs.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <utility>

#include "common.cuh"
#include "cute/arch/copy_sm90_desc.hpp"
#include "cute/arch/copy_sm90_tma.hpp"
#include "cute/arch/mma_sm90_desc.hpp"
#include "cute/arch/mma_sm90_gmma.hpp"
#include "cutlass/arch/barrier.h"
#include "cutlass/arch/reg_reconfig.h"
#include "cutlass/cuda_host_adapter.hpp"
#include "epilogue.cuh"
#include "gemm_operand.cuh"

namespace fp4gemm::cuda::fp8_kernel {

constexpr int kBlockN = 128;
constexpr int kBlockK = kChunkK;       // one promotion per stage
constexpr int kWgmmaK = 32;            // K of one E4M3 wgmma
constexpr int kMathThreads = 256;      // two math warp groups
constexpr int kThreads = kMathThreads + 128;  // + the producer warp group (one thread issues the TMA)
constexpr int kSmemLimit = 232448;     // sm_90's dynamic shared memory per block
constexpr int kProducerRegs = 40, kMathRegs = 232;
constexpr int kGroupM = 8;             // tile rows visited before moving along N (L2 reuse), by default
// Named barriers (CUTLASS offsets these past the ones it reserves): the issue turns, each group's slabs.
constexpr int kTurn0 = 0, kTurn1 = 1, kSlab0 = 2;

template <int kBlockM, class ElementD>
struct Layout {  // (kCluster changes nothing here: each CTA's stage holds all of B, half from its peer)
  static constexpr int kWaves = kBlockM / 128;  // 64-row wgmma waves per math group
  static constexpr int kABytes = kBlockM * kBlockK, kBBytes = kBlockN * kBlockK, kSfaBytes = kBlockM * 4;
  // Epilogue slabs of 64 rows x 64 bytes (a TMA store box with the 64-byte swizzle), two per group.
  static constexpr int kSlabN = 64 / int(sizeof(ElementD)), kSlabBytes = 64 * 64;
  static constexpr int kStageBytes = kABytes + kBBytes + kSfaBytes;
  // Slabs, then A and B stages (1024-byte aligned for the 128-byte swizzle), scales, barriers.
  static constexpr int kStages = (kSmemLimit - 4 * kSlabBytes - 1024) / kStageBytes;
  static constexpr int kA = 4 * kSlabBytes, kB = kA + kStages * kABytes, kSfa = kB + kStages * kBBytes;
  static constexpr int kBarriers = kSfa + kStages * kSfaBytes;
  static constexpr int kBytes = kBarriers + 2 * kStages * 8;
  static_assert(kSlabBytes % 1024 == 0 && kABytes % 1024 == 0 && kStages >= 3 && kBytes <= kSmemLimit);
  // advance(): every start address, / 16, fits the descriptor's 14-bit field, so adds never carry.
  static_assert(kBytes + 1024 <= (1 << 18));
};

struct Params {
  const double* factor_a;
  const double* factor_b;
  const float* bias;  // null: nothing added
  double alpha;
  int m, n, chunks;
  int group_m;  // tile rows per group of the tile order, a multiple of the cluster
};

// Item t of the persistent order, over rows of `group`-row groups: column by column within a group.
// An item is a tile, or with a cluster the cluster's kCluster vertically adjacent tiles.
struct TileOrder {
  int tiles_m, tiles_n, group;
  __device__ int count() const { return tiles_m * tiles_n; }
  __device__ void at(int t, int& tm, int& tn) const {
    const int per_group = group * tiles_n, first = t / per_group * group;
    const int rows = min(group, tiles_m - first), r = t % per_group;
    tm = first + r % rows;
    tn = r / rows;
  }
};

// A K-major operand tile with 128-byte rows and the 128-byte swizzle, as wgmma reads it: rows 8 x 128
// bytes apart per core matrix group (stride 1024), start at `addr`.
__device__ __forceinline__ uint64_t sw128_desc(uint32_t addr) {
  cute::GmmaDescriptor d;
  d.bitfield.start_address_ = uint16_t(addr >> 4);
  d.bitfield.leading_byte_offset_ = 1;  // unused with a swizzle
  d.bitfield.stride_byte_offset_ = 1024 >> 4;
  d.bitfield.base_offset_ = 0;
  d.bitfield.layout_type_ = 1;  // SWIZZLE_128B
  return d.desc_;
}

// The descriptor of the tile `bytes` further on: the start address is the low field (address / 16,
// 14 bits: all of shared memory), so the step is a plain add. Built once, advanced per wgmma, as
// CUTLASS does: rebuilding it per wgmma put six uniform instructions per operand on the issue path.
__device__ __forceinline__ uint64_t advance(uint64_t desc, uint32_t bytes) { return desc + (bytes >> 4); }

// mbarrier wait and arrive on a shared address computed once: through a pointer, every call
// converted it again (S2UR SR_CgaCtaId per chunk in the math loop, a dispatch stall on its path).
// The memory clobbers keep the scale reads of a stage between its wait and its release.
__device__ __forceinline__ void wait_barrier(uint32_t addr, int phase) {
  asm volatile(
      "{\n.reg .pred p;\nWAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1, %2;\n"
      "@p bra DONE;\nbra WAIT;\nDONE:\n}" ::"r"(addr), "r"(phase), "r"(0x989680) : "memory");
}
__device__ __forceinline__ void arrive_barrier(uint32_t addr) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(addr) : "memory");
}
// The same barrier of CTA `cta` of the cluster. Release at CTA scope, the default: `.release.cluster`
// put a fence (ERRBAR, a quarter of the samples) before every arrive, and only reads precede it.
__device__ __forceinline__ void arrive_barrier(uint32_t addr, int cta) {
  asm volatile(
      "{\n.reg .b32 remote;\nmapa.shared::cluster.u32 remote, %0, %1;\n"
      "mbarrier.arrive.shared::cluster.b64 _, [remote];\n}" ::"r"(addr), "r"(cta) : "memory");
}

template <size_t... I>
__device__ __forceinline__ void wgmma_64x128x32(uint64_t a, uint64_t b, float (&d)[64], bool accumulate,
                                                std::index_sequence<I...>) {
  cute::SM90::GMMA::MMA_64x128x32_F32E4M3E4M3_SS_TN<>::fma(
      a, b, d[I]..., accumulate ? cute::SM90::GMMA::ScaleOut::One : cute::SM90::GMMA::ScaleOut::Zero);
}

__device__ __forceinline__ void fence(float (&d)[64]) {
  CUTLASS_PRAGMA_UNROLL
  for (int i = 0; i < 64; ++i) cute::warpgroup_fence_operand(d[i]);
}

// Two adjacent outputs of one row as they lie in shared memory.
template <class ElementD> __device__ __forceinline__ void store_pair(uint32_t addr, double v0, double v1);
template <> __device__ __forceinline__ void store_pair<float>(uint32_t addr, double v0, double v1) {
  asm volatile("st.shared.v2.f32 [%0], {%1, %2};" ::"r"(addr), "f"(__double2float_rn(v0)), "f"(__double2float_rn(v1)));
}
template <class ElementD>
__device__ __forceinline__ void store_pair(uint32_t addr, double v0, double v1) {  // 16-bit types
  const uint32_t bits = uint32_t(round_from_double<ElementD>(v0).raw()) | uint32_t(round_from_double<ElementD>(v1).raw()) << 16;
  asm volatile("st.shared.b32 [%0], %1;" ::"r"(addr), "r"(bits));
}

template <int kBlockM, int kCluster, class ElementD>
__global__ void __launch_bounds__(kThreads, 1)  // the cluster, if any, is a launch attribute (run())
fp8_gemm(const __grid_constant__ CUtensorMap map_a, const __grid_constant__ CUtensorMap map_b,
         const __grid_constant__ CUtensorMap map_sfa, const __grid_constant__ CUtensorMap map_d, Params p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  using L = Layout<kBlockM, ElementD>;
  using FullBarrier = cutlass::arch::ClusterTransactionBarrier;
  using EmptyBarrier = cutlass::arch::ClusterBarrier;
  extern __shared__ __align__(1024) uint8_t smem[];
  auto* full = reinterpret_cast<FullBarrier*>(smem + L::kBarriers);
  auto* empty = reinterpret_cast<EmptyBarrier*>(smem + L::kBarriers + 8 * L::kStages);
  uint32_t smem_base = cute::cast_smem_ptr_to_uint(smem);
  asm("" : "+r"(smem_base));  // opaque: the loops use it, rather than read SR_CgaCtaId again per chunk
  // With a cluster, CTA `rank` takes tile row tm * kCluster + rank of each item (past M when the
  // tile rows are odd: TMA reads zeros, the stores clip).
  const TileOrder order{((p.m + kBlockM - 1) / kBlockM + kCluster - 1) / kCluster, (p.n + kBlockN - 1) / kBlockN,
                        p.group_m / kCluster};
  const int rank = kCluster > 1 ? int(cute::block_rank_in_cluster()) : 0;
  const int first = int(blockIdx.x) / kCluster, step = int(gridDim.x) / kCluster;

  if (threadIdx.x == kMathThreads) {
    for (int s = 0; s < L::kStages; ++s) {
      full[s].init(1);
      empty[s].init(kCluster * kMathThreads / 32);  // lane 0 of each math warp of each CTA: B's halves
    }                                               // land in both, so a stage is free when both are done
    cutlass::arch::fence_barrier_init();
  }
  // The barriers, initialised, before any CTA of the cluster signals them; and no CTA leaves while
  // its peer may still signal its barriers. The cluster barriers are .aligned: whole warps only.
  auto meet = [] {
    if constexpr (kCluster > 1) {
      __syncwarp();
      cute::cluster_arrive();
      cute::cluster_wait();
    }
  };
  if constexpr (kCluster > 1) meet();
  else __syncthreads();

  if (threadIdx.x >= kMathThreads) {
    cutlass::arch::warpgroup_reg_dealloc<kProducerRegs>();
    if (threadIdx.x == kMathThreads) {
      cute::prefetch_tma_descriptor(&map_a);
      cute::prefetch_tma_descriptor(&map_b);
      cute::prefetch_tma_descriptor(&map_sfa);
      constexpr uint64_t kHint = uint64_t(cute::TMA::CacheHintSm90::EVICT_NORMAL);
      constexpr int kBRows = kBlockN / kCluster;  // the rows of B this CTA loads (for the whole cluster)
      int stage = 0, phase = 0;
      for (int t = first; t < order.count(); t += step) {
        int tm, tn;
        order.at(t, tm, tn);
        tm = tm * kCluster + rank;
        for (int c = 0; c < p.chunks; ++c) {
          empty[stage].wait(phase ^ 1);
          full[stage].arrive_and_expect_tx(L::kStageBytes);
          uint64_t* bar = reinterpret_cast<uint64_t*>(&full[stage]);
          uint8_t* b = smem + L::kB + stage * L::kBBytes + rank * kBRows * kBlockK;
          cute::SM90_TMA_LOAD_2D::copy(&map_a, bar, kHint, smem + L::kA + stage * L::kABytes, c * kBlockK, tm * kBlockM);
          if constexpr (kCluster > 1)
            cute::SM90_TMA_LOAD_MULTICAST_2D::copy(&map_b, bar, (1 << kCluster) - 1, kHint, b, c * kBlockK,
                                                   tn * kBlockN + rank * kBRows);
          else
            cute::SM90_TMA_LOAD_2D::copy(&map_b, bar, kHint, b, c * kBlockK, tn * kBlockN);
          cute::SM90_TMA_LOAD_2D::copy(&map_sfa, bar, kHint, smem + L::kSfa + stage * L::kSfaBytes, tm * kBlockM, c);
          if (++stage == L::kStages) stage = 0, phase ^= 1;
        }
      }
    }
    return meet();  // the producer warp, reconverged
  }

  cutlass::arch::warpgroup_reg_alloc<kMathRegs>();
  const int group = __shfl_sync(kFull, int(threadIdx.x) / 128, 0);
  const int warp = (int(threadIdx.x) / 32) % 4, lane = int(threadIdx.x) % 32;
  const int row = warp * 16 + lane / 4;  // this thread's rows of a wave: row, row + 8
  const int group_rows = group * (kBlockM / 2);
  const uint32_t slab = smem_base + group * 2 * L::kSlabBytes;  // the group's two slab buffers
  const bool leader = threadIdx.x % 128 == 0;  // issues the group's TMA stores
  const uint32_t full_at = smem_base + L::kBarriers, empty_at = full_at + 8 * L::kStages;
  const uint64_t desc_a = sw128_desc(smem_base + L::kA + group_rows * kBlockK), desc_b = sw128_desc(smem_base + L::kB);
  int stage = 0, phase = 0, slabs_stored = 0;

  auto release = [&](int s) {  // the stage, in every CTA of the cluster
    if (lane == 0) {
      if constexpr (kCluster == 1) arrive_barrier(empty_at + 8 * s);
      else
        CUTLASS_PRAGMA_UNROLL
        for (int cta = 0; cta < kCluster; ++cta) arrive_barrier(empty_at + 8 * s, cta);
    }
  };

  for (int t = first; t < order.count(); t += step) {
    int tm, tn;
    order.at(t, tm, tn);
    tm = tm * kCluster + rank;
    float acc[L::kWaves][64];
    CUTLASS_PRAGMA_UNROLL
    for (int w = 0; w < L::kWaves; ++w)
      CUTLASS_PRAGMA_UNROLL
      for (int i = 0; i < 64; ++i) acc[w][i] = 0.0f;

    // The loop rotated as the CUTLASS kernel's (mainloop_sm90.cuh): a batch is one wave of one chunk
    // (4 wgmmas into `part`); between one batch's issue and the next only its wait and promotion lie,
    // and the two groups take turns to issue (named barriers kTurn0/1: group 0's batch b, group 1's
    // b, group 0's b + 1, ...), so the tensor cores run one group's batch while the other promotes.
    // Without the turns both groups issue on the same full barrier, their wgmmas interleave and
    // finish together, and both promote with the tensor cores idle.
    const int batches = p.chunks * L::kWaves;
    auto take_turn = [&](int b) {
      if (group == 0) cutlass::arch::NamedBarrier::sync(256, kTurn0);
      else {
        if (b == 0) cutlass::arch::NamedBarrier::arrive(256, kTurn0);  // group 0 goes first
        cutlass::arch::NamedBarrier::sync(256, kTurn1);
      }
    };
    auto pass_turn = [&](int b) {
      if (group == 0) cutlass::arch::NamedBarrier::arrive(256, kTurn1);
      else if (b + 1 < batches) cutlass::arch::NamedBarrier::arrive(256, kTurn0);
    };
    float part[64], s0 = 0.0f, s1 = 0.0f;  // the batch in flight and its rows' chunk scales
    // part[4j], part[4j+1]: row r; part[4j+2], part[4j+3]: row r + 8 (the wgmma accumulator layout)
    auto promote = [&](float(&into)[64]) {
      CUTLASS_PRAGMA_UNROLL
      for (int i = 0; i < 64; ++i) into[i] += part[i] * ((i & 2) ? s1 : s0);
    };
    int in_flight = -1;  // the stage of the batch in flight, released once its chunk's last wave is done
    for (int c = 0; c < p.chunks; ++c) {
      wait_barrier(full_at + 8 * stage, phase);
      const float* sfa = reinterpret_cast<const float*>(smem + L::kSfa + stage * L::kSfaBytes);
      CUTLASS_PRAGMA_UNROLL
      for (int w = 0; w < L::kWaves; ++w) {
        const int r = group_rows + w * 64 + row;
        const float next0 = sfa[r], next1 = sfa[r + 8];  // read before the stage can be released
        if (in_flight >= 0) {  // the previous batch: wave w - 1 of this chunk or the last of chunk c - 1
          cute::warpgroup_wait<0>();
          if (w == 0) release(in_flight);
          promote(acc[(w + L::kWaves - 1) % L::kWaves]);
        }
        uint64_t da = advance(desc_a, stage * L::kABytes + w * 64 * kBlockK), db = advance(desc_b, stage * L::kBBytes);
        asm volatile("" : "+l"(da), "+l"(db));  // computed before the turn: off the path from turn to issue
        take_turn(c * L::kWaves + w);
        fence(part);
        cute::warpgroup_arrive();  // orders the promotion's reads of `part` before these writes
        CUTLASS_PRAGMA_UNROLL
        for (int k = 0; k < kBlockK / kWgmmaK; ++k)
          wgmma_64x128x32(advance(da, k * kWgmmaK), advance(db, k * kWgmmaK), part, k > 0, std::make_index_sequence<64>{});
        cute::warpgroup_commit_batch();
        fence(part);
        pass_turn(c * L::kWaves + w);
        s0 = next0, s1 = next1, in_flight = stage;
      }
      if (++stage == L::kStages) stage = 0, phase ^= 1;
    }
    cute::warpgroup_wait<0>();
    release(in_flight);
    promote(acc[L::kWaves - 1]);

    // Epilogue, per slab of 64 rows x 64 bytes (columns outer, so that factor_b and bias are read
    // once for all waves), two slab buffers per group: write a slab (swizzled as the TMA box expects:
    // 16-byte chunk c of row r at c ^ (r / 2 % 4)), let the leader wait until the previous store has
    // read the other buffer, meet, then the leader stores this one. So one barrier per slab, and the
    // buffer written next is always free. Rows and columns past M and N are clipped by the TMA store.
    double fa[L::kWaves][2];  // factor_a of this thread's rows (row, row + 8) in each wave
    CUTLASS_PRAGMA_UNROLL
    for (int w = 0; w < L::kWaves; ++w)
      CUTLASS_PRAGMA_UNROLL
      for (int h = 0; h < 2; ++h) fa[w][h] = p.factor_a[min(tm * kBlockM + group_rows + w * 64 + row + 8 * h, p.m - 1)];
    CUTLASS_PRAGMA_UNROLL
    for (int s = 0; s < kBlockN / L::kSlabN; ++s) {
      constexpr int kPairs = L::kSlabN / 8;  // accumulator pairs i per slab: columns 8i + 2 (lane % 4) + {0, 1}
      double2 fb[kPairs];
      float2 bias[kPairs];
      CUTLASS_PRAGMA_UNROLL
      for (int j = 0; j < kPairs; ++j) {  // columns past N read column 0 (their outputs are clipped)
        const int n = tn * kBlockN + s * L::kSlabN + 8 * j + 2 * (lane % 4);
        const int at = n < p.n ? n : 0;
        fb[j] = *reinterpret_cast<const double2*>(p.factor_b + at);  // our scratch: 16-byte aligned
        bias[j] = p.bias ? float2{p.bias[at], p.bias[at + 1]} : float2{0.0f, 0.0f};  // a user tensor: 4-byte
      }
      CUTLASS_PRAGMA_UNROLL
      for (int w = 0; w < L::kWaves; ++w) {
        const uint32_t buffer = slab + (slabs_stored % 2) * L::kSlabBytes;
        CUTLASS_PRAGMA_UNROLL
        for (int j = 0; j < kPairs; ++j) {
          const int i = s * kPairs + j;
          const int byte = (8 * j + 2 * (lane % 4)) * int(sizeof(ElementD));  // within the slab row
          auto out = [&](float v, double f_a, double f_b, float add) {
            const double x = scaled_output(double(v), f_a, f_b, p.alpha);
            return p.bias ? __dadd_rn(x, double(add)) : x;
          };
          CUTLASS_PRAGMA_UNROLL
          for (int h = 0; h < 2; ++h) {  // rows row, row + 8
            const int r = row + 8 * h;
            const uint32_t addr = buffer + r * 64 + (((byte / 16) ^ (r / 2 % 4)) << 4) + byte % 16;
            store_pair<ElementD>(addr, out(acc[w][4 * i + 2 * h], fa[w][h], fb[j].x, bias[j].x),
                                 out(acc[w][4 * i + 2 * h + 1], fa[w][h], fb[j].y, bias[j].y));
          }
        }
        cute::tma_store_fence();  // the writes above, visible to the TMA unit
        if (leader) cute::tma_store_wait<0>();  // the previous store has read the other buffer
        cutlass::arch::NamedBarrier::sync(128, kSlab0 + group);
        if (leader) {
          cute::SM90_TMA_STORE_2D::copy(&map_d, smem + (buffer - smem_base), tn * kBlockN + s * L::kSlabN,
                                        tm * kBlockM + group_rows + w * 64);
          cute::tma_store_arrive();
        }
        ++slabs_stored;
      }
    }
  }
  if (leader) cute::tma_store_wait<0>();  // the slabs must outlive their last store
  meet();
#endif
}

// A 2D tensor map: `inner` x `outer` elements of `type`, rows `pitch` bytes apart, boxes of
// box_inner x box_outer, zero fill out of bounds.
inline CUtensorMap tensor_map(const void* data, CUtensorMapDataType type, uint64_t inner, uint64_t outer,
                              uint64_t pitch, uint32_t box_inner, uint32_t box_outer, CUtensorMapSwizzle swizzle,
                              const char* what) {
  CUtensorMap map;
  const cuuint64_t dims[2] = {inner, outer}, strides[1] = {pitch};
  const cuuint32_t box[2] = {box_inner, box_outer}, unit[2] = {1, 1};
  const CUresult r = CUTLASS_CUDA_DRIVER_WRAPPER_CALL(cuTensorMapEncodeTiled)(
      &map, type, 2, const_cast<void*>(data), dims, strides, box, unit, CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle,
      CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS)
    throw std::invalid_argument(std::string("fp4gemm sm90 FP8 GEMM: cannot describe ") + what + " for TMA (CUresult " +
                                std::to_string(int(r)) + ")");
  return map;
}

template <class ElementD> constexpr CUtensorMapDataType tma_type();
template <> constexpr CUtensorMapDataType tma_type<float>() { return CU_TENSOR_MAP_DATA_TYPE_FLOAT32; }
template <> constexpr CUtensorMapDataType tma_type<cutlass::bfloat16_t>() { return CU_TENSOR_MAP_DATA_TYPE_BFLOAT16; }
template <> constexpr CUtensorMapDataType tma_type<cutlass::half_t>() { return CU_TENSOR_MAP_DATA_TYPE_FLOAT16; }

template <int kBlockM, int kCluster, class ElementD>
void run(const Sm90Args& g, cudaStream_t stream) {
  using L = Layout<kBlockM, ElementD>;
  const int64_t M = g.a.rows, N = g.b.rows, K = g.a.k;
  // TMA: 16-byte aligned bases and row pitches (K % 16: E4M3 rows; N * sizeof(D) % 16: D rows).
  if (K <= 0 || K % 16 != 0 || (N * int64_t(sizeof(ElementD))) % 16 != 0)
    throw std::invalid_argument("fp4gemm sm90 FP8 GEMM: K must be a positive multiple of 16 and N of " +
                                std::to_string(16 / sizeof(ElementD)));
  if (reinterpret_cast<uintptr_t>(g.d) % 16 != 0)
    throw std::invalid_argument("fp4gemm sm90 FP8 GEMM: out (D) must be 16-byte aligned");
  const CUtensorMap map_a = tensor_map(g.a.data, CU_TENSOR_MAP_DATA_TYPE_UINT8, K, M, K, kBlockK, kBlockM,
                                       CU_TENSOR_MAP_SWIZZLE_128B, "A");
  const CUtensorMap map_b = tensor_map(g.b.data, CU_TENSOR_MAP_DATA_TYPE_UINT8, K, N, K, kBlockK, kBlockN / kCluster,
                                       CU_TENSOR_MAP_SWIZZLE_128B, "B");
  const int chunks = int((K + kBlockK - 1) / kBlockK);
  const CUtensorMap map_sfa = tensor_map(g.a.chunk_scale, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, g.a.chunk_stride, chunks,
                                         g.a.chunk_stride * 4, kBlockM, 1, CU_TENSOR_MAP_SWIZZLE_NONE, "A's chunk scales");
  const CUtensorMap map_d = tensor_map(g.d, tma_type<ElementD>(), N, M, N * sizeof(ElementD), L::kSlabN, 64,
                                       CU_TENSOR_MAP_SWIZZLE_64B, "D");
  auto kernel = fp8_gemm<kBlockM, kCluster, ElementD>;
  // Alone: a plain launch. In a cluster: the cluster's shape as a launch attribute.
  cudaLaunchAttribute cluster[1] = {};
  cluster[0].id = cudaLaunchAttributeClusterDimension;
  cluster[0].val.clusterDim.x = kCluster, cluster[0].val.clusterDim.y = cluster[0].val.clusterDim.z = 1;
  cudaLaunchConfig_t config = {};
  config.blockDim = dim3(kThreads);
  config.dynamicSmemBytes = L::kBytes;
  config.stream = stream;
  config.attrs = kCluster > 1 ? cluster : nullptr;
  config.numAttrs = kCluster > 1 ? 1 : 0;
  static int resident[64] = {};  // per device: clusters that fit at once (a cluster's CTAs share a GPC)
  const int clusters = once_per_device(resident, [&](int) {
    FP4_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, L::kBytes));
    if (kCluster == 1) return sm_count();
    config.gridDim = dim3(sm_count() / kCluster * kCluster);
    int n = 0;
    FP4_CUDA_CHECK(cudaOccupancyMaxActiveClusters(&n, kernel, &config));
    return n;
  });
  if (clusters < 1)
    throw std::runtime_error("fp4gemm sm90 FP8 GEMM: no cluster of " + std::to_string(kCluster) +
                             " CTAs of the hand-written kernel fits this GPU");
  const int64_t tiles_m = (M + kBlockM - 1) / kBlockM, clustered_m = (tiles_m + kCluster - 1) / kCluster;
  const int64_t items = clustered_m * ((N + kBlockN - 1) / kBlockN);
  config.gridDim = dim3(unsigned(std::min<int64_t>(items, clusters)) * kCluster);
  // The order's group: a multiple of the cluster, at most all tile rows (no overflow in TileOrder).
  const int64_t group = g.fp8_group_m > 0 ? g.fp8_group_m : kGroupM;
  const int group_m = int(std::clamp<int64_t>(group / kCluster, 1, std::max<int64_t>(clustered_m, 1))) * kCluster;
  const Params p{g.a.factor, g.b.factor, g.bias, g.alpha, int(M), int(N), chunks, group_m};
  FP4_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, map_a, map_b, map_sfa, map_d, p));
}

}  // namespace fp4gemm::cuda::fp8_kernel
