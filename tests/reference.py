"""Independent NumPy reference of SPEC.md sections 1-4 and docs/numerics.md.

Written from the two documents only (never from src/, include/ or cuda/), so that it can serve as the
test oracle of the library's quantization bytes and GEMM values.

Conventions
-----------
* Where the spec talks about exact real values (decoded codes, scales, dequantized values, GEMM
  products) we work in float64.
* Where the spec fixes a sequence of fp32 operations (RHT butterflies, the 0.75 prescale multiply,
  the NVFP4 TE / torchao chains, the QuEST sigma, rceil's fp32 division, per-row scales), we compute
  in ``np.float32``: NumPy's float32 arithmetic is IEEE single precision with correct rounding and
  gradual underflow, which is exactly what the spec asks for.
* Exponents are read from the fp32 bit pattern (``view(np.uint32)``), never through ``np.log2``.
* The "quantized view" of a tensor ``x`` is ``x2d = x.reshape(-1, x.shape[-1])`` (rowwise) or
  ``x2d.T`` (columnwise); blocks run along its last dimension ``K``.
"""
from __future__ import annotations

import numpy as np

F32 = np.float32
FLT_MAX = F32(np.finfo(np.float32).max)
U32_MASK = 0xFFFFFFFF

MX_BLOCK = 32
NV_BLOCK = 16
ROW_K_MULTIPLE = 16
DEFAULT_RULE = {"mxfp4": "floor", "nvfp4": "te", "fp4_row": "pow2"}
RULES_OF = {"mxfp4": ("floor", "rceil", "even", "quest"), "nvfp4": ("te", "torchao"),
            "fp4_row": ("pow2", "amax")}

# ----------------------------------------------------------------------------------------------
# Philox4x32-10 (SPEC 1: SR random bits; docs/numerics.md: "SR bits", "Hadamard signs")
# ----------------------------------------------------------------------------------------------
_PHILOX_M0 = np.uint64(0xD2511F53)
_PHILOX_M1 = np.uint64(0xCD9E8D57)
_PHILOX_W0 = 0x9E3779B9
_PHILOX_W1 = 0xBB67AE85


def philox4x32_10(counter, key):
    """Random123 Philox4x32 with 10 rounds (SPEC 1).

    counter: (4, n) uint32 array (words c0..c3), key: (2,) uint32.  Returns (4, n) uint32.
    One round: (hi0, lo0) = M0*c0, (hi1, lo1) = M1*c2 (32x32->64 products);
    c = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0); the key is bumped by the Weyl constants between rounds.
    """
    c = np.asarray(counter, dtype=np.uint32).astype(np.uint64)
    if c.ndim == 1:
        c = c[:, None]
    k0, k1 = int(key[0]) & U32_MASK, int(key[1]) & U32_MASK
    m = np.uint64(U32_MASK)
    s32 = np.uint64(32)
    c0, c1, c2, c3 = c[0], c[1], c[2], c[3]
    for rnd in range(10):
        if rnd:
            k0 = (k0 + _PHILOX_W0) & U32_MASK
            k1 = (k1 + _PHILOX_W1) & U32_MASK
        p0 = c0 * _PHILOX_M0  # < 2^64, exact in uint64
        p1 = c2 * _PHILOX_M1
        hi0, lo0 = p0 >> s32, p0 & m
        hi1, lo1 = p1 >> s32, p1 & m
        c0, c1, c2, c3 = hi1 ^ c1 ^ np.uint64(k0), lo1, hi0 ^ c3 ^ np.uint64(k1), lo0
    return np.stack([c0, c1, c2, c3]).astype(np.uint32)


def _key_of(seed):
    seed = int(seed) & (2**64 - 1)
    return np.array([seed & U32_MASK, seed >> 32], dtype=np.uint32)


def sr_bits(seed, offset, stream, n_positions):
    """One 16-bit random number per logical position p = 0..n-1 (docs/numerics.md "SR bits").

    Position p uses half p % 2 (0 = low 16 bits) of word (p // 2) % 4 of Philox4x32-10(key = (lo32(seed),
    hi32(seed)), counter = (lo32(p/8), hi32(p/8) | stream << 31, lo32(offset), hi32(offset))).
    stream: 0 rowwise, 1 columnwise.
    """
    offset = int(offset) & (2**64 - 1)
    n_ctr = (int(n_positions) + 7) // 8
    q = np.arange(n_ctr, dtype=np.uint64)
    ctr = np.empty((4, n_ctr), dtype=np.uint32)
    ctr[0] = (q & np.uint64(U32_MASK)).astype(np.uint32)
    ctr[1] = ((q >> np.uint64(32)) | np.uint64((int(stream) & 1) << 31)).astype(np.uint32)
    ctr[2] = offset & U32_MASK
    ctr[3] = offset >> 32
    words = philox4x32_10(ctr, _key_of(seed)).T  # (n_ctr, 4): words x, y, z, w of each call
    halves = np.stack([words & 0xFFFF, words >> 16], axis=-1)  # (n_ctr, 4, 2): low half first
    return halves.reshape(-1)[:n_positions].astype(np.uint32)  # p -> word (p // 2) % 4, half p % 2


# ----------------------------------------------------------------------------------------------
# Random Hadamard transform (SPEC 3; docs/numerics.md "Hadamard signs from a seed", "RHT order")
# ----------------------------------------------------------------------------------------------
HADAMARD_SIZES = (16, 32, 64, 128, 256)
_HADAMARD_TAG = 0x48414441  # "HADA"


def hadamard_signs(seed, g):
    """Sign vector (+1/-1 ints, length g) drawn from `seed` (docs/numerics.md).

    Bit i (sign -1 when set) of the 256-bit string made of the words x, y, z, w of
    Philox(key = seed, counter = (j, 0, 0, 0x48414441)) for j = 0, 1, i.e. bit i % 32 of word i // 32
    of [x0, y0, z0, w0, x1, y1, z1, w1].
    """
    assert g in HADAMARD_SIZES
    ctr = np.array([[0, 1], [0, 0], [0, 0], [_HADAMARD_TAG] * 2], dtype=np.uint32)
    out = philox4x32_10(ctr, _key_of(seed))  # (4, 2)
    words = out.T.reshape(-1).astype(np.uint64)  # x0 y0 z0 w0 x1 y1 z1 w1
    i = np.arange(g)
    bits = (words[i >> 5] >> (i & 31).astype(np.uint64)) & np.uint64(1)
    return np.where(bits == 1, -1, 1).astype(np.int64)


def hadamard_matrix(g, normalized=True):
    """Sylvester-order Hadamard matrix H_g in float64 (SPEC 3): H_1 = [1], H_2n = [[H, H], [H, -H]].

    normalized=True returns H_g / sqrt(g) (orthogonal); False the +-1 matrix.
    """
    h = np.ones((1, 1))
    while h.shape[0] < g:
        h = np.block([[h, h], [h, -h]])
    assert h.shape[0] == g
    return h / np.sqrt(g) if normalized else h


def rht(y, g, signs):
    """Blockwise RHT along the last axis in fp32, fixed order (SPEC 3, docs/numerics.md "RHT order").

    Each length-g block: multiply by the signs, butterflies h = 1, 2, 4, ..., g/2 with
    (x[j], x[j+h]) <- (a + b, a - b) for j with bit h clear (all fp32), then one multiply by
    fp32(1/sqrt(g)).  Equals (x * s) @ H_g / sqrt(g) up to fp32 rounding.
    """
    y = np.asarray(y, dtype=F32)
    K = y.shape[-1]
    assert K % g == 0, "the quantized dimension must be a multiple of the Hadamard block"
    s = np.asarray(signs, dtype=F32)
    assert s.shape == (g,)
    lead = y.shape[:-1]
    v = y.reshape(lead + (K // g, g)) * s
    h = 1
    with np.errstate(invalid="ignore", over="ignore"):
        while h < g:
            t = v.reshape(lead + (K // g, g // (2 * h), 2, h))
            a, b = t[..., 0, :], t[..., 1, :]
            v = np.stack([a + b, a - b], axis=-2).reshape(lead + (K // g, g))
            h *= 2
        v = v * rht_scale(g)
    return v.reshape(y.shape).astype(F32)


def rht_scale(g):
    """fp32(1/sqrt(g)): the correctly rounded single-precision value of 1/sqrt(g) (SPEC 3)."""
    return F32(1.0 / np.sqrt(float(g)))


# ----------------------------------------------------------------------------------------------
# Bit-level helpers
# ----------------------------------------------------------------------------------------------
def f32_exponent(x):
    """Unbiased exponent field of fp32 values: field - 127 (0 and subnormals give -127, Inf/NaN 128)."""
    b = np.asarray(x, dtype=F32).view(np.uint32)
    return ((b >> np.uint32(23)) & np.uint32(0xFF)).astype(np.int64) - 127


def f32_mantissa(x):
    """Mantissa field (23 bits) of fp32 values."""
    return (np.asarray(x, dtype=F32).view(np.uint32) & np.uint32(0x7FFFFF)).astype(np.int64)


def pow2_f32(e):
    """2**e as fp32 (exact for -149 <= e <= 127)."""
    e = np.asarray(e, dtype=np.int64)
    assert np.all((e >= -149) & (e <= 127))
    return np.ldexp(1.0, e).astype(F32)


def mul_pow2_f32(x, e):
    """fp32(x * 2**e) with ONE rounding (what an IEEE fp32 multiply by the exact power 2**e gives)."""
    return (np.asarray(x, dtype=F32).astype(np.float64) * np.ldexp(1.0, np.asarray(e, dtype=np.int64))).astype(F32)


# ----------------------------------------------------------------------------------------------
# E2M1 (SPEC 1)
# ----------------------------------------------------------------------------------------------
E2M1_MAGNITUDES = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])
E2M1_VALUES = np.concatenate([E2M1_MAGNITUDES, -E2M1_MAGNITUDES])  # index = 4-bit code


def e2m1_decode(codes):
    """float64 value of 4-bit E2M1 codes (SPEC 1): bit 3 sign, magnitudes 0, .5, 1, 1.5, 2, 3, 4, 6."""
    return E2M1_VALUES[np.asarray(codes, dtype=np.int64) & 0xF]


def e2m1_encode_rtn(v):
    """RTN, ties to the even code, |v| > 6 saturates, sign kept on a round to zero (SPEC 1).

    Decision thresholds (ties go to the even code): 0.25 -> 0, 0.75 -> 2 (1.0), 1.25 -> 2 (1.0),
    1.75 -> 4 (2.0), 2.5 -> 4 (2.0), 3.5 -> 6 (4.0), 5 -> 6 (4.0).
    NaN input is not defined by the spec (blocks with NaN are handled by the callers); here it maps to 0.
    """
    v = np.asarray(v, dtype=F32)
    a = np.abs(v).astype(np.float64)
    with np.errstate(invalid="ignore"):
        mag = ((a > 0.25).astype(np.uint8) + (a >= 0.75) + (a > 1.25) + (a >= 1.75)
               + (a > 2.5) + (a >= 3.5) + (a > 5.0)).astype(np.uint8)
    sign = np.signbit(v).astype(np.uint8) << np.uint8(3)
    return (mag | sign).astype(np.uint8)


def e2m1_encode_sr(v, r):
    """Stochastic rounding with 16-bit random numbers r, docs/numerics.md "SR bits".

    lo <= |v| < hi grid neighbours; round up iff r < floor(t * 2^16), t = (|v| - lo) * (1/(hi - lo))
    (exact in fp32). |v| >= 6 and NaN give 6. The sign is kept, also on a round to zero.
    """
    v = np.asarray(v, dtype=F32)
    r = np.asarray(r, dtype=np.uint32).astype(np.uint64)
    a = np.abs(v)
    a64 = a.astype(np.float64)
    lo_idx = np.clip(np.searchsorted(E2M1_MAGNITUDES, a64, side="right") - 1, 0, 6)
    lo = E2M1_MAGNITUDES[lo_idx].astype(F32)
    inv_step = (1.0 / (E2M1_MAGNITUDES[lo_idx + 1] - E2M1_MAGNITUDES[lo_idx])).astype(F32)
    with np.errstate(invalid="ignore", over="ignore"):
        t = (a - lo) * inv_step  # fp32, exact (Sterbenz + power-of-two step)
        thr = np.floor(t.astype(np.float64) * 2.0**16)
        thr = np.where(np.isfinite(thr), thr, 0).astype(np.uint64)
    up = r < thr
    mag = np.where((a64 >= 6.0) | np.isnan(a64), 7, lo_idx + up).astype(np.uint8)
    sign = np.signbit(v).astype(np.uint8) << np.uint8(3)
    return (mag | sign).astype(np.uint8)


def pack_e2m1(codes):
    """Pack codes [..., K] into bytes [..., K/2]: element 2i low nibble, 2i+1 high nibble (SPEC 1)."""
    codes = np.asarray(codes, dtype=np.uint8)
    return (codes[..., 0::2] & 0xF) | ((codes[..., 1::2] & 0xF) << 4)


def unpack_e2m1(data):
    """Inverse of pack_e2m1: bytes [..., K/2] -> codes [..., K]."""
    data = np.asarray(data, dtype=np.uint8)
    out = np.empty(data.shape[:-1] + (data.shape[-1] * 2,), dtype=np.uint8)
    out[..., 0::2] = data & 0xF
    out[..., 1::2] = data >> 4
    return out


# ----------------------------------------------------------------------------------------------
# E4M3 and E8M0 (SPEC 2; docs/numerics.md "E4M3 conversion")
# ----------------------------------------------------------------------------------------------
def e4m3_encode(x):
    """fp32 -> E4M3 byte, round to nearest even, satfinite (finite values and +-Inf -> +-448), NaN -> 0x7F.

    E4M3: bias 7, 3 mantissa bits, normal exponents -6..8, subnormals m * 2^-9, max 448 = 0x7E.
    """
    x = np.asarray(x, dtype=F32)
    sign = ((x.view(np.uint32) >> np.uint32(31)).astype(np.uint8) << np.uint8(7))
    ax = np.abs(x)
    nan = np.isnan(ax)
    ax = np.where(nan, F32(0), ax)
    e = np.maximum(f32_exponent(ax), -6)  # Inf gives 128: quotient Inf, saturates below
    e = np.minimum(e, 8)
    quantum = np.ldexp(1.0, e - 3)
    with np.errstate(invalid="ignore", over="ignore"):
        m = np.rint(ax.astype(np.float64) / quantum)  # exact division; rint = half to even
        q = np.minimum(m * quantum, 448.0)
    q32 = q.astype(F32)
    qe = f32_exponent(q32)
    normal = qe >= -6
    code_normal = (((qe + 7) << 3) | ((f32_mantissa(q32) >> 20) & 7)).astype(np.int64)
    code_sub = np.rint(q * 512.0).astype(np.int64)  # q = m * 2^-9, m in 0..7 (8 -> 0x08 = 2^-6, same)
    code = np.where(normal, code_normal, code_sub).astype(np.uint8)
    code = (code | sign).astype(np.uint8)
    return np.where(nan, np.uint8(0x7F), code).astype(np.uint8)


def e4m3_decode(b):
    """E4M3 byte -> float64 value; 0x7F / 0xFF are NaN."""
    b = np.asarray(b, dtype=np.int64)
    s = np.where(b & 0x80, -1.0, 1.0)
    ef = (b >> 3) & 0xF
    m = b & 7
    mag = np.where(ef == 0, m * 2.0**-9, (1.0 + m / 8.0) * np.ldexp(1.0, ef - 7))
    out = s * mag
    return np.where((b & 0x7F) == 0x7F, np.nan, out)


def e8m0_decode(b):
    """E8M0 byte -> float64 2^(b - 127); 0xFF is NaN (SPEC 2)."""
    b = np.asarray(b, dtype=np.int64)
    return np.where(b == 0xFF, np.nan, np.ldexp(1.0, b - 127))


# ----------------------------------------------------------------------------------------------
# MXFP4 scale rules (SPEC 2; docs/numerics.md "MXFP4 even", "rceil", "QuEST")
# ----------------------------------------------------------------------------------------------
def mx_exponent_floor(amax):
    """floor: e = E(amax) - 2, E the unbiased fp32 exponent field (0/subnormal -> -127), clamp [-127, 127]."""
    return np.clip(f32_exponent(amax) - 2, -127, 127)


def mx_exponent_rceil(amax):
    """rceil: q = fp32(amax / 6); e = E(q) + (mantissa(q) != 0); zero/subnormal q -> -127; clamp [-127, 127]."""
    with np.errstate(invalid="ignore", over="ignore"):
        q = np.asarray(amax, dtype=F32) / F32(6)
    E = f32_exponent(q)
    e = np.where(E == -127, -127, E + (f32_mantissa(q) != 0))
    return np.clip(e, -127, 127)


def mx_exponent_even(amax):
    """even (torchao EVEN): exponent field of bits(amax) + 2^21, minus 127, minus 2; clamp [-127, 127]."""
    b = np.asarray(amax, dtype=F32).view(np.uint32).astype(np.int64) + (1 << 21)
    return np.clip(((b >> 23) & 0xFF) - 127 - 2, -127, 127)


def _pairwise_sum32(v):
    """Sum over the last axis (length 32) as s[i] = v[i] + v[i + 16], then halving (fp32)."""
    n = v.shape[-1]
    while n > 1:
        n //= 2
        v = v[..., :n] + v[..., n:2 * n]
    return v[..., 0]


QUEST_FACTOR = F32(2.92247856 / 6)
QUEST_EPS = F32(1e-8)


def quest_sigma(blocks):
    """Centred population std of each 32-block in the fixed fp32 order of docs/numerics.md "QuEST".

    Normalize by 2^-E(amax) (one rounding), mean and variance by pairwise sums (each divided by 32),
    sqrtf, scale back by 2^E.  blocks: fp32 [..., 32] (finite).
    """
    blocks = np.asarray(blocks, dtype=F32)
    amax = np.max(np.abs(blocks), axis=-1)
    E = f32_exponent(amax)
    v = mul_pow2_f32(blocks, -E[..., None])
    mean = _pairwise_sum32(v) / F32(32)
    d = v - mean[..., None]
    var = _pairwise_sum32(d * d) / F32(32)
    sigma = np.sqrt(var)
    return mul_pow2_f32(sigma, E)


def mx_exponent_quest(blocks):
    """quest: t = sigma * fp32(2.92247856/6) + 1e-8f (two fp32 roundings), e = E(t), clamp [-127, 127]."""
    sigma = quest_sigma(blocks)
    t = sigma * QUEST_FACTOR + QUEST_EPS
    return np.clip(f32_exponent(t), -127, 127)


# ----------------------------------------------------------------------------------------------
# NVFP4 (SPEC 2; docs/numerics.md "NVFP4 TE rule", "NVFP4 torchao rule")
# ----------------------------------------------------------------------------------------------
def nvfp4_s_enc(A):
    """TE: S_enc = min(fp32(2688 / A), FLT_MAX); 1 when A = 0, the quotient is 0, or A is not finite."""
    A = F32(A)
    if not np.isfinite(A) or A == 0:
        return F32(1)
    with np.errstate(divide="ignore", over="ignore"):
        s = F32(2688) / A
    s = min(s, FLT_MAX)
    return F32(1) if s == 0 else F32(s)


def nvfp4_te_scales(block_amax, A):
    """TE block scale bytes and fp32 multipliers.

    s_b = e4m3_rne_satfinite(amax_b * (S_enc * fp32(1/6))); multiplier = min(1/(f32(s_b) * fp32(1/S_enc)), FLT_MAX).
    """
    s_enc = nvfp4_s_enc(A)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        sb_f = np.asarray(block_amax, dtype=F32) * (s_enc * F32(1.0 / 6.0))
        sb = e4m3_encode(sb_f)
        sbv = e4m3_decode(sb).astype(F32)
        mult = F32(1) / (sbv * (F32(1) / s_enc))
        mult = np.minimum(mult, FLT_MAX)
    return sb, mult


def nvfp4_torchao_scales(block_amax, A):
    """torchao: p = fp32(A / 2688); s_b = e4m3(clamp((amax_b / 6) / p, 2^-6, 448)); multiplier
    min((1/p) / f32(s_b), FLT_MAX).

    A = 0: scales 2^-6 and multiplier 0 (all codes 0).
    """
    A = F32(A)
    block_amax = np.asarray(block_amax, dtype=F32)
    if A == 0:
        return np.full(block_amax.shape, e4m3_encode(F32(2.0**-6)), dtype=np.uint8), np.zeros(block_amax.shape, F32)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        p = A / F32(2688)
        sb_f = np.clip((block_amax / F32(6)) / p, F32(2.0**-6), F32(448))
        sb = e4m3_encode(sb_f)
        sbv = e4m3_decode(sb).astype(F32)
        mult = np.minimum((F32(1) / p) / sbv, FLT_MAX)
    return sb, mult


def _tile_amax_2d(row_block_amax):
    """2D NVFP4: amax of each 16x16 tile (ragged last tile: the rows that exist), broadcast back to rows."""
    rows, nb = row_block_amax.shape
    nt = (rows + 15) // 16
    pad = np.zeros((nt * 16, nb), dtype=F32)
    pad[:rows] = row_block_amax
    t = np.max(pad.reshape(nt, 16, nb), axis=1)  # NaN propagates
    return np.repeat(t, 16, axis=0)[:rows]


# ----------------------------------------------------------------------------------------------
# quantize (SPEC 1-3, docs/numerics.md "Pipeline of one quantization")
# ----------------------------------------------------------------------------------------------
def quantized_view(x, direction="rowwise"):
    """fp32 2D view that is quantized: x.reshape(-1, K) (rowwise) or its transpose (columnwise)."""
    x = np.asarray(x, dtype=F32)
    x2d = x.reshape(-1, x.shape[-1]) if x.ndim > 1 else x.reshape(1, -1)
    if direction == "rowwise":
        return np.ascontiguousarray(x2d)
    assert direction == "columnwise"
    return np.ascontiguousarray(x2d.T)


def quantize(x, fmt="mxfp4", scale_rule=None, rounding="rtn", prescale=False, block_2d=False,
             hadamard_g=None, signs=None, seed=0, offset=0, direction="rowwise", amax=None):
    """Quantize x (float32 array) as SPEC 1-3 / docs/numerics.md and return the raw bytes.

    Pipeline: fp32 view [rows, K] -> optional RHT along K -> (NVFP4) tensor amax A -> per-block scale
    -> v = y * multiplier (fp32) -> v *= 0.75 (prescale) -> RTN / SR (stream 0 rowwise, 1 columnwise;
    position p = row * K + k).

    Returns dict(data=uint8 [rows, K/2], scale=uint8 [rows, K/block] (float32 [rows] for fp4_row),
    amax=float32 (nvfp4), clip_mask=uint8 [rows, K/8] (mxfp4 quest), global_scale, codes, y (the
    transformed fp32 values), fmt, scale_rule, prescale, nonfinite=bool [rows, nblocks]).
    """
    rule = DEFAULT_RULE[fmt] if scale_rule is None else scale_rule
    assert rule in RULES_OF[fmt], (fmt, rule)
    y = quantized_view(x, direction)
    rows, K = y.shape
    if hadamard_g:
        if signs is None:
            signs = np.ones(hadamard_g, dtype=np.int64)
        y = rht(y, hadamard_g, signs)
    stream = 0 if direction == "rowwise" else 1
    B = {"mxfp4": MX_BLOCK, "nvfp4": NV_BLOCK, "fp4_row": K}[fmt]
    if fmt == "fp4_row":
        assert K % ROW_K_MULTIPLE == 0
    assert K % B == 0, "K must be a multiple of the block"
    nb = K // B
    yb = y.reshape(rows, nb, B)
    with np.errstate(invalid="ignore"):
        bamax = np.max(np.abs(yb), axis=-1)  # NaN propagates
    nonfinite = ~np.all(np.isfinite(yb), axis=-1)
    out = dict(fmt=fmt, scale_rule=rule, prescale=bool(prescale), rows=rows, K=K, y=y,
               global_scale=(4.0 / 3.0) if prescale else 1.0)

    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        if fmt == "mxfp4":
            safe = np.where(nonfinite[..., None], F32(0), yb)
            if rule == "floor":
                e = mx_exponent_floor(bamax)
            elif rule == "rceil":
                e = mx_exponent_rceil(bamax)
            elif rule == "even":
                e = mx_exponent_even(bamax)
            else:
                e = mx_exponent_quest(safe)
            e = np.where(nonfinite, 0, e)
            scale = np.where(nonfinite, 0xFF, e + 127).astype(np.uint8)
            v = mul_pow2_f32(safe, -e[..., None])
        elif fmt == "nvfp4":
            if amax is None:
                A = F32(np.max(np.abs(y))) if not np.isnan(y).any() else F32(np.nan)
            else:
                A = F32(amax)
            out["amax"] = A
            if block_2d:
                bamax = _tile_amax_2d(bamax)
            if rule == "te":
                scale, mult = nvfp4_te_scales(bamax, A)
            else:
                scale, mult = nvfp4_torchao_scales(bamax, A)
            scale = np.where(nonfinite, np.uint8(0x7F), scale).astype(np.uint8)
            v = yb * mult[..., None]
            v = np.where(nonfinite[..., None], F32(0), v)
        else:  # fp4_row: one block = the whole row
            ra = bamax[:, 0]
            if rule == "pow2":
                q = F32(6) / ra
                e = np.where(np.isinf(q), 127, np.clip(f32_exponent(q), -126, 127))
                e = np.where(ra == 0, 0, e)
                e = np.where(nonfinite[:, 0], 0, e)
                scale = pow2_f32(-e)
                v = mul_pow2_f32(np.where(nonfinite[..., None], F32(0), yb), e[:, None, None])
            else:
                scale = ra / F32(6)
                scale = np.where(scale == 0, F32(2.0**-149), scale)  # amax < 3 * 2^-149
                scale = np.where(ra == 0, F32(1), scale).astype(F32)
                v = yb / scale[:, None, None]
            scale = np.where(nonfinite[:, 0], F32(np.nan), scale).astype(F32)
            v = np.where(nonfinite[..., None], F32(0), v)
        v = v.astype(F32)
        if prescale:
            v = v * F32(0.75)

    v = v.reshape(rows, K)
    if rounding == "rtn":
        codes = e2m1_encode_rtn(v)
    else:
        assert rounding == "sr"
        r = sr_bits(seed, offset, stream, rows * K).reshape(rows, K)
        codes = e2m1_encode_sr(v, r)
    nf_elem = np.repeat(nonfinite, B, axis=1)
    codes = np.where(nf_elem, np.uint8(0), codes).astype(np.uint8)

    out["codes"] = codes
    out["data"] = pack_e2m1(codes)
    out["scale"] = scale
    out["nonfinite"] = nonfinite
    if fmt == "mxfp4":
        with np.errstate(invalid="ignore"):
            clipped = (np.abs(v) >= 6) & ~nf_elem
        out["clip_mask"] = np.packbits(clipped, axis=-1, bitorder="little")
    return out


# ----------------------------------------------------------------------------------------------
# dequantize / GEMM (SPEC 2 and 4; docs/numerics.md "Dequantization", "GEMM reference")
# ----------------------------------------------------------------------------------------------
def dequantize(q):
    """Exact float64 values code * block_scale * tensor factors of a quantize() result, shape [rows, K].

    MXFP4: code * 2^(b-127) (NaN for b = 0xFF); NVFP4: code * f32(s_b) * A / 2688 (TE and torchao both:
    torchao's p = fp32(A/2688) is used for that rule); fp4_row: code * row_scale.  Times 4/3 with prescale.
    Values stay in the (possibly rotated) quantization basis.
    """
    fmt = q["fmt"]
    codes = q.get("codes")
    if codes is None:
        codes = unpack_e2m1(q["data"])
    vals = e2m1_decode(codes)
    rows, K = vals.shape
    with np.errstate(invalid="ignore", over="ignore"):
        if fmt == "mxfp4":
            s = np.repeat(e8m0_decode(q["scale"]), MX_BLOCK, axis=1)
            out = vals * s
        elif fmt == "nvfp4":
            s = np.repeat(e4m3_decode(q["scale"]), NV_BLOCK, axis=1)
            A = float(q["amax"])
            if q["scale_rule"] == "torchao":
                factor = float(F32(A) / F32(2688))
            else:
                factor = A / 2688.0
            out = vals * s * factor
        else:
            out = vals * np.asarray(q["scale"], dtype=np.float64).reshape(rows, 1)
    return out * q["global_scale"]


def gemm_ref(qa, qb, alpha=1.0, bias=None, beta=0.0, c=None):
    """D = alpha * (A^ B^T) + bias + beta * C in float64 (SPEC 4); A^ [M, K], B^ [N, K] from dequantize()."""
    a = dequantize(qa)
    b = dequantize(qb)
    d = alpha * (a @ b.T)
    if bias is not None:
        d = d + np.asarray(bias, dtype=np.float64)[None, :]
    if c is not None and beta != 0:
        d = d + beta * np.asarray(c, dtype=np.float64)
    return d


# ----------------------------------------------------------------------------------------------
# Scale layouts (SPEC 2)
# ----------------------------------------------------------------------------------------------
def blocked_index(rows, cols):
    """Flat index in the 128x4 blocked layout of every (r, c) of a padded [rows, cols] scale matrix.

    Tile (r // 128, c // 4); tiles of one 128-row group follow each other along K, then the next
    group; inside a tile the byte of (r, c) sits at 16 * (r % 32) + 4 * ((r % 128) // 32) + c % 4.
    """
    r = np.arange(rows)[:, None]
    c = np.arange(cols)[None, :]
    n_col_tiles = cols // 4
    tile = (r // 128) * n_col_tiles + c // 4
    return tile * 512 + 16 * (r % 32) + 4 * ((r % 128) // 32) + c % 4


def to_blocked(scales):
    """Canonical [rows, cols] scales -> flat blocked layout, rows padded to 128 and cols to 4 with zeros."""
    scales = np.asarray(scales)
    rows, cols = scales.shape
    pr, pc = -(-rows // 128) * 128, -(-cols // 4) * 4
    padded = np.zeros((pr, pc), dtype=scales.dtype)
    padded[:rows, :cols] = scales
    out = np.zeros(pr * pc, dtype=scales.dtype)
    out[blocked_index(pr, pc)] = padded
    return out


def from_blocked(blocked, rows, cols):
    """Inverse of to_blocked: flat blocked layout -> canonical [rows, cols] (padding dropped)."""
    pr, pc = -(-rows // 128) * 128, -(-cols // 4) * 4
    blocked = np.asarray(blocked).reshape(-1)
    assert blocked.size == pr * pc
    return blocked[blocked_index(pr, pc)][:rows, :cols]
