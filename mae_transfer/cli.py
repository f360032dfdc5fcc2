"""Shared command-line plumbing for the thin ``tools/*.py`` entry points."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import ConfigError, UserError
from .paths import REPO_ROOT
from .recipes import INITS, VIT_SIZES


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


def batch_rule(
    global_batch: int,
    world: int,
    per_process: str,
    recipe: str,
    recipe_batch: int,
    scaling: str,
    print_only: bool = False,
    iters_given: bool = False,
) -> tuple[float, str]:
    """The global batch against the recipe's: (lr factor, the note for the recipe card). A config claiming no
    recipe (``recipe`` empty) keeps its numbers; one claiming a recipe at another batch is refused unless
    ``scaling`` is 'linear' (lr x factor, iteration counts / factor unless ``iters_given``: --iters sets
    them); ``print_only`` (--print-recipe) puts the refusal in the note instead."""
    note = f"global batch {global_batch} = {world} process(es) x {per_process}"
    if not recipe:
        return 1.0, f"{note} (this config's own: it claims no recipe)"
    if global_batch == recipe_batch:
        return 1.0, f"{note} = the recipe's"
    factor = global_batch / recipe_batch
    if scaling != "linear":
        refusal = (
            f"global batch {global_batch} ({note.split(' = ', 1)[1]}) is not the recipe's {recipe_batch}: "
            f"pass --batch-scaling linear (lr x {factor:g}, iterations x {1 / factor:g}), or set the batch "
            f"so that it is {recipe_batch}"
        )
        if print_only:
            return 1.0, f"a run would stop: {refusal}"
        raise ConfigError(refusal)
    iters = "iterations as --iters sets them" if iters_given else f"iterations x {1 / factor:g}"
    return (
        factor,
        f"{note}, not the recipe's {recipe_batch}: lr x {factor:g}, {iters} (--batch-scaling linear)",
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


def apply_backbone_args(node: Any, args: argparse.Namespace) -> None:
    """Write --backbone / --weights / --source into a backbone config node (LazyConfig or mmengine). A
    backbone with a fixed set of keywords (``timm:<name>``) gets only those of the node's (a config written
    for the ViT holds window sizes, taps, ...)."""
    from .backbone import backbone_keys

    if args.backbone:
        node.name = args.backbone
        keys = backbone_keys(args.backbone)
        if keys is not None:
            for key in [
                k
                for k in node
                if k not in keys | {"name", "weights", "source", "type", "_target_", "out_levels"}
            ]:
                node.pop(key)
    if args.weights is not None:
        node.weights = args.weights
    if args.source:
        node.source = args.source


def config_for_backbone(config: str | None, pattern: str, backbone: str | None) -> str:
    """``--config`` as given, else the full-size config of ``--backbone``'s ViT size (``pattern`` has a
    ``{size}`` field: b, l, ...); ViT-B's when the backbone has no sized config."""
    if config:
        return config
    size = VIT_SIZES.get(backbone or "", "B").lower()
    path = pattern.format(size=size)
    return path if (REPO_ROOT / path).is_file() or Path(path).is_file() else pattern.format(size="b")


def check_backbone_size(config: str, config_size: str, backbone: str | None) -> None:
    """A full-size config holds one ViT size's numbers (drop path, activation checkpointing, taps, output
    dir): ``--backbone`` of another size is refused, naming the config to use."""
    size = VIT_SIZES.get(backbone or "")
    if size is None or size == config_size:
        return
    right = re.sub(r"_vit_[a-z]_", f"_vit_{size.lower()}_", config)
    hint = (
        f"use --config {right}"
        if right != config and ((REPO_ROOT / right).is_file() or Path(right).is_file())
        else f"write a ViT-{size} variant of it"
    )
    raise ConfigError(
        f"--backbone {backbone} is ViT-{size} but {config} holds the ViT-{config_size} recipe "
        f"(drop path, activation checkpointing, output dir); {hint}"
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
