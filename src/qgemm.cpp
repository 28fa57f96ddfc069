// qgemm(): quantize two high-precision operands into one scratch buffer, then gemm() them
// (fp4gemm.h). The layout of the buffer: per operand its codes, scales and amax (each 256-byte
// aligned, as the GPU kernels' vector loads need), then gemm()'s own scratch.
#include <initializer_list>
#include <string>

#include "fp4gemm/fp4gemm.h"

namespace fp4gemm {
namespace {

constexpr size_t kAlign = 256;
size_t aligned(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

struct Slots {
  size_t data, scale, amax, end;
  int64_t rows, k;
};

Slots slots(const QGemmInput& in, size_t at, const char* name) {
  if (in.R <= 0 || in.C <= 0) throw std::invalid_argument(std::string(name) + ": empty tensor");
  Slots s{};
  s.rows = in.columnwise ? in.C : in.R;
  s.k = in.columnwise ? in.R : in.C;
  const int64_t bs = block_size(in.cfg.fmt);
  if (in.cfg.fmt != Format::FP4Row && s.k % bs)  // quantize() checks this too; the sizes below need it
    throw std::invalid_argument(std::string(name) + ": K=" + std::to_string(s.k) + " is not a multiple of " +
                                std::to_string(bs));
  const size_t scale_bytes = in.cfg.fmt == Format::FP4Row ? sizeof(float) * size_t(s.rows) : size_t(s.rows * (s.k / bs));
  s.data = at;
  s.scale = s.data + aligned(size_t(s.rows) * size_t(s.k / 2));
  s.amax = s.scale + aligned(scale_bytes);
  s.end = s.amax + aligned(sizeof(float));
  return s;
}

QuantizedIn operand(const QGemmInput& in, const Slots& s, char* base) {
  QuantizedIn q;
  q.fmt = in.cfg.fmt;
  q.scale_rule = in.cfg.scale_rule;
  q.data = reinterpret_cast<const uint8_t*>(base + s.data);
  q.scale = base + s.scale;
  q.global_scale = in.cfg.prescale ? 4.0 / 3.0 : 1.0;
  q.amax = in.cfg.fmt == Format::NVFP4 ? reinterpret_cast<const float*>(base + s.amax) : nullptr;
  q.rows = s.rows;
  q.k = s.k;
  return q;
}

// The GEMM's arguments over operands at `base` (a stand-in address when only sizing).
GemmArgs with_operands(GemmArgs args, const QGemmInput& a, const QGemmInput& b, const Slots& sa, const Slots& sb,
                       char* base) {
  args.a = operand(a, sa, base);
  args.b = operand(b, sb, base);
  return args;
}

}  // namespace

size_t qgemm_workspace_size(const QGemmInput& a, const QGemmInput& b, const GemmArgs& args, bool device) {
  const Slots sa = slots(a, 0, "a"), sb = slots(b, sa.end, "b");
  char* stand_in = reinterpret_cast<char*>(kAlign);  // sizes depend on shapes and formats only
  return sb.end + gemm_workspace_size(with_operands(args, a, b, sa, sb, stand_in), device);
}

void qgemm(const QGemmInput& a, const QGemmInput& b, GemmArgs args, void* workspace, size_t workspace_size,
           bool device, void* stream) {
  const Slots sa = slots(a, 0, "a"), sb = slots(b, sa.end, "b");
  char* base = static_cast<char*>(workspace);
  if (!base) throw std::invalid_argument("workspace: null pointer");
  args = with_operands(args, a, b, sa, sb, base);
  const size_t gemm_bytes = gemm_workspace_size(args, device);
  if (workspace_size < sb.end + gemm_bytes) throw std::invalid_argument("workspace: smaller than qgemm_workspace_size");
  for (const QGemmInput* in : {&a, &b}) {
    const Slots& s = in == &a ? sa : sb;
    QuantizedOut out;
    out.data = reinterpret_cast<uint8_t*>(base + s.data);
    out.scale = base + s.scale;
    out.amax = reinterpret_cast<float*>(base + s.amax);
    const QuantizeConfig* cfg = &in->cfg;
    const bool col = in->columnwise;
    quantize(in->x, in->dtype, in->R, in->C, in->ld, col ? nullptr : cfg, col ? nullptr : &out, col ? cfg : nullptr,
             col ? &out : nullptr, device, stream);
  }
  args.workspace = gemm_bytes ? base + sb.end : nullptr;
  args.workspace_size = gemm_bytes;
  gemm(args, device, stream);
}

}  // namespace fp4gemm
