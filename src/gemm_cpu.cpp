// CPU dequantization and GEMM. Dequantized operand values code * scale are exact in float64, so
// the float64-accumulated GEMM is the reference the GPU kernels are held to.
#include <cmath>
#include <vector>

#include "cpu.h"
#include "fp4gemm/numerics.h"

namespace fp4gemm::cpu {

using namespace num;

void dequantize_row(const QuantizedIn& q, int64_t r, double* out) {
  for (int64_t k = 0; k < q.k; ++k) out[k] = operand_value(q, r, k);
}

void dequantize(const QuantizedIn& q, float* out) {
  const float amax = q.fmt == Format::NVFP4 ? *q.amax : 0.0f;
  for (int64_t r = 0; r < q.rows; ++r)
    for (int64_t k = 0; k < q.k; ++k)
      out[r * q.k + k] = dequantize_element(q.fmt, q.scale_rule, operand_code(q, r, k), operand_scale(q, r, k), amax,
                                            q.global_scale);
}

namespace {
uint16_t round_to_half(double x, bool bf16) {
  // Correct rounding (RNE) straight from double: no double rounding through fp32.
  const int mant = bf16 ? 7 : 10, emin = bf16 ? -126 : -14, emax = bf16 ? 127 : 15, bias = bf16 ? 127 : 15;
  const int ebits = bf16 ? 8 : 5;
  const uint16_t sign = std::signbit(x) ? uint16_t(1u << 15) : 0;
  const uint16_t inf = uint16_t(((1u << ebits) - 1) << mant);
  if (std::isnan(x)) return uint16_t(sign | inf | (1u << (mant - 1)));
  double a = std::fabs(x);
  if (std::isinf(a)) return uint16_t(sign | inf);
  if (a == 0.0) return sign;
  int e = std::ilogb(a);
  if (e < emin) e = emin;
  const double q = std::nearbyint(std::ldexp(a, mant - e));  // FE_TONEAREST: ties to even
  double scaled = q;
  if (scaled >= std::ldexp(1.0, mant + 1)) { scaled /= 2; ++e; }  // rounding carried a binade
  if (e > emax) return uint16_t(sign | inf);
  const uint32_t m = uint32_t(scaled);
  if (m < (1u << mant)) return uint16_t(sign | m);                 // subnormal
  return uint16_t(sign | (uint32_t(e + bias) << mant) | (m - (1u << mant)));
}
}  // namespace

void gemm(const GemmArgs& g) {
  const int64_t M = g.a.rows, N = g.b.rows, K = g.a.k;
  if (g.d_quant) {  // D quantized: the fp32 D, then quantize() of it
    std::vector<float> d(size_t(M * N));
    GemmArgs f = g;
    f.d_quant = nullptr;
    f.d_out = nullptr;
    f.d = d.data();
    f.out_dtype = DType::F32;
    gemm(f);
    return quantize_direction(d.data(), DType::F32, M, N, N, Direction::Rowwise, *g.d_quant, *g.d_out);
  }
  std::vector<double> A(size_t(M * K)), B(size_t(N * K));
  for (int64_t m = 0; m < M; ++m) dequantize_row(g.a, m, &A[size_t(m * K)]);
  for (int64_t n = 0; n < N; ++n) dequantize_row(g.b, n, &B[size_t(n * K)]);
  const double scale = g.alpha * operand_tensor_factor(g.a) * operand_tensor_factor(g.b);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      const double* a = &A[size_t(m * K)];
      const double* b = &B[size_t(n * K)];
      double acc;
      if (g.fp32_accumulate) {
        float s = 0.0f;
        for (int64_t k = 0; k < K; ++k) s += float(a[k]) * float(b[k]);
        acc = s;
      } else {
        acc = 0.0;
        for (int64_t k = 0; k < K; ++k) acc += a[k] * b[k];
      }
      double d = scale * acc;
      if (g.bias) d += g.bias[n];
      if (g.c) d += g.beta * g.c[m * N + n];
      const int64_t i = m * N + n;
      if (g.out_dtype == DType::F32) static_cast<float*>(g.d)[i] = float(d);
      else static_cast<uint16_t*>(g.d)[i] = round_to_half(d, g.out_dtype == DType::BF16);
    }
}

}  // namespace fp4gemm::cpu
