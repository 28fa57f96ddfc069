// The row-wide half of the FP8 GEMM's A when its quantizer wrote the E4M3 bytes (OperandAOut,
// cuda_api.h; quantize_rowblocks.cu): one thread per row reads the row's chunk info (one uint16 per
// 128 K) and writes what fold_kernel<false, true> writes besides the bytes: the row factor
// 2^(top - 127 - 6) * global_scale, the chunk scales 2^(chunk top - row top) (1 for empty chunks and
// for chunks more than 100 binades below the top, which make the row special), and the special-row
// list. A thread per row, so that a warp's chunk-scale stores are 32 consecutive rows of one chunk
// (the chunk-major layout the mainloop reads); a warp per row made them 32 scattered stores (12 us at
// 8192 x 8192, session 20).
#include "common.cuh"
#include "gemm_operand.cuh"

namespace fp4gemm::cuda {
namespace {

constexpr int kThreads = 128;

__global__ void __launch_bounds__(kThreads) finish_operand_a_kernel(const uint16_t* __restrict__ info, int64_t rows,
                                                                    int64_t chunks, double global_scale, GemmOperand out) {
  const int64_t row = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (row >= out.chunk_stride) return;
  if (row >= rows) {  // the pad rows up to the 16-byte stride hold zeros
    for (int64_t c = 0; c < chunks; ++c) out.chunk_scale[c * out.chunk_stride + row] = 0.0f;
    return;
  }
  const uint16_t* line = info + row * chunks;
  unsigned top = 0;  // + 1, 0: no nonzero block
  bool special = false;
  for (int64_t c = 0; c < chunks; ++c) {
    top = max(top, unsigned(line[c]) & kChunkTopMask);
    special |= (line[c] & kChunkFlag) != 0;
  }
  const int row_top = top ? int(top) - 1 : 0;
  for (int64_t c = 0; c < chunks; ++c) {
    const unsigned v = line[c] & kChunkTopMask;  // an L1 hit: the line was read above
    float scale = 1.0f;
    if (v && int(v) - 1 - row_top < kChunkRangeLow) special = true;
    else if (v) scale = num::exp2i(int(v) - 1 - row_top);
    out.chunk_scale[c * out.chunk_stride + row] = scale;
  }
  out.factor[row] = ldexp(1.0, row_top - 127 - kWindowHigh) * global_scale;
  if (special) out.special[1 + atomicAdd(out.special, 1)] = int32_t(row);
}

}  // namespace

void finish_operand_a(const uint16_t* chunk_info, double global_scale, const GemmOperand& out, cudaStream_t stream) {
  const int64_t chunks = out.k / kChunkK;
  finish_operand_a_kernel<<<unsigned((out.chunk_stride + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
      chunk_info, out.rows, chunks, global_scale, out);
  FP4_CUDA_CHECK(cudaGetLastError());
}

}  // namespace fp4gemm::cuda
