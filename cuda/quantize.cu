// Fused quantization kernel: one read of a TR x TC input tile feeds the rowwise and the columnwise
// outputs (RHT, scale rule, RTN/SR, QuEST mask), bit-identical to src/quantize_cpu.cpp.
// Design notes: docs/kernels.md.
#include <algorithm>

#include "cuda_api.h"
#include "warp_line.cuh"

namespace fp4gemm::cuda {
namespace {

using num::Codec;

constexpr int kThreads = 256, kWarps = kThreads / 32;

enum class Pass { Amax, Quant };

// One output direction as the kernel sees it. The quantized view has `lines` lines of length K.
struct DirArgs {
  bool on = false;
  Codec codec{};
  int g = 0;
  uint32_t signs[8] = {};
  bool block_2d = false;
  uint64_t seed = 0, offset = 0;
  int64_t K = 0;
  uint8_t* data = nullptr;
  void* scale = nullptr;
  uint8_t* mask = nullptr;
  float* amax = nullptr;  // NVFP4: the tensor amax (pre-pass target); fp4_row: per-line amax [lines]
};

// Quantize (or, in the amax pass, measure) one line of the tile held in shared memory.
// s: first element, stride: elements between consecutive line elements, len: valid length,
// line: the line's index in the quantized view, start: the line segment's offset along K.
template <int V, Pass P, class In>
__device__ __forceinline__ void process_line(const typename In::T* s, int stride, int len, int64_t line, int64_t start,
                             const DirArgs& d, const Codec codec, num::Stream stream, const float* amax2d, int a2d_step, int a2d_line,
                             float& warp_amax) {
  const int lane = threadIdx.x & 31;
  float v[V];
  FP4_UNROLL
  for (int j = 0; j < V; ++j) {
    const int i = lane + 32 * j;
    v[j] = i < len ? to_f32<In>(s[i * stride]) : 0.0f;
  }
  if (d.g) line_hadamard<V>(v, d.g, d.signs, lane);

  const Format fmt = codec.fmt;
  if (P == Pass::Amax) {
    float a = 0.0f;
    FP4_UNROLL
    for (int j = 0; j < V; ++j) a = num::amax_update(a, v[j]);
    a = group_amax(a, 32);
    if (fmt == Format::FP4Row) {
      if (lane == 0) atomicMax(reinterpret_cast<unsigned*>(d.amax) + line, num::f32_bits(a));
    } else {
      warp_amax = num::amax_update(warp_amax, a);
    }
    return;
  }

  uint32_t rbits[V] = {};
  if (codec.rounding == Rounding::SR)
    line_sr_bits<V>(rbits, d.seed, d.offset, stream, uint64_t(line * d.K + start) >> 2, lane);

  const bool row_fmt = fmt == Format::FP4Row;
  const uint32_t row_scale = row_fmt ? codec.scale_from_amax(d.amax[line]) : 0u;
  const bool nv = fmt == Format::NVFP4;  // a 16-block is half a warp, a 32-block all of it
  uint8_t* data = d.data + (line * d.K + start) / 2;
  FP4_UNROLL
  for (int j = 0; j < V; ++j) {
    const int i = lane + 32 * j;
    const bool live = i < len;
    // Block scale.
    uint32_t sc;
    if (row_fmt) {
      sc = row_scale;
    } else {
      float amax;
      if (d.block_2d) amax = amax2d[(i >> 4) * a2d_step + a2d_line];
      else amax = group_amax(num::abs_f(v[j]), nv ? 16 : 32);
      if (codec.rule == ScaleRule::Quest) sc = warp_quest_scale(v[j], amax);
      else sc = codec.scale_from_amax(amax);
    }
    const bool nan_block = codec.scale_is_nan(sc);
    const float sv = nan_block ? 0.0f : codec.scale_value(v[j], sc);
    const uint8_t code = nan_block ? 0 : codec.encode(sv, rbits[j]);
    // Two codes per byte: element 2m in the low nibble; the even lane stores.
    const uint8_t hi = uint8_t(__shfl_down_sync(kFull, code, 1));
    if (live && !(lane & 1)) data[i >> 1] = uint8_t(code | (hi << 4));
    if (d.mask) {
      const unsigned bits = __ballot_sync(kFull, !nan_block && num::abs_f(sv) >= num::kE2M1Max);
      if (live && lane == 0) reinterpret_cast<uint32_t*>(d.mask)[(line * d.K + start + 32 * j) >> 5] = bits;
    }
    if (live && !row_fmt && (lane & (nv ? 15 : 31)) == 0) {
      const int64_t nb = d.K / (nv ? num::kNvBlock : num::kMxBlock);
      static_cast<uint8_t*>(d.scale)[line * nb + (start + i) / (nv ? num::kNvBlock : num::kMxBlock)] = uint8_t(sc);
    }
  }
  if (row_fmt && start == 0 && lane == 0) static_cast<float*>(d.scale)[line] = num::bits_f32(row_scale);
}

// NVFP4's per-tensor codec parameter (S_enc or torchao's p), read from the device amax: no host sync.
__device__ __forceinline__ Codec with_tensor_param(const DirArgs& d) {
  Codec c = d.codec;
  if (d.on && c.fmt == Format::NVFP4)
    c.tensor = c.rule == ScaleRule::TE ? num::nv_encode_scale(*d.amax) : num::nv_torchao_tensor_scale(*d.amax);
  return c;
}

template <class In, int TR, int TC, Pass P>
__global__ void __launch_bounds__(kThreads) quantize_tile(const typename In::T* __restrict__ x, int64_t R, int64_t C,
                                                          int64_t ld, DirArgs row, DirArgs col) {
  using T = typename In::T;
  constexpr int kPad = 4 / int(sizeof(T));  // odd pitch in 4-byte words: conflict-free column reads
  constexpr int kPitch = TC + kPad;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* tile = reinterpret_cast<T*>(smem_raw);
  float* amax2d = reinterpret_cast<float*>(smem_raw + sizeof(T) * TR * kPitch);  // [TR/16][TC/16]

  const int64_t r0 = int64_t(blockIdx.x) * TR, c0 = int64_t(blockIdx.y) * TC;
  const int rows = int(R - r0 < TR ? R - r0 : TR), cols = int(C - c0 < TC ? C - c0 : TC);

  // Load: 16-byte vectors where the row is aligned and complete, element-wise otherwise. Zero fill.
  constexpr int kVec = 16 / int(sizeof(T));
  const bool vec_ok = cols == TC && (ld % kVec) == 0 && (reinterpret_cast<uintptr_t>(x) % 16) == 0;
  for (int e = threadIdx.x; e < TR * TC / kVec; e += kThreads) {
    const int r = e / (TC / kVec), c = (e % (TC / kVec)) * kVec;
    T buf[kVec];
    if (r < rows && vec_ok) {
      *reinterpret_cast<uint4*>(buf) = __ldg(reinterpret_cast<const uint4*>(x + (r0 + r) * ld + c0 + c));
    } else {
      FP4_UNROLL
      for (int k = 0; k < kVec; ++k) buf[k] = (r < rows && c + k < cols) ? x[(r0 + r) * ld + c0 + c + k] : T(0);
    }
    FP4_UNROLL
    for (int k = 0; k < kVec; ++k) tile[r * kPitch + c + k] = buf[k];
  }
  const bool need2d = (row.on && row.block_2d) || (col.on && col.block_2d);
  __syncthreads();
  if (P == Pass::Quant && need2d) {
    // 16x16 tile amaxes (NVFP4 weights): 4 threads per sub-tile, 4 rows each.
    constexpr int kSub = (TR / 16) * (TC / 16);
    for (int t = threadIdx.x; t < kSub * 4; t += kThreads) {
      const int sub = t >> 2, part = t & 3, sr = sub / (TC / 16), sc = sub % (TC / 16);
      float a = 0.0f;
      for (int r = 0; r < 4; ++r)
        for (int c = 0; c < 16; ++c) a = num::amax_update(a, to_f32<In>(tile[(sr * 16 + part * 4 + r) * kPitch + sc * 16 + c]));
      a = num::amax_update(a, __shfl_xor_sync(kFull, a, 1));
      a = num::amax_update(a, __shfl_xor_sync(kFull, a, 2));
      if (part == 0) amax2d[sub] = a;
    }
    __syncthreads();
  }

  const int warp = threadIdx.x >> 5;
  float warp_amax_row = 0.0f, warp_amax_col = 0.0f;
  const Codec row_codec = with_tensor_param(row), col_codec = with_tensor_param(col);
  // (the 32 x 256 and 256 x 32 tiles serve one direction each: the other one is not instantiated)
  if constexpr (TC >= 128)
    if (row.on)
      for (int r = warp; r < rows; r += kWarps)
      process_line<TC / 32, P, In>(tile + r * kPitch, 1, cols, r0 + r, c0, row, row_codec, num::Stream::Rowwise, amax2d, 1,
                                   (r >> 4) * (TC / 16), warp_amax_row);
  if constexpr (TR >= 128)
    if (col.on)
      for (int c = warp; c < cols; c += kWarps)
      process_line<TR / 32, P, In>(tile + c, kPitch, rows, c0 + c, r0, col, col_codec, num::Stream::Columnwise, amax2d, TC / 16,
                                   c >> 4, warp_amax_col);
  if (P == Pass::Amax && (threadIdx.x & 31) == 0) {
    if (row.on && row.codec.fmt == Format::NVFP4)
      atomicMax(reinterpret_cast<unsigned*>(row.amax), num::f32_bits(warp_amax_row));
    if (col.on && col.codec.fmt == Format::NVFP4)
      atomicMax(reinterpret_cast<unsigned*>(col.amax), num::f32_bits(warp_amax_col));
  }
}

template <class In, int TR, int TC>
void launch_tile(const void* x, int64_t R, int64_t C, int64_t ld, const DirArgs& row, const DirArgs& col, bool amax_pass,
                 cudaStream_t stream) {
  using T = typename In::T;
  const size_t smem = sizeof(T) * TR * (TC + 4 / sizeof(T)) + sizeof(float) * (TR / 16) * (TC / 16);
  const dim3 grid(unsigned((R + TR - 1) / TR), unsigned((C + TC - 1) / TC));
  auto kernel = amax_pass ? quantize_tile<In, TR, TC, Pass::Amax> : quantize_tile<In, TR, TC, Pass::Quant>;
  FP4_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  kernel<<<grid, kThreads, smem, stream>>>(static_cast<const T*>(x), R, C, ld, row, col);
  FP4_CUDA_CHECK(cudaGetLastError());
}

template <class In>
void launch(const void* x, int64_t R, int64_t C, int64_t ld, const DirArgs& row, const DirArgs& col, bool amax_pass,
            cudaStream_t stream) {
  const int g = std::max(row.on ? row.g : 0, col.on ? col.g : 0);
  if (g <= 128) return launch_tile<In, 128, 128>(x, R, C, ld, row, col, amax_pass, stream);
  // g = 256: lines of 256 along the direction that needs it; one kernel per direction.
  DirArgs off;
  if (row.on) launch_tile<In, 32, 256>(x, R, C, ld, row, off, amax_pass, stream);
  if (col.on) launch_tile<In, 256, 32>(x, R, C, ld, off, col, amax_pass, stream);
}

DirArgs make_dir(const QuantizeConfig* cfg, const QuantizedOut* out, int64_t K, float* line_amax) {
  DirArgs d;
  if (!cfg) return d;
  d.on = true;
  d.codec = Codec{cfg->fmt, cfg->scale_rule, cfg->rounding, cfg->prescale, 0.0f};
  d.g = cfg->hadamard;
  std::copy(cfg->hadamard_signs, cfg->hadamard_signs + 8, d.signs);
  d.block_2d = cfg->block_2d;
  d.seed = cfg->seed;
  d.offset = cfg->offset;
  d.K = K;
  d.data = out->data;
  d.scale = out->scale;
  d.mask = out->clip_mask;
  d.amax = cfg->fmt == Format::NVFP4 ? out->amax : line_amax;
  return d;
}

}  // namespace

void quantize(const void* x, DType dtype, int64_t R, int64_t C, int64_t ld, const QuantizeConfig* row_cfg,
              const QuantizedOut* row_out, const QuantizeConfig* col_cfg, const QuantizedOut* col_out,
              cudaStream_t stream) {
  // Per-line amax scratch for fp4_row (rows of the view), zeroed for the atomic max.
  float* scratch = nullptr;
  const int64_t row_lines = row_cfg && row_cfg->fmt == Format::FP4Row ? R : 0;
  const int64_t col_lines = col_cfg && col_cfg->fmt == Format::FP4Row ? C : 0;
  if (row_lines + col_lines) {
    FP4_CUDA_CHECK(cudaMallocAsync(&scratch, sizeof(float) * size_t(row_lines + col_lines), stream));
    FP4_CUDA_CHECK(cudaMemsetAsync(scratch, 0, sizeof(float) * size_t(row_lines + col_lines), stream));
  }
  DirArgs row = make_dir(row_cfg, row_out, C, scratch);
  DirArgs col = make_dir(col_cfg, col_out, R, scratch ? scratch + row_lines : nullptr);

  // Amax pre-pass where a direction needs a tensor (NVFP4) or line (fp4_row) amax it was not given.
  DirArgs row_a = row, col_a = col;
  row_a.on = row.on && (row_cfg->fmt == Format::FP4Row || (row_cfg->fmt == Format::NVFP4 && !row_cfg->amax_in));
  col_a.on = col.on && (col_cfg->fmt == Format::FP4Row || (col_cfg->fmt == Format::NVFP4 && !col_cfg->amax_in));
  for (auto [cfg, out] : {std::pair{row_cfg, row_out}, std::pair{col_cfg, col_out}}) {
    if (!cfg || cfg->fmt != Format::NVFP4) continue;
    if (cfg->amax_in) FP4_CUDA_CHECK(cudaMemcpyAsync(out->amax, cfg->amax_in, sizeof(float), cudaMemcpyDeviceToDevice, stream));
    else FP4_CUDA_CHECK(cudaMemsetAsync(out->amax, 0, sizeof(float), stream));
  }
  auto run = [&](const DirArgs& r, const DirArgs& c, bool amax_pass) {
    if (!r.on && !c.on) return;
    switch (dtype) {
      case DType::F32: return launch<F32In>(x, R, C, ld, r, c, amax_pass, stream);
      case DType::F16: return launch<F16In>(x, R, C, ld, r, c, amax_pass, stream);
      case DType::BF16: return launch<BF16In>(x, R, C, ld, r, c, amax_pass, stream);
    }
  };
  run(row_a, col_a, true);
  run(row, col, false);
  if (scratch) FP4_CUDA_CHECK(cudaFreeAsync(scratch, stream));
}

}  // namespace fp4gemm::cuda
