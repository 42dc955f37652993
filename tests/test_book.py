"""Tests for magiclib.book: chapter sources, shared tables, incremental builds, the built book in Chromium."""

import ast
import json
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from concurrent.futures import Future
from pathlib import Path

import nbformat
import pytest

from magiclib import book, io
from magiclib.config import load_config

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]


# --- sources and tables ---------------------------------------------------------------------------------


def test_chapters_follow_the_toc_and_take_papermill_parameters():
    notebooks = book.chapters()
    assert [nb.stem for nb in notebooks][:2] == ["intro", "design"]
    assert notebooks[-1].stem == "reproducibility" and len(notebooks) == 12
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        parameters = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(parameters) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
        assert "results_dir =" in parameters[0].source and "preset =" in parameters[0].source
        outputs = [c for c in nb.cells if c.cell_type == "code" and (c.outputs or c.execution_count)]
        assert not outputs, f"{path.name}: sources stay output-free (clear outputs before committing)"


# No logic in a chapter: a chapter's code cells are its parameters, one-line calls into magiclib and charts.
MAX_CELL_LINES = 10


def test_chapters_hold_no_logic():
    for path in book.chapters():
        nb = nbformat.read(path, as_version=4)
        for index, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
            lines = [line for line in cell.source.splitlines() if line.strip()]
            where = f"{path.name}, code cell {index}"
            assert len(lines) <= MAX_CELL_LINES, f"{where}: {len(lines)} lines; move the logic into magiclib"
            tree = ast.parse(cell.source)
            defs = [n.name for n in ast.walk(tree)
                    if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]
            assert not defs, f"{where} defines {defs}; definitions belong in magiclib.chapters or report"
            assert not any(isinstance(n, ast.JoinedStr) for n in ast.walk(tree)), (
                f"{where}: an f-string; prose belongs in markdown cells, numbers enter through glue")


# --- incremental builds (no kernels) --------------------------------------------------------------------


def test_build_executes_only_what_changed(tmp_path, monkeypatch):
    executed = []

    def fake_execute(notebook, target, preset, results):
        executed.append(notebook.stem)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(notebook, target)

    bundles = []
    monkeypatch.setattr(book.plots, "write_bundle", lambda folder: bundles.append(folder) or io.write_text(
        Path(folder) / "vega-bundle.js", "window.vegaEmbed = null;"))
    monkeypatch.setattr(book, "ProcessPoolExecutor", _InlinePool)
    monkeypatch.setattr(book, "_execute", fake_execute)
    built = []
    monkeypatch.setattr(book, "_jupyter_book", lambda stage, build, rebuild_all: built.append(rebuild_all) or (
        build / "html" / "index.html"))
    results = tmp_path / "results"
    results.mkdir()
    cfg = load_config("smoke")
    out = book.build_book(cfg, results, tmp_path / "out")
    assert out == tmp_path / "out" / "_build" / "html" / "index.html"
    assert sorted(executed) == sorted(nb.stem for nb in book.chapters())
    assert bundles == [tmp_path / "out" / "_build" / "stage" / "book" / "_static"]
    executed.clear()
    book.build_book(cfg, results, tmp_path / "out")
    assert executed == [] and len(bundles) == 1
    io.write_text(results / "scores.csv", "new results\n")
    book.build_book(cfg, results, tmp_path / "out")
    assert len(executed) == len(book.chapters())
    assert built == [True, False, False]  # every page again only when the book's own files changed


class _InlinePool:
    """A stand-in for ProcessPoolExecutor that runs each task at submit time, in this process."""

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, fn, *args):
        future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as err:  # noqa: BLE001 - handed to the caller through the future, like a real pool
            future.set_exception(err)
        return future


@pytest.mark.slow
def test_failing_chapter_names_the_chapter_and_its_executed_notebook(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("results_dir = ''\npreset = ''"),
                                         nbformat.v4.new_code_cell("raise ValueError('no scores yet')")])
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    source = tmp_path / "broken.ipynb"
    nbformat.write(nb, source)
    target = tmp_path / "stage" / "broken.ipynb"
    expected = r"chapter broken failed.*no scores yet(.|\n)*" + re.escape(str(target))
    with pytest.raises(book.ChapterError, match=expected):
        book._execute(source, target, "smoke", tmp_path)
    assert "no scores yet" in target.read_text()


# --- the built book in a real browser ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def built_book(smoke_study, tmp_path_factory):
    """The book built from the smoke study (see conftest.py), as `magic book` would build it."""
    return book.build_book(load_config("smoke"), smoke_study, tmp_path_factory.mktemp("book"))


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (make browser)")
@pytest.mark.parametrize(("page", "min_charts"), [("book/design.html", 1), ("book/reproducibility.html", 0)])
def test_chapter_page_loads_offline_and_draws_its_charts(built_book, tmp_path, page, min_charts):
    report = _open_in_chromium((built_book.parent / page).as_uri(), tmp_path)
    assert report["failed"] == [], f"{page}: resources that failed to load"
    assert report["exceptions"] == [], f"{page}: script errors"
    assert report["charts"] >= min_charts
    assert report["drawn"] == report["charts"], f"{page}: charts without an interactive SVG/canvas"


@pytest.mark.slow
def test_every_glued_value_resolves(built_book):
    """myst-nb warns about a {glue:md} name no cell glued; the page would show nothing in its place."""
    log = (built_book.parent.parent / "jupyter-book.log").read_text()
    assert not [line for line in log.splitlines() if "glue" in line.lower() and "warning" in line.lower()]
    for page in (built_book.parent / "book").glob("*.html"):
        assert "{glue" not in page.read_text(), f"{page.name}: an unresolved glue reference"


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (make browser)")
@pytest.mark.parametrize("chapter", [nb.stem for nb in book.chapters()])
def test_no_table_is_wider_than_its_column_at_1280_px(built_book, tmp_path, chapter):
    report = _open_in_chromium((built_book.parent / "book" / f"{chapter}.html").as_uri(), tmp_path,
                               extra=_OVERFLOW_JS)
    assert report["extra"] == [], f"{chapter}: tables cut off in a 1280-px window (caption, table px, column px)"


# Opens every folded output first; then lists the tables wider than the content column, which would scroll.
_OVERFLOW_JS = """(() => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const column = document.querySelector('article.bd-article').getBoundingClientRect().width;
  return [...document.querySelectorAll('article.bd-article table')]
    .filter(t => t.getBoundingClientRect().width > column + 1)
    .map(t => [(t.caption || {}).textContent || t.rows[0].textContent.slice(0, 60),
               Math.round(t.getBoundingClientRect().width), Math.round(column)]);
})()"""

# Counts chart containers, and those where vega-embed drew an SVG or canvas and removed the static fallback.
_CHARTS_JS = """(() => {
  const boxes = [...document.querySelectorAll('.magic-chart')];
  const drawn = boxes.filter(b => !b.querySelector('.magic-chart-static')
                                  && b.querySelector('.vega-embed svg, .vega-embed canvas'));
  return {charts: boxes.length, drawn: drawn.length, ready: document.readyState};
})()"""


def _open_in_chromium(url: str, profile: Path, timeout: float = 30.0, extra: str | None = None) -> dict:
    """Load `url` in headless Chromium (a 1280 x 900 window) over the DevTools protocol; report failed loads,
    errors and charts, and under "extra" the value of the expression `extra` once the charts are drawn."""
    import websocket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    browser = subprocess.Popen([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                f"--remote-debugging-port={port}", "--window-size=1280,900", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        devtools = _DevTools(websocket.create_connection(_page_socket(port, timeout), timeout=timeout,
                                                         suppress_origin=True))
        for domain in ("Network", "Runtime", "Page"):
            devtools.call(f"{domain}.enable")
        devtools.call("Page.navigate", url=url)
        devtools.wait_for("Page.loadEventFired")
        deadline = time.monotonic() + timeout
        while True:  # vega-embed draws asynchronously after the load event
            answer = devtools.call("Runtime.evaluate", expression=_CHARTS_JS, returnByValue=True)
            charts = answer["result"]["value"]
            if charts["drawn"] == charts["charts"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if extra:
            charts["extra"] = devtools.call("Runtime.evaluate", expression=extra, returnByValue=True)["result"]["value"]
    finally:
        browser.terminate()
        browser.wait(timeout=10)
    events = {}
    for event in devtools.events:
        events.setdefault(event.get("method"), []).append(event.get("params", {}))
    urls = {e["requestId"]: e["request"]["url"] for e in events.get("Network.requestWillBeSent", [])}
    failed = [f"{urls.get(e['requestId'])}: {e['errorText']}"
              for e in events.get("Network.loadingFailed", [])]
    failed += [f"{e['response']['url']}: HTTP {e['response']['status']}"
               for e in events.get("Network.responseReceived", []) if e["response"].get("status", 0) >= 400]
    exceptions = [e["exceptionDetails"] for e in events.get("Runtime.exceptionThrown", [])]
    return {"failed": failed, "exceptions": exceptions, **charts}


class _DevTools:
    """The smallest DevTools-protocol client: numbered calls, with every event kept for later."""

    def __init__(self, ws):
        self.ws, self.events, self.last_id = ws, [], 0

    def call(self, method: str, **params) -> dict:
        self.last_id += 1
        self.ws.send(json.dumps({"id": self.last_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.last_id:
                if "error" in message:
                    raise RuntimeError(f"DevTools {method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def wait_for(self, method: str) -> None:
        while not any(e.get("method") == method for e in self.events):
            self.events.append(json.loads(self.ws.recv()))  # the socket's timeout bounds the wait


def _page_socket(port: int, timeout: float) -> str:
    """The DevTools websocket of the browser's first page, once the debugging endpoint answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as answer:
                pages = [t for t in json.load(answer) if t["type"] == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)
