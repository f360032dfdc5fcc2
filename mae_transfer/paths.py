"""Where the small shared datasets live: ``$MAE_TRANSFER_DATA`` or ``<repo>/../shared/data``."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data(*parts: str) -> str:
    root = Path(os.environ.get("MAE_TRANSFER_DATA", REPO_ROOT.parent / "shared" / "data"))
    return str(root.joinpath(*parts))
