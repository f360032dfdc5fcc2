"""One corpus of bad and hostile input for every tool: each case ends with exit status 2, exactly one line
``error: ...`` naming the culprit, no traceback, no file of an existing output dir changed, and no payload of
a crafted pickle ever run."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import COCO128, make_image_folder, one_line_error, run_tool
from mae_transfer.det.data import subset_coco

DET_MINI = "configs/det/mini/mask_rcnn_vit_tiny_coco128.py"
SEG_MINI = "configs/seg/mini/upernet_vit_tiny_coco128.py"
CLASSES = str(COCO128 / "semantic/classes.txt")


class Payload:
    """Unpickling this runs ``touch MARKER``: proof that a loader executed code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@dataclass
class Ctx:
    root: Path
    marker: Path
    evil_pth: Path
    evil_pkl: Path
    cifar: Path
    coco: dict[str, str]
    seg_train: tuple[str, str]
    seg_val: tuple[str, str]
    existing: Path  # an output dir holding earlier results that no failing run may touch


def _seg_folder(root: Path, split: str, n: int) -> tuple[str, str]:
    from test_seg import label_folder

    return label_folder(root, split, n)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory) -> Ctx:
    root = tmp_path_factory.mktemp("bad_input")
    marker = root / "PAYLOAD_RAN"
    evil_pth = root / "evil.pth"
    torch.save({"model": {"patch_embed.proj.weight": torch.zeros(1)}, "x": Payload(marker)}, evil_pth)
    evil_pkl = root / "evil.pkl"
    evil_pkl.write_bytes(pickle.dumps({"model": Payload(marker)}))
    cifar = make_image_folder(root / "cifar" / "train", "train", 2, classes=["airplane", "cat"])
    coco = {
        "train": str(subset_coco(COCO128 / "annotations/instances_train2017.json", root / "train2.json", 2)),
        "val": str(subset_coco(COCO128 / "annotations/instances_val2017.json", root / "val2.json", 2)),
        "train_images": str(COCO128 / "train2017"),
        "val_images": str(COCO128 / "val2017"),
    }
    existing = root / "existing"
    existing.mkdir()
    (existing / "metrics.json").write_text('{"APbox": 50.0}\n')
    (existing / "last_checkpoint").write_text("evil.pkl")
    shutil.copy(evil_pkl, existing / "evil.pkl")
    return Ctx(
        root,
        marker,
        evil_pth,
        evil_pkl,
        cifar,
        coco,
        _seg_folder(root / "seg_train", "training", 2),
        _seg_folder(root / "seg_val", "validation", 2),
        existing,
    )


def det(c: Ctx, *args: str) -> list[str]:
    return [
        "tools/train_det.py",
        "--config",
        DET_MINI,
        "--train-json",
        c.coco["train"],
        "--train-images",
        c.coco["train_images"],
        "--val-json",
        c.coco["val"],
        "--val-images",
        c.coco["val_images"],
        "train.max_iter=1",
        *args,
    ]


def seg(c: Ctx, *args: str, train: tuple[str, str] | None = None) -> list[str]:
    t = train or c.seg_train
    return [
        "tools/train_seg.py",
        "--config",
        SEG_MINI,
        "--classes",
        CLASSES,
        "--train-images",
        t[0],
        "--train-labels",
        t[1],
        "--val-images",
        c.seg_val[0],
        "--val-labels",
        c.seg_val[1],
        *args,
    ]


def pretrain(c: Ctx, *args: str, data: Path | None = None) -> list[str]:
    return [
        "tools/pretrain.py",
        "--config",
        "configs/pretrain/cifar10_smoke.py",
        f"data_path={data or c.cifar}",
        "epochs=1",
        "batch_size=2",
        "num_workers=0",
        "model_overrides={'depth': 1, 'decoder_depth': 1}",
        *args,
    ]


def eval_cls(c: Ctx, *args: str) -> list[str]:
    return [
        "tools/eval_cls.py",
        "--config",
        "configs/cls/cifar10_tiny_linprobe.py",
        f"data_path={c.cifar.parent}",
        "val_split=train",
        "epochs=1",
        "batch_size=2",
        "num_workers=0",
        *args,
    ]


def _coco_with(c: Ctx, name: str, edit: Callable[[dict], None], images: str | None = None) -> str:
    data = json.loads(Path(c.coco["train"]).read_text())
    edit(data)
    path = c.root / f"{name}.json"
    path.write_text(json.dumps(data))
    return str(path)


def _with_train_json(c: Ctx, path: str) -> list[str]:
    args = det(c)
    args[args.index("--train-json") + 1] = path
    return args


def det_truncated_image(c: Ctx) -> list[str]:
    data = json.loads(Path(c.coco["train"]).read_text())
    folder = c.root / "det_trunc_images"
    folder.mkdir(exist_ok=True)
    for i, img in enumerate(data["images"]):
        src = COCO128 / "train2017" / img["file_name"]
        dst = folder / img["file_name"]
        if not dst.exists():
            dst.write_bytes(src.read_bytes()[:2000] if i == 0 else src.read_bytes())
    args = det(c)
    args[args.index("--train-images") + 1] = str(folder)
    return args


def seg_with_labels(
    c: Ctx, name: str, edit: Callable[[np.ndarray], np.ndarray], truncate_image: bool = False
):
    img_dir, lbl_dir = c.root / name / "images", c.root / name / "labels"
    if not img_dir.exists():
        img_dir.mkdir(parents=True)
        lbl_dir.mkdir(parents=True)
        for i, (img, lbl) in enumerate(
            zip(sorted(Path(c.seg_train[0]).iterdir()), sorted(Path(c.seg_train[1]).iterdir()))
        ):
            data = img.resolve().read_bytes()
            (img_dir / img.name).write_bytes(data[:2000] if truncate_image and i == 0 else data)
            arr = np.asarray(Image.open(lbl.resolve()))
            Image.fromarray(edit(arr) if i == 0 else arr).save(lbl_dir / lbl.name)
    return seg(c, "--cfg-options", "train_cfg.max_iters=2", train=(str(img_dir), str(lbl_dir)))


def all_unreadable(c: Ctx) -> list[str]:
    folder = c.root / "unreadable" / "cls"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        (folder / f"{i}.jpg").write_bytes(b"not an image")
    return pretrain(c, data=folder.parent)


def shadowed_output(c: Ctx) -> Path:
    f = c.root / "a_file"
    f.write_text("x")
    return f / "out"


# (case id, argv builder, substring the error must contain); output dirs point at ctx.existing where the
# tool would write, so the test can check that nothing there changed.
CASES: list[tuple[str, Callable[[Ctx], list[str]], str]] = [
    # hostile pickles: every entry point that reads a file
    ("det --weights", lambda c: det(c, "--weights", str(c.evil_pth)), "posix.system"),
    ("det init_checkpoint .pkl", lambda c: det(c, f"train.init_checkpoint={c.evil_pkl}"), "evil.pkl"),
    ("det init_checkpoint .pth", lambda c: det(c, f"train.init_checkpoint={c.evil_pth}"), "posix.system"),
    (
        "det --eval-only .pkl",
        lambda c: det(c, "--eval-only", f"train.init_checkpoint={c.evil_pkl}"),
        "evil.pkl",
    ),
    (
        "det --resume last_checkpoint .pkl",
        lambda c: det(c, "--resume", "--output-dir", str(c.existing)),
        "evil.pkl",
    ),
    ("seg --weights", lambda c: seg(c, "--weights", str(c.evil_pth)), "posix.system"),
    ("seg load_from", lambda c: seg(c, "--cfg-options", f"load_from={c.evil_pth}"), "posix.system"),
    (
        "seg --eval-only --checkpoint",
        lambda c: seg(c, "--eval-only", "--checkpoint", str(c.evil_pth)),
        "posix.system",
    ),
    (
        "seg --resume",
        lambda c: seg(c, "--resume", "--cfg-options", f"load_from={c.evil_pth}"),
        "posix.system",
    ),
    ("pretrain resume", lambda c: pretrain(c, f"resume={c.evil_pth}"), "posix.system"),
    ("eval_cls weights", lambda c: eval_cls(c, f"weights={c.evil_pth}"), "posix.system"),
    (
        "eval_cls resume",
        lambda c: eval_cls(c, "cache_features=False", f"resume={c.evil_pth}"),
        "posix.system",
    ),
    (
        "visualize",
        lambda c: ["tools/visualize.py", str(c.evil_pth), str(c.cifar), "-o", str(c.root / "v.png")],
        "posix.system",
    ),
    (
        "export_encoder",
        lambda c: ["tools/export_encoder.py", str(c.evil_pth), str(c.root / "enc.pth")],
        "posix.system",
    ),
    (
        "transfer_report",
        lambda c: ["tools/transfer_report.py", str(c.evil_pth), "--out", str(c.root / "tr")],
        "posix.system",
    ),
    # ill-typed or out-of-range values
    ("det max_iter=abc", lambda c: det(c, "train.max_iter=abc"), "train.max_iter"),
    (
        "seg max_iters=abc",
        lambda c: seg(c, "--cfg-options", "train_cfg.max_iters=abc"),
        "train_cfg.max_iters",
    ),
    (
        "seg scheduler end<=begin",
        lambda c: seg(c, "--cfg-options", "param_scheduler.1.end=10", "param_scheduler.1.begin=20"),
        "param_scheduler",
    ),
    ("pretrain batch_size=0", lambda c: pretrain(c, "batch_size=0"), "batch_size"),
    ("pretrain betas=abc", lambda c: pretrain(c, "betas=abc"), "betas"),
    ("pretrain model_overrides=abc", lambda c: pretrain(c, "model_overrides=abc"), "model_overrides"),
    ("pretrain mask_strategy=foo", lambda c: pretrain(c, "mask_strategy=foo"), "mask_strategy"),
    ("pretrain mask_ratio=1.5", lambda c: pretrain(c, "mask_ratio=1.5"), "mask_ratio"),
    # data
    (
        "det negative bbox",
        lambda c: _with_train_json(
            c, _coco_with(c, "negative_box", lambda d: d["annotations"][0].update(bbox=[10, 10, -4, 5]))
        ),
        "negative width",
    ),
    (
        "seg truncated JPEG",
        lambda c: seg_with_labels(c, "seg_trunc", lambda a: a, truncate_image=True),
        "jpg",
    ),
    (
        "seg 3-channel label",
        lambda c: seg_with_labels(c, "seg_rgb", lambda a: np.stack([a] * 3, -1)),
        "single-channel",
    ),
    ("pretrain all images unreadable", all_unreadable, "unreadable"),
    # output dirs and checkpoints
    ("pretrain output dir is a file", lambda c: pretrain(c, f"output_dir={shadowed_output(c)}"), "a_file"),
    ("det output dir is a file", lambda c: det(c, "--output-dir", str(shadowed_output(c))), "a_file"),
    ("seg work dir is a file", lambda c: seg(c, "--work-dir", str(shadowed_output(c))), "a_file"),
    (
        "seg --eval-only missing checkpoint",
        lambda c: seg(c, "--eval-only", "--checkpoint", str(c.root / "nope.pth")),
        "nope.pth",
    ),
    (
        "det --resume dangling last_checkpoint",
        lambda c: det(c, "--resume", "--output-dir", str(_dangling(c))),
        "model_0000009.pth",
    ),
]


def _dangling(c: Ctx) -> Path:
    d = c.root / "dangling"
    d.mkdir(exist_ok=True)
    (d / "last_checkpoint").write_text("model_0000009.pth")
    return d


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


RESULTS = ("metrics.json", "last_checkpoint", "evil.pkl")  # what an earlier run left there


def _unchanged(before: dict[str, bytes], folder: Path) -> bool:
    """Every file that was there (results, checkpoints) is still there with the same bytes."""
    after = _snapshot(folder)
    return all(after.get(k) == v for k, v in before.items())


@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(ctx, case):
    _, build, needle = next(c for c in CASES if c[0] == case)
    argv = build(ctx)
    if (
        "--output-dir" not in argv
        and "--work-dir" not in argv
        and argv[0] in ("tools/train_det.py", "tools/train_seg.py")
    ):
        argv += ["--output-dir" if "det" in argv[0] else "--work-dir", str(ctx.existing)]
    if argv[0] == "tools/pretrain.py" and not any(a.startswith("output_dir=") for a in argv):
        argv.append(f"output_dir={ctx.existing}")
    if argv[0] == "tools/eval_cls.py":
        argv.append(f"output_dir={ctx.existing}")
    before = {k: v for k, v in _snapshot(ctx.existing).items() if k in RESULTS}
    line = one_line_error(run_tool(*argv, timeout=600))
    assert needle in line, line
    assert not ctx.marker.exists(), f"{case}: the crafted pickle's code ran"
    assert _unchanged(before, ctx.existing), f"{case}: files in an existing output dir changed"


def test_unreadable_detection_training_image_is_skipped_and_named(ctx, tmp_path):
    """A truncated JPEG among the training images: named in a warning, training goes on and finishes."""
    res = run_tool(
        *det_truncated_image(ctx),
        "--output-dir",
        str(tmp_path),
        "train.max_iter=3",
        "train.eval_period=3",
        "train.checkpointer.period=100",
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert (
        "skipping unreadable image" in res.stdout + res.stderr
        and "det_trunc_images" in res.stdout + res.stderr
    )
    assert (tmp_path / "metrics.json").exists()
