"""The custom ops trace: fake implementations agree with the real ones; torch.compile fullgraph works."""
import pytest
import torch

import fp4gemm
from fp4gemm import ops


def test_opcheck_the_custom_ops():
    x = torch.randn(32, 64)
    args = (x, "nvfp4", "te", "rtn", False, False, 16, [0] * 8, 0, [], 0, 0, True, True, None, False, False)
    torch.library.opcheck(ops.quantize_op, args)
    d, s, a, _m, *_ = ops.quantize_op(*args)
    torch.library.opcheck(ops.gemm_op, (d, s, a, "nvfp4", "te", 1.0, d, s, a, "nvfp4", "te", 1.0, 1.0, None,
                                        torch.bfloat16, False))
    torch.library.opcheck(ops.dequantize_op, (d, s, a, "nvfp4", "te", 1.0))
    torch.library.opcheck(ops.hadamard_op, (x, 32, [5] * 8))
    torch.library.opcheck(ops.matmul_op, (x, torch.randn(48, 64), "mxfp4", "floor", "sr", True, 32, [3] * 8, 1, 2,
                                          torch.randn(48), torch.bfloat16, "auto"))


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4"])
def test_compile_fullgraph(fmt):
    a, w = torch.randn(16, 128), torch.randn(32, 128)

    def f(a, w):
        return fp4gemm.matmul(a, w.t(), fmt, hadamard=fp4gemm.Hadamard(32, seed=1)) * 2

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    assert torch.equal(compiled(a, w), f(a, w))


@pytest.mark.parametrize("recipe", [fp4gemm.BF16(), fp4gemm.Tseng(), fp4gemm.Quartet(), fp4gemm.NVFP4(),
                                    fp4gemm.MicrosoftFP4()], ids=lambda r: r.name)
def test_linear_op_fake_matches_real(recipe):
    """The training layer's forward op: its fake outputs (shapes, dtypes) are the real ones, bf16 too."""
    from fp4gemm.autograd import linear_op
    x, w, b = torch.randn(64, 128, dtype=torch.bfloat16), torch.randn(32, 128, dtype=torch.bfloat16), torch.randn(32)
    torch.library.opcheck(linear_op, (x, w, b, recipe.key), test_utils=("test_schema", "test_faketensor"))
