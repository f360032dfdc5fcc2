"""Search workers on existing engines: local worker processes (one device each) or a Slurm array through
submitit; each runs ``runner.work`` against the shared Optuna storage."""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

from .config import SearchConfig
from .runner import work

log = logging.getLogger("mae_transfer.search")


def _work_in_subprocess(config_path: str, overrides: list[str], index: int) -> int:
    from ..config import apply_overrides, load_config
    from ..runlog import setup_logging

    setup_logging()
    # SIGTERM (Slurm pre-emption, kill): unwind, so the running trial's process group is killed on the way out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cfg = apply_overrides(load_config(config_path, expect=SearchConfig), overrides)
    return work(cfg, worker=f"worker{index}")


def _local_worker(
    config_path: str, overrides: list[str], index: int, results: Any, devices: str | None
) -> None:
    if devices is not None:  # this worker's trials see only its own GPUs
        os.environ["CUDA_VISIBLE_DEVICES"] = devices
    results.put((index, _work_in_subprocess(config_path, overrides, index)))


def worker_devices(workers: int, gpus_per_worker: int, gpus: int) -> list[str | None]:
    """The GPUs each local worker gets (CUDA_VISIBLE_DEVICES): disjoint sets of ``gpus_per_worker`` when the
    machine has enough, else None (every worker sees every GPU; a warning says so when it has some)."""
    if gpus < workers * gpus_per_worker:
        if gpus:
            log.warning(
                "%d workers x %d GPUs per trial > the %d GPUs here: the workers' trials will share GPUs",
                workers,
                gpus_per_worker,
                gpus,
            )
        return [None] * workers
    return [
        ",".join(str(d) for d in range(i * gpus_per_worker, (i + 1) * gpus_per_worker))
        for i in range(workers)
    ]


def run_workers(config_path: str, overrides: list[str], workers: int, gpus_per_worker: int = 1) -> list[int]:
    """``workers`` local processes on the same storage; returns the trials each ran. A worker that dies
    (killed, out of memory) does not stop the others: its interrupted trial is re-queued and run by them.
    SIGTERM to this process stops them all (no worker goes on alone)."""
    import multiprocessing as mp

    import torch

    if workers <= 1:
        return [_work_in_subprocess(config_path, overrides, 0)]
    devices = worker_devices(workers, gpus_per_worker, torch.cuda.device_count())
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_local_worker, args=(config_path, overrides, i, results, devices[i]))
        for i in range(workers)
    ]
    for p in procs:
        p.start()

    def stop(*_: Any) -> None:  # kill, Slurm: the workers unwind too (each kills its running trial's group)
        for p in procs:
            p.terminate()
        for p in procs:
            p.join()
        sys.exit(143)

    signal.signal(signal.SIGTERM, stop)
    for p in procs:
        p.join()
    ran = dict(results.get() for p in procs if p.exitcode == 0)
    for i, p in enumerate(procs):
        if p.exitcode != 0:
            log.warning(
                "worker%d ended with exit code %s; the trial it was running was re-queued", i, p.exitcode
            )
    return [ran.get(i, 0) for i in range(workers)]


def submit_slurm_array(
    config_path: str,
    overrides: list[str],
    workers: int,
    folder: str,
    partition: str | None,
    timeout_min: int,
    gpus_per_worker: int = 1,
    cluster: str | None = None,
) -> list[Any]:
    """A Slurm job array of ``workers`` search workers (each ``gpus_per_worker`` GPUs: the search config's
    ``gpus_per_trial``) sharing the storage."""
    import submitit

    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    params: dict[str, Any] = dict(
        timeout_min=timeout_min, tasks_per_node=1, nodes=1, name="mae_transfer_search"
    )
    if executor.cluster == "slurm":
        params.update(gpus_per_node=gpus_per_worker, slurm_array_parallelism=workers)
        if partition:
            params["slurm_partition"] = partition
    executor.update_parameters(**params)
    return executor.map_array(
        _work_in_subprocess, [config_path] * workers, [overrides] * workers, list(range(workers))
    )
