"""Results cache: a trial's identity, and the finished run of the same identity anywhere in the storage.

Identity = sha256 of (the initialization checkpoint's content, the resolved recipe card the harness prints
for the trial's exact arguments, those arguments without the output dir and checkpoint path, the code
version). Renaming or moving a checkpoint keeps its identity; changing a number the card shows, the data
arguments or any source file gives a new one.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..paths import REPO_ROOT
from .config import TOOLS

# arguments that say where a run writes or reads its checkpoint, not what it computes
_PATH_FLAGS = ("--output-dir", "--work-dir", "--weights")
CODE_DIRS = ("mae_transfer", "backbones", "tools", "configs")


@functools.lru_cache(maxsize=None)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_sha256(path: str) -> str:
    """The content hash of a checkpoint file ('random' without one); memoized per (path, size, mtime)."""
    if not path:
        return "random"
    p = Path(path)
    if not p.is_file():
        return f"missing:{p}"  # the run fails with its own one-line error; such a failure is never reused
    st = p.stat()
    return _file_sha256(str(p.resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """sha256 over the project's Python sources and configs (works without git, counts uncommitted edits)."""
    digest = hashlib.sha256()
    for d in CODE_DIRS:
        for f in sorted((REPO_ROOT / d).rglob("*.py")):
            digest.update(str(f.relative_to(REPO_ROOT)).encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def recipe_card(cmd: list[str]) -> dict[str, Any] | None:
    """The recipe card the harness resolves for ``cmd`` (a trial command of ``runner.trial_command``): its
    ``--print-recipe json``, run in this process (the worker has the frameworks imported; a new process would
    spend seconds importing them per trial); None when the harness refuses the arguments (the run itself will
    fail and say why)."""
    from ..cli import harness_tool

    tool = _tool_index(cmd)
    harness = next(task for task, path in TOOLS.items() if Path(cmd[tool]).name == Path(path).name)
    printed, here = io.StringIO(), os.getcwd()
    os.chdir(REPO_ROOT)  # where the trial runs (toolrun): its relative paths name the same files
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()):
            harness_tool([*cmd[tool + 1 :], "--print-recipe", "json"], "", harness)
    except (UserError, OSError):
        return None
    except SystemExit as e:
        # 2 is argparse's refusal; any other code ends this process (a worker's SIGTERM handler exits 143
        # from wherever it lands, often here, right after a claim: swallowed, the worker ran on and the
        # stopped search waited for it)
        if e.code != 2:
            raise
        return None
    finally:
        os.chdir(here)
    return json.loads(next(ln for ln in reversed(printed.getvalue().splitlines()) if ln.startswith("{")))


def trial_identity(cmd: list[str], weights: str, card: dict[str, Any]) -> str:
    """The identity of the run ``cmd`` would make, given its recipe ``card``."""
    tool = _tool_index(cmd)
    kept, skip = [], False
    for a in cmd[tool + 1 :]:
        if skip:
            skip = False
        elif a in _PATH_FLAGS:
            skip = True
        elif a != "--resume":
            kept.append(a)
    what = {
        "checkpoint": checkpoint_sha256(weights),
        "recipe": {k: card[k] for k in ("task", "claims", "rows")},
        "tool": Path(cmd[tool]).name,
        "args": kept,
        "code": code_version(),
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def _tool_index(cmd: list[str]) -> int:
    return next(i for i, a in enumerate(cmd) if a.endswith(".py") and "tools/" in a)
