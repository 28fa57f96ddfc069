"""Hopper tensor-core GEMMs (SPEC.md 4-5) against the float64 product of the dequantized operands.

The oracle: the NumPy reference dequantizes the library's bytes (tests/reference.py), the product is
taken in float64 (cuBLAS DGEMM on the GPU for speed: its float64 noise is far below the tolerances).
Acceptance (SPEC.md 4): 16-bit outputs correctly rounded on >= 99.99 % of elements; fp32 outputs
median relative error <= 2^-20. Every element within one ulp, plus the fp32 accumulation error, which
scales with sum_k |a_k b_k| rather than with the result: an output that cancels to near zero can be
many ulps off under any fp32-accumulating GEMM (cuBLAS included). That term is 2^-16 * sum |a b| for
the BF16 tensor cores, and 2^-10 * sum |a b| for the FP8 ones, whose accumulator keeps only about 13
bits below the running sum between promotions (measured: up to 2^-12; docs/numerics.md). Either still
catches a wrong product, block or tile, which is off by O(sum |a b|).
"""
import dataclasses
import os

import pytest
import torch

import fp4gemm
import reference as ref
from fp4gemm import ops
from test_gemm import as_ref, ulp

# The Hopper emulation kernels (sm_90a) run on compute capability 9.0 only; test_cuda_native.py
# covers Blackwell. The helpers below serve both.
pytestmark = [pytest.mark.cuda, pytest.mark.skipif(fp4gemm._C.cuda_capability() != 90,
                                                   reason="the Hopper GEMMs need compute capability 9.0")]
DEV = "cuda"


class Want(torch.Tensor):
    """The float64 reference, carrying sum_k |a_k b_k| * |alpha| as .absprod."""


def reference(qa, qb, alpha=1.0, bias=None):
    a = torch.from_numpy(ref.dequantize(as_ref(qa))).to(DEV)
    b = torch.from_numpy(ref.dequantize(as_ref(qb))).to(DEV)
    d = alpha * (a @ b.T)
    d = d if bias is None else d + bias.double()
    d = d.as_subclass(Want)
    d.absprod = (abs(alpha) * (a.abs() @ b.abs().T)).as_subclass(torch.Tensor)
    return d


def select(want: Want, rows, cols) -> Want:
    """want[rows][:, cols], keeping .absprod."""
    out = want.as_subclass(torch.Tensor)[rows][:, cols].as_subclass(Want)
    out.absprod = want.absprod[rows][:, cols]
    return out


def assert_acceptance(d: torch.Tensor, want: Want, min_fraction: float = 0.9999, fp8: bool = False):
    got = d.double()
    absprod = want.absprod
    want = want.as_subclass(torch.Tensor)
    finite = torch.isfinite(want)
    assert torch.equal(torch.isfinite(got), finite)
    got, want, absprod = got[finite], want[finite], absprod[finite]
    err = (got - want).abs()
    if d.dtype == torch.float32:
        rel = err / want.abs().clamp_min(1e-300)
        assert rel.median().item() <= 2.0 ** -20, rel.median().item()
    else:
        half = ulp(want, d.dtype) / 2
        correctly_rounded = (err <= half * (1 + 2.0 ** -40)).double().mean().item()
        assert correctly_rounded >= min_fraction, (correctly_rounded, min_fraction)
    one_ulp = ulp(want, d.dtype)
    bound = one_ulp + (2.0 ** -10 if fp8 else 2.0 ** -16) * absprod
    assert bool((err <= bound).all()), (err / bound).max().item()


def bf16_round(x: torch.Tensor) -> torch.Tensor:
    """Correct rounding float64 -> bf16: truncate to fp32, make it round-to-odd, then RNE to bf16."""
    t = x.float()
    t = (t.view(torch.int32) - (t.double().abs() > x.abs()).int()).view(torch.float32)
    return (t.view(torch.int32) | (t.double() != x).int()).view(torch.float32).bfloat16()


def cublas_fp8_fraction(qa, qb) -> float:
    """Fraction of bf16 outputs cuBLAS FP8 (rowwise scales, promoted accumulation) gets correctly rounded
    on the same folded E4M3 operands: the accuracy Hopper's FP8 tensor cores give with promotion
    every 128 K, which the fp8 path must match."""
    def fold(q):
        x = torch.from_numpy(ref.dequantize(as_ref(q))).to(DEV)
        e = q.scale_bytes().view(torch.uint8).int() - 127
        nonzero = x.view(x.shape[0], -1, 32).abs().amax(-1) > 0
        beta = torch.where(nonzero, e, torch.full_like(e, -1000)).amax(-1) - 6
        s = torch.ldexp(torch.ones(beta.shape, dtype=torch.float64, device=DEV), beta)[:, None]
        f = (x / s).float().to(torch.float8_e4m3fn)
        assert torch.equal(f.double() * s, x)
        return f, s.float()
    def padded(f, s):  # cuBLAS wants dimensions divisible by 16: zero rows, sliced off after
        extra = -f.shape[0] % 16
        return (torch.cat([f, f.new_zeros(extra, f.shape[1])]), torch.cat([s, s.new_ones(extra, 1)]))
    fa, sa = padded(*fold(qa))
    fb, sb = padded(*fold(qb))
    d = torch._scaled_mm(fa, fb.t(), scale_a=sa, scale_b=sb.t().contiguous(), out_dtype=torch.bfloat16)
    d = d[: qa.qdata.shape[0], : qb.qdata.shape[0]]
    return (d == bf16_round(reference(qa, qb).as_subclass(torch.Tensor))).double().mean().item()


def operands(kind, m, n, k, seed=0):
    g = torch.Generator(device=DEV).manual_seed(seed)
    a = torch.randn(m, k, device=DEV, generator=g)
    b = torch.randn(n, k, device=DEV, generator=g)
    if kind == "outliers":  # a few large feature columns, a few tiny weight rows
        a[:, torch.randperm(k, device=DEV, generator=g)[:8]] *= 100.0
        b[torch.randperm(n, device=DEV, generator=g)[:4]] *= 1e-3
    return a.bfloat16(), b.bfloat16()


FORMATS = [("mxfp4", {}, "fp8"), ("mxfp4", {}, "bf16"),
           ("mxfp4", dict(prescale=True, rounding="sr", seed=3, hadamard=64), "fp8"),
           ("nvfp4", {}, "auto"), ("nvfp4", dict(scale_rule="torchao"), "auto"),
           ("fp4_row", {}, "fp8"), ("fp4_row", dict(scale_rule="amax"), "fp8"), ("fp4_row", {}, "bf16")]


@pytest.mark.parametrize("fmt,kw,mma", FORMATS, ids=lambda v: str(v))
@pytest.mark.parametrize("kind", ["random", "outliers"])
@pytest.mark.parametrize("out_dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("m,n,k", [(256, 512, 1024), (77, 136, 4096), (1, 8, 256), (1000, 264, 160)])
def test_gemm_matches_float64(fmt, kw, mma, kind, out_dtype, m, n, k):
    if fmt == "nvfp4" or kw.get("hadamard"):
        k = max(k - k % 64, 64)
    a, b = operands(kind, m, n, k)
    qa, qb = fp4gemm.quantize(a, fmt, **kw), fp4gemm.quantize(b, fmt, **kw)
    bias = torch.randn(n, device=DEV)
    d = fp4gemm.gemm(qa, qb, alpha=0.75, bias=bias, out_dtype=out_dtype, mma=mma)
    assert d.shape == (m, n) and d.dtype == out_dtype and d.device.type == "cuda"
    want = reference(qa, qb, 0.75, bias)
    if mma == "fp8" and kind == "outliers" and out_dtype != torch.float32:
        # Outlier channels expose the FP8 accumulator between promotions (docs/numerics.md): the fp8
        # path must be as accurate as cuBLAS FP8 on the same operands; mma="bf16" meets SPEC.md 4.
        if out_dtype == torch.bfloat16 and fmt == "mxfp4" and not kw:  # cuBLAS's twin: no alpha, no bias
            plain = fp4gemm.gemm(qa, qb, out_dtype=torch.bfloat16, mma=mma)
            floor = min(0.9999, cublas_fp8_fraction(qa, qb))
            assert_acceptance(plain, reference(qa, qb), min_fraction=floor, fp8=True)
        d = fp4gemm.gemm(qa, qb, alpha=0.75, bias=bias, out_dtype=torch.float32, mma=mma)
        assert_acceptance(d, want, fp8=True)  # and the fp32 output to SPEC.md 4
        return
    assert_acceptance(d, want, fp8=mma == "fp8")


# The benchmark shapes of issue 4 (M x N x K), bf16 and fp32 outputs.
LARGE = [(8192, 8192, 8192), (16384, 4096, 4096), (16384, 11008, 4096), (4096, 4096, 16384),
         (128, 8192, 8192), (1, 8192, 8192), (3001, 4104, 4128)]


@pytest.mark.parametrize("fmt,mma", [("mxfp4", "bf16"), ("mxfp4", "fp8"), ("nvfp4", "auto")])
@pytest.mark.parametrize("m,n,k", LARGE)
def test_large_shapes(fmt, mma, m, n, k):
    a, b = operands("outliers", m, n, k, seed=m + n)
    qa, qb = fp4gemm.quantize(a, fmt), fp4gemm.quantize(b, fmt)
    want = reference(qa, qb)
    fp8 = mma == "fp8"
    assert_acceptance(fp4gemm.gemm(qa, qb, out_dtype=torch.float32, mma=mma), want, fp8=fp8)
    floor = cublas_fp8_fraction(qa, qb) if fp8 else 0.9999
    assert_acceptance(fp4gemm.gemm(qa, qb, out_dtype=torch.bfloat16, mma=mma), want, min(0.9999, floor), fp8=fp8)


@pytest.mark.parametrize("block_m", ["128", "256", "128x2", "256x2"])  # tile rows [x cluster of two]
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("out_dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("m,n,k", [(256, 512, 1024), (77, 136, 4096), (1000, 264, 160), (3001, 4104, 4128),
                                   (129, 8, 32)])
def test_hand_written_fp8_kernel_gives_cutlass_bytes(block_m, with_bias, out_dtype, m, n, k, monkeypatch):
    """The hand-written FP8 kernel (cuda/kernel_sm90_fp8.cuh) runs the same wgmmas, promotions and
    float64 epilogue as CUTLASS's: the same bytes, ragged tiles, chunk bases, alpha and bias included;
    and both meet the float64 oracle."""
    a, b = operands("outliers", m, n, k, seed=k)
    a[: m // 2, :128] *= 2.0 ** -30  # rows whose first chunk base lies 30 binades below the row base
    qa, qb = fp4gemm.quantize(a, "mxfp4"), fp4gemm.quantize(b, "mxfp4")
    bias = torch.randn(n, device=DEV) if with_bias else None
    monkeypatch.setenv("FP4GEMM_SM90_TILE", "large")
    monkeypatch.setenv("FP4GEMM_SM90_FP8", "0")
    cutlass = fp4gemm.gemm(qa, qb, alpha=0.75, bias=bias, out_dtype=out_dtype, mma="fp8")
    monkeypatch.setenv("FP4GEMM_SM90_FP8", block_m)
    hand = fp4gemm.gemm(qa, qb, alpha=0.75, bias=bias, out_dtype=out_dtype, mma="fp8")
    bits = torch.int32 if out_dtype == torch.float32 else torch.int16
    assert torch.equal(hand.view(bits), cutlass.view(bits))
    if out_dtype == torch.float32:
        assert_acceptance(hand, reference(qa, qb, 0.75, bias), fp8=True)


@pytest.mark.parametrize("setting,ran", [("128", True), ("256", True), ("256x2", True), ("0", False), ("64", False)])
def test_env_selects_the_hand_written_fp8_kernel(setting, ran, monkeypatch):
    """FP4GEMM_SM90_FP8=128|256[x2] runs the hand-written kernel (so the byte test above compares two
    kernels), anything else CUTLASS's: the kernel names the CUDA profiler sees."""
    a, b = operands("random", 512, 512, 256)
    qa, qb = fp4gemm.quantize(a, "mxfp4"), fp4gemm.quantize(b, "mxfp4")
    monkeypatch.setenv("FP4GEMM_SM90_TILE", "large")
    monkeypatch.setenv("FP4GEMM_SM90_FP8", setting)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        fp4gemm.gemm(qa, qb, mma="fp8")
        torch.cuda.synchronize()
    names = [e.name for e in prof.events()]
    assert any("fp8_kernel" in n for n in names) == ran, names


def test_block_outside_the_fp8_window_is_exact():
    """Row 0 of A has a block 2^40 below its others; B is nonzero only in that block (times 2^40), so
    that block is all of row 0's result. The fold marks the row, the fixup recomputes it exactly.
    Row 7 of B has a block 2^70 below its top one: a special row of B."""
    m, n, k = 64, 128, 256
    a, b = operands("random", m, n, k, seed=5)
    a, b = a.float(), b.float()
    a[0, 32:64] *= 2.0 ** -40
    b[:, :32] = 0
    b[:, 64:] = 0
    b[:, 32:64] *= 2.0 ** 40
    b[7, :32] = 2.0 ** -30
    qa, qb = fp4gemm.quantize(a, "mxfp4"), fp4gemm.quantize(b, "mxfp4")
    want = reference(qa, qb)
    assert (want[0].abs() > 0.1).float().mean() > 0.9   # row 0 is not zero without the small block
    for out_dtype, mma in ((torch.bfloat16, "fp8"), (torch.float32, "fp8"), (torch.bfloat16, "bf16")):
        assert_acceptance(fp4gemm.gemm(qa, qb, out_dtype=out_dtype, mma=mma), want, fp8=mma == "fp8")


@pytest.mark.parametrize("tile", ["large", "small"])
@pytest.mark.parametrize("mma", ["fp8", "bf16"])
@pytest.mark.parametrize("alpha", [1.0, 0.5, 3.0])
@pytest.mark.parametrize("shift", [-135, 125])
def test_epilogue_rounds_once_at_the_ends_of_the_fp32_range(tile, mma, alpha, shift, monkeypatch):
    """Operands scaled by powers of two fold to the same bytes, so the GEMM's sums are the same and
    only the epilogue's factors change: D(scaled) must be D(unscaled, fp32) * 2^shift * alpha rounded
    once, also where that is subnormal or overflows (an epilogue that rounded the product to fp32
    first and to bf16 after would round some ties the wrong way there)."""
    monkeypatch.setenv("FP4GEMM_SM90_TILE", tile)
    m, n, k = 256, 264, 512
    a, b = (x.float() for x in operands("random", m, n, k, seed=11))
    qa, qb = fp4gemm.quantize(a, "mxfp4"), fp4gemm.quantize(b, "mxfp4")
    sa, sb = shift // 2, shift - shift // 2
    qa2, qb2 = fp4gemm.quantize(a * 2.0 ** sa, "mxfp4"), fp4gemm.quantize(b * 2.0 ** sb, "mxfp4")
    assert torch.equal(qa2.codes(), qa.codes()) and torch.equal(qb2.codes(), qb.codes())
    base = fp4gemm.gemm(qa, qb, out_dtype=torch.float32, mma=mma).double()
    x = base * 2.0 ** shift * alpha  # exact but for alpha = 3, which float64 rounds as the epilogue does
    tiny = (x != 0) & (x.abs() < 2.0 ** -126)
    assert tiny.float().mean() > 0.2 if shift < 0 else (x.abs() > 3.4e38).float().mean() > 0.2
    got = fp4gemm.gemm(qa2, qb2, alpha=alpha, out_dtype=torch.bfloat16, mma=mma)
    assert torch.equal(got.view(torch.int16), bf16_round(x).view(torch.int16))
    got = fp4gemm.gemm(qa2, qb2, alpha=alpha, out_dtype=torch.float32, mma=mma)
    assert torch.equal(got.view(torch.int32), x.float().view(torch.int32))


@pytest.mark.parametrize("mma", ["fp8", "bf16"])
@pytest.mark.parametrize("out_dtype", [torch.bfloat16, torch.float32])
def test_many_special_rows_in_both_operands(mma, out_dtype):
    """Gradient-like operands: every third row of A (50: groups of four and a remainder) has one block
    2^-30 below the rest, and 20 rows of B one block 2^-40 below; the FP8 fold can carry neither. Some
    outputs are made of the small blocks alone (B rows nonzero only in A's small block, A rows nonzero
    only in B's), so a fixup that lost them, or put a row in the wrong place, fails."""
    m, n, k = 150, 136, 480          # 15 blocks, 30 lane units: some lanes idle
    a, b = operands("random", m, n, k, seed=11)
    a, b = a.float(), b.float()
    special_a = torch.arange(m, device=DEV) % 3 == 0
    special_b = torch.arange(n, device=DEV) % 7 == 3
    only_a_small = (torch.arange(n, device=DEV) % 4 == 0) & ~special_b
    only_b_small = (torch.arange(m, device=DEV) % 5 == 1) & ~special_a
    a[special_a, 64:96] *= 2.0 ** -30
    b[special_b, 160:192] *= 2.0 ** -40
    b[only_a_small] = torch.where((torch.arange(k, device=DEV) // 32 == 2), b[only_a_small], 0.0)
    a[only_b_small] = torch.where((torch.arange(k, device=DEV) // 32 == 5), a[only_b_small], 0.0)
    qa, qb = fp4gemm.quantize(a, "mxfp4"), fp4gemm.quantize(b, "mxfp4")
    bias = torch.randn(n, device=DEV)
    want = reference(qa, qb, -1.5, bias)
    d = fp4gemm.gemm(qa, qb, alpha=-1.5, bias=bias, out_dtype=out_dtype, mma=mma)
    assert_acceptance(d, want, fp8=mma == "fp8")
    # The outputs made of the small blocks alone (no bias to hide them): exact sums, rounded once.
    d = fp4gemm.gemm(qa, qb, alpha=-1.5, out_dtype=out_dtype, mma=mma)
    want = reference(qa, qb, -1.5).as_subclass(torch.Tensor)
    for rows, cols in ((special_a, only_a_small), (only_b_small, special_b)):
        part = want[rows][:, cols]
        assert (part.abs() > 0).float().mean() > 0.9 and part.abs().max() < 2.0 ** -20
        assert torch.equal(d[rows][:, cols], part.to(out_dtype))


@pytest.mark.parametrize("out_dtype", [torch.bfloat16, torch.float32])
def test_chunk_bases_carry_rows_wider_than_the_fp8_window(out_dtype):
    """The FP8 GEMM folds A per 128-K chunk (gemm_operand.cuh): rows whose chunks lie 2^-40 and 2^-80
    below their top one (far beyond the 15 binades of one E4M3 base per row) run on the tensor cores
    with chunk scales; a chunk 2^-110 below its row's top is past the scale range and goes to the exact
    fixup; a ragged last chunk (K % 128 = 32) gets its own base. B rows nonzero in one chunk only make
    outputs of that chunk alone, so a chunk scale that is wrong or misplaced fails the bound; special
    rows of B make the fixup multiply A's chunk-relative fold by its chunk scales (pass 2).
    Without a bias the 16-bit outputs are checked on those parts only: the other outputs of the rows
    with tiny chunks carry terms 2^-40 below their leading bit, which no fp32 accumulator keeps, so
    one that sits on a bf16 tie plus such a term rounds the other way (1.4 % of them here, the same
    with mma="bf16", which has no chunks); the fp32 output shows they are right to fp32 accuracy."""
    m, n, k = 96, 136, 544
    a, b = operands("random", m, n, k, seed=21)
    a, b = a.float(), b.float()
    rows = torch.arange(m, device=DEV)
    chunk = torch.arange(k, device=DEV) // 128
    a[rows % 4 == 0] *= torch.where(chunk == 1, 2.0 ** -40, torch.where(chunk == 3, 2.0 ** -80, 1.0))
    a[rows % 4 == 1] *= torch.where(chunk == 2, 2.0 ** -110, 1.0)
    a[rows % 4 == 2] *= torch.where(chunk == 4, 2.0 ** -60, 1.0)
    cols = torch.arange(n, device=DEV)
    for c in (1, 3, 4):  # columns made of one chunk alone
        b[cols % 8 == c] *= (chunk == c).float()
    special_b = cols % 8 == 5
    b[special_b, :32] *= 2.0 ** -40
    qa, qb = fp4gemm.quantize(a, "mxfp4"), fp4gemm.quantize(b, "mxfp4")
    bias = torch.randn(n, device=DEV)
    assert_acceptance(fp4gemm.gemm(qa, qb, alpha=0.5, bias=bias, out_dtype=out_dtype, mma="fp8"),
                      reference(qa, qb, 0.5, bias), fp8=True)
    want = reference(qa, qb)
    assert_acceptance(fp4gemm.gemm(qa, qb, out_dtype=torch.float32, mma="fp8"), want, fp8=True)
    d = fp4gemm.gemm(qa, qb, out_dtype=out_dtype, mma="fp8")
    for r, c in ((0, 1), (0, 3), (2, 4)):  # the tiny chunks alone, through the tensor cores
        part = select(want, rows % 4 == r, cols % 8 == c)
        assert (part.abs() > 0).float().mean() > 0.9 and part.abs().max() < 2.0 ** -30  # 32-term sums may cancel
        assert_acceptance(d[rows % 4 == r][:, cols % 8 == c], part, fp8=True)
    # The fixup's pass 2 over chunk-relative folds: exact sums, rounded once. (Not torch.equal with
    # want.to(out_dtype): torch rounds float64 to bfloat16 through fp32, twice, and these outputs
    # carry 2^-40 terms that decide ties.)
    part = want.as_subclass(torch.Tensor)[rows % 4 == 0][:, special_b]
    err = (d[rows % 4 == 0][:, special_b].double() - part).abs()
    assert bool((err <= ulp(part, out_dtype) / 2).all())


@pytest.mark.parametrize("fmt,mma", [("mxfp4", "fp8"), ("mxfp4", "bf16"), ("nvfp4", "auto"), ("fp4_row", "fp8")])
def test_few_long_rows_fold_across_warps(fmt, mma):
    """Few rows with a long K (wgrad's K is the token count) are folded by up to 8 warps per row, each
    taking every 8th 512-element step (gemm_operand.cu). Rows whose top block, whose one block below
    the fold's window, or whose NaN block lies in a later warp's steps only must still get their
    row's base, go to the fixup, or give NaN: a part that used its own top or dropped its flag fails."""
    m, n, k = 40, 24, 8192
    a, b = operands("random", m, n, k, seed=31)
    a, b = a.float(), b.float()
    step = torch.arange(k, device=DEV) // 512  # the 512-element steps; step s goes to warp s % 8
    a[1] *= torch.where(step == 7, 2.0 ** 5, 1.0)      # the top in the last warp's first step
    a[2] *= torch.where(step == 14, 2.0 ** 4, 1.0)     # ... in its second
    b[3] *= torch.where(step == 13, 2.0 ** 6, 1.0)     # (a part using its own top overflows E4M3)
    a[5, 512 * 6: 512 * 6 + 32] *= 2.0 ** -40          # a block below the window, in warp 6 only
    b[7, 512 * 3 + 64: 512 * 3 + 96] *= 2.0 ** -50
    qa, qb = fp4gemm.quantize(a, fmt), fp4gemm.quantize(b, fmt)
    if fmt == "mxfp4":
        qa.scale.view(torch.uint8)[9, (512 * 15) // 32] = 0xFF  # a NaN block in the last step
    want = reference(qa, qb)
    fp8 = mma == "fp8"
    for out_dtype in (torch.float32, torch.bfloat16):
        assert_acceptance(fp4gemm.gemm(qa, qb, out_dtype=out_dtype, mma=mma), want, fp8=fp8)


# A written by its quantizer (qgemm on the FP8 path, cuda_api.h OperandAOut): the rowwise block kernel
# writes the E4M3 operand against each 128-K chunk's top block, a pass after it the row-wide rest. The
# oracle is the two-step path, whose fold (gemm_operand.cu) is separate code checked against float64
# above: D must be the same bits, special rows (fixup) and NaN rows included.
def fused_a_inputs(kind, m, k, seed):
    g = torch.Generator(device=DEV).manual_seed(seed)
    a = torch.randn(m, k, device=DEV, generator=g)
    if kind == "special":
        rows, chunk = torch.arange(m, device=DEV), torch.arange(k, device=DEV) // 128
        blk = torch.arange(k, device=DEV) // 32
        a[rows % 6 == 0] *= torch.where(chunk == chunk.max(), 2.0 ** -40, 1.0)   # a chunk base far down
        a[rows % 6 == 1] *= torch.where(blk == 1, 2.0 ** -20, 1.0)  # a block below the window (g <= 32 keeps it)
        a[rows % 6 == 2] *= torch.where(chunk == 0, 2.0 ** -110, 1.0)              # past the chunk scale range
        a[rows % 6 == 3] = torch.where(blk % 3 == 0, -0.0, a[rows % 6 == 3])      # zero blocks, -0 codes
        if m > 7:
            a[4] = 0.0
            a[5, k // 2] = float("inf")  # NaN blocks: the row's outputs are NaN
            a[7, 3] = float("nan")
    return a.bfloat16()


def kernel_names(fn):
    """fn() and the names of the CUDA kernels it ran (the profiler's). Under compute-sanitizer the
    profiler sees no kernels: FP4GEMM_TEST_SANITIZER=1 (bench/gpu_dev.sh sets it there) gives None,
    and the name checks are left to the plain run."""
    if os.environ.get("FP4GEMM_TEST_SANITIZER") == "1":
        return fn(), None
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        out = fn()
        torch.cuda.synchronize()
    return out, [e.name for e in prof.events()]


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int32 if t.dtype == torch.float32 else torch.int16)


@pytest.mark.parametrize("kind", ["random", "special"])
@pytest.mark.parametrize("rule,rounding,g,prescale", [("floor", "rtn", 0, False), ("floor", "sr", 64, True),
                                                      ("rceil", "rtn", 128, False), ("even", "sr", 32, False),
                                                      ("rceil", "sr", 16, False), ("floor", "sr", 128, True)])
@pytest.mark.parametrize("m,n,k", [(77, 136, 4096), (1000, 264, 640), (1, 8, 128), (300, 64, 1152)])
def test_quantizer_written_a_gives_the_two_step_bits(kind, rule, rounding, g, prescale, m, n, k):
    a = fused_a_inputs(kind, m, k, seed=m + k)
    b = operands("random", m, n, k, seed=3)[1]
    h = fp4gemm.Hadamard(g, seed=5) if g else None
    qkw = dict(scale_rule=rule, rounding=rounding, prescale=prescale, hadamard=h)
    bias = torch.randn(n, device=DEV) if m % 2 else None
    cfg = [ops.quantize_config("mxfp4", rule, rounding, prescale, False, g, h.sign_words() if h else [], s)
           for s in (11, 12)]
    for out_dtype in (torch.bfloat16, torch.float32):
        want = fp4gemm.gemm(fp4gemm.quantize(a, "mxfp4", seed=11, **qkw), fp4gemm.quantize(b, "mxfp4", seed=12, **qkw),
                            bias=bias, out_dtype=out_dtype, mma="fp8")
        got, names = kernel_names(lambda: ops.qgemm_native(a, False, cfg[0], b, False, cfg[1], out_dtype, "fp8", bias))
        assert names is None or any("finish_operand_a" in n for n in names), names  # the quantizer wrote A
        assert torch.equal(bits(got), bits(want))
        if kind == "special" and m > 7:
            assert torch.isnan(got[5]).all() and torch.isnan(got[7]).all()


def test_matmul_skips_the_fold_of_a(monkeypatch):
    """The profiler's kernel names show the quantizer wrote A (one fold, of B; finish_operand_a), so
    the bit test above cannot pass by folding; FP4GEMM_FOLD_A=1 folds A again, with the same bits."""
    a = fused_a_inputs("special", 256, 1024, seed=1)
    w = operands("random", 256, 512, 1024, seed=2)[1]
    y, names = kernel_names(lambda: fp4gemm.matmul(a, w.t(), fmt="mxfp4"))
    assert sum("fold_kernel" in n for n in names) == 1 and any("finish_operand_a" in n for n in names), names
    assert any("quantize_rowblocks" in n for n in names), names
    monkeypatch.setenv("FP4GEMM_FOLD_A", "1")
    y2, names = kernel_names(lambda: fp4gemm.matmul(a, w.t(), fmt="mxfp4"))
    assert sum("fold_kernel" in n for n in names) == 2 and not any("finish_operand_a" in n for n in names), names
    assert torch.equal(bits(y), bits(y2))
    qa, qb = fp4gemm.quantize(a), fp4gemm.quantize(w)
    assert torch.equal(bits(y), bits(fp4gemm.gemm(qa, qb, out_dtype=torch.bfloat16)))


def test_nan_block_scale_gives_nan_row():
    a, b = operands("random", 16, 64, 128, seed=2)
    qa, qb = fp4gemm.quantize(a, "mxfp4"), fp4gemm.quantize(b, "mxfp4")
    qa.scale.view(torch.uint8)[5, 1] = 0xFF
    d = fp4gemm.gemm(qa, qb, out_dtype=torch.float32)
    assert torch.isnan(d[5]).all() and torch.isfinite(d[torch.arange(16, device=DEV) != 5]).all()


def test_mixed_fp8_family_operands():
    a, b = operands("random", 64, 64, 256, seed=4)
    qa, qb = fp4gemm.quantize(a, "mxfp4"), fp4gemm.quantize(b, "fp4_row", scale_rule="amax")
    assert_acceptance(fp4gemm.gemm(qa, qb, out_dtype=torch.bfloat16), reference(qa, qb), fp8=True)


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
    assert_acceptance(y, reference(qa, qb), fp8=True)


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
    with pytest.raises(ValueError, match="mma"):
        fp4gemm.gemm(fp4gemm.quantize(a, "nvfp4"), fp4gemm.quantize(b, "nvfp4"), mma="fp8")
    with pytest.raises(ValueError, match="mma"):
        fp4gemm.gemm(qa, qb, mma="tf32")
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


@pytest.mark.parametrize("fmt,mma", [("mxfp4", "fp8"), ("mxfp4", "bf16"), ("nvfp4", "auto")])
@pytest.mark.parametrize("m,n,k", [(200, 136, 4128), (1, 8, 96), (130, 40, 160)])
def test_blocked_scale_operands(fmt, mma, m, n, k):
    """Operands with scales in the 128x4 blocked layout (read in place by the fold) give the
    canonical operands' output bit for bit."""
    a, b = operands("outliers", m, n, k)
    qa, qb = fp4gemm.quantize(a, fmt), fp4gemm.quantize(b, fmt)
    xa, xb = fp4gemm.quantize(a, fmt, scale_layout="blocked"), fp4gemm.quantize(b, fmt, scale_layout="blocked")
    want = fp4gemm.gemm(qa, qb, out_dtype=torch.float32, mma=mma)
    for x, y in ((xa, xb), (qa, xb), (xa, qb)):
        assert torch.equal(fp4gemm.gemm(x, y, out_dtype=torch.float32, mma=mma), want)


def test_blackwell_path_is_refused_on_hopper():
    q = fp4gemm.quantize(torch.randn(8, 64, device=DEV), "mxfp4")
    with pytest.raises(ValueError, match="mma: 'fp4' runs the Blackwell"):
        fp4gemm.gemm(q, q, mma="fp4")
