"""The benchmark scripts stay runnable: the GPU check's --smoke mode runs every benchmark it calls on CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import run_in_session
from mae_transfer.paths import REPO_ROOT


def test_gpu_check_smoke_writes_json_and_markdown(tmp_path):
    # a session of its own: on a timeout the benchmarks the script started die with it, not as orphans
    proc = run_in_session(
        ["bash", "benchmarks/gpu_check.sh", "--smoke"], REPO_ROOT, dict(os.environ, OUT=str(tmp_path)), 900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    assert summary["smoke"] is True
    pre = summary["pretrain"][0]["rows"]
    assert {(r["precision"], r["variant"]) for r in pre} == {
        (p, v) for p in ("fp32", "bf16") for v in ("reference", "fast", "no-skip")
    }
    assert all(r["images_per_s"] > 0 and 0 < r["fraction_of_peak"] < 1 for r in pre)
    fp32_fast = next(r for r in pre if r["precision"] == "fp32" and r["variant"] == "fast")
    # same math, other kernels: Adam moves an entry by at most ~lr (1e-4) per step even where rounding flips
    # the sign of a near-zero gradient, so two steps stay within 1e-3
    assert fp32_fast["max_abs_weight_diff_vs_reference"] < 1e-3
    for task in ("det", "seg"):
        rows = summary[task][0]["rows"]
        assert rows and all(r["step_s"] > 0 and r["peak_mib"] > 0 for r in rows), task
        assert all(v == v for r in rows for v in r["losses"].values()), task  # finite losses
    det = summary["det"][0]["rows"][0]  # --rounds 2: the fastest of two turns
    assert len(det["round_step_s"]) == 2 and det["step_s"] == min(det["round_step_s"])
    data = summary["data"][0]
    assert [r["workers"] for r in data["loader"]] == [0, 1]
    assert all(r["images_per_s"] > 0 for r in data["loader"]) and data["model"]["images_per_s"] > 0
    assert data["workers_needed"] >= 1
    table = (tmp_path / "gpu_check.md").read_text()
    assert "## MAE pretraining step" in table and "## Mask R-CNN" in table and "## UperNet" in table
    assert "## Pretraining data loader" in table


@pytest.mark.parametrize(
    "args",
    [
        ["benchmarks/bench_pretrain.py", "--model", "nope"],
        ["benchmarks/bench_pretrain.py", "--batch", "0"],
        ["benchmarks/bench_det.py", "--configs", "nope.py"],
        ["benchmarks/bench_seg.py", "--steps", "0"],
        ["benchmarks/bench_det.py", "--rounds", "0"],
        ["benchmarks/bench_precision.py", "--configs", "configs/det/missing.py"],
        ["benchmarks/bench_precision.py", "--iters", "5"],
        ["benchmarks/bench_data.py", "--data", "nowhere/"],
        ["benchmarks/bench_data.py", "--workers", "-1"],
    ],
)
def test_benchmark_bad_arguments_are_one_line_errors(args):
    proc = subprocess.run([sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "error:" in proc.stderr.strip().splitlines()[-1], proc.stderr[-2000:]


def test_gpu_check_names_a_default_path_under_its_fraction_of_peak_target():
    """The targets apply to the default path (fast kernels, bf16) of ViT-B and ViT-L; the markdown says met /
    missed for each, and only the models with a target are checked."""
    from benchmarks.gpu_check import markdown, peak_targets

    def res(model, fraction):
        rows = [
            {
                "precision": "bf16",
                "variant": v,
                "images_per_s": 1.0,
                "speedup_vs_reference": 1.0,
                "tflops": 1.0,
            }
            | {"fraction_of_peak": f}
            for v, f in (("reference", 0.9), ("fast", fraction))
        ]
        return {
            "model": model,
            "batch": 64,
            "matmul_peak_tflops": 800,
            "matmul_peak_dtype": "bf16",
            "rows": rows,
        }

    pretrain = [res("mae_vit_base_patch16", 0.41), res("mae_vit_large_patch16", 0.14), res("tiny", 0.01)]
    nothing = [{"device": "cpu", "rows": []}]
    results = {"pretrain": pretrain, "det": nothing, "seg": nothing, "data": []}
    assert peak_targets(results) == [
        ("mae_vit_base_patch16", 0.41, 0.40),
        ("mae_vit_large_patch16", 0.14, 0.45),
    ]
    lines = [line for line in markdown(results).splitlines() if line.startswith("Default path")]
    head = "Default path (fast kernels, bf16) of"
    assert lines == [
        f"{head} mae_vit_base_patch16: 41% of the matmul peak, target 40%: met.",
        f"{head} mae_vit_large_patch16: 14% of the matmul peak, target 45%: **missed**.",
    ]
