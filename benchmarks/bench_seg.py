#!/usr/bin/env python
"""One UperNet training iteration at 512x512: our Table 5 configs vs mmseg's own MAE config.

Each model runs in its own subprocess (clean peak RSS on CPU; allocator peak on CUDA), on the same real
coco128 images + labels. Prints step time, peak memory and the ratios against the last model listed.
Batch 2 in one process: UPerHead's pyramid pooling has a 1x1 scale followed by BatchNorm, which cannot
train on a single value per channel (with SyncBN over 8 GPUs x 2 images the recipe never sees that).

  python benchmarks/bench_seg.py            # ours ViT-B vs mmseg configs/mae/mae-base_upernet_...512x512.py
  python benchmarks/bench_seg.py --configs configs/seg/upernet_vit_b_512x512_160k_ade20k.py \\
        configs/seg/upernet_vit_l_512x512_160k_ade20k.py
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

try:
    from benchmarks._common import compare_isolated, peak_mib
except ModuleNotFoundError:  # run as a script: benchmarks/ itself is on sys.path
    from _common import compare_isolated, peak_mib
from mae_transfer.kernels import set_attention_kernel
from mae_transfer.paths import REPO_ROOT, shared_data
from mae_transfer.utils import autocast, precision_name, resolve_precision

MMSEG_MAE = "mmseg:mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py"


def _config(name: str):
    from mmengine.config import Config

    import mae_transfer.seg  # noqa: F401  (mmcv-lite shims + registrations)

    if name.startswith("mmseg:"):
        import mmseg

        path = Path(mmseg.__file__).parent / ".mim" / "configs" / name.split(":", 1)[1]
    else:
        path = REPO_ROOT / name
    cfg = Config.fromfile(str(path))
    _to_bn(cfg.model)
    cfg.model.pretrained = None  # mmseg's config points at a local ./pretrain file; time random weights
    cfg.model.backbone.pop("init_cfg", None)
    return cfg


def _to_bn(node: Any) -> None:  # one process: SyncBN -> BN
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("type", "pyramid_norm") and v == "SyncBN":
                node[k] = "BN"
            else:
                _to_bn(v)
    elif isinstance(node, list):
        for v in node:
            _to_bn(v)


def _batch(size: int = 512, n: int = 2):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    root = Path(shared_data("coco128"))
    inputs, samples = [], []
    for lbl_path in sorted((root / "semantic/training").glob("*.png"))[:n]:
        img = Image.open(root / "train2017" / f"{lbl_path.stem}.jpg").convert("RGB").resize((size, size))
        lbl = np.asarray(Image.open(lbl_path).resize((size, size), Image.NEAREST)).astype(np.int64) - 1
        lbl[lbl < 0] = 255
        lbl[(lbl >= 150) & (lbl != 255)] = 255  # both configs predict the 150 ADE20K classes
        sample = SegDataSample(gt_sem_seg=PixelData(data=torch.from_numpy(lbl)[None]))
        sample.set_metainfo(dict(img_shape=(size, size), pad_shape=(size, size), ori_shape=(size, size)))
        inputs.append(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float())
        samples.append(sample)
    return {"inputs": inputs, "data_samples": samples}


def one_iteration(
    config: str, device: str | None = None, steps: int = 1, image_size: int | None = None
) -> dict[str, Any]:
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    # what the harness runs: bf16 on GPU / AMX CPU
    amp_dtype = resolve_precision("auto", torch.device(device))
    cfg = _config(config)
    init_default_scope("mmseg")
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).to(device).train()
    set_attention_kernel(model, torch.device(device), "fast")  # as the harness does
    model.init_weights()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    batch = _batch(image_size or 512)
    times, losses = [], {}
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        with autocast(torch.device(device), amp_dtype):
            data = model.data_preprocessor(batch, True)
            loss_dict = model(**data, mode="loss")
        loss = sum(v for k, v in loss_dict.items() if "loss" in k)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        losses = {k: float(v) for k, v in loss_dict.items() if "loss" in k}
    peak = peak_mib(device)
    return {
        "model": config,
        "device": device,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "precision": precision_name(amp_dtype),
        "step_s": min(times[1:]) if steps else times[0],
        "peak_mib": peak,
        "losses": losses,
    }


def main() -> None:
    compare_isolated(
        __file__,
        __doc__,
        one_iteration,
        ["configs/seg/upernet_vit_b_512x512_160k_ade20k.py", MMSEG_MAE],
        "UperNet, one training iteration, batch 2 (512x512 unless --image-size)",
    )


if __name__ == "__main__":
    main()
