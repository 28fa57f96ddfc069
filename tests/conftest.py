import pytest
import torch

import fp4gemm


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU (skipped without one)")


def pytest_collection_modifyitems(config, items):
    if fp4gemm.cuda_available() and torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU and fp4gemm built with CUDA kernels")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
