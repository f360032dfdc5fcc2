"""What a run shows on the console: what runs (recipe card, data), progress with ETA, the results.

The frameworks' environment dumps, full configs, hook tables, per-class tables and dataset statistics go to
the run's log files only (detectron2: OUTPUT_DIR/log.txt; mmengine: WORK_DIR/<timestamp>/<timestamp>.log);
third-party warnings known to be harmless here are dropped, each with the reason it is harmless.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
import warnings
from typing import Any, Callable, Iterator

# (start of the warning's message): why it is harmless in these harnesses
HARMLESS_WARNINGS = {
    "Fail to import ``MultiScaleDeformableAttention``": "mmcv-lite has no compiled ops; UperNet uses none",
    "``build_loss`` would be deprecated soon": "mmseg's own head calls its own builder",
    "Default ``avg_non_ignore`` is False": "the recipe's loss (mmseg's MAE config) averages over all pixels",
    "The draw is False": "the visualization hook is kept for --show; drawing stays off in training",
    "`reduce_zero_label` will be deprecated": "label 0 = ignore is the dataset contract (ADE20K's)",
    "`torch.jit.script` is deprecated": "detectron2 scripts helpers at import; nothing here is scripted",
    "pkg_resources is deprecated": "detectron2's / fvcore's imports; no behaviour depends on it",
    "torch.meshgrid: in an upcoming release": "detectron2's anchor generator; the result is the same",
    "The given NumPy array is not writable": "detectron2 wraps read-only mask arrays it never writes",
    "Importing from timm.models.layers is deprecated": "detectron2's ViT imports timm's old path",
}
# torch loggers whose warnings are about paths these runs never take
QUIET_LOGGERS = {
    "torch.fx._symbolic_trace": "detectron2 asks is_fx_tracing() (its alias note); no model here is traced",
    "torch.utils.cpp_extension": "'No CUDA runtime is found' on CPU; no extension is built at run time",
}


def filter_harmless_warnings() -> None:
    for message in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=re.escape(message))
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


class ConsoleFilter(logging.Filter):
    """On a console handler: errors always, anything else when ``shows(record)``."""

    def __init__(self, shows: Callable[[logging.LogRecord], bool]) -> None:
        super().__init__()
        self.shows = shows

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or self.shows(record)


@contextlib.contextmanager
def console_to_log_files_only(
    loggers: Callable[[], list[logging.Logger]], shows: Callable[[logging.LogRecord], bool]
) -> Iterator[None]:
    """Inside: the frameworks' console output (their loggers' handlers, created inside, hold this stdout)
    reaches their log files only. After: ``loggers()``'s console handlers write to the real stdout again,
    showing what ``shows`` lets through."""
    stdout, console = sys.stdout, io.StringIO()
    with contextlib.redirect_stdout(console):
        yield
    for logger in loggers():
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is console:  # not the file ones
                handler.setStream(stdout)
                handler.addFilter(ConsoleFilter(shows))


def log_printed(fn: Callable[[], Any], logger: logging.Logger) -> Any:
    """Run ``fn`` with what it prints (e.g. pycocotools' tables) sent to ``logger``'s log file only."""
    from .runlog import FILE_ONLY

    with contextlib.redirect_stdout(io.StringIO()) as printed:
        result = fn()
    if printed.getvalue().strip():
        logger.info("%s", printed.getvalue().rstrip(), extra=FILE_ONLY)
    return result
