"""Bad input raises a ValueError naming the argument; NaN/Inf follow the spec without crashing."""
import math

import numpy as np
import pytest
import torch

import fp4gemm


@pytest.mark.parametrize("call,arg", [
    (lambda: fp4gemm.quantize(torch.ones(4, 64, dtype=torch.int32)), "x"),
    (lambda: fp4gemm.quantize(torch.ones(4, 64, dtype=torch.float64)), "x"),
    (lambda: fp4gemm.quantize(np.ones((4, 64))), "x"),
    (lambda: fp4gemm.quantize(torch.ones(4, 48)), "x"),                       # K not a multiple of 32
    (lambda: fp4gemm.quantize(torch.ones(4, 40), "nvfp4"), "x"),              # nor of 16
    (lambda: fp4gemm.quantize(torch.ones(4, 64), hadamard=128), "x"),          # nor of the Hadamard block
    (lambda: fp4gemm.quantize(torch.ones(8, 64), columnwise=True), "x"),      # 8 rows: columnwise K=8
    (lambda: fp4gemm.quantize(torch.ones(0, 64)), "x"),
    (lambda: fp4gemm.quantize(torch.ones(64, 128).t()), "x"),                 # non-contiguous rows
    (lambda: fp4gemm.quantize(torch.ones(2, 64, 64).transpose(0, 1)), "x"),
    (lambda: fp4gemm.quantize(torch.ones(4, 64), "fp8"), "fmt"),
    (lambda: fp4gemm.quantize(torch.ones(4, 64), scale_rule="ceil"), "scale_rule"),
    (lambda: fp4gemm.quantize(torch.ones(4, 64), scale_rule="te"), "scale_rule"),   # rule of another fmt
    (lambda: fp4gemm.quantize(torch.ones(4, 64), rounding="nearest"), "rounding"),
    (lambda: fp4gemm.quantize(torch.ones(4, 64), hadamard=48), "hadamard"),
    (lambda: fp4gemm.quantize(torch.ones(4, 64), hadamard="64"), "hadamard"),
    (lambda: fp4gemm.quantize(torch.ones(4, 64), block_2d=True), "block_2d"),
    (lambda: fp4gemm.quantize(torch.ones(16, 64), "nvfp4", block_2d=True, hadamard=16), "block_2d"),
    (lambda: fp4gemm.quantize(torch.ones(4, 64), clip_mask=True), "clip_mask"),
    (lambda: fp4gemm.quantize(torch.ones(4, 64), seed=-1, rounding="sr"), "seed"),
    (lambda: fp4gemm.quantize(torch.ones(4, 64), rowwise=False), "rowwise"),
    (lambda: fp4gemm.quantize(torch.ones(4, 64), scale_layout="swizzled"), "scale_layout"),
    (lambda: fp4gemm.quantize(torch.ones(4, 64), "fp4_row", scale_layout="blocked"), "scale_layout"),
    (lambda: fp4gemm.quantize(torch.ones(4, 64), amax=torch.tensor(1.0)), "amax"),
    (lambda: fp4gemm.quantize(torch.ones(4, 64), "nvfp4", amax=torch.ones(2)), "amax"),
    (lambda: fp4gemm.Hadamard(16, signs=[1] * 8), "hadamard.signs"),
    (lambda: fp4gemm.matmul(torch.ones(4, 64), torch.ones(32, 8)), "b"),
    (lambda: fp4gemm.matmul(torch.ones(4, 64), torch.ones(64)), "b"),
    (lambda: fp4gemm.matmul(torch.ones(4, 64), torch.ones(64, 8, device="meta")), "b"),
    (lambda: fp4gemm.matmul(torch.ones(4, 64), torch.ones(64, 8), bias=torch.ones(7)), "bias"),
    (lambda: fp4gemm.gemm(fp4gemm.quantize(torch.ones(4, 64)), fp4gemm.quantize(torch.ones(4, 32))), "qb"),
    (lambda: fp4gemm.gemm(fp4gemm.quantize(torch.ones(4, 64)), torch.ones(4, 64)), "qb"),
    (lambda: fp4gemm.hadamard_transform(torch.ones(4, 48), 32), "x"),
    (lambda: fp4gemm.to_blocked(torch.ones(4, 4)), "scale"),
    (lambda: fp4gemm.from_blocked(torch.zeros(100, dtype=torch.uint8), 4, 4), "blocked"),
])
def test_bad_input_names_the_argument(call, arg):
    with pytest.raises(ValueError) as e:
        call()
    assert str(e.value).startswith(arg), str(e.value)


def test_malformed_quantized_operands_are_refused():
    """The native code trusts operand sizes: the op boundary must check them (review finding)."""
    from fp4gemm import ops
    data = torch.zeros(1 << 12, 16, dtype=torch.uint8)
    with pytest.raises(ValueError, match="^q: scales"):
        ops.dequantize_op(data, torch.zeros(1, dtype=torch.uint8), None, "mxfp4", "floor", 1.0)
    with pytest.raises(ValueError, match="^q: scales"):
        ops.dequantize_op(data[:4], torch.zeros(4, dtype=torch.uint8), None, "fp4_row", "pow2", 1.0)
    with pytest.raises(ValueError, match="^q: amax"):
        ops.dequantize_op(data[:4], torch.zeros(8, dtype=torch.uint8), torch.zeros(2), "nvfp4", "te", 1.0)
    with pytest.raises(ValueError, match="^a: "):
        ops.gemm_op(data[:4], torch.zeros(3, dtype=torch.uint8), None, "mxfp4", "floor", 1.0, data[:4],
                    torch.zeros(4, dtype=torch.uint8), None, "mxfp4", "floor", 1.0, 1.0, None, torch.float32, False)


def test_nan_and_inf_blocks_mxfp4():
    x = torch.randn(2, 128)
    x[0, 5] = math.nan
    x[1, 70] = math.inf
    q = fp4gemm.quantize(x)
    s = q.scale_bytes()
    assert s[0, 0] == 0xFF and s[1, 2] == 0xFF
    assert (s[0, 1:] != 0xFF).all() and (s[1, [0, 1, 3]] != 0xFF).all()
    d = q.dequantize()
    assert d[0, :32].isnan().all() and d[1, 64:96].isnan().all()
    assert d[0, 32:].isfinite().all()


def test_nan_poisons_nvfp4_tensor_through_amax():
    x = torch.randn(2, 64)
    x[1, 3] = math.nan
    q = fp4gemm.quantize(x, "nvfp4")
    assert q.amax.isnan() and q.scale_bytes()[1, 0] == 0x7F
    assert q.dequantize().isnan().all()
    y = fp4gemm.gemm(q, fp4gemm.quantize(torch.randn(3, 64), "nvfp4"), out_dtype=torch.float32)
    assert y.isnan().all()


def test_nan_row_fp4_row():
    x = torch.randn(3, 64)
    x[1, 0] = -math.inf
    q = fp4gemm.quantize(x, "fp4_row")
    assert q.scale[1].isnan().all() and q.scale[[0, 2]].isfinite().all()
