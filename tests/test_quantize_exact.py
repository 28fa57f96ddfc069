"""fp4gemm's CPU quantization bytes == the independent NumPy reference (tests/reference.py), every mode.

Covers every fmt x scale rule x rounding (RTN, SR with fixed seed/offset), prescale, RHT with
g in {16, ..., 256} (seeded, explicit and TE signs), NVFP4 2D blocks, rowwise / columnwise / both,
bf16 / fp16 / fp32 inputs, odd row counts, leading batch dims, and data with ties, heavy tails,
tiny / subnormal / huge magnitudes, constants, zero blocks and non-finite values.
Nothing here is a recorded library output: every expectation comes from reference.py.
"""
import os
import sys
import zlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
fp4gemm = pytest.importorskip("fp4gemm")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as R  # noqa: E402

F32 = np.float32
SEED = 0x0123456789ABCDEF          # uses both 32-bit key words
OFFSET = (5 << 32) | 0x9E3779B9    # uses both 32-bit offset words
FMT_RULES = [("mxfp4", "floor"), ("mxfp4", "rceil"), ("mxfp4", "even"), ("mxfp4", "quest"),
             ("nvfp4", "te"), ("nvfp4", "torchao"), ("fp4_row", "pow2"), ("fp4_row", "amax")]
FR_IDS = [f"{f}-{r}" for f, r in FMT_RULES]
BLOCK = {"mxfp4": 32, "nvfp4": 16}
TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


# ---------------------------------------------------------------------------------------------- inputs
def make_input(kind, shape, seed=0):
    """float32 test data of one kind (blocks of 32 along the last dim where it matters)."""
    rng = np.random.default_rng(zlib.crc32(repr((kind, tuple(shape), seed)).encode()))
    K = shape[-1]
    n = int(np.prod(shape))
    if kind == "normal":
        x = rng.standard_normal(n)
    elif kind == "heavy":  # student-t df=2 times outlier channels
        x = rng.standard_t(2, size=shape).reshape(-1, K)
        ch = rng.choice(K, size=max(1, K // 16), replace=False)
        x[:, ch] *= 40.0
        x = x.reshape(-1)
    elif kind == "tiny":
        x = rng.standard_normal(n) * 1e-30
    elif kind == "subnormal":  # mostly fp32 subnormals
        x = rng.standard_normal(n) * 1e-39
    elif kind == "huge":
        x = rng.standard_normal(n) * 1e35
    elif kind == "constant":
        x = np.full(shape, 3.3).reshape(-1, K)
        x[1::2] = -0.7
        x = x.reshape(-1)
    elif kind == "zero_blocks":
        x = rng.standard_normal(shape).reshape(-1, K)
        x[:3] = 0.0
        x[:, 32:64] = 0.0
        x[5, :16] = -0.0
        x[6, 1::2] = -0.0
        x = x.reshape(-1)
    elif kind == "ties":  # E2M1 grid points and midpoints, block max 6 * 2^k: exact ties under floor
        vals = np.array([0, .25, .5, .75, 1, 1.25, 1.5, 1.75, 2, 2.5, 3, 3.5, 4, 5, 6])
        x = rng.choice(vals, size=n) * rng.choice([-1.0, 1.0], size=n)
        x = x.reshape(-1, 32)
        x[:, 0] = 6.0
        x *= np.ldexp(1.0, rng.integers(-20, 21, size=(x.shape[0], 1)))
        x = x.reshape(-1)
    elif kind == "wide_range":  # per-32-block magnitudes 2^-100 .. 2^100
        x = rng.standard_normal(n).reshape(-1, 32) * np.ldexp(1.0, rng.integers(-100, 101, size=(n // 32, 1)))
        x = x.reshape(-1)
    else:
        raise ValueError(kind)
    return np.asarray(x, dtype=F32).reshape(shape)


def to_lib(x32, dtype="fp32"):
    """Torch input of the given dtype and the exact float32 values the reference sees."""
    t = torch.from_numpy(np.ascontiguousarray(x32)).to(TORCH_DTYPES[dtype])
    return t, t.float().numpy()


# ---------------------------------------------------------------------------------------------- compare
def _fmt_codes(codes, n=8):
    return "[" + " ".join(f"{int(c):x}" for c in codes[:n]) + "]"


def _data_mismatch_report(ref, got_data, label):
    exp_c = ref["codes"]
    got_c = R.unpack_e2m1(got_data)
    bad = np.argwhere(exp_c != got_c)
    B = ref["K"] if ref["fmt"] == "fp4_row" else BLOCK[ref["fmt"]]
    lines = [f"{label}: {len(bad)} of {exp_c.size} E2M1 codes differ"]
    for r, k in bad[:6]:
        y = ref["y"][r, k]
        s = ref["scale"][r] if ref["fmt"] == "fp4_row" else ref["scale"][r, k // B]
        lines.append(f"  row {r} k {k}: y={float(y)!r} ({F32(y).view(np.uint32):#010x}), block scale {s!r}: "
                     f"expected code {int(exp_c[r, k]):#x}, got {int(got_c[r, k]):#x}")
    return "\n".join(lines)


def check_against(q, ref, label):
    """Assert that QuantizedTensor q holds exactly the bytes of the reference result `ref`."""
    rows, K = ref["rows"], ref["K"]
    fmt = ref["fmt"]
    assert q.fmt == fmt and q.scale_rule == ref["scale_rule"], label
    got_data = q.qdata.view(torch.uint8).reshape(-1, K // 2).numpy()
    assert got_data.shape == (rows, K // 2), f"{label}: data shape {tuple(q.qdata.shape)}"

    if fmt == "fp4_row":
        got_s = q.scale.reshape(-1).numpy().astype(F32)
        exp_s = ref["scale"].astype(F32)
        assert got_s.shape == exp_s.shape, f"{label}: scale shape {tuple(q.scale.shape)}"
        same = (got_s.view(np.uint32) == exp_s.view(np.uint32)) | (np.isnan(got_s) & np.isnan(exp_s))
        if not same.all():
            i = np.flatnonzero(~same)[:5]
            pytest.fail(f"{label}: {np.count_nonzero(~same)} row scales differ; rows {list(i)} "
                        f"expected {[float(v) for v in exp_s[i]]} got {[float(v) for v in got_s[i]]}")
    else:
        got_s = q.scale.view(torch.uint8).reshape(rows, -1).numpy()
        exp_s = ref["scale"]
        assert got_s.shape == exp_s.shape, f"{label}: scale shape {tuple(q.scale.shape)}"
        if not np.array_equal(got_s, exp_s):
            bad = np.argwhere(got_s != exp_s)
            B = BLOCK[fmt]
            msg = [f"{label}: {len(bad)} of {exp_s.size} scale bytes differ"]
            for r, b in bad[:6]:
                blk = ref["y"][r, b * B:(b + 1) * B]
                msg.append(f"  row {r} block {b}: amax={float(np.max(np.abs(blk)))!r} "
                           f"expected {int(exp_s[r, b]):#04x} got {int(got_s[r, b]):#04x}")
            pytest.fail("\n".join(msg))

    if fmt == "nvfp4":
        a_got = F32(q.amax.item())
        a_exp = F32(ref["amax"])
        assert (a_got.view(np.uint32) == a_exp.view(np.uint32)) or (np.isnan(a_got) and np.isnan(a_exp)), \
            f"{label}: amax expected {float(a_exp)!r} got {float(a_got)!r}"

    if not np.array_equal(got_data, ref["data"]):
        pytest.fail(_data_mismatch_report(ref, got_data, label))

    if q.clip_mask is not None:
        assert "clip_mask" in ref, f"{label}: unexpected clip mask"
        got_m = q.clip_mask.reshape(rows, -1).numpy()
        exp_m = ref["clip_mask"]
        assert got_m.shape == exp_m.shape, f"{label}: clip mask shape {tuple(q.clip_mask.shape)}"
        # inside non-finite blocks the mask is not specified
        nf = np.repeat(ref["nonfinite"], BLOCK["mxfp4"] // 8, axis=1)
        if not np.array_equal(np.where(nf, 0, got_m), np.where(nf, 0, exp_m)):
            bad = np.argwhere((got_m != exp_m) & ~nf)[:5]
            pytest.fail(f"{label}: clip mask differs at (row, byte) {bad.tolist()}: expected "
                        f"{[int(exp_m[r, b]) for r, b in bad]} got {[int(got_m[r, b]) for r, b in bad]}")

    assert q.global_scale == pytest.approx(ref["global_scale"], rel=1e-15), f"{label}: global_scale"

    # dequantize(): fp32 values; compare with the exact float64 values (a few fp32 roundings allowed)
    got_d = q.dequantize().reshape(rows, K).numpy().astype(np.float64)
    exp_d = R.dequantize(ref)
    np.testing.assert_allclose(got_d, exp_d, rtol=1e-6, atol=4 * 2.0**-149, equal_nan=True,
                               err_msg=f"{label}: dequantize")


def ref_quantize(x_ref, fmt, rule, rounding, prescale=False, g=None, signs=None, block_2d=False,
                 direction="rowwise", seed=SEED, offset=OFFSET, amax=None):
    return R.quantize(x_ref, fmt, rule, rounding, prescale=prescale, block_2d=block_2d, hadamard_g=g,
                      signs=signs, seed=seed, offset=offset, direction=direction, amax=amax)


def run_both(x_t, x_ref, fmt, rule, rounding, prescale=False, hadamard=None, g=None, signs=None,
             block_2d=False, rowwise=True, columnwise=True, seed=SEED, offset=OFFSET, amax=None, label=""):
    """Quantize with the library and check every requested direction against the reference."""
    kw = {}
    if rule == "quest":
        kw["clip_mask"] = True
    if amax is not None:
        kw["amax"] = torch.tensor(amax, dtype=torch.float32)
    q = fp4gemm.quantize(x_t, fmt, scale_rule=rule, rounding=rounding, prescale=prescale, block_2d=block_2d,
                         hadamard=hadamard, rowwise=rowwise, columnwise=columnwise, seed=seed, offset=offset,
                         **kw)
    common = dict(prescale=prescale, g=g, signs=signs, block_2d=block_2d, seed=seed, offset=offset, amax=amax)
    if rowwise:
        ref = ref_quantize(x_ref, fmt, rule, rounding, direction="rowwise", **common)
        lead = list(x_t.shape[:-1])
        K = x_t.shape[-1]
        assert list(q.qdata.shape) == lead + [K // 2], f"{label}: qdata shape {tuple(q.qdata.shape)}"
        nsc = 1 if fmt == "fp4_row" else K // BLOCK[fmt]
        assert list(q.scale.shape) == lead + [nsc], f"{label}: scale shape {tuple(q.scale.shape)}"
        check_against(q, ref, f"{label} rowwise")
        if columnwise:
            assert q.columnwise is not None, f"{label}: columnwise missing"
            refc = ref_quantize(x_ref, fmt, rule, rounding, direction="columnwise", **common)
            check_against(q.columnwise, refc, f"{label} columnwise")
        else:
            assert q.columnwise is None
    else:
        refc = ref_quantize(x_ref, fmt, rule, rounding, direction="columnwise", **common)
        check_against(q, refc, f"{label} columnwise-only")
    return q


# ---------------------------------------------------------------------------------------------- tests
KINDS = ["normal", "heavy", "tiny", "subnormal", "huge", "constant", "zero_blocks", "ties", "wide_range"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("prescale", [False, True], ids=["nopre", "pre"])
@pytest.mark.parametrize("rounding", ["rtn", "sr"])
@pytest.mark.parametrize("fmt,rule", FMT_RULES, ids=FR_IDS)
def test_modes_rowwise_and_columnwise(fmt, rule, rounding, prescale, kind):
    x = make_input(kind, (64, 256))
    x_t, x_ref = to_lib(x)
    run_both(x_t, x_ref, fmt, rule, rounding, prescale=prescale,
             label=f"{fmt}/{rule}/{rounding}/prescale={prescale}/{kind}")


@pytest.mark.parametrize("g", [16, 32, 64, 128, 256])
@pytest.mark.parametrize("rounding", ["rtn", "sr"])
@pytest.mark.parametrize("fmt,rule", FMT_RULES, ids=FR_IDS)
def test_hadamard_seeded(fmt, rule, rounding, g):
    hseed = 1000 + g
    kind = "heavy" if g in (32, 128) else "normal"
    x = make_input(kind, (256, 256), seed=g)
    x_t, x_ref = to_lib(x)
    signs = R.hadamard_signs(hseed, g)
    prescale = g in (64, 256)
    q = run_both(x_t, x_ref, fmt, rule, rounding, prescale=prescale, hadamard=fp4gemm.Hadamard(g, seed=hseed),
                 g=g, signs=signs, label=f"{fmt}/{rule}/{rounding}/rht{g}/{kind}")
    assert list(q.hadamard_signs) == list(signs)


@pytest.mark.parametrize("seed", [0, 1, 0xFFFFFFFF, 2**32, 0x7FEDCBA987654321])
@pytest.mark.parametrize("g", [16, 32, 64, 128, 256])
def test_hadamard_signs_api(seed, g):
    assert list(fp4gemm.hadamard_signs(seed, g)) == list(R.hadamard_signs(seed, g))
    assert list(fp4gemm.Hadamard(g, seed=seed).sign_list()) == list(R.hadamard_signs(seed, g))


@pytest.mark.parametrize("fmt,rule", [("mxfp4", "floor"), ("nvfp4", "te"), ("fp4_row", "pow2")],
                         ids=["mxfp4", "nvfp4", "fp4_row"])
def test_hadamard_explicit_and_int_signs(fmt, rule):
    x = make_input("heavy", (64, 128), seed=7)
    x_t, x_ref = to_lib(x)
    te = np.array(fp4gemm.TE_RHT_SIGNS)
    run_both(x_t, x_ref, fmt, rule, "sr", hadamard=fp4gemm.Hadamard(16, signs=list(te)), g=16, signs=te,
             label=f"{fmt} TE signs")
    mixed = np.array([1, -1, -1, 1] * 16)
    run_both(x_t, x_ref, fmt, rule, "rtn", hadamard=fp4gemm.Hadamard(64, signs=list(mixed)), g=64, signs=mixed,
             label=f"{fmt} explicit signs")
    q = fp4gemm.quantize(x_t, fmt, scale_rule=rule, hadamard=32)
    signs = np.array(q.hadamard_signs)
    check_against(q, ref_quantize(x_ref, fmt, rule, "rtn", g=32, signs=signs), f"{fmt} hadamard=32")


def test_hadamard_rowwise_only_columnwise_plain():
    x = make_input("normal", (64, 128), seed=11)
    x_t, x_ref = to_lib(x)
    q = fp4gemm.quantize(x_t, "nvfp4", rounding="sr", hadamard=fp4gemm.Hadamard(16, seed=5), columnwise=True,
                         columnwise_hadamard=None, seed=SEED, offset=OFFSET)
    check_against(q, ref_quantize(x_ref, "nvfp4", "te", "sr", g=16, signs=R.hadamard_signs(5, 16)), "row rht16")
    check_against(q.columnwise, ref_quantize(x_ref, "nvfp4", "te", "sr", direction="columnwise"), "col plain")


@pytest.mark.parametrize("dtype", ["bf16", "fp16", "fp32"])
@pytest.mark.parametrize("rounding", ["rtn", "sr"])
@pytest.mark.parametrize("fmt,rule", FMT_RULES, ids=FR_IDS)
def test_input_dtypes(fmt, rule, rounding, dtype):
    x = make_input("heavy", (64, 128), seed=3)
    if dtype == "fp16":
        x = np.clip(x, -60000, 60000)
    x_t, x_ref = to_lib(x, dtype)
    run_both(x_t, x_ref, fmt, rule, rounding, prescale=(rounding == "sr"), label=f"{fmt}/{rule}/{dtype}")


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
@pytest.mark.parametrize("fmt,rule", FMT_RULES, ids=FR_IDS)
def test_half_precision_small_values(fmt, rule, dtype):
    # bf16 keeps fp32's exponent range (1e-38, incl. subnormals); fp16 subnormals start below 6.1e-5
    scale = 1e-38 if dtype == "bf16" else 3e-5
    x = (make_input("normal", (32, 64), seed=5) * scale).astype(F32)
    x_t, x_ref = to_lib(x, dtype)
    run_both(x_t, x_ref, fmt, rule, "sr", label=f"{fmt}/{rule}/{dtype} small")


@pytest.mark.parametrize("shape", [(7, 64), (33, 256), (1, 32), (2, 3, 64), (5, 2, 96)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("fmt,rule", FMT_RULES, ids=FR_IDS)
def test_odd_rows_and_batch_dims(fmt, rule, shape):
    x = make_input("heavy", shape, seed=9)
    x_t, x_ref = to_lib(x)
    run_both(x_t, x_ref, fmt, rule, "sr", columnwise=False, label=f"{fmt}/{rule}/{shape}")
    run_both(x_t, x_ref, fmt, rule, "rtn", columnwise=False, prescale=True, label=f"{fmt}/{rule}/{shape} pre")


@pytest.mark.parametrize("fmt,rule", FMT_RULES, ids=FR_IDS)
def test_batch_dims_columnwise(fmt, rule):
    x = make_input("normal", (2, 32, 64), seed=13)
    x_t, x_ref = to_lib(x)
    run_both(x_t, x_ref, fmt, rule, "sr", columnwise=True, label=f"{fmt}/{rule}/batch both")


@pytest.mark.parametrize("rounding", ["rtn", "sr"])
@pytest.mark.parametrize("fmt,rule", FMT_RULES, ids=FR_IDS)
def test_columnwise_only(fmt, rule, rounding):
    x = make_input("heavy", (64, 128), seed=17)
    x_t, x_ref = to_lib(x)
    run_both(x_t, x_ref, fmt, rule, rounding, rowwise=False, columnwise=True, label=f"{fmt}/{rule} col only")
    run_both(x_t, x_ref, fmt, rule, rounding, rowwise=False, columnwise=True, hadamard=fp4gemm.Hadamard(64, seed=3),
             g=64, signs=R.hadamard_signs(3, 64), label=f"{fmt}/{rule} col only rht64")


def test_sr_streams_seeds_offsets():
    x = make_input("normal", (32, 64), seed=19)
    x_t, x_ref = to_lib(x)
    seen = set()
    for seed in (0, 1, 2**32 + 5, 2**62 + 12345):
        for offset in (0, 1, 2**32, 2**40 + 77):
            q = run_both(x_t, x_ref, "mxfp4", "floor", "sr", seed=seed, offset=offset, label=f"sr {seed} {offset}")
            seen.add(q.qdata.view(torch.uint8).numpy().tobytes())
    assert len(seen) == 16, "distinct (seed, offset) pairs must give distinct SR draws"


@pytest.mark.parametrize("shape", [(33, 64), (64, 128), (48, 32)], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("rounding", ["rtn", "sr"])
@pytest.mark.parametrize("rule", ["te", "torchao"])
def test_nvfp4_block_2d(rule, rounding, shape):
    x = make_input("heavy", shape, seed=23)
    x_t, x_ref = to_lib(x)
    both = shape[0] % 16 == 0
    run_both(x_t, x_ref, "nvfp4", rule, rounding, block_2d=True, columnwise=both, label=f"2d {rule} {shape}")
    run_both(x_t, x_ref, "nvfp4", rule, rounding, block_2d=True, prescale=True, columnwise=both,
             label=f"2d {rule} {shape} pre")
    if both and rounding == "rtn":
        q = fp4gemm.quantize(x_t, "nvfp4", scale_rule=rule, block_2d=True, columnwise=True)
        assert torch.equal(q.dequantize(), q.columnwise.dequantize().T), "2D: W and W^T must quantize identically"


@pytest.mark.parametrize("amax_factor", [1.0, 4.0, 0.25])
@pytest.mark.parametrize("rule", ["te", "torchao"])
def test_nvfp4_given_amax(rule, amax_factor):
    x = make_input("normal", (64, 64), seed=29)
    x_t, x_ref = to_lib(x)
    amax = float(F32(np.abs(x_ref).max() * amax_factor))
    q = run_both(x_t, x_ref, "nvfp4", rule, "sr", amax=amax, label=f"given amax {rule} x{amax_factor}")
    assert q.amax.item() == amax


NONFINITE = ["nan", "inf", "-inf", "mixed"]


@pytest.mark.parametrize("bad", NONFINITE)
@pytest.mark.parametrize("rounding", ["rtn", "sr"])
@pytest.mark.parametrize("fmt,rule", [fr for fr in FMT_RULES if fr[1] != "torchao"],
                         ids=[i for i in FR_IDS if "torchao" not in i])
def test_nonfinite_blocks(fmt, rule, rounding, bad):
    x = make_input("normal", (32, 128), seed=31)
    vals = {"nan": [np.nan], "inf": [np.inf], "-inf": [-np.inf], "mixed": [np.nan, np.inf, -np.inf]}[bad]
    for i, (r, k) in enumerate([(0, 3), (5, 70), (17, 127), (30, 40)]):
        x[r, k] = vals[i % len(vals)]
    x_t, x_ref = to_lib(x)
    run_both(x_t, x_ref, fmt, rule, rounding, label=f"{fmt}/{rule}/{bad}")


def test_nonfinite_mxfp4_with_hadamard():
    x = make_input("normal", (64, 128), seed=37)
    x[3, 10] = np.nan
    x[40, 100] = np.inf
    x_t, x_ref = to_lib(x)
    run_both(x_t, x_ref, "mxfp4", "floor", "sr", hadamard=fp4gemm.Hadamard(32, seed=1), g=32,
             signs=R.hadamard_signs(1, 32), label="nonfinite rht32")


def test_nvfp4_zero_tensor():
    for rule in ("te", "torchao"):
        x_t, x_ref = to_lib(np.zeros((32, 64), F32))
        run_both(x_t, x_ref, "nvfp4", rule, "sr", label=f"zeros {rule}")


def test_nvfp4_flt_max_tensor():
    """A = FLT_MAX: bytes as the TE chain; dequantize() must give SPEC 2's finite code * s_b * A / 2688."""
    x = make_input("normal", (32, 64), seed=41)
    x[4, 5] = np.finfo(np.float32).max
    x[9, 60] = -np.finfo(np.float32).max
    x_t, x_ref = to_lib(x)
    run_both(x_t, x_ref, "nvfp4", "te", "rtn", label="flt_max te")


@pytest.mark.parametrize("rows,cols", [(1, 1), (7, 2), (128, 4), (130, 5), (300, 9)])
def test_blocked_layout_api(rows, cols):
    rng = np.random.default_rng(rows * 1000 + cols)
    s = rng.integers(1, 255, size=(rows, cols), dtype=np.uint8)
    b = fp4gemm.to_blocked(torch.from_numpy(s)).view(torch.uint8).numpy()
    assert np.array_equal(b.reshape(-1), R.to_blocked(s))
    back = fp4gemm.from_blocked(torch.from_numpy(R.to_blocked(s)), rows, cols).view(torch.uint8).numpy()
    assert np.array_equal(back, s)


def test_blocked_scale_of_quantized_tensor():
    x = make_input("heavy", (3, 50, 256), seed=43)
    x_t, x_ref = to_lib(x)
    for fmt, rule in (("mxfp4", "floor"), ("nvfp4", "te")):
        q = fp4gemm.quantize(x_t, fmt, scale_rule=rule)
        ref = ref_quantize(x_ref, fmt, rule, "rtn")
        assert np.array_equal(q.blocked_scale().view(torch.uint8).numpy().reshape(-1), R.to_blocked(ref["scale"]))


def test_sr_threshold_boundary():
    """r == floor(t * 2^16) must round DOWN (round up iff r < threshold), docs/numerics.md "SR bits".

    Block max 6.0 gives the MXFP4 floor scale 2^0 (multiplier 1), so v = x. At positions with a
    random number r > 0 we put x = r / 2^17 (t = r / 2^16 exactly, interval [0, 0.5): must round
    down), on every other such position x = (r + 1) / 2^17 (t just above: must round up), and where
    r % 4 == 0, x = 2 + r / 2^16 (t = r / 2^16 in [2, 3): must round down to 2).
    """
    rows, K = 64, 256
    r = R.sr_bits(SEED, OFFSET, 0, rows * K).reshape(rows, K).astype(np.int64)
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(rows, K)).astype(F32)
    x[:, ::32] = 6.0
    first = (np.arange(K) % 32 == 0)[None, :]
    hit2 = (r % 4 == 0) & (r > 0) & ~first
    hit0 = (r > 0) & ~first & ~hit2
    flip = np.zeros_like(hit0)
    flip.ravel()[np.flatnonzero(hit0)[::2]] = True
    down0 = hit0 & ~flip
    up0 = hit0 & flip
    x = np.where(down0, (r / 2.0**17).astype(F32), x)
    x = np.where(up0, ((r + 1) / 2.0**17).astype(F32), x)
    x = np.where(hit2, (2.0 + r / 2.0**16).astype(F32), x)
    assert down0.sum() > 10 and up0.sum() > 10 and hit2.sum() > 3
    x_t, x_ref = to_lib(x)
    ref = ref_quantize(x_ref, "mxfp4", "floor", "sr")
    assert np.all(ref["codes"][down0] == 0) and np.all(ref["codes"][up0] == 1) and np.all(ref["codes"][hit2] == 4)
    q = fp4gemm.quantize(x_t, "mxfp4", rounding="sr", seed=SEED, offset=OFFSET)
    check_against(q, ref, "SR threshold boundary")


def test_tiny_tensors_review_cases():
    """Regressions from review: torchao multiplier overflow at tiny A; fp4_row amax scale underflow."""
    x = np.zeros((1, 32), dtype=F32)
    x[0, 0] = F32(1e-34)
    x_t, x_ref = to_lib(x)
    run_both(x_t, x_ref, "nvfp4", "torchao", "rtn", columnwise=False, label="torchao tiny A")
    q = fp4gemm.quantize(torch.from_numpy(x), "nvfp4", scale_rule="torchao")
    assert (q.codes()[0, 8:] == 0).all()                    # the all-zero second block stays zero
    y = np.zeros((1, 16), dtype=F32)
    y[0, 0] = F32(1.4e-45)
    y_t, y_ref = to_lib(y)
    run_both(y_t, y_ref, "fp4_row", "amax", "rtn", columnwise=False, label="fp4_row tiny amax")
    q = fp4gemm.quantize(torch.from_numpy(y), "fp4_row", scale_rule="amax")
    assert q.dequantize()[0, 0].item() == y[0, 0] and (q.dequantize()[0, 1:] == 0).all()
