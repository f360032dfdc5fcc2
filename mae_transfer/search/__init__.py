"""Per-entry hyperparameter search (Li et al.'s protocol as data) on Optuna storages, and Tables 4 / 5."""

from .config import Entry, SearchConfig
from .protocol import Protocol, TrialSpec, next_trials
from .runner import work
from .store import TrialStore
from .workers import run_workers

__all__ = [
    "Entry",
    "SearchConfig",
    "Protocol",
    "TrialSpec",
    "next_trials",
    "run_workers",
    "work",
    "TrialStore",
]
