"""Tests of bench/gpu_check.py, the prepared GPU check, on the CPU: its arguments, its parts at toy size, its JSON.

The figures themselves need a GPU (the `gpu`-marked test); here the script is checked to run every part,
record a failed part instead of stopping, pack the mirror subset its miniature reads, and write one record.
"""

import gzip
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from magiclib import paths

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module
    spec.loader.exec_module(module)
    return module


def test_arguments_default_to_every_part_and_loop_and_refuse_bad_values(gpu_check, capsys):
    args = gpu_check.parse_args([])
    assert args.parts == list(gpu_check.PARTS) and args.loops == ["ours", "compiled", "plain"]
    for bad in (["--parts", "everything"], ["--steps", "0"], ["--loops", "fast"]):
        with pytest.raises(SystemExit):
            gpu_check.parse_args(bad)
    assert "--steps and --small-steps must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--warmup-steps", "-1"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_without_cuda_it_refuses_full_size_with_the_fix(gpu_check, tmp_path, capsys):
    assert gpu_check.main(["--out", str(tmp_path / "r.json")]) == 2
    assert "--tiny" in capsys.readouterr().err and not (tmp_path / "r.json").exists()


def test_tiny_throughput_and_small_projection_write_one_record(gpu_check, tmp_path, monkeypatch, capsys):
    out = tmp_path / "record.json"
    real = gpu_check.measure_shape

    def failing_once(name, mc, tc, loop, *rest):  # a part that fails is recorded, the others still run
        if name == "1B" and loop == "plain":
            raise RuntimeError("simulated out of memory")
        return real(name, mc, tc, loop, *rest)

    monkeypatch.setattr(gpu_check, "measure_shape", failing_once)
    assert gpu_check.main(["--tiny", "--parts", "throughput", "small", "--loops", "ours", "plain",
                           "--steps", "2", "--small-steps", "1", "--warmup-steps", "1", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    rows = record["throughput"]
    assert [r.get("loop") for r in rows] == ["ours", "plain", "ours", None]
    assert "simulated out of memory" in rows[3]["error"]
    ours, plain = rows[0], rows[1]
    assert ours["tokens_per_s"] > 0 and 0 < ours["mfu"] < 1 and ours["steps"] == 2
    assert ours["final_loss"] == pytest.approx(plain["final_loss"], rel=1e-4)  # same step, two implementations
    small = record["small"]
    assert [s["shape"] for s in small["shapes"]] == ["small-s", "small-l"] and small["mixtures"] == 9
    assert all(s["projected_s"] > 0 and s["pretrain_steps"] == 3000 for s in small["shapes"])
    assert small["projected_training_h"] == pytest.approx(sum(s["projected_s"] for s in small["shapes"]) / 3600)
    printed = capsys.readouterr().out
    assert "against the plain loop: ours" in printed and "small study, training only" in printed


def test_pack_data_keeps_the_head_of_every_file_it_needs(gpu_check, tmp_path):
    mirror = tmp_path / "mirror"  # the mirror's layout, in miniature
    (mirror / "pretrain/web").mkdir(parents=True)
    (mirror / "benchmarks/copa").mkdir(parents=True)
    (mirror / "sft/tulu-mini").mkdir(parents=True)
    (mirror / "sft/raw").mkdir(parents=True)
    rows = [json.dumps({"id": i, "text": f"row {i}"}) + "\n" for i in range(1000)]
    with gzip.open(mirror / "pretrain/web/a.jsonl.gz", "wt") as handle:
        handle.writelines(rows)
    (mirror / "pretrain/manifest.json").write_text("{}")
    (mirror / "benchmarks/copa/validation.jsonl").write_text("".join(rows[:10]))
    (mirror / "sft/tulu-mini/train.jsonl").write_text("".join(rows))
    (mirror / "sft/raw/big.jsonl").write_text("".join(rows))
    packed = tmp_path / "packed"
    gpu_check.pack_data(packed, mirror)
    with gzip.open(packed / "pretrain/web/a.jsonl.gz", "rt") as handle:
        assert handle.readlines() == rows[: gpu_check.PACKED_LINES["pretrain"]]
    assert (packed / "sft/tulu-mini/train.jsonl").read_text() == "".join(rows[: gpu_check.PACKED_LINES["sft"]])
    assert (packed / "benchmarks/copa/validation.jsonl").read_text() == "".join(rows[:10])
    assert (packed / "pretrain/manifest.json").exists() and not (packed / "sft/raw").exists()


@pytest.mark.slow
def test_the_miniature_study_runs_end_to_end_on_packed_data(gpu_check, tmp_path, monkeypatch):
    if paths.find_mirror() is None:
        pytest.skip("needs the local data mirror (../shared/data)")
    gpu_check.pack_data(tmp_path / "packed")  # what the device machine gets
    monkeypatch.setenv(paths.DATA_ENV, str(tmp_path / "packed"))
    monkeypatch.setattr(gpu_check, "MINI_MIXTURES", ["V3-P2"])  # one mixture: the same path at half the cost
    result = gpu_check.mini(gpu_check.parse_args(["--tiny"]), tmp_path / "results")
    assert result["mixtures"] == ["V3-P2"] and result["stages"] == ["PT", "SFT"] and len(result["scales"]) == 2
    assert result["runs"] == 8 and result["scored_rows"] > 0 and result["scoring_items_per_s"] > 0


@pytest.mark.gpu
def test_the_full_throughput_part_runs_on_cuda(gpu_check, tmp_path):
    out = tmp_path / "record.json"
    assert gpu_check.main(["--parts", "throughput", "--loops", "ours", "--steps", "1", "--out", str(out)]) == 0
    assert all("error" not in row for row in json.loads(out.read_text())["throughput"])
