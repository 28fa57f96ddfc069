// qgemm(): quantize two high-precision operands into one scratch buffer, then gemm() them
// (fp4gemm.h). The layout of the buffer (scratch.h): per operand its codes, scales and amax, on the
// GPU the chunk info of A's operand, then gemm()'s own scratch.
// On the Hopper FP8 path A's quantizer writes gemm()'s folded A itself where it can (cuda_api.h
// OperandAOut): the same bytes without the fold's pass over A.
#include <cstdlib>
#include <initializer_list>
#include <stdexcept>

#include "checks.h"
#include "fp4gemm/fp4gemm.h"
#include "fp4gemm/numerics.h"
#include "scratch.h"
#ifdef FP4GEMM_WITH_CUDA
#include "cuda_api.h"
#endif

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

// A's chunk info (cuda_api.h OperandAOut: a uint16 per 128 K of each row), GPU only.
size_t chunk_info_slot(const Slots& sa, ScratchLayout& l, bool device) {
  return device ? l.take(sizeof(uint16_t) * size_t(sa.rows) * size_t(sa.k / 128)) : l.end;
}

#ifdef FP4GEMM_WITH_CUDA
// A quantized straight into gemm()'s operand (checked as quantize() checks it); false where that
// does not apply, and nothing ran.
bool quantize_operand_a(const QGemmInput& a, const QuantizedOut& out, const GemmArgs& args, void* gemm_ws,
                        uint16_t* chunk_info, void* stream) {
  if (a.columnwise || !gemm_ws || std::getenv("FP4GEMM_FOLD_A")) return false;
  const cuda::OperandAOut op{cuda::gemm_operand_a(args, gemm_ws), chunk_info};
  if (!op.data) return false;
  check_quantize(a.x, a.dtype, a.R, a.C, a.ld, &a.cfg, &out, nullptr, nullptr, true);
  return cuda::quantize_operand_a(a.x, a.dtype, a.R, a.C, a.ld, a.cfg, out, op, static_cast<cudaStream_t>(stream));
}
#endif

}  // namespace

size_t qgemm_workspace_size(const QGemmInput& a, const QGemmInput& b, const GemmArgs& args, bool device) {
  ScratchLayout l;
  const Slots sa = slots(a, l), sb = slots(b, l);
  chunk_info_slot(sa, l, device);
  char* stand_in = reinterpret_cast<char*>(ScratchLayout::kAlign);  // sizes depend on shapes and formats only
  return l.end + gemm_workspace_size(with_operands(args, a, b, sa, sb, stand_in), device);
}

void qgemm(const QGemmInput& a, const QGemmInput& b, GemmArgs args, void* workspace, size_t workspace_size,
           bool device, void* stream) {
  ScratchLayout l;
  const Slots sa = slots(a, l), sb = slots(b, l);
  const size_t info = chunk_info_slot(sa, l, device);
  char* base = static_cast<char*>(workspace);
  if (!base) throw std::invalid_argument("workspace: null pointer");
  args = with_operands(args, a, b, sa, sb, base);
  const size_t gemm_bytes = gemm_workspace_size(args, device);
  if (workspace_size < l.end + gemm_bytes) throw std::invalid_argument("workspace: smaller than qgemm_workspace_size");
  args.workspace = gemm_bytes ? base + l.end : nullptr;
  args.workspace_size = gemm_bytes;
  bool a_written = false;
  for (const QGemmInput* in : {&a, &b}) {
    const Slots& s = in == &a ? sa : sb;
    QuantizedOut out;
    out.data = reinterpret_cast<uint8_t*>(base + s.data);
    out.scale = base + s.scale;
    out.amax = reinterpret_cast<float*>(base + s.amax);
#ifdef FP4GEMM_WITH_CUDA
    if (device && in == &a &&
        (a_written = quantize_operand_a(a, out, args, args.workspace, reinterpret_cast<uint16_t*>(base + info), stream)))
      continue;
#endif
    const QuantizeConfig* cfg = &in->cfg;
    const bool col = in->columnwise;
    quantize(in->x, in->dtype, in->R, in->C, in->ld, col ? nullptr : cfg, col ? nullptr : &out, col ? cfg : nullptr,
             col ? &out : nullptr, device, stream);
  }
#ifdef FP4GEMM_WITH_CUDA
  if (a_written) {
    check_gemm(args, true);
    const cuda::OperandAOut op{cuda::gemm_operand_a(args, args.workspace), reinterpret_cast<uint16_t*>(base + info)};
    return cuda::gemm(args, static_cast<cudaStream_t>(stream), &op);
  }
#endif
  (void)info;
  gemm(args, device, stream);
}

}  // namespace fp4gemm
