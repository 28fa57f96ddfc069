// One GPU GEMM call (SPEC.md 4-5), dispatched by the device's compute capability (gemm_path, api.cpp).
// Hopper: fold both operands into their GEMM-ready form, run the tensor-core GEMM, then recompute the
// outputs of the special rows (gemm_operand.cuh) exactly. Blackwell: gemm_native.cu.
// Stream-ordered throughout: no host synchronization, so it can be captured in a CUDA graph.
#include <algorithm>
#include <cstdlib>
#include <string>

#include "common.cuh"
#include "cuda_api.h"
#include "gemm_operand.cuh"

namespace fp4gemm::cuda {
namespace {

constexpr size_t kAlign = 256;
size_t aligned(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Scratch layout: folded A, folded B, factors, special-row lists, then CUTLASS's own workspace.
struct Plan {
  size_t a_data, b_data, a_factor, b_factor, a_special, b_special, cutlass, total;
};

GemmPath path_here(const GemmArgs& g) {
  const int cc = cuda_capability();
  return gemm_path(g, cc / 10, cc % 10);
}

Sm90Args sm90_args(const GemmArgs& g) {
  Sm90Args s;
  const bool bf16 = path_here(g) == GemmPath::Sm90BF16;
  s.a = GemmOperand{nullptr, nullptr, nullptr, g.a.rows, g.a.k, bf16};
  s.b = GemmOperand{nullptr, nullptr, nullptr, g.b.rows, g.b.k, bf16};
  s.alpha = g.alpha;
  s.bias = g.bias;
  s.d = g.d;
  s.out_dtype = g.out_dtype;
  // The large tile when it gives at least one tile per SM, else the small one (twice the tiles).
  // FP4GEMM_SM90_TILE=large|small and FP4GEMM_SM90_SWIZZLE=n override, for benchmarking.
  // Large grids also get a scheduler swizzle of 4 (L2 reuse): measured +13 % (FP8) and +3 % (BF16) at
  // 8192^3, none or slightly negative at 2048 x 8192 x 8192 (docs/benchmarks.md).
  const int64_t tile_n = bf16 ? 256 : 128;
  const int64_t tiles_m = (g.a.rows + 127) / 128, tiles_n = (g.b.rows + tile_n - 1) / tile_n;
  s.tile = tiles_m * tiles_n >= sm_count() ? Sm90Tile::Large : Sm90Tile::Small;
  s.swizzle = tiles_m >= 32 && tiles_n >= 32 ? 4 : 1;
  if (const char* t = std::getenv("FP4GEMM_SM90_TILE"))
    s.tile = std::string(t) == "small" ? Sm90Tile::Small : Sm90Tile::Large;
  if (const char* w = std::getenv("FP4GEMM_SM90_SWIZZLE")) s.swizzle = std::max(1, std::atoi(w));
  return s;
}

Plan plan(const GemmArgs& g, const Sm90Args& s) {
  Plan p{};
  size_t at = 0;
  auto take = [&](size_t bytes) { const size_t o = at; at += aligned(bytes); return o; };
  const size_t el = s.a.bf16 ? 2 : 1;
  p.a_data = take(el * size_t(g.a.rows) * size_t(g.a.k));
  p.b_data = take(el * size_t(g.b.rows) * size_t(g.b.k));
  p.a_factor = take(sizeof(double) * size_t(g.a.rows));
  p.b_factor = take(sizeof(double) * size_t(g.b.rows));
  p.a_special = take(sizeof(int32_t) * size_t(1 + g.a.rows));
  p.b_special = take(sizeof(int32_t) * size_t(1 + g.b.rows));
  p.cutlass = take(sm90_workspace_size(s));
  p.total = at;
  return p;
}

// Exact outputs of the special rows of A (all n) and of B (all m): float64 sums of the dequantized
// operands, the CPU reference's arithmetic. One warp per output; a deterministic shuffle reduction.
__global__ void special_rows_kernel(GemmArgs g, const int32_t* __restrict__ special_a,
                                    const int32_t* __restrict__ special_b) {
  const int64_t M = g.a.rows, N = g.b.rows, K = g.a.k;
  const int64_t from_a = int64_t(special_a[0]) * N, total = from_a + int64_t(special_b[0]) * M;
  if (total == 0) return;
  const double scale = g.alpha * num::operand_tensor_factor(g.a) * num::operand_tensor_factor(g.b);
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x >> 5);
  for (int64_t w = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5; w < total; w += warps) {
    const int64_t m = w < from_a ? special_a[1 + w / N] : (w - from_a) % M;
    const int64_t n = w < from_a ? w % N : special_b[1 + (w - from_a) / M];
    double acc = 0.0;
    for (int64_t k = lane; k < K; k += 32) acc += num::operand_value(g.a, m, k) * num::operand_value(g.b, n, k);
    for (int off = 16; off; off >>= 1) acc += __shfl_xor_sync(kFull, acc, off);
    if (lane == 0) store_rounded(g.d, m * N + n, g.out_dtype, scale * acc + (g.bias ? double(g.bias[n]) : 0.0));
  }
}

bool native(GemmPath p) { return p == GemmPath::Sm100FP4 || p == GemmPath::Sm120FP4; }

}  // namespace

size_t gemm_workspace_size(const GemmArgs& g) {
  const GemmPath p = path_here(g);
  return native(p) ? native_workspace_size(g, p) : plan(g, sm90_args(g)).total;
}

size_t sm90_workspace_size(const Sm90Args& s) {
  const bool small = s.tile == Sm90Tile::Small;
  if (s.a.bf16) return small ? sm90_bf16_small_workspace(s) : sm90_bf16_large_workspace(s);
  return small ? sm90_fp8_small_workspace(s) : sm90_fp8_large_workspace(s);
}

void sm90_gemm(const Sm90Args& s, cudaStream_t stream) {
  const bool small = s.tile == Sm90Tile::Small;
  if (s.a.bf16) small ? sm90_bf16_small(s, stream) : sm90_bf16_large(s, stream);
  else small ? sm90_fp8_small(s, stream) : sm90_fp8_large(s, stream);
}

Sm90Args fold_operands(const GemmArgs& g, void* workspace, cudaStream_t stream) {
  Sm90Args s = sm90_args(g);
  const Plan p = plan(g, s);
  char* ws = static_cast<char*>(workspace);
  s.a.data = ws + p.a_data;
  s.b.data = ws + p.b_data;
  s.a.factor = reinterpret_cast<double*>(ws + p.a_factor);
  s.b.factor = reinterpret_cast<double*>(ws + p.b_factor);
  s.a.special = reinterpret_cast<int32_t*>(ws + p.a_special);
  s.b.special = reinterpret_cast<int32_t*>(ws + p.b_special);
  s.workspace = ws + p.cutlass;
  s.workspace_size = p.total - p.cutlass;
  FP4_CUDA_CHECK(cudaMemsetAsync(s.a.special, 0, sizeof(int32_t), stream));
  FP4_CUDA_CHECK(cudaMemsetAsync(s.b.special, 0, sizeof(int32_t), stream));
  fold_operand(g.a, s.a, stream);
  fold_operand(g.b, s.b, stream);
  return s;
}

void gemm(const GemmArgs& g, cudaStream_t stream) {
  struct Owned {  // scratch allocated here when the caller gave none; freed stream-ordered
    void* ptr = nullptr;
    cudaStream_t stream;
    ~Owned() { if (ptr) cudaFreeAsync(ptr, stream); }
  } owned{nullptr, stream};
  void* ws = g.workspace;
  if (!ws) {
    FP4_CUDA_CHECK(cudaMallocAsync(&owned.ptr, gemm_workspace_size(g), stream));
    ws = owned.ptr;
  }
  if (const GemmPath p = path_here(g); native(p)) {
    native_gemm(g, p, ws, stream);
    return;
  }
  const Sm90Args s = fold_operands(g, ws, stream);
  sm90_gemm(s, stream);
  special_rows_kernel<<<unsigned(2 * sm_count()), 256, 0, stream>>>(g, s.a.special, s.b.special);
  FP4_CUDA_CHECK(cudaGetLastError());
}

}  // namespace fp4gemm::cuda
