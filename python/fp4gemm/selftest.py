"""python -m fp4gemm selftest: every GPU path of this build that this device can run, against the CPU.

Quantization must give the CPU's bytes exactly (codes, scales, amax, clip masks, blocked scales). A
GEMM output must equal the CPU's float64 reference rounded once, within what fp32 accumulation can
change: |d - ref| <= 2 ulp(ref) + 2^-10 * |alpha| * sum_k |a_k b_k| per element. A wrong scale, block,
tile or layout is off by O(sum |a b|) and fails; the share of correctly rounded outputs is printed too.
Exit status 1 if any check fails. Without a usable GPU it says so and exits 0.
"""
from __future__ import annotations

import traceback
from typing import Callable

import torch

from . import _C

ACC_SLACK = 2.0 ** -10

# (label, quantize keyword arguments): one per quantizer mode family.
QUANTIZE_MODES = [
    ("mxfp4 floor rtn", dict(fmt="mxfp4")),
    ("mxfp4 rceil sr rht64 row+col", dict(fmt="mxfp4", scale_rule="rceil", rounding="sr", seed=5, hadamard=64,
                                          columnwise=True)),
    ("mxfp4 even prescale", dict(fmt="mxfp4", scale_rule="even", prescale=True)),
    ("mxfp4 quest + clip mask", dict(fmt="mxfp4", scale_rule="quest", clip_mask=True, hadamard=32)),
    ("nvfp4 te row+col", dict(fmt="nvfp4", columnwise=True)),
    ("nvfp4 torchao sr", dict(fmt="nvfp4", scale_rule="torchao", rounding="sr", seed=7)),
    ("nvfp4 16x16", dict(fmt="nvfp4", block_2d=True, columnwise=True)),
    ("fp4_row pow2", dict(fmt="fp4_row")),
    ("fp4_row amax", dict(fmt="fp4_row", scale_rule="amax")),
    ("mxfp4 blocked scales", dict(fmt="mxfp4", scale_layout="blocked", columnwise=True)),
    ("nvfp4 blocked scales", dict(fmt="nvfp4", scale_layout="blocked", columnwise=True)),
]


def _sample(shape, seed, dtype=torch.bfloat16):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g)
    x[:, :: max(1, shape[1] // 8)] *= 40.0  # outlier channels: scales vary within a row
    return x.to(dtype)


def _same_bytes(a, b) -> str:
    """'' if two QuantizedTensors (and their columnwise parts) hold the same bytes, else what differs."""
    pairs = [("", a, b)] + ([("columnwise ", a.columnwise, b.columnwise)] if a.columnwise is not None else [])
    for pre, p, q in pairs:
        if q is None:
            return pre + "missing"
        fields = [("codes", p.codes(), q.codes()), ("scales", p.scale.view(torch.uint8) if p.fmt != "fp4_row"
                   else p.scale, q.scale.view(torch.uint8) if q.fmt != "fp4_row" else q.scale)]
        if p.amax is not None:
            fields.append(("amax", p.amax, q.amax))
        if p.clip_mask is not None:
            fields.append(("clip mask", p.clip_mask, q.clip_mask))
        for name, u, v in fields:
            if u.shape != v.shape or not torch.equal(u.cpu(), v.cpu()):
                return pre + name + " differ"
    return ""


def check_quantize(kw, device) -> str:
    x = _sample((192, 384), 1)  # 192 rows: not a multiple of 128 (columnwise: 6 MX scale columns)
    return _same_bytes(torch_quantize(x, kw), torch_quantize(x.to(device), kw))


def check_blocked_layout(fmt, device) -> str:
    """GPU blocked scales == to_blocked of the CPU's canonical scales, rows % 128 != 0, cols % 4 != 0."""
    from .layout import to_blocked
    from .quantize import quantize
    x = _sample((130, 160), 2)  # 160/32 = 5, 160/16 = 10 scale columns
    want = quantize(x, fmt)
    got = quantize(x.to(device), fmt, scale_layout="blocked")
    if not torch.equal(got.scale.view(torch.uint8).cpu(), to_blocked(want.scale).view(torch.uint8)):
        return "blocked bytes differ from layout.to_blocked of the CPU scales"
    return ""


def torch_quantize(x, kw):
    from .quantize import quantize
    return quantize(x, **kw)


def gemm_errors(d: torch.Tensor, qa, qb, alpha: float, bias) -> tuple[int, float]:
    """(elements outside the bound, share of outputs equal to the CPU reference) for a GPU result d."""
    from .gemm import gemm
    ref = gemm(_cpu(qa), _cpu(qb), alpha=alpha, bias=bias, out_dtype=d.dtype)  # float64 sums, rounded once
    absprod = abs(alpha) * (_cpu(qa).dequantize().double().abs() @ _cpu(qb).dequantize().double().abs().T)
    d, r = d.cpu().double(), ref.double()
    ulp = _ulp(ref)
    both_nan = torch.isnan(d) & torch.isnan(r)
    ok = both_nan | ((d - r).abs() <= 2 * ulp + ACC_SLACK * absprod)
    exact = both_nan | (d == r)
    return int((~ok).sum()), float(exact.double().mean())


def _ulp(t: torch.Tensor) -> torch.Tensor:
    """Spacing of t's dtype at each element (subnormal-aware), as float64."""
    fi = torch.finfo(t.dtype)
    a = t.double().abs().clamp_min(fi.smallest_normal)
    return torch.exp2(torch.floor(torch.log2(a))) * fi.eps


def _cpu(q):
    """A QuantizedTensor's CPU copy (the reference runs on it)."""
    import dataclasses
    if q.qdata.device.type == "cpu":
        return q
    return dataclasses.replace(q, qdata=q.qdata.cpu(), scale=q.scale.cpu(),
                               amax=None if q.amax is None else q.amax.cpu(),
                               clip_mask=None if q.clip_mask is None else q.clip_mask.cpu(), columnwise=None)


def check_gemm(fmt, mma, device, out_dtype=torch.bfloat16, blocked=False, m=200, n=136, k=512,
               nan_row=False) -> str:
    from .gemm import gemm
    from .quantize import quantize
    a, b = _sample((m, k), 3), _sample((n, k), 4)
    if nan_row:
        a[7, 40] = float("nan")
    layout = "blocked" if blocked else "canonical"
    qa = quantize(a.to(device), fmt, scale_layout=layout)
    qb = quantize(b.to(device), fmt, scale_layout=layout)
    alpha = 0.75
    bias = torch.randn(n, generator=torch.Generator().manual_seed(5))
    d = gemm(qa, qb, alpha=alpha, bias=bias.to(device), out_dtype=out_dtype, mma=mma)
    if d.shape != (m, n) or d.dtype != out_dtype:
        return f"output shape / dtype {tuple(d.shape)} {d.dtype}"
    bad, exact = gemm_errors(d, qa, qb, alpha, bias)
    if bad:
        return f"{bad} of {m * n} outputs off by more than the accumulation bound ({exact:.4%} exact)"
    return f"ok ({exact:.4%} exact)"


def check_refused(fmt, mma, device) -> str:
    """A path this device cannot run must be a ValueError naming mma."""
    from .gemm import gemm
    from .quantize import quantize
    q = quantize(_sample((8, 64), 6).to(device), fmt)
    try:
        gemm(q, q, mma=mma)
    except ValueError as e:
        return "" if "mma" in str(e) else f"ValueError without 'mma': {e}"
    return f"mma={mma!r} ran instead of raising ValueError"


def gpu_paths(cc: int) -> list[str]:
    """The mma values this build can run on a device of capability cc (10 * major + minor)."""
    if cc == 90:
        return ["fp8", "bf16"]
    if cc == 100 and _C.built_with_path(_C.GemmPath.Sm100FP4):
        return ["fp4"]
    if cc == 120 and _C.built_with_path(_C.GemmPath.Sm120FP4):
        return ["fp4"]
    return []


def checks(cc: int, device: str) -> list[tuple[str, Callable[[], str]]]:
    out = [(f"quantize {label}", lambda kw=kw: check_quantize(kw, device)) for label, kw in QUANTIZE_MODES]
    out += [(f"blocked layout {f} == layout.to_blocked", lambda f=f: check_blocked_layout(f, device))
            for f in ("mxfp4", "nvfp4")]
    paths = gpu_paths(cc)
    for mma in paths:
        fmts = ["mxfp4", "fp4_row"] + (["nvfp4"] if mma != "fp8" else [])
        for fmt in fmts:
            for dt in (torch.bfloat16, torch.float16, torch.float32):
                out.append((f"gemm mma={mma} {fmt} -> {str(dt)[6:]}",
                            lambda fmt=fmt, mma=mma, dt=dt: check_gemm(fmt, mma, device, dt)))
        for fmt in ("mxfp4", "nvfp4") if mma != "fp8" else ("mxfp4",):
            out.append((f"gemm mma={mma} {fmt} blocked scales, M=1",
                        lambda fmt=fmt, mma=mma: check_gemm(fmt, mma, device, blocked=True, m=1)))
            out.append((f"gemm mma={mma} {fmt} NaN block -> NaN row",
                        lambda fmt=fmt, mma=mma: check_gemm(fmt, mma, device, nan_row=True)))
        if device != "cpu":  # the CPU reference of this one takes seconds
            out.append((f"gemm mma={mma} mxfp4 1024x1024x4096",
                        lambda mma=mma: check_gemm("mxfp4", mma, device, m=1024, n=1024, k=4096)))
    if device == "cpu":
        return out
    if "fp4" in paths:
        out += [(f"dispatch: mma={m!r} refused on this GPU", lambda m=m: check_refused("mxfp4", m, device))
                for m in ("fp8", "bf16")]
    if cc == 90:
        out.append(("dispatch: mma='fp4' refused on this GPU", lambda: check_refused("mxfp4", "fp4", device)))
    return out


def main(device: str | None = None) -> int:
    """Run the checks, print the table; returns the exit status. device='cpu' runs the same checks with
    the CPU standing in for the GPU (for testing this command)."""
    if device is None:
        if not (_C.cuda_available() and torch.cuda.is_available()):
            print("fp4gemm selftest: no CUDA GPU visible, or this fp4gemm build has no CUDA kernels "
                  f"(built with CUDA: {_C.built_with_cuda()}). Only the CPU path exists here: nothing to test.")
            return 0
        device = "cuda"
    if device == "cpu":
        cc, name = 90, "CPU standing in for a compute capability 9.0 GPU"
    else:
        cc = _C.cuda_capability()
        name = f"{torch.cuda.get_device_name()} (compute capability {cc // 10}.{cc % 10})"
        if cc not in (90, 100, 120):
            print(f"fp4gemm selftest: {name}: fp4gemm has no kernels for this GPU (9.0 Hopper, 10.0 sm_100a, "
                  "12.0 sm_120a). Use CPU tensors for the reference path.")
            return 0
    built = [p for p in ("Sm90FP8", "Sm90BF16", "Sm100FP4", "Sm120FP4")
             if _C.built_with_path(getattr(_C.GemmPath, p))]
    print(f"fp4gemm selftest on {name}; GEMM kernels in this build: {', '.join(built) or 'none'}")
    rows = checks(cc, device)
    width = max(len(label) for label, _ in rows)
    failed = 0
    for label, fn in rows:
        try:
            msg = fn()
            ok = msg == "" or msg.startswith("ok")
        except Exception as e:  # a crash is a failure of that check, not of the command
            msg, ok = f"{type(e).__name__}: {e}", False
            traceback.print_exc()
        failed += not ok
        print(f"{label:<{width}}  {'PASS' if ok else 'FAIL'}  {msg}")
    print(f"{len(rows) - failed} passed, {failed} failed")
    return 1 if failed else 0


__all__ = ["main", "gpu_paths", "gemm_errors"]
