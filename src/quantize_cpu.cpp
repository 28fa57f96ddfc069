// CPU quantization: the reference-speed path of every mode, built from the shared numerics.h steps.
// One direction at a time: gather the rows of the quantized view into fp32, RHT, tensor amax
// (NVFP4), then block scales and codes.
#include <algorithm>
#include <vector>

#include "cpu.h"
#include "fp4gemm/numerics.h"

namespace fp4gemm::cpu {
namespace {

using namespace num;

float load(const void* x, DType dt, int64_t i) {
  switch (dt) {
    case DType::F32: return static_cast<const float*>(x)[i];
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(x)[i]);
    default: return bf16_to_f32(static_cast<const uint16_t*>(x)[i]);
  }
}

// fp32 copy of the quantized view [rows, K], with the Hadamard transform applied per g-block.
std::vector<float> gather(const void* x, DType dt, int64_t R, int64_t C, int64_t ld, Direction dir,
                          const QuantizeConfig& cfg) {
  const int64_t rows = dir == Direction::Rowwise ? R : C, K = dir == Direction::Rowwise ? C : R;
  std::vector<float> y(size_t(rows * K));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < K; ++k)
      y[size_t(r * K + k)] = dir == Direction::Rowwise ? load(x, dt, r * ld + k) : load(x, dt, k * ld + r);
  if (cfg.hadamard)
    for (int64_t i = 0; i < rows * K; i += cfg.hadamard) hadamard_block(&y[size_t(i)], cfg.hadamard, cfg.hadamard_signs);
  return y;
}

float amax_of(const float* v, int64_t n) {
  float a = 0.0f;
  for (int64_t i = 0; i < n; ++i) a = amax_update(a, v[i]);
  return a;
}

}  // namespace

void quantize_direction(const void* x, DType dt, int64_t R, int64_t C, int64_t ld, Direction dir,
                        const QuantizeConfig& cfg, const QuantizedOut& out) {
  const int64_t rows = dir == Direction::Rowwise ? R : C, K = dir == Direction::Rowwise ? C : R;
  const std::vector<float> y = gather(x, dt, R, C, ld, dir, cfg);
  const int64_t bs = cfg.fmt == Format::FP4Row ? K : block_size(cfg.fmt), nb = K / bs;

  Codec codec{cfg.fmt, cfg.scale_rule, cfg.rounding, cfg.prescale, 0.0f};
  if (cfg.fmt == Format::NVFP4) {
    float a = cfg.amax_in ? *cfg.amax_in : amax_of(y.data(), rows * K);
    *out.amax = a;
    codec.tensor = cfg.scale_rule == ScaleRule::TE ? nv_encode_scale(a) : nv_torchao_tensor_scale(a);
  }

  // Block amaxes: [rows, nb]; 2D NVFP4 replaces each by the max over its 16-row tile.
  std::vector<float> bamax(size_t(rows * nb));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t b = 0; b < nb; ++b) bamax[size_t(r * nb + b)] = amax_of(&y[size_t(r * K + b * bs)], bs);
  if (cfg.block_2d)
    for (int64_t r0 = 0; r0 < rows; r0 += kNvBlock)
      for (int64_t b = 0; b < nb; ++b) {
        const int64_t r1 = std::min(rows, r0 + kNvBlock);
        float a = 0.0f;
        for (int64_t r = r0; r < r1; ++r) a = amax_update(a, bamax[size_t(r * nb + b)]);
        for (int64_t r = r0; r < r1; ++r) bamax[size_t(r * nb + b)] = a;
      }

  const Stream stream = dir == Direction::Rowwise ? Stream::Rowwise : Stream::Columnwise;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < nb; ++b) {
      const float* v = &y[size_t(r * K + b * bs)];
      const float amax = bamax[size_t(r * nb + b)];
      const uint32_t s = cfg.scale_rule == ScaleRule::Quest ? quest_scale_byte(v, amax) : codec.scale_from_amax(amax);
      if (cfg.fmt == Format::FP4Row) static_cast<float*>(out.scale)[r] = bits_f32(s);
      else static_cast<uint8_t*>(out.scale)[out.scale_blocked ? blocked_offset(r, b, nb) : r * nb + b] = uint8_t(s);
      const bool nan_block = codec.scale_is_nan(s);
      const float mult = codec.multiplier(s);
      for (int64_t i = 0; i < bs; i += 8) {
        const int64_t p = r * K + b * bs + i;  // logical position in the quantized view (p % 8 == 0)
        const U32x4 bits = cfg.rounding == Rounding::SR ? sr_bits8(cfg.seed, cfg.offset, stream, uint64_t(p) >> 3) : U32x4{};
        for (int j = 0; j < 8; ++j) {
          const float sv = nan_block ? 0.0f : codec.scaled(v[i + j], mult, s);
          const uint8_t code = nan_block ? 0 : codec.encode(sv, sr_number(bits, j));
          uint8_t& byte = out.data[(p + j) >> 1];
          byte = ((p + j) & 1) ? uint8_t((byte & 0x0F) | (code << 4)) : uint8_t((byte & 0xF0) | code);
          if (out.clip_mask) {
            uint8_t& m = out.clip_mask[(p + j) >> 3];
            const bool clipped = !nan_block && abs_f(sv) >= kE2M1Max;
            m = uint8_t(clipped ? (m | (1u << ((p + j) & 7))) : (m & ~(1u << ((p + j) & 7))));
          }
        }
      }
    }
  }
}

void hadamard_transform(const void* x, DType dt, int64_t rows, int64_t K, int64_t ld, int g, const uint32_t signs[8],
                        float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < K; ++k) out[r * K + k] = load(x, dt, r * ld + k);
    for (int64_t k = 0; k < K; k += g) hadamard_block(&out[r * K + k], g, signs);
  }
}

}  // namespace fp4gemm::cpu
