// The argument checks of the public entry points (api.cpp), for code that validates first and then
// calls the kernels itself (qgemm.cpp's GPU path that writes A's GEMM operand from its quantizer).
// Each throws std::invalid_argument naming the argument that is wrong (std::runtime_error: no GPU).
#pragma once

#include "fp4gemm/fp4gemm.h"

namespace fp4gemm {

void check_quantize(const void* x, DType dtype, int64_t R, int64_t C, int64_t ld, const QuantizeConfig* row_cfg,
                    const QuantizedOut* row_out, const QuantizeConfig* col_cfg, const QuantizedOut* col_out,
                    bool device);
void check_gemm(const GemmArgs& args, bool device);  // gemm()'s, d included

}  // namespace fp4gemm
