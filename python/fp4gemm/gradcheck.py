"""python -m fp4gemm gradcheck: each recipe's gradients against BF16 and the exact gradient.

One linear layer y = x wᵀ with LLM-like data: activations with a few outlier channels, weights at
init scale, gradients with Tseng et al.'s outliers (N(0, 1) + Bernoulli(p) N(0, 5)). For each
recipe, over S backward passes with different seeds:
- cos / rel err vs BF16: one pass's dx, dw against the BF16 layer's (torch.nn.functional.linear in
  bf16), averaged over the passes;
- rel err vs exact: the same against the float64 gradient of the same bf16 inputs;
- bias z: |mean of the S gradients - exact| / its standard error (sqrt of the sum over elements of
  var / S). About 1 for an estimator unbiased w.r.t. the exact gradient; larger means a bias that
  averaging does not remove (RTN operands, or Quartet's gradient of the quantized forward).
The plot shows |running mean - exact| / |exact| against S: unbiased recipes follow 1/sqrt(S).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .autograd import linear
from .recipes import RECIPES


def layer_data(T: int, K: int, N: int, device, seed: int = 0, p: float = 0.01):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, K, generator=g)
    x[:, torch.randperm(K, generator=g)[: max(1, K // 100)]] *= 20.0        # outlier channels
    w = torch.randn(N, K, generator=g) / math.sqrt(K)
    dy = torch.randn(T, N, generator=g) + (torch.rand(T, N, generator=g) < p) * torch.randn(
        T, N, generator=g) * math.sqrt(5.0)
    return [t.to(device=device, dtype=torch.bfloat16) for t in (x, w, dy)]


def grads(recipe, x, w, dy):
    xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()
    linear(xg, wg, None, recipe).backward(dy)
    return xg.grad.double(), wg.grad.double()


@dataclass
class Stat:
    """Running statistics of one gradient over seeds, against the exact and the BF16 gradients."""
    exact: torch.Tensor
    bf16: torch.Tensor
    total: torch.Tensor = None
    first: torch.Tensor = None
    varies: bool = False
    sq_err: float = 0.0
    cos: list = field(default_factory=list)
    rel_bf16: list = field(default_factory=list)
    rel_exact: list = field(default_factory=list)
    curve: list = field(default_factory=list)

    def add(self, g: torch.Tensor) -> None:
        if self.total is None:
            self.total, self.first = g.clone(), g
        else:
            self.total += g
            self.varies = self.varies or not torch.equal(g, self.first)
        e = g - self.exact
        self.sq_err += float((e * e).sum())
        self.cos.append(float(torch.nn.functional.cosine_similarity(g.flatten(), self.bf16.flatten(), 0)))
        self.rel_bf16.append(float((g - self.bf16).norm() / self.bf16.norm()))
        self.rel_exact.append(float(e.norm() / self.exact.norm()))
        self.curve.append(float((self.total / len(self.cos) - self.exact).norm() / self.exact.norm()))

    def bias_z(self) -> float:
        if not self.varies:
            return float("inf")
        S = len(self.cos)
        mean_err = self.total / S - self.exact
        sq_mean = float((mean_err * mean_err).sum())
        spread = (self.sq_err - S * sq_mean) / (S - 1)         # sum over elements of the sample variance
        return math.sqrt(sq_mean / (spread / S))


def run(recipes: list[str], T: int, K: int, N: int, seeds: int, device, plot: str | None = None) -> dict:
    x, w, dy = layer_data(T, K, N, device)
    exact = (dy.double() @ w.double(), dy.double().t() @ x.double())
    ref = grads(RECIPES["bf16"](), x, w, dy)
    stats = {}
    for name in recipes:
        recipe = RECIPES[name]()
        st = (Stat(exact[0], ref[0]), Stat(exact[1], ref[1]))
        for s in range(seeds):
            torch.manual_seed(1000 + s)
            for stat, g in zip(st, grads(recipe, x, w, dy)):
                stat.add(g)
        stats[name] = st
    print(f"gradcheck: x [{T}, {K}], w [{N}, {K}], bf16, {seeds} seeds, device {device}")
    print(f"{'recipe':<10} {'grad':<4} {'cos vs bf16':>11} {'rel err vs bf16':>15} {'rel err vs exact':>16} {'bias z':>8}")
    for name, st in stats.items():
        for label, stat in zip(("dx", "dw"), st):
            z = stat.bias_z()
            zs = "-" if z == float("inf") else f"{z:.2f}"
            print(f"{name:<10} {label:<4} {sum(stat.cos) / seeds:>11.5f} {sum(stat.rel_bf16) / seeds:>15.4f} "
                  f"{sum(stat.rel_exact) / seeds:>16.4f} {zs:>8}")
    print("bias z ~ 1: unbiased w.r.t. the exact gradient; '-': deterministic (no SR)")
    if plot:
        _plot(stats, seeds, plot)
        print(f"plot: {plot}")
    return stats


def _plot(stats: dict, seeds: int, path: str) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise SystemExit("gradcheck --plot needs matplotlib: pip install matplotlib") from e
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    S = list(range(1, seeds + 1))
    for ax, i, label in ((axes[0], 0, "dx"), (axes[1], 1, "dw")):
        for name, st in stats.items():
            ax.loglog(S, st[i].curve, label=name, marker=".")
        first = max(st[i].curve[0] for st in stats.values())
        ax.loglog(S, [first / math.sqrt(s) for s in S], "k--", lw=0.8, label="1/sqrt(S)")
        ax.set_title(f"{label}: |mean of S gradients - exact| / |exact|")
        ax.set_xlabel("S (backward passes, fresh seeds)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
