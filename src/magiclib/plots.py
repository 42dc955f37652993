"""Altair charts for the book: one theme, one category palette, a few chart helpers, offline HTML output.

Charts must render with no network. `render` turns a chart into an HTML snippet that holds the Vega-Lite
spec and a static SVG of it (made by vl-convert); in the book, the Vega bundle that vl-convert ships is
loaded on every page from the book's static files (`write_bundle`, called by the book build), and the
snippet swaps the SVG for the interactive chart. Wherever that bundle is absent (JupyterLab, a page
opened without scripts) the SVG stays. The SVG is an <img> with a data URI rather than inline <svg>
because JupyterLab's sanitizer, which cleans the HTML of untrusted notebooks, drops <svg> but keeps
<img>. Altair's own renderers do not fit: `mimetype` outputs nothing myst-nb renders and `html` fetches
Vega from a CDN.

Every helper takes a tidy DataFrame and column names and returns an `alt.Chart`, so a chapter can still
change titles, sizes or encodings before `show(chart)`.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import altair as alt
import pandas as pd
import vl_convert as vlc

from . import io
from .benchmarks import CATEGORY_ORDER, benchmark_order
from .errors import BadValue
from .steps import STAGES

THEME = "magic"
BUNDLE_NAME = "vega-bundle.js"
CATEGORY_COLORS = ("#4C78A8", "#F58518", "#54A24B", "#B279A2")  # colour-blind safe (Tableau 10)
STAGE_ORDER = STAGES  # the plan's order: PT, then SFT
FONT = "Helvetica Neue, Helvetica, Arial, sans-serif"


@alt.theme.register(THEME, enable=False)
def _theme() -> alt.theme.ThemeConfig:
    return {
        "config": {
            "font": FONT,
            "view": {"continuousWidth": 420, "continuousHeight": 280, "stroke": None},
            "axis": {"labelFontSize": 11, "titleFontSize": 12, "titleFontWeight": "normal", "grid": True,
                     "gridColor": "#e6e6e6", "domainColor": "#888", "tickColor": "#888"},
            "legend": {"labelFontSize": 11, "titleFontSize": 12, "titleFontWeight": "normal"},
            "title": {"fontSize": 14, "anchor": "start", "fontWeight": "normal"},
            "range": {"category": list(CATEGORY_COLORS) + ["#E45756", "#72B7B2", "#EECA3B", "#FF9DA6",
                                                           "#9D755D", "#BAB0AC"]},
        }
    }


def _titled(chart: alt.TopLevelMixin, title: str | None) -> alt.TopLevelMixin:
    return chart.properties(title=title) if title else chart


def category_scale() -> alt.Scale:
    """The colour scale every chart uses for benchmark categories, in the paper's order."""
    return alt.Scale(domain=list(CATEGORY_ORDER), range=list(CATEGORY_COLORS))


def component_scale() -> alt.Scale:
    """The colour scale for the data components of a mixture (web, code, curated): not benchmark categories."""
    return alt.Scale(domain=["web", "code", "curated"], range=["#9D755D", "#72B7B2", "#EECA3B"])


def _check_categories(frame: pd.DataFrame, category: str) -> None:
    """A category outside CATEGORY_ORDER would get no colour of category_scale."""
    unknown = sorted(set(frame[category]) - set(CATEGORY_ORDER))
    if unknown:
        raise BadValue(f"unknown categories {unknown}; use one of {list(CATEGORY_ORDER)} "
                       "(benchmarks.CATEGORY_ORDER)")


# --- chart helpers ----------------------------------------------------------------------------------------


def bar_ci(frame: pd.DataFrame, value: str, lower: str | None = None, upper: str | None = None, *,
           benchmark: str = "benchmark", category: str = "category", title: str | None = None) -> alt.Chart:
    """Bars of `value` per benchmark, coloured by category, with an interval from `lower` to `upper`."""
    _check_categories(frame, category)
    order = benchmark_order(frame, benchmark=benchmark, category=category)
    x = alt.X(f"{benchmark}:N", sort=order, title=None, axis=alt.Axis(labelAngle=-45))
    y_title = value  # else Vega-Lite titles the shared axis "value, lower, upper"
    bars = alt.Chart(frame).mark_bar().encode(
        x=x,
        y=alt.Y(f"{value}:Q", title=y_title),
        color=_colour(category),
        tooltip=[benchmark, category, alt.Tooltip(value, format=".3f")]
        + [alt.Tooltip(c, format=".3f") for c in (lower, upper) if c],
    )
    if lower is None:
        return _titled(bars, title)
    errors = alt.Chart(frame).mark_rule(color="#333").encode(x=x, y=alt.Y(f"{lower}:Q", title=y_title),
                                                             y2=f"{upper}:Q")
    return _titled(alt.layer(bars, errors), title)


def heatmap(matrix: pd.DataFrame, *, title: str | None = None, value: str = "r",
            decimals: int = 2) -> alt.Chart:
    """A correlation matrix (square DataFrame, labels as index and columns) on a diverging -1..1 scale.

    Up to 12 rows the cells carry their values; larger matrices rely on the tooltip.
    """
    if list(matrix.index) != list(matrix.columns):
        raise BadValue("heatmap needs a square matrix with the same labels on rows and columns "
                       "(e.g. frame.corr()); reorder with matrix.loc[order, order]")
    order = [str(label) for label in matrix.index]
    long = matrix.rename_axis(index="row", columns="column").stack().rename(value).reset_index()
    long[["row", "column"]] = long[["row", "column"]].astype(str)
    base = alt.Chart(long).encode(
        x=alt.X("column:N", sort=order, title=None, axis=alt.Axis(labelAngle=-45)),
        y=alt.Y("row:N", sort=order, title=None),
    )
    cells = base.mark_rect().encode(
        color=alt.Color(f"{value}:Q", scale=alt.Scale(scheme="redblue", domain=[-1, 1], reverse=True)),
        tooltip=["row", "column", alt.Tooltip(value, format=f".{decimals}f")],
    )
    labelled = len(order) <= 12
    size = len(order) * (36 if labelled else 22)
    if not labelled:
        return _titled(cells.properties(width=size, height=size), title)
    labels = base.mark_text(fontSize=10).encode(
        text=alt.Text(f"{value}:Q", format=f".{decimals}f"),
        color=alt.condition(f"abs(datum['{value}']) > 0.6", alt.value("white"), alt.value("black")),
    )
    return _titled(alt.layer(cells, labels).properties(width=size, height=size), title)


def scatter_stages(frame: pd.DataFrame, pt: str = "pt", sft: str = "sft", *, color: str = "category",
                   label: str | None = "mixture", title: str | None = None) -> alt.Chart:
    """One point per row at (PT score, SFT score), coloured by category (or any column), with a y = x line."""
    lo = float(min(frame[pt].min(), frame[sft].min()))
    hi = float(max(frame[pt].max(), frame[sft].max()))
    tooltip = [c for c in (label, color) if c] + [alt.Tooltip(pt, format=".3f"),
                                                   alt.Tooltip(sft, format=".3f")]
    points = alt.Chart(frame).mark_circle(size=60, opacity=0.8).encode(
        x=alt.X(f"{pt}:Q", title="after pretraining (PT)", scale=alt.Scale(zero=False)),
        y=alt.Y(f"{sft}:Q", title="after fine-tuning (SFT)", scale=alt.Scale(zero=False)),
        color=_colour(color),
        tooltip=tooltip,
    )
    return _titled(alt.layer(_diagonal(lo, hi), points), title)


def loss_curves(frame: pd.DataFrame, step: str = "step", loss: str = "loss", *, color: str = "mixture",
                title: str | None = None) -> alt.Chart:
    """Training loss against step, one line per `color` value (e.g. mixture), log-scaled loss axis."""
    lines = alt.Chart(frame).mark_line(strokeWidth=1.5).encode(
        x=alt.X(f"{step}:Q", title=step),
        # nice=False: a "nice" log axis runs from a power of ten to the next and flattens the curves
        y=alt.Y(f"{loss}:Q", title=loss, scale=alt.Scale(type="log", nice=False)),
        color=_colour(color),
        tooltip=[color, step, alt.Tooltip(loss, format=".4f")],
    )
    return _titled(lines, title)


def reliability(frame: pd.DataFrame, confidence: str = "confidence", accuracy: str = "accuracy", *,
                count: str | None = "count", color: str | None = None, title: str | None = None) -> alt.Chart:
    """A reliability diagram: accuracy per confidence bin (one line per `color` value, points sized by
    `count`) against the diagonal of perfect calibration."""
    position = {
        "x": alt.X(f"{confidence}:Q", title="confidence (bin mean)", scale=alt.Scale(domain=[0, 1])),
        "y": alt.Y(f"{accuracy}:Q", title="accuracy", scale=alt.Scale(domain=[0, 1])),
        "color": _colour(color) if color else alt.value(CATEGORY_COLORS[0]),
    }
    line = alt.Chart(frame).mark_line(strokeWidth=1.5).encode(**position)
    points = alt.Chart(frame).mark_circle(opacity=0.9).encode(
        **position,
        size=alt.Size(f"{count}:Q", title="items", legend=None) if count else alt.value(40),
        tooltip=[c for c in (color, count) if c] + [alt.Tooltip(confidence, format=".3f"),
                                                     alt.Tooltip(accuracy, format=".3f")],
    )
    return _titled(alt.layer(_diagonal(0.0, 1.0), line, points).properties(width=300, height=300), title)


def _colour(column: str) -> alt.Color:
    """Colour by `column`; benchmark categories always get the book's category colours."""
    if column == "category":
        return alt.Color(f"{column}:N", scale=category_scale(), title="category")
    return alt.Color(f"{column}:N")


def _diagonal(lo: float, hi: float) -> alt.Chart:
    """The dashed y = x line from (lo, lo) to (hi, hi)."""
    return alt.Chart(pd.DataFrame({"x": [lo, hi]})).mark_line(color="#999", strokeDash=[4, 4]).encode(
        x="x:Q", y="x:Q")


# --- offline output ---------------------------------------------------------------------------------------

# Runs in the page: swap the static SVG for vega-embed's chart once the bundle is there. `currentScript`
# finds this snippet's own container, so no ids are needed and the output stays deterministic.
_EMBED_JS = """(function () {
  if (!window.vegaEmbed || !document.currentScript) return;
  var box = document.currentScript.parentElement;
  var spec = JSON.parse(box.querySelector('script[type="application/json"]').textContent);
  var target = document.createElement('div');
  box.appendChild(target);
  window.vegaEmbed(target, spec, {renderer: 'svg', actions: {export: true, source: false, compiled: false,
                                                             editor: false}})
    .then(function () { box.querySelector('.magic-chart-static').remove(); })
    .catch(function (err) { target.remove(); console.error('magiclib chart:', err); });
})();"""


def vegalite_version() -> str:
    """The Vega-Lite version that vl-convert ships closest to Altair's (major.minor)."""
    wanted = ".".join(alt.VEGALITE_VERSION.split(".")[:2])
    shipped = vlc.get_vegalite_versions()
    return wanted if wanted in shipped else shipped[-1]


def spec(chart: alt.TopLevelMixin) -> dict:
    """The chart's Vega-Lite spec with the book's theme and the data inlined."""
    with alt.theme.enable(THEME), alt.data_transformers.enable("default", max_rows=None):
        return chart.to_dict()


def render(chart: alt.TopLevelMixin) -> str:
    """An HTML snippet: the static SVG, the spec as JSON, and the script that makes it interactive."""
    chart_spec = spec(chart)
    svg = vlc.vegalite_to_svg(chart_spec, vl_version=vegalite_version())
    # "</" inside JSON would end the <script> element early; "<\/" is the same string to JSON.
    payload = json.dumps(chart_spec, sort_keys=True).replace("</", "<\\/")
    description = html.escape(str(chart_spec.get("description") or _spec_title(chart_spec) or "chart"))
    svg_uri = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
    return (f'<div class="magic-chart" role="figure" aria-label="{description}">'
            f'<img class="magic-chart-static" alt="{description}" src="{svg_uri}">'
            f'<script type="application/json">{payload}</script>'
            f"<script>{_EMBED_JS}</script></div>")


def show(chart: alt.TopLevelMixin | None) -> None:
    """Display a chart in a notebook as offline HTML (see `render`); None (nothing to chart) shows nothing."""
    from IPython.display import HTML, display

    if chart is not None:
        display(HTML(render(chart)))


def bundle_version() -> str:
    """What `write_bundle` writes: vl-convert's version and the Vega-Lite version inside."""
    return f"vl-convert {vlc.__version__}, vega-lite {vegalite_version()}"


def write_bundle(static_dir: str | Path) -> Path:
    """Write vl-convert's Vega + Vega-Lite + vega-embed bundle (about 0.9 MB) into the book's static files."""
    path = Path(static_dir) / BUNDLE_NAME
    # The bundle declares top-level names (`_` among them) that clash with Sphinx's own scripts in the
    # page's shared scope; a function scope keeps them private. It exports through window.vegaEmbed.
    bundle = vlc.javascript_bundle(vl_version=vegalite_version())
    io.write_text(path, f"(function () {{\n{bundle}\n}})();\n")
    return path


def _spec_title(chart_spec: dict) -> str:
    title = chart_spec.get("title")
    return title.get("text", "") if isinstance(title, dict) else title or ""
