"""Scale layout conversions: canonical [rows, cols] <-> 128x4 blocked (SPEC.md 2)."""
from __future__ import annotations

import torch

from . import _C


def _check(t: torch.Tensor, arg: str) -> None:
    if t.dtype not in (torch.uint8, torch.float8_e8m0fnu, torch.float8_e4m3fn):
        raise ValueError(f"{arg}: scales must be uint8 / float8_e8m0fnu / float8_e4m3fn, got {t.dtype}")
    if t.device.type != "cpu":
        raise ValueError(f"{arg}: layout conversion runs on CPU tensors, got {t.device}")
    if not t.is_contiguous():
        raise ValueError(f"{arg}: must be contiguous")


def to_blocked(scale: torch.Tensor) -> torch.Tensor:
    """[rows, cols] scales -> flat blocked bytes (rows padded to 128, cols to 4, with zeros)."""
    _check(scale, "scale")
    if scale.dim() != 2 or scale.numel() == 0:
        raise ValueError(f"scale: need a non-empty 2D tensor, got shape {tuple(scale.shape)}")
    rows, cols = scale.shape
    src = scale.view(torch.uint8)
    out = torch.empty(_C.blocked_size(rows, cols), dtype=torch.uint8)
    _C.scales_to_blocked(src.data_ptr(), rows, cols, out.data_ptr())
    return out.view(scale.dtype)


def from_blocked(blocked: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Flat blocked bytes -> canonical [rows, cols]."""
    _check(blocked, "blocked")
    if rows <= 0 or cols <= 0:
        raise ValueError(f"rows/cols: must be positive, got {rows} x {cols}")
    if blocked.numel() != _C.blocked_size(rows, cols):
        raise ValueError(f"blocked: has {blocked.numel()} bytes, {rows} x {cols} needs {_C.blocked_size(rows, cols)}")
    out = torch.empty(rows, cols, dtype=torch.uint8)
    _C.scales_from_blocked(blocked.view(torch.uint8).data_ptr(), rows, cols, out.data_ptr())
    return out.view(blocked.dtype)
