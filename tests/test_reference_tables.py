"""Hand-computed tables that check the NumPy reference itself (SPEC 1-3, docs/numerics.md).

No library import: every expected byte below was worked out by hand from the spec text.
"""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as R  # noqa: E402

F32 = np.float32
FLT_MAX = float(np.finfo(np.float32).max)


# ---------------------------------------------------------------------------------------------- Philox
@pytest.mark.parametrize("ctr,key,expected", [
    ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
     [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
])
def test_philox_known_answers(ctr, key, expected):
    out = R.philox4x32_10(np.array(ctr, np.uint32)[:, None], np.array(key, np.uint32))
    assert [int(w) for w in out[:, 0]] == expected


def test_philox_vectorized_matches_scalar_calls():
    rng = np.random.default_rng(0)
    ctr = rng.integers(0, 2**32, size=(4, 9), dtype=np.uint64).astype(np.uint32)
    key = np.array([0xDEADBEEF, 0x01234567], np.uint32)
    out = R.philox4x32_10(ctr, key)
    for j in range(9):
        assert np.array_equal(out[:, j], R.philox4x32_10(ctr[:, j:j + 1], key)[:, 0])


def test_sr_bits_counter_layout():
    seed, offset = 0x0123456789ABCDEF, (7 << 32) | 11
    key = np.array([seed & 0xFFFFFFFF, seed >> 32], np.uint32)
    for stream in (0, 1):
        bits = R.sr_bits(seed, offset, stream, 20)
        for p in range(20):  # 8 positions per call: word (p // 2) % 4, low half for even p
            ctr = np.array([[p // 8], [stream << 31], [11], [7]], np.uint32)
            word = int(R.philox4x32_10(ctr, key)[(p // 2) % 4, 0])
            assert bits[p] == (word >> 16 if p % 2 else word & 0xFFFF)
    assert not np.array_equal(R.sr_bits(seed, offset, 0, 64), R.sr_bits(seed, offset, 1, 64))
    assert not np.array_equal(R.sr_bits(seed, 0, 0, 64), R.sr_bits(seed, 1, 0, 64))


def test_hadamard_signs_bit_layout():
    seed = 0xFEDCBA9876543210
    key = np.array([seed & 0xFFFFFFFF, seed >> 32], np.uint32)
    w0 = R.philox4x32_10(np.array([[0], [0], [0], [0x48414441]], np.uint32), key)[:, 0]
    w1 = R.philox4x32_10(np.array([[1], [0], [0], [0x48414441]], np.uint32), key)[:, 0]
    words = [int(w) for w in w0] + [int(w) for w in w1]
    s = R.hadamard_signs(seed, 256)
    for i in (0, 1, 31, 32, 100, 127, 128, 200, 255):
        assert s[i] == (-1 if (words[i // 32] >> (i % 32)) & 1 else 1)
    for g in (16, 32, 64, 128):
        assert np.array_equal(R.hadamard_signs(seed, g), s[:g])
    assert set(np.unique(s)) == {-1, 1}


# ---------------------------------------------------------------------------------------------- Hadamard
@pytest.mark.parametrize("g", [16, 32, 64, 128, 256])
def test_hadamard_orthogonal(g):
    h = R.hadamard_matrix(g)
    assert np.allclose(h @ h.T, np.eye(g), atol=1e-12, rtol=0)
    hu = R.hadamard_matrix(g, normalized=False)
    assert set(np.unique(hu)) == {-1.0, 1.0}
    assert np.array_equal(hu[: g // 2, : g // 2], hu[: g // 2, g // 2:])      # [[H, H],
    assert np.array_equal(hu[g // 2:, g // 2:], -hu[: g // 2, : g // 2])     #  [H, -H]]
    assert np.all(hu[0] == 1) and np.all(hu[:, 0] == 1)


def test_hadamard_small_sylvester():
    assert np.array_equal(R.hadamard_matrix(2, normalized=False), [[1, 1], [1, -1]])
    assert np.array_equal(R.hadamard_matrix(4, normalized=False),
                          [[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]])


@pytest.mark.parametrize("g", [16, 32, 64, 128, 256])
def test_rht_matches_matrix_and_preserves_products(g):
    rng = np.random.default_rng(g)
    x = rng.standard_normal((8, 2 * g)).astype(F32)
    w = rng.standard_normal((5, 2 * g)).astype(F32)
    s = R.hadamard_signs(12345, g)
    y = R.rht(x, g, s)
    exact = ((x.astype(np.float64).reshape(8, 2, g) * s) @ R.hadamard_matrix(g)).reshape(8, 2 * g)
    assert np.allclose(y, exact, rtol=0, atol=1e-5 * np.abs(x).max() * np.log2(g))
    z = R.rht(w, g, s)
    assert np.allclose(y.astype(np.float64) @ z.T.astype(np.float64),
                       x.astype(np.float64) @ w.T.astype(np.float64), rtol=1e-4, atol=1e-3)
    assert R.rht_scale(g) == F32(1 / np.sqrt(g))


def test_rht_butterfly_is_exact_for_g16_on_small_integers():
    # With g = 16 every intermediate is an integer below 2^24 and 1/sqrt(16) = 0.25: exact.
    x = np.arange(32, dtype=F32).reshape(2, 16) - 7
    s = np.array([1, -1] * 8)
    y = R.rht(x, 16, s)
    assert np.array_equal(y, ((x.astype(np.float64) * s) @ R.hadamard_matrix(16, normalized=False)) / 4)


# ---------------------------------------------------------------------------------------------- E2M1
@pytest.mark.parametrize("v,code", [
    (0.0, 0x0), (-0.0, 0x8), (0.25, 0x0), (0.2500001, 0x1), (0.5, 0x1), (0.75, 0x2), (1.0, 0x2),
    (1.25, 0x2), (1.5, 0x3), (1.75, 0x4), (2.0, 0x4), (2.5, 0x4), (2.9, 0x5), (3.0, 0x5), (3.5, 0x6),
    (4.0, 0x6), (5.0, 0x6), (5.0001, 0x7), (6.0, 0x7), (7.0, 0x7), (1e30, 0x7), (float("inf"), 0x7),
    (-0.1, 0x8), (-0.25, 0x8), (-0.75, 0xA), (-1.25, 0xA), (-1.75, 0xC), (-2.5, 0xC), (-3.5, 0xE),
    (-5.0, 0xE), (-7.0, 0xF), (float("-inf"), 0xF), (1e-45, 0x0), (-1e-45, 0x8),
])
def test_e2m1_rtn_table(v, code):
    assert int(R.e2m1_encode_rtn(np.array([v], F32))[0]) == code


def test_e2m1_decode_table():
    assert list(R.e2m1_decode(np.arange(16))) == [0, .5, 1, 1.5, 2, 3, 4, 6, -0., -.5, -1, -1.5, -2, -3, -4, -6]
    assert np.signbit(R.e2m1_decode([8]))[0]


@pytest.mark.parametrize("v,r,code", [               # r: the element's 16-bit random number
    (0.3, 0, 0x1), (0.3, 0xFFFF, 0x0),                # t = 0.6: up for small r, down for large
    (2.5, 2**15 - 1, 0x5), (2.5, 2**15, 0x4),         # t = 0.5 -> threshold 2^15 exactly
    (5.0, 2**15 - 1, 0x7), (5.0, 2**15, 0x6),         # step 2 between 4 and 6
    (0.25, 2**15 - 1, 0x1), (0.25, 2**15, 0x0),
    (1.0, 0, 0x2), (4.0, 0, 0x6), (0.0, 0, 0x0),      # on the grid: t = 0 never rounds up
    (2.0 + 2**-17, 0, 0x4), (2.0 + 2**-16, 0, 0x5),   # t = 2^-17 < 2^-16: never up; t = 2^-16: up iff r = 0
    (2.0 + 2**-16, 1, 0x4),
    (6.0, 0, 0x7), (6.5, 0xFFFF, 0x7), (1e30, 0xFFFF, 0x7),
    (-0.25, 0xFFFF, 0x8), (-0.25, 0, 0x9), (-0.0, 0, 0x8), (-2.5, 2**15, 0xC),
    (1.75, 2**15 - 1, 0x4), (1.75, 2**15, 0x3),
])
def test_e2m1_sr_table(v, r, code):
    assert int(R.e2m1_encode_sr(np.array([v], F32), np.array([r], np.uint32))[0]) == code


def test_e2m1_sr_threshold_is_floor_t_2_16():
    v = F32(0.3)  # t = fp32(0.3) * 2 exactly (0.3f = 10066330 * 2^-25)
    thr = int(np.floor(float(v) * 2 * 2**16))
    assert int(R.e2m1_encode_sr(np.array([v]), np.array([thr - 1], np.uint32))[0]) == 1
    assert int(R.e2m1_encode_sr(np.array([v]), np.array([thr], np.uint32))[0]) == 0


def test_pack_low_nibble_first():
    assert list(R.pack_e2m1(np.array([[0x1, 0xF, 0x8, 0x2]]))[0]) == [0xF1, 0x28]
    assert np.array_equal(R.unpack_e2m1(np.array([[0xF1, 0x28]], np.uint8)), [[1, 15, 8, 2]])


# ---------------------------------------------------------------------------------------------- E4M3 / E8M0
@pytest.mark.parametrize("v,b", [
    (448.0, 0x7E), (464.0, 0x7E), (470.0, 0x7E), (1e6, 0x7E), (float("inf"), 0x7E), (float("-inf"), 0xFE),
    (float("nan"), 0x7F), (-448.0, 0xFE), (0.0, 0x00), (-0.0, 0x80),
    (0.0009765625, 0x00),     # 2^-10: half of the smallest subnormal 2^-9, ties to even -> 0
    (0.0009765626, 0x01), (0.001953125, 0x01), (0.0029296875, 0x02),  # 3 * 2^-10 ties to m = 2
    (0.013671875, 0x07), (0.0146484375, 0x08), (0.015625, 0x08),      # 7.5 * 2^-9 ties up to 2^-6
    (1.0, 0x38), (1.0625, 0x38), (1.1875, 0x3A), (1.125, 0x39), (240.0, 0x77), (256.0, 0x78),
    (-2.0, 0xC0), (416.0, 0x7D), (432.0, 0x7E), (0.5, 0x30), (1e-30, 0x00),
])
def test_e4m3_encode_table(v, b):
    assert int(R.e4m3_encode(np.array([v], F32))[0]) == b


@pytest.mark.parametrize("b,v", [(0x7E, 448.0), (0x01, 2.0**-9), (0x08, 2.0**-6), (0x38, 1.0), (0x77, 240.0),
                                 (0xC0, -2.0), (0x07, 7 * 2.0**-9), (0x00, 0.0)])
def test_e4m3_decode_table(b, v):
    assert R.e4m3_decode([b])[0] == v


def test_e4m3_roundtrip_all_finite_codes():
    b = np.array([c for c in range(256) if (c & 0x7F) != 0x7F], np.uint8)
    assert np.array_equal(R.e4m3_encode(R.e4m3_decode(b).astype(F32)), b)
    assert np.isnan(R.e4m3_decode([0x7F, 0xFF])).all()


def test_e8m0_decode():
    d = R.e8m0_decode([0, 1, 126, 127, 128, 254, 255])
    assert list(d[:6]) == [2.0**-127, 2.0**-126, 0.5, 1.0, 2.0, 2.0**127]
    assert np.isnan(d[6])


# ---------------------------------------------------------------------------------------------- MX rules
# (amax, floor byte, rceil byte, even byte), each worked out by hand:
#  6.0  = 1.5 * 2^2: floor 2-2=0; rceil 6/6=1 -> 0; even 1.5 -> 1.5 (mantissa .5 + .25 < 1) -> 0
#  7.9  = 1.975*2^2: floor 0; rceil 1.3167 -> 1; even 1.975 rounds to 2 -> 2^3 -> 1
#  7.0  = 1.75 *2^2: floor 0; rceil 1.1667 -> 1; even 1.75 + .25 = 2 (carry) -> 1
#  6.9  = 1.725*2^2: floor 0; rceil 1.15 -> 1; even no carry -> 0
#  3.0  : floor -1; rceil 0.5 -> -1; even -1
#  1.0  : floor -2; rceil fp32(1/6) in [1/8, 1/4), not a power of 2 -> -2; even -2
#  12.0 : floor 1; rceil 2 -> 1; even 1
#  0.0 / 1e-40 (subnormal) / 2^-126: E = -127 / -127 / -126 -> clamp -127 (byte 0); rceil quotient 0 / subnormal -> -127
#  2^-124: floor -126 (byte 1); rceil 2^-124/6 is subnormal -> -127 (byte 0); even -126
#  3e38 = 1.763 * 2^127: floor 125; rceil 5e37 = 1.18 * 2^125 -> 126; even carries into field 255 -> 126
#  FLT_MAX: floor 125; rceil 126; even 126
MX_TABLE = [
    (6.0, 127, 127, 127), (7.9, 127, 128, 128), (7.0, 127, 128, 128), (6.9, 127, 128, 127),
    (3.0, 126, 126, 126), (1.0, 125, 125, 125), (12.0, 128, 128, 128),
    (0.0, 0, 0, 0), (1e-40, 0, 0, 0), (2.0**-126, 0, 0, 0), (2.0**-124, 1, 0, 1),
    (3e38, 252, 253, 253), (FLT_MAX, 252, 253, 253),
]


@pytest.mark.parametrize("amax,floor_b,rceil_b,even_b", MX_TABLE)
def test_mx_scale_rules_table(amax, floor_b, rceil_b, even_b):
    a = np.array([amax], F32)
    assert int(R.mx_exponent_floor(a)[0]) + 127 == floor_b
    assert int(R.mx_exponent_rceil(a)[0]) + 127 == rceil_b
    assert int(R.mx_exponent_even(a)[0]) + 127 == even_b
    # through quantize(): a block whose first element is amax
    x = np.zeros((1, 32), F32)
    x[0, 0] = amax
    for rule, b in (("floor", floor_b), ("rceil", rceil_b), ("even", even_b)):
        assert int(R.quantize(x, "mxfp4", rule)["scale"][0, 0]) == b


def test_mx_floor_clips_and_rceil_does_not():
    x = np.zeros((1, 32), F32)
    x[0, :4] = [7.9, -7.0, 5.1, 1.2]
    qf = R.quantize(x, "mxfp4", "floor")        # scale 2^0: 7.9 -> 6, -7 -> -6, 5.1 -> 6, 1.2 -> 1
    assert list(qf["codes"][0, :5]) == [0x7, 0xF, 0x7, 0x2, 0x0]
    assert list(qf["clip_mask"][0]) == [0b011, 0, 0, 0]
    qr = R.quantize(x, "mxfp4", "rceil")        # scale 2^1: 3.95 -> 4, -3.5 -> -4, 2.55 -> 3, 0.6 -> 0.5
    assert list(qr["codes"][0, :4]) == [0x6, 0xE, 0x5, 0x1]
    qp = R.quantize(x, "mxfp4", "floor", prescale=True)  # 7.9*.75 = 5.925 -> 6, 7*.75 = 5.25 -> 6, 3.825 -> 4
    assert list(qp["codes"][0, :4]) == [0x7, 0xF, 0x6, 0x2]   # 1.2*.75 = 0.9 -> 1.0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("rule", ["floor", "rceil", "even", "quest"])
def test_mx_nonfinite_block(bad, rule):
    x = np.ones((1, 64), F32)
    x[0, 40] = bad
    q = R.quantize(x, "mxfp4", rule)
    assert int(q["scale"][0, 1]) == 0xFF
    assert not q["codes"][0, 32:].any()
    assert int(q["scale"][0, 0]) != 0xFF
    d = R.dequantize(q)
    assert np.isnan(d[0, 32:]).all() and np.isfinite(d[0, :32]).all()


def test_quest_table():
    # +-1 halves: mean 0, sigma 1 -> t = 0.48707977 + 1e-8 -> 2^-2 (byte 125); values +-4 -> codes 6 / 0xE
    x = np.array([[1.0] * 16 + [-1.0] * 16], F32)
    q = R.quantize(x, "mxfp4", "quest")
    assert int(q["scale"][0, 0]) == 125
    assert list(np.unique(q["codes"])) == [0x6, 0xE]
    assert not q["clip_mask"].any()
    # +-2 halves: sigma 2 -> t = 0.974 -> 2^-1 (byte 126)
    assert int(R.quantize(2 * x, "mxfp4", "quest")["scale"][0, 0]) == 126
    # constant block: sigma 0 -> t = 1e-8f in [2^-27, 2^-26) -> byte 100; every element clips
    c = R.quantize(np.full((1, 32), 0.375, F32), "mxfp4", "quest")
    assert int(c["scale"][0, 0]) == 100
    assert np.all(c["codes"] == 0x7) and np.all(c["clip_mask"] == 0xFF)
    z = R.quantize(np.zeros((1, 32), F32), "mxfp4", "quest")
    assert int(z["scale"][0, 0]) == 100 and not z["codes"].any() and not z["clip_mask"].any()
    # one outlier: values 0 except 31 * 0 and 1 * 32 -> mean 1, var = (31 * 1 + 31^2) / 32 = 31, sigma = 5.568
    o = np.zeros((1, 32), F32)
    o[0, 5] = 32.0
    assert np.isclose(R.quest_sigma(o)[0], np.sqrt(31), rtol=1e-6)
    qo = R.quantize(o, "mxfp4", "quest")   # t = 5.568 * 0.487 = 2.71 -> 2^1 (byte 128); 32 / 2 = 16 clips
    assert int(qo["scale"][0, 0]) == 128 and int(qo["codes"][0, 5]) == 0x7
    assert list(qo["clip_mask"][0]) == [0b100000, 0, 0, 0]


def test_quest_sigma_overflow_free_for_huge_blocks():
    x = np.array([[3e38] * 16 + [-3e38] * 16], F32)
    s = R.quest_sigma(x.reshape(1, 1, 32))
    assert np.isfinite(s).all() and np.isclose(float(s.ravel()[0]), 3e38, rtol=1e-6)


# ---------------------------------------------------------------------------------------------- NVFP4
def test_nvfp4_zero_tensor():
    q = R.quantize(np.zeros((2, 32), F32), "nvfp4", "te")
    assert q["amax"] == 0 and not q["scale"].any() and not q["codes"].any()      # S_enc = 1, s_b = 0
    t = R.quantize(np.zeros((2, 32), F32), "nvfp4", "torchao")
    assert np.all(t["scale"] == 0x08) and not t["codes"].any()                   # 2^-6, codes 0
    assert not R.dequantize(q).any() and not R.dequantize(t).any()


def test_nvfp4_te_unit_amax_2688():
    # A = 2688 -> S_enc = 1; block amax 6 -> s_b = e4m3(6 * fp32(1/6)) = e4m3(1.0) = 0x38; multiplier 1
    x = np.zeros((1, 32), F32)
    x[0, :4] = [6.0, -3.0, 1.2, 0.2]
    x[0, 16] = 2688.0                   # second block: s_b = e4m3(448) = 0x7E, multiplier 1/448
    q = R.quantize(x, "nvfp4", "te")
    assert float(q["amax"]) == 2688.0
    assert list(q["scale"][0]) == [0x38, 0x7E]
    assert list(q["codes"][0, :5]) == [0x7, 0xD, 0x2, 0x0, 0x0]   # 1.2 -> 1.0, 0.2 -> 0
    assert int(q["codes"][0, 16]) == 0x7


def test_nvfp4_te_flt_max():
    # A = FLT_MAX: S_enc = 2688 / FLT_MAX (normal); block 0 amax FLT_MAX -> s_b = e4m3(~448) = 0x7E,
    # multiplier 1/(448 * FLT_MAX/2688) = 6/FLT_MAX: FLT_MAX -> 6 (code 7), FLT_MAX/2 -> 3 (code 5),
    # 1e38 -> 1.763 (code 4); block 1 amax 1 -> s_b = e4m3(1.3e-36) = 0, multiplier = FLT_MAX -> every
    # nonzero element saturates (code 7), zeros stay 0 (TE's chain; it dequantizes to 0 anyway).
    x = np.zeros((1, 32), F32)
    x[0, :3] = [FLT_MAX, -FLT_MAX / 2, 1e38]
    x[0, 16:18] = [1.0, -0.001]
    q = R.quantize(x, "nvfp4", "te")
    assert float(q["amax"]) == FLT_MAX
    assert list(q["scale"][0]) == [0x7E, 0x00]
    assert list(q["codes"][0, :4]) == [0x7, 0xD, 0x4, 0x0]
    assert list(q["codes"][0, 16:19]) == [0x7, 0xF, 0x0]
    d = R.dequantize(q)
    assert np.isclose(d[0, 0], FLT_MAX, rtol=1e-6) and not d[0, 16:].any()


def test_nvfp4_torchao_table():
    # A = 2688 -> p = 1; block amax 6 -> s_b = 1 (0x38); block amax 0.01 -> 0.01/6 clamps to 2^-6 (0x08)
    x = np.zeros((1, 48), F32)
    x[0, 0], x[0, 1] = 6.0, 2.9
    x[0, 16] = 0.01
    x[0, 32] = 2688.0
    q = R.quantize(x, "nvfp4", "torchao")
    assert list(q["scale"][0]) == [0x38, 0x08, 0x7E]
    assert list(q["codes"][0, :2]) == [0x7, 0x5]
    assert int(q["codes"][0, 16]) == 0x1          # 0.01 * 64 = 0.64 -> 0.5


def test_nvfp4_nonfinite_block():
    # A = Inf -> S_enc = 1.  Block 0 (has Inf): scale 0x7F, codes 0.  Block 1 (amax 1):
    # s_b = e4m3(fp32(1/6) = 0.1666667): quantum 2^-6 in [2^-3, 2^-2), 10.67 -> 11 -> 0.171875 =
    # 1.375 * 2^-3 -> field 4, mantissa 3 -> 0x23; multiplier 1/0.171875 = 5.82 -> every 1.0 -> code 7.
    x = np.ones((1, 32), F32)
    x[0, 3] = np.inf
    q = R.quantize(x, "nvfp4", "te")
    assert np.isinf(q["amax"])
    assert list(q["scale"][0]) == [0x7F, 0x23]
    assert not q["codes"][0, :16].any() and np.all(q["codes"][0, 16:] == 0x7)


def test_nvfp4_2d_tiles_identical_for_transpose():
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((48, 64)) * np.exp(rng.standard_normal((48, 1)) * 3)).astype(F32)
    for rule in ("te", "torchao"):
        r = R.quantize(x, "nvfp4", rule, block_2d=True)
        c = R.quantize(x, "nvfp4", rule, block_2d=True, direction="columnwise")
        rs = r["scale"].reshape(3, 16, 4)
        assert np.all(rs == rs[:, :1, :])                        # one scale per 16x16 tile
        assert np.array_equal(rs[:, 0, :], c["scale"].reshape(4, 16, 3)[:, 0, :].T)
        assert np.array_equal(R.dequantize(r), R.dequantize(c).T)


# ---------------------------------------------------------------------------------------------- per-row
def test_fp4_row_table():
    x = np.zeros((4, 16), F32)
    x[0, :3] = [3.0, -1.5, 0.4]     # pow2: 6/3 = 2 -> e = 1, scale 0.5: 6, -3, 0.8 -> codes 7, 0xD, 2
    x[1, 0] = 7.0                   # 6/7 = 0.857 -> e = -1, scale 2: 3.5 -> 4 (code 6)
    x[2, 0] = 1e-40                 # 6/1e-40 overflows -> e = 127, scale 2^-127
    q = R.quantize(x, "fp4_row", "pow2")
    assert list(q["scale"]) == [0.5, 2.0, 2.0**-127, 1.0]   # row 3 is zero: scale 1
    assert list(q["codes"][0, :3]) == [0x7, 0xD, 0x2] and int(q["codes"][1, 0]) == 0x6
    assert int(q["codes"][2, 0]) == 0x0                     # clamped: 1e-40 * 2^127 = 0.017 -> 0
    a = R.quantize(x, "fp4_row", "amax")
    assert a["scale"][0] == F32(0.5) and a["scale"][1] == F32(7.0) / F32(6) and a["scale"][3] == 1.0
    assert int(a["codes"][1, 0]) == 0x7


def test_fp4_row_nonfinite_row():
    x = np.ones((2, 16), F32)
    x[1, 4] = np.nan
    for rule in ("pow2", "amax"):
        q = R.quantize(x, "fp4_row", rule)
        assert np.isnan(q["scale"][1]) and not q["codes"][1].any() and np.isfinite(q["scale"][0])


# ---------------------------------------------------------------------------------------------- layouts
def test_blocked_layout_positions():
    rows, cols = 130, 5
    s = (np.arange(rows * cols) % 251 + 1).astype(np.uint8).reshape(rows, cols)
    b = R.to_blocked(s)
    assert b.shape == (256 * 8,)
    assert b[0] == s[0, 0] and b[1] == s[0, 1] and b[3] == s[0, 3]
    assert b[4] == s[32, 0] and b[16] == s[1, 0] and b[16 * 31 + 4 * 3 + 2] == s[127, 2]
    assert b[512] == s[0, 4] and b[513] == 0                  # next tile along K; padded column
    assert b[1024] == s[128, 0] and b[1024 + 16] == s[129, 0] and b[1024 + 32] == 0
    assert np.array_equal(R.from_blocked(b, rows, cols), s)
    assert (b != 0).sum() == rows * cols
