"""Pictures of predictions: images read as RGB, rows of images side by side, and the ``val_preview.png``
grid (ground truth beside prediction) every transfer run writes."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import DataError


def read_rgb(path: Path) -> np.ndarray | None:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        return None


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


def save_preview(out_dir: Path, rows: list[list[np.ndarray]]) -> Path:
    if not rows:
        raise DataError(f"no validation image for {out_dir / 'val_preview.png'} could be drawn")
    path = out_dir / "val_preview.png"
    Image.fromarray(grid(rows)).save(path)
    return path
