"""detectron2's checkpointer with the project's guarantees: every read through the weights_only loader
(detectron2 unpickles ``.pkl`` files, which can run code), every write atomic (a kill mid-save leaves no torn
``model_*.pth``), and one-line errors for a missing or dangling checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from detectron2.checkpoint import DetectionCheckpointer

from ..checkpoints import load_checkpoint, save_atomic
from ..errors import CheckpointError
from ..utils import write_text_atomic


class SafeDetectionCheckpointer(DetectionCheckpointer):
    def load(self, path: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        local = path.split("?", 1)[0] if path else path
        if local and "://" not in local and not os.path.isfile(local):
            named_by = (
                " (named by last_checkpoint)"
                if self.save_dir and Path(local).parent == Path(self.save_dir)
                else ""
            )
            raise CheckpointError(f"checkpoint not found: {local}{named_by}")
        return super().load(path, *args, **kwargs)

    def _load_file(self, filename: str) -> dict[str, Any]:
        if filename.endswith(".pkl"):
            raise CheckpointError(
                f"{filename}: .pkl checkpoints are plain pickles, which can run code when read; "
                "only torch checkpoints (.pth) are loaded, with weights_only"
            )
        loaded = load_checkpoint(filename)
        return loaded if isinstance(loaded, dict) and "model" in loaded else {"model": loaded}

    def save(self, name: str, **kwargs: Any) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data = {
            "model": self.model.state_dict(),
            **{k: v.state_dict() for k, v in self.checkpointables.items()},
            **kwargs,
        }
        basename = f"{name}.pth"
        self.logger.info("Saving checkpoint to %s", os.path.join(self.save_dir, basename))
        save_atomic(data, os.path.join(self.save_dir, basename))
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        write_text_atomic(last_filename_basename, os.path.join(self.save_dir, "last_checkpoint"))
