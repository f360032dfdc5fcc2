"""COCO-format datasets for detectron2: validated before anything trains, then registered by name."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from detectron2.data import DatasetMapper
from omegaconf import DictConfig

from ..errors import ConfigError, DataError

log = logging.getLogger("mae_transfer.det")

REQUIRED_IMAGE_FIELDS = ("id", "file_name", "height", "width")
REQUIRED_ANN_FIELDS = ("id", "image_id", "category_id", "bbox")


def validate_coco(
    json_file: str | Path, image_root: str | Path, need_annotations: bool = True, need_masks: bool = True
) -> dict[str, int]:
    """Check a COCO instances json against its image folder; raise DataError naming the first problem.

    Returns counts for logging and mapper setup: images, annotations, categories, and the mask formats
    present (``polygon_instances``, ``rle_instances`` = non-crowd RLE, ``crowd`` = iscrowd annotations,
    which real COCO stores as uncompressed RLE).
    """
    json_file, image_root = Path(json_file), Path(image_root)
    if not json_file.is_file():
        raise DataError(f"annotation file not found: {json_file}")
    if not image_root.is_dir():
        raise DataError(f"image folder not found: {image_root}")
    try:
        data = json.loads(json_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{json_file} is not valid JSON ({e})") from None
    for field in ("images", "annotations", "categories"):
        if not isinstance(data.get(field), list):
            raise DataError(f"{json_file} has no '{field}' list (not a COCO instances file)")
    if not data["images"]:
        raise DataError(f"{json_file} lists no images")
    image_ids = set()
    for img in data["images"]:
        missing = [f for f in REQUIRED_IMAGE_FIELDS if f not in img]
        if missing:
            raise DataError(
                f"{json_file}: image entry {img.get('id', '?')} lacks field(s) {', '.join(missing)}"
            )
        image_ids.add(img["id"])
    cat_ids = {c.get("id") for c in data["categories"]}
    if not cat_ids:
        raise DataError(f"{json_file} lists no categories")
    for ann in data["annotations"]:
        missing = [f for f in REQUIRED_ANN_FIELDS if f not in ann]
        if need_masks and "segmentation" not in ann:
            missing.append("segmentation")
        if missing:
            raise DataError(
                f"{json_file}: annotation {ann.get('id', '?')} lacks field(s) {', '.join(missing)}"
            )
        if ann["image_id"] not in image_ids:
            raise DataError(
                f"{json_file}: annotation {ann['id']} refers to unknown image id {ann['image_id']}"
            )
        if ann["category_id"] not in cat_ids:
            raise DataError(
                f"{json_file}: annotation {ann['id']} has unknown category id {ann['category_id']}"
            )
        if not (isinstance(ann["bbox"], list) and len(ann["bbox"]) == 4):
            raise DataError(f"{json_file}: annotation {ann['id']} bbox is not [x, y, w, h]")
        if ann["bbox"][2] < 0 or ann["bbox"][3] < 0:
            raise DataError(
                f"{json_file}: annotation {ann['id']} bbox {ann['bbox']} has a negative width or "
                "height (COCO boxes are [x, y, w, h])"
            )
    if need_annotations and not data["annotations"]:
        raise DataError(f"{json_file} has zero annotations: nothing to train on")
    absent = [img["file_name"] for img in data["images"] if not (image_root / img["file_name"]).is_file()]
    if absent:
        raise DataError(
            f"{len(absent)} image(s) listed in {json_file} are missing from {image_root}, e.g. {absent[0]}"
        )
    anns = data["annotations"]
    empty = [a["id"] for a in anns if a["bbox"][2] == 0 or a["bbox"][3] == 0]
    if empty:  # detectron2 drops them when it builds instances; say so instead of dropping them silently
        log.warning(
            "%s: %d annotation(s) with a zero-size bbox (e.g. id %s) will be ignored",
            json_file,
            len(empty),
            empty[0],
        )
    crowd = [bool(a.get("iscrowd", 0)) for a in anns]
    return {
        "images": len(data["images"]),
        "annotations": len(anns),
        "categories": len(cat_ids),
        "polygon_instances": sum(
            isinstance(a.get("segmentation"), list) and not c for a, c in zip(anns, crowd)
        ),
        "rle_instances": sum(isinstance(a.get("segmentation"), dict) and not c for a, c in zip(anns, crowd)),
        "crowd": sum(crowd),
    }


class SkipUnreadableMapper(DatasetMapper):
    """detectron2's ``DatasetMapper`` that skips a training image it cannot decode, naming it in a warning
    (detectron2's ``MapDataset`` then draws another image), as pretraining does: one corrupt file among
    118k does not end a multi-day run."""

    def __call__(self, dataset_dict: dict) -> dict | None:
        try:
            return super().__call__(dataset_dict)
        except OSError as e:  # PIL: truncated file, not an image
            log.warning("skipping unreadable image %s (%s)", dataset_dict.get("file_name"), e)
            return None


def check_mask_dependencies(json_file: str | Path, counts: dict[str, int]) -> None:
    """Polygon masks are transformed with ``apply_polygons``, which clips them with shapely under any crop
    (detectron2's FixedSizeCrop, the LSJ crop of every det config); detectron2 lists shapely only as an
    optional extra, so without this check a missing package surfaces as a data-loader worker's traceback."""
    if not counts.get("polygon_instances"):
        return
    try:
        import shapely.geometry  # noqa: F401
    except ImportError:
        raise DataError(
            f"{json_file} has {counts['polygon_instances']} polygon mask(s), which need the 'shapely' "
            "package (detectron2 crops polygons with it): pip install shapely, or rerun "
            "scripts/install.sh"
        ) from None


def register_coco(
    name: str, json_file: str, image_root: str, need_annotations: bool = True
) -> dict[str, int]:
    """Validate, then register with detectron2's catalog (idempotent for the same files)."""
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets import register_coco_instances

    counts = validate_coco(json_file, image_root, need_annotations=need_annotations)
    if name in DatasetCatalog.list():
        meta = MetadataCatalog.get(name)
        if getattr(meta, "json_file", None) == str(json_file) and getattr(meta, "image_root", None) == str(
            image_root
        ):
            return counts
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    register_coco_instances(name, {}, str(json_file), str(image_root))
    return counts


def coco2017_paths(root: str | None = None) -> dict[str, dict[str, Any]]:
    """Standard COCO 2017 layout under ``root`` (default $DETECTRON2_DATASETS or ./datasets)."""
    root = root or os.environ.get("DETECTRON2_DATASETS", "datasets")
    base = Path(root) / "coco"
    return {
        "coco_2017_train": {
            "json": str(base / "annotations/instances_train2017.json"),
            "images": str(base / "train2017"),
        },
        "coco_2017_val": {
            "json": str(base / "annotations/instances_val2017.json"),
            "images": str(base / "val2017"),
        },
    }


def subset_coco(json_file: str | Path, out_file: str | Path, num_images: int, min_instances: int = 1) -> Path:
    """Write a COCO json with the first ``num_images`` images having >= ``min_instances`` annotations
    (small real subsets for CPU runs and tests)."""
    data = json.loads(Path(json_file).read_text())
    per_image: dict[int, int] = {}
    for a in data["annotations"]:
        per_image[a["image_id"]] = per_image.get(a["image_id"], 0) + 1
    keep = [img for img in data["images"] if per_image.get(img["id"], 0) >= min_instances][:num_images]
    ids = {img["id"] for img in keep}
    out = dict(data, images=keep, annotations=[a for a in data["annotations"] if a["image_id"] in ids])
    Path(out_file).parent.mkdir(parents=True, exist_ok=True)
    Path(out_file).write_text(json.dumps(out))
    return Path(out_file)


def keep_categories(json_file: str | Path, out_file: str | Path, names: list[str]) -> Path:
    """Write a COCO json that keeps every image but only the annotations and categories named in ``names``
    (e.g. coco128 as a one-class ``person`` task). Images without them stay: they are negatives that an
    evaluation counts false positives on (detectron2 drops annotation-free images from training itself)."""
    data = json.loads(Path(json_file).read_text())
    by_name = {c["name"]: c for c in data["categories"]}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise DataError(f"{json_file} has no category {unknown[0]!r} (it has: {', '.join(sorted(by_name))})")
    ids = {by_name[n]["id"] for n in names}
    out = dict(
        data,
        categories=[c for c in data["categories"] if c["id"] in ids],
        annotations=[a for a in data["annotations"] if a["category_id"] in ids],
    )
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(f".{out_file.name}.{os.getpid()}")  # every rank writes it: replace atomically
    tmp.write_text(json.dumps(out))
    os.replace(tmp, out_file)
    return out_file


def register_datasets(cfg: DictConfig, eval_only: bool = False) -> None:
    """Validate every dataset the run uses (one-line DataError on the first problem), then register it.

    A declaration is ``{"json": ..., "images": ...}``, optionally with ``"categories": [names]``: the run
    then uses the file's annotations of those categories only, written to ``<output_dir>/datasets/``."""
    wanted = (
        {cfg.dataloader.test.dataset.names}
        if eval_only
        else {
            cfg.dataloader.train.dataset.names,
            cfg.dataloader.test.dataset.names,
            cfg.train.get("test_dataset"),
        }
        - {"", None}
    )
    known = dict(cfg.get("datasets", {}))
    for name, paths in coco2017_paths().items():
        known.setdefault(name, paths)
    for name in wanted:
        if name not in known:
            raise ConfigError(
                f"dataset {name!r} is not declared: add it to the config's `datasets` or pass "
                "--train-json/--train-images, --val-json/--val-images, --test-json/--test-images or "
                "--coco-root"
            )
        is_train = name == cfg.dataloader.train.dataset.names
        json_file = known[name]["json"]
        if known[name].get("categories"):
            validate_coco(json_file, known[name]["images"], need_annotations=False)
            out = Path(cfg.train.output_dir) / "datasets" / f"{name}.json"
            json_file = str(keep_categories(json_file, out, list(known[name]["categories"])))
        counts = register_coco(name, json_file, known[name]["images"], need_annotations=is_train)
        log.info("dataset %s: %s", name, counts)
        if is_train:
            check_mask_dependencies(json_file, counts)
        if is_train and counts["rle_instances"]:  # polygon masks cannot hold RLE instances
            cfg.dataloader.train.mapper.instance_mask_format = "bitmask"
