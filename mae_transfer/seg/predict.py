"""A segmenter's predictions drawn on images (the run's palette and a legend), for ``tools/predict.py`` and
the run's ``val_preview.png``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..errors import CheckpointError, ConfigError
from ..preview import read_rgb, save_preview


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
        from .compat import patch_mmengine  # first: the package provides mmcv.ops that mmseg imports
        from .config import replace_value

        patch_mmengine()  # init_model reads the checkpoint through the weights_only loader
        from mmengine.config import Config
        from mmseg.apis import init_model

        configs = list(run.glob("*.py"))
        if len(configs) != 1:
            raise ConfigError(f"{run} should hold exactly one config dump (*.py), found {len(configs)}")
        cfg = Config.fromfile(str(configs[0]))
        cfg.model.backbone.weights = ""  # the trained checkpoint holds the backbone too
        replace_value(cfg.model, "SyncBN", "BN", keys=("type", "pyramid_norm"))
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
    return save_preview(Path(out_dir), rows)
