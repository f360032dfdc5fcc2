# mmseg's MAE ViT-B config (configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py): AdamW lr 1e-4, wd
# 0.05, layer decay 0.65 (applied by the project's shared rule, which equals mmseg's), 1500-iteration linear
# warmup from 1e-6 then poly (power 1), 160k iterations, mixed precision. tests/test_recipes.py checks each
# number against the installed mmseg's own config.
optim_wrapper = dict(
    # on CPU the tool switches to CPUAmpOptimWrapper (bf16), or fp32 without native bf16
    type="AmpOptimWrapper",
    optimizer=dict(type="AdamW", lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor="ContractLayerDecayConstructor",
    paramwise_cfg=dict(layer_decay=0.65),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type="PolyLR", eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False),
]
train_cfg = dict(type="IterBasedTrainLoop", max_iters=160000, val_interval=16000)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")

default_scope = "mmseg"
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
    dist_cfg=dict(backend="nccl"),
)
default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(type="CheckpointHook", by_epoch=False, interval=16000, max_keep_ckpts=3),
    sampler_seed=dict(type="DistSamplerSeedHook"),
    visualization=dict(type="SegVisualizationHook"),
)
custom_hooks = [dict(type="MetricsJSONHook"), dict(type="NonFiniteLossHook")]
vis_backends = [dict(type="LocalVisBackend"), dict(type="TensorboardVisBackend")]
visualizer = dict(type="SegLocalVisualizer", vis_backends=vis_backends, name="visualizer")
log_processor = dict(by_epoch=False)
log_level = "INFO"
load_from = None
resume = False
randomness = dict(seed=0)
