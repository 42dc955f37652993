"""Warm notebook kernels: run many step notebooks one after another in one kernel, paying its start-up once.

A step notebook imports torch, transformers, pandas and altair; in a fresh kernel per step that start-up (a
kernel process, then seconds of imports) is most of a short step's cost. A `WarmKernel` starts one kernel with
its first notebook and executes every later notebook in the same kernel through papermill, so each executed
notebook is still the step's full record.

Between notebooks the kernel's namespace is cleared (every name a notebook defined, and the output cache), so no
variable of one step is seen by the next; imported modules stay loaded, which is the point. What modules keep is deterministic
by design (every run seeds its own generators, caches are pure functions), so a step computes the same
numbers in a warm kernel as in a fresh one (tests/test_kernels.py). A kernel that died is replaced by a
fresh one, and the kernel is shut down when the process that owns it exits.
"""

from __future__ import annotations

import atexit
from pathlib import Path

import papermill
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.log import logger

ENGINE = "magiclib-warm"
# Every name a notebook defined goes, and the output cache with it; what IPython itself put there stays. No
# gc.collect(): with torch loaded a full collection takes seconds, and the automatic one frees what cycles hold.
RESET = """
_shell = get_ipython()
for _name in [n for n in _shell.user_ns if not n.startswith("_") and n not in _shell.user_ns_hidden]:
    del _shell.user_ns[_name]
_shell.user_ns["_oh"].clear()
_shell.user_ns.update({"_": "", "__": "", "___": ""})
"""


class _WarmEngine(NBClientEngine):
    """papermill's nbclient engine, on a kernel manager it does not own (so the kernel outlives the run), and
    closing its client's channels after each run (nbclient leaves them open for a kernel it does not own)."""

    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None, stderr_file=None,
                                 start_timeout=60, execution_timeout=None, km=None, **kwargs):
        kwargs = {k: v for k, v in kwargs.items() if k not in ("input_path", "timeout", "startup_timeout")}
        client = PapermillNotebookClient(nb_man, km=km, timeout=execution_timeout, startup_timeout=start_timeout,
                                         kernel_name=kernel_name, log=logger, log_output=log_output,
                                         stdout_file=stdout_file, stderr_file=stderr_file, **kwargs)
        try:
            return client.execute()
        finally:
            if client.kc is not None:
                client.kc.stop_channels()


papermill_engines.register(ENGINE, _WarmEngine)


class WarmKernel:
    """One kernel that executes notebook after notebook (see the module text)."""

    def __init__(self, kernel_name: str = "python3"):
        self.kernel_name = kernel_name
        self.km = None
        self.runs = 0  # notebooks executed by the current kernel
        atexit.register(self.shutdown)

    def execute(self, notebook: str | Path, output: str | Path, parameters: dict, cwd: str | Path) -> None:
        """papermill.execute_notebook in this kernel; raises what papermill raises (the output holds the cells)."""
        from jupyter_client import AsyncKernelManager
        from jupyter_core.utils import run_sync

        if self.km is not None and not run_sync(self.km.is_alive)():
            self.shutdown()  # died (or was killed) during the last notebook: start afresh
        if self.km is None:
            self.km, self.runs = AsyncKernelManager(kernel_name=self.kernel_name), 0  # nbclient starts it
        elif self.runs:
            self._reset()
        self.runs += 1
        papermill.execute_notebook(str(notebook), str(output), parameters=parameters, kernel_name=self.kernel_name,
                                   progress_bar=False, cwd=str(cwd), engine_name=ENGINE, km=self.km)

    def _reset(self) -> None:
        client = self.km.blocking_client()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=60)
            reply = client.execute_interactive(RESET, store_history=False, timeout=60, output_hook=lambda _: None)
        finally:
            client.stop_channels()
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"could not reset the warm kernel's namespace: {reply['content']}")

    def shutdown(self) -> None:
        from jupyter_core.utils import run_sync

        if self.km is not None:
            if self.km.has_kernel:
                run_sync(self.km.shutdown_kernel)(now=True)
            self.km = None
