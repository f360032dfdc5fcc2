"""Image-folder data that survives bad files: unreadable images are skipped and counted, not fatal."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import torch
from PIL import Image, UnidentifiedImageError
from torchvision import datasets, transforms

from .errors import DataError

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SafeImageFolder(datasets.ImageFolder):
    """torchvision ImageFolder whose items are ``None`` when the file cannot be decoded.

    Pair with :func:`collate_skip_bad`, which drops them and reports how many were dropped.
    """

    def __init__(self, root: str | Path, transform: Callable | None = None) -> None:
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"data folder not found: {root}")
        try:
            super().__init__(str(root), transform=transform)
        except FileNotFoundError:  # no class folders, or no image in any of them
            raise DataError(f"data folder {root} holds no images in class sub-folders "
                            "(expected ROOT/<class>/<image>.jpg|png|...)") from None
        if len(self.samples) == 0:
            raise DataError(f"data folder {root} is empty")

    def __getitem__(self, index: int) -> Any:
        path, target = self.samples[index]
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as e:
            return {"bad_path": path, "error": f"{type(e).__name__}: {e}"}
        if self.transform is not None:
            img = self.transform(img)
        return img, target


def collate_skip_bad(batch: list[Any]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Stack the good samples; return (images, labels, paths of skipped files)."""
    good = [b for b in batch if not isinstance(b, dict)]
    bad = [b["bad_path"] for b in batch if isinstance(b, dict)]
    if not good:
        return torch.empty(0), torch.empty(0, dtype=torch.long), bad
    images, labels = zip(*good)
    return torch.stack(images), torch.as_tensor(labels), bad


class SkipCounter:
    """Accumulates skipped files and warns once per report with the count and an example."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def add(self, paths: list[str]) -> None:
        self.paths.extend(paths)

    def report(self, where: str) -> None:
        if self.paths:
            log.warning("%s: skipped %d unreadable image(s), e.g. %s", where, len(self.paths), self.paths[0])
            self.paths = []


def pretrain_transform(input_size: int) -> transforms.Compose:
    """MAE pretraining augmentation (Table 8): RandomResizedCrop(0.2-1.0, bicubic) + flip only."""
    return transforms.Compose([
        transforms.RandomResizedCrop(input_size, scale=(0.2, 1.0), interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def describe_augmentation(transform: transforms.Compose) -> str:
    """The crop / flip of a training transform in a few words (a recipe card's row), read from the transform."""
    parts = []
    for t in transform.transforms:
        if isinstance(t, transforms.RandomResizedCrop):
            parts.append(f"RandomResizedCrop({t.scale[0]:g}-{t.scale[1]:g}, {t.interpolation.value})")
        elif isinstance(t, transforms.RandomHorizontalFlip):
            parts.append("flip")
    return "+".join(parts)


def eval_transform(input_size: int) -> transforms.Compose:
    """Resize (keeping the 224/256 crop ratio when the image is larger) + center crop + normalize."""
    resize = input_size if input_size < 64 else int(input_size / 0.875)
    return transforms.Compose([
        transforms.Resize(resize, interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(input_size),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
