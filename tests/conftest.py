"""Shared test set-up: offline hub, one torch thread per test process, the gpu marker."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# `auto` precision is decided by timing this machine's CPU; pinned here so no test depends on the CPU
# (tests/test_precision.py unsets it to test the measured decision with injected timings).
os.environ.setdefault("MAGIC_PRECISION", "fp32")


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory):
    """The smoke study's full grid, run once per test session through the real CLI.

    It runs in-process (`--executor inline`, the same step functions): 72 papermill kernels would cost
    minutes of start-up alone. The papermill path is covered by test_grid on a one-run grid.
    """
    import subprocess
    import sys

    results = tmp_path_factory.mktemp("smoke") / "results"
    subprocess.run([sys.executable, "-m", "magiclib.cli", "study", "--preset", "smoke", "--results", str(results),
                    "--executor", "inline"], check=True)
    return results
