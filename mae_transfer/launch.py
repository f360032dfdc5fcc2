"""Launching on existing engines. torchrun needs nothing from us; Slurm goes through submitit.

``submit_slurm(fn, cfg, ...)`` submits ``fn(cfg)`` as one Slurm job of ``nodes x gpus_per_node`` tasks.
Each task exports the torch.distributed environment from Slurm (submitit's
TorchDistributedEnvironment), so ``mae_transfer.dist.init_distributed`` sees a torchrun-like env.
On preemption/timeout the job is requeued with ``resume='auto'``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable


class SlurmTask:
    def __init__(self, fn: Callable[[Any], Any], cfg: Any) -> None:
        self.fn = fn
        self.cfg = cfg

    def __call__(self) -> Any:
        import submitit

        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        return self.fn(self.cfg)

    def checkpoint(self) -> Any:  # called by submitit on preemption / timeout
        import submitit

        cfg = dataclasses.replace(self.cfg, resume="auto") if dataclasses.is_dataclass(self.cfg) else self.cfg
        return submitit.helpers.DelayedSubmission(SlurmTask(self.fn, cfg))


def submit_slurm(
    fn: Callable[[Any], Any],
    cfg: Any,
    *,
    folder: str | Path,
    nodes: int = 1,
    gpus_per_node: int = 8,
    partition: str | None = None,
    timeout_min: int = 4320,
    cpus_per_task: int = 10,
    cluster: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Any:
    """Submit and return the submitit Job. ``cluster='local'`` runs the same job as local processes."""
    import submitit

    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    params: dict[str, Any] = dict(
        nodes=nodes,
        tasks_per_node=gpus_per_node,
        cpus_per_task=cpus_per_task,
        timeout_min=timeout_min,
        name="mae_transfer",
    )
    if executor.cluster == "slurm":
        params.update(gpus_per_node=gpus_per_node, slurm_signal_delay_s=120)
        if partition:
            params["slurm_partition"] = partition
    params.update(extra or {})
    executor.update_parameters(**params)
    return executor.submit(SlurmTask(fn, cfg))
