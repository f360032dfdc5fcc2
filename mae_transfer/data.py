"""Image-folder data that survives bad files: unreadable images are skipped and counted, not fatal."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any, Callable

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import datasets, transforms
from torchvision.datasets.folder import IMG_EXTENSIONS

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
            raise DataError(
                f"data folder {root} holds no images in class sub-folders "
                "(expected ROOT/<class>/<image>.jpg|png|...)"
            ) from None
        if len(self.samples) == 0:
            raise DataError(f"data folder {root} is empty")

    def __getitem__(self, index: int) -> Any:
        return _load(*self.samples[index], self.transform)


def image_key(seed: int, epoch: int, index: int, stream: int) -> int:
    """A seed for one image's draws in one epoch (``stream`` tells its uses apart: augmentation, mask)."""
    return ((((seed * 1_000_003) + epoch) * 10_000_019 + index) * 7 + stream) % 2**63


class UnlabeledImages(Dataset):
    """Every image file under one or more folders, recursively: ImageFolder's ``ROOT/<class>/<image>`` or a
    flat folder of images alike (pretraining ignores labels). Items are (image, image index), or the bad-file
    record of :class:`SafeImageFolder` for files that cannot be decoded.

    Args:
        roots: the folders.
        transform: applied to each decoded RGB image.
        cache_short_side: > 0: decode every image once, here, shrunk so its short side is at most this many
            pixels, and keep it in memory (small datasets of large photos, where decoding dominates a step;
            data-loader workers share the cache); 0: decode from disk at every access.
        keyed_seed: not None: each image's transform draws from a generator keyed by (this seed, the epoch set
            by :meth:`set_epoch`, the image index), so an image's augmentation does not depend on which
            process or worker loads it; None: the loading process's random stream.
    """

    def __init__(
        self,
        roots: list[str | Path],
        transform: Callable | None = None,
        cache_short_side: int = 0,
        keyed_seed: int | None = None,
    ) -> None:
        self.transform = transform
        self.keyed_seed = keyed_seed
        self.epoch = 0
        self.samples: list[tuple[str, int]] = []
        if not roots:
            raise DataError("no data folder given (data_path)")
        for root in map(Path, roots):
            if not root.is_dir():
                raise DataError(f"data folder not found: {root}")
            files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS and p.is_file())
            if not files:
                raise DataError(
                    f"data folder {root} holds no images (expected ROOT/<class>/<image> or "
                    f"ROOT/<image>, suffixes {', '.join(IMG_EXTENSIONS)})"
                )
            self.samples += [(str(p), 0) for p in files]
        self.cache: list[Any] | None = None
        if cache_short_side > 0:
            self.cache = [
                _load(path, i, partial(_shrink, short_side=cache_short_side))
                for i, (path, _) in enumerate(self.samples)
            ]

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> Any:
        if self.keyed_seed is None:
            return self._item(index)
        with torch.random.fork_rng(
            devices=[]
        ):  # torchvision's random transforms draw from torch's CPU stream
            torch.manual_seed(image_key(self.keyed_seed, self.epoch, index, stream=0))
            return self._item(index)

    def _item(self, index: int) -> Any:
        if self.cache is None:
            return _load(self.samples[index][0], index, self.transform)
        item = self.cache[index]
        if isinstance(item, dict) or self.transform is None:  # an undecodable file's record
            return item
        return self.transform(item[0]), index


def _shrink(img: Image.Image, short_side: int) -> Image.Image:
    scale = short_side / min(img.size)
    if scale >= 1:
        return img
    return img.resize((round(img.width * scale), round(img.height * scale)), Image.BICUBIC)


def _load(path: str, target: int, transform: Callable | None) -> Any:
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as e:
        return {"bad_path": path, "error": f"{type(e).__name__}: {e}"}
    return (transform(img) if transform is not None else img), target


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
    return transforms.Compose(
        [
            transforms.RandomResizedCrop(
                input_size, scale=(0.2, 1.0), interpolation=transforms.InterpolationMode.BICUBIC
            ),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def describe_augmentation(transform: transforms.Compose) -> str:
    """The crop / flip of a training transform in a few words (a recipe card's row), read from the
    transform."""
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
    return transforms.Compose(
        [
            transforms.Resize(resize, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(input_size),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
