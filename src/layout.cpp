// Scale layouts: canonical row-major [rows, cols] <-> the 128x4 blocked layout of cuBLAS /
// CUTLASS sm100: byte (r, c) of a 128x4 tile sits at 16*(r%32) + 4*((r%128)/32) + c%4; tiles
// follow each other along K within a 128-row group, then the next group. Padding is zero.
#include <cstring>

#include "fp4gemm/fp4gemm.h"
#include "fp4gemm/numerics.h"

namespace fp4gemm {
namespace {
int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
}  // namespace

int64_t blocked_size(int64_t rows, int64_t cols) { return ceil_div(rows, 128) * 128 * ceil_div(cols, 4) * 4; }

void scales_to_blocked(const uint8_t* canonical, int64_t rows, int64_t cols, uint8_t* blocked) {
  std::memset(blocked, 0, size_t(blocked_size(rows, cols)));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) blocked[num::blocked_offset(r, c, cols)] = canonical[r * cols + c];
}

void scales_from_blocked(const uint8_t* blocked, int64_t rows, int64_t cols, uint8_t* canonical) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) canonical[r * cols + c] = blocked[num::blocked_offset(r, c, cols)];
}

}  // namespace fp4gemm
