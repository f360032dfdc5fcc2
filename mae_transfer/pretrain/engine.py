"""MAE pretraining loop: one function, ``pretrain(cfg)``, that runs the whole recipe.

Works alone, under ``torchrun --nproc_per_node N`` (DDP, gloo on CPU / nccl on GPU) and on Slurm through
submitit (see ``mae_transfer.launch``). Each epoch and rank reseeds from ``cfg.seed``, so a run resumed
from ``checkpoint-last.pth`` ends with exactly the weights of an uninterrupted one.
"""

from __future__ import annotations

import datetime
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from .. import dist
from ..data import SkipCounter, UnlabeledImages, collate_skip_bad, image_key, pretrain_transform
from ..errors import DataError, NonFiniteLossError
from ..kernels import adamw, set_attention_kernel
from ..models.mae import MAE_MODELS, MaskedAutoencoderViT
from ..optim import (
    AccumulatedSteps,
    cosine_lr,
    describe_groups,
    param_groups,
    takes_weight_decay,
    takes_weight_decay_official_mae,
)
from ..rundir import run_in_output_dir
from ..runlog import ComputeMeter, RunLogger, read_jsonl, setup_logging, truncate_jsonl, write_curves
from ..utils import autocast, precision_name, resolve_precision, seed_all, write_json_atomic
from .checkpoints import LAST, export_encoder, load_training_state, save_training_state
from .config import PretrainConfig, build_model
from .next_steps import next_commands

log = logging.getLogger("mae_transfer.pretrain")


def effective_lr(cfg: PretrainConfig, world: int) -> float:
    return cfg.lr if cfg.lr is not None else cfg.blr * cfg.batch_size * cfg.accum_iter * world / 256


def _resume_path(cfg: PretrainConfig) -> Path | None:
    if not cfg.resume:
        return None
    if cfg.resume == "auto":
        p = Path(cfg.output_dir) / LAST
        return p if p.is_file() else None
    return Path(cfg.resume)


def pretrain_param_groups(model: torch.nn.Module, cfg: PretrainConfig, lr: float) -> list[dict]:
    """AdamW groups: weight decay on all but biases and 1-D tensors (official), or the tokens too."""
    decays = takes_weight_decay if cfg.wd_exempt_tokens else takes_weight_decay_official_mae
    return param_groups(model, lr=lr, weight_decay=cfg.weight_decay, decays=decays)


def pretrain(cfg: PretrainConfig) -> dict[str, Any]:
    """Run MAE pretraining; returns the last epoch's stats. Writes into ``cfg.output_dir``."""
    return run_in_output_dir(cfg, _pretrain)


def _pretrain(cfg: PretrainConfig, device: torch.device, rank: int, world: int) -> dict[str, Any]:
    main = rank == 0
    out = Path(cfg.output_dir)
    setup_logging(out, main)
    amp_dtype = resolve_precision(cfg.precision, device)
    MAE_MODELS.get(cfg.model)  # fail on an unknown model before scanning the data

    dataset = UnlabeledImages(
        cfg.data_folders(),
        pretrain_transform(cfg.input_size),
        cfg.cache_short_side,
        keyed_seed=cfg.seed if cfg.image_keyed_rng else None,
    )
    sampler = DistributedSampler(
        dataset, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed, drop_last=True
    )
    # Workers are started anew each epoch (not persistent): their seeds then derive from the epoch's reseed
    # below, so an epoch's augmentation does not depend on how many epochs this process has run, and a resumed
    # run repeats the interrupted epoch bit for bit.
    loader = DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.num_workers,
        collate_fn=collate_skip_bad,
        drop_last=True,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    if len(loader) == 0:
        raise DataError(
            f"data folder {cfg.data_path} has {len(dataset)} images: fewer than one batch "
            f"({cfg.batch_size} per process x {world} processes)"
        )

    seed_all(cfg.seed)  # identical initial weights on every rank and in every run with this seed
    model = build_model(cfg).to(device)
    lr = effective_lr(cfg, world)
    groups = pretrain_param_groups(model, cfg, lr)
    set_attention_kernel(model, device, cfg.kernels)
    optimizer = adamw(groups, lr=lr, betas=tuple(cfg.betas), kernels=cfg.kernels)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype is torch.float16)

    start_epoch = 0
    resume = _resume_path(cfg)
    if resume is not None:
        start_epoch = load_training_state(resume, model, optimizer, scaler)
        log.info("resumed from %s at epoch %d", resume, start_epoch)
        if main:  # the interrupted epoch runs again: drop its log lines so no step is logged twice
            truncate_jsonl(out / "log.jsonl", after_step=start_epoch * len(loader))
    if main:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(cfg.to_dict(), out / "config.json")
        card = cfg.recipe_card(world)
        card.notes.append(
            f"precision: {precision_name(amp_dtype)} (precision={cfg.precision}); "
            f"kernels: {cfg.kernels}" + (", torch.compile" if cfg.compile else "")
        )
        card.write(out)
        card.log(log)
        log.info(
            "model %s: %.1fM params; data %s: %d images; effective batch %d; lr %.3g; %s",
            cfg.model,
            sum(p.numel() for p in model.parameters()) / 1e6,
            cfg.data_path,
            len(dataset),
            cfg.batch_size * cfg.accum_iter * world,
            lr,
            describe_groups(groups),
        )

    net = (
        DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if world > 1
        else model
    )
    if cfg.compile:
        net = torch.compile(net)
    logger = RunLogger(out, enabled=main)
    meter = ComputeMeter(device)  # this run's data-wait fraction
    meter.start()
    stats: dict[str, Any] = {}
    try:
        for epoch in range(start_epoch, cfg.epochs):
            seed_all(cfg.seed * 100_003 + epoch * 1_009 + rank)
            sampler.set_epoch(epoch)
            dataset.set_epoch(epoch)
            stats = train_one_epoch(
                net, model, loader, optimizer, scaler, epoch, cfg, lr, device, amp_dtype, logger, meter
            )
            if main:
                save_training_state(out, model, optimizer, scaler, epoch + 1, cfg)
                logger.log(
                    (epoch + 1) * len(loader), epoch=epoch + 1, **{f"epoch/{k}": v for k, v in stats.items()}
                )
            dist.barrier()
        if main:
            export_encoder(model, out / "encoder.pth", cfg)
            write_curves(
                out / "curves.png",
                [(r["step"], r["loss"]) for r in read_jsonl(out / "log.jsonl") if "loss" in r],
                [],
                "MAE loss (masked patches)",
                "",
            )
            log.info("done: encoder exported to %s", out / "encoder.pth")
            log.info("%s", next_commands(cfg, out / "encoder.pth"))
    finally:
        logger.close()
    return stats


def train_one_epoch(
    net: torch.nn.Module,
    model: MaskedAutoencoderViT,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    epoch: int,
    cfg: PretrainConfig,
    base_lr: float,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    logger: RunLogger,
    meter: ComputeMeter,
) -> dict[str, float]:
    """One epoch; the loss, img/s, seconds and the fraction of them spent waiting for data. Each log line
    carries the data-wait fraction of its window; ``meter`` warns once when the run's exceeds 10%."""
    net.train()
    n_iter = len(loader)
    skipped = SkipCounter()
    total_loss, n_seen, t0 = 0.0, 0, time.perf_counter()
    window_imgs, window_t = 0, time.perf_counter()
    epoch_wait, window_wait, batch_asked = 0.0, 0.0, time.perf_counter()
    # a bar on a terminal only: in a file its redraws would interleave with the log lines (which carry the
    # ETA)
    bar = tqdm(
        loader,
        desc=f"epoch {epoch + 1}/{cfg.epochs}",
        disable=not (logger.enabled and sys.stderr.isatty()),
        leave=False,
        mininterval=1.0,
        dynamic_ncols=True,
    )
    steps = AccumulatedSteps(
        net,
        optimizer,
        scaler,
        cfg.accum_iter,
        n_iter,
        lambda e: cosine_lr(e, base_lr, cfg.epochs, cfg.warmup_epochs, cfg.min_lr),
    )
    optimizer.zero_grad(set_to_none=True)
    for it, (imgs, index, bad) in enumerate(bar):
        wait = time.perf_counter() - batch_asked
        meter.add_data_wait(wait)
        epoch_wait += wait
        window_wait += wait
        skipped.add(bad)
        if imgs.numel() == 0:
            if dist.world_size() > 1:
                raise DataError(f"a whole batch of {len(bad)} images was unreadable (e.g. {bad[0]})")
            batch_asked = time.perf_counter()
            continue
        imgs = imgs.to(device, non_blocking=True)
        with steps.iteration(epoch, it):
            # the masks are drawn here, not inside the model: the same draws as the official forward's, and no
            # random op inside a torch.compile'd graph (whose RNG differs from eager)
            noise = mask_noise_for(model, cfg, epoch, index, device)
            with autocast(device, amp_dtype):
                loss, _, _ = net(imgs, mask_ratio=cfg.mask_ratio, noise=noise)
            loss_value = dist.all_reduce_mean(loss.item())
            if not math.isfinite(loss_value):
                last = Path(cfg.output_dir) / LAST
                kept = f"last good checkpoint: {last}" if last.is_file() else "no checkpoint written yet"
                raise NonFiniteLossError(
                    f"loss is {loss_value} at epoch {epoch + 1}, iteration {it + 1}; stopping ({kept})"
                )
            steps.backward(loss)
        n = imgs.shape[0] * dist.world_size()
        total_loss += loss_value * n
        n_seen += n
        window_imgs += n
        if (it + 1) % cfg.log_every == 0 or it + 1 == n_iter:
            now = time.perf_counter()
            ips = window_imgs / max(now - window_t, 1e-9)
            lr_now = optimizer.param_groups[0]["lr"] / optimizer.param_groups[0].get("lr_scale", 1.0)
            step = epoch * n_iter + it + 1
            data_wait = window_wait / max(now - window_t, 1e-9)
            logger.log(
                step,
                loss=loss_value,
                lr=lr_now,
                images_per_s=ips,
                data_wait=data_wait,
                epoch=epoch + (it + 1) / n_iter,
            )
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr_now:.2e}", ips=f"{ips:.0f}", refresh=False)
            if logger.enabled:
                left = (cfg.epochs - epoch) * n_iter - it - 1  # iterations after this one, this run
                eta = datetime.timedelta(seconds=round(left * (now - window_t) / max(window_imgs / n, 1)))
                log.info(
                    "epoch %d iter %d/%d loss %.4f lr %.3e %.1f img/s data %.0f%% eta %s",
                    epoch + 1,
                    it + 1,
                    n_iter,
                    loss_value,
                    lr_now,
                    ips,
                    100 * data_wait,
                    eta,
                )
                meter.warn_on_data_wait(log, "num_workers=N")
            window_imgs, window_t, window_wait = 0, now, 0.0
        batch_asked = time.perf_counter()
    if n_seen == 0:
        raise DataError(
            f"epoch {epoch + 1}: all {len(skipped.paths)} images were unreadable (e.g. "
            f"{skipped.paths[0] if skipped.paths else cfg.data_path}); nothing to train on"
        )
    skipped.report(f"epoch {epoch + 1}")
    elapsed = time.perf_counter() - t0
    return {
        "loss": total_loss / max(n_seen, 1),
        "images_per_s": n_seen / max(elapsed, 1e-9),
        "time_s": elapsed,
        "data_wait_fraction": epoch_wait / max(elapsed, 1e-9),
    }


def mask_noise_for(
    model: MaskedAutoencoderViT, cfg: PretrainConfig, epoch: int, index: torch.Tensor, device: torch.device
) -> torch.Tensor:
    """The batch's mask noise: from this process's stream, or per image keyed like its augmentation."""
    if not cfg.image_keyed_rng:
        return model.make_noise(len(index), cfg.mask_ratio, device)
    keyed = [
        model.make_noise(
            1,
            cfg.mask_ratio,
            torch.device("cpu"),
            torch.Generator().manual_seed(image_key(cfg.seed, epoch, int(i), stream=1)),
        )
        for i in index
    ]
    return torch.cat(keyed).to(device)
