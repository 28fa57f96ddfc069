"""examples/train_gpt.py on a tiny GPT on the CPU: the runs, their outputs, their reproducibility."""
import csv
import importlib.util
import json
import pathlib
import sys

import pytest
import torch

import fp4gemm

spec = importlib.util.spec_from_file_location(
    "train_gpt", pathlib.Path(__file__).resolve().parents[1] / "examples" / "train_gpt.py")
train_gpt = importlib.util.module_from_spec(spec)
sys.modules["train_gpt"] = train_gpt   # dataclasses look their module up there
spec.loader.exec_module(train_gpt)

TINY = ["--d-model", "64", "--layers", "1", "--heads", "2", "--ctx", "64", "--batch", "4", "--steps", "10",
        "--eval-every", "5", "--eval-batches", "1", "--warmup", "2", "--device", "cpu"]


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_corpus_is_the_stdlib_split_by_file():
    train, val, name = train_gpt.corpus()
    assert train.dtype == torch.uint8 and train.numel() > 20 * val.numel() / 2 > 0
    assert "stdlib" in name and "sha256" in name
    assert b"def " in bytes(train[:200_000].tolist())


def test_model_converts_the_block_linears_only():
    cfg = train_gpt.Config(d_model=64, layers=2, heads=2, ctx=64)
    model = train_gpt.build(cfg, fp4gemm.Tseng(), torch.device("cpu"), 1)
    fp4 = {n for n, m in model.named_modules() if isinstance(m, fp4gemm.nn.Linear)}
    assert fp4 == {f"blocks.{i}.{k}" for i in range(2) for k in ("qkv", "proj", "fc", "fc2")}
    assert type(model.lm_head) is torch.nn.Linear


def test_train_then_report(tmp_path):
    train_gpt.main(["train", "--recipes", "bf16,tseng-rht-sr", "--out", str(tmp_path), *TINY])
    train_gpt.main(["train", "--recipes", "tseng-rht-sr", "--stream-seed", "1", "--out", str(tmp_path), *TINY])
    for run in ("bf16", "tseng-rht-sr", "tseng-rht-sr-s1"):
        log = rows(tmp_path / f"{run}.csv")
        val = [float(r["val_loss"]) for r in log if r["val_loss"]]
        train = [float(r["train_loss"]) for r in log if r["train_loss"]]
        assert len(val) == 3 and len(train) == 1      # steps 0, 5 and the end; train loss per 10 steps
        assert val[-1] < val[0] - 0.5                 # it learns: from ln 256 = 5.55 towards the byte entropy
        summary = json.loads((tmp_path / f"{run}.json").read_text())
        assert summary["final_val_loss"] == val[-1] and summary["tokens"] == 10 * 4 * 64
    # The stream seed changes the SR / RHT draws only: a different curve, from the same start.
    a, b = rows(tmp_path / "tseng-rht-sr.csv"), rows(tmp_path / "tseng-rht-sr-s1.csv")
    assert a[0]["val_loss"] == b[0]["val_loss"] and a[-1]["val_loss"] != b[-1]["val_loss"]
    table = train_gpt.report(tmp_path)
    assert "| bf16 |" in table and "| tseng-rht-sr-s1 |" in table
    assert "tseng-rht-sr-s1 vs tseng-rht-sr: largest validation-loss gap" in table
    assert (tmp_path / "curves.png").stat().st_size > 10_000
    assert (tmp_path / "table.md").read_text() == table


def test_bf16_runs_are_reproducible_and_ignore_the_stream_seed(tmp_path):
    """BF16 draws nothing: the same seed gives the same run whatever the stream seed."""
    train_gpt.main(["train", "--recipes", "bf16", "--out", str(tmp_path / "a"), *TINY])
    train_gpt.main(["train", "--recipes", "bf16", "--stream-seed", "3", "--out", str(tmp_path / "b"), *TINY])
    va = [r["val_loss"] for r in rows(tmp_path / "a" / "bf16.csv")]
    vb = [r["val_loss"] for r in rows(tmp_path / "b" / "bf16-s3.csv")]
    assert va == vb


def test_bad_arguments(tmp_path):
    with pytest.raises(SystemExit):
        train_gpt.main(["train", "--recipes", "fp3", "--out", str(tmp_path), *TINY])
    with pytest.raises(SystemExit, match="torchrun"):
        train_gpt.main(["train", "--fsdp", "--out", str(tmp_path), *TINY])
    with pytest.raises(SystemExit, match="no runs"):
        train_gpt.main(["report", "--out", str(tmp_path / "empty")])


def test_speed_takes_turns_over_rounds(tmp_path, capsys):
    train_gpt.main(["speed", "--recipes", "bf16,tseng-rht-sr", "--out", str(tmp_path), "--speed-steps", "1",
                    "--speed-rounds", "2"] + TINY)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("round")]
    assert [ln.split(":")[0] + ln.split(":")[1].strip() for ln in lines] == [
        "round 0bf16", "round 0tseng-rht-sr", "round 1bf16", "round 1tseng-rht-sr"]
    best = json.loads((tmp_path / "speed.json").read_text())
    assert best["rounds"] == 2 and set(best["tokens_per_s"]) == {"bf16", "tseng-rht-sr"}
    assert all(v > 0 for v in best["tokens_per_s"].values())
