// Folding a quantized operand into the GEMM-ready form (gemm_operand.cuh). A row is folded by
// `split` warps of one CTA (1, 2, 4 or 8: more when rows are few and long, as wgrad's K = tokens
// and decode-sized M give), each taking every split-th 512-element step of the row, one lane per
// 16 elements (8 lanes per 128-K chunk). MXFP4 reads each row twice (the base, then the fold); the
// bytes are small (K/2 codes + K/32 scales) and the second read hits L2.
#include "common.cuh"
#include "gemm_operand.cuh"
#include "operand_e4m3.cuh"

namespace fp4gemm::cuda {
namespace {

using operand::kShifts;
using operand::nonzero;

constexpr int kUnit = 16;  // elements per lane step: 8 code bytes in, 16 (E4M3) or 32 (BF16) bytes out
constexpr int kWarpsPerCta = 8;

// 16 codes -> 16 BF16 values code * s. s is a power of two or an E4M3 value, so the fp32 product has
// at most 6 significant bits and its low 16 bits are zero: the truncation to BF16 is exact.
__device__ void store_bf16_each(uint2 codes, float s, uint4* dst) {
  uint32_t w[8];
  FP4_UNROLL
  for (int j = 0; j < 8; ++j) {
    const uint32_t pair = ((j < 4 ? codes.x : codes.y) >> (8 * (j & 3))) & 0xFF;
    const uint32_t lo = num::f32_bits(num::e2m1_value(uint8_t(pair & 0xF)) * s) >> 16;
    const uint32_t hi = num::f32_bits(num::e2m1_value(uint8_t(pair >> 4)) * s) >> 16;
    w[j] = lo | (hi << 16);
  }
  dst[0] = make_uint4(w[0], w[1], w[2], w[3]);
  dst[1] = make_uint4(w[4], w[5], w[6], w[7]);
}

// The same through byte permutes (as operand::e4m3_bytes): the BF16 halves of the 8 magnitudes times
// s, low bytes and high bytes in two 8-byte tables, picked by four packed codes at a time; the code's sign
// flips the high byte's sign bit (an XOR, so a negative s gives the IEEE product's sign). A NaN s
// (an NVFP4 E4M3 scale byte 0x7F / 0xFF) takes the per-element form, whose products are the GPU's
// canonical NaN whatever the code's sign.
__device__ void store_bf16(uint2 codes, float s, uint4* dst) {
  if (s != s) return store_bf16_each(codes, s, dst);
  uint32_t f[8];  // fp32 bits of magnitude c times s: the BF16 is bytes 2 (low) and 3 (high)
  FP4_UNROLL
  for (int c = 0; c < 8; ++c) f[c] = num::f32_bits(num::e2m1_value(uint8_t(c)) * s);
  uint32_t lo[2], hi[2];
  FP4_UNROLL
  for (int h = 0; h < 2; ++h) {
    const uint32_t a = __byte_perm(f[4 * h], f[4 * h + 1], 0x7362), b = __byte_perm(f[4 * h + 2], f[4 * h + 3], 0x7362);
    lo[h] = __byte_perm(a, b, 0x5410);
    hi[h] = __byte_perm(a, b, 0x7632);
  }
  uint32_t w[8];
  FP4_UNROLL
  for (int q = 0; q < 4; ++q) {
    const uint32_t src = (q < 2 ? codes.x : codes.y) >> (16 * (q & 1));  // codes 4q .. 4q + 3
    const uint32_t low = __byte_perm(lo[0], lo[1], operand::magnitude_selectors(src));
    const uint32_t high = __byte_perm(hi[0], hi[1], operand::magnitude_selectors(src)) ^ operand::sign_bytes(src);
    w[2 * q] = __byte_perm(low, high, 0x5140);      // elements 4q, 4q + 1
    w[2 * q + 1] = __byte_perm(low, high, 0x7362);  // elements 4q + 2, 4q + 3
  }
  dst[0] = make_uint4(w[0], w[1], w[2], w[3]);
  dst[1] = make_uint4(w[4], w[5], w[6], w[7]);
}

// kChunked (the FP8 GEMM's A): each 128-K chunk folds against its own base and writes its scale.
template <bool kBf16, bool kChunked>
__global__ void __launch_bounds__(32 * kWarpsPerCta, 5) fold_kernel(QuantizedIn q, GemmOperand out, int split) {
  __shared__ uint64_t tables[kShifts];  // E4M3 bytes for each shift d of the window
  __shared__ unsigned part_top[kWarpsPerCta];
  __shared__ bool part_special[2][kWarpsPerCta];  // by row-iteration parity: no third barrier
  if (!kBf16) {
    for (int i = threadIdx.x; i < kShifts; i += blockDim.x) tables[i] = operand::e4m3_table(i + kWindowLowE4M3);
    __syncthreads();
  }
  constexpr int kLow = kBf16 ? kWindowLowBF16 : kWindowLowE4M3;
  constexpr int kOutPerUnit = kBf16 ? 2 : 1;  // uint4 stores per unit
  constexpr int kUnitsPerChunk = kChunkK / kUnit;  // 8 lanes: a warp step covers 4 whole chunks
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int part = warp % split, slot = warp / split, rows_per_cta = kWarpsPerCta / split;
  const int first = warp - part;  // the warp folding part 0 of this warp's row
  const int64_t units = q.k / kUnit, chunks = (q.k + kChunkK - 1) / kChunkK;
  const auto* codes = reinterpret_cast<const uint2*>(q.data);
  auto* dst = static_cast<uint4*>(out.data);
  const double nv_factor = q.fmt == Format::NVFP4 ? num::operand_tensor_factor(q) : 0.0;
  // CTA-uniform loop (the parts of a row meet at barriers); a slot past the last row idles.
  int parity = 0;
  for (int64_t row0 = int64_t(blockIdx.x) * rows_per_cta; row0 < q.rows;
       row0 += int64_t(gridDim.x) * rows_per_cta, parity ^= 1) {
    const int64_t row = row0 + slot;
    const bool live = row < q.rows;
    const uint2* src = codes + row * units;
    uint4* line = dst + row * units * kOutPerUnit;
    bool special = false;
    unsigned top = 0;  // MXFP4: largest scale byte of a nonzero block
    double factor = nv_factor;
    if (q.fmt == Format::MXFP4) {
      bool nan = false;
      // The scale bytes kScaleBatch steps at a time (independent loads in flight); the codes only
      // where a scale is a new top, which after the first steps is rare.
      constexpr int kScaleBatch = 4;
      for (int64_t u0 = 32 * part + lane; live && u0 < units; u0 += 32 * split * kScaleBatch) {
        unsigned s[kScaleBatch];
        FP4_UNROLL
        for (int i = 0; i < kScaleBatch; ++i) {
          const int64_t u = u0 + i * 32 * split;
          s[i] = u < units ? num::operand_scale(q, row, u * kUnit) : 0u;
        }
        FP4_UNROLL
        for (int i = 0; i < kScaleBatch; ++i) {
          nan |= s[i] == num::kE8M0NaN;
          if (s[i] != num::kE8M0NaN && s[i] > top && nonzero(src[u0 + i * 32 * split])) top = s[i];
        }
      }
      top = __reduce_max_sync(kFull, top);
      special = __any_sync(kFull, nan);
      if (split > 1) {  // the row's top over its parts
        if (lane == 0) part_top[warp] = top;
        __syncthreads();
        for (int p = 0; p < split; ++p) top = max(top, part_top[first + p]);
      }
      factor = ldexp(1.0, int(top) - 127 - kWindowHigh) * q.global_scale;
    } else if (q.fmt == Format::FP4Row && live) {
      const float s = static_cast<const float*>(q.scale)[row];
      special = !num::is_finite(s);
      factor = double(s) * q.global_scale;
    }
    if (live && part == 0 && out.ones && row % kOnesRows == 0)
      for (int64_t c = lane; c < chunks; c += 32) out.ones[row / kOnesRows * chunks + c] = 1.0f;
    bool below = false;
    // Warp-uniform: the chunk reduction shuffles.
    // Each step's loads are issued one step ahead, under the previous step's work.
    auto codes_at = [&](int64_t u) { return u < units ? src[u] : make_uint2(0u, 0u); };
    auto scale_at = [&](int64_t u) {
      return q.fmt == Format::MXFP4 && u < units ? num::operand_scale(q, row, u * kUnit) : 0u;
    };
    uint2 c_next = live ? codes_at(32 * part + lane) : make_uint2(0u, 0u);
    unsigned s_next = live ? scale_at(32 * part + lane) : 0u;
    for (int64_t u0 = 32 * part; live && u0 < units; u0 += 32 * split) {
      const int64_t u = u0 + lane;
      const bool in = u < units;
      uint2 c = c_next;
      const unsigned s = s_next;
      if (u0 + 32 * split < units) {
        c_next = codes_at(u + 32 * split);
        s_next = scale_at(u + 32 * split);
      }
      int base = int(top);  // d counts from the row's top block, or the chunk's
      if constexpr (kChunked) {
        // The chunk's largest nonzero block over its 8 lanes, + 1 (0: an all-zero chunk).
        unsigned v = s != num::kE8M0NaN && nonzero(c) && q.fmt == Format::MXFP4 ? s + 1 : 0u;
        FP4_UNROLL
        for (int o = 1; o < kUnitsPerChunk; o <<= 1) v = max(v, __shfl_xor_sync(kFull, v, o));
        if (v) base = int(v) - 1;
        if (in && lane % kUnitsPerChunk == 0) {
          float scale = 1.0f;
          if (v && base - int(top) < kChunkRangeLow) below = true;
          else if (v) scale = num::exp2i(base - int(top));
          float* col = out.chunk_scale + u / kUnitsPerChunk * out.chunk_stride;
          col[row] = scale;
          if (row == q.rows - 1)
            for (int64_t r = q.rows; r < out.chunk_stride; ++r) col[r] = 0.0f;
        }
      }
      if (!in) continue;
      uint4* o = line + u * kOutPerUnit;
      int d = 0;  // fp4_row: the codes themselves
      if (q.fmt == Format::MXFP4) {
        if (s == num::kE8M0NaN) {
          below = true;  // a NaN block: the fixup writes the row's NaN outputs
          c = make_uint2(0u, 0u);
        } else if (nonzero(c)) {
          d = int(s) - base + kWindowHigh;  // <= kWindowHigh: base is the largest nonzero block's
          if (d < kLow) {  // below the window: written as zero, the fixup recomputes the row
            below = true;
            c = make_uint2(0u, 0u);
            d = 0;
          }
        }
      }
      if constexpr (kBf16) {
        const float sb = q.fmt == Format::NVFP4 ? num::e4m3_value(uint8_t(num::operand_scale(q, row, u * kUnit)))
                                                : num::exp2i(d);
        store_bf16(c, sb, o);
      } else {
        *o = operand::e4m3_bytes(c, tables[d - kWindowLowE4M3]);  // byte permutes (operand_e4m3.cuh)
      }
    }
    special = __any_sync(kFull, special || below);
    if (split > 1) {  // the row is special if any part found it so
      if (lane == 0) part_special[parity][warp] = special;
      __syncthreads();
      for (int p = 0; p < split; ++p) special = special || part_special[parity][first + p];
    }
    if (live && part == 0 && lane == 0) {
      out.factor[row] = factor;
      if (special) {
        const int32_t i = atomicAdd(out.special, 1);
        out.special[1 + i] = int32_t(row);
      }
    }
  }
}

}  // namespace

void fold_operand(const QuantizedIn& q, const GemmOperand& out, cudaStream_t stream) {
  // Warps per row: enough warps for ~32 per SM (latency hiding), but no more parts than the row has
  // 512-element steps; 1 when rows alone fill the GPU (no barriers then).
  const int64_t steps = (q.k / kUnit + 31) / 32, want = int64_t(sm_count()) * 32;
  int split = 1;
  while (split < kWarpsPerCta && q.rows * split < want && 2 * split <= steps) split *= 2;
  const int64_t rows_per_cta = kWarpsPerCta / split;
  const int64_t ctas = std::min<int64_t>((q.rows + rows_per_cta - 1) / rows_per_cta, 1 << 16);
  const dim3 grid{unsigned(ctas)}, block{32 * kWarpsPerCta};
  if (out.bf16) fold_kernel<true, false><<<grid, block, 0, stream>>>(q, out, split);
  else if (out.chunk_scale) fold_kernel<false, true><<<grid, block, 0, stream>>>(q, out, split);
  else fold_kernel<false, false><<<grid, block, 0, stream>>>(q, out, split);
  FP4_CUDA_CHECK(cudaGetLastError());
}

}  // namespace fp4gemm::cuda
