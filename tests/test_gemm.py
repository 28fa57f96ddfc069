"""CPU GEMM and matmul == float64 of the dequantized operands (SPEC 4). The oracle dequantizes the
library's own bytes with the NumPy reference, so this checks the GEMM independently of quantization."""
import math

import numpy as np
import pytest
import torch

import fp4gemm
import reference as ref


def as_ref(q):
    """A QuantizedTensor (on any device) as the reference's dict of host arrays."""
    return dict(fmt=q.fmt, scale_rule=q.scale_rule, global_scale=q.global_scale,
                data=q.codes().reshape(-1, q.qdata.shape[-1]).cpu().numpy(),
                scale=q.scale.reshape(-1).cpu().numpy() if q.fmt == "fp4_row"
                else q.scale_bytes().reshape(-1, q.scale.shape[-1]).cpu().numpy(),
                amax=None if q.amax is None else q.amax.cpu().numpy())


def ulp(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """One unit in the last place of x (float64) in `dtype`; below its smallest normal the ulp stays
    that of the subnormals (fp16 outputs of small products land there)."""
    fi = torch.finfo(dtype)
    sig_bits, min_exp = 1 - int(math.log2(fi.eps)), int(math.log2(fi.tiny))   # 24 / 8 / 11; -126 / -126 / -14
    e = torch.frexp(x.abs()).exponent.clamp_min(min_exp + 1)
    return torch.ldexp(torch.ones_like(x), e - sig_bits)


def operands(kind, m, n, k, seed=0):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(m, k, generator=g), torch.randn(n, k, generator=g)
    if kind == "outliers":
        a[:, torch.randperm(k, generator=g)[:4]] *= 100.0
        b[torch.randperm(n, generator=g)[:2]] *= 1e-3
    return a, b


FORMATS = [("mxfp4", {}), ("mxfp4", dict(prescale=True, rounding="sr", seed=1)), ("nvfp4", {}),
           ("nvfp4", dict(scale_rule="torchao")), ("fp4_row", {}), ("fp4_row", dict(scale_rule="amax"))]


@pytest.mark.parametrize("fmt,kw", FORMATS)
@pytest.mark.parametrize("kind", ["random", "outliers"])
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_gemm_equals_float64_of_dequantized_operands(fmt, kw, kind, out_dtype):
    a, b = operands(kind, 33, 40, 256)
    qa, qb = fp4gemm.quantize(a, fmt, **kw), fp4gemm.quantize(b, fmt, **kw)
    bias = torch.randn(40, generator=torch.Generator().manual_seed(27))
    d = fp4gemm.gemm(qa, qb, alpha=0.5, bias=bias, out_dtype=out_dtype)
    want = ref.gemm_ref(as_ref(qa), as_ref(qb), alpha=0.5, bias=bias.numpy())
    if out_dtype == torch.float16:
        assert np.abs(want).max() < 60000
    # Correctly rounded from the float64 reference: within half an ulp of the output format, up to
    # the float64 summation noise of the reference itself (1e-13 of the sum of |products|).
    slack = 1e-13 * (np.abs(ref.dequantize(as_ref(qa))) @ np.abs(ref.dequantize(as_ref(qb))).T)
    err = np.abs(d.double().numpy() - want)
    assert np.all(err <= ulp(torch.from_numpy(want), out_dtype).numpy() / 2 + slack), err.max()


def test_fp32_accumulation_is_close_to_float64():
    a, b = operands("random", 16, 16, 1024)
    # exact-amax row scales make the products inexact in fp32 (MX products mostly sum exactly)
    qa, qb = fp4gemm.quantize(a, "fp4_row", scale_rule="amax"), fp4gemm.quantize(b, "fp4_row", scale_rule="amax")
    d32 = fp4gemm.gemm(qa, qb, out_dtype=torch.float32, accumulate="float32").double()
    d64 = fp4gemm.gemm(qa, qb, out_dtype=torch.float32).double()
    assert ((d32 - d64).norm() / d64.norm()) < 1e-6 and not torch.equal(d32, d64)


def test_prescale_gives_16_over_9():
    a, b = operands("random", 8, 8, 128)
    qa, qb = fp4gemm.quantize(a, prescale=True), fp4gemm.quantize(b, prescale=True)
    assert qa.global_scale == pytest.approx(4 / 3)
    d = fp4gemm.gemm(qa, qb, out_dtype=torch.float32).double()
    qa.global_scale = qb.global_scale = 1.0
    d1 = fp4gemm.gemm(qa, qb, out_dtype=torch.float32).double()
    assert torch.allclose(d, d1 * 16 / 9, rtol=1e-7)


def test_nvfp4_amax_terms_enter_alpha():
    a, b = operands("random", 16, 16, 64)
    qa, qb = fp4gemm.quantize(a, "nvfp4"), fp4gemm.quantize(b, "nvfp4")
    d = fp4gemm.gemm(qa, qb, out_dtype=torch.float32).double()
    assert ((d - a.double() @ b.double().t()).norm() / d.norm()) < 0.3   # a real approximation, not off by A
    assert qa.amax == a.abs().max()


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4", "fp4_row"])
def test_matmul_is_quantize_then_gemm(fmt):
    a = torch.randn(2, 3, 64, dtype=torch.bfloat16)
    w = torch.randn(48, 64, dtype=torch.bfloat16)
    y = fp4gemm.matmul(a, w.t(), fmt)
    assert y.dtype == torch.bfloat16 and y.shape == (2, 3, 48)
    want = fp4gemm.gemm(fp4gemm.quantize(a, fmt), fp4gemm.quantize(w, fmt), out_dtype=torch.bfloat16)
    assert torch.equal(y, want)
    # A b that is not W.t() (K-major) is copied, with the same result.
    assert torch.equal(fp4gemm.matmul(a, w.t().contiguous(), fmt), y)


def test_matmul_hadamard_and_sr_seed():
    a, w = torch.randn(16, 128), torch.randn(32, 128)
    h = fp4gemm.Hadamard(64, seed=4)
    y = fp4gemm.matmul(a, w.t(), hadamard=h, rounding="sr", seed=10)
    qa = fp4gemm.quantize(a, hadamard=h, rounding="sr", seed=10)
    qb = fp4gemm.quantize(w, hadamard=h, rounding="sr", seed=11)
    assert torch.equal(y, fp4gemm.gemm(qa, qb, out_dtype=torch.float32))
    exact = a.double() @ w.double().t()
    assert ((y.double() - exact).norm() / exact.norm()) < 0.35


def test_different_hadamards_are_refused():
    a = torch.randn(4, 64)
    qa = fp4gemm.quantize(a, hadamard=fp4gemm.Hadamard(32, seed=1))
    qb = fp4gemm.quantize(a, hadamard=fp4gemm.Hadamard(32, seed=2))
    with pytest.raises(ValueError, match="qb"):
        fp4gemm.gemm(qa, qb)
