"""QuantizedTensor: one quantized operand (packed E2M1 codes + block scales + tensor-level factors)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

from . import ops
from .hadamard import Hadamard


@dataclass
class QuantizedTensor:
    """FP4 data of a tensor x[..., K], blocks along K (SPEC.md 2).

    qdata:  torch.float4_e2m1fn_x2 [..., K/2]; element 2i in the low nibble of byte i.
    scale:  float8_e8m0fnu [..., K/32] (mxfp4), float8_e4m3fn [..., K/16] (nvfp4), float32 [..., 1] (fp4_row);
            with scale_layout "blocked": flat bytes in the 128x4 layout (rows of the 2D view padded to 128).
    amax:   nvfp4 only: the fp32 tensor amax of the quantized values (0-dim).
    global_scale: tensor-level factor folded into dequantization and GEMMs (4/3 with prescale).
    clip_mask: quest only, if asked: uint8 [..., K/8], bit k%8 of byte k/8 set = element was clipped.
    rht: the Hadamard transform applied along K before quantizing, if any.
    columnwise: the quantization of x.reshape(-1, K).T (blocks along the rows), if asked.
    """

    qdata: torch.Tensor
    scale: torch.Tensor
    fmt: str
    scale_rule: str
    rounding: str
    dtype: torch.dtype
    global_scale: float = 1.0
    amax: Optional[torch.Tensor] = None
    clip_mask: Optional[torch.Tensor] = None
    rht: Optional[Hadamard] = None
    scale_layout: str = "canonical"
    columnwise: Optional["QuantizedTensor"] = field(default=None, repr=False)

    @property
    def shape(self) -> torch.Size:
        return torch.Size(list(self.qdata.shape[:-1]) + [self.qdata.shape[-1] * 2])

    @property
    def block(self) -> int:
        return self.shape[-1] if self.fmt == "fp4_row" else {"mxfp4": 32, "nvfp4": 16}[self.fmt]

    @property
    def hadamard(self) -> int:
        """The RHT block g applied before quantization (0: none)."""
        return self.rht.g if self.rht else 0

    @property
    def hadamard_signs(self) -> Optional[list]:
        return self.rht.sign_list() if self.rht else None

    @property
    def device(self) -> torch.device:
        return self.qdata.device

    def codes(self) -> torch.Tensor:
        """The packed bytes as uint8."""
        return self.qdata.view(torch.uint8)

    def scale_bytes(self) -> torch.Tensor:
        """Block scales as raw uint8 (float32 for fp4_row), in the canonical [..., K/block] layout."""
        if self.fmt == "fp4_row":
            return self.scale
        s = self.scale.view(torch.uint8)
        if self.scale_layout == "blocked":  # a host round trip for GPU tensors (layout code is CPU-only)
            from .layout import from_blocked
            rows = self.qdata.numel() // self.qdata.shape[-1]
            s = from_blocked(s.cpu(), rows, self.shape[-1] // self.block).to(s.device)
            s = s.reshape(list(self.shape[:-1]) + [self.shape[-1] // self.block])
        return s

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Values in the quantization basis (RHT not undone), times global_scale."""
        out = ops.dequantize_op(self.codes(), self.scale_bytes(), self.amax, self.fmt, self.scale_rule,
                                self.global_scale)
        return out.to(dtype)

    def blocked_scale(self) -> torch.Tensor:
        """Scales in the 128x4 blocked layout of cuBLAS / CUTLASS sm100 (2D view [rows, K/block])."""
        from .layout import to_blocked
        if self.scale_layout == "blocked":
            return self.scale
        return to_blocked(self.scale.reshape(-1, self.scale.shape[-1]))
