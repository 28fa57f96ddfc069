// Fused quantization kernel: one read of a TR x TC input tile feeds the rowwise and the columnwise
// outputs (RHT, scale rule, RTN/SR, QuEST mask), bit-identical to src/quantize_cpu.cpp.
// Design and measurements: docs/kernels.md.
#include <algorithm>

#include "cuda_api.h"
#include "quantize_lane.cuh"

namespace fp4gemm::cuda {
namespace {

constexpr int kThreads = 256, kWarps = kThreads / 32;
constexpr int kTileElems = 8192;  // TR * TC: 32 KB of fp32 in shared memory

// The [TR][TC] fp32 tile in shared memory. The column pass gives a thread a 32-row span of one
// column and puts the TR / 32 spans of a column in one warp, kColsPerWarp lanes apart (their RHT
// stages h >= 32 are shuffles); the XOR swizzle puts those spans on distinct banks, and being a
// multiple of 4 it keeps 16-byte vectors whole.
constexpr int kColSpan = 32;

template <int TR, int TC>
__device__ __forceinline__ int tile_at(int r, int c) {
  constexpr int kSpans = TR / kColSpan, kColsPerWarp = 32 / kSpans;
  return r * TC + (c ^ (((r / kColSpan) & (kSpans - 1)) * kColsPerWarp));
}

// Rowwise from the shared tile: TC/16 lanes cover a tile row, 16 values each (as the rowwise-only
// kernel: per-row work shared by twice the values of 8).
constexpr int kTileLane = 16;
template <int TR, int TC, Pass P>
__device__ __forceinline__ void rowwise_pass(const float* tile, int rows, int cols, int64_t r0, int64_t c0,
                                             const DirArgs& d, const Codec& codec, const float* amax2d,
                                             float& warp_amax) {
  constexpr int N = kTileLane, kSegs = TC / N, kRowsPerWarp = 32 / kSegs;
  const int lane = threadIdx.x & 31, seg = lane % kSegs;
  for (int rg = threadIdx.x >> 5; rg < TR / kRowsPerWarp; rg += kWarps) {
    const int r = rg * kRowsPerWarp + lane / kSegs;
    const bool live = r < rows && N * seg < cols;  // whole blocks: C is a multiple of 16
    float v[N];
    FP4_UNROLL
    for (int q = 0; q < N / 4; ++q) {
      const float4 f = *reinterpret_cast<const float4*>(tile + tile_at<TR, TC>(r, N * seg + 4 * q));
      v[4 * q] = f.x; v[4 * q + 1] = f.y; v[4 * q + 2] = f.z; v[4 * q + 3] = f.w;
    }
    const float a2d = d.block_2d ? amax2d[(r >> 4) * (TC / 16) + seg] : 0.0f;  // N = 16: one 2D tile per lane
    rowwise_lane<P, kSegs>(v, live, r0 + r, c0 + N * seg, seg, d, codec, nullptr, a2d, warp_amax);
  }
}

// A lane's N consecutive inputs of one row: 16-byte loads when aligned, element-wise otherwise;
// zeros for a lane past the last column.
template <class In, int N>
__device__ __forceinline__ void load_lane(typename In::T (&buf)[N], const typename In::T* src, bool live, bool vec_ok) {
  using T = typename In::T;
  constexpr int kVec = 16 / int(sizeof(T));
  if (live && vec_ok) {
    FP4_UNROLL
    for (int k = 0; k < N; k += kVec) *reinterpret_cast<uint4*>(buf + k) = __ldg(reinterpret_cast<const uint4*>(src + k));
  } else {
    FP4_UNROLL
    for (int k = 0; k < N; ++k) buf[k] = live ? src[k] : T(0);
  }
}

// The rowwise-only kernel: 16 values per lane (a warp covers 512 columns), so the per-row work
// (addresses, scale rule, stores) is shared by twice the values of the tile kernel's 8, and RHT g = 64
// needs two cross-lane stages, not three. 4 CTAs (32 warps) per SM: at most 64 registers.
constexpr int kRowLane = 16, kRowsCtasPerSm = 4;

// Rowwise only, no tile: blockIdx.x picks a 512-column segment, each warp strides over rows (no
// index division); a lane's 16 consecutive values come straight from 16-byte loads when aligned.
// No shared memory, no barrier. The next row's load is issued before the current row's arithmetic,
// so every lane keeps a load in flight while it computes.
template <class In, Pass P, Format F, Rounding Rd>
__global__ void __launch_bounds__(kThreads, kRowsCtasPerSm)
    quantize_rows(const typename In::T* __restrict__ x, int64_t R, int64_t C, int64_t ld, DirArgs row) {
  using T = typename In::T;
  constexpr int N = kRowLane, kSegs = 32;
  const int lane = threadIdx.x & 31;
  const int64_t col = int64_t(blockIdx.x) * (32 * N) + N * lane;
  const bool live_col = col < C;  // C is a multiple of 16: a lane's 16 values are all in or all out
  const bool vec_ok = (ld % 8) == 0 && (reinterpret_cast<uintptr_t>(x) % 16) == 0;
  const Codec codec = kernel_codec<F, Rd>(row);
  const int64_t stride = int64_t(gridDim.y) * kWarps;
  float warp_amax = 0.0f;
  int64_t r = int64_t(blockIdx.y) * kWarps + (threadIdx.x >> 5);
  // 16-bit inputs take the RHT sign flips on the raw pairs, once per two values: XOR masks with
  // bit 15 (even element) and bit 31 (odd), fixed per lane, kept in shared memory (in registers
  // they would spill). A sign flip commutes with the conversion.
  constexpr bool kPairFlips = sizeof(T) == 2;
  __shared__ __align__(16) uint32_t flips[32][N / 2];
  if (kPairFlips && threadIdx.x < 32) {
    const uint32_t w = row.g ? lane_sign_bits<N>(row.g, row.signs, lane) : 0u;
    FP4_UNROLL
    for (int j = 0; j < N / 2; ++j) flips[lane][j] = ((w >> (2 * j)) & 1u) << 15 | ((w >> (2 * j + 1)) & 1u) << 31;
  }
  alignas(16) T buf[N];
  if (r < R) load_lane<In>(buf, x + r * ld + col, live_col, vec_ok);  // in flight during the tables
  constexpr bool kNvTable = F == Format::NVFP4 && P == Pass::Quant;
  __shared__ float nv_mult[kNvTable ? kNvScales : 1];
  if (kNvTable) fill_nv_multipliers(nv_mult, codec);
  if (kPairFlips || kNvTable) __syncthreads();
  for (; r < R; r += stride) {
    // Prefetch; the last row re-reads itself (a valid address, value unused) instead of branching.
    const int64_t next = r + stride < R ? r + stride : r;
    alignas(16) T ahead[N];
    load_lane<In>(ahead, x + next * ld + col, live_col, vec_ok);
    if (kPairFlips && row.g) {
      FP4_UNROLL
      for (int q = 0; q < N / 8; ++q) {
        const uint4 m = *reinterpret_cast<const uint4*>(&flips[lane][4 * q]);
        uint4& b = reinterpret_cast<uint4*>(buf)[q];
        b.x ^= m.x; b.y ^= m.y; b.z ^= m.z; b.w ^= m.w;
      }
    }
    float v[N];
    FP4_UNROLL
    for (int k = 0; k < N; ++k) v[k] = to_f32<In>(buf[k]);
    rowwise_lane<P, kSegs, kPairFlips>(v, live_col, r, col, lane, row, codec, kNvTable ? nv_mult : nullptr, 0.0f,
                                       warp_amax);
    FP4_UNROLL
    for (int k = 0; k < N; ++k) buf[k] = ahead[k];
  }
  if (P == Pass::Amax && F == Format::NVFP4) {
    // One atomic per CTA: warp reduce, then across the 8 warps through shared memory.
    __shared__ float part[kWarps];
    warp_amax = lanes_amax(warp_amax, 32);
    if (lane == 0) part[threadIdx.x >> 5] = warp_amax;
    __syncthreads();
    if (threadIdx.x < 32) {
      float a = lane < kWarps ? part[lane] : 0.0f;
      a = lanes_amax(a, 32);
      if (lane == 0) atomic_amax(row.amax, a);
    }
  }
}

// Columnwise: a thread owns a 32-row span of one column (tile_at); B is the block (32 MXFP4, 16
// otherwise), the span's blocks are encoded one after the other.
template <int TR, int TC, Pass P, int B>
__device__ __forceinline__ void columnwise_pass(const float* tile, int rows, int cols, int64_t r0, int64_t c0,
                                                const DirArgs& d, const Codec& codec, const float* amax2d,
                                                float& thread_amax) {
  constexpr int kSpans = TR / kColSpan, kColsPerWarp = 32 / kSpans;
  static_assert(kWarps * kColsPerWarp == TC, "one column per thread and pass");
  const bool row_fmt = codec.fmt == Format::FP4Row;
  const int lane = threadIdx.x & 31, span = lane / kColsPerWarp;
  const int c = (threadIdx.x >> 5) * kColsPerWarp + lane % kColsPerWarp, rb = span * kColSpan;
  float v[kColSpan];
  FP4_UNROLL
  for (int i = 0; i < kColSpan; ++i) v[i] = tile[tile_at<TR, TC>(rb + i, c)];  // zeros past the tile's rows / columns
  if (d.g) {  // every lane takes part (shuffles); R is a multiple of g, so partner spans are real rows
    thread_hadamard<kColSpan>(v, d.g, d.signs, rb);  // signs, stages h < 32, 1/sqrt(g) when g <= 32
    shuffle_butterflies(v, d.g, span, kColsPerWarp);  // stages h >= 32
    if (d.g > kColSpan) {
      const float scale = num::inv_sqrt_pow2(d.g);
      FP4_UNROLL
      for (int i = 0; i < kColSpan; ++i) v[i] = v[i] * scale;
    }
  }
  if (c >= cols || rb >= rows) return;
  const int64_t line = c0 + c, pos = line * d.K + r0 + rb;
  if (P == Pass::Amax) {  // integer amax: the tensor / line amax keeps numerics.h's NaN bits (zero rows add nothing)
    float a = 0.0f;
    FP4_UNROLL
    for (int i = 0; i < kColSpan; ++i) a = num::amax_update(a, v[i]);
    if (row_fmt) atomic_amax(d.amax + line, a);
    else thread_amax = num::amax_update(thread_amax, a);
    return;
  }
  const uint32_t line_s = row_fmt ? codec.scale_from_amax(d.amax[line]) : 0u;
  FP4_UNROLL
  for (int k = 0; k < kColSpan / B; ++k) {
    if (rb + k * B >= rows) break;  // whole blocks: R is a multiple of B
    float u[B];
    FP4_UNROLL
    for (int i = 0; i < B; ++i) u[i] = v[k * B + i];
    uint32_t s;
    if (row_fmt) s = line_s;
    else if (d.block_2d) s = codec.scale_from_amax(amax2d[((rb + k * B) >> 4) * (TC / 16) + (c >> 4)]);
    else if (codec.rule == ScaleRule::Quest) s = num::quest_scale_byte(u, lane_amax(u));
    else s = codec.scale_from_amax(lane_amax(u));
    uint32_t words[B / 8], clipped = 0;
    const int64_t p = pos + k * B;
    encode_block(u, d, codec, s, nullptr, num::Stream::Columnwise, p, words, clipped);
    if constexpr (B == 32) {
      *reinterpret_cast<uint4*>(d.data + p / 2) = make_uint4(words[0], words[1], words[2], words[3]);
      if (d.mask) *reinterpret_cast<uint32_t*>(d.mask + p / 8) = clipped;
    } else {
      *reinterpret_cast<uint2*>(d.data + p / 2) = make_uint2(words[0], words[1]);
    }
    if (row_fmt) {
      if (r0 + rb + k * B == 0) static_cast<float*>(d.scale)[line] = num::bits_f32(s);
    } else {
      d.store_scale(line, (r0 + rb + k * B) / B, uint8_t(s), B);
    }
  }
}

template <class In, int TR, int TC, Pass P, Format F, Rounding Rd>
__global__ void __launch_bounds__(kThreads, 3) quantize_tile(const typename In::T* __restrict__ x, int64_t R, int64_t C,
                                                          int64_t ld, DirArgs row, DirArgs col) {
  using T = typename In::T;
  static_assert(TR * TC == kTileElems, "tile size");
  extern __shared__ __align__(16) float tile[];              // [TR][TC] fp32, then [TR/16][TC/16] amaxes
  float* amax2d = tile + TR * TC;

  const int64_t r0 = int64_t(blockIdx.x) * TR, c0 = int64_t(blockIdx.y) * TC;
  const int rows = int(R - r0 < TR ? R - r0 : TR), cols = int(C - c0 < TC ? C - c0 : TC);

  // Load: 16-byte vectors (aligned full rows), element-wise otherwise; zero fill; convert to fp32.
  constexpr int kVec = 16 / int(sizeof(T)), kLoads = kTileElems / kVec / kThreads;
  const bool vec_ok = cols == TC && (ld % kVec) == 0 && (reinterpret_cast<uintptr_t>(x) % 16) == 0;
  alignas(16) T buf[kLoads][kVec];
  FP4_UNROLL
  for (int l = 0; l < kLoads; ++l) {
    const int e = (l * kThreads + threadIdx.x) * kVec, r = e / TC, c = e % TC;
    if (r < rows && vec_ok) {
      *reinterpret_cast<uint4*>(buf[l]) = __ldg(reinterpret_cast<const uint4*>(x + (r0 + r) * ld + c0 + c));
    } else {
      FP4_UNROLL
      for (int k = 0; k < kVec; ++k) buf[l][k] = (r < rows && c + k < cols) ? x[(r0 + r) * ld + c0 + c + k] : T(0);
    }
  }
  FP4_UNROLL
  for (int l = 0; l < kLoads; ++l) {
    const int e = (l * kThreads + threadIdx.x) * kVec, r = e / TC, c = e % TC;
    FP4_UNROLL
    for (int k = 0; k < kVec; k += 4)
      *reinterpret_cast<float4*>(tile + tile_at<TR, TC>(r, c + k)) =
          make_float4(to_f32<In>(buf[l][k]), to_f32<In>(buf[l][k + 1]), to_f32<In>(buf[l][k + 2]), to_f32<In>(buf[l][k + 3]));
  }
  __syncthreads();
  if (P == Pass::Quant && ((row.on && row.block_2d) || (col.on && col.block_2d))) {
    // 16x16 tile amaxes for NVFP4 weights (no RHT with 2D blocks).
    constexpr int kSub = (TR / 16) * (TC / 16), kPer = kThreads / kSub;
    const int sub = threadIdx.x / kPer, part = threadIdx.x % kPer;
    const int sr = sub / (TC / 16), sc = sub % (TC / 16);
    float a = 0.0f;
    for (int rr = part; rr < 16; rr += kPer)
      for (int cc = 0; cc < 16; ++cc) a = num::amax_update(a, tile[tile_at<TR, TC>(sr * 16 + rr, sc * 16 + cc)]);
    a = lanes_amax(a, kPer);
    if (part == 0) amax2d[sub] = a;
    __syncthreads();
  }

  float row_amax = 0.0f, col_amax = 0.0f;
  if (row.on) rowwise_pass<TR, TC, P>(tile, rows, cols, r0, c0, row, kernel_codec<F, Rd>(row), amax2d, row_amax);
  if (col.on) {
    constexpr int kColBlock = F == Format::MXFP4 ? 32 : 16;
    columnwise_pass<TR, TC, P, kColBlock>(tile, rows, cols, r0, c0, col, kernel_codec<F, Rd>(col), amax2d, col_amax);
  }
  if (P == Pass::Amax) {
    row_amax = lanes_amax(row_amax, 32);
    col_amax = lanes_amax(col_amax, 32);
    if ((threadIdx.x & 31) == 0) {
      if (F == Format::NVFP4 && row.on) atomic_amax(row.amax, row_amax);
      if (F == Format::NVFP4 && col.on) atomic_amax(col.amax, col_amax);
    }
  }
}

template <class In, int TR, int TC, Format F, Rounding Rd>
void launch_tile(const void* x, int64_t R, int64_t C, int64_t ld, const DirArgs& row, const DirArgs& col, bool amax_pass,
                 cudaStream_t stream) {
  const size_t smem = sizeof(float) * (kTileElems + (TR / 16) * (TC / 16));
  if ((C + TC - 1) / TC > 65535 || (R + TR - 1) / TR > 2147483647)
    throw std::invalid_argument("x: " + std::to_string(R) + " x " + std::to_string(C) +
                                " exceeds the tile grid of the fused kernel (at most 65535 column tiles of " +
                                std::to_string(TC) + ")");
  const dim3 grid(unsigned((R + TR - 1) / TR), unsigned((C + TC - 1) / TC));
  auto kernel = amax_pass ? quantize_tile<In, TR, TC, Pass::Amax, F, Rounding::RTN> : quantize_tile<In, TR, TC, Pass::Quant, F, Rd>;
  FP4_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  kernel<<<grid, kThreads, smem, stream>>>(static_cast<const typename In::T*>(x), R, C, ld, row, col);
  FP4_CUDA_CHECK(cudaGetLastError());
}

// Resident CTAs per SM of one kernel (registers decide it), queried once per device.
template <class Kernel>
int ctas_per_sm(Kernel kernel, int (&cache)[64]) {
  return once_per_device(cache, [&](int) {
    int n = 0;
    FP4_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kThreads, 0));
    return std::max(n, 1);
  });
}

template <class In, Format F, Rounding Rd>
void launch_rows(const void* x, int64_t R, int64_t C, int64_t ld, const DirArgs& row, bool amax_pass,
                 cudaStream_t stream) {
  static int amax_ctas[64] = {}, quant_ctas[64] = {};
  auto kernel = amax_pass ? quantize_rows<In, Pass::Amax, F, Rounding::RTN> : quantize_rows<In, Pass::Quant, F, Rd>;
  // x: 512-column segments; y: groups of 8 rows, as many as fill one wave of resident CTAs (rounded
  // down: a partial second wave would leave most SMs idle at the end; warps stride over rows).
  const int64_t slots = int64_t(sm_count()) * ctas_per_sm(kernel, amax_pass ? amax_ctas : quant_ctas);
  const int64_t segs = (C + 32 * kRowLane - 1) / (32 * kRowLane), row_groups = (R + kWarps - 1) / kWarps;
  const int64_t y = std::max<int64_t>(1, std::min<int64_t>({row_groups, 65535, slots / segs}));
  if (segs > 2147483647) throw std::invalid_argument("x: too many columns for the rowwise kernel");
  kernel<<<dim3(unsigned(segs), unsigned(y)), kThreads, 0, stream>>>(static_cast<const typename In::T*>(x), R, C, ld, row);
  FP4_CUDA_CHECK(cudaGetLastError());
}

// Compile-time format and rounding (both directions of one launch share them).
template <class In, int TR, int TC>
void launch_codec(const void* x, int64_t R, int64_t C, int64_t ld, const DirArgs& row, const DirArgs& col,
                  bool amax_pass, cudaStream_t stream) {
  const Codec& c = row.on ? row.codec : col.codec;
  const bool sr = c.rounding == Rounding::SR && !amax_pass;
  with_codec<Format::MXFP4, Format::NVFP4, Format::FP4Row>(c.fmt, sr, [&](auto k) {
    using K = decltype(k);
    if (row.on && !col.on && !row.block_2d)  // rowwise only: the tile-free kernel
      launch_rows<In, K::fmt, K::rounding>(x, R, C, ld, row, amax_pass, stream);
    else
      launch_tile<In, TR, TC, K::fmt, K::rounding>(x, R, C, ld, row, col, amax_pass, stream);
  });
}

// Tile shape from the RHT blocks: columns need TR >= g_col (and 32), rows need TC >= g_row.
// Directions that cannot share a tile, a format or a rounding run as two launches.
template <class In>
void launch(const void* x, int64_t R, int64_t C, int64_t ld, const DirArgs& row, const DirArgs& col, bool amax_pass,
            cudaStream_t stream) {
  auto by_col_g = [&](const DirArgs& r, const DirArgs& c) {
    switch (c.on && c.g > 32 ? c.g : 32) {
      case 32: return launch_codec<In, 32, 256>(x, R, C, ld, r, c, amax_pass, stream);
      case 64: return launch_codec<In, 64, 128>(x, R, C, ld, r, c, amax_pass, stream);
      case 128: return launch_codec<In, 128, 64>(x, R, C, ld, r, c, amax_pass, stream);
      default: return launch_codec<In, 256, 32>(x, R, C, ld, r, c, amax_pass, stream);
    }
  };
  const int tc_for_col = kTileElems / (col.on && col.g > 32 ? col.g : 32);
  const bool share = row.on && col.on && row.g <= tc_for_col && row.codec.fmt == col.codec.fmt &&
                     row.codec.rounding == col.codec.rounding;
  if (share || !row.on || !col.on) return by_col_g(row, col);
  const DirArgs off;
  by_col_g(row, off);
  by_col_g(off, col);
}

}  // namespace

void quantize(const void* x, DType dtype, int64_t R, int64_t C, int64_t ld, const QuantizeConfig* row_cfg,
              const QuantizedOut* row_out, const QuantizeConfig* col_cfg, const QuantizedOut* col_out,
              cudaStream_t stream) {
  // Per-line amax scratch for fp4_row, zeroed for the atomic max; freed (stream-ordered) on any exit.
  struct Scratch {
    float* p = nullptr;
    cudaStream_t s;
    ~Scratch() { if (p) cudaFreeAsync(p, s); }
  } scratch_mem{nullptr, stream};
  const int64_t row_lines = row_cfg && row_cfg->fmt == Format::FP4Row ? R : 0;
  const int64_t col_lines = col_cfg && col_cfg->fmt == Format::FP4Row ? C : 0;
  if (row_lines + col_lines) {
    FP4_CUDA_CHECK(cudaMallocAsync(&scratch_mem.p, sizeof(float) * size_t(row_lines + col_lines), stream));
    FP4_CUDA_CHECK(cudaMemsetAsync(scratch_mem.p, 0, sizeof(float) * size_t(row_lines + col_lines), stream));
  }
  float* const scratch = scratch_mem.p;
  const DirArgs row = make_dir(row_cfg, row_out, C, scratch);
  const DirArgs col = make_dir(col_cfg, col_out, R, scratch ? scratch + row_lines : nullptr);

  // Amax pre-pass for the directions that need a tensor (NVFP4) or line (fp4_row) amax not given.
  DirArgs row_a = row, col_a = col;
  row_a.on = row.on && (row_cfg->fmt == Format::FP4Row || (row_cfg->fmt == Format::NVFP4 && !row_cfg->amax_in));
  col_a.on = col.on && (col_cfg->fmt == Format::FP4Row || (col_cfg->fmt == Format::NVFP4 && !col_cfg->amax_in));
  for (auto [cfg, out] : {std::pair{row_cfg, row_out}, std::pair{col_cfg, col_out}}) {
    if (!cfg || cfg->fmt != Format::NVFP4) continue;
    if (cfg->amax_in) FP4_CUDA_CHECK(cudaMemcpyAsync(out->amax, cfg->amax_in, sizeof(float), cudaMemcpyDeviceToDevice, stream));
    else FP4_CUDA_CHECK(cudaMemsetAsync(out->amax, 0, sizeof(float), stream));
  }
  auto run = [&](const DirArgs& r, const DirArgs& c, bool amax_pass) {
    if (r.on || c.on)
      with_input(dtype, [&](auto in) { launch<decltype(in)>(x, R, C, ld, r, c, amax_pass, stream); });
  };
  // NVFP4 without a transform takes the amax of x itself, the same for both directions: where that
  // covers every amax this call needs, one pass of the rowwise-only kernel (no tile, no shared memory)
  // serves them, if C fits its 16-value lanes.
  const bool row_raw = row_a.on && row_cfg->fmt == Format::NVFP4 && !row.g;
  const bool col_raw = col_a.on && col_cfg->fmt == Format::NVFP4 && !col.g;
  if ((row_raw || col_raw) && row_raw == row_a.on && col_raw == col_a.on && C % kRowLane == 0) {
    DirArgs a = row_raw ? row : col;
    a.block_2d = false;  // an amax pass reads values only
    with_input(dtype, [&](auto in) {
      launch_rows<decltype(in), Format::NVFP4, Rounding::RTN>(x, R, C, ld, a, true, stream);
    });
    if (row_raw && col_raw) FP4_CUDA_CHECK(cudaMemcpyAsync(col.amax, row.amax, sizeof(float), cudaMemcpyDeviceToDevice, stream));
    if (row_raw) row_a.on = false;
    if (col_raw) col_a.on = false;
  }
  if (!(row_a.on && col_a.on && quantize_tileblocks(x, dtype, R, C, ld, row_a, col_a, true, stream)))
    run(row_a, col_a, true);
  const bool done = row.on && !col.on   ? quantize_rowblocks(x, dtype, R, C, ld, row, stream)
                    : row.on && col.on ? quantize_tileblocks(x, dtype, R, C, ld, row, col, false, stream)
                                       : false;
  if (!done) run(row, col, false);
}

bool quantize_operand_a(const void* x, DType dtype, int64_t R, int64_t C, int64_t ld, const QuantizeConfig& cfg,
                        const QuantizedOut& out, const OperandAOut& op, cudaStream_t stream) {
  // MXFP4 needs no amax pass: the one rowwise kernel is the whole quantize() (no fp4_row line amax).
  return cfg.fmt == Format::MXFP4 && quantize_rowblocks(x, dtype, R, C, ld, make_dir(&cfg, &out, C, nullptr), stream, &op);
}

}  // namespace fp4gemm::cuda
