"""A segmentation dataset from any "images + label PNGs + classes.txt" folder, validated up front."""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS
from PIL import Image

from ..errors import DataError


def read_classes(path: str | Path) -> tuple[str, ...]:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"classes file not found: {p}")
    names = tuple(line.strip() for line in p.read_text().splitlines() if line.strip())
    if not names:
        raise DataError(f"classes file {p} lists no class")
    return names


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def _image_suffix(img_dir: str) -> str:
    """The most common image suffix in ``img_dir`` (as spelled there); .jpg when it holds none."""
    counts = Counter(
        os.path.splitext(f)[1]
        for f in (os.listdir(img_dir) if os.path.isdir(img_dir) else ())
        if os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES
    )
    return counts.most_common(1)[0][0] if counts else ".jpg"


@DATASETS.register_module()
class LabelFolderDataset(BaseSegDataset):
    """Images ``<img_path>/<stem><img_suffix>`` with labels ``<seg_map_path>/<stem>.png`` (class index per
    pixel). ``img_suffix="auto"`` (default) takes the most common image suffix in the image folder (.jpg,
    .png, ...).

    ``classes_file``: one class name per line. With ``reduce_zero_label`` (default, as ADE20K), label 0 means
    "unlabeled" (ignored) and label i is class line i; 255 is ignored too (mmseg's ignore index). Every pair
    is checked before training: the image decodes, the label exists, is single-channel, has the image's size,
    and holds no value above the class count except 255.
    """

    METAINFO: dict = dict()  # classes come from classes_file; a palette is generated

    def __init__(
        self,
        classes_file: str,
        reduce_zero_label: bool = True,
        img_suffix: str = "auto",
        seg_map_suffix: str = ".png",
        validate: bool = True,
        **kwargs,
    ) -> None:
        classes = read_classes(classes_file)
        self.classes_file = classes_file
        self.validate = validate
        if img_suffix == "auto":
            img_dir = os.path.join(
                kwargs.get("data_root") or "", kwargs.get("data_prefix", {}).get("img_path", "")
            )
            img_suffix = _image_suffix(img_dir)
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=reduce_zero_label,
            metainfo=dict(classes=classes),
            **kwargs,
        )

    def load_data_list(self) -> list[dict]:
        img_dir = self.data_prefix.get("img_path", "")
        if not os.path.isdir(img_dir):
            raise DataError(f"image folder not found: {img_dir}")
        data_list = super().load_data_list()
        if not data_list:
            raise DataError(f"no '*{self.img_suffix}' image in {img_dir}")
        if self.validate:
            self._check(data_list)
        return data_list

    def _check(self, data_list: list[dict]) -> None:
        n_classes = len(self.metainfo["classes"])
        max_label = n_classes if self.reduce_zero_label else n_classes - 1

        def check(item: dict) -> None:
            img, seg = item["img_path"], item["seg_map_path"]
            if not os.path.isfile(seg):
                raise DataError(f"label file missing for {img}: {seg}")
            with Image.open(img) as im, Image.open(seg) as lb:
                if im.size != lb.size:
                    raise DataError(
                        f"label {seg} is {lb.size[0]}x{lb.size[1]} but its image {img} is "
                        f"{im.size[0]}x{im.size[1]}"
                    )
                if lb.mode not in ("L", "P", "I", "I;16"):
                    raise DataError(
                        f"label maps must be single-channel class indices: {seg} is {lb.mode} "
                        "(a colour rendering?)"
                    )
                try:
                    im.load()  # a truncated or corrupt image fails here, not in a loader worker mid-training
                except OSError as e:
                    raise DataError(f"image {img} cannot be decoded ({e})") from None
                values = np.unique(np.asarray(lb))
            bad = values[(values > max_label) & (values != 255)]
            if bad.size:
                raise DataError(
                    f"label {seg} holds value {int(bad.max())} above the class count "
                    f"({n_classes} classes in {self.classes_file})"
                )

        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            list(pool.map(check, data_list))
