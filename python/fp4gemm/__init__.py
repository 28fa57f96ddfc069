"""fp4gemm: block-scaled FP4 (MXFP4 / NVFP4 / per-row) quantization and GEMMs.

    q = fp4gemm.quantize(x, fmt="mxfp4")          # QuantizedTensor
    y = fp4gemm.matmul(a, b, fmt="nvfp4")         # like torch.matmul, both operands in FP4
    fp4gemm.convert(model, fp4gemm.Tseng())       # train a model's linear layers with a recipe
"""
import torch  # before _C: the native module expects torch's CUDA runtime to be loaded

from . import _C
from .config import FORMATS, SCALE_RULES
from .hadamard import HADAMARD_SIZES, TE_RHT_SIGNS, Hadamard, hadamard_signs, hadamard_transform
from .gemm import gemm, gemm_quantized, matmul
from .layout import from_blocked, to_blocked
from .quantize import quantize
from .tensor import QuantizedTensor
from . import nn, recipes
from .autograd import linear
from .nn import convert
from .recipes import BF16, NVFP4, MicrosoftFP4, Quartet, Recipe, Tseng

__version__ = "0.1.0"


def cuda_available() -> bool:
    """True when this build has CUDA kernels and a GPU is visible."""
    return bool(_C.cuda_available())


__all__ = ["quantize", "matmul", "gemm", "gemm_quantized", "QuantizedTensor", "Hadamard", "hadamard_signs", "hadamard_transform", "to_blocked",
           "from_blocked", "FORMATS", "SCALE_RULES", "HADAMARD_SIZES", "TE_RHT_SIGNS", "cuda_available", "linear",
           "convert", "nn", "recipes", "Recipe", "BF16", "Tseng", "Quartet", "NVFP4", "MicrosoftFP4"]
