"""python -m fp4gemm [report | gradcheck | selftest]: the numerics of every FP4 mode on a realistic sample,
each training recipe's gradients against BF16 and the exact gradient, or every GPU kernel of this build
that this GPU can run against the CPU reference (exit status 1 on a failure)."""
from __future__ import annotations

import argparse

import torch


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m fp4gemm", description=__doc__)
    sub = p.add_subparsers(dest="cmd")
    r = sub.add_parser("report", help="quantization SQNR and GEMM error per format / rule / rounding (default)")
    for q in (p, r):
        q.add_argument("--m", type=int, default=256, help="rows of X (tokens)")
        q.add_argument("--n", type=int, default=256, help="rows of W (output features)")
        q.add_argument("--k", type=int, default=1024, help="reduction dimension")
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--device", default=None, help="cpu or cuda (default: cuda when fp4gemm has GPU kernels)")
    gc = sub.add_parser("gradcheck", help="per recipe: gradient cosine / relative error vs BF16, bias over seeds")
    gc.add_argument("--tokens", type=int, default=None, help="T (default 4096 on a GPU, 512 on the CPU)")
    gc.add_argument("--in-features", type=int, default=None, help="K (default 4096 GPU / 512 CPU)")
    gc.add_argument("--out-features", type=int, default=None, help="N (default 4096 GPU / 512 CPU)")
    gc.add_argument("--seeds", type=int, default=None, help="backward passes per recipe (default 64 GPU / 16 CPU)")
    gc.add_argument("--recipes", default="tseng,quartet,nvfp4,microsoft", help="comma-separated names")
    gc.add_argument("--plot", default="gradcheck.png", help="PNG path for the plot ('' for none; needs matplotlib)")
    gc.add_argument("--device", default=None)
    st = sub.add_parser("selftest", help="every GPU path this device can run vs the CPU reference; exit 1 on failure")
    st.add_argument("--device", default=None, help="cuda (default when available) or cpu (the CPU standing in "
                                                   "for the GPU: tests this command itself)")
    args = p.parse_args(argv)
    if args.cmd == "selftest":
        from . import selftest
        raise SystemExit(selftest.main(args.device))
    from . import _C
    device = args.device or ("cuda" if _C.cuda_available() and torch.cuda.is_available() else "cpu")
    if args.cmd == "gradcheck":
        from . import gradcheck
        from .recipes import RECIPES
        names = [n for n in args.recipes.split(",") if n]
        for n in names:
            if n not in RECIPES:
                p.error(f"--recipes: unknown recipe {n!r} (known: {', '.join(RECIPES)})")
        big = device != "cpu"
        T = args.tokens or (4096 if big else 512)
        K = args.in_features or (4096 if big else 512)
        N = args.out_features or (4096 if big else 512)
        S = args.seeds or (64 if big else 16)
        if S < 2:
            p.error("--seeds: need at least 2 for the bias statistic")
        gradcheck.run(names, T, K, N, S, device, args.plot or None)
        return
    from . import report
    report.main(args.m, args.n, args.k, args.seed, device)


if __name__ == "__main__":
    main()
