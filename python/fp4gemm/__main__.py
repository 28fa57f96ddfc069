"""python -m fp4gemm [report]: the environment and the numerics of every FP4 mode on a realistic sample."""
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
    args = p.parse_args(argv)
    from . import _C, report
    device = args.device or ("cuda" if _C.cuda_available() and torch.cuda.is_available() else "cpu")
    report.main(args.m, args.n, args.k, args.seed, device)


if __name__ == "__main__":
    main()
