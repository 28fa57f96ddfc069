// One Blackwell GEMM call (SPEC.md 5): a preparation kernel per operand, then the CUTLASS block-scaled
// GEMM of gemm_sm100.cu / gemm_sm120.cu. Compiled for every architecture (it holds no tensor-core
// code); stream-ordered, no host synchronization.
//
// The preparation writes, per operand row, the epilogue factor (tensor factor: NVFP4 amax term and
// global_scale, times the row scale for fp4_row; NaN for a row with a NaN block scale, so that the
// row's outputs are NaN as in the float64 reference whatever the hardware does with a NaN scale), and,
// unless the operand's scales already are blocked, its scales in the 128x4 blocked layout (fp4_row:
// E8M0 1.0 per 32 codes, so it runs on the MXFP4 kernel with the row scale in the epilogue).
#include <algorithm>
#include <string>

#include "common.cuh"
#include "cuda_api.h"
#include "gemm_native.h"
#include "scratch.h"

namespace fp4gemm::cuda {
namespace {

constexpr int kWarpsPerCta = 8;
constexpr uint8_t kE8M0One = 127;  // 2^0: the unit block scale of fp4_row rows

// Scale columns of an operand in the kernel's format (fp4_row: MXFP4 blocks of 32).
__host__ __device__ int64_t scale_cols(const QuantizedIn& q) { return q.k / (q.fmt == Format::NVFP4 ? num::kNvBlock : num::kMxBlock); }
bool needs_repack(const QuantizedIn& q) { return q.fmt == Format::FP4Row || !q.scale_blocked; }

struct Plan {
  size_t factor_a, factor_b, sfa, sfb, cutlass, total;
};

NativeArgs native_args(const GemmArgs& g) {
  NativeArgs n;
  n.scale = g.a.fmt == Format::NVFP4 ? NativeScale::NV : NativeScale::MX;
  n.a = g.a.data;
  n.b = g.b.data;
  n.m = g.a.rows;
  n.n = g.b.rows;
  n.k = g.a.k;
  n.alpha = g.alpha;
  n.bias = g.bias;
  n.d = g.d;
  n.out_dtype = g.out_dtype;
  return n;
}

size_t cutlass_workspace(const NativeArgs& n, GemmPath path) {
  return path == GemmPath::Sm100FP4 ? sm100_workspace_size(n) : sm120_workspace_size(n);
}

Plan plan(const GemmArgs& g, const NativeArgs& n, GemmPath path) {
  Plan p{};
  ScratchLayout l;
  p.factor_a = l.take(sizeof(double) * size_t(g.a.rows));
  p.factor_b = l.take(sizeof(double) * size_t(g.b.rows));
  p.sfa = needs_repack(g.a) ? l.take(size_t(blocked_size(g.a.rows, scale_cols(g.a)))) : 0;
  p.sfb = needs_repack(g.b) ? l.take(size_t(blocked_size(g.b.rows, scale_cols(g.b)))) : 0;
  p.cutlass = l.take(cutlass_workspace(n, path));
  p.total = l.end;
  return p;
}

// One warp per row: factor[row], and the row's scales into `blocked` (null: q.scale is used as is).
__global__ void prepare_kernel(QuantizedIn q, double* __restrict__ factor, uint8_t* __restrict__ blocked) {
  const int lane = threadIdx.x & 31;
  const int64_t cols = scale_cols(q);
  const int64_t block = q.k / cols;
  const double tensor = num::operand_tensor_factor(q);
  for (int64_t row = blockIdx.x * int64_t(kWarpsPerCta) + (threadIdx.x >> 5); row < q.rows;
       row += int64_t(gridDim.x) * kWarpsPerCta) {
    bool nan = false;
    for (int64_t c = lane; c < cols; c += 32) {
      uint8_t s = kE8M0One;
      if (q.fmt != Format::FP4Row) {
        s = uint8_t(num::operand_scale(q, row, c * block));
        const double v = num::block_scale_value(q.fmt, s);
        nan |= v != v;
      }
      if (blocked) blocked[num::blocked_offset(row, c, cols)] = s;
    }
    nan = __any_sync(kFull, nan);
    if (lane == 0) {
      const double row_scale = q.fmt == Format::FP4Row ? double(static_cast<const float*>(q.scale)[row]) : 1.0;
      factor[row] = nan ? double(num::bits_f32(0x7FC00000u)) : tensor * row_scale;
    }
  }
}

void prepare(const QuantizedIn& q, double* factor, uint8_t* blocked, cudaStream_t stream) {
  // Padding of the blocked layout is multiplied by the zero codes TMA reads past M / K: it must be
  // finite, so zero it (E8M0 0 = 2^-127, E4M3 0 = 0).
  if (blocked) FP4_CUDA_CHECK(cudaMemsetAsync(blocked, 0, size_t(blocked_size(q.rows, scale_cols(q))), stream));
  const int64_t ctas = std::min<int64_t>((q.rows + kWarpsPerCta - 1) / kWarpsPerCta, 1 << 16);
  prepare_kernel<<<unsigned(ctas), 32 * kWarpsPerCta, 0, stream>>>(q, factor, blocked);
  FP4_CUDA_CHECK(cudaGetLastError());
}

void require_built(GemmPath path) {
  if (!built_with_path(path))
    throw std::runtime_error(std::string("fp4gemm: this build has no ") +
                             (path == GemmPath::Sm100FP4 ? "sm_100a" : "sm_120a") +
                             " GEMM kernels (they need nvcc >= 12.8 and FP4GEMM_CUDA=ON)");
}

}  // namespace

size_t native_workspace_size(const GemmArgs& g, GemmPath path) {
  require_built(path);
  const NativeArgs n = native_args(g);
  return plan(g, n, path).total;
}

std::string native_can_implement(const GemmArgs& g, GemmPath path) {
  require_built(path);
  NativeArgs n = native_args(g);
  // Stand-ins for the pointers the preparation would provide: can_implement reads shapes and strides.
  n.sfa = n.sfb = n.a;
  n.factor_a = n.factor_b = nullptr;
  return path == GemmPath::Sm100FP4 ? sm100_can_implement(n) : sm120_can_implement(n);
}

std::vector<int64_t> native_scale_offsets(GemmPath path, Format fmt, int64_t rows, int64_t k, bool operand_b) {
  require_built(path);
  const NativeScale s = fmt == Format::NVFP4 ? NativeScale::NV : NativeScale::MX;
  return path == GemmPath::Sm100FP4 ? sm100_scale_offsets(s, rows, k, operand_b)
                                    : sm120_scale_offsets(s, rows, k, operand_b);
}

void native_gemm(const GemmArgs& g, GemmPath path, void* workspace, cudaStream_t stream) {
  require_built(path);
  NativeArgs n = native_args(g);
  const Plan p = plan(g, n, path);
  char* ws = static_cast<char*>(workspace);
  auto* factor_a = reinterpret_cast<double*>(ws + p.factor_a);
  auto* factor_b = reinterpret_cast<double*>(ws + p.factor_b);
  uint8_t* sfa = needs_repack(g.a) ? reinterpret_cast<uint8_t*>(ws + p.sfa) : nullptr;
  uint8_t* sfb = needs_repack(g.b) ? reinterpret_cast<uint8_t*>(ws + p.sfb) : nullptr;
  prepare(g.a, factor_a, sfa, stream);
  prepare(g.b, factor_b, sfb, stream);
  n.sfa = sfa ? sfa : static_cast<const uint8_t*>(g.a.scale);
  n.sfb = sfb ? sfb : static_cast<const uint8_t*>(g.b.scale);
  n.factor_a = factor_a;
  n.factor_b = factor_b;
  n.workspace = ws + p.cutlass;
  n.workspace_size = p.total - p.cutlass;
  if (path == GemmPath::Sm100FP4) sm100_gemm(n, stream);
  else sm120_gemm(n, stream);
}

}  // namespace fp4gemm::cuda

// Builds without a Blackwell architecture get entry points that are never reached (require_built).
#ifndef FP4GEMM_WITH_SM100
namespace fp4gemm::cuda {
void sm100_gemm(const NativeArgs&, cudaStream_t) {}
size_t sm100_workspace_size(const NativeArgs&) { return 0; }
std::string sm100_can_implement(const NativeArgs&) { return {}; }
std::vector<int64_t> sm100_scale_offsets(NativeScale, int64_t, int64_t, bool) { return {}; }
}  // namespace fp4gemm::cuda
#endif
#ifndef FP4GEMM_WITH_SM120
namespace fp4gemm::cuda {
void sm120_gemm(const NativeArgs&, cudaStream_t) {}
size_t sm120_workspace_size(const NativeArgs&) { return 0; }
std::string sm120_can_implement(const NativeArgs&) { return {}; }
std::vector<int64_t> sm120_scale_offsets(NativeScale, int64_t, int64_t, bool) { return {}; }
}  // namespace fp4gemm::cuda
#endif
