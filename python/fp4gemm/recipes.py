"""Training recipes as config objects: how each of a linear layer's three GEMMs is quantized.

A linear layer y = x wᵀ runs three GEMMs, each quantized along its own reduction dimension:
    forward  y  = x  · wᵀ   a = x    [T, K] along K,  b = w  [N, K] along K
    dgrad    dx = dy · w    a = dy   [T, N] along N,  b = wᵀ [K, N] along N
    wgrad    dw = dyᵀ · x   a = dyᵀ  [N, T] along T,  b = xᵀ [K, T] along T
A GEMM left as None runs in high precision (the input dtype).
"""
from __future__ import annotations

from dataclasses import dataclass, field
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
class MicrosoftOptions:
    """Wang et al.'s additions to per-row FP4 (fp4gemm/microsoft.py). dge_k: the Differentiable
    Gradient Estimator's sharpness k (None: straight-through), its derivative capped at dge_cap.
    quantile: Outlier Clamping at the per-token [1 - q, q] quantiles (None: no clamping); compensate:
    add the clamped residual back through a sparse high-precision GEMM."""
    dge_k: Optional[float] = 5.0
    dge_cap: float = 3.0
    quantile: Optional[float] = 0.99
    compensate: bool = True

    def __post_init__(self):
        if self.dge_k is not None and not self.dge_k > 1.0:
            raise ValueError(f"dge_k: must be > 1 (the estimator's sharpness), got {self.dge_k!r}")
        if not self.dge_cap > 0.0:
            raise ValueError(f"dge_cap: must be > 0, got {self.dge_cap!r}")
        if self.quantile is not None and not 0.5 < self.quantile < 1.0:
            raise ValueError(f"quantile: must be in (0.5, 1), got {self.quantile!r}")
        if self.compensate and self.quantile is None:
            raise ValueError("compensate: needs a quantile (there is no residual without clamping)")


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
    microsoft: Optional[MicrosoftOptions] = None
    # repr(self): how the linear custom ops (fp4gemm/autograd.py) name the recipe, a str torch.compile
    # can pass through a graph.
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "key", repr(self))
        _BY_KEY.setdefault(self.key, self)


_BY_KEY: dict = {}


def by_key(key: str) -> Recipe:
    """The Recipe a custom op received by its key (every Recipe registers itself when built)."""
    try:
        return _BY_KEY[key]
    except KeyError:
        raise ValueError(f"recipe: unknown recipe key {key[:80]!r}") from None


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


def MicrosoftFP4(dge_k: Optional[float] = 5.0, dge_cap: float = 3.0, quantile: Optional[float] = 0.99,
                 compensate: bool = True) -> Recipe:
    """Wang et al. (Microsoft), *Optimizing Large Language Model Training Using FP4 Quantization*
    (ICML 2025). Forward: E2M1 with absmax power-of-two scales, one per token for the activations and
    one per output channel for the weights (fmt="fp4_row", rule "pow2" = MS-AMP's 2^floor(log2(6/amax))).
    Outlier Clamping and Compensation: each token's activations clamped to its [1 - q, q] quantile
    values (q = 0.99), the residual x - clamp(x) (~2 % dense) multiplied by the quantized weight in a
    sparse fp32 GEMM and added back. Backward, as MS-AMP: no re-quantization; dgrad = dy · Q(w),
    wgrad = dyᵀ · (Q(clamp x) + residual), then the Differentiable Gradient Estimator multiplies the
    weight gradient by f'(w / s), k = 5, capped at 3. MS-AMP runs the backward GEMMs in FP8 (dy E5M2);
    here they run in the input dtype (docs/numerics.md). Ablations: dge_k=None (STE), quantile=None
    (no clamping), compensate=False (clamping only)."""
    row = Operand("fp4_row", "pow2", "rtn")
    opts = MicrosoftOptions(dge_k, dge_cap, quantile, compensate)
    name = "microsoft" + ("" if dge_k is not None else "-ste") + (
        "" if quantile is not None and compensate else "-clamp" if quantile is not None else "-noclamp")
    return Recipe(name, forward=Gemm(row, row), microsoft=opts)


RECIPES = {"bf16": BF16, "tseng": Tseng, "quartet": Quartet, "nvfp4": NVFP4, "microsoft": MicrosoftFP4}
