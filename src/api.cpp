// Argument validation and dispatch: every public entry point checks its arguments here, names the
// one that is wrong, then runs the CPU path or the CUDA kernels.
#include <string>

#include "checks.h"
#include "cpu.h"
#include "fp4gemm/fp4gemm.h"
#ifdef FP4GEMM_WITH_CUDA
#include "cuda_api.h"
#endif
#include "fp4gemm/numerics.h"

namespace fp4gemm {
namespace {

[[noreturn]] void bad(const std::string& arg, const std::string& why) {
  throw std::invalid_argument(arg + ": " + why);
}

const char* fmt_name(Format f) { return f == Format::MXFP4 ? "mxfp4" : f == Format::NVFP4 ? "nvfp4" : "fp4_row"; }

// arg: the argument the quantized dimension belongs to (x of quantize(), d_quant of a GEMM).
void check_config(const QuantizeConfig& cfg, int64_t K, const char* which, const char* arg = "x") {
  const std::string cfg_name = std::string(which) + " config";
  if (int(cfg.fmt) < 0 || int(cfg.fmt) > 2) bad(cfg_name + ".fmt", "unknown format");
  if (!rule_fits_format(cfg.scale_rule, cfg.fmt))
    bad(cfg_name + ".scale_rule", std::string("not a scale rule of ") + fmt_name(cfg.fmt));
  if (cfg.rounding != Rounding::RTN && cfg.rounding != Rounding::SR) bad(cfg_name + ".rounding", "unknown rounding");
  const int g = cfg.hadamard;
  if (g != 0 && g != 16 && g != 32 && g != 64 && g != 128 && g != 256)
    bad(cfg_name + ".hadamard", "block g must be 0 (off) or one of 16, 32, 64, 128, 256, got " + std::to_string(g));
  if (cfg.block_2d && cfg.fmt != Format::NVFP4) bad(cfg_name + ".block_2d", "16x16 blocks exist for nvfp4 only");
  if (cfg.block_2d && g) bad(cfg_name + ".block_2d", "16x16 blocks do not combine with the Hadamard transform");
  const int64_t bs = cfg.fmt == Format::FP4Row ? 16 : block_size(cfg.fmt);
  if (K % bs != 0)
    bad(arg, std::string("the quantized dimension (") + which + ", K=" + std::to_string(K) +
                 ") must be a multiple of " + std::to_string(bs) + " for " + fmt_name(cfg.fmt));
  if (g && K % g != 0)
    bad(arg, std::string("the quantized dimension (") + which + ", K=" + std::to_string(K) +
                 ") must be a multiple of the Hadamard block " + std::to_string(g));
}

void check_out(const QuantizedOut* out, const QuantizeConfig& cfg, const char* which) {
  const std::string n = std::string(which) + " out";
  if (!out) bad(n, "missing output for a requested direction");
  if (!out->data) bad(n + ".data", "null pointer");
  if (!out->scale) bad(n + ".scale", "null pointer");
  if (cfg.fmt == Format::NVFP4 && !out->amax) bad(n + ".amax", "nvfp4 needs an amax output");
  if (cfg.amax_in && cfg.fmt != Format::NVFP4) bad(std::string(which) + " config.amax_in", "only nvfp4 takes a tensor amax");
  if (out->scale_blocked && cfg.fmt == Format::FP4Row) bad(n + ".scale_blocked", "per-row scales have no blocked layout");
  if (out->clip_mask && cfg.scale_rule != ScaleRule::Quest) bad(n + ".clip_mask", "only the quest rule writes a clip mask");
}

void check_operand(const QuantizedIn& q, const char* name) {
  const std::string n(name);
  if (!q.data) bad(n + ".data", "null pointer");
  if (!q.scale) bad(n + ".scale", "null pointer");
  if (q.rows <= 0 || q.k <= 0) bad(n, "empty operand");
  if (q.fmt == Format::NVFP4 && !q.amax) bad(n + ".amax", "nvfp4 operands need their tensor amax");
  if (q.scale_blocked && q.fmt == Format::FP4Row) bad(n + ".scale_blocked", "per-row scales have no blocked layout");
  const int64_t bs = q.fmt == Format::FP4Row ? 16 : block_size(q.fmt);
  if (q.k % bs != 0) bad(n, "K=" + std::to_string(q.k) + " is not a multiple of " + std::to_string(bs));
}

void check_device(bool device) {
  if (device && !cuda_available())
    throw std::runtime_error("fp4gemm: CUDA path requested, but fp4gemm was built without CUDA or no GPU is present");
}

const char* arch_name(GemmPath p) { return p == GemmPath::Sm100FP4 ? "sm_100a" : "sm_120a"; }

// The GPU checks every path shares.
void check_gpu_gemm(const GemmArgs& args) {
  if ((args.a.fmt == Format::NVFP4) != (args.b.fmt == Format::NVFP4))
    bad("b.fmt", std::string("the GPU GEMM takes two nvfp4 operands or two of mxfp4 / fp4_row, got ") +
                     fmt_name(args.a.fmt) + " x " + fmt_name(args.b.fmt));
  if (args.c) bad("c", "the GPU GEMM does not take a C operand yet");
  if (int(args.mma) < 0 || int(args.mma) > 3) bad("mma", "must be auto, fp8, bf16 or fp4");
  const int64_t limit = int64_t(1) << 31;
  if (args.a.rows >= limit || args.b.rows >= limit || args.a.k >= limit)
    bad("a", "M, N and K must each be below 2^31 on the GPU");
  for (auto [q, name] : {std::pair{&args.a, "a.data"}, std::pair{&args.b, "b.data"}})
    if (reinterpret_cast<uintptr_t>(q->data) % 16) bad(name, "must be 16-byte aligned on the GPU");
  const int64_t out_bytes = args.out_dtype == DType::F32 || args.d_quant ? 4 : 2;
  if (args.b.rows * out_bytes % 16)
    bad("b", "N=" + std::to_string(args.b.rows) + " must be a multiple of " + std::to_string(16 / out_bytes) +
                 " for this output dtype on the GPU (16-byte rows for the TMA store)");
}

// What the Blackwell kernels need beyond check_gpu_gemm ("" or the reason).
std::string native_rules(const GemmArgs& args) {
  if (args.a.k % 32)
    return "a: K=" + std::to_string(args.a.k) +
           " must be a multiple of 32 for the Blackwell kernels (16-byte rows of E2M1 codes for TMA)";
  for (auto [q, name] : {std::pair{&args.a, "a.scale"}, std::pair{&args.b, "b.scale"}})
    if (q->scale_blocked && reinterpret_cast<uintptr_t>(q->scale) % 16)
      return std::string(name) + ": blocked scales must be 16-byte aligned for the Blackwell kernels (TMA)";
  return "";
}

// Checks of every path, CPU included.
void check_shapes(const GemmArgs& args) {
  check_operand(args.a, "a");
  check_operand(args.b, "b");
  if (args.a.k != args.b.k)
    bad("b", "K=" + std::to_string(args.b.k) + " does not match a's K=" + std::to_string(args.a.k));
  if (int(args.out_dtype) < 0 || int(args.out_dtype) > 2) bad("out_dtype", "must be float32, float16 or bfloat16");
  if (args.d_quant) {
    if (args.c) bad("d_quant", "a quantized D does not take a C operand");
    check_config(*args.d_quant, args.b.rows, "d_quant, N", "d_quant");
    check_out(args.d_out, *args.d_quant, "d_quant");
  }
}

void check_gemm_args(const GemmArgs& args, bool device) {
  check_shapes(args);
  if (!device) return;
  check_device(device);
  check_gpu_gemm(args);
  const int cc = cuda_capability();
  const GemmPath path = gemm_path(args, cc / 10, cc % 10);
  if (is_native(path)) {
    const std::string why = native_rules(args);
    if (!why.empty()) throw std::invalid_argument(why);
  }
}

#ifdef FP4GEMM_WITH_CUDA
cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }
#define FP4_ON_DEVICE(device, call) \
  if (device) { call; return; }
#define FP4_ON_DEVICE_RETURN(device, value) \
  if (device) return value;
#else
#define FP4_ON_DEVICE(device, call)
#define FP4_ON_DEVICE_RETURN(device, value)
#endif

}  // namespace

int block_size(Format fmt) {
  return fmt == Format::MXFP4 ? num::kMxBlock : fmt == Format::NVFP4 ? num::kNvBlock : 0;
}

ScaleRule default_scale_rule(Format fmt) {
  return fmt == Format::MXFP4 ? ScaleRule::Floor : fmt == Format::NVFP4 ? ScaleRule::TE : ScaleRule::Pow2;
}

bool rule_fits_format(ScaleRule r, Format fmt) {
  switch (fmt) {
    case Format::MXFP4: return r == ScaleRule::Floor || r == ScaleRule::RCeil || r == ScaleRule::Even || r == ScaleRule::Quest;
    case Format::NVFP4: return r == ScaleRule::TE || r == ScaleRule::Torchao;
    case Format::FP4Row: return r == ScaleRule::Pow2 || r == ScaleRule::Amax;
  }
  return false;
}

void check_quantize(const void* x, DType dtype, int64_t R, int64_t C, int64_t ld, const QuantizeConfig* row_cfg,
                    const QuantizedOut* row_out, const QuantizeConfig* col_cfg, const QuantizedOut* col_out,
                    bool device) {
  if (!x) bad("x", "null pointer");
  if (int(dtype) < 0 || int(dtype) > 2) bad("x", "dtype must be float32, float16 or bfloat16");
  if (R <= 0 || C <= 0) bad("x", "empty tensor (" + std::to_string(R) + " x " + std::to_string(C) + ")");
  if (ld < C) bad("ld", "row stride " + std::to_string(ld) + " is smaller than the row length " + std::to_string(C));
  if (!row_cfg && !col_cfg) bad("rowwise/columnwise", "at least one output direction is needed");
  if (row_cfg) { check_config(*row_cfg, C, "rowwise"); check_out(row_out, *row_cfg, "rowwise"); }
  if (col_cfg) { check_config(*col_cfg, R, "columnwise"); check_out(col_out, *col_cfg, "columnwise"); }
  check_device(device);
}

void quantize(const void* x, DType dtype, int64_t R, int64_t C, int64_t ld,
              const QuantizeConfig* row_cfg, const QuantizedOut* row_out,
              const QuantizeConfig* col_cfg, const QuantizedOut* col_out,
              bool device, void* stream) {
  check_quantize(x, dtype, R, C, ld, row_cfg, row_out, col_cfg, col_out, device);
  FP4_ON_DEVICE(device, cuda::quantize(x, dtype, R, C, ld, row_cfg, row_out, col_cfg, col_out, as_stream(stream)));
  (void)stream;
  if (row_cfg) cpu::quantize_direction(x, dtype, R, C, ld, Direction::Rowwise, *row_cfg, *row_out);
  if (col_cfg) cpu::quantize_direction(x, dtype, R, C, ld, Direction::Columnwise, *col_cfg, *col_out);
}

void dequantize(const QuantizedIn& q, float* out, bool device, void* stream) {
  check_operand(q, "q");
  if (!out) bad("out", "null pointer");
  check_device(device);
  FP4_ON_DEVICE(device, cuda::dequantize(q, out, as_stream(stream)));
  (void)stream;
  cpu::dequantize(q, out);
}

size_t gemm_workspace_size(const GemmArgs& args, bool device) {
  check_gemm_args(args, device);
  FP4_ON_DEVICE_RETURN(device, cuda::gemm_workspace_size(args));
  return 0;
}

void check_gemm(const GemmArgs& args, bool device) {
  check_gemm_args(args, device);
  if (!args.d && !args.d_quant) bad("d", "null pointer");
}

void gemm(const GemmArgs& args, bool device, void* stream) {
  check_gemm(args, device);
  FP4_ON_DEVICE(device, cuda::gemm(args, as_stream(stream)));
  (void)stream;
  cpu::gemm(args);
}

void hadamard_transform(const void* x, DType dtype, int64_t rows, int64_t K, int64_t ld, int g,
                        const uint32_t signs[8], float* out, bool device, void* stream) {
  if (!x) bad("x", "null pointer");
  if (!out) bad("out", "null pointer");
  if (rows <= 0 || K <= 0) bad("x", "empty tensor");
  if (ld < K) bad("ld", "row stride smaller than the row length");
  if (g != 16 && g != 32 && g != 64 && g != 128 && g != 256) bad("g", "must be one of 16, 32, 64, 128, 256");
  if (K % g != 0) bad("x", "last dimension K=" + std::to_string(K) + " is not a multiple of g=" + std::to_string(g));
  check_device(device);
  FP4_ON_DEVICE(device, cuda::hadamard_transform(x, dtype, rows, K, ld, g, signs, out, as_stream(stream)));
  (void)stream;
  cpu::hadamard_transform(x, dtype, rows, K, ld, g, signs, out);
}

GemmPath gemm_path(const GemmArgs& args, int cc_major, int cc_minor) {
  if (int(args.mma) < 0 || int(args.mma) > 3) bad("mma", "must be auto, fp8, bf16 or fp4");
  const std::string cc = std::to_string(cc_major) + "." + std::to_string(cc_minor);
  const bool nv = args.a.fmt == Format::NVFP4;
  if (cc_major == 9 && cc_minor == 0) {
    if (args.mma == Mma::FP4)
      bad("mma", "'fp4' runs the Blackwell block-scaled FP4 kernels (compute capability 10.0 or 12.0); this GPU is " +
                     cc + " (Hopper): use 'auto', 'fp8' or 'bf16'");
    if (args.mma == Mma::FP8 && nv)
      bad("mma", "nvfp4 operands need bf16 tensor cores: q * s_b has up to 6 significant bits, E4M3 holds 4");
    return nv || args.mma == Mma::BF16 ? GemmPath::Sm90BF16 : GemmPath::Sm90FP8;
  }
  if ((cc_major == 10 || cc_major == 12) && cc_minor == 0) {
    if (args.mma == Mma::FP8 || args.mma == Mma::BF16)
      bad("mma", std::string("'") + (args.mma == Mma::FP8 ? "fp8" : "bf16") +
                     "' selects the Hopper (sm_90a) emulation kernels, which cannot run on compute capability " + cc +
                     ": use 'auto' or 'fp4'");
    return cc_major == 10 ? GemmPath::Sm100FP4 : GemmPath::Sm120FP4;
  }
  bad("a", "on a GPU of compute capability " + cc +
               ", for which fp4gemm has no GEMM kernels (9.0: Hopper emulation; 10.0: sm_100a and 12.0: sm_120a "
               "native FP4); move the operands to the CPU for the reference GEMM");
}

std::string native_gemm_check(const GemmArgs& args, GemmPath path) {
  if (!is_native(path)) bad("path", "not a Blackwell path (Sm100FP4 or Sm120FP4)");
  try {
    check_shapes(args);
    check_gpu_gemm(args);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  std::string why = native_rules(args);
  if (why.empty() && built_with_path(path)) {
    why = native_cutlass_can_implement(args, path);
    if (!why.empty()) why = std::string("a: CUTLASS ") + arch_name(path) + " kernel cannot run this problem: " + why;
  }
  return why;
}

std::string native_cutlass_can_implement(const GemmArgs& args, GemmPath path) {
  if (!is_native(path)) bad("path", "not a Blackwell path (Sm100FP4 or Sm120FP4)");
  if (!built_with_path(path))
    throw std::runtime_error(std::string("fp4gemm: this build has no ") + arch_name(path) + " GEMM kernels");
#ifdef FP4GEMM_WITH_CUDA
  return cuda::native_can_implement(args, path);
#else
  (void)args;
  return "";  // unreachable: built_with_path is false without CUDA
#endif
}

std::vector<int64_t> native_scale_offsets(GemmPath path, Format fmt, int64_t rows, int64_t k, bool operand_b) {
  if (!is_native(path)) bad("path", "not a Blackwell path (Sm100FP4 or Sm120FP4)");
  if (fmt == Format::FP4Row) bad("fmt", "per-row scales have no blocked layout");
  if (rows <= 0 || k <= 0 || k % block_size(fmt)) bad("k", "rows and k must be positive, k a multiple of the block");
  if (!built_with_path(path))
    throw std::runtime_error(std::string("fp4gemm: this build has no ") + arch_name(path) + " GEMM kernels");
#ifdef FP4GEMM_WITH_CUDA
  return cuda::native_scale_offsets(path, fmt, rows, k, operand_b);
#else
  (void)operand_b;
  return {};  // unreachable: built_with_path is false without CUDA
#endif
}

bool built_with_path(GemmPath path) {
  switch (path) {
#ifdef FP4GEMM_WITH_CUDA
    case GemmPath::Sm90FP8:
    case GemmPath::Sm90BF16: return true;
#endif
#ifdef FP4GEMM_WITH_SM100
    case GemmPath::Sm100FP4: return true;
#endif
#ifdef FP4GEMM_WITH_SM120
    case GemmPath::Sm120FP4: return true;
#endif
    default: return false;
  }
}

void hadamard_signs_from_seed(uint64_t seed, uint32_t out[8]) { num::hadamard_sign_bits(seed, out); }

#ifndef FP4GEMM_WITH_CUDA
bool cuda_available() { return false; }
int cuda_capability() { return 0; }
#endif

}  // namespace fp4gemm
