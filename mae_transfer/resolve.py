"""One ordered pipeline resolves a transfer run's config, the same in both harnesses::

    config file -> entry (--init) -> backbone flags -> run length (--iters) -> data flags
        -> key=value overrides -> batch rule -> device fallbacks

``det.config`` and ``seg.config`` list their stages in this order and ``resolve`` runs them; a stage that can
move a number of the recipe card is tracked, so the card names what changed it (``changed_by``). The
overrides follow every flag, so an explicit ``key=value`` always wins; the batch rule follows the overrides
because it reads the global batch they may set. The rules both harnesses share (which config file, the
backbone flags, the run length check, the batch rule) live here once.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, NamedTuple

from .errors import ConfigError
from .paths import REPO_ROOT
from .recipes import VIT_SIZES, track_changes


class Stage(NamedTuple):
    """One step of the pipeline. ``apply`` changes the config in place; ``name`` (``--init mae``) is how the
    recipe card credits the numbers it moved, None for a stage that moves none (data paths, output dir)."""

    name: str | None
    apply: Callable[[], None]


def resolve(values: Callable[[], Mapping[str, Any]], stages: Iterable[Stage | None]) -> dict[str, str]:
    """Run ``stages`` in order (None: a stage these arguments skip); returns which stage changed each of the
    recipe card's ``values``."""
    changed_by: dict[str, str] = {}
    for stage in stages:
        if stage is None:
            continue
        if stage.name is None:
            stage.apply()
        else:
            track_changes(values, changed_by, stage.name, stage.apply)
    return changed_by


def load_config_file(
    args: argparse.Namespace, pattern: str, load: Callable[[str], Any], entry: Callable[[Any], Mapping]
) -> Any:
    """The config file: ``--config``, else the full-size one of ``--backbone``'s size (``pattern``), loaded
    by the harness's loader; one that claims a published recipe refuses a backbone of another size.
    ``entry``: the config's ``entry`` block."""
    args.config = config_for_backbone(args.config, pattern, args.backbone)
    if not Path(args.config).is_file():
        raise ConfigError(f"config file not found: {args.config}")
    cfg = load(args.config)
    if entry(cfg).get("recipe"):
        check_backbone_size(args.config, entry(cfg).get("size", "B"), args.backbone)
    return cfg


def run_length_stage(args: argparse.Namespace, set_run_length: Callable[[int], None]) -> Stage | None:
    """``--iters N``: the run ends at iteration N, every other iteration count in proportion."""
    if args.iters is None:
        return None
    if args.iters < 1:
        raise ConfigError(f"--iters must be at least 1, got {args.iters}")
    return Stage(f"--iters {args.iters}", lambda: set_run_length(args.iters))


def batch_stage(
    args: argparse.Namespace,
    recipe_batch: int,
    batch: Callable[[], tuple[int, int, str, str]],
    scale_lr: Callable[[float], None],
    scale_iterations: Callable[[float], None],
    note: Callable[[str], None],
) -> Stage:
    """The batch rule (``batch_rule``) on the global batch as the stages before it left it: ``batch()`` gives
    (global batch, processes, per-process batch, the recipe claimed); ``note`` receives the recipe card's
    line. With ``--batch-scaling linear``: lr x factor and, unless ``--iters`` set the run length, every
    iteration count / factor."""

    def apply() -> None:
        global_batch, world, per_process, recipe = batch()
        factor, line = batch_rule(
            global_batch,
            world,
            per_process,
            recipe,
            recipe_batch,
            args.batch_scaling,
            args.print_recipe,
            args.iters is not None,
        )
        note(line)
        if factor != 1.0:
            scale_lr(factor)
            if args.iters is None:  # --iters is the run length asked for
                scale_iterations(1 / factor)

    return Stage("--batch-scaling linear", apply)


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
    """``--config`` as given; else, for a full-size ViT (or no ``--backbone``: ViT-B), the recipe of its
    size (``pattern`` has a ``{size}`` field: b, l, ...; ViT-B's when the size has none, which the size
    check then refuses); else the one shipped config that builds ``--backbone`` (a miniature on the shared
    data). A backbone that no shipped config builds, or several do, is refused, naming the configs that fit:
    a toy encoder never gets a full-size recipe."""
    if config:
        return config
    size = VIT_SIZES.get(backbone or "mae_vit_b")
    if size is not None:
        path = pattern.format(size=size.lower())
        return _from_cwd(path if (REPO_ROOT / path).is_file() else pattern.format(size="b"))
    from .backbone import check_backbone_name

    check_backbone_name(backbone)  # an unknown name is the error to show, not a missing config
    fits = shipped_configs(Path(pattern).parts[1], backbone)  # configs/<task>/...
    if len(fits) == 1:
        return _from_cwd(fits[0])
    which = f"configs that build it: {', '.join(fits)}" if fits else "no shipped config builds it"
    raise ConfigError(
        f"--backbone {backbone} is not a full-size ViT ({', '.join(VIT_SIZES)}) and {which}: pass --config"
    )


def _from_cwd(shipped: str) -> str:
    """A shipped config's path (relative to the repository) as the current directory reaches it: as is in
    the repository's root, else absolute (a run started elsewhere)."""
    path = REPO_ROOT / shipped
    return shipped if Path(shipped).resolve() == path.resolve() else str(path)


def shipped_configs(task: str, backbone: str | None) -> list[str]:
    """The configs under ``configs/<task>/`` that name ``backbone`` (a quoted string), relative to the repo:
    a config names its backbone once, by its registered name."""
    quoted = (f'"{backbone}"', f"'{backbone}'")
    found = []
    for path in sorted((REPO_ROOT / "configs" / task).rglob("*.py")):
        text = path.read_text()
        if any(q in text for q in quoted):
            found.append(str(path.relative_to(REPO_ROOT)))
    return found


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
