"""A warm kernel runs notebook after notebook: imports stay loaded, variables do not carry over, records are kept."""

import json

import nbformat
import pytest

from magiclib.kernels import WarmKernel


def _notebook(path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("run = 0")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        "import os, sys\n"
        "leaked = 'from_last_run' in dir()\n"
        "from_last_run = run\n"
        "warm = 'json' in sys.modules and getattr(sys.modules['json'], 'marked', False)\n"
        "import json\n"
        "json.marked = True\n"
        "print(leaked, warm, os.getpid())")]
    nbformat.write(nb, path)
    return path


def _printed(path) -> list[str]:
    text = json.loads(path.read_text())["cells"][-1]["outputs"][0]["text"]  # after papermill's injected cell
    return "".join(text).split()


@pytest.fixture
def kernel():
    warm = WarmKernel()
    yield warm
    warm.shutdown()


def test_later_notebooks_reuse_the_kernel_with_a_clean_namespace(tmp_path, kernel):
    source = _notebook(tmp_path / "step.ipynb")
    outputs = [tmp_path / f"run{i}.ipynb" for i in range(3)]
    for i, out in enumerate(outputs):
        kernel.execute(source, out, {"run": i}, tmp_path)
    printed = [_printed(out) for out in outputs]
    assert [p[0] for p in printed] == ["False"] * 3  # nothing of the previous step is seen
    assert [p[1] for p in printed] == ["False", "True", "True"]  # the modules it imported are still loaded
    assert len({p[2] for p in printed}) == 1  # one kernel process
    assert kernel.runs == 3


def test_a_dead_kernel_is_replaced(tmp_path, kernel):
    source = _notebook(tmp_path / "step.ipynb")
    kernel.execute(source, tmp_path / "a.ipynb", {"run": 0}, tmp_path)
    first = _printed(tmp_path / "a.ipynb")[2]
    from jupyter_core.utils import run_sync

    run_sync(kernel.km.shutdown_kernel)(now=True)
    kernel.execute(source, tmp_path / "b.ipynb", {"run": 1}, tmp_path)
    assert _printed(tmp_path / "b.ipynb")[2] != first and kernel.runs == 1
