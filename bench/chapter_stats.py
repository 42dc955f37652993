"""How much of each book chapter is code, and how much of its prose lives in code strings.

Counts, per chapter notebook: code lines (non-blank lines of code cells, the papermill parameters cell
included), `def`s, the largest code cell in lines, words in the string literals of code cells (f-string
text included, the `{...}` expressions left out) and words in markdown cells (glue references left out). A chapter reads as narrative
when its markdown words outweigh its code-string words. With `--rev` it reads the notebooks as committed
at that git revision, to compare a change with what came before.

    python bench/chapter_stats.py [--rev HEAD] [book/rq1_persistence.ipynb ...]
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
# myst-nb glue references ({glue:md}`name` and the glue:md directive) are placeholders, not prose
GLUE = re.compile(r"\{glue(:\w+)?\}`[^`]*`|```\{glue(:\w+)?\}[^`]*```")


def string_words(tree: ast.AST) -> int:
    """Words in the literal text of every string constant (f-string parts included) in `tree`."""
    return sum(len(WORD.findall(node.value)) for node in ast.walk(tree)
               if isinstance(node, ast.Constant) and isinstance(node.value, str))


def chapter_stats(nb: nbformat.NotebookNode) -> dict:
    """The counts of one notebook (see the module docstring)."""
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    lines = [len([line for line in source.splitlines() if line.strip()]) for source in code]
    trees = [ast.parse(_python(source)) for source in code]
    return {"code lines": sum(lines), "defs": sum(isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                                                  for tree in trees for node in ast.walk(tree)),
            "largest cell": max(lines, default=0), "code-string words": sum(map(string_words, trees)),
            "markdown words": sum(len(WORD.findall(GLUE.sub("", c.source))) for c in nb.cells
                                  if c.cell_type == "markdown")}


def _python(source: str) -> str:
    """A cell's source without IPython's magics and shell escapes, which `ast` cannot parse."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def _read(path: Path, rev: str | None) -> nbformat.NotebookNode:
    if rev is None:
        return nbformat.read(path, as_version=4)
    text = subprocess.run(["git", "show", f"{rev}:{path.resolve().relative_to(ROOT)}"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout
    return nbformat.reads(text, as_version=4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every book/*.ipynb")
    parser.add_argument("--rev", help="read the notebooks as committed at this git revision")
    args = parser.parse_args()
    notebooks = args.notebooks or sorted((ROOT / "book").glob("*.ipynb"))
    columns = ("code lines", "defs", "largest cell", "code-string words", "markdown words")
    print(f"| chapter | {' | '.join(columns)} |\n|---|{'---:|' * len(columns)}")
    total = dict.fromkeys(columns, 0)
    for path in notebooks:
        row = chapter_stats(_read(path, args.rev))
        total = {k: max(total[k], row[k]) if k == "largest cell" else total[k] + row[k] for k in columns}
        print(f"| {path.stem} | {' | '.join(str(row[k]) for k in columns)} |")
    print(f"| **all** | {' | '.join(str(total[k]) for k in columns)} |")


if __name__ == "__main__":
    sys.exit(main())
