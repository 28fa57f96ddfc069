"""Where a GPT training step's time goes, per recipe: wall time, GPU kernel time, top kernels.

A step whose kernel time is well under its wall time is host-bound (Python and launches); one near
it is GPU-bound. Uses examples/train_gpt.py's model, batch and optimizer; after --warmup steps,
profiles --steps steps with torch.profiler.

    python bench/profile_gpt_step.py --recipes tseng-rht,tseng-rht-sr [--top 6]
"""
import argparse
import importlib.util
import pathlib
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

spec = importlib.util.spec_from_file_location("train_gpt", pathlib.Path(__file__).resolve().parents[1] / "examples" / "train_gpt.py")
train_gpt = importlib.util.module_from_spec(spec)
sys.modules["train_gpt"] = train_gpt
spec.loader.exec_module(train_gpt)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", default="all")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--top", type=int, default=6)
    a = p.parse_args()
    recipes = train_gpt.run_recipes()
    names = list(recipes) if a.recipes == "all" else a.recipes.split(",")
    cfg, device = train_gpt.Config(), torch.device("cuda")
    data = train_gpt.corpus()[0]
    for name in names:
        model = train_gpt.build(cfg, recipes[name], device, 1)
        opt = train_gpt.optimizer(model, cfg)
        gen = torch.Generator().manual_seed(cfg.seed)

        def step():
            x, y = train_gpt.batch(data, gen, cfg.batch, cfg.ctx, slice(None), device)
            with train_gpt.autocast(device):
                model(x, y).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        for _ in range(a.warmup):
            step()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            t0 = time.perf_counter()
            for _ in range(a.steps):
                step()
            torch.cuda.synchronize()
            wall = (time.perf_counter() - t0) / a.steps * 1e3
        kernels = [e for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA]
        gpu = sum(e.self_device_time_total for e in kernels) / a.steps / 1e3
        print(f"{name}: {wall:.1f} ms/step wall, {gpu:.1f} ms/step GPU kernels", flush=True)
        for e in sorted(kernels, key=lambda e: -e.self_device_time_total)[:a.top]:
            print(f"    {e.self_device_time_total / a.steps / 1e3:7.2f} ms  {e.count // a.steps:4d}x  {e.key[:90]}")
        del model, opt


if __name__ == "__main__":
    main()
