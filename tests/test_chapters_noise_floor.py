"""The noise-floor section of RQ1-RQ4 (magiclib.chapters.noise_floor) on a planted study's results folder."""

import pandas as pd
import pytest

from magiclib import io, metrics, plots
from magiclib.analysis import make_items
from magiclib.chapters import noise_floor
from magiclib.chapters.noise_floor import NoiseFloor, intro_noise_line, intro_verdict


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """mini-s with 3 seeds and a strong mixture effect on arc_easy only; mini-l with one seed."""
    root = tmp_path_factory.mktemp("study")
    small = pd.concat([
        make_items(scales={"mini-s": 1_000_000}, benchmarks=("arc_easy",), seeds=(0, 1, 2), n_items=40,
                   sd_mixture=1.0, rho_mixture=0.95, sd_seed=0.2, sd_item=1.0, seed=1),
        make_items(scales={"mini-s": 1_000_000}, benchmarks=("rte",), seeds=(0, 1, 2), n_items=40,
                   sd_mixture=0.0, sd_seed=1.0, seed=2)])
    large = make_items(scales={"mini-l": 4_000_000}, benchmarks=("arc_easy", "rte"), seeds=(0,), n_items=40,
                       sd_mixture=1.0, rho_mixture=0.95, sd_item=1.0, seed=3)
    items = pd.concat([large, small])  # rows out of scale order: the order must come from n_params
    io.write_parquet(root / "tables" / "items.parquet", items)
    io.write_parquet(root / "tables" / "scores.parquet", metrics.score_table(items))
    return root


def test_section_tables_facts_and_chart(study, monkeypatch):
    noise = NoiseFloor(str(study), n_boot=50)
    assert noise.scales == ["mini-s", "mini-l"]
    signal = noise.signal().set_index(["scale", "metric"])
    assert signal.loc[("mini-s", "accuracy"), "noise floor"] == "items and seeds"
    assert signal.loc[("mini-l", "accuracy"), "noise floor"] == "items (one seed)"
    assert "rte" not in noise.measurable_names("mini-s", "gold_ll_char")  # seed noise only: below the floor
    assert noise.verdict_names("mini-s", "gold_ll_char", noise_floor.PERSIST) == ["arc_easy"]
    table = noise.transfer("gold_ll_char")
    assert list(table.columns[:3]) == ["scale", "benchmark", "signal (reliability PT / SFT)"]
    assert {"naive r", "split r", "corrected r", "mixture r", "verdict"} <= set(table.columns)
    assert len(noise.planning()) == 2 * 7
    facts = noise.facts()
    assert "mini-s, gold log-likelihood per character: rankings persist on arc_easy" in facts["noise_verdicts"]
    assert "at mini-s, items and seeds" in facts["noise_floors"]
    assert intro_noise_line(noise, "RQ2").startswith("accuracy above its noise floor on")
    assert "of 2 benchmarks at mini-s" in intro_noise_line(noise, "RQ1")
    assert intro_verdict(noise, "RQ1").startswith("mixture rankings persist in")
    # one seed at mini-l: a persisting ranking there is a model ranking, never a mixture ranking
    at_large = noise.audit[noise.audit["scale"] == "mini-l"]["verdict"]
    assert not at_large.isin([noise_floor.PERSIST, noise_floor.REVERSE]).any()
    assert at_large.isin([noise_floor.MODELS_PERSIST]).any()
    assert "arc_easy" in intro_verdict(noise, "RQ2") and "rte" not in intro_verdict(noise, "RQ2")
    assert intro_verdict(noise, "RQ3") is None
    assert "<img" in plots.render(noise.chart("gold_ll_char"))
    # a second build reads the cache instead of recomputing
    monkeypatch.setattr(noise_floor.analysis, "transfer_audit", lambda *a, **k: pytest.fail("recomputed"))
    pd.testing.assert_frame_equal(NoiseFloor(str(study), n_boot=50).audit, noise.audit)


def test_rq1_verdict_names_seeded_scales_whose_signal_is_below_seed_noise():
    """Seeds were trained at one scale but nothing there is measurable: say so, not 'no scale has seeds'."""
    audit = pd.DataFrame({"scale": ["s", "l"], "benchmark": ["copa", "copa"], "metric": ["accuracy"] * 2,
                          "n_seeds": [3, 1], "measurable": [False, False],
                          "verdict": [noise_floor.NOT_MEASURABLE] * 2})
    noise = NoiseFloor.__new__(NoiseFloor)
    noise.audit = audit
    assert intro_verdict(noise, "RQ1").startswith("not measurable at this scale")  # nothing measurable at all
    noise.audit = audit.assign(measurable=[False, True], verdict=[noise_floor.NOT_MEASURABLE,
                                                                  noise_floor.MODELS_PERSIST])
    text = intro_verdict(noise, "RQ1")
    assert text.startswith("not measurable at s: with several seeds there") and "1 cells with one seed" in text
    noise.audit = noise.audit.assign(n_seeds=1)
    assert intro_verdict(noise, "RQ1").startswith("no scale has several seeds")
