"""GPU quantization == CPU quantization, byte for byte, for every mode (SPEC 7). Skipped without a GPU."""
import itertools

import pytest
import torch

import fp4gemm

pytestmark = pytest.mark.cuda

MODES = [  # (fmt, kwargs)
    ("mxfp4", dict()), ("mxfp4", dict(scale_rule="rceil")), ("mxfp4", dict(scale_rule="even")),
    ("mxfp4", dict(scale_rule="quest", clip_mask=True)), ("mxfp4", dict(scale_rule="quest", hadamard=32, clip_mask=True)),
    ("mxfp4", dict(rounding="sr")), ("mxfp4", dict(rounding="sr", prescale=True)),
    ("mxfp4", dict(rounding="sr", prescale=True, hadamard=fp4gemm.Hadamard(64, seed=3))),
    ("mxfp4", dict(hadamard=fp4gemm.Hadamard(128, seed=4))), ("mxfp4", dict(hadamard=fp4gemm.Hadamard(256, seed=5))),
    ("mxfp4", dict(rounding="sr", hadamard=fp4gemm.Hadamard(256, seed=5))),
    ("nvfp4", dict()), ("nvfp4", dict(scale_rule="torchao")), ("nvfp4", dict(rounding="sr")),
    ("nvfp4", dict(block_2d=True)), ("nvfp4", dict(block_2d=True, rounding="sr")),
    ("nvfp4", dict(hadamard=fp4gemm.Hadamard(16, signs=fp4gemm.TE_RHT_SIGNS), rounding="sr")),
    ("nvfp4", dict(columnwise_hadamard=fp4gemm.Hadamard(16, signs=fp4gemm.TE_RHT_SIGNS))),
    ("fp4_row", dict()), ("fp4_row", dict(scale_rule="amax")), ("fp4_row", dict(rounding="sr", hadamard=64)),
]


def inputs(kind, shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g)
    if kind == "heavy":
        x = x / torch.randn(shape, generator=g).abs().clamp_min(0.05)
    elif kind == "tiny":
        x = x * 1e-30
    elif kind == "huge":
        x = x * 1e35
    elif kind == "const":
        x = torch.full(shape, -1.75)
    elif kind == "signed_zeros":  # +-0 rows and blocks, exact cancellations (signs of zero results)
        x[::3] = 0.0
        x[1::3, ::2] = -0.0
        x[2::3] = torch.where(torch.arange(shape[-1]) % 2 == 0, 1.0, -1.0)
    elif kind == "zeros_and_nan":
        x[..., :32] = 0
        x.view(-1)[5] = float("nan")
        x.view(-1)[-1] = float("inf")
    return x.to(dtype)


def assert_same(qc, qg):
    for part in ("codes", "scale_bytes"):
        a, b = getattr(qc, part)(), getattr(qg, part)().cpu()
        assert torch.equal(a.view(torch.uint8), b.view(torch.uint8)), part
    if qc.amax is not None:
        assert torch.equal(qc.amax, qg.amax.cpu()) or (qc.amax.isnan() and qg.amax.isnan())
    if qc.clip_mask is not None:
        assert torch.equal(qc.clip_mask, qg.clip_mask.cpu())


def both(x, fmt, kw, **extra):
    kw = dict(kw, **extra)
    if kw.get("rounding") == "sr":
        kw.setdefault("seed", 1234)
        kw.setdefault("offset", 77)
    return fp4gemm.quantize(x, fmt, **kw), fp4gemm.quantize(x.cuda(), fmt, **kw)


@pytest.mark.parametrize("fmt,kw", MODES)
@pytest.mark.parametrize("kind", ["normal", "heavy", "tiny", "huge", "const", "zeros_and_nan"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_rowwise_and_columnwise_bytes_match_cpu(fmt, kw, kind, dtype):
    h = kw.get("hadamard") or kw.get("columnwise_hadamard")
    g = h.g if isinstance(h, fp4gemm.Hadamard) else (h or 0)
    rows = {256: 768, 128: 384}.get(g, 320)  # 320 = 2.5 tiles of 128 rows
    x = inputs(kind, (rows, 512), dtype)
    qc, qg = both(x, fmt, kw, columnwise=True)
    assert_same(qc, qg)
    assert_same(qc.columnwise, qg.columnwise)


@pytest.mark.parametrize("fmt,kw", [MODES[0], MODES[7], MODES[11], MODES[16], MODES[18]])
@pytest.mark.parametrize("shape", [(1, 256), (7, 32 * 9), (3, 5, 768), (33, 4096), (2, 65536), (130, 1280)])
def test_shapes_rowwise(fmt, kw, shape):
    if shape[-1] % (kw["hadamard"].g if isinstance(kw.get("hadamard"), fp4gemm.Hadamard) else 16):
        pytest.skip("K not a multiple of this mode's Hadamard block")
    x = inputs("heavy", shape, torch.bfloat16)
    qc, qg = both(x, fmt, kw)
    assert_same(qc, qg)


# The block-per-thread kernel (quantize_rowblocks.cu): rowwise-only bf16 calls on contiguous rows with
# K a multiple of max(g, 64). Shapes: a partial last stage, rows of 640 (W = 128 blocks cross no row).
ROWBLOCK_MODES = [
    ("mxfp4", dict()), ("mxfp4", dict(scale_rule="rceil", hadamard=fp4gemm.Hadamard(16, seed=2))),
    ("mxfp4", dict(scale_rule="even", hadamard=fp4gemm.Hadamard(32, seed=3))),
    ("mxfp4", dict(hadamard=fp4gemm.Hadamard(64, seed=4))), ("mxfp4", dict(hadamard=fp4gemm.Hadamard(128, seed=5))),
    ("mxfp4", dict(rounding="sr", prescale=True, hadamard=fp4gemm.Hadamard(64, seed=6))),
    ("mxfp4", dict(rounding="sr", hadamard=fp4gemm.Hadamard(128, seed=7))),
    ("nvfp4", dict()), ("nvfp4", dict(scale_rule="torchao", rounding="sr")),
    ("nvfp4", dict(hadamard=fp4gemm.Hadamard(16, signs=fp4gemm.TE_RHT_SIGNS), rounding="sr")),
    ("nvfp4", dict(hadamard=fp4gemm.Hadamard(128, seed=8), prescale=True)),
    ("mxfp4", dict(prescale=True, hadamard=fp4gemm.Hadamard(16, seed=9))),  # RTN, 3/4 with 1/sqrt(g) folded
    ("mxfp4", dict(prescale=True, rounding="sr", hadamard=fp4gemm.Hadamard(32, seed=10))),  # 3/4, no fold
    ("mxfp4", dict(prescale=True, rounding="sr", hadamard=fp4gemm.Hadamard(128, seed=11))),
]


@pytest.mark.parametrize("fmt,kw", ROWBLOCK_MODES)
@pytest.mark.parametrize("kind", ["normal", "heavy", "tiny", "huge", "const", "zeros_and_nan", "signed_zeros"])
@pytest.mark.parametrize("shape", [(3, 128), (257, 640), (64, 4096)], ids=lambda s: "x".join(map(str, s)))
def test_rowblock_kernel_bytes_match_cpu(fmt, kw, kind, shape):
    x = inputs(kind, shape, torch.bfloat16)
    qc, qg = both(x, fmt, kw)
    assert_same(qc, qg)
    _, qb = both(x, fmt, kw, scale_layout="blocked")  # the blocked scales' byte stores
    assert torch.equal(qb.scale.view(torch.uint8).cpu(), fp4gemm.to_blocked(qc.scale).view(torch.uint8))
    assert torch.equal(qb.codes().cpu(), qc.codes())


@pytest.mark.parametrize("fmt,kw", [ROWBLOCK_MODES[i] for i in (3, 4, 5, 6, 9, 11)])
def test_rowblock_kernel_many_tiles_per_cta(fmt, kw):
    """2048 x 8192: 2048 tiles of 128 x 64 values, several per CTA on any GPU (a grid holds at most
    a few CTAs per SM), so the ring's stages are reused and its barrier phases flip."""
    x = inputs("heavy", (2048, 8192), torch.bfloat16, seed=3)
    qc, qg = both(x, fmt, kw)
    assert_same(qc, qg)


@pytest.mark.parametrize("fmt,kw", ROWBLOCK_MODES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_lane_kernel_bytes_match_cpu(fmt, kw, dtype, monkeypatch):
    """The lane kernel (quantize_rows), which rowwise-only calls now reach only where the block kernel
    does not apply (fp16 / fp32, strided rows, K not a multiple of max(g, 64), QuEST, fp4_row, g = 256)."""
    monkeypatch.setenv("FP4GEMM_QUANTIZE_KERNEL", "lanes")
    x = inputs("heavy", (96, 512), dtype)
    qc, qg = both(x, fmt, kw)
    assert_same(qc, qg)


def quantize_with_kernel_names(x, **kw):
    """fp4gemm.quantize(x, **kw) and the names of the CUDA kernels it ran (the profiler's)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        q = fp4gemm.quantize(x, **kw)
        torch.cuda.synchronize()
    return q, [e.name for e in prof.events()]


def test_rowblock_kernel_runs_and_the_lane_kernel_agrees(monkeypatch):
    """The profiler's kernel names show which kernel ran, so the byte tests above cannot pass by
    running the lane kernel; FP4GEMM_QUANTIZE_KERNEL=lanes selects that one, with the same bytes."""
    x = inputs("heavy", (512, 2048), torch.bfloat16).cuda()
    kw = dict(rounding="sr", seed=3, hadamard=fp4gemm.Hadamard(128, seed=1))
    q, names = quantize_with_kernel_names(x, **kw)
    assert any("quantize_rowblocks" in n for n in names), names
    monkeypatch.setenv("FP4GEMM_QUANTIZE_KERNEL", "lanes")
    q2, names = quantize_with_kernel_names(x, **kw)
    assert not any("quantize_rowblocks" in n for n in names) and any("quantize_rows" in n for n in names), names
    assert torch.equal(q.codes(), q2.codes()) and torch.equal(q.scale_bytes(), q2.scale_bytes())


# The row+col block kernel (quantize_tileblocks.cu): rowwise and columnwise bf16 calls on contiguous rows,
# R and K multiples of 64, one format / rule / rounding, column g 16 / 32 / 64 and row g 0 or the same.
# Shapes: one tile short of its 128 rows, rows not a multiple of 128, many tiles.
TILEBLOCK_MODES = [
    ("mxfp4", dict(hadamard=fp4gemm.Hadamard(64, seed=2))),
    ("mxfp4", dict(rounding="sr", prescale=True, hadamard=fp4gemm.Hadamard(64, seed=3))),
    ("mxfp4", dict(scale_rule="rceil", hadamard=fp4gemm.Hadamard(32, seed=4))),
    ("mxfp4", dict(scale_rule="even", rounding="sr", hadamard=fp4gemm.Hadamard(16, seed=5))),
    ("mxfp4", dict(rounding="sr", hadamard=None, columnwise_hadamard=fp4gemm.Hadamard(64, seed=6))),
    ("mxfp4", dict(prescale=True, hadamard=fp4gemm.Hadamard(16, seed=9))),  # RTN, 3/4 with 1/sqrt(g) folded
    ("nvfp4", dict(hadamard=None, columnwise_hadamard=fp4gemm.Hadamard(32, seed=10))),
    ("nvfp4", dict(scale_rule="torchao", rounding="sr", hadamard=fp4gemm.Hadamard(16, seed=11))),
    ("nvfp4", dict(rounding="sr", columnwise_hadamard=fp4gemm.Hadamard(16, signs=fp4gemm.TE_RHT_SIGNS))),
    ("nvfp4", dict(hadamard=fp4gemm.Hadamard(32, seed=7), prescale=True)),
    # different sign vectors per direction; NVFP4 at g = 64; the 3/4 prescale where 1/sqrt(g) is not folded
    ("mxfp4", dict(rounding="sr", hadamard=fp4gemm.Hadamard(64, seed=4), columnwise_hadamard=fp4gemm.Hadamard(64, seed=5))),
    ("nvfp4", dict(rounding="sr", hadamard=fp4gemm.Hadamard(64, seed=12))),
    ("mxfp4", dict(prescale=True, rounding="sr", hadamard=fp4gemm.Hadamard(32, seed=13))),
]


@pytest.mark.parametrize("fmt,kw", TILEBLOCK_MODES)
@pytest.mark.parametrize("kind", ["normal", "heavy", "tiny", "huge", "const", "zeros_and_nan", "signed_zeros"])
@pytest.mark.parametrize("shape", [(64, 64), (192, 640), (256, 4096)], ids=lambda s: "x".join(map(str, s)))
def test_tileblock_kernel_bytes_match_cpu(fmt, kw, kind, shape):
    x = inputs(kind, shape, torch.bfloat16)
    qc, qg = both(x, fmt, kw, columnwise=True)
    assert_same(qc, qg)
    assert_same(qc.columnwise, qg.columnwise)
    _, qb = both(x, fmt, kw, columnwise=True, scale_layout="blocked")  # the blocked scales' byte stores
    for c, b in ((qc, qb), (qc.columnwise, qb.columnwise)):
        assert torch.equal(b.scale.view(torch.uint8).cpu(), fp4gemm.to_blocked(c.scale).view(torch.uint8))
        assert torch.equal(b.codes().cpu(), c.codes())


@pytest.mark.parametrize("fmt,kw", [TILEBLOCK_MODES[i] for i in (1, 4, 8, 10)])
@pytest.mark.parametrize("shape", [(2048, 8192), (2112, 4096)], ids=lambda s: "x".join(map(str, s)))
def test_tileblock_kernel_many_tiles_per_cta(fmt, kw, shape):
    """2048 tiles of 128 x 64 (or 1088 with a last row of half tiles), several per CTA on any GPU, so
    the ring's stages are reused and its barrier phases flip."""
    x = inputs("heavy", shape, torch.bfloat16, seed=3)
    qc, qg = both(x, fmt, kw, columnwise=True)
    assert_same(qc, qg)
    assert_same(qc.columnwise, qg.columnwise)


def test_tileblock_kernel_fallbacks_match_cpu():
    """Calls with a column RHT that the row+col block kernel must leave to the tile kernel: rows 2 bytes
    off 16-byte alignment, a row stride other than K, R not a multiple of 64, fp16."""
    kw = dict(rounding="sr", seed=2, prescale=True, hadamard=fp4gemm.Hadamard(32, seed=1), columnwise=True)
    base = torch.randn(128 * 256 + 1, device="cuda", dtype=torch.bfloat16)
    wide = torch.randn(128, 320, device="cuda", dtype=torch.bfloat16)
    for t in (base[1:].view(128, 256), wide[:, :256], torch.randn(96, 256, device="cuda", dtype=torch.bfloat16),
              torch.randn(128, 256, device="cuda", dtype=torch.float16)):
        qc, qg = fp4gemm.quantize(t.cpu().contiguous(), **kw), fp4gemm.quantize(t, **kw)
        assert_same(qc, qg)
        assert_same(qc.columnwise, qg.columnwise)


def test_tileblock_kernel_takes_the_nvfp4_amax_pass():
    """TransformerEngine's wgrad quantization without a given amax: the amax pre-pass of both directions
    (the column's after its RHT) is the block kernel too, two launches and no tile kernel."""
    x = inputs("heavy", (512, 1024), torch.bfloat16)
    kw = dict(rounding="sr", seed=4, columnwise=True, columnwise_hadamard=fp4gemm.Hadamard(16, signs=fp4gemm.TE_RHT_SIGNS))
    qg, names = quantize_with_kernel_names(x.cuda(), fmt="nvfp4", **kw)
    assert sum("quantize_tileblocks" in n for n in names) == 2 and not any("quantize_tile<" in n for n in names), names
    qc = fp4gemm.quantize(x, "nvfp4", **kw)
    assert_same(qc, qg)
    assert_same(qc.columnwise, qg.columnwise)


def test_tileblock_kernel_runs_and_the_tile_kernel_agrees(monkeypatch):
    """As for the rowwise block kernel: the profiler shows the row+col block kernel ran, and
    FP4GEMM_QUANTIZE_KERNEL=lanes (the tile kernel) gives the same bytes."""
    x = inputs("heavy", (512, 2048), torch.bfloat16).cuda()
    kw = dict(rounding="sr", seed=3, prescale=True, hadamard=fp4gemm.Hadamard(64, seed=1), columnwise=True)
    q, names = quantize_with_kernel_names(x, **kw)
    assert any("quantize_tileblocks" in n for n in names), names
    monkeypatch.setenv("FP4GEMM_QUANTIZE_KERNEL", "lanes")
    q2, names = quantize_with_kernel_names(x, **kw)
    assert not any("quantize_tileblocks" in n for n in names) and any("quantize_tile" in n for n in names), names
    for a, b in ((q, q2), (q.columnwise, q2.columnwise)):
        assert torch.equal(a.codes(), b.codes()) and torch.equal(a.scale_bytes(), b.scale_bytes())


# Columnwise, a thread owns 32 rows of a column: NVFP4 / fp4_row tiles whose last span holds one
# 16-row block, column RHT larger than 32 (stages across the spans of one warp), ragged columns.
@pytest.mark.parametrize("fmt,kw,shape", [
    ("nvfp4", dict(), (48, 96)), ("nvfp4", dict(rounding="sr"), (80, 200)),
    ("nvfp4", dict(block_2d=True), (48, 96)), ("fp4_row", dict(), (48, 64)),
    ("nvfp4", dict(columnwise_hadamard=fp4gemm.Hadamard(64, seed=2), rounding="sr"), (192, 80)),
    ("nvfp4", dict(columnwise_hadamard=fp4gemm.Hadamard(256, seed=2)), (256, 48)),
    ("mxfp4", dict(columnwise_hadamard=fp4gemm.Hadamard(128, seed=2), rounding="sr"), (384, 100)),
    ("mxfp4", dict(columnwise_hadamard=fp4gemm.Hadamard(64, seed=2), scale_rule="quest", clip_mask=True), (128, 40)),
])
@pytest.mark.parametrize("kind", ["heavy", "zeros_and_nan"])
def test_columnwise_spans(fmt, kw, shape, kind):
    x = inputs(kind, shape, torch.bfloat16)
    qc, qg = both(x, fmt, kw, rowwise=False, columnwise=True)  # the columnwise quantization itself
    assert_same(qc, qg)


def test_rowwise_only_and_columnwise_only_agree_with_both():
    x = inputs("normal", (256, 384), torch.bfloat16).cuda()
    kw = dict(rounding="sr", seed=5, hadamard=fp4gemm.Hadamard(64, seed=1))
    q = fp4gemm.quantize(x, columnwise=True, **kw)
    assert torch.equal(q.codes(), fp4gemm.quantize(x, **kw).codes())
    assert torch.equal(q.columnwise.codes(), fp4gemm.quantize(x, rowwise=False, columnwise=True, **kw).codes())


def test_misaligned_and_strided_inputs():
    base = torch.randn(64 * 512 + 3, device="cuda", dtype=torch.bfloat16)
    x = base[1:1 + 64 * 512].view(64, 512)                   # 2-byte misaligned rows
    big = torch.randn(64, 640, device="cuda", dtype=torch.bfloat16)
    y = big[:, :512]                                          # row stride 640
    for t in (x, y):
        assert_same(fp4gemm.quantize(t.cpu().contiguous(), columnwise=True), fp4gemm.quantize(t, columnwise=True))


def test_given_amax_is_used_as_is():
    x = inputs("normal", (128, 256), torch.bfloat16)
    amax = torch.tensor(20.0)
    qc = fp4gemm.quantize(x, "nvfp4", amax=amax)
    qg = fp4gemm.quantize(x.cuda(), "nvfp4", amax=amax.cuda())
    assert qg.amax.item() == 20.0
    assert_same(qc, qg)


def test_more_than_2_pow_31_elements():
    rows, K = (2**31) // 4096 + 2, 4096
    x = torch.empty(rows, K, device="cuda", dtype=torch.bfloat16).normal_()
    q = fp4gemm.quantize(x)
    tail = x[-3:].cpu()
    qc = fp4gemm.quantize(tail)
    assert torch.equal(q.codes()[-3:].cpu(), qc.codes()) and torch.equal(q.scale_bytes()[-3:].cpu(), qc.scale_bytes())


def test_dequantize_and_hadamard_on_gpu_match_cpu():
    x = inputs("heavy", (96, 512), torch.bfloat16)
    for fmt in ("mxfp4", "nvfp4", "fp4_row"):
        qc, qg = both(x, fmt, dict(prescale=True))
        assert torch.equal(qc.dequantize(), qg.dequantize().cpu())
    h = fp4gemm.Hadamard(128, seed=2)
    assert torch.equal(fp4gemm.hadamard_transform(x, h), fp4gemm.hadamard_transform(x.cuda(), h).cpu())


def test_gemm_on_cuda_tensors():
    a, w = torch.randn(64, 256, dtype=torch.bfloat16), torch.randn(32, 256, dtype=torch.bfloat16)
    y = fp4gemm.matmul(a.cuda(), w.cuda().t(), "nvfp4")
    assert y.is_cuda and torch.equal(y.cpu(), fp4gemm.matmul(a, w.t(), "nvfp4"))


def test_uses_the_current_stream():
    x = inputs("normal", (512, 1024), torch.bfloat16).cuda()
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        q = fp4gemm.quantize(x, "nvfp4", columnwise=True)
    s.synchronize()
    assert_same(fp4gemm.quantize(x.cpu(), "nvfp4", columnwise=True), q)


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4"])
@pytest.mark.parametrize("shape", [(320, 768), (130, 160), (1, 96), (257, 32), (128, 512), (77, 4128)])
def test_blocked_scales_match_cpu(fmt, shape):
    """Rowwise and columnwise, rows not a multiple of 128, scale columns not a multiple of 4 (160 / 32
    = 5, 96 / 16 = 6, ...): GPU bytes == CPU bytes, and == layout.to_blocked of the canonical scales."""
    x = inputs("heavy", shape, torch.bfloat16)
    kw = dict(fmt=fmt, scale_layout="blocked", columnwise=shape[0] % 32 == 0, rounding="sr", seed=9)
    qc, qg = fp4gemm.quantize(x, **kw), fp4gemm.quantize(x.cuda(), **kw)
    canonical = fp4gemm.quantize(x, **{**kw, "scale_layout": "canonical"})
    pairs = [(qc, qg, canonical)] + ([(qc.columnwise, qg.columnwise, canonical.columnwise)] if kw["columnwise"] else [])
    for a, b, c in pairs:
        assert torch.equal(a.scale.view(torch.uint8), b.scale.view(torch.uint8).cpu())
        assert torch.equal(b.scale.view(torch.uint8).cpu(), fp4gemm.to_blocked(c.scale).view(torch.uint8))
        assert torch.equal(a.codes(), b.codes().cpu())
