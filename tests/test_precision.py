"""Precision resolution: explicit requests win, `auto` follows an (injected) measurement, decisions are cached,
and the step hash carries the resolved precision (fp32 hashes as before). No test depends on this CPU."""

import dataclasses
import json

import pytest

from magiclib import precision, steps
from magiclib.config import ConfigError, config_hash, load_config, to_dict


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private decision cache, and no pinned decision (the suite pins auto to fp32 in conftest)."""
    path = tmp_path / "precision.json"
    monkeypatch.setenv(precision.CACHE_ENV, str(path))
    monkeypatch.delenv(precision.DECISION_ENV, raising=False)
    monkeypatch.setattr(precision, "has_cuda", lambda: False)  # the same on a GPU machine
    return path


class FakeMeasure:
    """Stands in for timing model passes: fixed seconds, and a count of how often it was asked."""

    def __init__(self, fp32_s: float, bf16_s: float):
        self.seconds, self.calls = (fp32_s, bf16_s), []

    def __call__(self, mc, kind, shape):
        self.calls.append((kind, shape))
        return self.seconds


def _mini():
    return load_config("mini")


def test_auto_picks_bf16_where_it_is_measurably_faster(cache):
    cfg, fast = _mini(), FakeMeasure(fp32_s=1.0, bf16_s=0.25)
    scale = cfg.scale("mini-s")
    assert precision.train_precision(scale.pretrain, scale.model, measure=fast) == "bf16"
    entry = next(iter(json.loads(cache.read_text()).values()))
    assert entry["precision"] == "bf16" and entry["speedup"] == 4.0 and entry["cpu"] == precision.cpu_model()


@pytest.mark.parametrize("bf16_s", [100.0, 0.9])  # an AVX2 core; and a gain too small to be worth the rounding
def test_auto_keeps_fp32_where_bf16_is_slow_or_barely_faster(cache, bf16_s):
    scale = _mini().scale("mini-s")
    assert precision.train_precision(scale.pretrain, scale.model, measure=FakeMeasure(1.0, bf16_s)) == "fp32"


def test_a_decision_is_measured_once_per_shape(cache):
    cfg, fast = _mini(), FakeMeasure(1.0, 0.25)
    small, large = cfg.scale("mini-s"), cfg.scale("mini-l")
    for _ in range(3):
        precision.train_precision(small.pretrain, small.model, measure=fast)
    assert len(fast.calls) == 1
    precision.train_precision(large.pretrain, large.model, measure=fast)  # another shape
    precision.train_precision(small.sft, small.model, measure=fast)  # another batch (SFT micro-batches of 1)
    assert len(fast.calls) == 3
    # a cached decision stands even when a new measurement would say otherwise
    assert precision.train_precision(small.pretrain, small.model, measure=FakeMeasure(1.0, 100.0)) == "bf16"


def test_measured_shape_is_capped(cache):
    fast = FakeMeasure(1.0, 0.25)
    scale = load_config("small").scale("small-l")  # 32 x 1024 tokens a micro-batch
    precision.train_precision(scale.pretrain, scale.model, measure=fast)
    assert fast.calls == [("train", (1, 1024))]


def test_explicit_precision_wins_without_measuring(cache):
    scale = _mini().scale("mini-s")
    never = FakeMeasure(1.0, 0.25)
    for requested in ("fp32", "bf16"):
        tc = type(scale.pretrain)(**{**vars(scale.pretrain), "precision": requested})
        assert precision.train_precision(tc, scale.model, measure=never) == requested
    assert precision.resolve("auto", scale.model, "train", 2, 256, cuda=True, measure=never) == "bf16"
    assert never.calls == [] and not cache.exists()


def test_pinned_decision_replaces_measurement(cache, monkeypatch):
    scale = _mini().scale("mini-s")
    monkeypatch.setenv(precision.DECISION_ENV, "bf16")
    assert precision.train_precision(scale.pretrain, scale.model, measure=FakeMeasure(1.0, 100.0)) == "bf16"
    monkeypatch.setenv(precision.DECISION_ENV, "fp16")
    with pytest.raises(ConfigError, match="fp32 or bf16"):
        precision.train_precision(scale.pretrain, scale.model)


def test_scoring_uses_bf16_only_if_every_scale_gains(cache):
    cfg = _mini()

    def only_large_gains(mc, kind, shape):
        return (1.0, 0.25) if mc.d_model == 256 else (1.0, 1.0)

    assert precision.eval_precision(cfg, measure=only_large_gains) == "fp32"
    cache.unlink()  # forget those decisions
    assert precision.eval_precision(cfg, measure=FakeMeasure(1.0, 0.25)) == "bf16"


def test_resolve_study_leaves_no_auto(cache):
    cfg = precision.resolve_study(_mini(), measure=FakeMeasure(1.0, 0.25))
    requested = [s.pretrain.precision for s in cfg.scales.values()] + [s.sft.precision for s in cfg.scales.values()]
    assert set(requested) == {"bf16"} and cfg.eval.precision == "bf16"


def test_train_override_sets_every_stage():
    cfg = load_config("mini", ["train.precision=bf16", "eval.precision=fp32"])
    assert {s.pretrain.precision for s in cfg.scales.values()} | {s.sft.precision for s in cfg.scales.values()} \
        == {"bf16"}
    assert cfg.eval.precision == "fp32"
    with pytest.raises(ConfigError, match="precision"):
        load_config("mini", ["eval.precision=fp16"])


def test_fp32_hashes_as_before_and_bf16_apart(cache):
    auto, fp32, bf16 = (load_config("mini", [f"train.precision={p}", f"eval.precision={p}"])
                        for p in ("auto", "fp32", "bf16"))
    # auto resolves to fp32 here (pinned below), so all three fp32 spellings share a folder
    cache.unlink(missing_ok=True)
    for kind, stage in (("pretrain", None), ("sft", None), ("evaluate", "PT"), ("evaluate", "SFT")):
        step = steps.Step(kind, "V1-P0", "mini-s", 0, stage)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(precision.DECISION_ENV, "fp32")
            assert steps.step_hash(auto, step) == steps.step_hash(fp32, step)
            assert steps.step_hash(bf16, step) != steps.step_hash(fp32, step)


def _as_before(tc) -> dict:
    """A stage as it hashed before precisions (and the GPU execution switches, absent at their defaults) existed."""
    values = to_dict(dataclasses.replace(tc, precision="auto"))
    return {k: v for k, v in values.items() if k not in precision.EXECUTION_DEFAULTS}


def test_fp32_hashes_as_before_precisions_were_resolved():
    """An fp32 step hashes exactly what it hashed before (train.precision "auto", eval without the key), so the
    fp32 results computed then (the baseline results/mini at 9c1c4e1: pretrain V1-P0 mini-l f675548660eb,
    sft 6830b58cb3f8, evaluate PT 2f9432b2e3d0, checked at 1a0e1d6) keep their folders."""
    cfg = load_config("mini", ["train.precision=fp32", "eval.precision=fp32"])
    scale = cfg.scale("mini-l")
    pretrain, sft = steps.Step("pretrain", "V1-P0", "mini-l", 0), steps.Step("sft", "V1-P0", "mini-l", 0)
    assert steps.step_hash(cfg, pretrain) == config_hash(steps.mixture_hash(cfg, "V1-P0", 0), scale.model,
                                                         _as_before(scale.pretrain), 0)
    assert steps.step_hash(cfg, sft) == config_hash(steps.step_hash(cfg, pretrain), steps.sft_data_hash(cfg),
                                                    _as_before(scale.sft))
    scoring = {k: v for k, v in to_dict(cfg.eval).items() if k != "precision"}
    assert steps.step_hash(cfg, steps.Step("evaluate", "V1-P0", "mini-l", 0, "PT")) == config_hash(
        steps.step_hash(cfg, pretrain), scoring, steps.eval_items_hash(cfg))


def test_the_written_config_holds_the_decision_and_keeps_the_hashes(tmp_path, monkeypatch):
    from magiclib import results

    monkeypatch.setenv(precision.DECISION_ENV, "bf16")
    cfg = _mini()
    written = load_config(str(results.write_config(cfg, tmp_path)))
    assert {s.pretrain.precision for s in written.scales.values()} == {"bf16"} and written.eval.precision == "bf16"
    step = steps.Step("evaluate", "V2-P1", "mini-l", 0, "SFT")
    assert steps.step_hash(written, step) == steps.step_hash(cfg, step)
