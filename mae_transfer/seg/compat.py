"""Make mmsegmentation importable on mmcv-lite (``provide_mmcv_ops``, run when ``mae_transfer.seg`` is
imported: mmseg cannot be imported without it), and mmengine's checkpoints safe (``patch_mmengine``, items
2 and 3 below: an explicit call at the start of a run, as it changes mmengine's behaviour process-wide).

1. mmcv-lite has no compiled ``mmcv.ops``; several mmseg modules import from it at import time. UperNet
   needs none of those ops, so ``mmcv.ops`` is provided here as a small module: ``point_sample`` in pure
   torch (``grid_sample``), and ``sigmoid_focal_loss`` that says it needs the compiled ops (mmseg only
   calls it for CUDA tensors; its pure-torch path is used otherwise).
2. Since torch 2.6, ``torch.load`` defaults to ``weights_only=True`` and mmengine's own checkpoints
   (message-hub history, numpy scalars in the meta) are refused. Exactly the types those checkpoints
   hold are allow-listed; ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` is never used. mmengine's HistoryBuffer
   also pickles its built-in statistics functions (min/max/current/mean) by reference, which would need
   ``getattr`` allow-listed (unsafe: it reaches any attribute of an allowed object). They are re-registered
   on load anyway, so HistoryBuffer here leaves them out of its pickled state; custom statistics are kept.
3. mmengine reads local checkpoints (``load_from``, ``--checkpoint``, resume) with its own ``torch.load``;
   they go through the project's loader instead (``mae_transfer.checkpoints.load_checkpoint``), so a
   torn, foreign or refused file is a one-line error naming it, never a traceback. Its Runner writes local
   checkpoints through the project's atomic writer, so a kill mid-save leaves no torn ``iter_N.pth``.
"""

from __future__ import annotations

import sys
import types

import torch
import torch.nn.functional as F

_PATCHED = False


def point_sample(
    input: torch.Tensor, points: torch.Tensor, align_corners: bool = False, **kwargs
) -> torch.Tensor:
    """mmcv.ops.point_sample: sample ``input`` (N, C, H, W) at ``points`` (N, P, 2) in [0, 1] (x, y)."""
    add_dim = points.dim() == 3
    grid = 2.0 * points - 1.0
    if add_dim:
        grid = grid.unsqueeze(2)
    out = F.grid_sample(input, grid, align_corners=align_corners, **kwargs)
    return out.squeeze(3) if add_dim else out


def sigmoid_focal_loss(*args, **kwargs):  # pragma: no cover - only reached with full mmcv on CUDA
    raise RuntimeError("sigmoid_focal_loss needs mmcv's compiled ops (not in mmcv-lite)")


def _missing_op(name: str):
    # mmseg guards optional ops with ``except ModuleNotFoundError``: answer in kind for any other op name
    if name.startswith("__"):
        raise AttributeError(name)
    raise ModuleNotFoundError(f"mmcv.ops.{name} needs mmcv's compiled ops, which mmcv-lite does not ship")


_BUILTIN_STATISTICS = ("min", "max", "current", "mean")


def _history_buffer_state(self) -> dict:
    """HistoryBuffer.__getstate__ without the built-in statistics (no ``getattr`` in checkpoints)."""
    state = {k: v for k, v in self.__dict__.items() if k != "statistics_methods"}
    custom = {k: v for k, v in self._statistics_methods.items() if k not in _BUILTIN_STATISTICS}
    if custom:
        state["statistics_methods"] = custom
    return state


def mmengine_safe_globals() -> list:
    """The non-tensor types inside mmengine Runner checkpoints (meta, message hub)."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    # the reconstructors numpy's own pickles name (np.core is deprecated, np._core private)
    numpy_types = [np.ndarray, np.dtype, np.zeros(0).__reduce__()[0], np.float64(0).__reduce__()[0]]
    numpy_types += [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")]
    return [HistoryBuffer, *numpy_types]


def provide_mmcv_ops() -> None:
    """Idempotent; before importing mmseg: ``mmcv.ops`` as pure-torch stand-ins when mmcv-lite lacks it."""
    if "mmcv.ops" in sys.modules:
        return
    try:
        import mmcv.ops  # noqa: F401  (full mmcv: nothing to do)
    except ModuleNotFoundError:
        ops = types.ModuleType("mmcv.ops")
        ops.point_sample = point_sample
        ops.sigmoid_focal_loss = sigmoid_focal_loss
        ops.__getattr__ = _missing_op
        ops.__doc__ = (
            "pure-torch stand-ins installed by mae_transfer.seg.compat (mmcv-lite has no compiled ops)"
        )
        sys.modules["mmcv.ops"] = ops
        import mmcv

        mmcv.ops = ops


def patch_mmengine() -> None:
    """Idempotent; at the start of a run: mmengine checkpoints read through the project's weights_only loader
    (with exactly mmengine's types allowed) and written atomically."""
    global _PATCHED
    if _PATCHED:
        return
    from mmengine.logging.history_buffer import HistoryBuffer

    HistoryBuffer.__getstate__ = _history_buffer_state
    torch.serialization.add_safe_globals(mmengine_safe_globals())
    from mmengine.runner.checkpoint import CheckpointLoader

    from ..checkpoints import load_checkpoint

    def load_local(filename: str, map_location: object = None) -> object:
        return load_checkpoint(filename)  # on CPU; the Runner moves the weights to the model's device

    CheckpointLoader.register_scheme(prefixes="", force=True)(load_local)
    import mmengine.runner.runner as mm_runner

    from ..checkpoints import save_atomic

    save_remote = mm_runner.save_checkpoint

    def save_checkpoint(
        checkpoint: dict, filename: str, file_client_args: object = None, backend_args: object = None
    ) -> None:
        if "://" in str(filename):
            save_remote(checkpoint, filename, file_client_args, backend_args)
        else:
            save_atomic(checkpoint, filename)

    mm_runner.save_checkpoint = save_checkpoint
    _PATCHED = True
