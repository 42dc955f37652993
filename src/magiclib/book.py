"""Build the HTML book: execute every chapter with papermill against a results folder, then run Jupyter Book.

The chapter notebooks in `book/` stay output-free in git. `build_book` copies the book's sources into a
staging folder, executes each chapter into it (papermill, parameters `results_dir` and `preset`, working
directory `book/`), writes the Vega bundle into its static files and builds HTML from the executed copies
with Jupyter Book, which itself executes nothing. A chapter is re-executed only when its notebook, the
library or the results folder changed since the last build (a stamp per chapter, written after success).
What the chapters compute and how they word it lives in `magiclib.report` and `magiclib.chapters`;
this module only builds the book.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import yaml
from tqdm import tqdm  # not tqdm.auto: chapters import this module, and it warns without ipywidgets

from . import io, paths, plots
from .config import StudyConfig, config_hash
from .errors import NotReady, UserError

BOOK_DIR = paths.REPO_ROOT / "book"
BOOK_FILES = ("_config.yml", "_toc.yml")  # at the repository root, beside book/
STAMPS = "stamps.json"


class ChapterError(UserError, RuntimeError):
    """A chapter notebook failed; the message names the chapter and its executed notebook."""


def chapters() -> list[Path]:
    """The chapter notebooks in table-of-contents order."""
    toc = yaml.safe_load((paths.REPO_ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [entry["file"] for entry in toc.get("chapters", [])]
    notebooks = [paths.REPO_ROOT / f"{name}.ipynb" for name in files]
    return [nb for nb in notebooks if nb.exists()]


def build_book(cfg: StudyConfig, results: Path, output: Path | None = None,
               workers: int | None = None) -> Path:
    """Execute the chapters against `results` and build the HTML book; returns its index.html.

    `output` is the folder that receives `_build/` (default: book/, so the book is book/_build/html);
    `workers` chapters execute at once (default: up to 4, one per core). Kernel logs go to
    `_build/chapters.log`, Jupyter Book's to `_build/jupyter-book.log`.
    """
    results = Path(results).resolve()
    build = Path(output or BOOK_DIR).resolve() / "_build"
    stage = build / "stage"
    sources_changed = _copy_sources(stage)
    stamps_path = build / STAMPS
    stamps = io.read_json(stamps_path) if stamps_path.exists() else {}
    bundle, static = plots.bundle_version(), stage / "book" / "_static"
    if stamps.get(plots.BUNDLE_NAME) != bundle or not (static / plots.BUNDLE_NAME).exists():
        plots.write_bundle(static)
        stamps[plots.BUNDLE_NAME] = bundle
        sources_changed = True
    results_key = _results_key(results)
    keys = {nb: _chapter_key(nb, cfg, results, results_key) for nb in chapters()}
    todo = [nb for nb, key in keys.items() if stamps.get(nb.stem) != key or not _staged(stage, nb).exists()]
    for notebook in todo:  # a chapter counts as executed only once its stamp is back
        stamps.pop(notebook.stem, None)
    io.write_json(stamps_path, stamps)
    failures = []
    if todo:
        workers = workers or min(4, len(todo), os.cpu_count() or 1)
        log = build / "chapters.log"
        io.write_text(log, "")
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_worker_setup,
                                 initargs=(str(log),)) as pool:
            futures = {pool.submit(_execute, nb, _staged(stage, nb), cfg.name, results): nb for nb in todo}
            for future in tqdm(as_completed(futures), total=len(futures), desc="chapters", unit="chapter"):
                notebook = futures[future]
                try:
                    future.result()
                except ChapterError as err:
                    failures.append(str(err))
                    continue
                stamps[notebook.stem] = keys[notebook]
                io.write_json(stamps_path, stamps)
    if failures:
        raise ChapterError("\n".join(failures))
    # Sphinx rebuilds nothing when no page changed, and then skips copying the static files too
    return _jupyter_book(stage, build, rebuild_all=sources_changed)


def _staged(stage: Path, notebook: Path) -> Path:
    return stage / notebook.relative_to(paths.REPO_ROOT)


def _worker_setup(log_path: str) -> None:
    """Send a worker's output, and its kernels', to the build log; keep progress bars out of chapters."""
    os.environ["TQDM_DISABLE"] = "1"  # kernels inherit it: a bar in a chapter's output is noise on the page
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(log, 1)
    os.dup2(log, 2)


def _copy_sources(stage: Path) -> bool:
    """Copy the book's config and every non-notebook file of book/ (copy2 keeps mtimes for Sphinx);
    True if any of them changed."""
    changed = False
    for name in BOOK_FILES:
        changed |= _copy_if_changed(paths.REPO_ROOT / name, stage / name)
    for source in BOOK_DIR.rglob("*"):
        relative = source.relative_to(BOOK_DIR)
        if source.is_dir() or source.suffix == ".ipynb" or relative.parts[0] == "_build" or any(
                part.startswith(".") for part in relative.parts):
            continue
        changed |= _copy_if_changed(source, stage / "book" / relative)
    return changed


def _copy_if_changed(source: Path, target: Path) -> bool:
    if target.exists() and target.read_bytes() == source.read_bytes():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    with io.atomic_path(target) as tmp:
        shutil.copy2(source, tmp)
    return True


def _results_key(results: Path) -> str:
    """Names, sizes and modification times of every file under the results folder."""
    digest = hashlib.sha256(str(results).encode())
    for folder, dirs, files in os.walk(results):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder, name)
            stat = path.stat()
            digest.update(f"{path.relative_to(results)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _chapter_key(notebook: Path, cfg: StudyConfig, results: Path, results_key: str) -> str:
    """What a chapter's output depends on: its notebook, the library's code, the config and the results."""
    digest = hashlib.sha256(notebook.read_bytes())
    for module in sorted((paths.REPO_ROOT / "src" / "magiclib").rglob("*.py")):
        digest.update(module.read_bytes())
    digest.update(f"{cfg.name}|{config_hash(cfg)}|{results_key}".encode())
    return digest.hexdigest()


def _execute(notebook: Path, target: Path, preset: str, results: Path) -> None:
    """Run one chapter with papermill into the staging folder; a failure names the chapter and notebook."""
    import papermill

    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(str(notebook), str(target), kernel_name="python3", cwd=str(BOOK_DIR),
                                   parameters={"results_dir": str(results), "preset": preset},
                                   progress_bar=False)
    except papermill.PapermillExecutionError as err:
        raise ChapterError(
            f"chapter {notebook.stem} failed in cell {err.exec_count}: {err.ename}: {err.evalue}\n"
            f"the executed notebook, with the traceback, is {target}"
        ) from None
    _fold_parameters(target)


def _fold_parameters(notebook: Path) -> None:
    """Fold papermill's injected-parameters cell in the page: readers can open it to see what ran."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "hide-cell" not in tags:
            tags.append("hide-cell")
    io.write_text(notebook, nbformat.writes(nb))


def _jupyter_book(stage: Path, build: Path, rebuild_all: bool = False) -> Path:
    """Build HTML from the staged, executed book into build/html (every page with `rebuild_all`); the log
    goes to build/jupyter-book.log."""
    # through this interpreter, not a `jupyter-book` script that may belong to another environment
    command = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(stage),
               "--path-output", str(build.parent), *(["--all"] if rebuild_all else [])]
    with tqdm(total=1, desc="html", unit="book") as progress:
        done = subprocess.run(command, capture_output=True, text=True)
        progress.update()
    log = build / "jupyter-book.log"
    io.write_text(log, done.stdout + done.stderr)
    index = build / "html" / "index.html"
    if done.returncode or not index.exists():
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise NotReady(f"jupyter-book build failed (exit {done.returncode}); full log: {log}\n{tail}")
    return index
