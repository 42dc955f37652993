"""What runs inside one Slurm job: a step's `magic` command in a child process, checkpointed and requeued
when Slurm warns of the time limit. Kept to the standard library (and psutil), because every job imports it
before its step starts: the step's own imports (torch, transformers) happen once, in the child.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import threading

import psutil

LAST_SECONDS = 30  # of the warning time, kept for requeueing after the step has checkpointed


class StepTask:
    """One job or array task: run `command` in a child process and wait for it.

    On SIGUSR2 (Slurm's warning, `slurm.signal_delay_s` before the time limit) submitit calls `checkpoint`:
    the signal goes on to the child and its descendants (a training loop writes a checkpoint at the end of its
    step and stops), and the task is requeued to resume in a new job. SIGTERM (scancel, requeue, preemption)
    is passed on the same way, and the task waits for the step to finish its checkpoint. The child ignores
    SIGUSR2 outside the training loop, so a step that cannot checkpoint (data, scoring) runs on until the
    grace time is up and is started again by the requeued job.
    """

    def __init__(self, command: list[str], threads: int, signal_delay_s: float):
        self.command, self.threads = command, threads
        self.grace_s = max(10.0, signal_delay_s - LAST_SECONDS)
        self._child: subprocess.Popen | None = None
        self._signalled: list[psutil.Process] = []

    def __getstate__(self) -> dict:  # pickled into the job: no live processes
        return {**self.__dict__, "_child": None, "_signalled": []}

    def __call__(self) -> None:
        env = {**os.environ, "MAGIC_THREADS": str(self.threads), "PYTHONUNBUFFERED": "1"}
        self._child = subprocess.Popen(self.command, env=env, preexec_fn=_ignore_usr2)
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, self._pass_on) if main else None
        try:
            code = self._child.wait()
            psutil.wait_procs(self._signalled, timeout=self.grace_s)  # a kernel still writing its checkpoint
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        if code:
            raise StepFailed(f"`{shlex.join(self.command)}` exited with code {code}")

    def _pass_on(self, signum: int, frame) -> None:
        self._signalled = signal_tree(self._child.pid, signum)

    def checkpoint(self):
        """Have the child checkpoint and stop (SIGUSR2), give it the grace time, then requeue this task."""
        import submitit

        if self._child is not None and self._child.poll() is None:
            print(f"magic: time limit near; asking {shlex.join(self.command[:5])} to checkpoint", flush=True)
            processes = signal_tree(self._child.pid, signal.SIGUSR2)
            _, alive = psutil.wait_procs(processes, timeout=self.grace_s)
            for process in alive:  # not in a training loop: the requeued job starts the step again
                process.kill()
        return submitit.helpers.DelayedSubmission(self)


class StepFailed(RuntimeError):
    """A task's command exited with an error; its log holds the error line."""


def _ignore_usr2() -> None:
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)  # the training loop installs its own handler


def signal_tree(pid: int, signum: int) -> list[psutil.Process]:
    """Send `signum` to a process and all its descendants (a notebook kernel runs in a session of its own)."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:  # it ended meanwhile
        return []
    for process in processes:
        try:
            process.send_signal(signum)
        except psutil.NoSuchProcess:
            pass
    return processes
