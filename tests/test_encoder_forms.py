"""The E2M1 encoders in the form the GPU runs (numerics.h: RTN as one FMA at 2^23, SR as two truncating
operations) against their integer forms: a sample of tests/check_encoders.cpp (every 4093rd fp32 input
and the neighbourhoods of each grid point and decision threshold). The exhaustive run over all 2^32
inputs (~5 minutes) is done by hand before an encoder change lands (docs/numerics.md, Encoder forms)."""
import pathlib
import platform
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_encoder_forms_sampled(tmp_path):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None or platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("needs an x86-64 C++ compiler (the check sets the FPU rounding mode and uses -mfma)")
    exe = tmp_path / "check_encoders"
    subprocess.run([cxx, "-O2", "-mfma", "-std=c++17", "-ffp-contract=off", "-frounding-math", f"-I{ROOT / 'include'}",
                    str(ROOT / "tests" / "check_encoders.cpp"), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe), "4093"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "RTN mismatches 0, SR mismatches 0, scaled mismatches 0" in out.stdout, out.stdout + out.stderr
