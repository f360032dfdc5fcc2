"""A newcomer's path: the README's first command (MAE pretraining), then each command it prints."""

from __future__ import annotations

import json
import shlex

import pytest
from test_seg import label_folder

from conftest import COCO128, run_tool
from mae_transfer.det.data import subset_coco
from mae_transfer.paths import REPO_ROOT

COCO_VAL = COCO128 / "annotations/instances_val2017.json"

# what each printed command gets on top: a few iterations into a fresh output dir, validated on a few images
# (the printed config's own training data stays)
QUICK = {
    "train_det.py": lambda out, few: ["--iters", "2", "--output-dir", str(out), *few["det"]],
    "train_seg.py": lambda out, few: ["--iters", "2", "--work-dir", str(out), *few["seg"]],
    "eval_cls.py": lambda out, few: ["epochs=1", "warmup_epochs=0", f"output_dir={out}", *few["cls"]],
}
# the metric each reports in its run's metrics.json
METRIC = {"train_det.py": "APbox", "train_seg.py": "mIoU", "eval_cls.py": "top1"}


def printed_commands(console: str) -> list[list[str]]:
    """The command lines under 'next, with this encoder:', their trailing comments dropped."""
    lines = console.split("next, with this encoder:", 1)[1].splitlines()[1:]
    return [shlex.split(ln, comments=True) for ln in lines if ln.startswith("  ")]


@pytest.mark.slow
def test_every_command_pretraining_prints_runs_as_printed(cifar_small, tmp_path):
    """The README's first command on a small folder, then each printed next step from a fresh output dir:
    each exits 0 and reports its metric (APbox / mIoU / top-1 accuracy)."""
    res = run_tool(
        "tools/pretrain.py",
        "--config",
        "configs/pretrain/cifar10_smoke.py",
        f"data_path={cifar_small / 'train'}",
        "epochs=1",
        "warmup_epochs=0",
        f"output_dir={tmp_path / 'pretrain'}",
        fresh=True,  # its whole console, import-time warnings included
    )
    assert res.returncode == 0, res.stderr[-3000:]
    console = (res.stdout + res.stderr).splitlines()
    first_screen = console[: next(i for i, ln in enumerate(console) if " iter " in ln and "eta" in ln)]
    assert len(first_screen) <= 25 and not any("Warning" in ln for ln in console), "\n".join(first_screen)
    commands = printed_commands(res.stdout + res.stderr)
    assert [c[1].rsplit("/", 1)[-1] for c in commands] == ["train_det.py", "train_seg.py", "eval_cls.py"]
    seg_val = label_folder(tmp_path / "seg_val", "validation", 4)
    few = {
        "det": [
            *("--val-json", str(subset_coco(COCO_VAL, tmp_path / "val4.json", 4))),
            *("--val-images", str(COCO128 / "val2017")),
        ],
        "seg": [
            *("--val-images", seg_val[0], "--val-labels", seg_val[1]),
            *("--classes", str(COCO128 / "semantic/classes.txt")),
        ],
        "cls": [f"data_path={cifar_small}", "batch_size=32"],
    }
    for command in commands:
        tool = command[1].rsplit("/", 1)[-1]
        assert "YOUR_CONFIG" not in command and not any(a.startswith("/path/to") for a in command), command
        out = tmp_path / tool
        done = run_tool(*command[1:], *QUICK[tool](out, few), cwd=REPO_ROOT, timeout=900)
        assert done.returncode == 0, (command, done.stderr[-3000:])
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics[METRIC[tool]] is not None, metrics


def test_importing_the_package_and_loading_configs_prints_nothing():
    """No third-party FutureWarning / deprecation line from ``import mae_transfer`` or a config load through
    the public API, with Python's default warning filters (each warning shown once)."""
    code = (
        "import mae_transfer\n"
        "from detectron2.config import LazyConfig\n"
        "from mmengine.config import Config\n"
        "from mae_transfer.backbone import build_backbone\n"
        "LazyConfig.load('configs/det/mask_rcnn_vit_b_100ep.py')\n"
        "Config.fromfile('configs/seg/upernet_vit_b_512x512_160k_ade20k.py')\n"
        "build_backbone('mae_vit_tiny_p4')\n"
    )
    res = run_tool("-W", "default", "-c", code)
    assert res.returncode == 0 and not res.stdout.strip() and not res.stderr.strip(), res.stderr[-3000:]
