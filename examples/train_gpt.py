"""Train a small GPT with each fp4gemm recipe on an offline corpus, and compare the curves.

    python examples/train_gpt.py train --recipes bf16,tseng-rht-sr --out out/gpt     # one run per recipe
    python examples/train_gpt.py speed --recipes all --out out/gpt                   # tokens/s vs BF16, one process
    torchrun --nproc_per_node 2 examples/train_gpt.py train --fsdp --recipes tseng-rht-sr --out out/gpt
    python examples/train_gpt.py report --out out/gpt                                # table.md + curves.png

Corpus: the source of this Python's standard library (*.py in sorted order), byte-level (vocabulary
256), so every machine has it without a download; every 20th file is held out for validation. All
runs share the initialization, the data order and the schedule (--seed); they differ only in the
GEMMs of the transformer blocks' linear layers (fp4gemm.convert; embeddings and lm_head stay in high
precision, as in the papers). --stream-seed changes only the recipe's random draws (SR, RHT signs):
two runs differing in it measure the run-to-run noise that FSDP must stay within.

Outputs in --out: <run>.csv (step, tokens, train_loss, val_loss, elapsed_s), <run>.json (summary),
speed.json, and from `report`: table.md, curves.png.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import pathlib
import sys
import sysconfig
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

import fp4gemm

VOCAB = 256
VAL_EVERY = 20   # every 20th stdlib file is validation


def run_recipes() -> dict:
    """The runs of issue 7, by name: BF16, Tseng's four ablations, Quartet, NVFP4, MicrosoftFP4."""
    rs = [fp4gemm.BF16(), fp4gemm.Tseng(False, False), fp4gemm.Tseng(True, False), fp4gemm.Tseng(False, True),
          fp4gemm.Tseng(), fp4gemm.Quartet(), fp4gemm.NVFP4(), fp4gemm.MicrosoftFP4()]
    return {r.name: r for r in rs}


@dataclass
class Config:
    d_model: int = 512
    layers: int = 10
    heads: int = 8
    ctx: int = 512
    batch: int = 32          # sequences per step, over all ranks
    steps: int = 2000
    lr: float = 1e-3
    warmup: int = 100
    eval_every: int = 100
    eval_batches: int = 8
    seed: int = 0
    stream_seed: int = 0


# ---------------------------------------------------------------------------------------------- data

def corpus() -> tuple[torch.Tensor, torch.Tensor, str]:
    """(train bytes, validation bytes, a digest naming the corpus) from the stdlib's *.py files."""
    root = pathlib.Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py") if "site-packages" not in p.parts)
    parts = ([], [])
    digest = hashlib.sha256()
    for i, rel in enumerate(files):
        text = (root / rel).read_bytes()
        digest.update(text)
        parts[i % VAL_EVERY == VAL_EVERY - 1].append(text)
    as_tensor = lambda chunks: torch.frombuffer(bytearray(b"\0".join(chunks)), dtype=torch.uint8)
    name = f"python{sys.version_info.major}.{sys.version_info.minor} stdlib, {len(files)} files, sha256 {digest.hexdigest()[:12]}"
    return as_tensor(parts[0]), as_tensor(parts[1]), name


def batch(data: torch.Tensor, gen: torch.Generator, n: int, ctx: int, rows: slice, device) -> tuple:
    """n random windows (the same on every rank); this rank's rows of (inputs, next-byte targets)."""
    starts = torch.randint(0, data.numel() - ctx - 1, (n,), generator=gen)[rows]
    idx = starts[:, None] + torch.arange(ctx + 1)
    xy = data[idx].long().to(device, non_blocking=True)
    return xy[:, :-1], xy[:, 1:]


# --------------------------------------------------------------------------------------------- model

class Block(torch.nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.qkv = torch.nn.Linear(d, 3 * d, bias=False)
        self.proj = torch.nn.Linear(d, d, bias=False)
        self.fc = torch.nn.Linear(d, 4 * d, bias=False)
        self.fc2 = torch.nn.Linear(4 * d, d, bias=False)

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, self.heads, D // self.heads).transpose(1, 3).unbind(2)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(B, T, D))
        return x + self.fc2(F.gelu(self.fc(self.ln2(x))))


class GPT(torch.nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.tok = torch.nn.Embedding(VOCAB, cfg.d_model)
        self.pos = torch.nn.Embedding(cfg.ctx, cfg.d_model)
        self.blocks = torch.nn.ModuleList(Block(cfg.d_model, cfg.heads) for _ in range(cfg.layers))
        self.ln = torch.nn.LayerNorm(cfg.d_model)
        self.lm_head = torch.nn.Linear(cfg.d_model, VOCAB, bias=False)
        for name, p in self.named_parameters():   # GPT-2 init; residual projections scaled by depth
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * cfg.layers) if name.endswith(("proj.weight", "fc2.weight")) else 0.02
                torch.nn.init.normal_(p, std=std)

    def forward(self, idx, targets):
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        for b in self.blocks:
            x = b(x)
        logits = self.lm_head(self.ln(x))
        return F.cross_entropy(logits.float().reshape(-1, VOCAB), targets.reshape(-1))


def build(cfg: Config, recipe, device, world: int, rank: int = 0) -> torch.nn.Module:
    torch.manual_seed(cfg.seed)   # the same initial weights for every recipe (and rank)
    model = fp4gemm.convert(GPT(cfg).to(device), recipe, skip=["lm_head"])
    if world > 1:  # FSDP2: fp32 sharded parameters, autocast as on one GPU, so the numerics are the same
        from torch.distributed.fsdp import fully_shard
        for b in model.blocks:
            fully_shard(b)
        fully_shard(model)
    # The recipe's SR / RHT draws: a stream of its own per rank, so that no two ranks round their
    # halves of the batch with the same random bits.
    torch.manual_seed((cfg.seed * 1_000_003 + cfg.stream_seed) * 1009 + rank)
    return model


def optimizer(model, cfg: Config):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                             lr=cfg.lr, betas=(0.9, 0.95))


def lr_at(step: int, cfg: Config) -> float:
    """Linear warm-up, then cosine to 10 % of the peak."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * min(t, 1.0))))


# ------------------------------------------------------------------------------------------ training

class Dist:
    """This process's place in a torchrun job (rank 0 of 1 without one)."""

    def __init__(self, fsdp: bool):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if fsdp and self.world < 2:
            raise SystemExit("--fsdp: launch with torchrun --nproc_per_node N (N >= 2)")
        if not fsdp and self.world > 1:
            raise SystemExit("torchrun with several processes needs --fsdp")
        if self.world > 1:
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
            torch.distributed.init_process_group("nccl")

    def rows(self, n: int) -> slice:
        if n % self.world:
            raise SystemExit(f"--batch: {n} sequences do not split over {self.world} ranks")
        per = n // self.world
        return slice(self.rank * per, (self.rank + 1) * per)

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.AVG)
        return t


class Progress:
    """A one-line progress bar on a terminal; a line per 10 % otherwise (logs)."""

    def __init__(self, label: str, total: int, enabled: bool):
        self.label, self.total, self.enabled = label, total, enabled
        self.tty, self.shown = sys.stderr.isatty(), -1

    def update(self, done: int, text: str) -> None:
        if not self.enabled:
            return
        if self.tty:
            fill = int(30 * done / self.total)
            sys.stderr.write(f"\r{self.label:>14} [{'#' * fill}{'.' * (30 - fill)}] {done}/{self.total} {text}")
            if done == self.total:
                sys.stderr.write("\n")
        elif done * 10 // self.total > self.shown or done == self.total:
            self.shown = done * 10 // self.total
            print(f"{self.label:>14} {done}/{self.total} {text}", file=sys.stderr, flush=True)


def autocast(device):
    return torch.autocast(device.type, dtype=torch.bfloat16)


@torch.no_grad()
def evaluate(model, val, cfg: Config, dist: Dist, device) -> float:
    gen = torch.Generator().manual_seed(cfg.seed + 1)   # the same validation windows every time
    total = torch.zeros((), device=device)
    for _ in range(cfg.eval_batches):
        x, y = batch(val, gen, cfg.batch, cfg.ctx, dist.rows(cfg.batch), device)
        with autocast(device):
            total += model(x, y)
    return float(dist.mean(total / cfg.eval_batches))


def train(name: str, recipe, cfg: Config, data, dist: Dist, device, out: pathlib.Path, corpus_name: str) -> dict:
    train_data, val = data
    model = build(cfg, recipe, device, dist.world, dist.rank)
    opt = optimizer(model, cfg)
    gen = torch.Generator().manual_seed(cfg.seed)   # the data order: the same for every recipe
    rows = dist.rows(cfg.batch)
    tokens_per_step = cfg.batch * cfg.ctx
    run = name + (f"-fsdp{dist.world}" if dist.world > 1 else "") + (f"-s{cfg.stream_seed}" if cfg.stream_seed else "")
    log, bar = [], Progress(run, cfg.steps, dist.rank == 0)
    pending, train_time, t0 = torch.zeros((), device=device), 0.0, time.perf_counter()
    for step in range(cfg.steps):
        if step % cfg.eval_every == 0:   # evaluation time is not training time
            if device.type == "cuda":
                torch.cuda.synchronize()
            train_time += time.perf_counter() - t0
            log.append([step, step * tokens_per_step, None, evaluate(model, val, cfg, dist, device), train_time])
            write_csv(out / f"{run}.csv", log, dist)   # as it goes: a run cut short keeps its curve
            t0 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        x, y = batch(train_data, gen, cfg.batch, cfg.ctx, rows, device)
        with autocast(device):
            loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        pending += loss.detach()
        if (step + 1) % 10 == 0:   # one host sync per 10 steps
            train_loss = float(dist.mean(pending)) / 10
            pending.zero_()
            if not math.isfinite(train_loss):
                raise SystemExit(f"{run}: the loss became {train_loss} at step {step + 1}")
            log.append([step + 1, (step + 1) * tokens_per_step, train_loss, None,
                        train_time + time.perf_counter() - t0])
            bar.update(step + 1, f"loss {train_loss:.4f}")
    if device.type == "cuda":
        torch.cuda.synchronize()
    train_time += time.perf_counter() - t0
    final = evaluate(model, val, cfg, dist, device)
    log.append([cfg.steps, cfg.steps * tokens_per_step, None, final, train_time])
    summary = dict(kind="train", run=run, recipe=name, world=dist.world, final_val_loss=final,
                   tokens=cfg.steps * tokens_per_step, train_seconds=train_time,
                   tokens_per_s=cfg.steps * tokens_per_step / train_time, device=device_name(device),
                   corpus=corpus_name, params=sum(p.numel() for p in model.parameters()), config=asdict(cfg))
    write_csv(out / f"{run}.csv", log, dist)
    if dist.rank == 0:
        (out / f"{run}.json").write_text(json.dumps(summary, indent=1))
        print(f"{run}: final val loss {final:.4f}, {summary['tokens_per_s']:.0f} tokens/s (training steps, "
              f"evaluation excluded)", flush=True)
    return summary


def write_csv(path: pathlib.Path, log: list, dist: Dist) -> None:
    if dist.rank == 0:
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["step", "tokens", "train_loss", "val_loss", "elapsed_s"])
            w.writerows(log)


def device_name(device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def speed(names, recipes, cfg: Config, data, device, out: pathlib.Path, warmup: int, steps: int,
          rounds: int) -> None:
    """Tokens/s of a training step per recipe, all in this process (the ratio to BF16 is fair): the
    recipes take turns for `rounds` rounds and each keeps its best round, so a slow first round
    (cuBLAS heuristics, clocks) or a passing stall does not land on one recipe."""
    dist = Dist(False)
    rows, res = dist.rows(cfg.batch), {}
    runs = {}
    for name in names:
        model = build(cfg, recipes[name], device, 1)
        runs[name] = (model, optimizer(model, cfg), torch.Generator().manual_seed(cfg.seed))
    for r in range(rounds):
        for name, (model, opt, gen) in runs.items():
            for i in range(warmup + steps):
                if i == warmup:
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    t0 = time.perf_counter()
                x, y = batch(data[0], gen, cfg.batch, cfg.ctx, rows, device)
                with autocast(device):
                    model(x, y).backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
            res[name] = max(res.get(name, 0.0), steps * cfg.batch * cfg.ctx / (time.perf_counter() - t0))
            print(f"round {r}: {name:>14}: {res[name]:10.0f} tokens/s (best so far)", flush=True)
    (out / "speed.json").write_text(json.dumps(dict(kind="speed", device=device_name(device), steps=steps,
                                                    rounds=rounds, tokens_per_s=res, config=asdict(cfg)), indent=1))


# -------------------------------------------------------------------------------------------- report

def read_csv(path: pathlib.Path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    val = [(int(r["tokens"]), float(r["val_loss"])) for r in rows if r["val_loss"]]
    tr = [(int(r["tokens"]), float(r["train_loss"])) for r in rows if r["train_loss"]]
    return val, tr


def report(out: pathlib.Path) -> str:
    """table.md and curves.png from the runs in out/; returns the table."""
    runs = [json.loads(p.read_text()) for p in sorted(out.glob("*.json")) if p.name != "speed.json"]
    runs = [r for r in runs if r.get("kind") == "train"]
    if not runs:
        raise SystemExit(f"--out: no runs in {out}")
    order = list(run_recipes())
    runs.sort(key=lambda r: (order.index(r["recipe"]) if r["recipe"] in order else 99, r["run"]))
    base = next((r["final_val_loss"] for r in runs if r["run"] == "bf16"), None)
    speed_file = out / "speed.json"
    sp = json.loads(speed_file.read_text()) if speed_file.exists() else None
    lines = ["| run | final val loss | vs BF16 | tokens/s (speed run) | vs BF16 | device |", "|---|---|---|---|---|---|"]
    for r in runs:
        rel = f"{100 * (r['final_val_loss'] / base - 1):+.2f} %" if base else "-"
        tps = sp["tokens_per_s"].get(r["run"]) if sp else None
        ratio = f"{tps / sp['tokens_per_s']['bf16']:.2f}x" if tps and "bf16" in sp["tokens_per_s"] else "-"
        lines.append(f"| {r['run']} | {r['final_val_loss']:.4f} | {rel} | {f'{tps:,.0f}' if tps else '-'} | {ratio} "
                     f"| {r['device']}{' x' + str(r['world']) if r['world'] > 1 else ''} |")
    cfg = runs[0]["config"]
    lines += ["", f"{runs[0]['params'] / 1e6:.1f}M parameters, {cfg['layers']} layers, d {cfg['d_model']}, context "
              f"{cfg['ctx']}, {cfg['batch']} sequences/step, {cfg['steps']} steps ({runs[0]['tokens'] / 1e6:.1f}M "
              f"tokens), corpus: {runs[0]['corpus']}."]
    # Two runs of the same recipe (stream seeds, FSDP): the largest gap between their validation curves.
    by_recipe = {}
    for r in runs:
        by_recipe.setdefault(r["recipe"], []).append(r)
    for recipe, group in by_recipe.items():
        if len(group) > 1:
            curves = {r["run"]: dict(read_csv(out / f"{r['run']}.csv")[0]) for r in group}
            ref_name = recipe if recipe in curves else sorted(curves)[0]
            for other, c in curves.items():
                if other == ref_name:
                    continue
                common = sorted(set(c) & set(curves[ref_name]))
                gap = max(abs(c[t] - curves[ref_name][t]) for t in common)
                lines.append(f"{other} vs {ref_name}: largest validation-loss gap {gap:.4f} over {len(common)} evaluations.")
    table = "\n".join(lines) + "\n"
    (out / "table.md").write_text(table)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report: matplotlib is not installed; no curves.png", file=sys.stderr)
        return table
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for r in runs:
        val, tr = read_csv(out / f"{r['run']}.csv")
        style = "--" if r["world"] > 1 or "-s" in r["run"][len(r["recipe"]):] else "-"
        axes[0].plot([t / 1e6 for t, _ in val], [v for _, v in val], style, label=r["run"])
        ema, smooth = None, []
        for _, v in tr:
            ema = v if ema is None else 0.9 * ema + 0.1 * v
            smooth.append(ema)
        axes[1].plot([t / 1e6 for t, _ in tr], smooth, style, label=r["run"])
    for ax, title in zip(axes, ("validation loss", "training loss (EMA 0.9)")):
        ax.set_xlabel("tokens (M)")
        ax.set_ylabel("loss (nats/byte)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    lo = min(r["final_val_loss"] for r in runs)
    second = [val[1][1] for val in (read_csv(out / f"{r['run']}.csv")[0] for r in runs) if len(val) > 1]
    hi = max(second) if second else lo + 0.6   # from the second evaluation down
    axes[0].set_ylim(lo - 0.05, hi)
    axes[1].set_ylim(lo - 0.15, hi)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    return table


# ---------------------------------------------------------------------------------------------- main

def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cmd", choices=["train", "speed", "report"])
    p.add_argument("--recipes", default="all", help=f"comma-separated, or all: {','.join(run_recipes())}")
    p.add_argument("--out", default="out/gpt")
    p.add_argument("--fsdp", action="store_true", help="FSDP2 over the torchrun processes")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--speed-steps", type=int, default=20)
    p.add_argument("--speed-rounds", type=int, default=3)
    for f in Config.__dataclass_fields__.values():
        p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default)
    args = p.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.cmd == "report":
        print(report(out), end="")
        return
    recipes = run_recipes()
    names = list(recipes) if args.recipes == "all" else [n for n in args.recipes.split(",") if n]
    for n in names:
        if n not in recipes:
            p.error(f"--recipes: unknown {n!r} (known: {', '.join(recipes)})")
    cfg = Config(**{k: getattr(args, k) for k in Config.__dataclass_fields__})
    if cfg.d_model % cfg.heads:
        p.error(f"--heads: {cfg.heads} does not divide --d-model {cfg.d_model}")
    dist = Dist(args.fsdp) if args.cmd == "train" else None
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and dist and dist.world > 1:
        device = torch.device("cuda", torch.cuda.current_device())
    train_data, val, corpus_name = corpus()
    if args.cmd == "speed":
        speed(names, recipes, cfg, (train_data, val), device, out, warmup=5, steps=args.speed_steps,
              rounds=args.speed_rounds)
        return
    for n in names:
        train(n, recipes[n], cfg, (train_data, val), dist, device, out, corpus_name)
    if dist.world > 1:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
