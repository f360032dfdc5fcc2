"""Run logging: a JSON-lines file and TensorBoard scalars, written by the main process only."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any, Iterator

# ``extra=`` of a log call for a record meant for one of the two handlers only (e.g. a long table)
FILE_ONLY = {"file_only": True}
CONSOLE_ONLY = {"console_only": True}
# this project's threshold (checked after 20 iterations, also its choice): above it the data loader, not the
# model, sets a run's pace
DATA_WAIT_WARNING = 0.10


def setup_logging(output_dir: str | Path | None = None, main: bool = True, name: str = "log.txt") -> None:
    """Console (+ file) handlers on the ``mae_transfer`` logger; quiet on non-main ranks.

    Handlers from an earlier call are replaced; the root logger is left alone (records still propagate
    to it, so frameworks and test harnesses that listen there see them).
    """
    logger = logging.getLogger("mae_transfer")
    for h in [h for h in logger.handlers if getattr(h, "_mae_transfer", False)]:
        logger.removeHandler(h)
        h.close()
    console = logging.StreamHandler(sys.stdout)
    console.addFilter(lambda record: not getattr(record, "file_only", False))
    handlers: list[logging.Handler] = [console]
    if output_dir is not None and main:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(Path(output_dir) / name))
        handlers[-1].addFilter(lambda record: not getattr(record, "console_only", False))
    fmt = logging.Formatter("[%(asctime)s %(name)s] %(levelname)s %(message)s", datefmt="%m/%d %H:%M:%S")
    for h in handlers:
        h.setFormatter(fmt)
        h._mae_transfer = True  # type: ignore[attr-defined]
        logger.addHandler(h)
    logger.setLevel(logging.INFO if main else logging.WARNING)


class RunLogger:
    """Append-only ``log.jsonl`` + TensorBoard events under ``output_dir``."""

    def __init__(self, output_dir: str | Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(output_dir) / "log.jsonl"
        self._tb = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=str(Path(output_dir) / "tensorboard"))

    def log(self, step: int, **scalars: Any) -> None:
        if not self.enabled:
            return
        record = {"step": step, "time": time.time(), **scalars}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for k, v in scalars.items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
            self._tb = None


def truncate_jsonl(path: str | Path, after_step: int, key: str = "step") -> None:
    """Cut the file before the first record whose ``key`` (step / iteration) is beyond ``after_step``: a
    resumed run logs those steps again. In place, so writers holding the file open in append mode go on
    writing at its new end."""
    path = Path(path)
    if not path.exists():
        return
    with path.open("r+b") as f:
        offset = 0
        for line in f:
            text = line.strip()
            if text:
                try:
                    if json.loads(text).get(key, 0) > after_step:
                        break
                except ValueError:  # a line torn by the kill
                    break
            offset += len(line)
        f.truncate(offset)


def read_jsonl(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend (runs have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_curves(
    path: str | Path,
    loss: list[tuple[int, float]],
    metric: list[tuple[int, float]],
    loss_label: str,
    metric_label: str,
) -> Path | None:
    """``curves.png``: the training loss and the evaluation metric (units in its label) against iterations.
    A picture is not worth failing a finished run: a problem drawing it is a warning."""
    try:
        plt = pyplot()
        panels = [(loss, loss_label)] + ([(metric, metric_label)] if metric else [])
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.4), squeeze=False)
        for ax, (points, label) in zip(axes[0], panels):
            xs, ys = zip(*points) if points else ((), ())
            ax.plot(xs, ys, marker="o" if len(points) < 20 else None, markersize=3)
            ax.set_xlabel("iteration")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
    except Exception as e:  # noqa: BLE001 - reported; tests check that curves are written
        logging.getLogger("mae_transfer").warning("no %s: %s: %s", Path(path).name, type(e).__name__, e)
        return None
    return Path(path)


class ComputeMeter:
    """What a run costs, for ``metrics.json``'s ``compute`` block: training seconds (``start``/``stop``
    around the loop, evaluations inside it ``excluded``), seconds per iteration, peak memory, images seen,
    the device, and the fraction of the training time spent waiting for the data loader (each iteration's
    wait given to ``add_data_wait``; ``warn_on_data_wait`` says once when it exceeds ``DATA_WAIT_WARNING``).

    Measured in this process (rank 0 of a distributed run: its peak memory, its clock); a resumed run counts
    the iterations this process trained."""

    def __init__(self, device: Any) -> None:
        import torch

        self.device = torch.device(device)
        self.train_s = 0.0
        self._since: float | None = None
        self.data_wait_s = 0.0
        self.waits = 0
        self._warned = False

    @property
    def running(self) -> bool:
        return self._since is not None

    def start(self) -> None:
        if self._since is None:
            self._since = time.perf_counter()

    def stop(self) -> None:
        if self._since is not None:
            self.train_s += time.perf_counter() - self._since
            self._since = None

    @contextlib.contextmanager
    def excluded(self) -> Iterator[None]:
        """A block (an evaluation) whose time is not training time."""
        running = self.running
        self.stop()
        try:
            yield
        finally:
            if running:
                self.start()

    def add_data_wait(self, seconds: float) -> None:
        """One iteration's time spent waiting for its batch."""
        self.data_wait_s += seconds
        self.waits += 1

    @property
    def data_wait_fraction(self) -> float | None:
        """Data wait / training time so far (None before the first wait)."""
        train_s = self.train_s + (time.perf_counter() - self._since if self._since is not None else 0.0)
        return min(self.data_wait_s / train_s, 1.0) if self.waits and train_s > 0 else None

    def warn_on_data_wait(self, log: logging.Logger, knob: str, min_waits: int = 20) -> None:
        """Warn once when, after ``min_waits`` iterations, more than ``DATA_WAIT_WARNING`` of the training
        time went to waiting for data; ``knob`` names the setting that gives the loader more workers."""
        fraction = self.data_wait_fraction
        if self._warned or self.waits < min_waits or fraction is None or fraction <= DATA_WAIT_WARNING:
            return
        self._warned = True
        log.warning(
            "%.0f%% of the training time so far went to waiting for data (over %.0f%%: the data loader, not "
            "the model, sets the pace); give the loader more workers (%s) or smaller / cached images",
            100 * fraction,
            100 * DATA_WAIT_WARNING,
            knob,
        )

    def record(self, iterations: int, images_seen: int, processes: int) -> dict[str, Any]:
        import resource

        import torch

        fraction = self.data_wait_fraction
        if self.device.type == "cuda":
            name = torch.cuda.get_device_name(self.device)
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            name = "cpu"
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        return {
            "device": name,
            "processes": processes,
            "train_s": round(self.train_s, 1),
            "s_per_iter": round(self.train_s / iterations, 4) if iterations > 0 else None,
            "peak_mem_mib": round(peak),
            "images_seen": images_seen,
            "data_wait_fraction": None if fraction is None else round(fraction, 4),
        }
