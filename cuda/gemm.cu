// One GPU GEMM call (SPEC.md 4-5), dispatched by the device's compute capability (gemm_path, api.cpp).
// Hopper: fold both operands into their GEMM-ready form, run the tensor-core GEMM, then recompute the
// outputs of the special rows (gemm_operand.cuh) exactly. Blackwell: gemm_native.cu.
// Stream-ordered throughout: no host synchronization, so it can be captured in a CUDA graph.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common.cuh"
#include "cuda_api.h"
#include "gemm_operand.cuh"
#include "quantize_d.cuh"
#include "scratch.h"

namespace fp4gemm::cuda {
namespace {

// Scratch layout: folded A, folded B, factors, special-row lists, FP8 mainloop scales (A's chunk
// scales, B's ones), the fp32 D of a quantized output (d32), then CUTLASS's own workspace.
struct Plan {
  size_t a_data, b_data, a_factor, b_factor, a_special, b_special, a_chunk, b_ones, d32, cutlass, total;
};

GemmPath path_here(const GemmArgs& g) {
  const int cc = cuda_capability();
  return gemm_path(g, cc / 10, cc % 10);
}

// The same GEMM writing its fp32 D to d32 (the form D is quantized from).
GemmArgs fp32_d(const GemmArgs& g, float* d32) {
  GemmArgs f = g;
  f.d_quant = nullptr;
  f.d_out = nullptr;
  f.d = d32;
  f.out_dtype = DType::F32;
  return f;
}

// Scratch bytes of the fp32 D (a whole aligned piece).
size_t d32_bytes(const GemmArgs& g) {
  ScratchLayout l;
  l.take(sizeof(float) * size_t(g.a.rows) * size_t(g.b.rows));
  return l.end;
}

// Whether the Hopper epilogue quantizes D itself (epilogue_quantize.cuh): what its per-lane code
// covers within a 128-column subtile, with NVFP4's tensor amax known before the GEMM. Otherwise the
// GEMM writes the fp32 D to scratch and quantize() runs on it: the same bytes, one more pass.
bool fused_quantize_d(const QuantizeConfig& c) {
  return !c.block_2d && c.hadamard <= kQuantEpiN && (c.fmt == Format::MXFP4 || (c.fmt == Format::NVFP4 && c.amax_in));
}

Sm90Args sm90_args(const GemmArgs& g) {
  Sm90Args s;
  const bool bf16 = path_here(g) == GemmPath::Sm90BF16;
  s.a.rows = g.a.rows;
  s.b.rows = g.b.rows;
  s.a.k = s.b.k = g.a.k;
  s.a.bf16 = s.b.bf16 = bf16;
  s.a.chunk_stride = (g.a.rows + 3) / 4 * 4;
  s.alpha = g.alpha;
  s.bias = g.bias;
  s.d = g.d;
  s.out_dtype = g.out_dtype;
  s.quantize_d = g.d_quant && fused_quantize_d(*g.d_quant);
  if (g.d_quant) s.out_dtype = DType::F32;  // unless fused: the fp32 D to d32
  if (s.quantize_d) {
    s.d_cfg = *g.d_quant;
    s.d_out = *g.d_out;
  }
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
  if (const char* k = std::getenv("FP4GEMM_SM90_FP8")) select_fp8_kernel(s, k);
  return s;
}

Plan plan(const GemmArgs& g, const Sm90Args& s) {
  Plan p{};
  ScratchLayout l;
  const size_t el = s.a.bf16 ? 2 : 1;
  p.a_data = l.take(el * size_t(g.a.rows) * size_t(g.a.k));
  p.b_data = l.take(el * size_t(g.b.rows) * size_t(g.b.k));
  p.a_factor = l.take(sizeof(double) * size_t(g.a.rows));
  p.b_factor = l.take(sizeof(double) * size_t(g.b.rows));
  p.a_special = l.take(sizeof(int32_t) * size_t(1 + g.a.rows));
  p.b_special = l.take(sizeof(int32_t) * size_t(1 + g.b.rows));
  const size_t chunks = size_t((g.a.k + kChunkK - 1) / kChunkK);
  p.a_chunk = s.a.bf16 ? l.end : l.take(sizeof(float) * chunks * size_t(s.a.chunk_stride));
  const size_t b_tiles = size_t((g.b.rows + kOnesRows - 1) / kOnesRows);
  p.b_ones = s.a.bf16 ? l.end : l.take(sizeof(float) * chunks * b_tiles);
  p.d32 = g.d_quant ? l.take(sizeof(float) * size_t(g.a.rows) * size_t(g.b.rows)) : l.end;
  p.cutlass = l.take(sm90_workspace_size(s));
  p.total = l.end;
  return p;
}

// Exact outputs of the special rows (gemm_operand.cuh), float64 sums of exact products like the CPU
// reference, in three passes on the GEMM's stream:
//   1. each special row of A times every row of B, B's values taken from its fold;
//   2. every row of A times each special row of B, likewise from A's fold (times its chunk scales);
//   3. special A times special B from both quantized operands, overwriting what 1 and 2 wrote there
//      (a special row's fold is not exact, so those few outputs decode both operands).
// Passes 1-2 are the work when a gradient has many special rows: one warp reads a row of the folded
// operand (one or two bytes an element, decoded through a table) once for kSpecialGroup special rows.
constexpr int kSpecialGroup = 4;
constexpr int kUnitK = 16;  // elements per lane step: 8 code bytes of the special row

// An output plus its bias; nothing is added without one (a -0 stays -0, as in the epilogue).
__device__ __forceinline__ double plus_bias(const GemmArgs& g, int64_t n, double v) {
  return g.bias ? v + double(g.bias[n]) : v;
}

// Row o of a BF16 folded operand, elements [16u, 16u + 16), as floats (exact).
__device__ void bf16_unit(const GemmOperand& f, int64_t o, int64_t u, float v[kUnitK]) {
  const uint4* p = static_cast<const uint4*>(f.data) + (o * (f.k / kUnitK) + u) * 2;
  const uint4 w[2] = {p[0], p[1]};
  const uint32_t* words = reinterpret_cast<const uint32_t*>(w);
  FP4_UNROLL
  for (int j = 0; j < kUnitK / 2; ++j) {
    v[2 * j] = num::bits_f32(words[j] << 16);
    v[2 * j + 1] = num::bits_f32(words[j] & 0xFFFF0000u);
  }
}

// Sums of one unit (16 elements, one block scale) of a special row times a folded row, exact:
// float64 for a BF16 fold; for an E4M3 fold, in int32 on integers (2 x E2M1 and 2^9 x E4M3 are
// integers, |sum| < 16 * 12 * 448 * 2^9 < 2^26), which gives the same value as the float64 sum of
// the products (that sum is exact too: every partial sum is a multiple of 2^-10 below 2^26) at a
// fraction of the cost: no float64 conversion per product, which bounded the float64 version.
__device__ __forceinline__ int32_t e2m1_times2(uint32_t code) {
  const int32_t mag = int32_t(__byte_perm(0x03020100u, 0x0C080604u, code & 7u));  // {0,1,2,3,4,6,8,12}
  const int32_t neg = -int32_t((code >> 3) & 1u);
  return (mag ^ neg) - neg;
}

// Passes 1 (kSpecialIsA) and 2: outputs (special row s of q, row o of the folded `other`).
template <bool kSpecialIsA, bool kBf16>
__global__ void special_rows_kernel(GemmArgs g, QuantizedIn q, const int32_t* __restrict__ special,
                                    GemmOperand other) {
  __shared__ int32_t e4m3_x512[256];  // E4M3 value x 2^9, an integer (NaN codes: 0; folds hold none)
  for (int i = threadIdx.x; i < 256; i += blockDim.x) {
    const float v = num::e4m3_value(uint8_t(i));
    e4m3_x512[i] = v == v ? int32_t(v * 512.0f) : 0;
  }
  __syncthreads();
  const int64_t count = special[0];
  if (count == 0) return;
  const int64_t N = g.b.rows, units = q.k / kUnitK, groups = (count + kSpecialGroup - 1) / kSpecialGroup;
  const double scale = g.alpha * num::operand_tensor_factor(q);
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x >> 5);
  const auto* codes = static_cast<const uint2*>(static_cast<const void*>(q.data));
  for (int64_t w = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5; w < groups * other.rows; w += warps) {
    const int64_t grp = w / other.rows, o = w % other.rows;  // neighbouring warps share the special rows
    const int rows = int(std::min<int64_t>(kSpecialGroup, count - grp * kSpecialGroup));
    int64_t row[kSpecialGroup];
    double acc[kSpecialGroup];
    FP4_UNROLL
    for (int r = 0; r < kSpecialGroup; ++r) {
      row[r] = special[1 + grp * kSpecialGroup + std::min(r, rows - 1)];
      acc[r] = 0.0;
    }
    for (int64_t u = lane; u < units; u += 32) {
      if constexpr (kBf16) {
        float v[kUnitK];
        bf16_unit(other, o, u, v);
        FP4_UNROLL
        for (int r = 0; r < kSpecialGroup; ++r) {
          const uint2 c = codes[row[r] * units + u];
          double sum = 0.0;  // exact products; float64 sums as the reference
          FP4_UNROLL
          for (int j = 0; j < kUnitK; ++j) {
            const uint8_t code = uint8_t(((j < 8 ? c.x : c.y) >> (4 * (j % 8))) & 0xF);
            sum += double(num::e2m1_value(code)) * double(v[j]);
          }
          acc[r] += sum * num::block_scale_value(q.fmt, num::operand_scale(q, row[r], u * kUnitK));
        }
      } else {
        const uint4 f = static_cast<const uint4*>(other.data)[o * units + u];
        const uint32_t fw[4] = {f.x, f.y, f.z, f.w};
        int32_t v[kUnitK];
        FP4_UNROLL
        for (int j = 0; j < kUnitK; ++j) v[j] = e4m3_x512[(fw[j / 4] >> (8 * (j % 4))) & 0xFF];
        // A's fold counts from its chunk's base (pass 2): 2^(beta_c - beta_r), exact in the product
        const double chunk = other.chunk_scale ? other.chunk_scale[u / (kChunkK / kUnitK) * other.chunk_stride + o] : 1.0;
        FP4_UNROLL
        for (int r = 0; r < kSpecialGroup; ++r) {
          const uint2 c = codes[row[r] * units + u];
          int32_t sum = 0;  // 2^10 x the unit's sum, exactly
          FP4_UNROLL
          for (int j = 0; j < kUnitK; ++j) sum += e2m1_times2(((j < 8 ? c.x : c.y) >> (4 * (j % 8))) & 0xF) * v[j];
          acc[r] += double(sum) * 0x1p-10 * chunk * num::block_scale_value(q.fmt, num::operand_scale(q, row[r], u * kUnitK));
        }
      }
    }
    FP4_UNROLL
    for (int r = 0; r < kSpecialGroup; ++r)
      for (int off = 16; off; off >>= 1) acc[r] += __shfl_xor_sync(kFull, acc[r], off);
    double a = acc[0];  // lane r writes row r's output (no dynamic register indexing)
    int64_t mine = row[0];
    FP4_UNROLL
    for (int r = 1; r < kSpecialGroup; ++r) {
      a = lane == r ? acc[r] : a;
      mine = lane == r ? row[r] : mine;
    }
    if (lane < rows) {
      const int64_t m = kSpecialIsA ? mine : o, n = kSpecialIsA ? o : mine;
      store_rounded(g.d, m * N + n, g.out_dtype, plus_bias(g, n, scale * other.factor[o] * a));
    }
  }
}

// Pass 3: special A x special B, both decoded from the quantized operands. One warp per output.
__global__ void special_pairs_kernel(GemmArgs g, const int32_t* __restrict__ special_a,
                                     const int32_t* __restrict__ special_b) {
  const int64_t ca = special_a[0], cb = special_b[0], N = g.b.rows, K = g.a.k;
  const double scale = g.alpha * num::operand_tensor_factor(g.a) * num::operand_tensor_factor(g.b);
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x >> 5);
  for (int64_t w = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5; w < ca * cb; w += warps) {
    const int64_t m = special_a[1 + w / cb], n = special_b[1 + w % cb];
    double acc = 0.0;
    for (int64_t k = lane; k < K; k += 32) acc += num::operand_value(g.a, m, k) * num::operand_value(g.b, n, k);
    for (int off = 16; off; off >>= 1) acc += __shfl_xor_sync(kFull, acc, off);
    if (lane == 0) store_rounded(g.d, m * N + n, g.out_dtype, plus_bias(g, n, scale * acc));
  }
}

void fix_special_rows(const GemmArgs& g, const Sm90Args& s, cudaStream_t stream) {
  const unsigned ctas = unsigned(2 * sm_count()), threads = 256;
  if (s.a.bf16) {
    special_rows_kernel<true, true><<<ctas, threads, 0, stream>>>(g, g.a, s.a.special, s.b);
    special_rows_kernel<false, true><<<ctas, threads, 0, stream>>>(g, g.b, s.b.special, s.a);
  } else {
    special_rows_kernel<true, false><<<ctas, threads, 0, stream>>>(g, g.a, s.a.special, s.b);
    special_rows_kernel<false, false><<<ctas, threads, 0, stream>>>(g, g.b, s.b.special, s.a);
  }
  special_pairs_kernel<<<ctas, threads, 0, stream>>>(g, s.a.special, s.b.special);
  FP4_CUDA_CHECK(cudaGetLastError());
}

// After the fixup of a GEMM whose epilogue quantized D: quantize again, from the fixup's fp32 values
// in d32, the rows the epilogue could not finish: every row when B has special rows (the epilogue
// then wrote d32 instead), else A's special rows. One warp per (row, 512 columns), 16 values a lane.
template <Format F, Rounding Rd>
__global__ void requantize_rows_kernel(const float* __restrict__ d32, QuantizeDArgs q, const int32_t* __restrict__ a_special) {
  const bool all = q.b_special[0] > 0;
  const int64_t rows = all ? q.M : a_special[0];
  if (rows == 0) return;
  constexpr int N = kQuantLane, kSegs = 32;
  const Codec codec = kernel_codec<F, Rd>(q.dir);
  const int lane = threadIdx.x & 31;
  const int64_t segs = (q.N + kSegs * N - 1) / (kSegs * N), warps = int64_t(gridDim.x) * (blockDim.x >> 5);
  float unused = 0.0f;
  for (int64_t w = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5; w < rows * segs; w += warps) {
    const int64_t m = all ? w / segs : a_special[1 + w / segs], n = (w % segs) * (kSegs * N) + N * lane;
    const bool live = n < q.N;
    float v[N];
    FP4_UNROLL
    for (int k = 0; k < N; k += 4) {
      const float4 f = live ? *reinterpret_cast<const float4*>(d32 + m * q.N + n + k) : make_float4(0.f, 0.f, 0.f, 0.f);
      v[k] = f.x; v[k + 1] = f.y; v[k + 2] = f.z; v[k + 3] = f.w;
    }
    rowwise_lane<Pass::Quant, kSegs>(v, live, m, n, lane, q.dir, codec, nullptr, 0.0f, unused);
  }
}

void requantize_rows(const Sm90Args& s, cudaStream_t stream) {
  const QuantizeDArgs q = quantize_d_args(s);
  const unsigned ctas = unsigned(2 * sm_count()), threads = 256;
  with_codec<Format::MXFP4, Format::NVFP4>(s.d_cfg.fmt, s.d_cfg.rounding == Rounding::SR, [&](auto k) {
    using K = decltype(k);
    requantize_rows_kernel<K::fmt, K::rounding><<<ctas, threads, 0, stream>>>(s.d32, q, s.a.special);
  });
  FP4_CUDA_CHECK(cudaGetLastError());
}

// D quantized: NVFP4's given amax goes to the output first (the kernels read it there, as quantize()).
void seed_amax(const QuantizeConfig& c, const QuantizedOut& o, cudaStream_t stream) {
  if (c.fmt == Format::NVFP4 && c.amax_in)
    FP4_CUDA_CHECK(cudaMemcpyAsync(o.amax, c.amax_in, sizeof(float), cudaMemcpyDeviceToDevice, stream));
}

}  // namespace

void select_fp8_kernel(Sm90Args& s, const char* spec) {
  const int m = std::atoi(spec);
  s.fp8_block_m = m == 128 || m == 256 ? m : 0;
  const char* x = std::strchr(spec, 'x');
  s.fp8_cluster = x && std::atoi(x + 1) == 2 ? 2 : 1;
}

size_t gemm_workspace_size(const GemmArgs& g) {
  const GemmPath p = path_here(g);
  if (!is_native(p)) return plan(g, sm90_args(g)).total;
  if (!g.d_quant) return native_workspace_size(g, p);
  return d32_bytes(g) + native_workspace_size(fp32_d(g, nullptr), p);  // Blackwell, D quantized: the fp32 D first
}

size_t sm90_workspace_size(const Sm90Args& s) {
  const bool small = s.tile == Sm90Tile::Small;
  if (s.a.bf16) return small ? sm90_bf16_small_workspace(s) : sm90_bf16_large_workspace(s);
  return small ? sm90_fp8_small_workspace(s) : sm90_fp8_large_workspace(s);
}

void sm90_gemm(const Sm90Args& s, cudaStream_t stream) {
  const bool small = s.tile == Sm90Tile::Small;
  if (s.a.bf16) small ? sm90_bf16_small(s, stream) : sm90_bf16_large(s, stream);
  else if (!small && !s.quantize_d && s.fp8_block_m) sm90_fp8_direct(s, stream);
  else small ? sm90_fp8_small(s, stream) : sm90_fp8_large(s, stream);
}

uint8_t* gemm_operand_a(const GemmArgs& g, void* workspace) {
  if (is_native(path_here(g)) || g.a.k % kChunkK) return nullptr;
  const Sm90Args s = sm90_args(g);
  return s.a.bf16 ? nullptr : static_cast<uint8_t*>(workspace) + plan(g, s).a_data;
}

Sm90Args fold_operands(const GemmArgs& g, void* workspace, cudaStream_t stream, const OperandAOut* a_written) {
  Sm90Args s = sm90_args(g);
  const Plan p = plan(g, s);
  char* ws = static_cast<char*>(workspace);
  s.a.data = ws + p.a_data;
  s.b.data = ws + p.b_data;
  s.a.factor = reinterpret_cast<double*>(ws + p.a_factor);
  s.b.factor = reinterpret_cast<double*>(ws + p.b_factor);
  s.a.special = reinterpret_cast<int32_t*>(ws + p.a_special);
  s.b.special = reinterpret_cast<int32_t*>(ws + p.b_special);
  if (!s.a.bf16) {
    s.a.chunk_scale = reinterpret_cast<float*>(ws + p.a_chunk);
    s.b.ones = reinterpret_cast<float*>(ws + p.b_ones);
  }
  if (g.d_quant) s.d32 = reinterpret_cast<float*>(ws + p.d32);
  if (g.d_quant && !s.quantize_d) s.d = s.d32;
  s.workspace = ws + p.cutlass;
  s.workspace_size = p.total - p.cutlass;
  FP4_CUDA_CHECK(cudaMemsetAsync(s.a.special, 0, sizeof(int32_t), stream));
  FP4_CUDA_CHECK(cudaMemsetAsync(s.b.special, 0, sizeof(int32_t), stream));
  if (a_written) finish_operand_a(a_written->chunk_info, g.a.global_scale, s.a, stream);
  else fold_operand(g.a, s.a, stream);
  fold_operand(g.b, s.b, stream);
  return s;
}

void gemm(const GemmArgs& g, cudaStream_t stream, const OperandAOut* a_written) {
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
  if (const GemmPath p = path_here(g); is_native(p)) {
    if (!g.d_quant) return native_gemm(g, p, ws, stream);
    float* d32 = static_cast<float*>(ws);  // the fp32 D, then quantize()
    native_gemm(fp32_d(g, d32), p, static_cast<char*>(ws) + d32_bytes(g), stream);
    return quantize(d32, DType::F32, g.a.rows, g.b.rows, g.b.rows, g.d_quant, g.d_out, nullptr, nullptr, stream);
  }
  const Sm90Args s = fold_operands(g, ws, stream, a_written);
  if (!g.d_quant) {
    sm90_gemm(s, stream);
    return fix_special_rows(g, s, stream);
  }
  // D quantized: in the epilogue (then the rows it could not finish again after the fixup), or in
  // two passes, the fp32 D (fixup included) and quantize(). The fixup writes fp32 rows to d32.
  if (s.quantize_d) seed_amax(s.d_cfg, s.d_out, stream);
  sm90_gemm(s, stream);
  fix_special_rows(fp32_d(g, s.d32), s, stream);
  if (s.quantize_d) return requantize_rows(s, stream);
  quantize(s.d32, DType::F32, g.a.rows, g.b.rows, g.b.rows, g.d_quant, g.d_out, nullptr, nullptr, stream);
}

}  // namespace fp4gemm::cuda
