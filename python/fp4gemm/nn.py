"""fp4gemm.nn.Linear (a drop-in torch.nn.Linear running a Recipe) and fp4gemm.convert."""
from __future__ import annotations

from typing import Iterable, Optional

import torch

from .autograd import linear
from .recipes import Recipe


class Linear(torch.nn.Linear):
    """torch.nn.Linear whose GEMMs follow `recipe` (fp4gemm.recipes). Same parameters and state_dict
    as torch.nn.Linear; any leading dimensions."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, recipe: Optional[Recipe] = None,
                 device=None, dtype=None):
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.recipe = recipe

    @classmethod
    def from_linear(cls, m: torch.nn.Linear, recipe: Recipe) -> "Linear":
        """A Linear sharing m's parameters (no copy)."""
        new = cls.__new__(cls)
        torch.nn.Module.__init__(new)
        new.in_features, new.out_features = m.in_features, m.out_features
        new.weight, new.bias = m.weight, m.bias
        new.recipe = recipe
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias, self.recipe)

    def extra_repr(self) -> str:
        name = self.recipe.name if self.recipe else "bf16"
        return super().extra_repr() + f", recipe={name}"


def convert(model: torch.nn.Module, recipe: Recipe, skip: Iterable[str] = ()) -> torch.nn.Module:
    """Replace every torch.nn.Linear of `model` (in place) by fp4gemm.nn.Linear running `recipe`,
    except those whose qualified name contains one of `skip` (e.g. "lm_head"). Returns model."""
    skip = tuple(skip)

    def visit(module: torch.nn.Module, prefix: str):
        for name, child in module.named_children():
            full = f"{prefix}.{name}" if prefix else name
            if isinstance(child, torch.nn.Linear) and not isinstance(child, Linear):
                if not any(s in full for s in skip):
                    setattr(module, name, Linear.from_linear(child, recipe))
            else:
                visit(child, full)

    visit(model, "")
    return model
