"""Real COCO annotation formats through the detection harness: polygon masks (every non-crowd instance of
COCO's instances_*.json), crowd instances as uncompressed RLE, both in one json, through the LSJ crop."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_util

from conftest import BALLOON, one_line_error, run_tool
from mae_transfer.det.data import subset_coco, validate_coco
from mae_transfer.runlog import read_jsonl

MINI = "configs/det/mini/mask_rcnn_vit_tiny_coco128.py"


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's crowd format: run lengths over the column-major flattened mask, starting with a run of zeros."""
    flat = mask.reshape(-1, order="F").astype(np.uint8)
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0] + counts
    return {"counts": counts, "size": list(mask.shape)}


def with_crowd(src: Path, out: Path, num_images: int, every: int = 3) -> Path:
    """A subset of a polygon json where every ``every``-th instance becomes a crowd region in uncompressed
    RLE, as real COCO stores crowds: polygons and RLE in one file."""
    subset_coco(src, out, num_images)
    data = json.loads(out.read_text())
    sizes = {img["id"]: (img["height"], img["width"]) for img in data["images"]}
    for i, ann in enumerate(data["annotations"]):
        if i % every == every - 1:
            h, w = sizes[ann["image_id"]]
            mask = mask_util.decode(mask_util.merge(mask_util.frPyObjects(ann["segmentation"], h, w)))
            ann.update(segmentation=uncompressed_rle(mask), iscrowd=1)
    out.write_text(json.dumps(data))
    return out


@pytest.fixture(scope="module")
def balloon_json(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("balloon")
    return {
        "train_mixed": with_crowd(BALLOON / "annotations/instances_train.json", root / "train_mixed.json", 8),
        "val_mixed": with_crowd(BALLOON / "annotations/instances_val.json", root / "val_mixed.json", 5),
    }


def test_uncompressed_rle_round_trips_through_pycocotools():
    mask = np.zeros((7, 5), np.uint8)
    mask[0, 0] = mask[2:5, 1:4] = 1
    rle = mask_util.frPyObjects(uncompressed_rle(mask), 7, 5)
    assert (mask_util.decode(rle) == mask).all()


def test_validate_counts_mask_formats(balloon_json):
    polygons = validate_coco(BALLOON / "annotations/instances_train.json", BALLOON / "train")
    assert polygons == {
        "images": 61,
        "annotations": 255,
        "categories": 1,
        "polygon_instances": 255,
        "rle_instances": 0,
        "crowd": 0,
    }
    mixed = validate_coco(balloon_json["train_mixed"], BALLOON / "train")
    assert mixed["crowd"] == mixed["annotations"] // 3 > 0
    assert mixed["polygon_instances"] == mixed["annotations"] - mixed["crowd"] and mixed["rle_instances"] == 0


def test_lsj_crop_keeps_polygon_masks_aligned():
    """The train mapper's own augmentations (ResizeScale + FixedSizeCrop): each polygon, cropped by shapely
    and rasterized, covers the same pixels as its un-cropped mask put through the same transform."""
    import detectron2.data.detection_utils as utils
    import detectron2.data.transforms as T
    from detectron2.config import LazyConfig, instantiate
    from detectron2.structures import polygons_to_bitmask

    cfg = LazyConfig.load(MINI)
    augs = T.AugmentationList([instantiate(a) for a in cfg.dataloader.train.mapper.augmentations])
    data = json.loads((BALLOON / "annotations/instances_train.json").read_text())
    img = max(data["images"], key=lambda im: sum(a["image_id"] == im["id"] for a in data["annotations"]))
    anns = [dict(a, bbox_mode=1) for a in data["annotations"] if a["image_id"] == img["id"]]  # XYWH_ABS
    h, w = img["height"], img["width"]
    full = [mask_util.decode(mask_util.merge(mask_util.frPyObjects(a["segmentation"], h, w))) for a in anns]
    compared = []
    for seed in range(20):
        random.seed(seed)
        np.random.seed(seed)
        aug_input = T.AugInput(np.zeros((h, w, 3), np.uint8))
        transforms = augs(aug_input)
        out_h, out_w = aug_input.image.shape[:2]
        for ann, mask in zip(anns, full):
            moved = transforms.apply_segmentation(mask)
            if moved.sum() < 400:
                continue  # cropped away (or to a sliver whose boundary pixels dominate)
            cropped = utils.transform_instance_annotations(
                json.loads(json.dumps(ann)), transforms, (out_h, out_w)
            )
            raster = polygons_to_bitmask(cropped["segmentation"], out_h, out_w)
            iou = (raster & moved.astype(bool)).sum() / (raster | moved.astype(bool)).sum()
            compared.append(iou)
    assert len(compared) >= 10
    assert min(compared) > 0.8 and float(np.mean(compared)) > 0.93, sorted(compared)[:5]


def test_trains_and_evaluates_on_polygons_and_crowd_rle(balloon_json, tmp_path):
    """Polygons + crowd RLE in one json, through the full LSJ pipeline: training runs every iteration with
    falling loss and COCO evaluation (which ignores crowd regions) writes bbox and segm AP."""
    res = run_tool(
        "tools/train_det.py",
        "--config",
        MINI,
        "--output-dir",
        str(tmp_path),
        "--train-json",
        str(balloon_json["train_mixed"]),
        "--train-images",
        str(BALLOON / "train"),
        "--val-json",
        str(balloon_json["val_mixed"]),
        "--val-images",
        str(BALLOON / "val"),
        "train.max_iter=24",
        "train.eval_period=24",
        "train.log_period=4",
        "train.checkpointer.period=1000",
        timeout=900,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    log = [r for r in read_jsonl(tmp_path / "log.jsonl") if "total_loss" in r]
    assert log[-1]["iteration"] == 23
    assert log[-1]["total_loss"] < log[0]["total_loss"]
    assert log[-1]["loss_mask"] < log[0]["loss_mask"]  # the cropped polygons gave mask targets
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["iteration"] == 24 and metrics["dataset"] == "custom_val"
    assert (tmp_path / "val_preview.png").is_file()  # category id 1 drawn as the one class (contiguous ids)


def test_coco_evaluation_on_polygons_and_crowd_rle(balloon_json):
    """Ground truth fed back as predictions scores AP 100 for boxes and masks on the mixed json: polygon
    ground truth is rasterized right, and crowd regions are ignored rather than counted as missed."""
    import torch
    from detectron2.data import DatasetCatalog
    from detectron2.evaluation import COCOEvaluator
    from detectron2.structures import Boxes, BoxMode, Instances, polygons_to_bitmask

    from mae_transfer.det.data import register_coco

    register_coco("balloon_val_mixed", str(balloon_json["val_mixed"]), str(BALLOON / "val"))
    evaluator = COCOEvaluator("balloon_val_mixed", tasks=("bbox", "segm"), use_fast_impl=False)
    evaluator.reset()
    crowd = 0
    for d in DatasetCatalog.get("balloon_val_mixed"):
        anns = [a for a in d["annotations"] if not a.get("iscrowd", 0)]
        crowd += len(d["annotations"]) - len(anns)
        inst = Instances((d["height"], d["width"]))
        boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in anns]
        inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        inst.scores = torch.ones(len(anns))
        inst.pred_classes = torch.tensor([a["category_id"] for a in anns], dtype=torch.long)
        masks = [polygons_to_bitmask(a["segmentation"], d["height"], d["width"]) for a in anns]
        inst.pred_masks = torch.from_numpy(
            np.stack(masks) if masks else np.zeros((0, d["height"], d["width"]), bool)
        )
        evaluator.process([{"image_id": d["image_id"]}], [{"instances": inst}])
    results = evaluator.evaluate()
    assert crowd > 0
    assert results["bbox"]["AP"] == pytest.approx(100.0) and results["segm"]["AP"] == pytest.approx(100.0)


def test_missing_shapely_is_one_line_error(balloon_json, tmp_path):
    """Without shapely, polygon training data is refused at start with the package's name."""
    fake = tmp_path / "no_shapely"
    (fake / "shapely").mkdir(parents=True)
    (fake / "shapely/__init__.py").write_text("raise ImportError('shapely hidden by the test')\n")
    res = run_tool(
        "tools/train_det.py",
        "--config",
        MINI,
        "--output-dir",
        str(tmp_path / "run"),
        "--train-json",
        str(balloon_json["train_mixed"]),
        "--train-images",
        str(BALLOON / "train"),
        "--val-json",
        str(balloon_json["val_mixed"]),
        "--val-images",
        str(BALLOON / "val"),
        "train.max_iter=2",
        env={"PYTHONPATH": str(fake)},
        timeout=600,
    )
    line = one_line_error(res)
    assert "shapely" in line and "train_mixed.json" in line and "polygon" in line


def test_a_declaration_can_keep_some_categories(tmp_path):
    """coco128 as a one-class person task: the config's dataset keeps every image (the person-free ones are
    negatives) and only the person annotations, crowd RLE included; a name the file lacks is a DataError."""
    from detectron2.config import LazyConfig
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from mae_transfer.det.data import register_datasets
    from mae_transfer.errors import DataError

    cfg = LazyConfig.load("configs/det/mini/mask_rcnn_vit_mini_p8_coco128_person.py")
    cfg.train.output_dir = str(tmp_path)
    register_datasets(cfg)
    for name, persons, crowd in (("coco128_person_train", 209, 4), ("coco128_person_val", 287, 4)):
        kept = json.loads((tmp_path / "datasets" / f"{name}.json").read_text())
        assert len(kept["images"]) == 100 and [c["name"] for c in kept["categories"]] == ["person"]
        assert len(kept["annotations"]) == persons and sum(a["iscrowd"] for a in kept["annotations"]) == crowd
        assert len(DatasetCatalog.get(name)) == 100
        assert MetadataCatalog.get(name).thing_classes == ["person"]
    cfg.datasets.coco128_person_val.categories = ["person", "unicorn"]
    with pytest.raises(DataError, match="has no category 'unicorn'"):
        register_datasets(cfg)
