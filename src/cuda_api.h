// The CUDA implementation of each operation (validated arguments only; see api.cpp).
#pragma once

#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "fp4gemm/fp4gemm.h"

namespace fp4gemm::cuda {

void quantize(const void* x, DType dtype, int64_t R, int64_t C, int64_t ld, const QuantizeConfig* row_cfg,
              const QuantizedOut* row_out, const QuantizeConfig* col_cfg, const QuantizedOut* col_out,
              cudaStream_t stream);
void dequantize(const QuantizedIn& q, float* out, cudaStream_t stream);
size_t gemm_workspace_size(const GemmArgs& args);
// qgemm()'s A on the Hopper FP8 path, written by its quantizer straight into gemm()'s folded operand:
// a block's E4M3 bytes need only its 128-K chunk, which one thread pair of the rowwise block kernel
// holds (quantize_rowblocks.cu); the row-wide rest (factor, chunk scales, special rows) comes from one
// uint16 per chunk inside gemm() (gemm_operand.cuh). Same bytes as gemm()'s fold of quantize()'s A,
// without the fold's pass over A.
constexpr int64_t kOperandChunk = 128;  // K per chunk base (gemm_operand.cuh kChunkK)
struct OperandAOut {
  uint8_t* data = nullptr;         // [rows, K] E4M3, at gemm_operand_a()
  uint16_t* chunk_info = nullptr;  // [rows, K / 128]: the chunk's top scale byte + 1 (0: none) | kChunkFlag
};
// Where A's folded operand lies in `workspace` (gemm_workspace_size bytes) for these arguments; null
// where A is not folded to E4M3 there (the BF16 and Blackwell paths) or K is not a multiple of 128.
uint8_t* gemm_operand_a(const GemmArgs& args, void* workspace);
// quantize() of x rowwise by `cfg` into `out` that also writes `op`; false where that kernel does not
// apply (not MXFP4, not contiguous bf16, ...): nothing ran, quantize() and gemm() do it in two steps.
bool quantize_operand_a(const void* x, DType dtype, int64_t R, int64_t C, int64_t ld, const QuantizeConfig& cfg,
                        const QuantizedOut& out, const OperandAOut& op, cudaStream_t stream);
// a_written: A's operand is in the workspace already (quantize_operand_a), gemm() folds B only.
void gemm(const GemmArgs& args, cudaStream_t stream, const OperandAOut* a_written = nullptr);
// The Blackwell paths (gemm_native.cu); gemm() dispatches to them by gemm_path().
size_t native_workspace_size(const GemmArgs& args, GemmPath path);
void native_gemm(const GemmArgs& args, GemmPath path, void* workspace, cudaStream_t stream);
std::string native_can_implement(const GemmArgs& args, GemmPath path);
std::vector<int64_t> native_scale_offsets(GemmPath path, Format fmt, int64_t rows, int64_t k, bool operand_b);
void hadamard_transform(const void* x, DType dtype, int64_t rows, int64_t K, int64_t ld, int g,
                        const uint32_t signs[8], float* out, cudaStream_t stream);

}  // namespace fp4gemm::cuda
