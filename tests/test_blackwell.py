"""Blackwell GEMMs, host side (no GPU needed): path selection by compute capability, fp4gemm's argument
rules for the native kernels, CUTLASS's can_implement (in builds that contain the kernels), GEMMs of
operands with blocked scales on the CPU, and the selftest command."""
import importlib
import subprocess
import sys

import numpy as np
import pytest
import torch

import fp4gemm
import reference as ref
from fp4gemm import _C, selftest

P = _C.GemmPath
BASE = 1 << 20  # stand-in device addresses: the host checks never dereference them


def operand(fmt, rows, k, data=BASE, scale=2 * BASE, blocked=False):
    q = _C.QuantizedIn()
    q.fmt = {"mxfp4": _C.Format.MXFP4, "nvfp4": _C.Format.NVFP4, "fp4_row": _C.Format.FP4Row}[fmt]
    q.scale_rule = {"mxfp4": _C.ScaleRule.Floor, "nvfp4": _C.ScaleRule.TE, "fp4_row": _C.ScaleRule.Pow2}[fmt]
    q.data, q.scale, q.rows, q.k, q.scale_blocked = data, scale, rows, k, blocked
    if fmt == "nvfp4":
        q.amax = 3 * BASE
    return q


def args(fmt_a="mxfp4", fmt_b=None, m=256, n=128, k=512, out=_C.DType.BF16, mma=_C.Mma.Auto, **kw):
    g = _C.GemmArgs()
    g.a = operand(fmt_a, m, k, **kw)
    g.b = operand(fmt_b or fmt_a, n, k, data=4 * BASE, scale=5 * BASE)
    g.d, g.out_dtype, g.mma = 6 * BASE, out, mma
    return g


# (capability, mma, format) -> path; the table of fp4gemm.gemm's docstring.
PATHS = [((9, 0), "Auto", "mxfp4", P.Sm90FP8), ((9, 0), "Auto", "fp4_row", P.Sm90FP8),
         ((9, 0), "Auto", "nvfp4", P.Sm90BF16), ((9, 0), "FP8", "mxfp4", P.Sm90FP8),
         ((9, 0), "BF16", "mxfp4", P.Sm90BF16), ((9, 0), "BF16", "nvfp4", P.Sm90BF16),
         ((10, 0), "Auto", "mxfp4", P.Sm100FP4), ((10, 0), "FP4", "nvfp4", P.Sm100FP4),
         ((10, 0), "Auto", "fp4_row", P.Sm100FP4),
         ((12, 0), "Auto", "nvfp4", P.Sm120FP4), ((12, 0), "FP4", "mxfp4", P.Sm120FP4)]


@pytest.mark.parametrize("cc,mma,fmt,path", PATHS, ids=str)
def test_gemm_path_by_capability(cc, mma, fmt, path):
    assert _C.gemm_path(args(fmt, mma=getattr(_C.Mma, mma)), *cc) == path


# Requests a device cannot run: a ValueError naming the argument.
REFUSED = [((9, 0), "FP4", "mxfp4", "mma: 'fp4' runs the Blackwell"), ((9, 0), "FP8", "nvfp4", "mma: nvfp4"),
           ((10, 0), "FP8", "mxfp4", "mma: 'fp8' selects the Hopper"), ((12, 0), "BF16", "nvfp4", "mma: 'bf16'"),
           ((8, 9), "Auto", "mxfp4", "a: on a GPU of compute capability 8.9"),
           ((10, 3), "Auto", "mxfp4", "compute capability 10.3"), ((12, 1), "FP4", "nvfp4", "12.1"),
           ((9, 2), "Auto", "mxfp4", "9.2")]


@pytest.mark.parametrize("cc,mma,fmt,message", REFUSED, ids=str)
def test_gemm_path_refuses_what_the_device_cannot_run(cc, mma, fmt, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        _C.gemm_path(args(fmt, mma=getattr(_C.Mma, mma)), *cc)


GOOD = [dict(), dict(fmt_a="nvfp4"), dict(fmt_a="fp4_row"), dict(fmt_a="mxfp4", fmt_b="fp4_row"),
        dict(m=1, n=8, k=32), dict(m=300, n=136, k=4128, out=_C.DType.F32), dict(m=3, n=8, k=96, out=_C.DType.F16),
        dict(fmt_a="nvfp4", k=4128, blocked=True)]


@pytest.mark.parametrize("path", [P.Sm100FP4, P.Sm120FP4], ids=str)
@pytest.mark.parametrize("kw", GOOD, ids=str)
def test_native_check_accepts(path, kw):
    # In builds with the kernel this includes CUTLASS's can_implement.
    assert _C.native_gemm_check(args(**kw), path) == ""


BAD = [(dict(fmt_a="nvfp4", k=48), "a: K=48 must be a multiple of 32"),
       (dict(fmt_a="nvfp4", fmt_b="mxfp4"), "b.fmt: "),
       (dict(n=4), "b: N=4 must be a multiple of 8"), (dict(n=6, out=_C.DType.F32), "b: N=6 must be a multiple of 4"),
       (dict(data=BASE + 8), "a.data: must be 16-byte aligned"),
       (dict(blocked=True, scale=2 * BASE + 4), "a.scale: blocked scales must be 16-byte aligned"),
       (dict(fmt_a="fp4_row", blocked=True), "a.scale_blocked"),
       (dict(k=40), "a: K=40 is not a multiple of 32")]


@pytest.mark.parametrize("path", [P.Sm100FP4, P.Sm120FP4], ids=str)
@pytest.mark.parametrize("kw,message", BAD, ids=str)
def test_native_check_names_the_argument(path, kw, message):
    assert _C.native_gemm_check(args(**kw), path).startswith(message)


def test_native_check_rejects_a_hopper_path():
    with pytest.raises(ValueError, match="path"):
        _C.native_gemm_check(args(), P.Sm90FP8)


needs_kernels = pytest.mark.skipif(not _C.built_with_path(P.Sm100FP4),
                                   reason="this build has no Blackwell kernels (CPU-only build)")


@needs_kernels
@pytest.mark.parametrize("path", [P.Sm100FP4, P.Sm120FP4], ids=str)
@pytest.mark.parametrize("kw", [dict(k=48, fmt_a="nvfp4"), dict(n=4), dict(n=6, out=_C.DType.F32)], ids=str)
def test_cutlass_agrees_with_our_rules(path, kw):
    """What fp4gemm's rules reject, CUTLASS's can_implement rejects too: the rules are not stricter than
    needed, and they run before any launch with a message naming the argument."""
    assert _C.native_cutlass_can_implement(args(**kw), path) != ""


@needs_kernels
@pytest.mark.parametrize("path", [P.Sm100FP4, P.Sm120FP4], ids=str)
@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4"])
@pytest.mark.parametrize("out", [_C.DType.BF16, _C.DType.F16, _C.DType.F32], ids=str)
def test_cutlass_can_implement(path, fmt, out):
    for m, n, k in ((1, 8, 32), (200, 136, 4128), (4096, 4096, 4096)):
        assert _C.native_cutlass_can_implement(args(fmt, m=m, n=n, k=k, out=out), path) == ""


@needs_kernels
@pytest.mark.parametrize("path", [P.Sm100FP4, P.Sm120FP4], ids=str)
@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4"])
@pytest.mark.parametrize("rows,k", [(1, 32), (130, 160), (257, 4128), (128, 512), (300, 96)])
@pytest.mark.parametrize("operand_b", [False, True], ids=["A", "B"])
def test_kernel_reads_scales_where_the_quantizer_writes_them(path, fmt, rows, k, operand_b):
    """CUTLASS's scale-factor layout function (the addresses the kernel's TMA reads) equals SPEC.md 2's
    blocked layout (tests/reference.py, independent of the library) for every scale of the operand,
    rows not a multiple of 128 and scale columns not a multiple of 4 included."""
    cols = k // {"mxfp4": 32, "nvfp4": 16}[fmt]
    got = np.array(_C.native_scale_offsets(path, getattr(_C.Format, fmt.upper()), rows, k, operand_b))
    padded = ref.blocked_index(-(-rows // 128) * 128, -(-cols // 4) * 4)
    assert np.array_equal(got.reshape(rows, cols), padded[:rows, :cols])


def test_built_paths_are_consistent():
    assert _C.built_with_path(P.Sm90FP8) == _C.built_with_cuda() == _C.built_with_path(P.Sm90BF16)
    if not _C.built_with_cuda():
        assert not _C.built_with_path(P.Sm100FP4) and not _C.built_with_path(P.Sm120FP4)


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4"])
@pytest.mark.parametrize("m,n,k", [(130, 24, 160), (1, 8, 96), (257, 40, 32)])
def test_cpu_gemm_reads_blocked_scales(fmt, m, n, k):
    """Blocked-scale operands give the canonical operands' result bit for bit (rows not a multiple of
    128, scale columns not a multiple of 4): the scales are read through the same layout function."""
    g = torch.Generator().manual_seed(m + k)
    a, b = torch.randn(m, k, generator=g), torch.randn(n, k, generator=g)
    a[:, ::7] *= 30
    qa, qb = fp4gemm.quantize(a, fmt), fp4gemm.quantize(b, fmt)
    qa_b, qb_b = (fp4gemm.quantize(a, fmt, scale_layout="blocked"), fp4gemm.quantize(b, fmt, scale_layout="blocked"))
    want = fp4gemm.gemm(qa, qb, alpha=0.5, out_dtype=torch.float32)
    for x, y in ((qa_b, qb_b), (qa, qb_b), (qa_b, qb)):
        assert torch.equal(fp4gemm.gemm(x, y, alpha=0.5, out_dtype=torch.float32), want)


def test_gemm_rejects_wrong_blocked_size():
    q = fp4gemm.quantize(torch.randn(4, 64), "mxfp4", scale_layout="blocked")
    with pytest.raises(ValueError, match="a: scales must be"):
        fp4gemm.ops.gemm_op(q.codes(), q.scale.view(torch.uint8)[:100], None, "mxfp4", "floor", 1.0,
                            q.codes(), q.scale.view(torch.uint8), None, "mxfp4", "floor", 1.0,
                            1.0, None, torch.float32, False, "auto", True, True)


def test_mma_fp4_is_a_known_value():
    q = fp4gemm.quantize(torch.randn(8, 64), "mxfp4")
    assert fp4gemm.gemm(q, q, mma="fp4").shape == (8, 8)  # the CPU path ignores mma
    with pytest.raises(ValueError, match="mma"):
        fp4gemm.gemm(q, q, mma="fp6")


def test_selftest_command_without_gpu():
    if fp4gemm.cuda_available():
        pytest.skip("a GPU is visible: the command would test it (tests/test_cuda_native.py covers that)")
    r = subprocess.run([sys.executable, "-m", "fp4gemm", "selftest"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "no CUDA GPU" in r.stdout and "nothing to test" in r.stdout


def test_selftest_table_with_the_cpu_standing_in(capsys):
    assert selftest.main("cpu") == 0
    out = capsys.readouterr().out
    assert "0 failed" in out and "FAIL" not in out
    assert "gemm mma=fp8 mxfp4 -> bfloat16" in out and "blocked layout nvfp4" in out


def test_selftest_fails_on_a_wrong_gemm(capsys, monkeypatch):
    """The selftest's oracle catches a wrong block scale: every output of one row off by a factor 2."""
    gemm_module = importlib.import_module("fp4gemm.gemm")  # the module (fp4gemm.gemm is the function)
    real = gemm_module.gemm

    def wrong(qa, qb, **kw):
        d = real(qa, qb, **kw)
        if qa.qdata.device.type == "cpu" and kw.get("mma") is not None:  # the checked call, not the reference
            d[3] *= 2
        return d
    monkeypatch.setattr(gemm_module, "gemm", wrong)
    assert selftest.main("cpu") == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "off by more than the accumulation bound" in out


def test_selftest_fails_on_wrong_bytes(capsys, monkeypatch):
    real = selftest.torch_quantize
    calls = []

    def wrong(x, kw):
        q = real(x, kw)
        calls.append(1)
        if len(calls) % 2 == 0:  # the second call of each pair is the checked one
            q.codes()[0, 0] ^= 1
        return q
    monkeypatch.setattr(selftest, "torch_quantize", wrong)
    assert selftest.main("cpu") == 1
    assert "codes differ" in capsys.readouterr().out
