"""Tests for magiclib.plots: offline HTML (spec + SVG fallback, no CDN), theme, category order, helpers."""

import base64
import json
import re

import altair as alt
import pandas as pd
import pytest
import vl_convert as vlc

from magiclib import benchmarks, plots


@pytest.fixture
def by_benchmark():
    return pd.DataFrame({
        "benchmark": ["wic", "piqa", "rte", "arc_easy", "hellaswag"],
        "category": ["semantic", "commonsense", "nli", "science", "commonsense"],
        "r": [0.1, 0.5, -0.2, 0.3, 0.7],
        "lo": [-0.3, 0.1, -0.6, -0.1, 0.4],
        "hi": [0.5, 0.8, 0.2, 0.6, 0.9],
    })


def _embedded_spec(snippet: str) -> dict:
    payload = re.search(r'<script type="application/json">(.*?)</script>', snippet, re.S).group(1)
    return json.loads(payload)


def test_render_holds_spec_and_svg_fallback(by_benchmark):
    chart = plots.bar_ci(by_benchmark, "r", "lo", "hi", title="cross-stage r")
    snippet = plots.render(chart)
    assert _embedded_spec(snippet) == plots.spec(chart)
    static = re.search(r'<img class="magic-chart-static" alt="cross-stage r" '
                       r'src="data:image/svg\+xml;base64,([^"]+)"', snippet).group(1)
    svg = base64.b64decode(static).decode()
    assert svg.startswith("<svg") and "piqa" in svg
    assert 'aria-label="cross-stage r"' in snippet
    assert plots.render(chart) == snippet  # deterministic: no random ids


def test_render_loads_nothing_from_the_network(by_benchmark):
    snippet = plots.render(plots.bar_ci(by_benchmark, "r", "lo", "hi"))
    assert "<script src" not in snippet and "<link" not in snippet
    schema = plots.spec(plots.bar_ci(by_benchmark, "r"))["$schema"]
    svg = base64.b64decode(re.search(r'src="data:image/svg\+xml;base64,([^"]+)"', snippet).group(1)).decode()
    for url in re.findall(r"https?://[^\s\"'<>]+", snippet + svg):
        # only XML namespaces of the SVG and the spec's $schema (an identifier vega-embed never fetches)
        assert url.startswith("http://www.w3.org/") or url == schema, url
    assert not re.search(r"cdn|jsdelivr|unpkg", snippet, re.I)


def test_script_end_tag_in_data_cannot_break_out():
    frame = pd.DataFrame({"benchmark": ["</script><b>x"], "category": ["nli"], "r": [0.5]})
    snippet = plots.render(plots.bar_ci(frame, "r"))
    assert snippet.count("</script>") == 2
    assert _embedded_spec(snippet)["datasets"].popitem()[1][0]["benchmark"] == "</script><b>x"


def test_theme_and_category_colours_are_applied_without_changing_altair_globally(by_benchmark):
    spec = plots.spec(plots.bar_ci(by_benchmark, "r", "lo", "hi"))
    assert spec["config"]["font"] == plots.FONT
    scale = spec["layer"][0]["encoding"]["color"]["scale"]
    assert scale == {"domain": list(plots.CATEGORY_ORDER), "range": list(plots.CATEGORY_COLORS)}
    assert alt.theme.active != plots.THEME


def test_bars_follow_the_benchmark_order_and_refuse_categories_without_a_colour(by_benchmark):
    assert benchmarks.benchmark_order(by_benchmark) == ["piqa", "hellaswag", "arc_easy", "rte", "wic"]
    assert plots.spec(plots.bar_ci(by_benchmark, "r"))["encoding"]["x"]["sort"] == benchmarks.benchmark_order(
        by_benchmark)
    with pytest.raises(ValueError, match="unknown categories.*CATEGORY_ORDER"):
        plots.bar_ci(by_benchmark.assign(category="reading"), "r")


def test_helpers_compile_to_vega(by_benchmark):
    matrix = pd.DataFrame([[1.0, 0.4], [0.4, 1.0]], index=["piqa", "sciq"], columns=["piqa", "sciq"])
    stages = pd.DataFrame({"mixture": ["V1-P0", "V2-P0"], "category": ["science", "nli"],
                           "pt": [0.3, 0.4], "sft": [0.35, 0.5]})
    losses = pd.DataFrame({"step": [0, 10, 0, 10], "loss": [8.0, 5.0, 8.1, 4.9],
                           "mixture": ["a", "a", "b", "b"]})
    bins = pd.DataFrame({"confidence": [0.3, 0.6, 0.9], "accuracy": [0.25, 0.55, 0.8], "count": [10, 20, 5]})
    charts = [plots.bar_ci(by_benchmark, "r"), plots.heatmap(matrix, title="r"), plots.scatter_stages(stages),
              plots.loss_curves(losses), plots.reliability(bins)]
    for chart in charts:
        vega = vlc.vegalite_to_vega(plots.spec(chart), vl_version=plots.vegalite_version())
        assert vega["marks"], chart


def test_heatmap_needs_a_square_matrix():
    with pytest.raises(ValueError, match="square matrix"):
        plots.heatmap(pd.DataFrame([[1.0, 0.2]], index=["a"], columns=["a", "b"]))


def test_write_bundle_defines_vega_embed(tmp_path):
    path = plots.write_bundle(tmp_path / "_static")
    text = path.read_text()
    assert path.name == plots.BUNDLE_NAME and len(text) > 100_000
    assert "vegaEmbed" in text and "http://cdn" not in text and "jsdelivr" not in text
