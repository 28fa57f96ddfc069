"""torch.library custom ops over the native core: the only place where torch tensors meet _C.

Each op validates what only torch can see (dtype, device, strides), passes raw pointers, shapes and
the current stream to _C, and has a fake implementation so torch.compile can trace through it.
Quantized components travel as uint8 tensors; tensor.py gives them their float4 / float8 dtypes.

Each op is a plain function (`quantize_native`, ...), registered as the custom op (`quantize_op`,
...). Code that already runs inside a custom op on real tensors (the linear
layer's ops, fp4gemm/autograd.py) calls the plain function: a dispatcher round trip costs ~0.1 ms
of host time, more than the GPU work of a small GEMM.
"""
from __future__ import annotations

import contextlib
import math
from typing import Optional

import torch

from . import _C
from .config import FORMATS, ROUNDINGS, SCALE_RULES, BLOCK

_DTYPES = {torch.float32: _C.DType.F32, torch.float16: _C.DType.F16, torch.bfloat16: _C.DType.BF16}
_MMA = {"auto": _C.Mma.Auto, "fp8": _C.Mma.FP8, "bf16": _C.Mma.BF16, "fp4": _C.Mma.FP4}


def native_dtype(t: torch.Tensor, arg: str):
    if t.dtype not in _DTYPES:
        raise ValueError(f"{arg}: dtype must be float32, float16 or bfloat16, got {t.dtype}")
    return _DTYPES[t.dtype]


def device_args(t: torch.Tensor, arg: str) -> tuple[bool, int]:
    """(on_device, stream) for the native call; CPU tensors run the CPU path."""
    if t.device.type == "cpu":
        return False, 0
    if t.device.type != "cuda":
        raise ValueError(f"{arg}: tensors must be on the CPU or a CUDA device, got {t.device}")
    if not _C.cuda_available():
        raise ValueError(f"{arg}: is on {t.device}, but this fp4gemm build has no CUDA kernels "
                         "(rebuild with nvcc present, FP4GEMM_CUDA=ON) or no GPU is visible")
    return True, torch.cuda.current_stream(t.device).cuda_stream


def on_device_of(t: torch.Tensor):
    """Launch on t's GPU (its stream was taken from it too); a no-op for CPU tensors and when t's GPU
    is already the current one (the common case: switching costs ~10 us of host time per call)."""
    if t.device.type != "cuda" or t.device.index == torch.cuda.current_device():
        return contextlib.nullcontext()
    return torch.cuda.device(t.device)


def rows_k_ld(x: torch.Tensor, arg: str) -> tuple[int, int, int]:
    """View x[..., K] as a 2D [rows, K] matrix with unit column stride and row stride ld."""
    if x.dim() == 0:
        raise ValueError(f"{arg}: needs at least one dimension")
    K = x.shape[-1]
    rows = math.prod(x.shape[:-1])
    if x.numel() == 0:
        raise ValueError(f"{arg}: empty tensor of shape {tuple(x.shape)}")
    if K > 1 and x.stride(-1) != 1:
        raise ValueError(f"{arg}: the last dimension must be contiguous (stride 1), got strides {tuple(x.stride())}")
    if x.dim() == 1 or rows == 1:
        return rows, K, K
    if x.dim() > 2 and not x.is_contiguous():
        raise ValueError(f"{arg}: a tensor with leading batch dimensions must be contiguous")
    return rows, K, x.stride(-2)


def quantize_config(fmt, rule, rounding, prescale, block_2d, g, signs, seed, offset=0, amax=None):
    """The _C.QuantizeConfig of one quantization (names as quantize_native's arguments)."""
    c = _C.QuantizeConfig()
    c.fmt, c.scale_rule, c.rounding = FORMATS[fmt], SCALE_RULES[rule], ROUNDINGS[rounding]
    c.prescale, c.block_2d, c.hadamard = prescale, block_2d, g
    c.hadamard_signs = [w & 0xFFFFFFFF for w in signs] if signs else [0] * 8
    c.seed, c.offset = seed & (2**64 - 1), offset & (2**64 - 1)
    if amax is not None:
        c.amax_in = amax.data_ptr()
    return c


def _check_amax(amax: Optional[torch.Tensor], device, whose: str) -> None:
    """A given NVFP4 tensor amax: one float32 on the data's device."""
    if amax is not None and (amax.numel() != 1 or amax.dtype != torch.float32 or amax.device != device):
        raise ValueError(f"amax: must be a one-element float32 tensor on {whose} device")


def _out_shapes(lead: list[int], K: int, fmt: str, clip_mask: bool, blocked: bool):
    """Shapes (data, scale, mask) of a quantized [*lead, K] output (blocked scales: flat, padded)."""
    nscale = 1 if fmt == "fp4_row" else K // BLOCK[fmt]
    scale = [_C.blocked_size(math.prod(lead), nscale)] if blocked else lead + [nscale]
    return lead + [K // 2], scale, (lead + [K // 8]) if clip_mask else [0]


def _alloc(x: torch.Tensor, lead: list[int], K: int, fmt: str, clip_mask: bool, blocked: bool):
    d, s, m = _out_shapes(lead, K, fmt, clip_mask, blocked)
    data = torch.empty(d, dtype=torch.uint8, device=x.device)
    scale_dtype = torch.float32 if fmt == "fp4_row" else torch.uint8
    scale = (torch.zeros if blocked else torch.empty)(s, dtype=scale_dtype, device=x.device)  # padding = 0
    amax = torch.empty([] if fmt == "nvfp4" else [0], dtype=torch.float32, device=x.device)
    mask = torch.zeros(m, dtype=torch.uint8, device=x.device)
    return data, scale, amax, mask


def _out(data, scale, amax, mask, fmt, clip_mask, blocked):
    o = _C.QuantizedOut()
    o.data, o.scale, o.scale_blocked = data.data_ptr(), scale.data_ptr(), blocked
    if fmt == "nvfp4":
        o.amax = amax.data_ptr()
    if clip_mask:
        o.clip_mask = mask.data_ptr()
    return o


_Q8 = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
            torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def quantize_native(x: torch.Tensor, fmt: str, scale_rule: str, rounding: str, prescale: bool, block_2d: bool,
                    hadamard: int, signs: list[int], col_hadamard: int, col_signs: list[int], seed: int,
                    offset: int, rowwise: bool, columnwise: bool, amax: Optional[torch.Tensor], clip_mask: bool,
                    scale_blocked: bool) -> _Q8:
    """Rowwise and/or columnwise quantization of x[..., K]; absent outputs are empty tensors."""
    dt = native_dtype(x, "x")
    on_device, stream = device_args(x, "x")
    rows, K, ld = rows_k_ld(x, "x")
    _check_amax(amax, x.device, "x's")
    lead = list(x.shape[:-1]) if x.dim() > 1 else [1]
    empty = lambda: [x.new_empty([0], dtype=torch.uint8) for _ in range(4)]
    row = _alloc(x, lead, K, fmt, clip_mask, scale_blocked) if rowwise else empty()
    col = _alloc(x, [K], rows, fmt, clip_mask, scale_blocked) if columnwise else empty()
    cfg = lambda g, s: quantize_config(fmt, scale_rule, rounding, prescale, block_2d, g, s, seed, offset, amax)
    out = lambda t: _out(*t, fmt, clip_mask, scale_blocked)
    with on_device_of(x):
        _C.quantize(x.data_ptr(), dt, rows, K, ld,
                    cfg(hadamard, signs) if rowwise else None, out(row) if rowwise else None,
                    cfg(col_hadamard, col_signs) if columnwise else None, out(col) if columnwise else None,
                    on_device, stream)
    if x.dim() == 1 and rowwise:
        row = tuple(t.reshape(t.shape[1:]) if t.dim() > 1 else t for t in row)
    return (*row, *col)


quantize_op = torch.library.custom_op("fp4gemm::quantize", quantize_native, mutates_args=())


@quantize_op.register_fake
def _(x, fmt, scale_rule, rounding, prescale, block_2d, hadamard, signs, col_hadamard, col_signs, seed, offset,
      rowwise, columnwise, amax, clip_mask, scale_blocked):
    K = x.shape[-1]
    rows = math.prod(x.shape[:-1])
    lead = list(x.shape[:-1])
    empty = [x.new_empty([0], dtype=torch.uint8) for _ in range(4)]
    row = _alloc(x, lead, K, fmt, clip_mask, scale_blocked) if rowwise else empty
    col = _alloc(x, [K], rows, fmt, clip_mask, scale_blocked) if columnwise else empty
    return (*row, *col)


def operand(data: torch.Tensor, scale: torch.Tensor, amax: Optional[torch.Tensor], fmt: str, rule: str,
            global_scale: float, arg: str, blocked: bool = False):
    """A _C.QuantizedIn over uint8 data [rows, K/2] (leading dims flattened), fully validated: the
    native code trusts these sizes. blocked: the scales are in the 128x4 layout (blocked_size bytes)."""
    if data.dtype != torch.uint8 or not data.is_contiguous() or not scale.is_contiguous():
        raise ValueError(f"{arg}: quantized data and scales must be contiguous uint8 tensors")
    if data.dim() == 0 or data.numel() == 0:
        raise ValueError(f"{arg}: empty quantized data")
    rows, k = data.numel() // data.shape[-1], data.shape[-1] * 2
    if fmt == "fp4_row":
        want_dtype, want_numel = torch.float32, rows
    else:
        if k % BLOCK[fmt]:
            raise ValueError(f"{arg}: K={k} is not a multiple of the {fmt} block {BLOCK[fmt]}")
        want_dtype, want_numel = torch.uint8, rows * (k // BLOCK[fmt])
        if blocked:
            want_numel = _C.blocked_size(rows, k // BLOCK[fmt])
    if blocked and fmt == "fp4_row":
        raise ValueError(f"{arg}: per-row scales have no blocked layout")
    if scale.dtype != want_dtype or scale.numel() != want_numel or scale.device != data.device:
        raise ValueError(f"{arg}: scales must be {want_numel} {want_dtype} values on {data.device} for {rows} x {k} "
                         f"{fmt} data, got {scale.numel()} {scale.dtype} on {scale.device}")
    if amax is not None and (amax.numel() != 1 or amax.dtype != torch.float32 or amax.device != data.device):
        raise ValueError(f"{arg}: amax must be one float32 value on {data.device}")
    q = _C.QuantizedIn()
    q.fmt, q.scale_rule = FORMATS[fmt], SCALE_RULES[rule]
    q.data, q.scale = data.data_ptr(), scale.data_ptr()
    q.global_scale = float(global_scale)
    q.k = data.shape[-1] * 2
    q.rows = data.numel() // max(data.shape[-1], 1)
    q.scale_blocked = blocked
    if fmt == "nvfp4":
        if amax is None or amax.numel() != 1:
            raise ValueError(f"{arg}: nvfp4 operands need their tensor amax")
        q.amax = amax.data_ptr()
    return q


def dequantize_native(data: torch.Tensor, scale: torch.Tensor, amax: Optional[torch.Tensor], fmt: str,
                      scale_rule: str, global_scale: float) -> torch.Tensor:
    on_device, stream = device_args(data, "data")
    q = operand(data, scale, amax, fmt, scale_rule, global_scale, "q")
    out = torch.empty(list(data.shape[:-1]) + [data.shape[-1] * 2], dtype=torch.float32, device=data.device)
    with on_device_of(data):
        _C.dequantize(q, out.data_ptr(), on_device, stream)
    return out


dequantize_op = torch.library.custom_op("fp4gemm::dequantize", dequantize_native, mutates_args=())


@dequantize_op.register_fake
def _(data, scale, amax, fmt, scale_rule, global_scale):
    return data.new_empty(list(data.shape[:-1]) + [data.shape[-1] * 2], dtype=torch.float32)


def _set_output(args, out_dtype: torch.dtype, mma: str, bias: Optional[torch.Tensor], n: int, device):
    """Check and set what gemm_native and qgemm_native share: the output dtype, mma, and bias [n], which
    is returned as the fp32 tensor args points at (the caller keeps it alive through the call)."""
    if out_dtype not in _DTYPES:
        raise ValueError(f"out_dtype: must be float32, float16 or bfloat16, got {out_dtype}")
    if mma not in _MMA:
        raise ValueError(f"mma: must be one of {sorted(_MMA)}, got {mma!r}")
    args.out_dtype, args.mma = _DTYPES[out_dtype], _MMA[mma]
    if bias is not None:
        if bias.shape != (n,) or bias.device != device:
            raise ValueError(f"bias: must have shape ({n},) on {device}, got {tuple(bias.shape)} on {bias.device}")
        bias = bias.float().contiguous()
        args.bias = bias.data_ptr()
    return bias


def _gemm_args(a_data, a_scale, a_amax, a_fmt, a_rule, a_global, b_data, b_scale, b_amax, b_fmt, b_rule, b_global,
               alpha, bias, out_dtype, mma, a_blocked, b_blocked):
    """The _C.GemmArgs of gemm_native / gemm_quantized_native, and bias as the fp32 tensor it points at."""
    if a_data.device != b_data.device:
        raise ValueError(f"b: on {b_data.device}, but a is on {a_data.device}")
    args = _C.GemmArgs()
    args.a = operand(a_data, a_scale, a_amax, a_fmt, a_rule, a_global, "a", a_blocked)
    args.b = operand(b_data, b_scale, b_amax, b_fmt, b_rule, b_global, "b", b_blocked)
    args.alpha = alpha
    bias = _set_output(args, out_dtype, mma, bias, args.b.rows, a_data.device)
    return args, bias


def _run_gemm(args, device, on_device: bool, stream: int, d_quant=None, d_out=None):
    """_C.gemm with its GPU scratch from torch's caching allocator (no cudaMalloc per call, graph-safe)."""
    if on_device:
        size = _C.gemm_workspace_size(args, True, d_quant, d_out)
        workspace = torch.empty(size, dtype=torch.uint8, device=device)
        args.workspace, args.workspace_size = workspace.data_ptr(), workspace.numel()
    _C.gemm(args, on_device, stream, d_quant, d_out)


def gemm_native(a_data: torch.Tensor, a_scale: torch.Tensor, a_amax: Optional[torch.Tensor], a_fmt: str,
                a_rule: str, a_global: float, b_data: torch.Tensor, b_scale: torch.Tensor,
                b_amax: Optional[torch.Tensor], b_fmt: str, b_rule: str, b_global: float, alpha: float,
                bias: Optional[torch.Tensor], out_dtype: torch.dtype, fp32_accumulate: bool, mma: str = "auto",
                a_blocked: bool = False, b_blocked: bool = False) -> torch.Tensor:
    """D[M, N] = alpha * A^ B^T (+ bias): A [M, K/2], B [N, K/2] packed, K-major ("TN").
    a_blocked / b_blocked: that operand's scales are in the 128x4 blocked layout."""
    on_device, stream = device_args(a_data, "a")
    args, bias = _gemm_args(a_data, a_scale, a_amax, a_fmt, a_rule, a_global, b_data, b_scale, b_amax, b_fmt, b_rule,
                            b_global, alpha, bias, out_dtype, mma, a_blocked, b_blocked)
    out = torch.empty([args.a.rows, args.b.rows], dtype=out_dtype, device=a_data.device)
    args.d, args.fp32_accumulate = out.data_ptr(), fp32_accumulate
    with on_device_of(a_data):
        _run_gemm(args, a_data.device, on_device, stream)
    return out


gemm_op = torch.library.custom_op("fp4gemm::gemm", gemm_native, mutates_args=())


@gemm_op.register_fake
def _(a_data, a_scale, a_amax, a_fmt, a_rule, a_global, b_data, b_scale, b_amax, b_fmt, b_rule, b_global, alpha,
      bias, out_dtype, fp32_accumulate, mma="auto", a_blocked=False, b_blocked=False):
    M = a_data.numel() // a_data.shape[-1]
    N = b_data.numel() // b_data.shape[-1]
    return a_data.new_empty([M, N], dtype=out_dtype)


def gemm_quantized_native(a_data: torch.Tensor, a_scale: torch.Tensor, a_amax: Optional[torch.Tensor], a_fmt: str,
                          a_rule: str, a_global: float, b_data: torch.Tensor, b_scale: torch.Tensor,
                          b_amax: Optional[torch.Tensor], b_fmt: str, b_rule: str, b_global: float, alpha: float,
                          bias: Optional[torch.Tensor], mma: str, a_blocked: bool, b_blocked: bool, fmt: str,
                          scale_rule: str, rounding: str, prescale: bool, hadamard: int, signs: list[int], seed: int,
                          offset: int, amax: Optional[torch.Tensor], clip_mask: bool,
                          scale_blocked: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """gemm_native's D quantized along N (data, scale, amax, mask as quantize_native's rowwise output):
    the bytes of quantize_native of the fp32 D, from the GEMM's epilogue where it can (GemmArgs::d_quant)."""
    on_device, stream = device_args(a_data, "a")
    args, bias = _gemm_args(a_data, a_scale, a_amax, a_fmt, a_rule, a_global, b_data, b_scale, b_amax, b_fmt, b_rule,
                            b_global, alpha, bias, torch.float32, mma, a_blocked, b_blocked)
    _check_amax(amax, a_data.device, "the operands'")
    M, N = args.a.rows, args.b.rows
    out = _alloc(a_data, [M], N, fmt, clip_mask, scale_blocked)
    cfg = quantize_config(fmt, scale_rule, rounding, prescale, False, hadamard, signs, seed, offset, amax)
    with on_device_of(a_data):
        _run_gemm(args, a_data.device, on_device, stream, cfg, _out(*out, fmt, clip_mask, scale_blocked))
    return out


gemm_quantized_op = torch.library.custom_op("fp4gemm::gemm_quantized", gemm_quantized_native, mutates_args=())


@gemm_quantized_op.register_fake
def _(a_data, a_scale, a_amax, a_fmt, a_rule, a_global, b_data, b_scale, b_amax, b_fmt, b_rule, b_global, alpha,
      bias, mma, a_blocked, b_blocked, fmt, scale_rule, rounding, prescale, hadamard, signs, seed, offset, amax,
      clip_mask, scale_blocked):
    M = a_data.numel() // a_data.shape[-1]
    N = b_data.numel() // b_data.shape[-1]
    return _alloc(a_data, [M], N, fmt, clip_mask, scale_blocked)


def qgemm_native(a: torch.Tensor, a_columnwise: bool, a_cfg, b: torch.Tensor, b_columnwise: bool, b_cfg,
                 out_dtype: torch.dtype, mma: str = "auto", bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """gemm_native(quantize_native(a), quantize_native(b)) (+ bias) in one native call and one scratch tensor:
    a, b are [R, C] (leading dims flattened), each quantized along C, or along R when columnwise (the
    operand is then its transpose), with a _C.QuantizeConfig (quantize_config). The same bytes as the
    two steps at a fraction of their host time; for code that needs only D (the training layer's
    backward GEMMs), not the quantized operands."""
    if b.device != a.device:
        raise ValueError(f"b: on {b.device}, but a is on {a.device}")
    on_device, stream = device_args(a, "a")
    ins = []
    for t, columnwise, cfg, name in ((a, a_columnwise, a_cfg, "a"), (b, b_columnwise, b_cfg, "b")):
        q = _C.QGemmInput()
        q.R, q.C, q.ld = rows_k_ld(t, name)
        q.x, q.dtype, q.columnwise, q.cfg = t.data_ptr(), native_dtype(t, name), columnwise, cfg
        ins.append(q)
    args = _C.GemmArgs()
    M, N = (q.C if q.columnwise else q.R for q in ins)
    bias = _set_output(args, out_dtype, mma, bias, N, a.device)
    workspace = torch.empty(_C.qgemm_workspace_size(*ins, args, on_device), dtype=torch.uint8, device=a.device)
    out = torch.empty([M, N], dtype=out_dtype, device=a.device)
    args.d = out.data_ptr()
    with on_device_of(a):
        _C.qgemm(*ins, args, workspace.data_ptr(), workspace.numel(), on_device, stream)
    return out


def matmul_native(a: torch.Tensor, b: torch.Tensor, fmt: str, rule: str, rounding: str, prescale: bool,
                  hadamard: int, signs: list[int], seed_a: int, seed_b: int, bias: Optional[torch.Tensor],
                  out_dtype: torch.dtype, mma: str) -> torch.Tensor:
    """fp4gemm.matmul's one native call: a [M, K] and b [N, K] quantized along K with one configuration
    (SR streams (seed_a, 0) and (seed_b, 0)), D = A^ B^T (+ bias) [M, N]."""
    return qgemm_native(a, False, quantize_config(fmt, rule, rounding, prescale, False, hadamard, signs, seed_a),
                        b, False, quantize_config(fmt, rule, rounding, prescale, False, hadamard, signs, seed_b),
                        out_dtype, mma, bias)


matmul_op = torch.library.custom_op("fp4gemm::matmul", matmul_native, mutates_args=())


@matmul_op.register_fake
def _(a, b, fmt, rule, rounding, prescale, hadamard, signs, seed_a, seed_b, bias, out_dtype, mma):
    return a.new_empty([a.shape[0], b.shape[0]], dtype=out_dtype)


def hadamard_native(x: torch.Tensor, g: int, signs: list[int]) -> torch.Tensor:
    """fp32 blockwise RHT of x[..., K] along K: the transform quantize() applies, bit for bit."""
    dt = native_dtype(x, "x")
    on_device, stream = device_args(x, "x")
    rows, K, ld = rows_k_ld(x, "x")
    out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
    with on_device_of(x):
        _C.hadamard_transform(x.data_ptr(), dt, rows, K, ld, g, [w & 0xFFFFFFFF for w in signs], out.data_ptr(),
                              on_device, stream)
    return out


hadamard_op = torch.library.custom_op("fp4gemm::hadamard_transform", hadamard_native, mutates_args=())


@hadamard_op.register_fake
def _(x, g, signs):
    return x.new_empty(x.shape, dtype=torch.float32)
