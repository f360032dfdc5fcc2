#!/usr/bin/env python
"""One Mask R-CNN training iteration at the real 1024 input, ours vs detectron2's ViTDet-B, side by side,
under the precision the harness uses (bf16 autocast on GPUs and on CPUs with native bf16).

Each model runs in its own subprocess (clean peak-RSS on CPU; allocator peak on CUDA) on the same real
coco128 image through the same LSJ mapper, batch 1. Prints step time, peak memory, their ratios.

  python benchmarks/bench_det.py                                   # ViT-B (ours, Li et al.) vs ViTDet-B
  python benchmarks/bench_det.py --configs configs/det/mask_rcnn_vit_b_100ep.py \
      configs/det/mask_rcnn_vit_l_100ep.py
"""

from __future__ import annotations

import time
from typing import Any

import torch

try:
    from benchmarks._common import compare_isolated, peak_mib
except ModuleNotFoundError:  # run as a script: benchmarks/ itself is on sys.path
    from _common import compare_isolated, peak_mib
from mae_transfer.kernels import set_attention_kernel
from mae_transfer.paths import REPO_ROOT, shared_data
from mae_transfer.utils import autocast, precision_name, resolve_precision

VITDET_REF = "detectron2:common/models/mask_rcnn_vitdet.py"


def _batch(image_size: int = 1024) -> list[dict]:
    """One coco128 training image through detectron2's LSJ mapper at 1024 (deterministic crop)."""
    import detectron2.data.transforms as T
    from detectron2.data import DatasetMapper, get_detection_dataset_dicts

    from mae_transfer.det.data import register_coco

    root = shared_data("coco128")
    register_coco("coco128_train", f"{root}/annotations/instances_train2017.json", f"{root}/train2017")
    record = get_detection_dataset_dicts("coco128_train")[0]
    torch.manual_seed(0)
    mapper = DatasetMapper(
        is_train=True,
        augmentations=[
            T.ResizeScale(min_scale=1.0, max_scale=1.0, target_height=image_size, target_width=image_size),
            T.FixedSizeCrop(crop_size=(image_size, image_size), pad=False),
        ],
        image_format="RGB",
        use_instance_mask=True,
        instance_mask_format="bitmask",
        recompute_boxes=True,
    )
    return [mapper(record)]


def one_iteration(
    config: str, device: str | None = None, steps: int = 1, image_size: int | None = None
) -> dict[str, Any]:
    """Build the detector of ``config`` (or VITDET_REF), run ``steps`` training iterations, report
    time/memory."""
    from detectron2 import model_zoo
    from detectron2.config import LazyConfig, instantiate
    from detectron2.utils.events import EventStorage

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    # what the harness runs: bf16 on GPU / AMX CPU
    amp_dtype = resolve_precision("auto", torch.device(device))
    if config == VITDET_REF:
        model_cfg = model_zoo.get_config("common/models/mask_rcnn_vitdet.py").model
        lr, wd, name = 1e-4, 0.1, "detectron2 ViTDet-B (model_zoo common/models/mask_rcnn_vitdet.py)"
    else:
        cfg = LazyConfig.load(str(REPO_ROOT / config) if not config.startswith("/") else config)
        model_cfg, lr, wd, name = cfg.model, cfg.optimizer.lr, cfg.optimizer.weight_decay, config
    torch.manual_seed(0)
    model = instantiate(model_cfg).to(device).train()
    # as the harness does (no-op for detectron2 ViT)
    set_attention_kernel(model, torch.device(device), "fast")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    batch = _batch(image_size or 1024)
    rss_built = peak_mib(device)
    times, losses = [], {}
    with EventStorage(0):
        for _ in range(steps + 1):  # the first step warms up allocators and optimizer state
            t0 = time.perf_counter()
            with autocast(torch.device(device), amp_dtype):
                loss_dict = model(batch)
            sum(loss_dict.values()).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
            losses = {k: float(v) for k, v in loss_dict.items()}
    return {
        "model": name,
        "device": device,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "precision": precision_name(amp_dtype),
        "step_s": min(times[1:]) if steps else times[0],
        "first_step_s": times[0],
        "peak_mib": peak_mib(device),
        "rss_after_build_mib": rss_built,
        "losses": losses,
    }


def main() -> None:
    compare_isolated(
        __file__,
        __doc__,
        one_iteration,
        ["configs/det/mask_rcnn_vit_b_100ep.py", VITDET_REF],
        "Mask R-CNN, one training iteration, batch 1 (1024x1024 unless --image-size)",
    )


if __name__ == "__main__":
    main()
