"""Training recipes as config objects: how each of a linear layer's three GEMMs is quantized.

A linear layer y = x wᵀ runs three GEMMs, each quantized along its own reduction dimension:
    forward  y  = x  · wᵀ   a = x    [T, K] along K,  b = w  [N, K] along K
    dgrad    dx = dy · w    a = dy   [T, N] along N,  b = wᵀ [K, N] along N
    wgrad    dw = dyᵀ · x   a = dyᵀ  [N, T] along T,  b = xᵀ [K, T] along T
A GEMM left as None runs in high precision (the input dtype).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .hadamard import TE_RHT_SIGNS


@dataclass(frozen=True)
class Operand:
    """How one GEMM operand is quantized (fp4gemm.quantize arguments)."""
    fmt: str = "mxfp4"
    scale_rule: Optional[str] = None
    rounding: str = "rtn"
    prescale: bool = False
    block_2d: bool = False


@dataclass(frozen=True)
class Gemm:
    """One quantized GEMM: its two operands and the Hadamard transform along its reduction dimension
    (the same signs on both operands). signs=None with hadamard > 0 draws fresh random signs per call."""
    a: Operand
    b: Operand
    hadamard: int = 0
    signs: Optional[tuple] = None


@dataclass(frozen=True)
class Recipe:
    """forward / dgrad / wgrad: a Gemm, or None for high precision. quest_forward (Quartet): the
    forward operands carry QuEST clip masks, and the backward runs on the forward-quantized operands,
    masks the gradients and undoes the forward Hadamard (the STE through the quantizer)."""
    name: str
    forward: Optional[Gemm] = None
    dgrad: Optional[Gemm] = None
    wgrad: Optional[Gemm] = None
    quest_forward: bool = False
    mma: str = "auto"


def BF16() -> Recipe:
    """High precision everywhere: the baseline."""
    return Recipe("bf16")


def Tseng(rht: bool = True, sr: bool = True, g: int = 64) -> Recipe:
    """Tseng, Yu, Park, *Training LLMs with MXFP4* (AISTATS 2025).

    BF16 forward; both backward GEMMs in MXFP4 (OCP floor scale, block 32 along each GEMM's reduction
    dimension). rht: a random Hadamard transform of block g = 64, fresh signs per backward GEMM, the
    same on both operands. sr: stochastic rounding of (3/4)·x, the 3/4 prescale keeping the floor
    scale from clipping, the GEMM output times 16/9 (global_scale 4/3 per operand), so the gradient
    is unbiased. The paper's ablations: Tseng(False, False) plain MXFP4, Tseng(True, False) RHT only,
    Tseng(False, True) SR only, Tseng() RHT + SR.
    """
    op = Operand("mxfp4", "floor", "sr" if sr else "rtn", prescale=sr)
    gemm = Gemm(op, op, hadamard=g if rht else 0)
    name = "tseng" + ("-rht" if rht else "") + ("-sr" if sr else "") + ("" if rht or sr else "-plain")
    return Recipe(name, forward=None, dgrad=gemm, wgrad=gemm)


def Quartet(g: int = 32) -> Recipe:
    """Quartet (IST-DASLab). Forward: a g = 32 Hadamard transform (plain, no random signs) on X and W
    along K, then QuEST MXFP4 with RTN (scale from the block's RMS, clip mask |x/s| >= 6). Backward:
    the Tseng quantizer with SR and a fresh random 32-point Hadamard per GEMM, on the forward-quantized
    Xq, Wq re-quantized along the new reduction dimension; the gradients of Xq, Wq are multiplied by the
    clip masks and rotated back (· Hᵀ)."""
    quest = Operand("mxfp4", "quest", "rtn")
    sr = Operand("mxfp4", "floor", "sr", prescale=True)
    back = Gemm(sr, sr, hadamard=g)
    return Recipe("quartet", forward=Gemm(quest, quest, hadamard=g, signs=(1,) * g), dgrad=back, wgrad=back,
                  quest_forward=True)


def NVFP4() -> Recipe:
    """TransformerEngine's NVFP4 pretraining recipe (NVFP4BlockScaling): two-level scales (E4M3 per 16
    + the fp32 tensor amax), weights in 16x16 blocks (W and Wᵀ quantize identically), activations and
    gradients in 1x16; a 16-point RHT with TE's fixed sign vector on the wgrad operands only;
    stochastic rounding on gradients, RTN elsewhere."""
    act = Operand("nvfp4", "te", "rtn")
    weight = Operand("nvfp4", "te", "rtn", block_2d=True)
    grad = Operand("nvfp4", "te", "sr")
    return Recipe("nvfp4", forward=Gemm(act, weight), dgrad=Gemm(grad, weight),
                  wgrad=Gemm(grad, act, hadamard=16, signs=tuple(TE_RHT_SIGNS)))


RECIPES = {"bf16": BF16, "tseng": Tseng, "quartet": Quartet, "nvfp4": NVFP4}
