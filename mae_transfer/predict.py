"""Predictions drawn on images: detection through detectron2's ``Visualizer``, segmentation with the run's
palette and a legend; and the ``val_preview.png`` grid (ground truth beside prediction) every run writes.

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
from typing import Any, Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

from .errors import CheckpointError, ConfigError, DataError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


# ----------------------------------------------------------------------------- the run
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


def read_rgb(path: Path) -> np.ndarray | None:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        return None


# ----------------------------------------------------------------------------- detection
class DetPredictor:
    """A detector in eval mode with its test-time resize and class names; ``draw(image)`` returns the
    overlay (RGB uint8). ``from_run`` builds it from a run directory; training passes its own model."""

    def __init__(self, cfg: Any, model: Any, score_thresh: float = 0.5) -> None:
        from detectron2.config import instantiate
        from detectron2.data.catalog import Metadata

        self.model = model.eval()
        self.augs = [instantiate(a) for a in cfg.dataloader.test.mapper.augmentations]
        self.classes = det_classes(cfg)
        # what the Visualizer reads; no catalog entry
        self.metadata = Metadata(thing_classes=list(self.classes))
        self.score_thresh = score_thresh

    @classmethod
    def from_run(cls, run: Path, checkpoint: Path, score_thresh: float = 0.5) -> DetPredictor:
        from detectron2.config import LazyConfig, instantiate

        from .det.checkpoint import SafeDetectionCheckpointer
        from .det.recipe import bottom_up

        cfg = LazyConfig.load(str(run / "config.yaml"))
        bottom_up(cfg).weights = ""  # the trained detector's checkpoint holds the backbone too
        cfg.model.roi_heads.box_predictor.test_score_thresh = min(score_thresh, 0.05)
        model = instantiate(cfg.model)
        SafeDetectionCheckpointer(model).load(str(checkpoint))
        return cls(cfg, model, score_thresh)

    def predict(self, image: np.ndarray) -> Any:
        import detectron2.data.transforms as T
        import torch

        aug_input = T.AugInput(image)
        T.AugmentationList(self.augs)(aug_input)
        tensor = torch.as_tensor(np.ascontiguousarray(aug_input.image.transpose(2, 0, 1)))
        with torch.no_grad():
            out = self.model([{"image": tensor, "height": image.shape[0], "width": image.shape[1]}])[0]
        inst = out["instances"].to("cpu")
        return inst[inst.scores >= self.score_thresh]

    def draw(self, image: np.ndarray, instances: Any | None = None) -> np.ndarray:
        from detectron2.utils.visualizer import Visualizer

        instances = self.predict(image) if instances is None else instances
        return Visualizer(image, self.metadata).draw_instance_predictions(instances).get_image()

    def draw_truth(self, image: np.ndarray, record: dict) -> np.ndarray:
        from detectron2.utils.visualizer import Visualizer

        return Visualizer(image, self.metadata).draw_dataset_dict(record).get_image()


def det_classes(cfg: Any) -> tuple[str, ...]:
    """Class names in the model's order (COCO json categories sorted by id, as detectron2 maps them)."""
    name = cfg.dataloader.test.dataset.names
    spec = dict(cfg.get("datasets", {})).get(name)
    if spec is None:
        from detectron2.data import MetadataCatalog

        classes = MetadataCatalog.get(name).get("thing_classes")
        if classes:
            return tuple(classes)
        raise ConfigError(
            f"the run's test dataset {name!r} is not declared in its config: cannot name classes"
        )
    cats = json.loads(Path(spec["json"]).read_text())["categories"]
    return tuple(c["name"] for c in sorted(cats, key=lambda c: c["id"]))


# ----------------------------------------------------------------------------- segmentation
class SegPredictor:
    """A segmenter in eval mode with its classes and palette; ``draw`` blends the predicted classes over the
    image and adds a legend of the classes present. ``from_run`` builds it (mmseg ``init_model``) from a
    run directory's config dump; training passes its own model and config."""

    alpha = 0.5

    def __init__(self, cfg: Any, model: Any, classes: Sequence[str], palette: Sequence | None = None) -> None:
        self.model = model.eval()
        self.model.cfg = cfg  # mmseg's inference_model reads the test pipeline from it
        self.classes = tuple(classes)
        n_out = cfg.model.decode_head.num_classes
        if len(self.classes) != n_out:
            raise CheckpointError(f"the model predicts {n_out} classes but its run names {len(self.classes)}")
        self.palette = np.asarray(palette if palette is not None else _palette(n_out), dtype=np.uint8)

    @classmethod
    def from_run(cls, run: Path, checkpoint: Path) -> SegPredictor:
        from .seg.compat import patch_mmengine  # first: the package provides mmcv.ops that mmseg imports
        from .seg.train import _replace_value

        patch_mmengine()  # init_model reads the checkpoint through the weights_only loader
        from mmengine.config import Config
        from mmseg.apis import init_model

        configs = list(run.glob("*.py"))
        if len(configs) != 1:
            raise ConfigError(f"{run} should hold exactly one config dump (*.py), found {len(configs)}")
        cfg = Config.fromfile(str(configs[0]))
        cfg.model.backbone.weights = ""  # the trained checkpoint holds the backbone too
        _replace_value(cfg.model, "SyncBN", "BN", keys=("type", "pyramid_norm"))
        model = init_model(cfg, str(checkpoint), device="cpu")
        meta = model.dataset_meta or {}
        return cls(cfg, model, meta.get("classes") or (), meta.get("palette"))

    def predict(self, image: np.ndarray) -> np.ndarray:
        from mmseg.apis import inference_model

        result = inference_model(self.model, np.ascontiguousarray(image[:, :, ::-1]))  # mmseg reads BGR
        return result.pred_sem_seg.data[0].cpu().numpy()

    def colorize(self, image: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Blend class colours over the image; label values outside the classes (ignore) stay untouched."""
        out = image.astype(np.float32).copy()
        valid = (labels >= 0) & (labels < len(self.palette))
        out[valid] = (1 - self.alpha) * out[valid] + self.alpha * self.palette[labels[valid]]
        return out.round().astype(np.uint8)

    def legend(self, overlay: np.ndarray, labels: np.ndarray) -> np.ndarray:
        present = [int(c) for c in np.unique(labels) if 0 <= c < len(self.classes)]
        row, width = 16, 150
        canvas = Image.new(
            "RGB", (overlay.shape[1] + width, max(overlay.shape[0], row * len(present) + 8)), (255, 255, 255)
        )
        canvas.paste(Image.fromarray(overlay), (0, 0))
        draw = ImageDraw.Draw(canvas)
        for i, c in enumerate(present):
            y = 4 + i * row
            draw.rectangle(
                [overlay.shape[1] + 6, y, overlay.shape[1] + 18, y + 11],
                fill=tuple(int(v) for v in self.palette[c]),
                outline=(0, 0, 0),
            )
            draw.text((overlay.shape[1] + 24, y), self.classes[c][:20], fill=(0, 0, 0))
        return np.asarray(canvas)

    def draw(self, image: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        labels = self.predict(image) if labels is None else labels
        return self.legend(self.colorize(image, labels), labels)


def _palette(n: int) -> list[list[int]]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, size=(n, 3)).tolist()


# ----------------------------------------------------------------------------- entry points
def predict(
    run_or_checkpoint: str | Path, images: Sequence[str], out_dir: str | Path, score_thresh: float = 0.5
) -> dict[str, Any]:
    """Draw predictions for every image; returns counts (written, skipped) and the output dir."""
    from tqdm import tqdm

    kind, run, checkpoint = find_run(run_or_checkpoint)
    paths = list_images(images)
    predictor = (
        DetPredictor.from_run(run, checkpoint, score_thresh)
        if kind == "det"
        else SegPredictor.from_run(run, checkpoint)
    )
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


def grid(rows: Iterable[Sequence[np.ndarray]], height: int = 240) -> np.ndarray:
    """Rows of images scaled to one height, side by side, stacked (white padding)."""
    scaled = [
        [
            np.asarray(
                Image.fromarray(im).resize((max(1, round(im.shape[1] * height / im.shape[0])), height))
            )
            for im in row
        ]
        for row in rows
    ]
    widths = [sum(im.shape[1] for im in row) + 4 * (len(row) - 1) for row in scaled]
    canvas = np.full((len(scaled) * (height + 4) - 4, max(widths), 3), 255, np.uint8)
    for r, row in enumerate(scaled):
        x = 0
        for im in row:
            canvas[r * (height + 4) : r * (height + 4) + height, x : x + im.shape[1]] = im[:, :, :3]
            x += im.shape[1] + 4
    return canvas


def det_val_preview(predictor: DetPredictor, out_dir: str | Path, records: Sequence[dict]) -> Path:
    """``val_preview.png``: ground truth beside prediction for validation records (detectron2 dataset dicts,
    category ids already contiguous as ``DatasetCatalog.get`` gives them)."""
    rows = []
    for rec in records:
        image = read_rgb(Path(rec["file_name"]))
        if image is not None:
            rows.append([predictor.draw_truth(image, rec), predictor.draw(image)])
    return _save_preview(Path(out_dir), rows)


def seg_val_preview(
    predictor: SegPredictor,
    out_dir: str | Path,
    pairs: Sequence[tuple[str, str]],
    reduce_zero_label: bool = True,
) -> Path:
    """``val_preview.png``: ground truth beside prediction for validation (image, label) pairs."""
    rows = []
    for img_path, lbl_path in pairs:
        image = read_rgb(Path(img_path))
        if image is None:
            continue
        truth = np.asarray(Image.open(lbl_path)).astype(np.int64)
        if reduce_zero_label:  # label 0 = unlabeled (ignored), label k = class k - 1
            truth = np.where(truth == 0, 255, truth - 1)
        rows.append([predictor.draw(image, truth), predictor.draw(image)])
    return _save_preview(Path(out_dir), rows)


def _save_preview(out_dir: Path, rows: list[list[np.ndarray]]) -> Path:
    if not rows:
        raise DataError(f"no validation image for {out_dir / 'val_preview.png'} could be drawn")
    path = out_dir / "val_preview.png"
    Image.fromarray(grid(rows)).save(path)
    return path
