"""How many rows of a GPT's backward GEMM operands fall outside the Hopper fold window (SPEC.md 5).

The FP8 GEMM folds each MXFP4 block scale into the elements relative to a per-row base; a row whose
nonzero blocks span more binades than the fold type holds (E4M3: 15, E5M2: 29) is recomputed by the
exact fixup, which is slow. This trains examples/train_gpt.py's model in BF16 for --steps, then, for one
more step, measures per layer and operand the fraction of rows whose block exponents span more than
each window, per whole row and per 128-K chunk, raw and after a 64-point RHT; and profiles a few
steps of --recipe by kernel.

    python bench/special_rows.py --steps 600 --recipe tseng-plain
"""
import argparse
import importlib.util
import pathlib
import sys

import torch

import fp4gemm

spec = importlib.util.spec_from_file_location("train_gpt", pathlib.Path(__file__).resolve().parents[1] / "examples" / "train_gpt.py")
train_gpt = importlib.util.module_from_spec(spec)
sys.modules["train_gpt"] = train_gpt
spec.loader.exec_module(train_gpt)

WINDOWS = {"E4M3": 14, "E5M2": 28}   # largest exponent difference a fold type carries exactly


def block_exponents(t: torch.Tensor, block: int = 32) -> torch.Tensor:
    """[rows, K] -> [rows, K/block] floor(log2(block amax)), -inf for zero blocks."""
    a = t.float().abs().reshape(t.shape[0], -1, block).amax(-1)
    return torch.where(a > 0, torch.floor(torch.log2(a)), torch.full_like(a, float("-inf")))


def special_fraction(t: torch.Tensor, span: int, chunk: int = 0) -> float:
    e = block_exponents(t)
    if chunk:
        e = e.reshape(-1, chunk // 32)
    top = e.amax(-1, keepdim=True)
    low = torch.where(torch.isinf(e), top, e).amin(-1, keepdim=True)
    over = (top - low > span).reshape(t.shape[0], -1).any(-1)
    return float(over.float().mean())


def rht(t: torch.Tensor, seed: int) -> torch.Tensor:
    return fp4gemm.hadamard_transform(t.float().contiguous(), fp4gemm.Hadamard(64, seed=seed))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--recipe", default="tseng-plain")
    p.add_argument("--watch", type=int, default=10, help="timed recipe steps after the BF16 ones")
    args = p.parse_args()
    cfg = train_gpt.Config(steps=args.steps)
    device = torch.device("cuda")
    data = train_gpt.corpus()[0]
    model = train_gpt.build(cfg, fp4gemm.BF16(), device, 1)
    opt = train_gpt.optimizer(model, cfg)
    gen = torch.Generator().manual_seed(0)
    rows = slice(0, cfg.batch)
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = train_gpt.lr_at(step, cfg)
        x, y = train_gpt.batch(data, gen, cfg.batch, cfg.ctx, rows, device)
        with train_gpt.autocast(device):
            model(x, y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    seen = {}
    hooks = []
    middle = f"blocks.{cfg.layers // 2}."
    for name, m in model.named_modules():
        if isinstance(m, fp4gemm.nn.Linear) and name.startswith(middle):
            kind = name.split(".")[-1]
            hooks.append(m.register_forward_hook(lambda m, i, o, k=kind: seen.setdefault(k, {}).__setitem__("x", i[0].detach().reshape(-1, i[0].shape[-1]))))
            hooks.append(m.register_full_backward_hook(lambda m, gi, go, k=kind: seen[k].__setitem__("dy", go[0].detach().reshape(-1, go[0].shape[-1]))))
    x, y = train_gpt.batch(data, gen, cfg.batch, cfg.ctx, rows, device)
    with train_gpt.autocast(device):
        model(x, y).backward()
    for h in hooks:
        h.remove()
    print(f"after {args.steps} BF16 steps: fraction of operand rows outside the fold window ({middle[:-1]})")
    print("| layer | operand | E4M3 row | E5M2 row | E4M3 per 128K | E5M2 per 128K | E4M3 row, RHT64 | E5M2 row, RHT64 |")
    print("|---|---|---|---|---|---|---|---|")
    for kind, t in seen.items():
        w = dict(model.named_modules())[middle + kind].weight.detach()
        ops = {"dgrad a = dy": t["dy"], "dgrad b = w^T": w.t().contiguous(),
               "wgrad a = dy^T": t["dy"].t().contiguous(), "wgrad b = x^T": t["x"].t().contiguous()}
        for op, m in ops.items():
            r = rht(m, 1)
            cells = [special_fraction(m, WINDOWS["E4M3"]), special_fraction(m, WINDOWS["E5M2"]),
                     special_fraction(m, WINDOWS["E4M3"], 128), special_fraction(m, WINDOWS["E5M2"], 128),
                     special_fraction(r, WINDOWS["E4M3"]), special_fraction(r, WINDOWS["E5M2"])]
            print(f"| {kind} | {op} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    # Where a recipe's step spends its GPU time, from this trained state.
    recipe = train_gpt.run_recipes()[args.recipe]
    for m in model.modules():
        if isinstance(m, fp4gemm.nn.Linear):
            m.recipe = recipe
    # Training steps of the recipe: wall time of each (synchronized), and the largest fraction of
    # special rows (E4M3 window, whole row) over all layers, per operand, in an extra untimed pass.
    import time
    worst = {}
    def watch(m, gi, go, name=""):
        dy = go[0].detach().reshape(-1, go[0].shape[-1])
        for op, t in (("dgrad a", dy), ("wgrad a", dy.t().contiguous()), ("wgrad b", m._x.t().contiguous())):
            worst[op] = max(worst.get(op, 0.0), special_fraction(t, WINDOWS["E4M3"]))
    lins = [m for m in model.modules() if isinstance(m, fp4gemm.nn.Linear)]
    print("| step | ms (synchronized) | worst dgrad a | worst wgrad a | worst wgrad b |\n|---|---|---|---|---|")
    for step in range(args.watch):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        x, y = train_gpt.batch(data, gen, cfg.batch, cfg.ctx, rows, device)
        with train_gpt.autocast(device):
            model(x, y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        ms = 1e3 * (time.perf_counter() - t0)
        hooks = [m.register_forward_hook(lambda m, i, o: setattr(m, "_x", i[0].detach().reshape(-1, i[0].shape[-1])))
                 for m in lins] + [m.register_full_backward_hook(watch) for m in lins]
        worst.clear()
        with train_gpt.autocast(device):
            model(x, y).backward()
        opt.zero_grad(set_to_none=True)
        for h in hooks:
            h.remove()
        print(f"| {step} | {ms:.1f} | {worst['dgrad a']:.3f} | {worst['wgrad a']:.3f} | {worst['wgrad b']:.3f} |", flush=True)
    from torch.profiler import ProfilerActivity, profile
    for _ in range(2):
        x, y = train_gpt.batch(data, gen, cfg.batch, cfg.ctx, rows, device)
        with train_gpt.autocast(device):
            model(x, y).backward()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            x, y = train_gpt.batch(data, gen, cfg.batch, cfg.ctx, rows, device)
            with train_gpt.autocast(device):
                model(x, y).backward()
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12, max_name_column_width=60))
    print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=25, max_name_column_width=60))


if __name__ == "__main__":
    main()
