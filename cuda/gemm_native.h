// The Blackwell GEMMs (SPEC.md 5): CUTLASS block-scaled kernels on the operands as quantized —
// packed E2M1 codes and block scales in the 128x4 blocked layout — for sm_100a (tcgen05, B200/GB200)
// and sm_120a (GeForce / RTX Blackwell). No CUTLASS here: gemm_native.cu includes this to prepare
// the operands and dispatch; gemm_sm100.cu / gemm_sm120.cu define the kernels.
#pragma once

#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "fp4gemm/fp4gemm.h"

namespace fp4gemm::cuda {

// The kernel's scale format: MXFP4 (E8M0 per 32, also per-row FP4 with unit block scales) or NVFP4
// (E4M3 per 16).
enum class NativeScale : int { MX = 0, NV = 1 };

// D[m, n] = round(alpha * acc[m, n] * factor_a[m] * factor_b[n] + bias[n]), acc the fp32 tensor-core
// sum of code_a * scale_a * code_b * scale_b: the Hopper epilogue (epilogue.cuh), with factors that
// carry only the tensor-level terms (NVFP4 amax, 4/3 prescale, per-row scale of fp4_row).
struct NativeArgs {
  NativeScale scale = NativeScale::MX;
  const uint8_t* a = nullptr;       // [M, K/2] packed E2M1, K-major
  const uint8_t* b = nullptr;       // [N, K/2]
  const uint8_t* sfa = nullptr;     // blocked_size(M, K/block) bytes, padding zero
  const uint8_t* sfb = nullptr;     // blocked_size(N, K/block)
  const double* factor_a = nullptr; // [M]
  const double* factor_b = nullptr; // [N]
  int64_t m = 0, n = 0, k = 0;
  double alpha = 1.0;
  const float* bias = nullptr;
  void* d = nullptr;
  DType out_dtype = DType::BF16;
  void* workspace = nullptr;        // CUTLASS's own scratch
  size_t workspace_size = 0;
};

// Per architecture: run, CUTLASS workspace bytes, and CUTLASS's can_implement verdict ("" = yes,
// else the reason), which needs no GPU. Defined in gemm_sm100.cu / gemm_sm120.cu when the build has
// them (FP4GEMM_WITH_SM100 / FP4GEMM_WITH_SM120).
// scale_offsets: the byte offset at which the kernel reads scale (r, c) of a rows x k operand (A, or B),
// row-major over (r, c), from CUTLASS's layout function (host code).
void sm100_gemm(const NativeArgs& args, cudaStream_t stream);
size_t sm100_workspace_size(const NativeArgs& args);
std::string sm100_can_implement(const NativeArgs& args);
std::vector<int64_t> sm100_scale_offsets(NativeScale scale, int64_t rows, int64_t k, bool operand_b);
void sm120_gemm(const NativeArgs& args, cudaStream_t stream);
size_t sm120_workspace_size(const NativeArgs& args);
std::string sm120_can_implement(const NativeArgs& args);
std::vector<int64_t> sm120_scale_offsets(NativeScale scale, int64_t rows, int64_t k, bool operand_b);

}  // namespace fp4gemm::cuda
