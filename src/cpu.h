// The CPU implementation of each operation (validated arguments only; see api.cpp).
#pragma once

#include "fp4gemm/fp4gemm.h"

namespace fp4gemm::cpu {

void quantize_direction(const void* x, DType dt, int64_t R, int64_t C, int64_t ld, Direction dir,
                        const QuantizeConfig& cfg, const QuantizedOut& out);
// Row r of a quantized operand as exact doubles (code * block scale), without tensor-level factors.
void dequantize_row(const QuantizedIn& q, int64_t r, double* out);
void dequantize(const QuantizedIn& q, float* out);
void gemm(const GemmArgs& args);
void hadamard_transform(const void* x, DType dt, int64_t rows, int64_t K, int64_t ld, int g, const uint32_t signs[8],
                        float* out);

}  // namespace fp4gemm::cpu
