"""A small copy of the miniature's datasets that travels to a GPU machine (configs/mini/reproduce_gpu.sh).

The GPU machine sees only the repository and what a call carries (64 MiB with the wheels), so the shared
datasets are shrunk once: balloon's photos (up to 2048 px) to a 640 px long side with their COCO polygons,
boxes and areas scaled alike; CamVid's frames re-encoded as JPEG quality 75 (same 480x360 size, labels
unchanged); CIFAR-10 copied. About 40 MB. ``--smoke``: a handful of images per split instead (the test suite's
run of ``reproduce_gpu.sh --smoke``). Same layouts as ../shared/data, so ``MAE_TRANSFER_DATA=DEST`` points
every config at the copy.

Usage: python scripts/pack_mini_data.py DEST [--smoke]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

from PIL import Image

from mae_transfer.cli import run_tool
from mae_transfer.errors import ConfigError
from mae_transfer.paths import shared_data

# this project's choices, sized so the copy and the wheels fit one device call's 64 MiB
BALLOON_SIDE = 640  # above the GPU miniature's 384 px detection input
CAMVID_QUALITY = 75  # 19 vs 35 KB per frame at quality 90 (the shared copy's)
SMOKE_IMAGES = 4  # per split and per class folder


def _balloon(src: Path, dest: Path, smoke: bool) -> None:
    (dest / "annotations").mkdir(parents=True)
    for split in ("train", "val"):
        coco = json.loads((src / "annotations" / f"instances_{split}.json").read_text())
        images = coco["images"][:SMOKE_IMAGES] if smoke else coco["images"]
        keep = {im["id"] for im in images}
        scales = {}
        (dest / split).mkdir()
        for im in images:
            scale = min(1.0, BALLOON_SIDE / max(im["width"], im["height"]))
            photo = Image.open(src / split / im["file_name"]).convert("RGB")
            size = (round(im["width"] * scale), round(im["height"] * scale))
            photo.resize(size, Image.BICUBIC).save(dest / split / im["file_name"], quality=90)
            scales[im["id"]] = scale
            im["width"], im["height"] = size
        annotations = []
        for ann in coco["annotations"]:
            if ann["image_id"] not in keep:
                continue
            s = scales[ann["image_id"]]
            ann["segmentation"] = [[round(v * s, 2) for v in poly] for poly in ann["segmentation"]]
            ann["bbox"] = [round(v * s, 2) for v in ann["bbox"]]
            ann["area"] = ann["area"] * s * s
            annotations.append(ann)
        coco.update(images=images, annotations=annotations)
        (dest / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))


def _camvid(src: Path, dest: Path, smoke: bool) -> None:
    shutil.copy(src / "classes.txt", dest / "classes.txt")
    for split in ("training", "validation", "test"):
        (dest / "images" / split).mkdir(parents=True)
        (dest / "annotations" / split).mkdir(parents=True)
        frames = sorted((src / "images" / split).glob("*.jpg"))
        for frame in frames[:SMOKE_IMAGES] if smoke else frames:
            Image.open(frame).save(dest / "images" / split / frame.name, quality=CAMVID_QUALITY)
            label = f"{frame.stem}.png"
            shutil.copy(src / "annotations" / split / label, dest / "annotations" / split / label)


def _cifar10(src: Path, dest: Path, smoke: bool) -> None:
    if not smoke:
        shutil.copytree(src, dest)
        return
    for folder in sorted(p for p in src.glob("*/*") if p.is_dir()):  # split/class
        target = dest / folder.relative_to(src)
        target.mkdir(parents=True)
        for image in sorted(folder.iterdir())[:SMOKE_IMAGES]:
            shutil.copy(image, target / image.name)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dest", type=Path, help="folder to create (must not exist)")
    p.add_argument("--smoke", action="store_true", help=f"{SMOKE_IMAGES} images per split / class folder")
    args = p.parse_args(argv)
    if args.dest.exists():
        raise ConfigError(f"{args.dest} exists; give a new folder")
    args.dest.parent.mkdir(parents=True, exist_ok=True)
    # built beside DEST and renamed at the end: a failed run leaves no half copy under DEST's name
    work = Path(tempfile.mkdtemp(dir=args.dest.parent, prefix=f".{args.dest.name}."))
    try:
        for name, pack in (("balloon", _balloon), ("camvid", _camvid), ("cifar10", _cifar10)):
            if name != "cifar10":  # copytree makes its own folder
                (work / name).mkdir()
            pack(Path(shared_data(name)), work / name, args.smoke)
    except BaseException:
        shutil.rmtree(work)
        raise
    work.rename(args.dest)
    size = sum(f.stat().st_size for f in args.dest.rglob("*") if f.is_file())
    print(f"{args.dest}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    run_tool(main)
