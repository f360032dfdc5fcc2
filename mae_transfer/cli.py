"""Shared command-line plumbing for the thin ``tools/*.py`` entry points."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import UserError
from .recipes import INITS


def run_tool(main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None) -> None:
    """Run ``main``; a UserError becomes one line on stderr and exit status 2 (no traceback)."""
    try:
        main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except OSError as e:
        if e.filename is None:  # not about a file the user named: a bug keeps its traceback
            raise
        print(f"error: {e.filename}: {e.strerror or e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None


def add_slurm_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("Slurm (submitit)")
    g.add_argument(
        "--slurm", action="store_true", help="submit to Slurm through submitit instead of running here"
    )
    g.add_argument("--nodes", type=int, default=1)
    g.add_argument("--gpus-per-node", type=int, default=8)
    g.add_argument("--partition", default=None)
    g.add_argument("--timeout-min", type=int, default=4320)
    g.add_argument("--cpus-per-task", type=int, default=10)
    g.add_argument("--slurm-folder", default=None, help="submitit logs (default OUTPUT_DIR/submitit)")


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def flat_config_tool(
    argv: Sequence[str] | None, doc: str, config_cls: type, run: Callable[[Any], Any], config_dir: str
) -> None:
    """The pretrain / eval_cls command line: ``--config FILE``, ``key=value`` overrides, ``--resume``,
    ``--print-config``, and ``--slurm`` to submit the same run through submitit."""
    from .config import apply_overrides, load_config

    parser = argparse.ArgumentParser(
        description=doc,
        formatter_class=HelpFormatter,
        epilog="config keys (override with key=value):\n" + config_cls.help_text(),
    )
    parser.add_argument(
        "--config", default=None, help=f"config file under {config_dir} (default: the dataclass defaults)"
    )
    parser.add_argument(
        "--resume", default=None, help="checkpoint path, or 'auto' (OUTPUT_DIR/checkpoint-last.pth)"
    )
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument(
        "--print-recipe",
        action="store_true",
        help="print the recipe card (each result-deciding number, its value and source) and exit",
    )
    add_slurm_args(parser)
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = parser.parse_intermixed_args(argv)  # overrides may come before or after flags
    cfg = load_config(args.config, expect=config_cls) if args.config else config_cls()
    cfg = apply_overrides(cfg, args.overrides)
    if args.resume:
        cfg = cfg.replace(resume=args.resume)
        cfg.validate()
    if args.print_config:
        print("\n".join(f"{k}={v!r}" for k, v in cfg.to_dict().items()))
        return
    if args.print_recipe:
        world = args.nodes * args.gpus_per_node if args.slurm else int(os.environ.get("WORLD_SIZE", "1"))
        print(cfg.recipe_card(world).format())
        return
    if args.slurm:
        from .launch import submit_slurm

        job = submit_slurm(
            run,
            cfg,
            folder=args.slurm_folder or Path(cfg.output_dir) / "submitit",
            nodes=args.nodes,
            gpus_per_node=args.gpus_per_node,
            partition=args.partition,
            timeout_min=args.timeout_min,
            cpus_per_task=args.cpus_per_task,
        )
        print(f"submitted Slurm job {job.job_id}")
        return
    run(cfg)


def add_schedule_args(parser: argparse.ArgumentParser, recipe_batch: int) -> None:
    parser.add_argument(
        "--iters",
        type=int,
        default=None,
        help="run length in iterations: sets the last iteration, and scales every other iteration "
        "count (lr schedule, warmup, evaluation, checkpoint and log intervals) in proportion; "
        "key=value overrides still set any of them",
    )
    parser.add_argument(
        "--batch-scaling",
        choices=["refuse", "linear"],
        default="refuse",
        help=f"a config that claims a published recipe at a global batch other than the recipe's "
        f"({recipe_batch}): refuse (default), or linear = lr x batch/{recipe_batch} and every "
        f"iteration count (schedule, evaluation, checkpoints) x {recipe_batch}/batch, so the "
        f"run sees the recipe's epochs (detectron2's auto_scale_workers rule)",
    )


def add_entry_args(
    parser: argparse.ArgumentParser, config_help: str, table: str, init_sets: str, recipe_batch: int
) -> None:
    """The arguments both transfer harnesses share: the config, the backbone, the run length, the table
    entry (``--init``) and the recipe card."""
    parser.add_argument("--config", default=None, help=config_help)
    add_backbone_args(parser)
    add_schedule_args(parser, recipe_batch)
    parser.add_argument(
        "--init",
        default=None,
        choices=INITS,
        help=f"{table} entry: its {init_sets} on a config that claims a published recipe (and BEiT's "
        "backbone needs); the recipe card shows what changed",
    )
    parser.add_argument(
        "--print-recipe",
        nargs="?",
        const="text",
        choices=["text", "json"],
        help="print the recipe card (json: its rows as recipe.json holds them) and exit",
    )


def add_backbone_args(parser: argparse.ArgumentParser) -> None:
    """The backbone flags both harnesses share (applied to the config by ``apply_backbone_args``)."""
    parser.add_argument("--backbone", default=None, help="registered backbone name (or module:name)")
    parser.add_argument(
        "--weights", default=None, help="backbone initialization checkpoint ('' = random init)"
    )
    parser.add_argument(
        "--source", default=None, help="checkpoint format: auto | vit | mae | supervised | mocov3 | beit"
    )


def harness_tool(argv: Sequence[str] | None, doc: str, harness: str) -> None:
    """train_det / train_seg: the harness's own arguments, with the registered backbones in ``--help``."""
    import importlib

    from .backbone import registered_backbones
    from .console import filter_harmless_warnings

    filter_harmless_warnings()  # before the frameworks are imported: some warn at import
    module = importlib.import_module(f"mae_transfer.{harness}.train")
    parser = argparse.ArgumentParser(
        description=doc,
        formatter_class=HelpFormatter,
        epilog="registered backbones: " + ", ".join(registered_backbones()),
    )
    module.add_args(parser)
    module.run(parser.parse_intermixed_args(argv))  # overrides may come before or after flags
