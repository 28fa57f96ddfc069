"""Scale layouts: canonical <-> 128x4 blocked (SPEC 2)."""
import numpy as np
import pytest
import torch

import fp4gemm
import reference as ref


@pytest.mark.parametrize("rows,cols", [(1, 1), (128, 4), (130, 7), (300, 64), (257, 129)])
def test_round_trip_and_reference(rows, cols):
    s = torch.randint(0, 255, (rows, cols), dtype=torch.uint8)
    b = fp4gemm.to_blocked(s)
    assert np.array_equal(b.numpy(), ref.to_blocked(s.numpy()))
    assert torch.equal(fp4gemm.from_blocked(b, rows, cols), s)


def test_hand_position():
    # (r=33, c=5) of a 200 x 8 matrix: tile (0, 1) -> 512, + 16*(33 % 32) + 4*(33 // 32) + 5 % 4 = 533
    s = torch.zeros(200, 8, dtype=torch.uint8)
    s[33, 5] = 7
    b = fp4gemm.to_blocked(s)
    assert b[512 + 16 + 4 + 1] == 7 and int(b.sum()) == 7
    # second 128-row group starts after both column tiles of the first: (r=128, c=0) -> 2 * 512
    s.zero_()
    s[128, 0] = 9
    assert fp4gemm.to_blocked(s)[1024] == 9


def test_quantized_scales_in_blocked_layout_keep_dtype():
    q = fp4gemm.quantize(torch.randn(130, 256), "nvfp4")
    b = q.blocked_scale()
    assert b.dtype == torch.float8_e4m3fn
    assert torch.equal(fp4gemm.from_blocked(b, 130, 16).view(torch.uint8), q.scale_bytes())


@pytest.mark.parametrize("fmt,rows", [("mxfp4", 130), ("nvfp4", 257), ("mxfp4", 96)])
def test_quantizer_writes_blocked_scales_directly(fmt, rows):
    x = torch.randn(rows, 512)
    kw = dict(rounding="sr", seed=3, columnwise=rows % 32 == 0)
    q = fp4gemm.quantize(x, fmt, **kw)
    qb = fp4gemm.quantize(x, fmt, scale_layout="blocked", **kw)
    assert torch.equal(qb.scale.view(torch.uint8), fp4gemm.to_blocked(q.scale).view(torch.uint8))
    assert torch.equal(qb.codes(), q.codes()) and torch.equal(qb.dequantize(), q.dequantize())
    if kw["columnwise"]:
        assert torch.equal(qb.columnwise.scale.view(torch.uint8), fp4gemm.to_blocked(q.columnwise.scale).view(torch.uint8))
    y = fp4gemm.quantize(torch.randn(16, 512), fmt)
    assert torch.equal(fp4gemm.gemm(qb, y), fp4gemm.gemm(q, y))
