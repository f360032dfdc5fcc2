"""``tools/predict.py``: predictions of a trained run drawn on images (detection: ``det.predict``,
segmentation: ``seg.predict``).

A run directory tells everything: ``recipe.json`` the task, the config dump (detectron2 ``config.yaml`` /
mmengine ``<config>.py``) the model and test-time resize, the dataset the classes. Checkpoints are read
through the weights_only loader.
"""

from __future__ import annotations

import glob
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from PIL import Image

from .errors import CheckpointError, ConfigError, DataError
from .preview import read_rgb

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def find_run(path: str | Path) -> tuple[str, Path, Path]:
    """(task 'det' | 'seg', run dir, checkpoint) for a run dir or a checkpoint inside one."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"run dir or checkpoint not found: {path}")
    run = path if path.is_dir() else path.parent
    card = run / "recipe.json"
    if not card.is_file():
        raise ConfigError(f"{run} holds no recipe.json: not a run directory of train_det.py / train_seg.py")
    task = json.loads(card.read_text()).get("task", "")
    kind = "det" if task.startswith("detection") else "seg" if task.startswith("segmentation") else None
    if kind is None:
        raise ConfigError(
            f"{run} is a {task or 'unknown'} run; predictions are drawn for detection and segmentation runs"
        )
    if path.is_file():
        return kind, run, path
    last = run / "last_checkpoint"
    named = run / last.read_text().strip() if last.is_file() else None
    final = run / "model_final.pth"
    ckpt = final if kind == "det" and final.is_file() else named
    if ckpt is None or not ckpt.is_file():
        raise CheckpointError(f"{run} holds no checkpoint (model_final.pth or one named by last_checkpoint)")
    return kind, run, Path(ckpt)


def list_images(inputs: Sequence[str]) -> list[Path]:
    """Files, folders (their images, sorted) and glob patterns."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            out.append(p)
        else:
            matches = [Path(m) for m in sorted(glob.glob(item)) if Path(m).is_file()]
            if not matches:
                raise DataError(f"no image matches {item}")
            out += matches
    if not out:
        raise DataError(f"no image in {', '.join(inputs)}")
    return out


def predict(
    run_or_checkpoint: str | Path, images: Sequence[str], out_dir: str | Path, score_thresh: float = 0.5
) -> dict[str, Any]:
    """Draw predictions for every image; returns counts (written, skipped) and the output dir."""
    from tqdm import tqdm

    kind, run, checkpoint = find_run(run_or_checkpoint)
    paths = list_images(images)
    if kind == "det":  # each harness's framework is imported only for its own runs
        from .det.predict import DetPredictor

        predictor: Any = DetPredictor.from_run(run, checkpoint, score_thresh)
    else:
        from .seg.predict import SegPredictor

        predictor = SegPredictor.from_run(run, checkpoint)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    skipped: list[Path] = []
    for path in tqdm(
        paths, desc=f"predict ({kind})", unit="img", mininterval=1.0 if sys.stderr.isatty() else 30.0
    ):
        image = read_rgb(path)
        if image is None:
            skipped.append(path)
            continue
        Image.fromarray(predictor.draw(image)).save(out / f"{path.stem}.png")
    if skipped:
        log.warning("skipped %d image(s) that do not decode, e.g. %s", len(skipped), skipped[0])
    return {
        "task": kind,
        "checkpoint": str(checkpoint),
        "written": len(paths) - len(skipped),
        "skipped": len(skipped),
        "out_dir": str(out),
    }
