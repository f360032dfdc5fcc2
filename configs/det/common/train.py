# Optimizer, schedule and run settings (Li et al.): AdamW (0.9, 0.999), half-period cosine with a
# 0.25-epoch linear warmup, batch 64, mixed precision. lr / wd / drop path are written by the recipe files
# from the entry table (mae_transfer.recipes.set_det_entry); --init ENTRY re-applies it for another entry.
import torch
from detectron2.config import LazyCall as L
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import CosineParamScheduler

from mae_transfer.det.modeling import det_param_groups
from mae_transfer.recipes import det_iters

epochs = 100

optimizer = L(torch.optim.AdamW)(
    params=L(det_param_groups)(lr="${..lr}", weight_decay="${..weight_decay}", layer_decay=1.0),
    lr=8e-5,
    betas=(0.9, 0.999),
    weight_decay=0.1,
)
lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(CosineParamScheduler)(start_value=1.0, end_value=0.0),
    warmup_length=0.25 / epochs,
    warmup_factor=0.001,
)
train = dict(
    output_dir="output/det/mask_rcnn_mae_vit_b_100ep",
    init_checkpoint="",     # a whole-detector checkpoint (detectron2 format); backbone weights go in --weights
    max_iter=det_iters(epochs),
    amp=dict(enabled=True),  # bf16 where supported, else fp16; ignored on CPU
    ddp=dict(broadcast_buffers=False, find_unused_parameters=False, fp16_compression=True),
    checkpointer=dict(period=5000, max_to_keep=3),
    eval_period=det_iters(epochs),
    log_period=20,
    device="cuda",
)
# The Table 4 entry this run belongs to (init x size; recipe li | vitdet).
entry = dict(init="mae", size="B", recipe="li")
