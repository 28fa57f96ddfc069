"""Stochastic rounding: unbiased at the rate its variance predicts; reproducible streams (SPEC 1, 7)."""
import numpy as np
import pytest
import torch

import fp4gemm
import reference as ref

GRID = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])
SEEDS = 200


def _unit(q) -> np.ndarray:
    """Dequantized value of code 1.0 for every element: global * block scale * tensor factor."""
    one = dict(fmt=q.fmt, scale_rule=q.scale_rule, global_scale=q.global_scale,
               codes=np.full(q.shape, 2, dtype=np.uint8).reshape(-1, q.shape[-1]),  # code 2 = 1.0
               scale=q.scale_bytes().numpy().reshape(-1, q.scale.shape[-1]) if q.fmt != "fp4_row"
               else q.scale.numpy().reshape(-1),
               amax=None if q.amax is None else q.amax.numpy())
    return ref.dequantize(one)


def _sr_variance(target: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """Var of one SR draw of target (in dequantized units): u^2 (hi - v)(v - lo) on the E2M1 grid."""
    v = np.abs(target / unit)
    assert v.max() <= 6.0 + 1e-6, "test inputs must not clip"
    i = np.clip(np.searchsorted(GRID, v, side="right") - 1, 0, 6)
    lo, hi = GRID[i], GRID[i + 1]
    return unit**2 * np.clip((hi - v) * (v - lo), 0, None)


@pytest.mark.parametrize("fmt,kw", [
    ("mxfp4", dict(prescale=True)),                           # Tseng: 3/4 keeps floor from clipping
    ("mxfp4", dict(prescale=True, hadamard=fp4gemm.Hadamard(64, seed=7))),
    ("nvfp4", dict(prescale=True)),
    ("fp4_row", dict()),                                      # pow2 never clips
])
def test_sr_is_unbiased_at_the_predicted_rate(fmt, kw):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 256, generator=g) * torch.exp(torch.randn(64, 1, generator=g))
    target = x.double().numpy()
    h = kw.get("hadamard")
    if h is not None:
        target = ref.rht(x.numpy(), h.g, np.array(h.sign_list())).astype(np.float64)
    draws = np.stack([fp4gemm.quantize(x, fmt, rounding="sr", seed=s, offset=3, **kw).dequantize().double().numpy()
                      for s in range(SEEDS)])
    q0 = fp4gemm.quantize(x, fmt, rounding="sr", seed=0, offset=3, **kw)
    var = _sr_variance(target, _unit(q0))
    mean = draws.mean(0)
    live = var > 0
    # Aggregate bias: Z ~ N(0, 1) if every element is unbiased.
    Z = (mean - target).sum() / np.sqrt(var.sum() / SEEDS)
    assert abs(Z) < 5, Z
    # Spread matches the SR variance (a wrong rounding probability changes it).
    z2 = ((mean - target)[live] ** 2 / (var[live] / SEEDS)).mean()
    assert 0.9 < z2 < 1.1, z2
    # Grid points and exactly representable values are never perturbed.
    assert np.all(draws[:, ~live] == target[~live])


def test_rtn_is_biased_where_sr_is_not():
    """Control for the test above: the same statistic rejects RTN."""
    x = torch.rand(64, 256, generator=torch.Generator().manual_seed(2)) * 0.2 + 0.8  # many values between grid points
    q = fp4gemm.quantize(x, "fp4_row", rounding="rtn")
    var = _sr_variance(x.double().numpy(), _unit(q))
    Z = (q.dequantize().double().numpy() - x.double().numpy()).sum() / np.sqrt(var.sum() / SEEDS)
    assert abs(Z) > 5


def test_same_seed_and_offset_give_same_bytes():
    x = torch.randn(64, 128)
    a = fp4gemm.quantize(x, "mxfp4", rounding="sr", seed=11, offset=5, columnwise=True)
    b = fp4gemm.quantize(x, "mxfp4", rounding="sr", seed=11, offset=5, columnwise=True)
    assert torch.equal(a.codes(), b.codes()) and torch.equal(a.columnwise.codes(), b.columnwise.codes())


@pytest.mark.parametrize("change", [dict(offset=6), dict(seed=12)])
def test_other_offset_or_seed_gives_other_bits(change):
    x = torch.randn(48, 128)
    base = dict(seed=11, offset=5)
    a = fp4gemm.quantize(x, "nvfp4", rounding="sr", **base).codes()
    b = fp4gemm.quantize(x, "nvfp4", rounding="sr", **dict(base, **change)).codes()
    assert (a != b).float().mean() > 0.1


def test_rowwise_and_columnwise_draw_from_distinct_streams():
    """On a symmetric matrix both directions round the same values at the same positions."""
    a = torch.randn(64, 64)
    x = a + a.t()
    q = fp4gemm.quantize(x, "mxfp4", rounding="sr", seed=3, columnwise=True)
    assert torch.equal(q.scale_bytes(), q.columnwise.scale_bytes())
    assert (q.codes() != q.columnwise.codes()).float().mean() > 0.1
    r = fp4gemm.quantize(x, "mxfp4", rounding="rtn", columnwise=True)
    assert torch.equal(r.codes(), r.columnwise.codes())


def test_sr_bits_follow_the_documented_stream():
    """Library bits == the reference Philox mapping: fp4_row with unit scale exposes each decision."""
    x = torch.full((4, 64), 0.25)                    # halfway between 0 and 0.5 -> up iff r < 2^15
    x[:, 0] = 6.0                                    # amax 6: pow2 scale 1, so v = x exactly
    q = fp4gemm.quantize(x, "fp4_row", rounding="sr", seed=2**40 + 3, offset=2**33 + 1)
    r = ref.sr_bits(2**40 + 3, 2**33 + 1, 0, x.numel()).reshape(4, 64)
    codes = ref.unpack_e2m1(q.codes().numpy())
    assert np.array_equal(codes[:, 1:] == 1, r[:, 1:] < 2**15)


def test_unseeded_calls_differ_and_follow_torch_manual_seed():
    x = torch.randn(32, 128)
    a = fp4gemm.quantize(x, rounding="sr").codes()
    b = fp4gemm.quantize(x, rounding="sr").codes()
    assert not torch.equal(a, b)
    torch.manual_seed(123)
    c = fp4gemm.quantize(x, rounding="sr").codes()
    torch.manual_seed(123)
    assert torch.equal(c, fp4gemm.quantize(x, rounding="sr").codes())
