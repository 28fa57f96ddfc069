"""The random Hadamard transform (SPEC.md 3): sign vectors, the Hadamard config, the standalone op."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from . import _C, ops

HADAMARD_SIZES = (16, 32, 64, 128, 256)
# TransformerEngine's fixed 16-point RHT sign vector (NVFP4 recipe, wgrad operands).
TE_RHT_SIGNS = (1, 1, 1, -1, 1, -1, -1, -1, -1, -1, -1, 1, -1, 1, -1, -1)


@torch._dynamo.assume_constant_result  # a pure function of its arguments: a constant under torch.compile
def _sign_words(seed: int, g: int) -> list[int]:
    """The 8 x 32-bit words of the signs drawn from `seed`, bit i set where sign i is -1, i < g."""
    bits = _C.hadamard_signs_from_seed(int(seed) & (2**64 - 1))
    return [int(bits[w]) & ((1 << max(0, min(32, g - 32 * w))) - 1) for w in range(8)]


def hadamard_signs(seed: int, g: int) -> list[int]:
    """The RHT sign vector (+1/-1, length g) drawn from `seed` (docs/numerics.md)."""
    check_hadamard_size(g, "g")
    words = _sign_words(seed, g)
    return [-1 if (words[i >> 5] >> (i & 31)) & 1 else 1 for i in range(g)]


def check_hadamard_size(g: int, arg: str) -> None:
    if g not in HADAMARD_SIZES:
        raise ValueError(f"{arg}: Hadamard block must be one of {HADAMARD_SIZES}, got {g!r}")


@dataclass(frozen=True)
class Hadamard:
    """Random Hadamard transform applied blockwise along K before quantization (SPEC.md 3).

    Signs come from `signs` (length g, +1/-1) or are drawn from `seed`; with neither, all +1.
    Both operands of one GEMM must use the same Hadamard for the product to be preserved.
    """

    g: int
    seed: Optional[int] = None
    signs: Optional[Sequence[int]] = None

    def __post_init__(self):
        check_hadamard_size(self.g, "hadamard.g")
        if self.signs is not None:
            if len(self.signs) != self.g or any(s not in (1, -1) for s in self.signs):
                raise ValueError(f"hadamard.signs: need {self.g} values of +1/-1")
            if self.seed is not None:
                raise ValueError("hadamard: give seed or signs, not both")

    def sign_list(self) -> list[int]:
        if self.signs is not None:
            return [int(s) for s in self.signs]
        if self.seed is not None:
            return hadamard_signs(self.seed, self.g)
        return [1] * self.g

    def sign_words(self) -> list[int]:
        """The 8 x 32-bit words the kernels take: bit i set where sign i is -1."""
        if self.signs is None and self.seed is not None:   # the hot path of every backward GEMM
            return _sign_words(self.seed, self.g)
        words = [0] * 8
        for i, s in enumerate(self.sign_list()):
            if s < 0:
                words[i >> 5] |= 1 << (i & 31)
        return words


def as_hadamard(h, arg: str = "hadamard") -> Optional[Hadamard]:
    if h is None or h is False or h == 0:
        return None
    if isinstance(h, Hadamard):
        return h
    if isinstance(h, int) and not isinstance(h, bool):
        return Hadamard(h)
    raise ValueError(f"{arg}: expected None, an int block size or fp4gemm.Hadamard, got {type(h).__name__}")


def hadamard_transform(x: torch.Tensor, hadamard) -> torch.Tensor:
    """fp32 RHT of x[..., K] blockwise along K, exactly as quantize() applies it (SPEC.md 3)."""
    h = as_hadamard(hadamard)
    if h is None:
        raise ValueError("hadamard: needs a block size or fp4gemm.Hadamard")
    return ops.hadamard_op(x, h.g, h.sign_words())
