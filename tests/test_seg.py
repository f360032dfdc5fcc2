"""mmsegmentation harness: UperNet training/eval on coco128 semantic labels, configs, bad input, resume,
and parity with mmseg's own MAE backbone."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import COCO128, assert_seed_decides_the_run, one_line_error, run_tool
from mae_transfer.checkpoints import load_checkpoint
from mae_transfer.paths import REPO_ROOT
from mae_transfer.seg.compat import patch_mmengine
from mae_transfer.utils import cpu_has_native_bf16

MINI = "configs/seg/mini/upernet_vit_tiny_coco128.py"
CLASSES = str(COCO128 / "semantic/classes.txt")


def label_folder(root: Path, split: str, n: int) -> tuple[str, str]:
    """images/ + labels/ with symlinks to the first ``n`` coco128 pairs of a split."""
    img_dir, lbl_dir = root / "images", root / "labels"
    img_dir.mkdir(parents=True, exist_ok=True)
    lbl_dir.mkdir(parents=True, exist_ok=True)
    images = "train2017" if split == "training" else "val2017"
    for lbl in sorted((COCO128 / "semantic" / split).glob("*.png"))[:n]:
        (img_dir / f"{lbl.stem}.jpg").symlink_to(COCO128 / images / f"{lbl.stem}.jpg")
        (lbl_dir / lbl.name).symlink_to(lbl)
    return str(img_dir), str(lbl_dir)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, tuple[str, str]]:
    root = tmp_path_factory.mktemp("seg_folders")
    return {
        "train2": label_folder(root / "train2", "training", 2),
        "val4": label_folder(root / "val4", "validation", 4),
    }


def seg(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return run_tool("tools/train_seg.py", "--config", MINI, *args, timeout=timeout)


def data_args(train: tuple[str, str] | None, val: tuple[str, str]) -> list[str]:
    out = ["--classes", CLASSES, "--val-images", val[0], "--val-labels", val[1]]
    if train:
        out += ["--train-images", train[0], "--train-labels", train[1]]
    return out


def scalars(work_dir: Path) -> list[dict]:
    files = list(work_dir.glob("*/vis_data/scalars.json"))
    return [json.loads(line) for f in files for line in f.read_text().splitlines()]


def test_train_and_evaluate_end_to_end(tmp_path, folders):
    """coco128 semantic train (100 images) -> val subset: loss falls, mIoU / aAcc / per-class IoU produced."""
    res = seg(
        *data_args(None, folders["val4"]),
        "--work-dir",
        str(tmp_path),
        "--iters",
        "150",
        "--cfg-options",
        "default_hooks.logger.interval=10",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    # the console: what runs (compact recipe card, data counts), then progress; the environment, the config
    # and mmengine's hook table went to its log file only, known-harmless warnings nowhere
    console = (res.stdout + res.stderr).splitlines()
    first_screen = console[: next(i for i, ln in enumerate(console) if "Iter(train)" in ln)]
    assert len(first_screen) <= 25, "\n".join(first_screen)
    assert any("data: 100 training images" in ln and "4 validation images" in ln for ln in first_screen)
    assert not any(
        k in "\n".join(console) for k in ("System environment", "Config:", "Hooks will be", "Warning")
    )
    assert "System environment" in next(tmp_path.glob("*/*.log")).read_text()
    lrs = [r["lr"] for r in scalars(tmp_path) if "lr" in r]
    # --iters 150: the poly decay ends with the run, not at the config's 1000
    assert lrs[-1] < 0.05 * max(lrs)
    assert 0.8 * 2e-4 < max(lrs) <= 2e-4  # the logged lr is the base lr (2e-4), not the most decayed group's
    # two panels: loss, mIoU (an evaluation ran)
    assert Image.open(tmp_path / "curves.png").size == (
        1000,
        340,
    )
    losses = [r["loss"] for r in scalars(tmp_path) if "loss" in r]  # each a 10-iteration mean, batch 2
    assert len(losses) == 15 and np.mean(losses[-4:]) < np.mean(losses[:4]), losses
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["mIoU"] is not None and metrics["aAcc"] is not None and metrics["iteration"] == 150
    assert len(metrics["per_class_IoU"]) == 133 and "person" in metrics["per_class_IoU"]
    compute = metrics["compute"]  # 150 iterations x batch 2 in one process, validation time left out
    assert compute["images_seen"] == 300 and compute["processes"] == 1 and compute["s_per_iter"] > 0
    assert 0 < compute["data_wait_fraction"] < 1  # the time spent waiting for batches
    waits = [r["data_wait"] for r in scalars(tmp_path) if "data_wait" in r]  # logged with the loss
    assert waits and all(0 < w < 1 for w in waits)
    # AmpOptimWrapper on CPU: bf16 autocast (CPUAmpOptimWrapper) where the CPU has native bf16, else fp32
    expected = "bf16 autocast (CPU)" if cpu_has_native_bf16() else "precision: fp32"
    assert expected in (tmp_path / "recipe.json").read_text()
    assert (
        list(tmp_path.glob("*/vis_data/events.out.tfevents*"))
        and (tmp_path / "upernet_vit_tiny_coco128.py").exists()
    )
    preview = np.asarray(Image.open(tmp_path / "val_preview.png"))  # 4 rows: ground truth | prediction
    assert preview.shape[0] == 4 * 240 + 3 * 4
    # the predict tool on the run: class colours over the image plus a legend column
    image = sorted(Path(folders["val4"][0]).iterdir())[0]
    res = run_tool("tools/predict.py", str(tmp_path), str(image), "--out", str(tmp_path / "pred"))
    assert res.returncode == 0, res.stderr[-2000:]
    drawn = Image.open(tmp_path / "pred" / f"{image.stem}.png")
    w, h = Image.open(image).size
    assert drawn.size[0] == w + 150 and drawn.size[1] >= h


def test_label_folder_takes_the_image_suffix_it_finds(tmp_path, folders):
    """A folder of .png photos (not the .jpg default) loads without an img_suffix setting."""
    from PIL import Image

    from mae_transfer.seg.datasets import LabelFolderDataset

    src_img, src_lbl = folders["val4"]
    (tmp_path / "img").mkdir()
    for p in sorted(Path(src_img).iterdir())[:2]:
        Image.open(p).save(tmp_path / "img" / f"{p.stem}.png")
    ds = LabelFolderDataset(
        classes_file=CLASSES,
        data_root="",
        pipeline=[],
        data_prefix=dict(img_path=str(tmp_path / "img"), seg_map_path=src_lbl),
    )
    assert len(ds) == 2 and ds.get_data_info(0)["img_path"].endswith(".png")


def test_segmentation_overlay_keeps_ignored_pixels_and_names_present_classes():
    """colorize blends the palette only where a class is given (255 = ignore stays the image's); the legend
    lists exactly the classes present."""
    from mmengine.config import Config

    from mae_transfer.seg.predict import SegPredictor

    cfg = Config.fromfile(str(REPO_ROOT / MINI))
    predictor = SegPredictor(cfg, torch.nn.Identity(), [f"class{i}" for i in range(133)])
    image = np.full((40, 60, 3), 100, np.uint8)
    labels = np.full((40, 60), 255)
    labels[10:20, 10:30] = 3
    overlay = predictor.colorize(image, labels)
    changed = (overlay != image).any(-1)
    assert changed[10:20, 10:30].all() and changed.sum() == 200
    with_legend = predictor.legend(overlay, labels)
    assert with_legend.shape[1] == 60 + 150 and (with_legend[:40, :60] == overlay).all()
    swatch = with_legend[4 + 5, 60 + 12]  # the first (only) legend row's colour box
    assert tuple(swatch) == tuple(predictor.palette[3])


def test_same_seed_repeats_bit_for_bit_another_seed_differs(tmp_path, folders):
    """randomness.seed decides everything random (init, data order, crops and photometric jitter, drop path):
    seed 0 twice gives identical losses and weights on CPU, seed 1 other ones."""
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        res = seg(
            *data_args(None, folders["val4"]),
            "--work-dir",
            str(tmp_path / name),
            "--cfg-options",
            "train_cfg.max_iters=4",
            "train_cfg.val_interval=1000",
            "default_hooks.logger.interval=1",
            "default_hooks.checkpoint.interval=4",
            "model.backbone.drop_path_rate=0.1",
            f"randomness.seed={seed}",
        )
        assert res.returncode == 0, res.stderr[-3000:]
        losses = [r["loss"] for r in scalars(tmp_path / name) if "loss" in r]
        patch_mmengine()  # mmengine checkpoints hold its message-hub types
        weights = load_checkpoint(tmp_path / name / "iter_4.pth")["state_dict"]
        runs[name] = losses, weights
    assert_seed_decides_the_run(runs)


@pytest.mark.slow
def test_learning_is_real_on_two_images(tmp_path, folders):
    args = data_args(folders["train2"], folders["train2"])
    before = seg(*args, "--work-dir", str(tmp_path / "untrained"), "--eval-only")
    assert before.returncode == 0, before.stderr[-3000:]
    after = seg(
        *args,
        "--test-images",
        folders["train2"][0],
        "--test-labels",
        folders["train2"][1],
        "--work-dir",
        str(tmp_path / "trained"),
        "--cfg-options",
        "train_cfg.max_iters=140",
        "train_cfg.val_interval=140",
        "optim_wrapper.optimizer.lr=8e-4",  # mIoU 59.4 here (200 at 5e-4: 60.8)
    )
    assert after.returncode == 0, after.stderr[-3000:]
    untrained = json.loads((tmp_path / "untrained/metrics_eval.json").read_text())
    m0 = untrained["mIoU"]
    assert (
        untrained["checkpoint"] == "initialization (random)"
        and not (tmp_path / "untrained/metrics.json").exists()
    )
    trained = json.loads((tmp_path / "trained/metrics.json").read_text())
    assert trained["mIoU"] > m0 + 20.0, (m0, trained["mIoU"])
    # --test-images: one evaluation of the trained model after training, kept beside the validation result
    # (here the same two images, so the same mIoU)
    assert trained["phase"] == "val" and trained["test"]["phase"] == "test"
    assert trained["test"]["mIoU"] == trained["mIoU"] and trained["test"]["iteration"] == 140
    # --eval-only on the trained run: metrics_eval.json names the checkpoint; the training metrics stay
    again = seg(*args, "--work-dir", str(tmp_path / "trained"), "--eval-only")
    assert again.returncode == 0, again.stderr[-3000:]
    evaluated = json.loads((tmp_path / "trained/metrics_eval.json").read_text())
    assert evaluated["checkpoint"].endswith("iter_140.pth") and evaluated["mIoU"] == trained["mIoU"]
    assert json.loads((tmp_path / "trained/metrics.json").read_text()) == trained


def test_killed_run_resumes_with_weights_only_loading(tmp_path, folders):
    args = [
        sys.executable,
        "tools/train_seg.py",
        "--config",
        MINI,
        "--work-dir",
        str(tmp_path),
        *data_args(folders["train2"], folders["val4"]),
        "--cfg-options",
        "train_cfg.max_iters=30",
        "train_cfg.val_interval=30",
        "default_hooks.checkpoint.interval=10",
        "default_hooks.logger.interval=5",
    ]
    proc = subprocess.Popen(args, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None and not (tmp_path / "iter_10.pth").exists():
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "metrics.json").exists()
    res = subprocess.run([*args, "--resume"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resumed" in res.stdout.lower() or "resumed" in res.stderr.lower()
    assert json.loads((tmp_path / "metrics.json").read_text())["iteration"] == 30
    saved = (tmp_path / "upernet_vit_tiny_coco128.py").read_text()  # the data given by flags, nothing stale
    assert "\ndataset = " not in saved and "\nroot = " not in saved and "mae_vit_tiny_p16" in saved
    assert "init='random'" in saved and "size=" not in saved.split("entry = ", 1)[1].split(")", 1)[0]
    # mmengine's checkpoint loads with torch's default weights_only=True thanks to the allow-list
    patch_mmengine()  # mmengine checkpoints hold its message-hub types
    ckpt = torch.load(tmp_path / "iter_30.pth", weights_only=True)
    assert ckpt["meta"]["iter"] == 30


# ----------------------------------------------------------------------------- bad input
def _bad_folder(tmp_path: Path, name: str, folders, edit) -> tuple[str, str]:
    src_img, src_lbl = folders["val4"]
    img_dir, lbl_dir = tmp_path / name / "images", tmp_path / name / "labels"
    img_dir.mkdir(parents=True)
    lbl_dir.mkdir(parents=True)
    for f in Path(src_img).iterdir():
        (img_dir / f.name).symlink_to(f.resolve())
    for f in Path(src_lbl).iterdir():
        (lbl_dir / f.name).symlink_to(f.resolve())
    edit(img_dir, lbl_dir)
    return str(img_dir), str(lbl_dir)


def test_bad_input_errors_are_one_line(tmp_path, folders):
    def resized_label(img_dir, lbl_dir):
        f = sorted(lbl_dir.iterdir())[0]
        arr = np.asarray(Image.open(f.resolve()))
        f.unlink()
        Image.fromarray(arr[:-7]).save(f)

    def out_of_range(img_dir, lbl_dir):
        f = sorted(lbl_dir.iterdir())[1]
        arr = np.asarray(Image.open(f.resolve())).copy()
        f.unlink()
        arr[0, 0] = 200
        Image.fromarray(arr).save(f)

    bad = _bad_folder(tmp_path, "size", folders, resized_label)
    err = one_line_error(seg(*data_args(bad, folders["val4"]), "--work-dir", str(tmp_path / "w1")))
    assert "label" in err and ".png" in err and "but its image" in err
    bad = _bad_folder(tmp_path, "range", folders, out_of_range)
    err = one_line_error(seg(*data_args(bad, folders["val4"]), "--work-dir", str(tmp_path / "w2")))
    assert "holds value 200 above the class count (133 classes" in err
    # a bad test split (evaluated once after training) is found before anything trains
    err = one_line_error(
        seg(
            *data_args(folders["train2"], folders["val4"]),
            "--test-images",
            str(tmp_path / "nope"),
            "--test-labels",
            folders["val4"][1],
            "--work-dir",
            str(tmp_path / "w_test"),
        )
    )
    assert "image folder not found" in err and "nope" in err
    assert not list((tmp_path / "w_test").glob("iter_*.pth"))
    err = one_line_error(seg(*data_args(None, folders["val4"]), "--test-images", folders["val4"][0]))
    assert "--test-images and --test-labels go together" in err
    err = one_line_error(
        seg(
            "--classes",
            str(tmp_path / "nope.txt"),
            "--val-images",
            folders["val4"][0],
            "--val-labels",
            folders["val4"][1],
        )
    )
    assert "classes file not found" in err and "nope.txt" in err
    err = one_line_error(seg("--cfg-options", "model.decode_head.chanels=64"))
    assert "chanels" in err and "UPerHead" in err
    err = one_line_error(seg("--cfg-options", "train_cfg.max_iterz=3"))
    assert "unknown config key 'train_cfg.max_iterz'" in err
    err = one_line_error(
        seg(
            *data_args(folders["train2"], folders["val4"]),
            "--work-dir",
            str(tmp_path / "nan"),
            "--cfg-options",
            "train_cfg.max_iters=3",
            "model.decode_head.loss_decode.loss_weight=1e39",
        )
    )
    assert "loss is inf at iteration 1" in err
    wrong = tmp_path / "wrong.pth"
    torch.save({"model": {"patch_embed.proj.weight": torch.zeros(32, 3, 16, 16)}}, wrong)
    err = one_line_error(
        seg(
            *data_args(folders["train2"], folders["val4"]),
            "--weights",
            str(wrong),
            "--work-dir",
            str(tmp_path / "w3"),
        )
    )
    assert "wrong.pth" in err and "(32, 3, 16, 16)" in err


# ----------------------------------------------------------------------------- configs and parity
def test_table5_configs():
    from mmengine.config import Config

    from mae_transfer.recipes import seg_entry_values

    b = Config.fromfile(str(REPO_ROOT / "configs/seg/upernet_vit_b_512x512_160k_ade20k.py"))
    mae_b = seg_entry_values("mae", "B")
    assert (
        b.optim_wrapper.optimizer.lr == mae_b["lr"] and b.model.backbone.drop_path_rate == mae_b["drop_path"]
    )
    assert (
        b.optim_wrapper.optimizer.weight_decay == 0.05 and b.optim_wrapper.paramwise_cfg.layer_decay == 0.65
    )
    assert (
        b.param_scheduler[0].end == 1500
        and b.param_scheduler[1].power == 1.0
        and b.train_cfg.max_iters == 160000
    )
    assert b.train_dataloader.batch_size * 8 == 16
    assert b.model.backbone.taps == (3, 5, 7, 11) and b.model.backbone.window_size == 0
    assert b.model.backbone.rel_pos == "per_block" and b.model.decode_head.channels == 768
    assert b.model.backbone.use_cls_token
    assert b.model.auxiliary_head.loss_decode.loss_weight == 0.4 and b.model.auxiliary_head.in_index == 2
    assert b.model.test_cfg.mode == "slide" and b.model.test_cfg.stride == (341, 341)
    large = Config.fromfile(str(REPO_ROOT / "configs/seg/upernet_vit_l_512x512_160k_ade20k.py"))
    assert large.model.backbone.taps == (7, 11, 15, 23) and large.model.backbone.name == "mae_vit_l"


def test_backbone_maps_equal_mmseg_mae_backbone(tmp_path):
    """Same weights in mmseg's ``MAE`` backbone and ours (configured like it) give the same maps.

    Configured like mmseg's: the cls token stays in the sequence, every block global with its own relative
    position table (cls rows included), and layer scale (mmseg's MAE always has it; init 1.0 in its config).
    Our Table 5 configs differ only there: they add no layer scale (the MAE ViT has none).
    """
    from mmseg.models.backbones import MAE

    from mae_transfer.backbone import build_backbone

    torch.manual_seed(0)
    ref = MAE(
        img_size=64,
        patch_size=16,
        embed_dims=64,
        num_layers=4,
        num_heads=2,
        out_indices=[0, 1, 2, 3],
        init_values=1.0,
        norm_cfg=dict(type="LN", eps=1e-6),
    )
    ref.eval()  # (mmseg's BEiT.train returns None: no chaining)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # non-trivial rel-pos tables and layer scales too
    canonical = {
        "cls_token": ref.cls_token,
        "pos_embed": ref.pos_embed,
        "patch_embed.proj.weight": ref.patch_embed.projection.weight,
        "patch_embed.proj.bias": ref.patch_embed.projection.bias,
    }
    for i, layer in enumerate(ref.layers):
        p = f"blocks.{i}"
        canonical.update(
            {
                f"{p}.norm1.weight": layer.ln1.weight,
                f"{p}.norm1.bias": layer.ln1.bias,
                f"{p}.attn.qkv.weight": layer.attn.qkv.weight,
                f"{p}.attn.qkv.bias": layer.attn.qkv.bias,
                f"{p}.attn.proj.weight": layer.attn.proj.weight,
                f"{p}.attn.proj.bias": layer.attn.proj.bias,
                f"{p}.attn.relative_position_bias_table": layer.attn.relative_position_bias_table,
                f"{p}.norm2.weight": layer.ln2.weight,
                f"{p}.norm2.bias": layer.ln2.bias,
                f"{p}.mlp.fc1.weight": layer.ffn.layers[0][0].weight,
                f"{p}.mlp.fc1.bias": layer.ffn.layers[0][0].bias,
                f"{p}.mlp.fc2.weight": layer.ffn.layers[1].weight,
                f"{p}.mlp.fc2.bias": layer.ffn.layers[1].bias,
                f"{p}.gamma_1": layer.gamma_1,
                f"{p}.gamma_2": layer.gamma_2,
            }
        )
    torch.save({"model": {k: v.detach().clone() for k, v in canonical.items()}}, tmp_path / "w.pth")
    ours = build_backbone(
        "mae_vit_b",
        embed_dim=64,
        depth=4,
        num_heads=2,
        img_size=64,
        taps=(0, 1, 2, 3),
        window_size=0,
        rel_pos="per_block",
        init_values=1.0,
        use_cls_token=True,
    ).eval()
    report = ours.load_pretrained(str(tmp_path / "w.pth"), source="beit")
    assert not report.resized
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a = ours.vit.forward_taps(x, [0, 1, 2, 3])
        b = ref(x)
    for u, v in zip(a, b):
        assert (u - v).abs().max().item() <= 1e-5 * max(1.0, v.abs().max().item())


@pytest.mark.slow
def test_full_size_vit_b_upernet_one_iteration():
    """The Table 5 ViT-B config at its 512 crops runs one training iteration on CPU (steps=0: no timed step
    after the first)."""
    code = (
        "from benchmarks.bench_seg import one_iteration; import json; "
        "print(json.dumps(one_iteration('configs/seg/upernet_vit_b_512x512_160k_ade20k.py', steps=0)))"
    )
    res = run_tool("-c", code, timeout=1200)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["losses"]["decode.loss_ce"] > 0 and out["step_s"] > 0 and out["peak_mib"] > 0


def test_cpu_amp_optim_wrapper_runs_the_train_forward_in_bf16():
    from mae_transfer.seg.modeling import CPUAmpOptimWrapper

    model = torch.nn.Linear(4, 4)
    wrapper = CPUAmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    with wrapper.optim_context(model):
        assert model(torch.randn(2, 4)).dtype == torch.bfloat16
    assert model(torch.randn(2, 4)).dtype == torch.float32


DETERMINISTIC = """
# The tiny coco128 config with every per-process random draw taken out, so that 2 processes x 1 image and
# 1 process x 2 images compute the same global step: a fixed resize (no random scale, crop, flip or color),
# batches in sampler order, no drop path, no dropout; SyncBN in the pyramid as in the full-size configs (the
# CPU miniature's per-process BN would see 1 image, not 2). SGD, not AdamW: Adam's normalization turns float
# noise on near-zero gradients into full-lr steps, which would hide a real difference in the noise.
_base_ = ["{base}"]
model = dict(backbone=dict(drop_path_rate=0.0, pyramid_norm="SyncBN"), decode_head=dict(dropout_ratio=0.0),
             auxiliary_head=dict(dropout_ratio=0.0))
train_dataloader = dict(num_workers=0, dataset=dict(pipeline=[
    dict(type="LoadImageFromFile"), dict(type="LoadAnnotations", reduce_zero_label=True),
    dict(type="Resize", scale=(128, 128), keep_ratio=False), dict(type="PackSegInputs")]))
optim_wrapper = dict(_delete_=True, type="OptimWrapper", constructor="ContractLayerDecayConstructor",
                     paramwise_cfg=dict(layer_decay=0.65),
                     optimizer=dict(type="SGD", lr=0.01, momentum=0.9, weight_decay=0.0))
param_scheduler = [dict(type="ConstantLR", factor=1.0, by_epoch=False, begin=0, end=4)]
"""


@pytest.mark.slow
def test_two_processes_equal_one_process_with_the_global_batch(tmp_path, folders):
    """torchrun + mmengine's pytorch launcher, 2 CPU processes (gloo) x 1 image vs 1 process x 2 images: the
    same weights and BN running statistics after 4 SGD steps (1e-4 relative). SyncBN (SyncBatchNormCPU here)
    normalizes with the statistics of both processes' images, as BatchNorm does over one batch of 2. Not
    exact: DDP and the BatchNorm all-reduce sum in another order than one process does."""
    config = tmp_path / "deterministic.py"
    config.write_text(DETERMINISTIC.format(base=REPO_ROOT / MINI))

    def args(name: str, batch: int) -> list[str]:
        return [
            "tools/train_seg.py",
            "--config",
            str(config),
            *data_args(folders["val4"], folders["train2"]),
            "--work-dir",
            str(tmp_path / name),
            "--cfg-options",
            f"train_dataloader.batch_size={batch}",
            "train_cfg.max_iters=4",
            "train_cfg.val_interval=1000",
            "default_hooks.logger.interval=1",
            "default_hooks.checkpoint.interval=4",
        ]

    two = run_tool(
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29547",
        *args("two", 1),
        "--launcher",
        "pytorch",
    )
    assert two.returncode == 0, two.stderr[-3000:]
    one = run_tool(*args("one", 2))
    assert one.returncode == 0, one.stderr[-3000:]
    assert "global batch 2 = 2 process(es) x 1" in (tmp_path / "two" / "log_mae_transfer.txt").read_text()
    # mmengine logs the main process's own loss (not the mean over processes): compare weights, and the BN
    # running statistics, which are the global batch's
    patch_mmengine()  # mmengine checkpoints hold its message-hub types
    weights = {name: load_checkpoint(tmp_path / name / "iter_4.pth")["state_dict"] for name in ("one", "two")}
    for key, one in weights[
        "one"
    ].items():  # measured: at most 9e-5 (a BN running variance of 3.2), 3e-5 relative
        torch.testing.assert_close(
            weights["two"][key], one, rtol=1e-4, atol=5e-5, msg=lambda m, k=key: f"{k}: {m}"
        )


@pytest.mark.parametrize("name", ["vit_tiny_patch16_224", "convnext_atto", "resnet18"])
def test_any_timm_model_trains_as_the_backbone(name, tmp_path, folders):
    """--backbone timm:<name> on the ViT config: the heads take the timm model's widths, one iteration trains
    and the model evaluates."""
    res = seg(
        *data_args(folders["train2"], folders["train2"]),
        "--backbone",
        f"timm:{name}",
        "--iters",
        "1",
        "--work-dir",
        str(tmp_path),
    )
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["iteration"] == 1 and len(metrics["per_class_IoU"]) == 133  # evaluated over every class
    from mmengine.config import Config

    saved = Config.fromfile(str(tmp_path / "upernet_vit_tiny_coco128.py")).model
    widths = {
        "vit_tiny_patch16_224": [192] * 4,
        "convnext_atto": [40, 80, 160, 320],
        "resnet18": [64, 128, 256, 512],
    }
    assert saved.backbone.name == f"timm:{name}" and list(saved.decode_head.in_channels) == widths[name]
    assert saved.auxiliary_head.in_channels == widths[name][saved.auxiliary_head.in_index]


def test_importing_the_harness_patches_nothing_until_a_run_asks():
    """``import mae_transfer.seg`` only provides mmcv.ops (mmseg needs it to import); mmengine's checkpoint
    reading and writing change only when ``patch_mmengine()`` is called (at the start of a run)."""
    code = (
        "import torch, mae_transfer.seg, mmseg.models\n"
        "from mmengine.logging.history_buffer import HistoryBuffer\n"
        "import mmengine.runner.runner as r\n"
        "before = (HistoryBuffer.__getstate__, r.save_checkpoint, "
        "len(torch.serialization.get_safe_globals()))\n"
        "mae_transfer.seg.compat.patch_mmengine()\n"
        "after = (HistoryBuffer.__getstate__, r.save_checkpoint, "
        "len(torch.serialization.get_safe_globals()))\n"
        "print([a is b if not isinstance(a, int) else a == b for a, b in zip(before, after)], before[2], "
        "after[2])\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr[-2000:]
    changed, n_before, n_after = res.stdout.split("]")[0] + "]", *res.stdout.split("]")[1].split()
    # the getstate, the atomic writer and mmengine's 10 allow-listed types (HistoryBuffer, numpy's) come after
    assert changed == "[False, False, False]" and int(n_after) - int(n_before) == 10, res.stdout
