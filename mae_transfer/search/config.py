"""What a search runs: the entries (initialization x size x task), the protocol, the schedules, the
storage."""

from __future__ import annotations

import dataclasses

from ..config import ConfigBase, option
from ..errors import ConfigError
from ..recipes import INITS
from .protocol import Protocol

TOOLS = {"det": "tools/train_det.py", "seg": "tools/train_seg.py"}
METRICS = {"det": "APbox", "seg": "mIoU"}
# how a trial's hyperparameters reach each harness (key=value overrides)
PARAM_KEYS = {
    "det": {
        "lr": "optimizer.lr",
        "weight_decay": "optimizer.weight_decay",
        "drop_path": "model.backbone.bottom_up.drop_path_rate",
        "layer_decay": "optimizer.params.layer_decay",
        "seed": "train.seed",
    },
    "seg": {
        "lr": "optim_wrapper.optimizer.lr",
        "weight_decay": "optim_wrapper.optimizer.weight_decay",
        "drop_path": "model.backbone.drop_path_rate",
        "layer_decay": "optim_wrapper.paramwise_cfg.layer_decay",
        "seed": "randomness.seed",
    },
}


@dataclasses.dataclass
class Entry(ConfigBase):
    init: str = option("mae", "initialization: random | supervised | mocov3 | beit | mae")
    size: str = option("B", "model size (B | L): selects the entry table row and the ViT-L reuse rule")
    task: str = option("det", "det (tools/train_det.py) | seg (tools/train_seg.py)")
    weights: str | tuple[str, ...] = option(
        "",
        "backbone checkpoint ('' = random init); or several: pretraining runs of one recipe (its seeds), "
        "one per seed run -- seed run i fine-tunes checkpoint i, so the cell's spread counts the pretraining "
        "run too (the protocol's seeds must equal their number); selection runs (stages 1-3) use the first",
    )
    source: str = option("auto", "checkpoint format")
    args: list = option([], "arguments for every trial of this entry (config, datasets, key=value overrides)")
    schedules: dict = option({}, "schedule name -> extra arguments, for this entry (default: the search's)")
    reuse_lr_wd_from: str = option("", "entry whose stage-1 lr / wd this one reuses (ViT-L from ViT-B)")
    protocol: dict = option(
        {},
        "protocol fields this entry changes, e.g. {'stage2_schedule': 'short'} (random "
        "init, Li et al.) or {'layer_decays': (0.65, 0.75, 0.85, 0.95)}",
    )

    def checkpoints(self) -> tuple[str, ...]:
        """The entry's checkpoints: one, or one per pretraining run."""
        return (self.weights,) if isinstance(self.weights, str) else tuple(self.weights)

    def weights_for(self, seed: int | None) -> str:
        """The checkpoint a trial fine-tunes: seed run i's own, else (a selection run) the first."""
        checkpoints = self.checkpoints()
        return checkpoints[0] if seed is None else checkpoints[(seed - 1) % len(checkpoints)]


@dataclasses.dataclass
class SearchConfig(ConfigBase):
    name: str = option("search", "search name")
    storage: str = option("journal:output/search/search.journal", "journal:PATH or an Optuna RDB URL")
    output_dir: str = option("output/search", "trial run directories and logs")
    protocol: Protocol = option(Protocol(), "the per-entry protocol")
    entries: dict = option({}, "entry name -> Entry")
    schedules: dict = option({}, "task -> {schedule name -> extra arguments}")
    gpus_per_trial: int = option(
        1,
        "processes (GPUs) per trial, started by the harness's own launcher: "
        "detectron2 launch (--num-gpus N) for det, torchrun --standalone with "
        "--launcher pytorch for seg; a Slurm worker asks for N GPUs",
    )
    trial_timeout_s: int = option(0, "kill a trial after this many seconds (0 = no limit)")
    heartbeat_s: float = option(30.0, "worker heartbeat period")
    stale_after_s: float = option(900.0, "a running trial with no heartbeat for this long is re-run")
    reuse_results: bool = option(
        True,
        "a trial whose identity (checkpoint content, recipe card, arguments, code version) already finished "
        "in any study of the storage takes that result instead of running (False: run it again)",
    )
    max_retries: int = option(2, "re-runs of an interrupted trial (worker killed) before it counts as failed")

    def protocol_for(self, entry: str) -> Protocol:
        """The search's protocol with the entry's own changes."""
        changes = self.entries[entry].protocol
        return self.protocol.replace(**changes) if changes else self.protocol

    def validate(self) -> None:
        self.protocol.validate()
        if self.gpus_per_trial < 1:
            raise ConfigError(f"config key 'gpus_per_trial' must be at least 1, got {self.gpus_per_trial}")
        if not self.entries:
            raise ConfigError(f"search {self.name!r} has no entries")
        for name, e in self.entries.items():
            if not isinstance(e, Entry):
                raise ConfigError(f"entry {name!r} is not an Entry(...)")
            if e.init not in INITS:
                raise ConfigError(
                    f"entry {name!r}: unknown initialization {e.init!r}; choose from {', '.join(INITS)}"
                )
            if e.task not in TOOLS:
                raise ConfigError(f"entry {name!r}: unknown task {e.task!r}; choose det or seg")
            launch = [a for a in e.args if a.split("=")[0] in ("--num-gpus", "--num-machines", "--launcher")]
            if launch:
                raise ConfigError(
                    f"entry {name!r}: {launch[0]} in its args: the search starts each trial's "
                    "processes itself (set gpus_per_trial)"
                )
            runs = e.checkpoints()
            seeds = self.protocol_for(name).seeds
            if len(runs) > 1 and (not all(runs) or seeds != len(runs)):
                raise ConfigError(
                    f"entry {name!r}: {len(runs)} pretraining checkpoints need {len(runs)} seed runs (one "
                    f"each: protocol seeds={len(runs)}, not {seeds}) and no '' among them"
                )
            twice = sorted({w for w in runs if runs.count(w) > 1})
            if twice:  # one pretraining run counted twice would shrink the spread it is meant to show
                raise ConfigError(f"entry {name!r}: checkpoint {twice[0]!r} is listed twice in its weights")
            if e.reuse_lr_wd_from and e.reuse_lr_wd_from not in self.entries:
                raise ConfigError(f"entry {name!r} reuses lr / wd from unknown entry {e.reuse_lr_wd_from!r}")
            self.protocol_for(name).validate()
            missing = [s for s in self.protocol_for(name).schedules if s not in self.schedules_for(name)]
            if missing:
                raise ConfigError(
                    f"entry {name!r}: schedule(s) {missing} of protocol {self.protocol.name!r} "
                    f"are not defined for task {e.task!r}"
                )

    def schedules_for(self, entry: str) -> dict:
        e = self.entries[entry]
        return {**self.schedules.get(e.task, {}), **e.schedules}
