// Folding a quantized operand into the GEMM-ready form (gemm_operand.cuh): one warp per row, one
// lane per 16 elements at a time. MXFP4 reads each row twice (the base, then the fold); the bytes
// are small (K/2 codes + K/32 scales) and the second read hits L2.
#include "common.cuh"
#include "gemm_operand.cuh"

namespace fp4gemm::cuda {
namespace {

constexpr int kUnit = 16;  // elements per lane step: 8 code bytes in, 16 (E4M3) or 32 (BF16) bytes out
constexpr int kWarpsPerCta = 8;
constexpr uint64_t kMagnitudeBits = 0x7777777777777777ull;  // a unit is zero iff these bits are

// E4M3 bytes of the magnitudes of codes 0..7 times 2^d, byte c of the word (d in the window).
__device__ uint64_t e4m3_table(int d) {
  uint64_t t = 0;
  for (int c = 1; c < 8; ++c)
    t |= uint64_t(num::e4m3_rne_satfinite(num::e2m1_value(uint8_t(c)) * num::exp2i(d))) << (8 * c);
  return t;
}

// 16 codes (element 2i in the low nibble of byte i) -> 16 E4M3 bytes.
__device__ uint4 fold_e4m3(uint2 codes, uint64_t table) {
  uint32_t out[4];
  FP4_UNROLL
  for (int w = 0; w < 4; ++w) {
    const uint32_t src = (w < 2 ? codes.x : codes.y) >> (16 * (w & 1));
    uint32_t word = 0;
    FP4_UNROLL
    for (int j = 0; j < 4; ++j) {
      const uint32_t c = (src >> (4 * j)) & 0xF;
      const uint32_t byte = uint32_t(table >> (8 * (c & 7))) & 0xFF;
      word |= (byte | ((c & 8) << 4)) << (8 * j);
    }
    out[w] = word;
  }
  return make_uint4(out[0], out[1], out[2], out[3]);
}

__device__ void append_special(int32_t* special, int64_t row) {
  const int32_t i = atomicAdd(special, 1);
  special[1 + i] = int32_t(row);
}

// MXFP4 and per-row FP4 -> E4M3.
__global__ void fold_fp8_kernel(QuantizedIn q, GemmOperand out) {
  const int lane = threadIdx.x & 31;
  const int64_t units = q.k / kUnit;
  const auto* codes = reinterpret_cast<const uint2*>(q.data);
  auto* dst = static_cast<uint4*>(out.data);
  const bool mx = q.fmt == Format::MXFP4;
  const auto* mx_scale = static_cast<const uint8_t*>(q.scale);
  const int64_t blocks = q.k / num::kMxBlock;
  for (int64_t row = blockIdx.x * int64_t(kWarpsPerCta) + (threadIdx.x >> 5); row < q.rows;
       row += int64_t(gridDim.x) * kWarpsPerCta) {
    const uint2* src = codes + row * units;
    uint4* line = dst + row * units;
    bool special = false;
    unsigned top = 0;  // largest scale byte of a nonzero block (MXFP4)
    double factor;
    if (mx) {
      bool nan = false;
      for (int64_t u = lane; u < units; u += 32) {
        const uint2 c = src[u];
        const unsigned s = mx_scale[row * blocks + u / 2];
        const bool nonzero = ((uint64_t(c.y) << 32 | c.x) & kMagnitudeBits) != 0;
        nan |= s == num::kE8M0NaN;
        if (nonzero && s != num::kE8M0NaN && s > top) top = s;
      }
      top = __reduce_max_sync(kFull, top);
      special = __any_sync(kFull, nan);
      factor = ldexp(1.0, int(top) - 127 - kWindowHigh) * q.global_scale;
    } else {
      const float s = static_cast<const float*>(q.scale)[row];
      special = !num::is_finite(s);
      factor = double(s) * q.global_scale;
    }
    unsigned table_scale = mx ? 0x100u : 0u;  // the scale byte `table` was built for (0x100: none yet)
    uint64_t table = mx ? 0 : e4m3_table(0);
    bool below = false;
    for (int64_t u = lane; u < units; u += 32) {
      const uint2 c = src[u];
      const bool nonzero = ((uint64_t(c.y) << 32 | c.x) & kMagnitudeBits) != 0;
      uint4 v = make_uint4(0, 0, 0, 0);
      if (nonzero) {
        const unsigned s = mx ? mx_scale[row * blocks + u / 2] : 0u;
        const int d = int(s) - int(top) + kWindowHigh;
        if (mx && (d < kWindowLow || s == num::kE8M0NaN)) {
          below = true;  // written as zero; the fixup recomputes this row
        } else {
          if (mx && s != table_scale) { table = e4m3_table(d); table_scale = s; }
          v = fold_e4m3(c, table);
        }
      }
      line[u] = v;
    }
    special = __any_sync(kFull, special || below);
    if (lane == 0) {
      out.factor[row] = factor;
      if (special) append_special(out.special, row);
    }
  }
}

// NVFP4 -> BF16 (q * s_b is exact in fp32 with its low 16 bits zero, so truncation is exact).
__global__ void fold_bf16_kernel(QuantizedIn q, GemmOperand out) {
  const int lane = threadIdx.x & 31;
  const int64_t units = q.k / kUnit;
  const auto* codes = reinterpret_cast<const uint2*>(q.data);
  auto* dst = static_cast<uint4*>(out.data);
  const double factor = num::tensor_factor(q.fmt, q.scale_rule, *q.amax, q.global_scale);
  for (int64_t row = blockIdx.x * int64_t(kWarpsPerCta) + (threadIdx.x >> 5); row < q.rows;
       row += int64_t(gridDim.x) * kWarpsPerCta) {
    for (int64_t u = lane; u < units; u += 32) {
      const uint2 c = codes[row * units + u];
      const float s = num::e4m3_value(uint8_t(num::operand_scale(q, row, u * kUnit)));
      uint32_t w[8];
      FP4_UNROLL
      for (int j = 0; j < 8; ++j) {
        const uint32_t pair = ((j < 4 ? c.x : c.y) >> (8 * (j & 3))) & 0xFF;
        const uint32_t lo = num::f32_bits(num::e2m1_value(uint8_t(pair & 0xF)) * s) >> 16;
        const uint32_t hi = num::f32_bits(num::e2m1_value(uint8_t(pair >> 4)) * s) >> 16;
        w[j] = lo | (hi << 16);
      }
      uint4* line = dst + 2 * (row * units + u);
      line[0] = make_uint4(w[0], w[1], w[2], w[3]);
      line[1] = make_uint4(w[4], w[5], w[6], w[7]);
    }
    if (lane == 0) out.factor[row] = factor;
  }
}

}  // namespace

void fold_operand(const QuantizedIn& q, const GemmOperand& out, cudaStream_t stream) {
  const int64_t ctas = std::min<int64_t>((q.rows + kWarpsPerCta - 1) / kWarpsPerCta, 1 << 16);
  if (q.fmt == Format::NVFP4) fold_bf16_kernel<<<unsigned(ctas), 32 * kWarpsPerCta, 0, stream>>>(q, out);
  else fold_fp8_kernel<<<unsigned(ctas), 32 * kWarpsPerCta, 0, stream>>>(q, out);
  FP4_CUDA_CHECK(cudaGetLastError());
}

}  // namespace fp4gemm::cuda
