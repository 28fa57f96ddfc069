// fp4gemm public C++ API: raw pointers, shapes, strides and a stream. No torch, no pybind11.
// Errors are std::invalid_argument (bad argument; the message names it) or std::runtime_error.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace fp4gemm {

enum class Format : int { MXFP4 = 0, NVFP4 = 1, FP4Row = 2 };
// Floor/RCeil/Even/Quest: MXFP4. TE/Torchao: NVFP4. Pow2/Amax: per-row FP4.
enum class ScaleRule : int { Floor = 0, RCeil = 1, Even = 2, Quest = 3, TE = 4, Torchao = 5, Pow2 = 6, Amax = 7 };
enum class Rounding : int { RTN = 0, SR = 1 };
enum class DType : int { F32 = 0, F16 = 1, BF16 = 2 };
// Which way the blocks run: along the last dimension of the 2D input view (rowwise), or along the
// first (columnwise: the output is the quantization of the transpose, as the wgrad GEMM needs).
enum class Direction : int { Rowwise = 0, Columnwise = 1 };
// Tensor-core operand type of the GPU GEMM (SPEC.md 5), which also picks the kernel family.
// Hopper (compute capability 9.0) emulates FP4 exactly: FP8 or BF16 operands with the block scales
// folded in. FP8 runs at FP8 speed; its accumulation is promoted to fp32 every 128 K, and inside those
// chunks Hopper's FP8 accumulator keeps fewer bits than fp32 (docs/numerics.md). BF16 holds every
// folded value exactly and accumulates in fp32, at BF16 speed.
// FP4: Blackwell's block-scaled FP4 tensor cores on the operands as quantized (10.0: sm_100a,
// 12.0: sm_120a). Auto: FP4 on Blackwell; on Hopper FP8 for mxfp4 / fp4_row, BF16 for nvfp4.
enum class Mma : int { Auto = 0, FP8 = 1, BF16 = 2, FP4 = 3 };
// The GPU GEMM implementations (cuda/gemm_sm90*, cuda/gemm_sm100.cu, cuda/gemm_sm120.cu).
enum class GemmPath : int { Sm90FP8 = 0, Sm90BF16 = 1, Sm100FP4 = 2, Sm120FP4 = 3 };
// The Blackwell paths: native block-scaled FP4 tensor cores.
inline bool is_native(GemmPath p) { return p == GemmPath::Sm100FP4 || p == GemmPath::Sm120FP4; }

// Elements per scale block along K (K = the whole row for per-row FP4).
int block_size(Format fmt);
// Default and admissible scale rules for a format.
ScaleRule default_scale_rule(Format fmt);
bool rule_fits_format(ScaleRule rule, Format fmt);

// How one output (rowwise or columnwise) of a tensor is quantized.
struct QuantizeConfig {
  Format fmt = Format::MXFP4;
  ScaleRule scale_rule = ScaleRule::Floor;
  Rounding rounding = Rounding::RTN;
  bool prescale = false;          // quantize (3/4)x; global_scale then carries 4/3 (Tseng et al.)
  bool block_2d = false;          // NVFP4 only: one block amax per 16x16 tile (weights)
  int hadamard = 0;               // RHT block g in {16, 32, 64, 128, 256}; 0 = off
  uint32_t hadamard_signs[8] = {};  // bit i set: sign -1 on element i of each g-block
  uint64_t seed = 0, offset = 0;  // SR random stream (Philox key and counter offset)
  const float* amax_in = nullptr; // NVFP4: tensor amax to use (in x's memory space); null = compute it
};

// Where one quantized output goes. rows x K is the quantized view: [R, C] rowwise, [C, R] columnwise.
struct QuantizedOut {
  uint8_t* data = nullptr;        // [rows, K/2], two E2M1 codes per byte, element 2i in the low nibble
  void* scale = nullptr;          // MX: uint8 E8M0 [rows, K/32]; NV: uint8 E4M3 [rows, K/16]; row: fp32 [rows]
  float* amax = nullptr;          // NVFP4: 1 float, the tensor amax used (computed unless given)
  uint8_t* clip_mask = nullptr;   // Quest only (optional): [rows, K/8] bits, bit set = |x/s| >= 6 (clipped)
  bool scale_blocked = false;     // MX/NV: write scales in the 128x4 blocked layout (blocked_size bytes,
                                  // padding left as the caller initialized it: zero it first)
};

// A quantized operand as the GEMM reads it (rows x K, rowwise along K).
struct QuantizedIn {
  Format fmt = Format::MXFP4;
  ScaleRule scale_rule = ScaleRule::Floor;  // NVFP4: selects the TE or torchao decode order
  const uint8_t* data = nullptr;
  const void* scale = nullptr;
  double global_scale = 1.0;      // tensor-level factor other than NVFP4's amax: 4/3 with prescale
  const float* amax = nullptr;    // NVFP4: the tensor amax (1 float, in the operand's memory space)
  int64_t rows = 0, k = 0;
  bool scale_blocked = false;     // MX/NV: scales in the 128x4 blocked layout (blocked_size bytes)
};

// Quantize the 2D view x[R, C] (row stride ld elements, unit column stride) of dtype `dtype`.
// row_cfg/row_out and col_cfg/col_out may each be null; at least one must be given.
// device: false = CPU path (stream ignored); true = CUDA kernels on `stream`.
void quantize(const void* x, DType dtype, int64_t R, int64_t C, int64_t ld,
              const QuantizeConfig* row_cfg, const QuantizedOut* row_out,
              const QuantizeConfig* col_cfg, const QuantizedOut* col_out,
              bool device, void* stream);

// Dequantize one operand to fp32 [rows, K] (includes global_scale).
void dequantize(const QuantizedIn& q, float* out, bool device, void* stream);

// D[M, N] = alpha * (A^ . B^T) [+ bias[N]] [+ beta * C[M, N]]  (A^: M x K, B^: N x K dequantized)
// CPU: float64 sums (exact) or sequential fp32 sums. GPU (Hopper): tensor cores on the folded
// operands of SPEC.md 5 with fp32 accumulation, an exact fixup for rows outside the FP8 window,
// and a float64 epilogue rounded once; both operands in the FP8 family (mxfp4, fp4_row) or both nvfp4.
struct GemmArgs {
  QuantizedIn a, b;
  double alpha = 1.0;
  const float* bias = nullptr;    // fp32 [N] or null
  const float* c = nullptr;       // fp32 [M, N] or null (CPU only for now)
  double beta = 0.0;
  void* d = nullptr;              // [M, N] row-major, ldd = N
  DType out_dtype = DType::F32;
  bool fp32_accumulate = false;   // CPU: sequential fp32 sums instead of float64 (exact) sums
  Mma mma = Mma::Auto;            // GPU: tensor-core operand type
  void* workspace = nullptr;      // GPU scratch of gemm_workspace_size bytes; null: allocated stream-ordered
  size_t workspace_size = 0;
  // D quantized (blocks along N) instead of written to d in out_dtype: the bytes of quantize() of
  // this GEMM's fp32 D [M, N] (rowwise, K = N) with d_quant into d_out; d and out_dtype are unused.
  // Hopper fuses it into the epilogue for mxfp4, and for nvfp4 with d_quant->amax_in given
  // (hadamard <= 128, no block_2d); otherwise, and on Blackwell, two passes. Scratch includes an
  // fp32 [M, N] (docs/kernels.md).
  const QuantizeConfig* d_quant = nullptr;
  const QuantizedOut* d_out = nullptr;
};
// Bytes of GPU scratch gemm() needs for these shapes and formats (0 on the CPU path).
size_t gemm_workspace_size(const GemmArgs& args, bool device);
void gemm(const GemmArgs& args, bool device, void* stream);

// One operand of qgemm(): the high-precision 2D view x[R, C] of quantize(), quantized along C
// (rowwise: an R x C operand) or along R (columnwise: the C x R operand, x transposed).
struct QGemmInput {
  const void* x = nullptr;
  DType dtype = DType::BF16;
  int64_t R = 0, C = 0, ld = 0;
  bool columnwise = false;
  QuantizeConfig cfg;
};
// D = gemm(quantize(a), quantize(b)) in one call, the quantized operands kept in `workspace`
// (qgemm_workspace_size bytes, then gemm()'s own scratch): one host round trip and one allocation
// where the two-step path makes three and about ten (the training layer's backward GEMMs).
// args carries alpha, bias, d, out_dtype, fp32_accumulate and mma; its operands are filled in here.
// The bytes equal quantize() + gemm() with the same configurations. On Hopper's FP8 path an MXFP4
// rowwise A is quantized straight into the GEMM's operand form (no fold pass over A).
size_t qgemm_workspace_size(const QGemmInput& a, const QGemmInput& b, const GemmArgs& args, bool device);
void qgemm(const QGemmInput& a, const QGemmInput& b, GemmArgs args, void* workspace, size_t workspace_size,
           bool device, void* stream);

// The GPU GEMM that runs these arguments on a device of compute capability major.minor: 9.0 the
// Hopper emulation (Sm90FP8 / Sm90BF16 by mma and format), 10.0 Sm100FP4, 12.0 Sm120FP4. Throws
// std::invalid_argument naming `mma` when it asks for a kernel family that device cannot run, and
// naming `a` when no fp4gemm GPU GEMM exists for the device (the CPU path still does).
GemmPath gemm_path(const GemmArgs& args, int cc_major, int cc_minor);
// The host-side checks of a Blackwell path for these arguments, without a GPU: "" when the kernel can
// run them, else the reason (starting with the argument's name). fp4gemm's own rules (formats, K, N,
// alignment of data and blocked scales), then, in a build with that kernel, CUTLASS's can_implement.
std::string native_gemm_check(const GemmArgs& args, GemmPath path);
// CUTLASS's can_implement alone for a Blackwell path ("" = yes, else CUTLASS's status string); throws
// std::runtime_error when this build does not contain that kernel.
std::string native_cutlass_can_implement(const GemmArgs& args, GemmPath path);
// The Blackwell kernels this build contains (compiled for sm_100a / sm_120a).
bool built_with_path(GemmPath path);
// Where the Blackwell kernel of `path` reads block scale (r, c) of a rows x k operand (A, or B when
// operand_b): byte offsets, row-major over (r, c), from CUTLASS's own scale-factor layout (host code;
// a build with that kernel). To hold against the blocked layout the quantizers write.
std::vector<int64_t> native_scale_offsets(GemmPath path, Format fmt, int64_t rows, int64_t k, bool operand_b);

// Scale layout conversions, canonical row-major [rows, cols] bytes <-> the 128x4 "blocked" layout
// of cuBLAS / CUTLASS sm100 (rows padded to 128, cols to 4, padding zero).
int64_t blocked_size(int64_t rows, int64_t cols);
void scales_to_blocked(const uint8_t* canonical, int64_t rows, int64_t cols, uint8_t* blocked);
void scales_from_blocked(const uint8_t* blocked, int64_t rows, int64_t cols, uint8_t* canonical);

// out[rows, K] (fp32, contiguous) = blockwise RHT of x[rows, K] (row stride ld): (x . s) H_g / sqrt(g),
// exactly the transform quantize() applies. Applying it twice with all-plus signs returns x . s.
void hadamard_transform(const void* x, DType dtype, int64_t rows, int64_t K, int64_t ld, int g,
                        const uint32_t signs[8], float* out, bool device, void* stream);

// The RHT sign bits for a seed (bit i set = sign -1), as numerics.h defines them.
void hadamard_signs_from_seed(uint64_t seed, uint32_t out[8]);

bool cuda_available();  // built with CUDA and a device is present
// Compute capability of the current CUDA device as 10 * major + minor (e.g. 90, 100, 120); 0 without one.
int cuda_capability();

}  // namespace fp4gemm
