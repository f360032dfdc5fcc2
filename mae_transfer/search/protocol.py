"""The per-entry search protocol as data, and the pure logic that says which trials come next.

Default = Li et al. (2021), the protocol behind MAE's Table 4:
  stage 1  drop path 0, short schedule, grid lr x wd; while the best value sits on the grid's edge,
           extend the grid in that direction (one more value, same ratio), up to ``max_extensions`` times;
  stage 2  drop path in {0, 0.1, 0.2, 0.3} at the stage-1 best, medium schedule;
  stage 3  every schedule length at the best (lr, wd, drop path); the entry's result is the best of them.
  ViT-L reuses ViT-B's stage-1 lr / wd (the entry's ``reuse_lr_wd_from``) and re-tunes drop path only.
  seeds    with ``seeds`` = N > 1, the selected configuration runs again with seeds 1..N (stage 4) and
           the entry's result is their mean and spread; the selecting run (the config's own seed) is left
           out of it, so the reported value carries no winner's-curse bias from picking the best of stage 3.
           N = 1 (the paper's practice, one run per cell): the selected run is the result.
           A grid with one candidate (one value on every axis) selects nothing: its stages run seed 1, so the
           selected run is seed run 1 and the entry costs N runs, not N + 1, all enqueued at once.
Budgeted (``strategy="halving"``): every (lr, wd, drop path[, layer decay]) candidate is one run on the
longest schedule, stopped early by successive halving over its evaluations (the runner asks Optuna's
SuccessiveHalvingPruner at each evaluation); the best completed run is selected, then the seed runs.
An entry may change protocol fields (``Entry.protocol``): random init's stage 2 at its short schedule (Li et
al.), a layer-decay axis in stage 1 (``layer_decays``) where no source fixes it.

``next_trials(protocol, finished)`` is a pure function of the finished trials, so any number of workers
can call it; the store deduplicates what they enqueue.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
from typing import Any, Sequence

from ..config import ConfigBase, option
from ..errors import ConfigError


@dataclasses.dataclass
class Protocol(ConfigBase):
    name: str = option("li2021", "protocol name (recorded in the study)")
    lrs: tuple[float, ...] = option((8e-5, 1.6e-4, 3.2e-4), "stage-1 learning rates")
    weight_decays: tuple[float, ...] = option((0.05, 0.1, 0.2), "stage-1 weight decays")
    stage1_drop_path: float = option(0.0, "drop path during stage 1")
    stage1_schedule: str = option("short", "schedule name for stage 1")
    extend_edges: bool = option(True, "extend the lr / wd grid while its best value is on an edge")
    max_extensions: int = option(2, "extensions per axis at most")
    drop_paths: tuple[float, ...] = option((0.0, 0.1, 0.2, 0.3), "stage-2 drop path values")
    stage2_schedule: str = option("medium", "schedule name for stage 2")
    schedules: tuple[str, ...] = option(
        ("short", "medium", "long"), "stage-3 schedule names (best of them counts)"
    )
    layer_decays: tuple[float, ...] = option(
        (), "stage-1 layer decays searched with lr x wd (empty: the config's)"
    )
    strategy: str = option(
        "grid",
        "grid: the stages above | halving: every (lr, wd, drop path[, layer decay]) candidate on the "
        "longest schedule, stopped early by successive halving over their evaluations",
    )
    halving_rate: int = option(
        3,
        "halving: at each rung only the top 1/rate of the runs that reached it go on (3: Hyperband's eta, "
        "Li et al., JMLR 2018; Optuna's default is 4)",
    )
    halving_min_evals: int = option(
        1, "halving: evaluations a run makes before its first rung (this project's choice: the first one)"
    )
    seeds: int = option(
        1,
        "runs of the selected configuration the result averages (1: the selected run itself; "
        "N > 1: N re-runs with seeds 1..N)",
    )

    def fingerprint(self) -> str:
        """Stable hash of everything that decides which trials run (fields at their defaults that were added
        later -- an empty layer-decay axis, one seed -- are left out, so older stores keep their
        fingerprint)."""
        d = self.to_dict()
        if not d["layer_decays"]:
            del d["layer_decays"]
        if d["seeds"] == 1:
            del d["seeds"]
        if d["strategy"] == "grid":  # the halving fields do not decide a grid search
            for k in ("strategy", "halving_rate", "halving_min_evals"):
                del d[k]
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]

    def validate(self) -> None:
        if len(self.lrs) < 1 or len(self.weight_decays) < 1 or not self.drop_paths or not self.schedules:
            raise ConfigError(
                f"protocol {self.name!r}: lrs, weight_decays, drop_paths and schedules must be non-empty"
            )
        for name in (self.stage1_schedule, self.stage2_schedule):
            if name not in self.schedules:
                raise ConfigError(
                    f"protocol {self.name!r}: schedule {name!r} is not in schedules {self.schedules}"
                )
        if self.strategy not in ("grid", "halving"):
            raise ConfigError(
                f"protocol {self.name!r}: strategy must be grid or halving, not {self.strategy!r}"
            )
        if self.strategy == "halving" and (self.halving_rate < 2 or self.halving_min_evals < 1):
            raise ConfigError(
                f"protocol {self.name!r}: halving needs halving_rate >= 2 and halving_min_evals >= 1"
            )
        if not isinstance(self.seeds, int) or self.seeds < 1:
            raise ConfigError(f"protocol {self.name!r}: seeds must be a positive integer, not {self.seeds!r}")


@dataclasses.dataclass(frozen=True)
class TrialSpec:
    """One training run: the stage that asked for it and its hyperparameters."""

    stage: int
    lr: float
    weight_decay: float
    drop_path: float
    schedule: str
    layer_decay: float | None = None  # None: the config's own
    seed: int | None = None  # None: the config's own (det train.seed, seg randomness.seed)

    def key(self) -> str:
        """Identity of the run (stage excluded: the same run serves every stage that needs it)."""
        ld = "" if self.layer_decay is None else f"|ld={self.layer_decay:.6g}"
        seed = "" if self.seed is None else f"|seed={self.seed}"
        base = f"lr={self.lr:.6g}|wd={self.weight_decay:.6g}|dp={self.drop_path:.6g}|sched={self.schedule}"
        return base + ld + seed

    def params(self) -> dict[str, Any]:
        out = {
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "drop_path": self.drop_path,
            "schedule": self.schedule,
        }
        return {
            **out,
            **{k: v for k, v in (("layer_decay", self.layer_decay), ("seed", self.seed)) if v is not None},
        }


@dataclasses.dataclass
class Finished:
    """A finished run as the protocol sees it (``value`` None = failed)."""

    key: str
    value: float | None
    lr: float
    weight_decay: float
    drop_path: float
    schedule: str
    layer_decay: float | None = None
    seed: int | None = None


def _extend(grid: Sequence[float], best: float) -> float | None:
    """One new value beyond the edge the best sits on (same ratio as the neighbouring step), else None."""
    g = sorted(grid)
    if len(g) < 2:
        return None
    if math.isclose(best, g[-1]):
        return g[-1] * (g[-1] / g[-2])
    if math.isclose(best, g[0]):
        return g[0] / (g[1] / g[0])
    return None


def _best(runs: list[Finished]) -> Finished | None:
    ok = [r for r in runs if r.value is not None and math.isfinite(r.value)]
    return max(ok, key=lambda r: r.value) if ok else None


def _grid(protocol: Protocol, finished: list[Finished]) -> tuple[list[float], list[float]]:
    """The stage-1 grid after the extensions the finished results call for."""
    lrs, wds = list(protocol.lrs), list(protocol.weight_decays)
    if not protocol.extend_edges:
        return lrs, wds
    by_key = {r.key: r for r in finished}
    for _ in range(protocol.max_extensions):
        specs = _stage1_specs(protocol, lrs, wds)
        runs = [by_key.get(s.key()) for s in specs]
        if any(r is None for r in runs):
            break  # the current grid is not complete yet
        best = _best([r for r in runs if r is not None])
        if best is None:
            break
        new_lr = _extend(lrs, best.lr)
        new_wd = _extend(wds, best.weight_decay)
        if new_lr is None and new_wd is None:
            break
        if new_lr is not None:
            lrs = sorted(lrs + [new_lr])
        if new_wd is not None:
            wds = sorted(wds + [new_wd])
    return lrs, wds


def selection_seed(protocol: Protocol) -> int | None:
    """The seed of the stage 1-3 runs of a grid: the config's own (None), or seed 1 when the grid has one
    candidate and seed runs follow -- nothing is selected, so the selecting run would be one more run of seed
    run 1's configuration."""
    single = (
        protocol.strategy == "grid"
        and len(protocol.lrs)
        == len(protocol.weight_decays)
        == len(protocol.drop_paths)
        == len(protocol.schedules)
        == 1
        and len(protocol.layer_decays) <= 1
        and math.isclose(protocol.stage1_drop_path, protocol.drop_paths[0])
    )
    return 1 if single and protocol.seeds > 1 else None


def _stage1_specs(protocol: Protocol, lrs: Sequence[float], wds: Sequence[float]) -> list[TrialSpec]:
    lds = protocol.layer_decays or (None,)
    seed = selection_seed(protocol)
    return [
        TrialSpec(1, lr, wd, protocol.stage1_drop_path, protocol.stage1_schedule, ld, seed)
        for lr in lrs
        for wd in wds
        for ld in lds
    ]


def stage1_best(protocol: Protocol, finished: list[Finished]) -> tuple[list[TrialSpec], Finished | None]:
    """(stage-1 trials still needed, best stage-1 run once the grid is settled)."""
    by_key = {r.key: r for r in finished}
    if protocol.strategy == "halving":
        specs = _halving_candidates(protocol)
    else:
        specs = _stage1_specs(protocol, *_grid(protocol, finished))
    missing = [s for s in specs if s.key() not in by_key]
    if missing:
        return missing, None
    return [], _best([by_key[s.key()] for s in specs])


def next_trials(
    protocol: Protocol, finished: list[Finished], reused: tuple[float, float] | None = None
) -> tuple[list[TrialSpec], Finished | None]:
    """(trials to run now, the entry's selected run or None while the protocol is not done).

    The selected run is the best of stage 3; with ``protocol.seeds`` > 1 the entry is done once its seed
    runs (``seed_runs``) have finished too.

    ``reused``: (lr, wd) from another entry's stage 1 (an entry's ``reuse_lr_wd_from``); stage 1 is skipped.
    """
    by_key = {r.key: r for r in finished}
    if protocol.strategy == "halving":
        return _halving_trials(protocol, by_key, reused)
    ld = None
    if reused is None:
        todo, best1 = stage1_best(protocol, finished)
        if todo:
            if selection_seed(protocol):  # nothing to select: the other seed runs need not wait for seed 1
                todo += [s for s in seed_specs(protocol, todo[0]) if s.seed != 1 and s.key() not in by_key]
            return todo, None
        if best1 is None:
            return [], None  # every stage-1 run failed: nothing to build on
        lr, wd, ld = best1.lr, best1.weight_decay, best1.layer_decay
    else:
        lr, wd = reused
    seed = selection_seed(protocol)
    stage2 = [TrialSpec(2, lr, wd, dp, protocol.stage2_schedule, ld, seed) for dp in protocol.drop_paths]
    missing = [s for s in stage2 if s.key() not in by_key]
    if missing:
        return missing, None
    best2 = _best([by_key[s.key()] for s in stage2])
    if best2 is None:
        return [], None
    stage3 = [TrialSpec(3, lr, wd, best2.drop_path, sched, ld, seed) for sched in protocol.schedules]
    missing = [s for s in stage3 if s.key() not in by_key]
    if missing:
        return missing, None
    best3 = _best([by_key[s.key()] for s in stage3])
    if best3 is None:
        return [], None
    missing = [s for s in seed_specs(protocol, best3) if s.key() not in by_key]
    return (missing, None) if missing else ([], best3)


def _halving_candidates(protocol: Protocol, reused: tuple[float, float] | None = None) -> list[TrialSpec]:
    """Every candidate, in a fixed shuffled order: asynchronous halving keeps a run that beats the runs before
    it at a rung, so a grid walked in sorted order (each lr better than the last) would stop none."""
    lrs, wds = ([reused[0]], [reused[1]]) if reused else (protocol.lrs, protocol.weight_decays)
    candidates = [
        TrialSpec(1, lr, wd, dp, protocol.schedules[-1], ld)
        for lr in lrs
        for wd in wds
        for dp in protocol.drop_paths
        for ld in protocol.layer_decays or (None,)
    ]
    random.Random(0).shuffle(candidates)
    return candidates


def _halving_trials(
    protocol: Protocol, by_key: dict[str, Finished], reused: tuple[float, float] | None
) -> tuple[list[TrialSpec], Finished | None]:
    """Successive halving: every candidate is one run on the longest schedule (stage 1), which the runner
    stops at a rung (pruned: a finished run without a value) unless it is in the top 1/rate there. The best
    completed run is selected; then the seed runs, as in the grid."""
    candidates = _halving_candidates(protocol, reused)
    missing = [c for c in candidates if c.key() not in by_key]
    if missing:
        return missing, None
    best = _best([by_key[c.key()] for c in candidates])
    if best is None:
        return [], None
    missing = [s for s in seed_specs(protocol, best) if s.key() not in by_key]
    return (missing, None) if missing else ([], best)


def seed_specs(protocol: Protocol, selected: Finished | TrialSpec) -> list[TrialSpec]:
    """Stage 4: the selected configuration with seeds 1..N (none when ``protocol.seeds`` is 1)."""
    if protocol.seeds == 1:
        return []
    return [
        TrialSpec(
            4,
            selected.lr,
            selected.weight_decay,
            selected.drop_path,
            selected.schedule,
            selected.layer_decay,
            seed,
        )
        for seed in range(1, protocol.seeds + 1)
    ]


def seed_runs(protocol: Protocol, finished: list[Finished], selected: Finished) -> list[Finished]:
    """The finished runs the entry's result is made of: its seed runs, or the selected run when seeds is 1."""
    if protocol.seeds == 1:
        return [selected]
    by_key = {r.key: r for r in finished}
    return [by_key[s.key()] for s in seed_specs(protocol, selected) if s.key() in by_key]
