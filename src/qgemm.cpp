// qgemm(): quantize two high-precision operands into one scratch buffer, then gemm() them
// (fp4gemm.h). The layout of the buffer (scratch.h): per operand its codes, scales and amax, on the
// GPU the chunk info of A's operand, then gemm()'s own scratch.
// On the Hopper FP8 path A's quantizer writes gemm()'s folded A itself where it can (cuda_api.h
// OperandAOut): the same bytes without the fold's pass over A.
#include <cstdlib>
#include <cstring>
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

QuantizedOut output(const Slots& s, char* base) {
  QuantizedOut out;
  out.data = reinterpret_cast<uint8_t*>(base + s.data);
  out.scale = base + s.scale;
  out.amax = reinterpret_cast<float*>(base + s.amax);
  return out;
}

#ifdef FP4GEMM_WITH_CUDA
// Whether A may be written by its quantizer (cuda_api.h OperandAOut): GPU, MXFP4, rowwise, K in
// whole chunks; FP4GEMM_FOLD_A=1 turns it off (the fold's A/B benchmarks). gemm() may still say no.
bool may_write_a(const QGemmInput& a, bool device) {
  const char* fold = std::getenv("FP4GEMM_FOLD_A");
  return device && a.cfg.fmt == Format::MXFP4 && !a.columnwise && a.C % cuda::kOperandChunk == 0 &&
         !(fold && std::strcmp(fold, "0") != 0);
}

// Its chunk info: a uint16 per chunk of each row.
size_t chunk_info_slot(const QGemmInput& a, ScratchLayout& l, bool device) {
  return may_write_a(a, device) ? l.take(sizeof(uint16_t) * size_t(a.R) * size_t(a.C / cuda::kOperandChunk)) : l.end;
}

// A quantized by the kernel that writes gemm()'s operand too, checked as quantize() checks it; the
// operand, or data null where that does not apply (nothing ran: quantize() and gemm()'s fold then).
cuda::OperandAOut write_a(const QGemmInput& a, const QuantizedOut& out, const GemmArgs& args, uint16_t* info,
                          bool device, void* stream) {
  cuda::OperandAOut op;
  if (!may_write_a(a, device) || !(op.data = cuda::gemm_operand_a(args, args.workspace))) return {};
  op.chunk_info = info;
  check_quantize(a.x, a.dtype, a.R, a.C, a.ld, &a.cfg, &out, nullptr, nullptr, true);
  return cuda::quantize_operand_a(a.x, a.dtype, a.R, a.C, a.ld, a.cfg, out, op, static_cast<cudaStream_t>(stream))
             ? op : cuda::OperandAOut{};
}
#else
size_t chunk_info_slot(const QGemmInput&, ScratchLayout& l, bool) { return l.end; }
#endif

}  // namespace

size_t qgemm_workspace_size(const QGemmInput& a, const QGemmInput& b, const GemmArgs& args, bool device) {
  ScratchLayout l;
  const Slots sa = slots(a, l), sb = slots(b, l);
  chunk_info_slot(a, l, device);
  char* stand_in = reinterpret_cast<char*>(ScratchLayout::kAlign);  // sizes depend on shapes and formats only
  return l.end + gemm_workspace_size(with_operands(args, a, b, sa, sb, stand_in), device);
}

void qgemm(const QGemmInput& a, const QGemmInput& b, GemmArgs args, void* workspace, size_t workspace_size,
           bool device, void* stream) {
  ScratchLayout l;
  const Slots sa = slots(a, l), sb = slots(b, l);
  const size_t info = chunk_info_slot(a, l, device);
  char* base = static_cast<char*>(workspace);
  if (!base) throw std::invalid_argument("workspace: null pointer");
  args = with_operands(args, a, b, sa, sb, base);
  const size_t gemm_bytes = gemm_workspace_size(args, device);
  if (workspace_size < l.end + gemm_bytes) throw std::invalid_argument("workspace: smaller than qgemm_workspace_size");
  args.workspace = gemm_bytes ? base + l.end : nullptr;
  args.workspace_size = gemm_bytes;
#ifdef FP4GEMM_WITH_CUDA
  const cuda::OperandAOut op = write_a(a, output(sa, base), args, reinterpret_cast<uint16_t*>(base + info), device, stream);
  const bool a_written = op.data != nullptr;
#else
  const bool a_written = (void(info), false);
#endif
  for (const QGemmInput* in : {&a, &b}) {
    if (in == &a && a_written) continue;
    const QuantizedOut out = output(in == &a ? sa : sb, base);
    const QuantizeConfig* cfg = &in->cfg;
    const bool col = in->columnwise;
    quantize(in->x, in->dtype, in->R, in->C, in->ld, col ? nullptr : cfg, col ? nullptr : &out, col ? cfg : nullptr,
             col ? &out : nullptr, device, stream);
  }
#ifdef FP4GEMM_WITH_CUDA
  if (a_written) {
    check_gemm(args, true);
    return cuda::gemm(args, static_cast<cudaStream_t>(stream), &op);
  }
#endif
  gemm(args, device, stream);
}

}  // namespace fp4gemm
