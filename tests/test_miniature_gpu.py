"""The GPU miniature stays runnable: its data copy keeps the COCO geometry, and ``reproduce_gpu.sh --smoke``
runs the whole pipeline (three encoders, the search over random / supervised / MAE init, both tables) on
CPU."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from PIL import Image

from conftest import run_in_session
from mae_transfer.paths import REPO_ROOT, shared_data


@pytest.fixture(scope="module")
def smoke_data(tmp_path_factory):
    """scripts/pack_mini_data.py --smoke: 4 images per split / class folder of balloon, CamVid, CIFAR-10."""
    data = tmp_path_factory.mktemp("minidata") / "data"
    subprocess.run(
        [sys.executable, "scripts/pack_mini_data.py", str(data), "--smoke"], cwd=REPO_ROOT, check=True
    )
    return data


def test_packed_balloon_is_the_shared_one_scaled(smoke_data):
    src = json.loads((REPO_ROOT / shared_data("balloon", "annotations", "instances_train.json")).read_text())
    packed = json.loads((smoke_data / "balloon/annotations/instances_train.json").read_text())
    assert len(packed["images"]) == 4
    for im in packed["images"]:
        with Image.open(smoke_data / "balloon/train" / im["file_name"]) as photo:
            assert photo.size == (im["width"], im["height"]) and max(photo.size) <= 640
        orig = next(o for o in src["images"] if o["id"] == im["id"])
        scale = im["width"] / orig["width"]
        assert abs(im["height"] / orig["height"] - scale) < 0.01
        for ann in (a for a in packed["annotations"] if a["image_id"] == im["id"]):
            before = next(a for a in src["annotations"] if a["id"] == ann["id"])
            assert abs(ann["area"] - before["area"] * scale**2) < 1e-6 * before["area"]
            xs, ys = ann["segmentation"][0][0::2], ann["segmentation"][0][1::2]
            x, y, w, h = ann["bbox"]  # the polygon's tight box, scaled with it
            assert abs(min(xs) - x) < 0.02 and abs(max(ys) - (y + h)) < 0.02 and x + w <= im["width"]
    assert {p.name for p in (smoke_data / "camvid/annotations").iterdir()} == {
        "training",
        "validation",
        "test",
    }


def test_reproduce_gpu_smoke_makes_both_tables(smoke_data, tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, MAE_TRANSFER_DATA=str(smoke_data), MAE_TRANSFER_MINI_OUT=str(out))
    done = run_in_session(["bash", "configs/mini/reproduce_gpu.sh", "--smoke"], REPO_ROOT, env, 900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for stage in ("pretrain", "pretrain_balloon6", "supervised", "encoders", "search", "report", "total"):
        assert re.search(rf"\[reproduce_gpu\] {stage}: \d+ s", done.stdout), stage
    report = (out / "report" / "report.md").read_text()
    for table in ("Table 4 (detection: Mask R-CNN)", "Table 5 (segmentation: UperNet)"):
        section = report.split(f"## {table}")[1].split("## ")[0]
        rows = [line for line in section.splitlines() if line.startswith("| ") and " mini " in line]
        assert [r.split(" | ")[0] for r in rows] == ["| random init", "| supervised", "| MAE"], section
        assert all(" | 2 | 2 | " in r for r in rows)  # seeds 1-2, two trials each
        assert "Outside seed noise?" in section
    assert (out / "pretrain_balloon6" / "encoder.pth").is_file() and (
        out / "supervised" / "metrics.json"
    ).is_file()


def test_packer_bad_inputs_are_one_line_and_keep_what_exists(tmp_path):
    existing = tmp_path / "copy"
    existing.mkdir()
    (existing / "mine.txt").write_text("kept")
    missing = tmp_path / "new"
    for dest, env, culprit in (
        (existing, {}, str(existing)),
        (missing, {"MAE_TRANSFER_DATA": str(tmp_path / "nowhere")}, "instances_train.json"),
    ):
        done = subprocess.run(
            [sys.executable, "scripts/pack_mini_data.py", str(dest), "--smoke"],
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
        )
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), done.stderr
        assert culprit in lines[0]
    assert (existing / "mine.txt").read_text() == "kept" and sorted(p.name for p in tmp_path.iterdir()) == [
        "copy"
    ]
