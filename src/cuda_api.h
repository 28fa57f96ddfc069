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
void gemm(const GemmArgs& args, cudaStream_t stream);
// The Blackwell paths (gemm_native.cu); gemm() dispatches to them by gemm_path().
size_t native_workspace_size(const GemmArgs& args, GemmPath path);
void native_gemm(const GemmArgs& args, GemmPath path, void* workspace, cudaStream_t stream);
std::string native_can_implement(const GemmArgs& args, GemmPath path);
std::vector<int64_t> native_scale_offsets(GemmPath path, Format fmt, int64_t rows, int64_t k, bool operand_b);
void hadamard_transform(const void* x, DType dtype, int64_t rows, int64_t K, int64_t ld, int g,
                        const uint32_t signs[8], float* out, cudaStream_t stream);

}  // namespace fp4gemm::cuda
