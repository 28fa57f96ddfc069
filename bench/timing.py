"""CUDA-event timing shared by the Python benchmarks (GPU.md: warm-up, median of repeats)."""
from __future__ import annotations

import statistics

import torch


def time_ms(fn, calls: int, reps: int, warmup: int) -> float:
    """Median over `reps` of the mean time of `calls` back-to-back calls (the host runs ahead, as in
    training), after `warmup` calls, measured with CUDA events."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(calls):
            fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / calls)
    return statistics.median(times)


def graph_time_ms(fn, calls: int, reps: int, warmup: int) -> float:
    """Median over `reps` of the mean GPU time of `calls` calls replayed from one CUDA graph: the
    kernels alone, without the host's per-call cost (which back-to-back eager calls expose when a
    kernel is shorter than its Python call)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(calls):
            fn()
    return time_ms(g.replay, calls=1, reps=reps, warmup=1) / calls
