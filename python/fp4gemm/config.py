"""Names of the numerics choices (SPEC.md 1-3) and their mapping onto the native enums."""
from __future__ import annotations

from typing import Optional

from . import _C

FORMATS = {"mxfp4": _C.Format.MXFP4, "nvfp4": _C.Format.NVFP4, "fp4_row": _C.Format.FP4Row}
SCALE_RULES = {
    "floor": _C.ScaleRule.Floor, "rceil": _C.ScaleRule.RCeil, "even": _C.ScaleRule.Even,
    "quest": _C.ScaleRule.Quest, "te": _C.ScaleRule.TE, "torchao": _C.ScaleRule.Torchao,
    "pow2": _C.ScaleRule.Pow2, "amax": _C.ScaleRule.Amax,
}
DEFAULT_RULE = {"mxfp4": "floor", "nvfp4": "te", "fp4_row": "pow2"}
RULES_OF = {"mxfp4": ("floor", "rceil", "even", "quest"), "nvfp4": ("te", "torchao"), "fp4_row": ("pow2", "amax")}
ROUNDINGS = {"rtn": _C.Rounding.RTN, "sr": _C.Rounding.SR}
BLOCK = {"mxfp4": 32, "nvfp4": 16}



def check_name(value: str, table: dict, arg: str) -> str:
    if not isinstance(value, str) or value not in table:
        raise ValueError(f"{arg}: unknown value {value!r}; expected one of {sorted(table)}")
    return value


def resolve_rule(fmt: str, scale_rule: Optional[str]) -> str:
    check_name(fmt, FORMATS, "fmt")
    rule = DEFAULT_RULE[fmt] if scale_rule is None else check_name(scale_rule, SCALE_RULES, "scale_rule")
    if rule not in RULES_OF[fmt]:
        raise ValueError(f"scale_rule: {rule!r} is not a rule of fmt={fmt!r}; use one of {list(RULES_OF[fmt])}")
    return rule
