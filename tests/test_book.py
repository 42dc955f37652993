"""Tests for magiclib.book: chapter sources, shared tables, incremental builds, the built book in Chromium."""

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
from magiclib.model import count_parameters

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


def test_human_counts():
    assert [book.human(n) for n in (512, 37_024, 1_574_016, 241_054_464, 1.147e9)] == [
        "512", "37K", "1.57M", "241M", "1.15B"]


def test_counted_nouns():
    assert (book.counted(1, "seed"), book.counted(2, "scale"), book.counted(3, "category", "categories")) == (
        "1 seed", "2 scales", "3 categories")


def test_mixtures_and_scales_tables_come_from_the_config():
    cfg = load_config("mini")
    mixtures = book.mixtures_table(cfg)
    assert list(mixtures["mixture"]) == cfg.mixture_names
    assert (mixtures[["web", "code", "curated"]].sum(axis=1) - 1).abs().max() < 1e-9
    assert mixtures.set_index("mixture").loc["V2-P1", "code pools"] == "code_python, code_go"
    scales = book.scales_table(cfg).set_index("scale")
    small = cfg.scales["mini-s"]
    assert scales.loc["mini-s", "parameters"] == count_parameters(small.model)["total"]
    assert scales.loc["mini-s", "PT tokens"] == small.pretrain.max_steps * small.pretrain.batch_size * 256


def test_benchmarks_table_is_ordered_by_category():
    cfg = load_config("smoke", ["eval.benchmarks=[rte, copa, sciq]", "eval.items_per_benchmark=10"])
    table = book.benchmarks_table(cfg)
    assert list(table["benchmark"]) == ["copa", "sciq", "rte"]
    copa = table.iloc[0]
    assert (copa["category"], copa["items"], copa["items scored"], copa["choices"]) == (
        "commonsense", 100, 10, "2")


def test_study_config_prefers_the_results_config(tmp_path):
    assert book.study_config(tmp_path, "smoke").name == "smoke"
    io.write_text(tmp_path / "config.yaml", "name: smoke-variant\nseeds: [3]\n")
    assert book.study_config(tmp_path, "smoke").seeds == [3]


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
    monkeypatch.setattr(book, "_jupyter_book", lambda stage, build: build / "html" / "index.html")
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


# Counts chart containers, and those where vega-embed drew an SVG or canvas and removed the static fallback.
_CHARTS_JS = """(() => {
  const boxes = [...document.querySelectorAll('.magic-chart')];
  const drawn = boxes.filter(b => !b.querySelector('.magic-chart-static')
                                  && b.querySelector('.vega-embed svg, .vega-embed canvas'));
  return {charts: boxes.length, drawn: drawn.length, ready: document.readyState};
})()"""


def _open_in_chromium(url: str, profile: Path, timeout: float = 30.0) -> dict:
    """Load `url` in headless Chromium over the DevTools protocol; report failed loads, errors and charts."""
    import websocket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    browser = subprocess.Popen([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                f"--remote-debugging-port={port}", "about:blank"],
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
