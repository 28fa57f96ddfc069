"""Random Hadamard transform: exact fp32 order, orthogonality, product preservation, seeded signs (SPEC 3)."""
import numpy as np
import pytest
import torch

import fp4gemm
import reference as ref


@pytest.mark.parametrize("g", fp4gemm.HADAMARD_SIZES)
def test_transform_matches_reference_bit_for_bit(g):
    x = torch.randn(8, 512) * torch.logspace(-3, 3, 512)
    h = fp4gemm.Hadamard(g, seed=g + 1)
    got = fp4gemm.hadamard_transform(x, h).numpy()
    want = ref.rht(x.numpy(), g, np.array(ref.hadamard_signs(g + 1, g)))
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("g", fp4gemm.HADAMARD_SIZES)
def test_signs_reproducible_from_seed(g):
    assert fp4gemm.hadamard_signs(5, g) == list(ref.hadamard_signs(5, g))
    assert fp4gemm.hadamard_signs(5, g) == fp4gemm.hadamard_signs(5, g)
    assert len({tuple(fp4gemm.hadamard_signs(s, g)) for s in range(20)}) == 20


@pytest.mark.parametrize("g", fp4gemm.HADAMARD_SIZES)
def test_orthogonal(g):
    x = torch.randn(16, 1024, dtype=torch.float64).float()
    h = fp4gemm.Hadamard(g, seed=1)
    y = fp4gemm.hadamard_transform(x, h).double()
    assert torch.allclose(y.norm(dim=1), x.double().norm(dim=1), rtol=1e-6)
    # H is symmetric and orthonormal: applying it again (no signs) gives back x * s.
    back = fp4gemm.hadamard_transform(y.float(), fp4gemm.Hadamard(g)).double()
    s = torch.tensor(h.sign_list(), dtype=torch.float64).repeat(1024 // g)
    assert torch.allclose(back, x.double() * s, atol=1e-5, rtol=0)
    H = ref.hadamard_matrix(g)
    assert np.allclose(H @ H.T, np.eye(g), atol=1e-12)


@pytest.mark.parametrize("g", [16, 64, 256])
def test_product_preserved(g):
    """(A H)(B H)^T = A B^T to fp32 accuracy when both operands share the signs."""
    a, b = torch.randn(32, 1024), torch.randn(48, 1024)
    h = fp4gemm.Hadamard(g, seed=9)
    got = fp4gemm.hadamard_transform(a, h).double() @ fp4gemm.hadamard_transform(b, h).double().t()
    want = a.double() @ b.double().t()
    assert ((got - want).norm() / want.norm()) < 1e-6


def test_te_sign_vector():
    assert fp4gemm.TE_RHT_SIGNS == (1, 1, 1, -1, 1, -1, -1, -1, -1, -1, -1, 1, -1, 1, -1, -1)
    q = fp4gemm.quantize(torch.randn(4, 64), "nvfp4", hadamard=fp4gemm.Hadamard(16, signs=fp4gemm.TE_RHT_SIGNS))
    assert q.hadamard_signs == list(fp4gemm.TE_RHT_SIGNS)


def test_inputs_of_every_dtype():
    x = torch.randn(4, 64)
    h = fp4gemm.Hadamard(32, seed=2)
    for dt in (torch.bfloat16, torch.float16):
        xd = x.to(dt)
        assert torch.equal(fp4gemm.hadamard_transform(xd, h), fp4gemm.hadamard_transform(xd.float(), h))
