"""A detector's predictions drawn on images (detectron2's ``Visualizer``), for ``tools/predict.py`` and the
run's ``val_preview.png``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError
from ..preview import read_rgb, save_preview


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

        from .checkpoint import SafeDetectionCheckpointer
        from .recipe import bottom_up

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


def det_val_preview(predictor: DetPredictor, out_dir: str | Path, records: Sequence[dict]) -> Path:
    """``val_preview.png``: ground truth beside prediction for validation records (detectron2 dataset dicts,
    category ids already contiguous as ``DatasetCatalog.get`` gives them)."""
    rows = []
    for rec in records:
        image = read_rgb(Path(rec["file_name"]))
        if image is not None:
            rows.append([predictor.draw_truth(image, rec), predictor.draw(image)])
    return save_preview(Path(out_dir), rows)
