// The row-wide half of the FP8 GEMM's A when its quantizer wrote the E4M3 bytes (OperandAOut,
// cuda_api.h; quantize_rowblocks.cu): from the row's chunk info (one uint16 per 128 K), what
// fold_kernel<false, true> writes besides the bytes: the row factor 2^(top - 127 - 6) * global_scale,
// the chunk scales 2^(chunk top - row top) (1 for empty chunks and for chunks more than 100 binades
// below the top, which make the row special), and the special-row list.
// A CTA takes 32 rows, a lane each, its 8 warps every 8th chunk: a warp's chunk-scale stores are 32
// consecutive rows of one chunk (the chunk-major layout the mainloop reads), and a thread's loop is
// K / 1024 steps. (A warp per row made the stores scatter, a thread per row made a 64-step chain:
// 12-13 us at 8192 x 8192, session 20.)
#include "common.cuh"
#include "gemm_operand.cuh"

namespace fp4gemm::cuda {
namespace {

constexpr int kRows = 32, kParts = 8;

__global__ void __launch_bounds__(kRows * kParts) finish_operand_a_kernel(const uint16_t* __restrict__ info, int64_t rows,
                                                                          int64_t chunks, double global_scale,
                                                                          GemmOperand out) {
  __shared__ unsigned part_top[kParts][kRows];
  __shared__ bool part_special[kParts][kRows];
  const int lane = threadIdx.x % kRows, part = threadIdx.x / kRows;
  const int64_t row = int64_t(blockIdx.x) * kRows + lane;
  const bool live = row < rows;
  const uint16_t* line = info + row * chunks;
  unsigned top = 0;  // + 1, 0: no nonzero block
  bool special = false;
  for (int64_t c = part; live && c < chunks; c += kParts) {
    const unsigned v = line[c];
    top = max(top, v & kChunkTopMask);
    special |= (v & kChunkFlag) != 0;
  }
  part_top[part][lane] = top;
  __syncthreads();
  for (int p = 0; p < kParts; ++p) top = max(top, part_top[p][lane]);
  const int row_top = top ? int(top) - 1 : 0;
  if (row < out.chunk_stride) {
    for (int64_t c = part; c < chunks; c += kParts) {
      float scale = 0.0f;  // the pad rows up to the 16-byte stride hold zeros
      if (live) {
        const unsigned v = line[c] & kChunkTopMask;  // an L1 hit: read above
        scale = 1.0f;
        if (v && int(v) - 1 - row_top < kChunkRangeLow) special = true;
        else if (v) scale = num::exp2i(int(v) - 1 - row_top);
      }
      out.chunk_scale[c * out.chunk_stride + row] = scale;
    }
  }
  part_special[part][lane] = special;
  __syncthreads();
  if (part != 0 || !live) return;
  for (int p = 1; p < kParts; ++p) special = special || part_special[p][lane];
  out.factor[row] = ldexp(1.0, row_top - 127 - kWindowHigh) * global_scale;
  if (special) out.special[1 + atomicAdd(out.special, 1)] = int32_t(row);
}

}  // namespace

void finish_operand_a(const uint16_t* chunk_info, double global_scale, const GemmOperand& out, cudaStream_t stream) {
  const int64_t chunks = out.k / kChunkK;
  finish_operand_a_kernel<<<unsigned((out.chunk_stride + kRows - 1) / kRows), kRows * kParts, 0, stream>>>(
      chunk_info, out.rows, chunks, global_scale, out);
  FP4_CUDA_CHECK(cudaGetLastError());
}

}  // namespace fp4gemm::cuda
