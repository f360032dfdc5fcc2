"""Shared command-line plumbing for the thin ``tools/*.py`` entry points."""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from .errors import UserError


def run_tool(main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None) -> None:
    """Run ``main``; a UserError becomes one line on stderr and exit status 2 (no traceback)."""
    try:
        main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None


def add_slurm_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("Slurm (submitit)")
    g.add_argument("--slurm", action="store_true", help="submit to Slurm through submitit instead of running here")
    g.add_argument("--nodes", type=int, default=1)
    g.add_argument("--gpus-per-node", type=int, default=8)
    g.add_argument("--partition", default=None)
    g.add_argument("--timeout-min", type=int, default=4320)
    g.add_argument("--cpus-per-task", type=int, default=10)
    g.add_argument("--slurm-folder", default=None, help="submitit logs (default OUTPUT_DIR/submitit)")


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass
