// qgemm(): quantize two high-precision operands into one scratch buffer, then gemm() them
// (fp4gemm.h). The layout of the buffer (scratch.h): per operand its codes, scales and amax, then
// gemm()'s own scratch.
#include <initializer_list>
#include <stdexcept>

#include "fp4gemm/fp4gemm.h"
#include "fp4gemm/numerics.h"
#include "scratch.h"

namespace fp4gemm {
namespace {

struct Slots {
  size_t data, scale, amax;
  int64_t rows, k;
};

// Where one quantized operand goes. Its shape is checked later, by gemm_workspace_size (check_operand).
Slots slots(const QGemmInput& in, ScratchLayout& l) {
  Slots s{};
  s.rows = in.columnwise ? in.C : in.R;
  s.k = in.columnwise ? in.R : in.C;
  const size_t scales = in.cfg.fmt == Format::FP4Row ? sizeof(float) * size_t(s.rows)
                                                     : size_t(s.rows * (s.k / block_size(in.cfg.fmt)));
  s.data = l.take(size_t(s.rows) * size_t(s.k / 2));
  s.scale = l.take(scales);
  s.amax = l.take(sizeof(float));
  return s;
}

QuantizedIn operand(const QGemmInput& in, const Slots& s, char* base) {
  QuantizedIn q;
  q.fmt = in.cfg.fmt;
  q.scale_rule = in.cfg.scale_rule;
  q.data = reinterpret_cast<const uint8_t*>(base + s.data);
  q.scale = base + s.scale;
  q.global_scale = in.cfg.prescale ? num::kPrescaleUndo : 1.0;
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
  ScratchLayout l;
  const Slots sa = slots(a, l), sb = slots(b, l);
  char* stand_in = reinterpret_cast<char*>(ScratchLayout::kAlign);  // sizes depend on shapes and formats only
  return l.end + gemm_workspace_size(with_operands(args, a, b, sa, sb, stand_in), device);
}

void qgemm(const QGemmInput& a, const QGemmInput& b, GemmArgs args, void* workspace, size_t workspace_size,
           bool device, void* stream) {
  ScratchLayout l;
  const Slots sa = slots(a, l), sb = slots(b, l);
  char* base = static_cast<char*>(workspace);
  if (!base) throw std::invalid_argument("workspace: null pointer");
  args = with_operands(args, a, b, sa, sb, base);
  const size_t gemm_bytes = gemm_workspace_size(args, device);
  if (workspace_size < l.end + gemm_bytes) throw std::invalid_argument("workspace: smaller than qgemm_workspace_size");
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
  args.workspace = gemm_bytes ? base + l.end : nullptr;
  args.workspace_size = gemm_bytes;
  gemm(args, device, stream);
}

}  // namespace fp4gemm
