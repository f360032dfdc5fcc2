"""The commands a pretraining run prints at its end: its encoder through detection, segmentation and a
linear probe, each runnable as printed from where the user is."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from ..backbone import backbone_for
from ..models.mae import encoder_arch
from ..paths import REPO_ROOT
from ..recipes import VIT_SIZES
from ..resolve import shipped_configs
from .config import PretrainConfig

# (task, tool, the paper's recipe of a ViT size, the data flags it needs, what it trains)
TRANSFERS = (
    ("det", "train_det.py", "mask_rcnn_vit_{}_100ep.py", "--coco-root /path/to/datasets", "Mask R-CNN"),
    (
        "seg",
        "train_seg.py",
        "upernet_vit_{}_512x512_160k_ade20k.py",
        "--data-root /path/to/ADEChallengeData2016",
        "UperNet",
    ),
)


def typed(path: Path | str) -> str:
    """``path`` as the user types it here: relative to the working directory when under it."""
    path = Path(path).absolute()
    try:
        path = path.relative_to(Path.cwd())
    except ValueError:
        pass
    return shlex.quote(str(path))


def next_commands(cfg: PretrainConfig, encoder: Path) -> str:
    """What to run with the encoder of ``cfg``'s model. A full-size ViT gets the paper's recipe of its size
    (with the data flags it needs), a miniature one the shipped miniature config that builds its backbone
    (it runs on ../shared/data as printed); an encoder of neither gets YOUR_CONFIG. The linear probe: the
    paper's for a full-size ViT, the shipped one of the pretraining model for a miniature, else none."""
    arch = encoder_arch(cfg.model) | cfg.model_overrides
    name = backbone_for(arch["embed_dim"], arch["depth"], arch["patch_size"])
    size = VIT_SIZES.get(name or "", "").lower()
    python = typed(sys.executable)
    weights = f"--weights {typed(encoder)} --init mae"
    lines = ["next, with this encoder:"]
    for task, tool, recipe, data, what in TRANSFERS:
        configs = REPO_ROOT / "configs" / task
        if size and (configs / recipe.format(size)).is_file():
            run = f"--backbone {name} {weights} {data}"
        else:
            fits = shipped_configs(task, name) if name and not size else []
            run = f"--config {typed(REPO_ROOT / fits[0]) if fits else 'YOUR_CONFIG'} {weights}"
        lines.append(f"  {python} {typed(REPO_ROOT / 'tools' / tool)} {run}     # {what}")
    probes = [c for c in shipped_configs("cls", cfg.model) if "linprobe" in c]
    if size:  # the paper's linear probe on ImageNet (Table 10's protocol)
        run = (
            f"--config {typed(REPO_ROOT / 'configs/cls/linprobe_vit_base.py')} model={cfg.model} "
            f"weights={typed(encoder)} data_path=/path/to/imagenet"
        )
    elif probes and not cfg.model_overrides:
        run = f"--config {typed(REPO_ROOT / probes[0])} weights={typed(encoder)}"
    else:
        return "\n".join(lines)  # no probe config fits this encoder
    lines.append(f"  {python} {typed(REPO_ROOT / 'tools/eval_cls.py')} {run}     # linear probe")
    return "\n".join(lines)
