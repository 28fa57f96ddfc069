"""The training layer: recipes, fp4gemm.linear / nn.Linear / convert, against float64 emulations.

The emulations below rebuild each recipe from the NumPy reference quantizer (tests/reference.py) and
float64 products, with the seeds the documented stream gives (fp4gemm/autograd.py): one base seed per
backward call from torch's generator, seed_k = (base + k * 0x9E3779B97F4A7C15) mod 2^62. On the CPU
the library's GEMM is float64-exact, so fp32 results must agree bit for bit.
"""
import numpy as np
import pytest
import torch

import fp4gemm
import reference as ref

GOLDEN = 0x9E3779B97F4A7C15


def seeds_of(backward_seed: int) -> list:
    torch.manual_seed(backward_seed)
    base = int(torch.randint(0, 2**62, (), dtype=torch.int64))
    return [(base + k * GOLDEN) % 2**62 for k in range(6)]


def q(x, op, g=0, signs=None, seed=0, direction="rowwise"):
    return ref.quantize(np.asarray(x, dtype=np.float32), op.fmt, op.scale_rule, op.rounding, op.prescale,
                        op.block_2d, hadamard_g=g or None, signs=signs, seed=seed, direction=direction)


def values_and_factor(qd):
    """(code * block scale, exact in float64; the tensor-level factor) of a reference quantization."""
    vals = ref.e2m1_decode(ref.unpack_e2m1(qd["data"]))
    if qd["fmt"] == "mxfp4":
        return vals * np.repeat(ref.e8m0_decode(qd["scale"]), 32, axis=1), qd["global_scale"]
    if qd["fmt"] == "nvfp4":
        A = float(qd["amax"])
        tf = float(np.float32(A) / np.float32(2688)) if qd["scale_rule"] == "torchao" else A / 2688.0
        return vals * np.repeat(ref.e4m3_decode(qd["scale"]), 16, axis=1), qd["global_scale"] * tf
    return vals * np.asarray(qd["scale"], dtype=np.float64).reshape(-1, 1), qd["global_scale"]


def product(qa, qb, bias=None):
    """SPEC 4: the sum of exact products, times the tensor-level factors once (+ bias), in float64."""
    (a, fa), (b, fb) = values_and_factor(qa), values_and_factor(qb)
    d = (fa * fb) * (a @ b.T)
    return d if bias is None else d + np.asarray(bias, dtype=np.float64)


def emulate_gemm(spec, a, a_dir, b, b_dir, seeds):
    """a_q · b_qᵀ in float64 for one recipe GEMM, a and b quantized in the given directions."""
    signs = None
    if spec.hadamard:
        signs = list(spec.signs) if spec.signs is not None else ref.hadamard_signs(seeds[0], spec.hadamard)
    qa = q(a, spec.a, spec.hadamard, signs, seeds[1], a_dir)
    qb = q(b, spec.b, spec.hadamard, signs, seeds[2], b_dir)
    return product(qa, qb), qa, qb


def run(recipe, x, w, bias, dy, backward_seed):
    lin = fp4gemm.nn.Linear(x.shape[1], w.shape[0], recipe=recipe, device=x.device)
    with torch.no_grad():
        lin.weight.copy_(w)
        lin.bias.copy_(bias)
    xg = x.clone().requires_grad_()
    y = lin(xg)
    torch.manual_seed(backward_seed)
    y.backward(dy)
    return y.detach(), xg.grad, lin.weight.grad, lin.bias.grad


def data(T=128, K=128, N=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(T, K, generator=g), torch.randn(N, K, generator=g) * 0.1, torch.randn(N, generator=g),
            torch.randn(T, N, generator=g))


@pytest.mark.parametrize("recipe", [fp4gemm.Tseng(), fp4gemm.Tseng(False, False), fp4gemm.Tseng(True, False),
                                    fp4gemm.Tseng(False, True), fp4gemm.Tseng(g=128)], ids=lambda r: r.name)
def test_tseng_matches_float64_emulation(recipe):
    x, w, bias, dy = data()
    y, dx, dw, db = run(recipe, x, w, bias, dy, backward_seed=11)
    assert torch.equal(y, torch.nn.functional.linear(x, w, bias))   # BF16 (high precision) forward
    s = seeds_of(11)
    want_dx, qa, _ = emulate_gemm(recipe.dgrad, dy, "rowwise", w, "columnwise", s[0:3])
    want_dw, _, _ = emulate_gemm(recipe.wgrad, dy, "columnwise", x, "columnwise", s[3:6])
    assert qa["global_scale"] == (4 / 3 if recipe.dgrad.a.prescale else 1.0)   # 16/9 on the product
    assert torch.equal(dx, torch.from_numpy(want_dx).float())
    assert torch.equal(dw, torch.from_numpy(want_dw).float())
    assert torch.equal(db, dy.sum(0))


def test_nvfp4_matches_float64_emulation():
    recipe = fp4gemm.NVFP4()
    x, w, bias, dy = data()
    y, dx, dw, _ = run(recipe, x, w, bias, dy, backward_seed=5)
    f = recipe.forward
    want_y = product(q(x, f.a), q(w, f.b), bias.double().numpy())
    assert torch.equal(y, torch.from_numpy(want_y).float())
    s = seeds_of(5)
    want_dx, _, qb = emulate_gemm(recipe.dgrad, dy, "rowwise", w, "columnwise", s[0:3])
    want_dw, qa, _ = emulate_gemm(recipe.wgrad, dy, "columnwise", x, "columnwise", s[3:6])
    assert torch.equal(dx, torch.from_numpy(want_dx).float())
    assert torch.equal(dw, torch.from_numpy(want_dw).float())
    # TE's choices: 16x16 weight blocks (W and Wᵀ quantize alike), fixed RHT16 signs on wgrad only
    assert np.array_equal(ref.dequantize(qb), ref.dequantize(q(w, recipe.dgrad.b)).T)
    assert recipe.wgrad.hadamard == 16 and recipe.dgrad.hadamard == 0 and recipe.forward.hadamard == 0
    assert recipe.wgrad.a.rounding == "sr" and recipe.forward.a.rounding == "rtn"


def test_quartet_matches_float64_emulation():
    recipe = fp4gemm.Quartet()
    x, w, bias, dy = data()
    y, dx, dw, _ = run(recipe, x, w, bias, dy, backward_seed=9)
    f = recipe.forward
    plain = [1] * 32
    qx, qw = q(x, f.a, 32, plain), q(w, f.b, 32, plain)
    xq, wq = ref.dequantize(qx), ref.dequantize(qw)   # forward-quantized operands, Hadamard basis
    assert torch.equal(y, torch.from_numpy(product(qx, qw, bias.double().numpy())).float())
    s = seeds_of(9)
    dxq, _, _ = emulate_gemm(recipe.dgrad, dy, "rowwise", wq.astype(np.float32), "columnwise", s[0:3])
    dwq, _, _ = emulate_gemm(recipe.wgrad, dy, "columnwise", xq.astype(np.float32), "columnwise", s[3:6])

    def keep(qd):  # clip-mask bit set = clipped: no gradient through it
        bits = np.unpackbits(qd["clip_mask"], axis=-1, bitorder="little")
        return 1.0 - bits.astype(np.float32)

    want_dx = ref.rht(dxq.astype(np.float32) * keep(qx), 32, plain)   # undo H (symmetric, orthogonal)
    want_dw = ref.rht(dwq.astype(np.float32) * keep(qw), 32, plain)
    assert torch.equal(dx, torch.from_numpy(want_dx))
    assert torch.equal(dw, torch.from_numpy(want_dw))
    assert keep(qx).mean() < 1.0 and keep(qw).mean() < 1.0   # some entries were clipped: masks matter


def sr_grads(recipe, x, w, dy, n):
    lin = fp4gemm.nn.Linear(x.shape[1], w.shape[0], bias=False, recipe=recipe)
    with torch.no_grad():
        lin.weight.copy_(w)
    out = []
    for i in range(n):
        xg = x.clone().requires_grad_()
        torch.manual_seed(1000 + i)
        lin.weight.grad = None
        lin(xg).backward(dy)
        out.append((xg.grad.double(), lin.weight.grad.double()))
    return torch.stack([o[0] for o in out]), torch.stack([o[1] for o in out])


def mean_z2(samples, exact):
    """Mean over elements of (mean error)^2 / (its variance): about 1 for an unbiased estimator."""
    n = samples.shape[0]
    err = samples.mean(0) - exact
    var = samples.var(0) / n
    ok = var > 0
    return (err[ok] ** 2 / var[ok]).mean().item()


def test_sr_backward_is_unbiased():
    """The Tseng RHT + SR gradient averages to the exact float64 gradient at the rate its variance
    predicts: mean z^2 over ~10^4 elements stays near 1 (its sd is ~0.02 here). The RTN control
    (RHT only, no SR) is biased, and the same statistic rejects it."""
    x, w, _, dy = data(T=64, K=64, N=64, seed=3)
    exact_dx, exact_dw = dy.double() @ w.double(), dy.double().t() @ x.double()
    dxs, dws = sr_grads(fp4gemm.Tseng(), x, w, dy, 200)
    assert mean_z2(dxs, exact_dx) < 1.3 and mean_z2(dws, exact_dw) < 1.3
    rtn_dx, _ = sr_grads(fp4gemm.Tseng(True, False), x, w, dy, 200)
    assert mean_z2(rtn_dx, exact_dx) > 5.0


def test_rht_lowers_sr_variance_on_outlier_inputs():
    """Tseng et al.'s Theorem 3.2 setting: N(0, I) + Bernoulli(p) N(0, 5I) entries; the RHT spreads the
    outliers over their block, so the SR gradient's variance drops."""
    g = torch.Generator().manual_seed(4)
    T, K, N = 64, 128, 64
    def outliers(*shape):
        return torch.randn(*shape, generator=g) + (torch.rand(*shape, generator=g) < 0.01) * torch.randn(
            *shape, generator=g) * 5 ** 0.5 * 10
    x, w, dy = outliers(T, K), outliers(N, K) * 0.1, outliers(T, N)
    dxs, dws = sr_grads(fp4gemm.Tseng(rht=True), x, w, dy, 64)
    dxs0, dws0 = sr_grads(fp4gemm.Tseng(rht=False), x, w, dy, 64)
    assert dxs.var(0).mean() < 0.8 * dxs0.var(0).mean()
    assert dws.var(0).mean() < 0.8 * dws0.var(0).mean()


def test_convert_and_state_dict():
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.GELU(), torch.nn.Linear(128, 64))
    model.add_module("lm_head", torch.nn.Linear(64, 32))
    keys = list(model.state_dict())
    w0 = model[0].weight
    fp4gemm.convert(model, fp4gemm.Tseng(), skip=["lm_head"])
    assert isinstance(model[0], fp4gemm.nn.Linear) and isinstance(model[2], fp4gemm.nn.Linear)
    assert type(model.lm_head) is torch.nn.Linear
    assert model[0].weight is w0 and list(model.state_dict()) == keys
    x = torch.randn(2, 32, 64)
    model(x).sum().backward()
    assert model[0].weight.grad is not None and model[0].weight.grad.shape == (128, 64)
    restored = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.GELU(), torch.nn.Linear(128, 64))
    restored.add_module("lm_head", torch.nn.Linear(64, 32))
    restored.load_state_dict(model.state_dict())


def test_matmul_with_recipe_is_differentiable():
    x, w, _, dy = data()
    xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()
    y = fp4gemm.matmul(xg, wg.t(), recipe=fp4gemm.NVFP4())
    y.backward(dy)
    assert xg.grad.shape == x.shape and wg.grad.shape == w.shape
    cos = torch.nn.functional.cosine_similarity(wg.grad.flatten(), (dy.t() @ x).flatten(), 0)
    assert cos > 0.95


@pytest.mark.parametrize("recipe", [fp4gemm.BF16(), fp4gemm.Tseng(), fp4gemm.NVFP4()], ids=lambda r: r.name)
def test_autocast_runs_the_recipe_on_autocast_dtype_operands(recipe):
    """Under autocast the Linear behaves as torch's: fp32 master weights and inputs are cast to the
    autocast dtype, the output has that dtype, and the weight gradient flows back to fp32 through the
    cast. Oracle: the same layer called explicitly on bf16 copies (same backward seed)."""
    x, w, bias, dy = data(T=128, K=128, N=128)
    ref_lin = fp4gemm.nn.Linear(128, 128, recipe=recipe, dtype=torch.bfloat16)
    with torch.no_grad():
        ref_lin.weight.copy_(w)
        ref_lin.bias.copy_(bias)
    xb = x.bfloat16().requires_grad_()
    dyb = dy.bfloat16()
    yb = ref_lin(xb)
    torch.manual_seed(4)
    yb.backward(dyb)
    want = (yb.detach(), xb.grad, ref_lin.weight.grad, ref_lin.bias.grad)
    lin = fp4gemm.nn.Linear(128, 128, recipe=recipe)
    with torch.no_grad():
        lin.weight.copy_(w)
        lin.bias.copy_(bias)
    xg = x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = lin(xg)
    assert y.dtype == torch.bfloat16 and lin.weight.dtype == torch.float32
    torch.manual_seed(4)
    y.backward(dyb)
    assert xg.grad.dtype == torch.float32 and lin.weight.grad.dtype == torch.float32
    for got, exp in zip((y.detach(), xg.grad, lin.weight.grad, lin.bias.grad), want):
        assert torch.equal(got, exp.to(got.dtype))


def test_bad_recipe_arguments():
    x, w, _, _ = data()
    with pytest.raises(ValueError, match="recipe"):
        fp4gemm.linear(x, w, recipe="tseng")
    with pytest.raises(ValueError, match="weight"):
        fp4gemm.linear(x, w.t())
    with pytest.raises(ValueError, match="multiple"):   # 40 tokens: not a multiple of the wgrad block
        lin = fp4gemm.nn.Linear(128, 128, recipe=fp4gemm.Tseng())
        lin(torch.randn(40, 128, requires_grad=True)).sum().backward()


@pytest.mark.cuda
@pytest.mark.parametrize("recipe", [fp4gemm.Tseng(), fp4gemm.NVFP4(), fp4gemm.Quartet(), fp4gemm.MicrosoftFP4()],
                         ids=lambda r: r.name)
def test_cuda_linear_matches_cpu(recipe):
    """Same bytes on both devices; the GPU's fp32 tensor-core sums differ from the CPU's float64 sums
    only in the last bits."""
    x, w, bias, dy = data(T=128, K=256, N=128)
    cpu = run(recipe, x, w, bias, dy, backward_seed=2)
    gpu = run(recipe, x.cuda(), w.cuda(), bias.cuda(), dy.cuda(), backward_seed=2)
    for c, g_ in zip(cpu, gpu):
        rel = (g_.cpu().double() - c.double()).norm() / c.double().norm()
        assert rel < 1e-5, rel


ALL_RECIPES = [fp4gemm.BF16(), fp4gemm.Tseng(), fp4gemm.Quartet(), fp4gemm.NVFP4(), fp4gemm.MicrosoftFP4()]


@pytest.mark.parametrize("recipe", ALL_RECIPES, ids=lambda r: r.name)
def test_compile_fullgraph_linear(recipe):
    """torch.compile(fullgraph=True) traces the Linear (two custom ops with register_autograd) and
    gives the eager results for the same seeds."""
    x, w, bias, dy = data(T=64, K=128, N=64)
    lin = fp4gemm.nn.Linear(128, 64, recipe=recipe)
    with torch.no_grad():
        lin.weight.copy_(w)
        lin.bias.copy_(bias)
    compiled = torch.compile(lin, fullgraph=True, backend="aot_eager")
    results = []
    for module in (lin, compiled):
        lin.zero_grad()
        xg = x.clone().requires_grad_()
        y = module(xg)
        torch.manual_seed(7)
        y.backward(dy)
        results.append((y.detach(), xg.grad, lin.weight.grad.clone(), lin.bias.grad.clone()))
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_compile_inductor_tseng_step():
    """A training step through inductor (the default backend), fullgraph."""
    model = torch.nn.Sequential(torch.nn.Linear(128, 64), torch.nn.GELU(), torch.nn.Linear(64, 128))
    fp4gemm.convert(model, fp4gemm.Tseng())
    step = torch.compile(lambda x: model(x).square().mean(), fullgraph=True)
    x = torch.randn(64, 128)
    loss = step(x)
    loss.backward()
    assert loss.item() == pytest.approx(model(x).square().mean().item(), rel=1e-5)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_gradcheck_cli(tmp_path, capsys):
    from fp4gemm.__main__ import main
    png = tmp_path / "g.png"
    main(["gradcheck", "--tokens", "128", "--in-features", "128", "--out-features", "128", "--seeds", "12",
          "--plot", str(png), "--device", "cpu"])
    out = capsys.readouterr().out
    rows = {tuple(l.split()[:2]): l.split()[2:] for l in out.splitlines() if l.split()[:1] and
            l.split()[0] in ("tseng", "quartet", "nvfp4", "microsoft")}
    assert len(rows) == 8
    for (name, grad), (cos, rel_bf16, rel_exact, z) in rows.items():
        assert 0.5 < float(cos) <= 1.0 and 0.0 < float(rel_bf16) < 1.0
        if name == "tseng":
            assert float(z) < 2.5   # unbiased: the mean's error is at its standard error
    assert rows[("microsoft", "dx")][3] == "-"   # RTN forward operands, no SR: deterministic
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
