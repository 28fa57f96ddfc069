"""fp4gemm.gemm_quantized: the GEMM's D quantized along N, byte for byte the quantization of its fp32 D.

Oracle: the NumPy reference quantizer (tests/reference.py) applied to the fp32 D that
fp4gemm.gemm(..., out_dtype=torch.float32) gives on the same device (that D is checked against the
float64 product in test_gemm.py / test_cuda_gemm.py). Codes, scales, NVFP4's amax and QuEST's clip
mask must all match. On Hopper the epilogue quantizes D itself for mxfp4 and for nvfp4 with a given
amax (hadamard <= 128); the other configurations take two passes; both are covered, as are rows of
either operand outside the FP8 window, which the GEMM recomputes after the tensor cores.
"""
import numpy as np
import pytest
import torch

import fp4gemm
import reference as ref

HOPPER = fp4gemm._C.cuda_capability() == 90
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(
    not HOPPER, reason="the Hopper GEMMs need compute capability 9.0")])]

GIVEN = object()  # stands for "D's amax is given": 1.25 x the true one, as a previous step's would be

CONFIGS = [  # (fmt, quantization arguments); hadamard <= 128 and mxfp4 / nvfp4 with amax: fused on Hopper
    ("mxfp4", {}),
    ("mxfp4", dict(scale_rule="rceil", scale_layout="blocked")),
    ("mxfp4", dict(scale_rule="even", hadamard=32)),
    ("mxfp4", dict(scale_rule="quest", hadamard=128, clip_mask=True)),
    ("mxfp4", dict(rounding="sr", prescale=True, hadamard=fp4gemm.Hadamard(64, seed=5), seed=9, offset=3)),
    ("mxfp4", dict(rounding="sr", hadamard=16, seed=2)),
    ("nvfp4", dict(amax=GIVEN)),
    ("nvfp4", dict(scale_rule="torchao", amax=GIVEN, rounding="sr", seed=4, hadamard=16)),
    ("nvfp4", {}),                                        # amax computed: two passes
    ("mxfp4", dict(hadamard=256)),                        # beyond the epilogue's 128 columns: two passes
    ("fp4_row", {}),                                      # a whole-row scale: two passes
]


def expected(d: torch.Tensor, fmt: str, kw: dict) -> dict:
    """The reference quantization of the fp32 D (host arrays)."""
    h = kw.get("hadamard")
    if isinstance(h, int):
        h = fp4gemm.Hadamard(h)
    signs = None
    if h is not None:
        words = h.sign_words()
        signs = np.array([-1 if (words[i // 32] >> (i % 32)) & 1 else 1 for i in range(h.g)], dtype=np.int64)
    amax = kw.get("amax")
    return ref.quantize(d.cpu().numpy(), fmt, scale_rule=kw.get("scale_rule"), rounding=kw.get("rounding", "rtn"),
                        prescale=kw.get("prescale", False), hadamard_g=h.g if h else None, signs=signs,
                        seed=kw.get("seed", 0), offset=kw.get("offset", 0),
                        amax=None if amax is None else np.float32(amax.item()))


def assert_same_bytes(q: fp4gemm.QuantizedTensor, want: dict):
    data = q.codes().cpu().numpy()
    np.testing.assert_array_equal(data, want["data"], err_msg="codes")
    if q.fmt == "fp4_row":
        np.testing.assert_array_equal(q.scale.cpu().numpy().reshape(-1).view(np.uint32), want["scale"].view(np.uint32))
    else:
        if q.scale_layout == "blocked":  # the raw bytes against the reference's blocked layout
            np.testing.assert_array_equal(q.scale.view(torch.uint8).cpu().numpy().reshape(-1),
                                          ref.to_blocked(want["scale"]).reshape(-1), err_msg="blocked scales")
        else:
            scale = q.scale.view(torch.uint8).cpu().numpy()
            np.testing.assert_array_equal(scale, want["scale"], err_msg="scales")
    if q.fmt == "nvfp4":
        assert q.amax.cpu().numpy().view(np.uint32) == np.float32(want["amax"]).view(np.uint32)
    if q.clip_mask is not None:
        np.testing.assert_array_equal(q.clip_mask.cpu().numpy(), want["clip_mask"], err_msg="clip mask")


def operands(m, n, k, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(m, k, generator=g)
    b = torch.randn(n, k, generator=g)
    a[:, torch.randperm(k, generator=g)[:4]] *= 30.0  # outlier features: scales vary across D's blocks
    return a.to(device), b.to(device)


def run(qa, qb, fmt, kw, mma="auto", bias=None, alpha=1.0):
    """(gemm_quantized's output, the reference quantization of gemm's fp32 D)."""
    d = fp4gemm.gemm(qa, qb, alpha=alpha, bias=bias, out_dtype=torch.float32, mma=mma)
    kw = dict(kw)
    if kw.get("amax") is GIVEN:
        kw["amax"] = (d.abs().max() * 1.25).reshape(())
    q = fp4gemm.gemm_quantized(qa, qb, fmt, alpha=alpha, bias=bias, mma=mma, **kw)
    return q, expected(d, fmt, kw)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fmt,kw", CONFIGS, ids=lambda v: str(v))
@pytest.mark.parametrize("m,n,k", [(200, 512, 256), (1, 256, 128), (130, 768, 512)])
def test_quantized_d_equals_quantize_of_fp32_d(device, fmt, kw, m, n, k):
    a, b = operands(m, n, k, device)
    op_fmt = "nvfp4" if fmt == "nvfp4" else "mxfp4"  # the GPU pairs nvfp4 with nvfp4
    qa, qb = fp4gemm.quantize(a, op_fmt), fp4gemm.quantize(b, op_fmt)
    bias = torch.randn(n).to(device)
    q, want = run(qa, qb, fmt, kw, bias=bias, alpha=0.5)
    assert q.shape == (m, n) and q.fmt == fmt and q.device.type == device
    assert_same_bytes(q, want)


@pytest.mark.cuda
@pytest.mark.skipif(not HOPPER, reason="the Hopper GEMMs need compute capability 9.0")
@pytest.mark.parametrize("mma", ["fp8", "bf16"])
@pytest.mark.parametrize("m,n,k", [(1000, 4096, 1024), (4096, 1152, 2048), (96, 160, 2048)])
def test_tiles_and_ragged_edges(mma, m, n, k):
    """Large and small tiles (M = 96 picks the ping-pong 64 x 128 one), N not a multiple of the
    epilogue's 128 columns (160), M not a multiple of the tile."""
    a, b = operands(m, n, k, "cuda", seed=1)
    qa, qb = fp4gemm.quantize(a, "mxfp4"), fp4gemm.quantize(b, "mxfp4")
    for kw in (dict(hadamard=32, rounding="sr", seed=7), dict(scale_rule="rceil")):
        q, want = run(qa, qb, "mxfp4", kw, mma=mma)
        assert_same_bytes(q, want)


@pytest.mark.cuda
@pytest.mark.skipif(not HOPPER, reason="the Hopper GEMMs need compute capability 9.0")
@pytest.mark.parametrize("special", ["a", "b", "both"])
@pytest.mark.parametrize("kw", [dict(hadamard=64, rounding="sr", seed=3), dict(scale_rule="even")], ids=str)
def test_rows_outside_the_fp8_window(special, kw):
    """Rows of A (whole D rows) and of B (D columns) with a block 2^-30 / 2^-40 below the rest, which
    the FP8 fold cannot carry, are recomputed after the tensor cores; the quantized D must then hold
    the bytes of the recomputed values (the tensor cores' are off there)."""
    m, n, k = 300, 384, 512
    a, b = operands(m, n, k, "cuda", seed=2)
    if special in ("a", "both"):
        a[torch.arange(m) % 7 == 2, 32:64] *= 2.0 ** -30
    if special in ("b", "both"):
        b[torch.arange(n) % 11 == 5, 64:96] *= 2.0 ** -40
    qa, qb = fp4gemm.quantize(a, "mxfp4"), fp4gemm.quantize(b, "mxfp4")
    q, want = run(qa, qb, "mxfp4", kw, mma="fp8")
    assert_same_bytes(q, want)


@pytest.mark.parametrize("device", DEVICES)
def test_bad_quantized_d_arguments(device):
    a, b = operands(64, 48, 64, device)
    qa, qb = fp4gemm.quantize(a, "mxfp4"), fp4gemm.quantize(b, "mxfp4")
    with pytest.raises(ValueError, match="d_quant"):  # N = 48 is not a multiple of the block 32
        fp4gemm.gemm_quantized(qa, qb, "mxfp4")
    a, b = operands(64, 64, 64, device)
    qa, qb = fp4gemm.quantize(a, "mxfp4"), fp4gemm.quantize(b, "mxfp4")
    with pytest.raises(ValueError, match="d_quant"):  # the RHT block must divide N
        fp4gemm.gemm_quantized(qa, qb, "mxfp4", hadamard=128)
    with pytest.raises(ValueError, match="amax"):
        fp4gemm.gemm_quantized(qa, qb, "mxfp4", amax=torch.ones((), device=device))
    with pytest.raises(ValueError, match="block_2d|scale_rule"):
        fp4gemm.gemm_quantized(qa, qb, "mxfp4", scale_rule="te")
    with pytest.raises(ValueError, match="qa"):
        fp4gemm.gemm_quantized(fp4gemm.quantize(a.reshape(2, 32, 64), "mxfp4"), qb, "mxfp4")
