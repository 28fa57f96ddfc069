"""Blackwell GEMMs (sm_100a, sm_120a) on hardware, against the float64 product of the dequantized
operands (the oracle of test_cuda_gemm.py). They run only on a GPU of compute capability 10.0 or 12.0;
on other GPUs the module is skipped. Acceptance as SPEC.md 4, with the fp32-accumulation term of the
BF16 tensor cores (2^-16 sum |a b|): a wrong scale, block, tile or layout is off by O(sum |a b|)."""
import pytest
import torch

import fp4gemm
from fp4gemm import _C
from test_cuda_gemm import DEV, assert_acceptance, operands, reference

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(
    _C.cuda_capability() not in (100, 120), reason="needs a Blackwell GPU (compute capability 10.0 or 12.0)")]

FORMATS = [("mxfp4", {}), ("mxfp4", dict(prescale=True, rounding="sr", seed=3, hadamard=64)),
           ("mxfp4", dict(scale_rule="quest", hadamard=32)), ("nvfp4", {}), ("nvfp4", dict(scale_rule="torchao")),
           ("nvfp4", dict(block_2d=True)), ("fp4_row", {}), ("fp4_row", dict(scale_rule="amax"))]


@pytest.mark.parametrize("fmt,kw", FORMATS, ids=str)
@pytest.mark.parametrize("kind", ["random", "outliers"])
@pytest.mark.parametrize("out_dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("m,n,k", [(256, 512, 1024), (77, 136, 4096), (1, 8, 256), (1000, 264, 160), (129, 8, 32)])
def test_native_gemm_matches_float64(fmt, kw, kind, out_dtype, m, n, k):
    a, b = operands(kind, m, n, k)
    qa, qb = fp4gemm.quantize(a, fmt, **kw), fp4gemm.quantize(b, fmt, **kw)
    bias = torch.randn(n, device=DEV)
    for mma in ("auto", "fp4"):
        d = fp4gemm.gemm(qa, qb, alpha=0.75, bias=bias, out_dtype=out_dtype, mma=mma)
        assert_acceptance(d, reference(qa, qb, 0.75, bias))


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4"])
@pytest.mark.parametrize("m,n,k", [(200, 136, 4128), (1, 8, 96), (130, 40, 160)])
def test_blocked_scales_used_directly_give_the_same_bits(fmt, m, n, k):
    a, b = operands("outliers", m, n, k)
    qa, qb = fp4gemm.quantize(a, fmt), fp4gemm.quantize(b, fmt)
    xa, xb = (fp4gemm.quantize(a, fmt, scale_layout="blocked"), fp4gemm.quantize(b, fmt, scale_layout="blocked"))
    want = fp4gemm.gemm(qa, qb, out_dtype=torch.float32)
    assert_acceptance(want, reference(qa, qb))
    for x, y in ((xa, xb), (qa, xb), (xa, qb)):
        assert torch.equal(fp4gemm.gemm(x, y, out_dtype=torch.float32), want)


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4"])
def test_large_shapes(fmt):
    a, b = operands("random", 4096, 4096, 4096)
    qa, qb = fp4gemm.quantize(a, fmt), fp4gemm.quantize(b, fmt)
    assert_acceptance(fp4gemm.gemm(qa, qb, out_dtype=torch.bfloat16), reference(qa, qb))


def test_nan_block_gives_nan_row_and_column():
    a, b = operands("random", 64, 32, 256)
    a[5, 70] = float("nan")
    b[9, 3] = float("inf")
    d = fp4gemm.gemm(fp4gemm.quantize(a, "mxfp4"), fp4gemm.quantize(b, "mxfp4"), out_dtype=torch.float32)
    nan = torch.zeros(64, 32, dtype=torch.bool, device=DEV)
    nan[5, :] = nan[:, 9] = True
    assert torch.equal(torch.isnan(d), nan)


def test_hopper_paths_are_refused():
    q = fp4gemm.quantize(torch.randn(8, 64, device=DEV), "mxfp4")
    for mma in ("fp8", "bf16"):
        with pytest.raises(ValueError, match="mma: '.*' selects the Hopper"):
            fp4gemm.gemm(q, q, mma=mma)


def test_native_argument_errors():
    q = fp4gemm.quantize(torch.randn(8, 48, device=DEV), "nvfp4")
    with pytest.raises(ValueError, match="K=48 must be a multiple of 32"):
        fp4gemm.gemm(q, q)


def test_in_a_cuda_graph():
    a, b = operands("random", 256, 256, 512)
    qa, qb = fp4gemm.quantize(a, "nvfp4"), fp4gemm.quantize(b, "nvfp4")
    want = fp4gemm.gemm(qa, qb)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        d = fp4gemm.gemm(qa, qb)
    g.replay()
    torch.cuda.synchronize()
    assert torch.equal(d, want)


def test_selftest_passes():
    from fp4gemm import selftest
    assert selftest.main() == 0
