// Scratch buffers (GPU GEMM workspaces, qgemm's operands) carved into 256-byte aligned pieces: the
// kernels' vector loads and TMA need 16, and 256 keeps every piece on cache lines of its own.
#pragma once

#include <cstddef>

namespace fp4gemm {

struct ScratchLayout {
  static constexpr size_t kAlign = 256;
  size_t end = 0;  // bytes taken so far: the buffer's size once every piece is taken
  // Offset of the next piece of `bytes` bytes.
  size_t take(size_t bytes) {
    const size_t at = end;
    end += (bytes + kAlign - 1) / kAlign * kAlign;
    return at;
  }
};

}  // namespace fp4gemm
