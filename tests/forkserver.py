"""The suite's tool runs without their start-up cost.

A tool process spends 4-5 s importing torch, torchvision (which imports torch._dynamo), timm, detectron2 and
mmengine before it reads its arguments (7-8 s beside the other pytest worker); the suite starts ~100 tools.
One server per pytest worker imports them once, then forks a child per run that becomes the tool: a session
of its own, the run's working directory and environment, stdin from /dev/null, stdout / stderr into files,
``sys.argv`` as given, and ``tools/NAME.py`` run as ``__main__``. It ends like Python ends a script (exit
status, atexit handlers, a traceback for an uncaught exception). What differs from a new process is what
happened at import time, before the run: a test of import-time behaviour (warnings printed at import, an
environment that changes what is imported) runs a real process (``run_tool(..., fresh=True)``).
"""

from __future__ import annotations

import importlib
import json
import os
import queue
import runpy
import signal
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

# what the tools import (most before they read their arguments)
PRELOAD = (
    "torch",
    "torchvision",
    "timm",
    "detectron2.engine",
    "detectron2.data",
    "mmengine.runner",
    "pycocotools.cocoeval",
    "mae_transfer.cli",
    "mae_transfer.det.train",
    "mae_transfer.seg.train",
    "mae_transfer.pretrain.engine",
    "mae_transfer.cls.engine",
    "mmseg.models",  # importable once mae_transfer.seg provided mmcv.ops
    "matplotlib.pyplot",
    "torch.utils.tensorboard",
    "optuna",
)


class ForkServer:
    """The client: ``run`` one tool in a child of the server, like ``subprocess.run`` with a timeout."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self._log = tempfile.NamedTemporaryFile(prefix="forkserver_", suffix=".log", delete=False)
        self._proc = subprocess.Popen(
            [sys.executable, __file__],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self._lock = threading.Lock()
        self._replies: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self._proc.stdout:
            self._replies.put(line)
        self._replies.put("")  # the server ended

    def _reply(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The server's next line; None when ``timeout`` passed first."""
        try:
            line = self._replies.get(timeout=timeout)
        except queue.Empty:
            return None
        if not line:
            raise RuntimeError(f"the fork server died: {Path(self._log.name).read_text()[-3000:]}")
        return json.loads(line)

    def run(
        self, argv: list[str], cwd: Path, env: dict[str, str], timeout: float
    ) -> subprocess.CompletedProcess:
        """``python ARGV`` (``argv[0]`` a script) in ``cwd`` with exactly ``env``; on a timeout its whole
        process group is killed and ``subprocess.TimeoutExpired`` raised."""
        with self._lock, tempfile.TemporaryDirectory(prefix="forkserver_") as tmp:
            out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
            request = {"argv": argv, "cwd": str(cwd), "env": env, "stdout": str(out), "stderr": str(err)}
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            pid = self._reply()["pid"]
            done = self._reply(timeout)
            if done is None:
                os.killpg(pid, signal.SIGKILL)
                self._reply()
                raise subprocess.TimeoutExpired([sys.executable, *argv], timeout)
            return subprocess.CompletedProcess(
                [sys.executable, *argv],
                done["returncode"],
                out.read_text(errors="replace"),
                err.read_text(errors="replace"),
            )

    def close(self) -> None:
        self._proc.stdin.close()  # the server's loop ends at end of input
        self._proc.wait()
        os.unlink(self._log.name)


def _serve() -> dict[str, Any] | None:
    """Import PRELOAD, then answer each request line: fork, reply the child's pid, wait, reply its exit
    status. In the child, return its request."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # import-time warnings are the business of tests with real processes
        for module in PRELOAD:
            importlib.import_module(module)
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            return request
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}), flush=True)
    return None


def _become(request: dict[str, Any]) -> str:
    """Turn this forked child into the requested run; returns the script to run as ``__main__``."""
    os.setsid()  # a group of its own: a timeout kills it with its data-loader workers and children
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)  # also closes the request channel
    os.close(null)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(f, fd)  # also closes the reply channel
        os.close(f)
    if "OMP_NUM_THREADS" in os.environ:  # read by torch when it was imported, in the server
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    sys.argv = list(request["argv"])
    sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0]))
    return sys.argv[0]


if __name__ == "__main__":
    job = _serve()
    if job is not None:
        runpy.run_path(_become(job), run_name="__main__")
