"""Hopper tensor-core GEMMs (SPEC.md 4-5) against the float64 product of the dequantized operands.

The oracle: the NumPy reference dequantizes the library's bytes (tests/reference.py), the product is
taken in float64 (cuBLAS DGEMM on the GPU for speed: its float64 noise is far below the tolerances).
Acceptance (SPEC.md 4): bf16 outputs correctly rounded on >= 99.99 % of elements and all within one
ulp; fp32 outputs median relative error <= 2^-20.
"""
import dataclasses

import pytest
import torch

import fp4gemm
import reference as ref

pytestmark = pytest.mark.cuda
DEV = "cuda"


def as_ref(q):
    return dict(fmt=q.fmt, scale_rule=q.scale_rule, global_scale=q.global_scale,
                data=q.codes().reshape(-1, q.qdata.shape[-1]).cpu().numpy(),
                scale=q.scale.reshape(-1).cpu().numpy() if q.fmt == "fp4_row"
                else q.scale_bytes().reshape(-1, q.scale.shape[-1]).cpu().numpy(),
                amax=None if q.amax is None else q.amax.cpu().numpy())


def reference(qa, qb, alpha=1.0, bias=None):
    a = torch.from_numpy(ref.dequantize(as_ref(qa))).to(DEV)
    b = torch.from_numpy(ref.dequantize(as_ref(qb))).to(DEV)
    d = alpha * (a @ b.T)
    return d if bias is None else d + bias.double()


def ulp(x: torch.Tensor, sig_bits: int) -> torch.Tensor:
    """One unit in the last place of x (float64) in a format with `sig_bits` significant bits."""
    e = torch.frexp(x.abs().clamp_min(2.0 ** -126)).exponent
    return torch.ldexp(torch.ones_like(x), e - sig_bits)


def assert_acceptance(d: torch.Tensor, want: torch.Tensor):
    got = d.double()
    finite = torch.isfinite(want)
    assert torch.equal(torch.isfinite(got), finite)
    got, want = got[finite], want[finite]
    err = (got - want).abs()
    if d.dtype == torch.float32:
        rel = err / want.abs().clamp_min(1e-300)
        assert rel.median().item() <= 2.0 ** -20, rel.median().item()
    else:
        bits = 8 if d.dtype == torch.bfloat16 else 11
        half = ulp(want, bits) / 2
        correctly_rounded = (err <= half * (1 + 2.0 ** -40)).double().mean().item()
        assert correctly_rounded >= 0.9999, correctly_rounded
        assert bool((err <= 2 * half).all()), (err / half).max().item()


def operands(kind, m, n, k, seed=0):
    g = torch.Generator(device=DEV).manual_seed(seed)
    a = torch.randn(m, k, device=DEV, generator=g)
    b = torch.randn(n, k, device=DEV, generator=g)
    if kind == "outliers":  # a few large feature columns, a few tiny weight rows
        a[:, torch.randperm(k, device=DEV, generator=g)[:8]] *= 100.0
        b[torch.randperm(n, device=DEV, generator=g)[:4]] *= 1e-3
    return a.bfloat16(), b.bfloat16()


FORMATS = [("mxfp4", {}), ("mxfp4", dict(prescale=True, rounding="sr", seed=3, hadamard=64)),
           ("nvfp4", {}), ("nvfp4", dict(scale_rule="torchao")), ("fp4_row", {}),
           ("fp4_row", dict(scale_rule="amax"))]


@pytest.mark.parametrize("fmt,kw", FORMATS, ids=lambda v: str(v))
@pytest.mark.parametrize("kind", ["random", "outliers"])
@pytest.mark.parametrize("out_dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("m,n,k", [(256, 512, 1024), (77, 136, 4096), (1, 8, 256), (1000, 264, 160)])
def test_gemm_matches_float64(fmt, kw, kind, out_dtype, m, n, k):
    if fmt == "nvfp4" or kw.get("hadamard"):
        k = max(k - k % 64, 64)
    a, b = operands(kind, m, n, k)
    qa, qb = fp4gemm.quantize(a, fmt, **kw), fp4gemm.quantize(b, fmt, **kw)
    bias = torch.randn(n, device=DEV)
    d = fp4gemm.gemm(qa, qb, alpha=0.75, bias=bias, out_dtype=out_dtype)
    assert d.shape == (m, n) and d.dtype == out_dtype and d.device.type == "cuda"
    assert_acceptance(d, reference(qa, qb, 0.75, bias))


# The benchmark shapes of issue 4 (M x N x K), bf16 and fp32 outputs.
LARGE = [(8192, 8192, 8192), (16384, 4096, 4096), (16384, 11008, 4096), (4096, 4096, 16384),
         (128, 8192, 8192), (1, 8192, 8192), (3001, 4104, 4128)]


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4"])
@pytest.mark.parametrize("m,n,k", LARGE)
def test_large_shapes(fmt, m, n, k):
    a, b = operands("outliers", m, n, k, seed=m + n)
    qa, qb = fp4gemm.quantize(a, fmt), fp4gemm.quantize(b, fmt)
    want = reference(qa, qb)
    for out_dtype in (torch.bfloat16, torch.float32):
        assert_acceptance(fp4gemm.gemm(qa, qb, out_dtype=out_dtype), want)


def test_block_outside_the_fp8_window_is_exact():
    """Row 0 of A spans 2^40 between its blocks; B's matching block is large, so dropping A's tiny
    block would change the result. The fold marks the row, the fixup recomputes it exactly."""
    m, n, k = 64, 128, 256
    a, b = operands("random", m, n, k, seed=5)
    a, b = a.float(), b.float()
    a[0, 32:64] *= 2.0 ** -40
    a[3, 64:96] *= 2.0 ** -20
    b[:, 32:64] *= 2.0 ** 40
    b[:, 64:96] *= 2.0 ** 20
    b[7, :32] *= 2.0 ** -30     # a special row of B as well
    qa, qb = fp4gemm.quantize(a, "mxfp4"), fp4gemm.quantize(b, "mxfp4")
    want = reference(qa, qb)
    for out_dtype in (torch.bfloat16, torch.float32):
        d = fp4gemm.gemm(qa, qb, out_dtype=out_dtype)
        assert_acceptance(d, want)
        # the small blocks matter: without them row 0 would be off by about half
        a0 = torch.from_numpy(ref.dequantize(as_ref(qa))).to(DEV)
        a0[0, 32:64] = 0
        without = a0[0] @ torch.from_numpy(ref.dequantize(as_ref(qb))).to(DEV).T
        assert ((without - want[0]).abs() > 0.1 * want[0].abs()).float().mean() > 0.5


def test_nan_block_scale_gives_nan_row():
    a, b = operands("random", 16, 64, 128, seed=2)
    qa, qb = fp4gemm.quantize(a, "mxfp4"), fp4gemm.quantize(b, "mxfp4")
    qa.scale.view(torch.uint8)[5, 1] = 0xFF
    d = fp4gemm.gemm(qa, qb, out_dtype=torch.float32)
    assert torch.isnan(d[5]).all() and torch.isfinite(d[torch.arange(16, device=DEV) != 5]).all()


def test_mixed_fp8_family_operands():
    a, b = operands("random", 64, 64, 256, seed=4)
    qa, qb = fp4gemm.quantize(a, "mxfp4"), fp4gemm.quantize(b, "fp4_row", scale_rule="amax")
    assert_acceptance(fp4gemm.gemm(qa, qb, out_dtype=torch.bfloat16), reference(qa, qb))


def test_matmul_on_cuda_is_stream_ordered():
    a, w = operands("random", 512, 256, 1024, seed=6)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        y = fp4gemm.matmul(a, w.t(), fmt="mxfp4")
    finally:
        torch.cuda.set_sync_debug_mode("default")
    qa, qb = fp4gemm.quantize(a), fp4gemm.quantize(w)
    assert y.dtype == torch.bfloat16 and y.shape == (512, 256)
    assert_acceptance(y, reference(qa, qb))


def test_gemm_on_a_side_stream_and_in_a_graph():
    a, b = operands("random", 256, 256, 512, seed=7)
    qa, qb = fp4gemm.quantize(a), fp4gemm.quantize(b)
    want = fp4gemm.gemm(qa, qb)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        got = fp4gemm.gemm(qa, qb)
    torch.cuda.current_stream().wait_stream(s)
    assert torch.equal(got, want)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        captured = fp4gemm.gemm(qa, qb)
    g.replay()
    torch.cuda.synchronize()
    assert torch.equal(captured, want)


def test_bad_gpu_gemm_inputs():
    a, b = operands("random", 32, 64, 128)
    qa, qb = fp4gemm.quantize(a, "mxfp4"), fp4gemm.quantize(b, "mxfp4")
    with pytest.raises(ValueError, match="b.fmt"):
        fp4gemm.gemm(qa, fp4gemm.quantize(b, "nvfp4"))
    with pytest.raises(ValueError, match="accumulate"):
        fp4gemm.gemm(qa, qb, accumulate="float64")
    odd = fp4gemm.quantize(b[:60], "mxfp4")
    with pytest.raises(ValueError, match="N=60"):
        fp4gemm.gemm(qa, odd, out_dtype=torch.bfloat16)
    assert fp4gemm.gemm(qa, odd, out_dtype=torch.float32).shape == (32, 60)
    codes = qa.codes()
    shifted = torch.empty(codes.numel() + 1, dtype=torch.uint8, device=DEV)[1:].view(codes.shape)
    shifted.copy_(codes)
    with pytest.raises(ValueError, match="a.data"):
        fp4gemm.gemm(dataclasses.replace(qa, qdata=shifted.view(qa.qdata.dtype)), qb)
