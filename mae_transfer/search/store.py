"""Durable trial store on Optuna storages: one study per entry, shared by any number of workers.

Storage URLs: ``journal:PATH`` (an append-only Optuna journal file, safe for several processes on one
machine or a shared file system) or any Optuna RDB URL (``sqlite:///x.db``, ``postgresql://...``) for
workers on several machines. Trials are enqueued with fixed parameters; a worker claims one by moving it
from WAITING to RUNNING (atomic in both storages), runs it, and records COMPLETE with the metric or FAIL
with the error and the log path. A trial whose worker died is marked ``interrupted`` and enqueued again;
a trial that crashed or produced NaN stays failed (its log path is recorded) and the search goes on.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from ..errors import ConfigError
from ..rundir import HOST, pid_alive, this_process
from .cache import checkpoint_sha256
from .protocol import Finished, Protocol, TrialSpec

optuna.logging.set_verbosity(optuna.logging.WARNING)


def open_storage(url: str) -> optuna.storages.BaseStorage:
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        path = url.split(":", 1)[1]
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(path))
    if "://" in url:
        return optuna.storages.RDBStorage(url)
    raise ConfigError(f"storage {url!r}: use journal:PATH or an RDB URL such as sqlite:///search.db")


@dataclass
class Claimed:
    entry: str
    trial_id: int
    number: int
    spec: TrialSpec


# what an entry's finished trials were run with; a study refuses an entry defined otherwise
_DEFINITION_FIELDS = ("task", "init", "source", "args", "schedules", "reuse_lr_wd_from")


def entry_definition(entry: Any) -> dict[str, Any]:
    """What decides an ``Entry``'s results: its fields above and its checkpoint's content (not its path)."""
    fields = {k: getattr(entry, k) for k in _DEFINITION_FIELDS}
    hashes = [checkpoint_sha256(w) for w in entry.checkpoints()]
    weights = hashes[0] if len(hashes) == 1 else hashes  # one: the form older stores hold
    return json.loads(json.dumps({**fields, "weights": weights}, default=str))


def _hashes(weights: str | list[str]) -> list[str]:
    return [weights] if isinstance(weights, str) else list(weights)


def _but_seeds(protocol: dict[str, Any]) -> dict[str, Any]:
    """A protocol's fields as a study holds them (JSON), all but its seed count."""
    return {k: v for k, v in json.loads(json.dumps(protocol)).items() if k != "seeds"}


class TrialStore:
    """``protocol``: the search's; ``entry_protocols``: entries whose protocol differs
    (``Entry.protocol``); ``entry_definitions``: ``entry_definition`` of each entry, recorded in its study
    and checked against it (a storage never mixes results of two definitions under one entry name)."""

    def __init__(
        self,
        url: str,
        protocol: Protocol,
        entry_protocols: dict[str, Protocol] | None = None,
        max_retries: int = 2,
        entry_definitions: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.url = url
        self.protocol = protocol
        self.entry_protocols = dict(entry_protocols or {})
        self.entry_definitions = dict(entry_definitions or {})
        self.max_retries = max_retries
        self.storage = open_storage(url)
        self._studies: dict[str, optuna.Study] = {}

    @classmethod
    def for_search(cls, cfg: Any) -> TrialStore:
        """The store of a ``SearchConfig``: its storage, per-entry protocols and retry bound."""
        return cls(
            cfg.storage,
            cfg.protocol,
            {name: cfg.protocol_for(name) for name in cfg.entries},
            cfg.max_retries,
            {name: entry_definition(e) for name, e in cfg.entries.items()},
        )

    def _exhausted(self, entry: str) -> dict[str, TrialSpec]:
        """Runs interrupted more than ``max_retries`` times (and never completed): they count as failed."""
        tries: dict[str, int] = {}
        specs, done = {}, set()
        for t in self.trials(entry):
            key = t.user_attrs.get("key")
            if t.state == TrialState.COMPLETE:
                done.add(key)
            elif t.state == TrialState.FAIL and t.user_attrs.get("retry") is True:
                tries[key] = tries.get(key, 0) + 1
                specs[key] = self._spec(t)
        return {k: specs[k] for k, n in tries.items() if n > self.max_retries and k not in done}

    def protocol_of(self, entry: str) -> Protocol:
        return self.entry_protocols.get(entry, self.protocol)

    # ------------------------------------------------------------------ studies
    def study(self, entry: str) -> optuna.Study:
        if entry not in self._studies:
            study = optuna.create_study(
                study_name=entry, storage=self.storage, direction="maximize", load_if_exists=True
            )
            attrs = study.user_attrs
            protocol = self.protocol_of(entry)
            fp = protocol.fingerprint()
            if "protocol_fingerprint" not in attrs:
                study.set_user_attr("protocol_fingerprint", fp)
                study.set_user_attr("protocol", protocol.to_dict())
            elif attrs["protocol_fingerprint"] != fp:
                if _but_seeds(attrs.get("protocol", {})) != _but_seeds(protocol.to_dict()):
                    raise ConfigError(
                        f"storage {self.url} holds entry {entry!r} from protocol "
                        f"{attrs.get('protocol', {}).get('name', '?')} ({attrs['protocol_fingerprint']}), "
                        f"not this protocol {protocol.name} ({fp}); use another storage"
                    )
                # another seed count: the runs held stay valid (more seeds add seed runs, fewer read fewer)
                study.set_user_attr("protocol_fingerprint", fp)
                study.set_user_attr("protocol", protocol.to_dict())
            if entry in self.entry_definitions:
                self._check_definition(study, entry, self.entry_definitions[entry])
            self._studies[entry] = study
        return self._studies[entry]

    def _check_definition(self, study: optuna.Study, entry: str, defined: dict[str, Any]) -> None:
        recorded = study.user_attrs.get("entry_definition")
        if recorded is not None:
            changed = [k for k in _DEFINITION_FIELDS if recorded.get(k) != defined[k]]
            olds, news = (_hashes(recorded.get("weights", "")), _hashes(defined["weights"]))
            if len(olds) != len(news) or any(
                o != n and not o.startswith("missing:") and not n.startswith("missing:")  # fails its own runs
                for o, n in zip(olds, news)
            ):
                changed.append("weights (checkpoint content)")
            if changed:
                raise ConfigError(
                    f"storage {self.url} holds entry {entry!r} run with another {', '.join(changed)} than "
                    f"this config gives it; use another storage or another entry name"
                )
            if not any(h.startswith("missing:") for h in olds):
                return
        study.set_user_attr("entry_definition", defined)

    def trials(self, entry: str) -> list[optuna.trial.FrozenTrial]:
        return self.study(entry).get_trials(deepcopy=False)

    @staticmethod
    def _spec(t: optuna.trial.FrozenTrial) -> TrialSpec:
        return TrialSpec(**json.loads(t.user_attrs["spec"]))

    def finished(self, entry: str) -> list[Finished]:
        """Completed runs and failed ones (value None); interrupted / duplicate claims are not results."""
        out = []
        for t in self.trials(entry):
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
                t.state == TrialState.FAIL and t.user_attrs.get("retry") is False
            ):
                s = self._spec(t)
                out.append(
                    Finished(
                        t.user_attrs["key"],
                        t.value if t.state == TrialState.COMPLETE else None,
                        s.lr,
                        s.weight_decay,
                        s.drop_path,
                        s.schedule,
                        s.layer_decay,
                        s.seed,
                    )
                )
        for key, s in self._exhausted(entry).items():
            out.append(
                Finished(key, None, s.lr, s.weight_decay, s.drop_path, s.schedule, s.layer_decay, s.seed)
            )
        return out

    def enqueue(self, entry: str, specs: list[TrialSpec]) -> int:
        """Add the specs no trial of this entry covers yet (finished, waiting or running)."""
        covered = {
            t.user_attrs.get("key")
            for t in self.trials(entry)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.WAITING, TrialState.RUNNING)
            or (t.state == TrialState.FAIL and t.user_attrs.get("retry") is False)
        }
        covered |= set(self._exhausted(entry))
        added = 0
        for spec in specs:
            if spec.key() in covered:
                continue
            self.study(entry).enqueue_trial(
                params={},
                user_attrs={"key": spec.key(), "stage": spec.stage, "spec": json.dumps(spec.__dict__)},
            )
            covered.add(spec.key())
            added += 1
        return added

    # ------------------------------------------------------------------ claiming
    def claim(self, entry: str) -> Claimed | None:
        """Move one waiting trial to RUNNING for this worker (atomic); None when none waits."""
        study = self.study(entry)
        study_id = self.storage.get_study_id_from_name(entry)
        for t in self.storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,)):
            tid = self.storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
            try:
                if not self.storage.set_trial_state_values(tid, state=TrialState.RUNNING):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            key = t.user_attrs["key"]
            older = [
                o
                for o in study.get_trials(deepcopy=False)
                if o.user_attrs.get("key") == key
                and o.number < t.number
                and (
                    o.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
                    or (o.state == TrialState.FAIL and o.user_attrs.get("retry") is False)
                )
            ]
            if older:  # another worker enqueued the same run first: leave it to that trial
                self.storage.set_trial_user_attr(tid, "duplicate_of", older[0].number)
                self.storage.set_trial_user_attr(tid, "retry", None)
                self.storage.set_trial_state_values(tid, state=TrialState.FAIL)
                continue
            spec = self._spec(t)
            dists = {
                "lr": FloatDistribution(1e-9, 10.0, log=True),
                "weight_decay": FloatDistribution(0.0, 10.0),
                "drop_path": FloatDistribution(0.0, 1.0),
                "layer_decay": FloatDistribution(0.0, 1.0),
                "seed": IntDistribution(0, 2**31 - 1),
                "schedule": CategoricalDistribution(self.protocol_of(entry).schedules),
            }
            for name, value in spec.params().items():
                self.storage.set_trial_param(tid, name, dists[name].to_internal_repr(value), dists[name])
            now = time.time()
            for k, v in {"host": HOST, **this_process(), "claimed_at": now, "heartbeat": now}.items():
                self.storage.set_trial_user_attr(tid, k, v)
            return Claimed(entry, tid, t.number, spec)
        return None

    def annotate(self, claimed: Claimed, attrs: dict[str, Any]) -> None:
        for k, v in attrs.items():
            self.storage.set_trial_user_attr(claimed.trial_id, k, v)

    def find_completed(self, identity: str) -> tuple[str, optuna.trial.FrozenTrial] | None:
        """The completed run of this identity in any study of the storage (the results cache), or None."""
        for study in self.storage.get_all_studies():
            for t in self.storage.get_all_trials(
                study._study_id, deepcopy=False, states=(TrialState.COMPLETE,)
            ):
                if t.user_attrs.get("identity") == identity and "cached_from" not in t.user_attrs:
                    return study.study_name, t
        return None

    def heartbeat(self, claimed: Claimed) -> None:
        self.storage.set_trial_user_attr(claimed.trial_id, "heartbeat", time.time())

    def complete(self, claimed: Claimed, value: float, attrs: dict[str, Any]) -> None:
        self.annotate(claimed, attrs)
        self.storage.set_trial_state_values(claimed.trial_id, state=TrialState.COMPLETE, values=[value])

    def report(self, claimed: Claimed, step: int, value: float) -> None:
        """An intermediate evaluation of a running trial (``step``: its 1-based evaluation count)."""
        self.storage.set_trial_intermediate_value(claimed.trial_id, step, value)

    def should_prune(self, claimed: Claimed, pruner: optuna.pruners.BasePruner) -> bool:
        return pruner.prune(self.study(claimed.entry), self.storage.get_trial(claimed.trial_id))

    def prune(self, claimed: Claimed, attrs: dict[str, Any]) -> None:
        """Stopped at a rung by the budgeted protocol: a finished run without a result."""
        self.annotate(claimed, attrs)
        self.storage.set_trial_state_values(claimed.trial_id, state=TrialState.PRUNED)

    def fail(self, claimed: Claimed, reason: str, attrs: dict[str, Any], retry: bool = False) -> None:
        """``retry``: the run did not get to finish (worker killed) and must run again."""
        self.annotate(claimed, {**attrs, "error": reason, "retry": retry})
        self.storage.set_trial_state_values(claimed.trial_id, state=TrialState.FAIL)

    def reclaim_stale(self, entry: str, grace_s: float = 900.0) -> int:
        """RUNNING trials whose worker is gone (dead pid on this host, or no heartbeat for ``grace_s``)
        become FAIL + interrupted, so the protocol enqueues them again."""
        n = 0
        self.study(entry)
        study_id = self.storage.get_study_id_from_name(entry)
        for t in self.storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            a = t.user_attrs
            dead = (
                a.get("host") == HOST
                and a.get("pid") is not None
                and not pid_alive(int(a["pid"]), a.get("pid_start"))
            )
            # a claim writes its worker's pid and first heartbeat just after the RUNNING state: a trial caught
            # in between is being claimed now, not silent since 1970 (its start time stands in)
            started = t.datetime_start.timestamp() if t.datetime_start else 0.0
            silent = time.time() - float(a.get("heartbeat", started)) > grace_s
            if not (dead or silent):
                continue
            tid = self.storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
            # what the lost attempt cost, as far as its heartbeats tell
            held = max(0.0, float(a.get("heartbeat", 0)) - float(a.get("claimed_at", a.get("heartbeat", 0))))
            attrs = {
                "error": "interrupted (worker gone)",
                "seconds": round(held, 1),
                "device_hours": round(held * int(a.get("devices", 1)) / 3600, 6),
                "retry": True,
            }
            try:
                for k, v in attrs.items():
                    self.storage.set_trial_user_attr(tid, k, v)
                self.storage.set_trial_state_values(tid, state=TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # workers started together all look: another one re-queued it first
            n += 1
        return n

    def counts(self, entry: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.trials(entry):
            out[t.state.name] = out.get(t.state.name, 0) + 1
        return out
