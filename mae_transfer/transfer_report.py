"""One pretrained checkpoint through detection, segmentation and the classification evals: one report.

Each evaluation is the real tool (``tools/train_det.py``, ``tools/train_seg.py``, ``tools/eval_cls.py``) run
as a subprocess with its own output folder and log; the report gathers their ``metrics.json``. A failed
evaluation is reported with its error and log path, and the others still run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .checkpoints import extract_state_dict, load_checkpoint
from .errors import ConfigError
from .paths import REPO_ROOT
from .toolrun import last_error, read_metrics, run_tool
from .utils import write_json_atomic

# preset -> evaluation -> (tool, base arguments); the checkpoint and output folder are added per run
PRESETS: dict[str, dict[str, tuple[str, list[str]]]] = {
    # CPU-sized: the tiny patch-4 encoder of configs/pretrain/cifar10_tiny.py on coco128 and CIFAR-10
    "mini": {
        "det": (
            "tools/train_det.py",
            [
                "--config",
                "configs/det/mini/mask_rcnn_vit_tiny_p4_coco128.py",
                "--init",
                "mae",
                "train.max_iter=120",
                "train.eval_period=120",
                "dataloader.train.total_batch_size=2",
            ],
        ),
        "seg": (
            "tools/train_seg.py",
            [
                "--config",
                "configs/seg/mini/upernet_vit_tiny_p4_coco128.py",
                "--init",
                "mae",
                "--cfg-options",
                "train_cfg.max_iters=160",
                "train_cfg.val_interval=160",
                "param_scheduler.1.end=160",
                "model.test_cfg.mode=whole",
            ],
        ),
        "linprobe": ("tools/eval_cls.py", ["--config", "configs/cls/cifar10_tiny_linprobe.py"]),
        "finetune": ("tools/eval_cls.py", ["--config", "configs/cls/cifar10_tiny_finetune.py"]),
    },
    # the paper's ViT-B recipes (pass dataset locations and launchers with --extra TASK=ARGS)
    "vit_b": {
        "det": ("tools/train_det.py", ["--config", "configs/det/mask_rcnn_vit_b_100ep.py", "--init", "mae"]),
        "seg": (
            "tools/train_seg.py",
            ["--config", "configs/seg/upernet_vit_b_512x512_160k_ade20k.py", "--init", "mae"],
        ),
        "linprobe": ("tools/eval_cls.py", ["--config", "configs/cls/linprobe_vit_base.py"]),
        "finetune": ("tools/eval_cls.py", ["--config", "configs/cls/finetune_vit_base.py"]),
    },
}
HEADLINE = {
    "det": ("APbox", "APmask"),
    "seg": ("mIoU", "aAcc"),
    "linprobe": ("top1", "top5"),
    "finetune": ("top1", "top5"),
}


def command(tool: str, base: list[str], weights: str, out: Path, extra: list[str]) -> list[str]:
    args = list(base)
    if tool.endswith("eval_cls.py"):  # flat key=value tool
        args += [f"weights={weights}", f"output_dir={out}", *extra]
    else:
        flag = "--work-dir" if tool.endswith("train_seg.py") else "--output-dir"
        head, tail = (
            (args[: args.index("--cfg-options")], args[args.index("--cfg-options") :])
            if "--cfg-options" in args
            else (args, [])
        )
        args = [*head, "--weights", weights, flag, str(out), *tail, *extra]
    return [sys.executable, str(REPO_ROOT / tool), *args]


def transfer_report(
    weights: str,
    out_dir: str | Path,
    preset: str = "mini",
    only: list[str] | None = None,
    extra: dict[str, list[str]] | None = None,
) -> Path:
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    # a missing, torn or refused file: one line, up front
    extract_state_dict(load_checkpoint(weights), weights)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    evals = {k: v for k, v in PRESETS[preset].items() if not only or k in only}
    results: dict[str, Any] = {"weights": str(weights), "preset": preset, "evaluations": {}}
    for name, (tool, base) in evals.items():
        run_dir = out / name
        cmd = command(tool, base, str(weights), run_dir, (extra or {}).get(name, []))
        log_path = out / f"{name}.log"
        log_path.unlink(missing_ok=True)  # a re-run's log starts afresh
        rc, seconds = run_tool(cmd, log_path)
        entry: dict[str, Any] = {"command": " ".join(cmd), "log": str(log_path), "seconds": round(seconds)}
        metrics = read_metrics(run_dir) if rc == 0 else None
        if metrics is not None:
            entry["metrics"] = {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}
            if (run_dir / "val_preview.png").is_file():
                entry["preview"] = str(Path(name) / "val_preview.png")
        else:
            entry["error"] = last_error(log_path) or f"exit {rc}"
        results["evaluations"][name] = entry
        write_json_atomic(results, out / "report.json")
    lines = [
        f"# Transfer report: `{weights}`",
        "",
        f"Preset `{preset}`; each evaluation's log and outputs are under `{out}`.",
        "",
        "| evaluation | metric | value | 2nd metric | value | time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in results["evaluations"].items():
        m = entry.get("metrics", {})
        a, b = HEADLINE[name]

        def fmt(v: Any) -> str:
            return f"{v:.2f}" if isinstance(v, (int, float)) else "-"

        if m:
            lines.append(f"| {name} | {a} | {fmt(m.get(a))} | {b} | {fmt(m.get(b))} | {entry['seconds']} |")
        else:
            lines.append(
                f"| {name} | failed: {entry['error']} (log: {entry['log']}) | | | | {entry['seconds']} |"
            )
    previews = [(name, e["preview"]) for name, e in results["evaluations"].items() if e.get("preview")]
    if previews:  # validation images, ground truth | prediction
        lines += ["", "## Predictions (validation: ground truth | prediction)", ""]
        lines += [f"### {name}\n\n![{name}]({preview})\n" for name, preview in previews]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
