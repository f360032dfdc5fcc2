# Optimizer, schedule and run settings of Li et al. 2021 (MAE App. A.3) for the (MAE, ViT-B, 100 epochs)
# entry:
# AdamW (0.9, 0.999), lr 8e-5, wd 0.1, no layer decay, half-period cosine after a 0.25-epoch linear warmup,
# batch 64, mixed precision. Each number is checked against mae_transfer.recipes.det_reference by
# tests/test_recipes.py; other entries change lr / wd / drop path (--init ENTRY shows what it changed).
import torch
from detectron2.config import LazyCall as L
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import CosineParamScheduler

from mae_transfer.det.modeling import det_param_groups

epochs = 100

optimizer = L(torch.optim.AdamW)(
    params=L(det_param_groups)(
        lr="${..lr}", weight_decay="${..weight_decay}", layer_decay=1.0, weight_decay_rule="li"
    ),
    lr=8e-5,
    betas=(0.9, 0.999),
    weight_decay=0.1,
)
lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(CosineParamScheduler)(start_value=1.0, end_value=0.0),
    warmup_length=0.25 / epochs,  # fraction of max_iter: 0.25 epoch
    warmup_factor=0.001,
)
train = dict(
    output_dir="output/det/mask_rcnn_vit_b_100ep",
    init_checkpoint="",  # a whole-detector checkpoint (detectron2 format); backbone weights go in --weights
    max_iter=184_375,  # 100 epochs of COCO train2017 at batch 64
    amp=dict(enabled=True),  # GPU: bf16 where supported, else fp16; CPU: bf16 if native, else fp32
    ddp=dict(broadcast_buffers=False, find_unused_parameters=False, fp16_compression=True),
    checkpointer=dict(period=5000, max_to_keep=3),
    eval_period=184_375,
    # a declared dataset evaluated once after training, into metrics.json's "test" ('' = none)
    test_dataset="",
    log_period=20,
    device="cuda",
    # this project's choice (detectron2's default -1 draws a fresh seed per run, so no two runs repeat): every
    # random choice of a run (weight init, data order, augmentation, drop path) derives from seed + rank
    seed=0,
)
# The Table 4 entry this run belongs to; `recipe` names the published recipe the numbers claim
# (li | vitdet; '' = none, e.g. the CPU miniatures) and selects the recipe card's reference.
entry = dict(init="mae", size="B", recipe="li", epochs=epochs)
