// Exhaustive check of numerics.h's E2M1 encoders against their plain integer forms (all inputs by hand:
// ~5 minutes on 2 cores). The GPU computes RTN as one FFMA at 2^23 and SR as two truncating adds;
// for SR the host FPU runs in round-toward-zero, which only the two SR additions see (every other
// operation is exact), so the GPU's SR arithmetic is reproduced bit for bit; RTN runs first, in the
// default round-to-nearest. tests/test_encoder_forms.py runs a sample of it in CI (`/tmp/ce 4093`).
//   g++ -O2 -mfma -std=c++17 -ffp-contract=off -frounding-math -Iinclude tests/check_encoders.cpp -o /tmp/ce && /tmp/ce
#include <cfenv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "fp4gemm/numerics.h"

using namespace fp4gemm::num;

// RTN as integer compares on the fp32 bits: thresholds 0.25 / 0.75 below 1, RNE at bit 22 from 1 on.
static uint8_t rtn_integer(float v) {
  const uint32_t u = f32_bits(v) & 0x7FFFFFFFu, sign = (f32_bits(v) >> 28) & 8u;
  const uint32_t below1 = (u > 0x3E800000u ? 1u : 0u) + (u >= 0x3F400000u ? 1u : 0u);
  const uint32_t rounded = ((u + 0x1FFFFFu + ((u >> 22) & 1u)) >> 22) - 252u;
  const uint32_t c = u < 0x3F800000u ? below1 : (rounded < 7u ? rounded : 7u);
  return uint8_t(c | sign);
}

// e2m1_sr_bits' GPU branch with the host in round-toward-zero (sr_addend is exact in any mode).
static uint8_t sr_gpu_form(float v, uint32_t r) {
  const E2M1Grid g = e2m1_grid(v);
  volatile float t = std::fmaf(g.a, g.f, sr_addend(r));
  volatile float c = t + g.M;
  return uint8_t(f32_bits(c) - kGridBase);
}

// e2m1_sr_scaled_bits' GPU form, likewise in round-toward-zero.
static uint8_t sr_gpu_form_scaled(float y, const E2M1Scaled& s, uint32_t r) {
  const E2M1Grid g = e2m1_grid_scaled(y, s);
  volatile float t = std::fmaf(g.a, g.f, sr_addend(r));
  volatile float c = t + g.M;
  return uint8_t(f32_bits(c) - kGridBase);
}

// y * 2^-e rounded to nearest (as the GPU's FMUL), whatever the host's rounding mode.
static float scaled_rn(float y, int e) {
  const int mode = std::fegetround();
  std::fesetround(FE_TONEAREST);
  volatile float v = y * exp2i(-e);
  std::fesetround(mode);
  return v;
}
// Block exponents for the scaled forms: the normal range's ends, Inf L (e >= 126), and between.
static const int kExps[] = {-126, -125, -124, -100, -20, -2, 0, 3, 40, 125, 126, 127};

// The SR threshold floor(t 2^16) of e2m1_sr, to probe r at the decision edge.
static uint32_t sr_threshold(float v) {
  const uint32_t u = f32_bits(v) & 0x7FFFFFFFu;
  const bool ge_half = u >= 0x3F000000u;
  return (u >= 0x3F800000u ? u << 10 : (ge_half ? u << 9 : uint32_t(bits_f32(u) * 8589934592.0f))) >> 16;
}

// Inputs: every `stride`-th fp32 bit pattern (stride 1 = all 2^32), and, when sampling, the 2 x 129
// neighbours of each grid point and decision threshold of either sign.
template <class F>
static void for_inputs(uint64_t stride, F&& f) {
  for (uint64_t i = 0; i < (1ull << 32); i += stride) f(uint32_t(i));
  if (stride == 1) return;
  for (float x : {0.25f, 0.5f, 0.75f, 1.0f, 1.25f, 1.5f, 1.75f, 2.0f, 2.5f, 3.0f, 3.5f, 4.0f, 5.0f, 6.0f})
    for (uint32_t sign : {0u, 0x80000000u})
      for (int d = -64; d <= 64; ++d) f((f32_bits(x) + uint32_t(d)) | sign);
}

int main(int argc, char** argv) {
  const uint64_t stride = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1;  // CI: a sample
  uint64_t bad_rtn = 0, bad_sr = 0, bad_scaled = 0;
  for_inputs(stride, [&](uint32_t i) {  // RTN in the default round-to-nearest
    const float v = bits_f32(i);
    const uint8_t want = std::isnan(v) ? uint8_t(7u | ((i >> 28) & 8u)) : rtn_integer(v);
    bad_rtn += e2m1_rtn(v) != want;
    for (int e : kExps)  // the scaled form against RTN of the scaled value (finite: a NaN / Inf block encodes to zeros)
      if (std::isfinite(v)) bad_scaled += e2m1_rtn_scaled_bits(v, e2m1_scaled(e)) != e2m1_rtn_bits(scaled_rn(v, e));
  });
  std::fesetround(FE_TOWARDZERO);  // for sr_gpu_form's two additions; e2m1_sr's arithmetic is exact
  uint32_t seed = 12345;
  for_inputs(stride, [&](uint32_t i) {
    const float v = bits_f32(i);
    const uint32_t t = sr_threshold(v);
    seed = seed * 1664525u + 1013904223u;
    for (uint32_t r : {0u, 0xFFFFu, t, t - 1u, t + 1u, seed >> 16})  // 16-bit r
      bad_sr += sr_gpu_form(v, r & 0xFFFFu) != e2m1_sr(v, r & 0xFFFFu);
    for (int e : kExps) {
      if (!std::isfinite(v)) break;
      const float x = scaled_rn(v, e);
      const uint32_t tx = sr_threshold(x);
      for (uint32_t r : {0u, 0xFFFFu, tx, tx - 1u, tx + 1u, seed >> 16})
        bad_scaled += sr_gpu_form_scaled(v, e2m1_scaled(e), r & 0xFFFFu) != e2m1_sr(x, r & 0xFFFFu);
    }
  });
  std::printf("RTN mismatches %llu, SR mismatches %llu, scaled mismatches %llu\n", (unsigned long long)bad_rtn,
              (unsigned long long)bad_sr, (unsigned long long)bad_scaled);
  return bad_rtn || bad_sr || bad_scaled;
}
