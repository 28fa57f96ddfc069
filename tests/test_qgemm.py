"""ops.qgemm_native (one native call: quantize both operands, then the GEMM) against the two-step
public path, fp4gemm.quantize + fp4gemm.gemm, with the same configurations: the bytes must be equal
(the one call only moves where the quantized operands live), on the CPU and on the GPU."""
import pytest
import torch

import fp4gemm
from fp4gemm import ops
from fp4gemm.hadamard import Hadamard

M, N, K = 96, 64, 256


def cuda_param():
    return pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(
        fp4gemm._C.cuda_capability() not in (90, 100, 120), reason="no fp4gemm GPU GEMM on this device")])


# (operand a, operand b, a columnwise, b columnwise, out dtype, mma); an operand is
# (fmt, scale_rule, rounding, prescale, hadamard g[, block_2d]). Cases with an odd-length name add a bias.
CASES = {
    "mxfp4 rtn rows": (("mxfp4", "floor", "rtn", False, 0), ("mxfp4", "floor", "rtn", False, 0), False, False,
                       torch.bfloat16, "auto"),
    "tseng wgrad": (("mxfp4", "floor", "sr", True, 64), ("mxfp4", "floor", "sr", True, 64), True, True,
                    torch.float32, "auto"),
    "tseng dgrad": (("mxfp4", "floor", "sr", True, 64), ("mxfp4", "floor", "sr", True, 64), False, True,
                    torch.bfloat16, "auto"),
    "te wgrad": (("nvfp4", "te", "sr", False, 16), ("nvfp4", "te", "sr", False, 16), True, True,
                 torch.float32, "auto"),
    "quest rows, bf16 mma": (("mxfp4", "quest", "rtn", False, 32), ("mxfp4", "quest", "rtn", False, 32), False,
                             False, torch.float16, "bf16"),
    "fp4_row x mxfp4": (("fp4_row", "pow2", "rtn", False, 0), ("mxfp4", "rceil", "sr", False, 0), False, True,
                        torch.bfloat16, "auto"),
    "te fwd, 2d weight": (("nvfp4", "te", "rtn", False, 0), ("nvfp4", "te", "rtn", False, 0, True), False, False,
                          torch.bfloat16, "auto"),
    "te dgrad": (("nvfp4", "te", "sr", False, 0), ("nvfp4", "te", "rtn", False, 0, True), False, True,
                 torch.float16, "auto"),
    "torchao rows x cols": (("nvfp4", "torchao", "rtn", True, 32), ("nvfp4", "torchao", "sr", False, 32), False, True,
                            torch.float32, "auto"),
    "te rows x cols, bf16 mma": (("nvfp4", "te", "rtn", False, 16), ("nvfp4", "te", "sr", False, 16), False, True,
                                 torch.float32, "bf16"),
}


@pytest.mark.parametrize("device", ["cpu", cuda_param()])
@pytest.mark.parametrize("case", list(CASES))
def test_qgemm_equals_quantize_then_gemm(device, case):
    op_a, op_b, a_cols, b_cols, out_dtype, mma = CASES[case]
    if device == "cpu" and mma == "bf16":
        mma = "auto"   # the CPU path has one arithmetic
    g = torch.Generator().manual_seed(len(case))
    a = torch.randn((K, M) if a_cols else (M, K), generator=g).to(device, torch.bfloat16)
    b = torch.randn((K, N) if b_cols else (N, K), generator=g).to(device, torch.bfloat16)
    g_had = op_a[4] or op_b[4]
    hadamard = Hadamard(g_had, seed=7) if g_had else None
    seeds = (11, 12)
    bias = torch.randn(N, generator=g).to(device) if len(case) % 2 else None

    def fields(op):
        fmt, rule, rounding, prescale, g_op, *block_2d = op
        return fmt, rule, rounding, prescale, hadamard if g_op else None, bool(block_2d and block_2d[0])

    def two_step(t, op, cols, seed):
        fmt, rule, rounding, prescale, h, block_2d = fields(op)
        return fp4gemm.quantize(t, fmt, scale_rule=rule, rounding=rounding, prescale=prescale, hadamard=h,
                                block_2d=block_2d, rowwise=not cols, columnwise=cols, seed=seed)

    want = fp4gemm.gemm(two_step(a, op_a, a_cols, seeds[0]), two_step(b, op_b, b_cols, seeds[1]), bias=bias,
                        out_dtype=out_dtype, mma=mma)

    def cfg(op, seed):
        fmt, rule, rounding, prescale, h, block_2d = fields(op)
        return ops.quantize_config(fmt, rule, rounding, prescale, block_2d, h.g if h else 0,
                                   h.sign_words() if h else [], seed)

    got = ops.qgemm_native(a, a_cols, cfg(op_a, seeds[0]), b, b_cols, cfg(op_b, seeds[1]), out_dtype, mma, bias)
    assert got.shape == (M, N) and got.dtype == out_dtype and got.device == a.device
    assert torch.equal(got, want)


@pytest.mark.parametrize("device", ["cpu", cuda_param()])
def test_qgemm_bad_inputs(device):
    a = torch.randn(M, K, device=device, dtype=torch.bfloat16)
    cfg = ops.quantize_config("mxfp4", "floor", "rtn", False, False, 0, [], 0)
    with pytest.raises(ValueError, match="^b"):     # K = 128 against a's 256
        ops.qgemm_native(a, False, cfg, torch.randn(N, 128, device=device), False, cfg, torch.float32)
    with pytest.raises(ValueError, match="^a"):     # columnwise: K = 80 rows, not a multiple of 32
        ops.qgemm_native(a[:80], True, cfg, torch.randn(N, 80, device=device), False, cfg, torch.float32)
    with pytest.raises(ValueError, match="^a"):
        ops.qgemm_native(a.int(), False, cfg, a, False, cfg, torch.float32)
    with pytest.raises(ValueError, match="^out_dtype"):
        ops.qgemm_native(a, False, cfg, a, False, cfg, torch.int32)
    with pytest.raises(ValueError, match="^bias"):
        ops.qgemm_native(a, False, cfg, a, False, cfg, torch.float32, "auto", torch.zeros(M + 1, device=device))
