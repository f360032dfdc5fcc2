"""Rewrite the cp310 ``sal-detectron2`` wheel as a pure-Python ``py3-none-any`` wheel.

Why: detectron2 is not on PyPI. ``sal-detectron2`` is an upstream build but ships only a cp310 wheel
with a CUDA ``_C`` extension and a top-level ``tools`` package (which would shadow this project's
``tools/``). Dropping both leaves detectron2's Python, which runs on torchvision's ROIAlign/NMS.

Usage: python scripts/repack_detectron2.py IN.whl OUT_DIR   (stdlib only; prints the new wheel path)
"""

from __future__ import annotations

import base64
import hashlib
import re
import sys
import zipfile
from pathlib import Path


def _dropped(name: str) -> bool:
    top = name.split("/", 1)[0]
    if top == "tools":
        return True
    return bool(re.match(r"detectron2/_C[^/]*\.so$", name))


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def repack(src: Path, out_dir: Path) -> Path:
    m = re.match(r"(?P<dist>[^-]+)-(?P<ver>[^-]+)-.*\.whl$", src.name)
    if not m:
        raise SystemExit(f"not a wheel file name: {src.name}")
    dst = out_dir / f"{m['dist']}-{m['ver']}-py3-none-any.whl"
    out_dir.mkdir(parents=True, exist_ok=True)
    records: list[str] = []
    record_name = None
    with (
        zipfile.ZipFile(src) as zin,
        zipfile.ZipFile(dst.with_suffix(".tmp"), "w", zipfile.ZIP_DEFLATED) as zout,
    ):
        for info in zin.infolist():
            name = info.filename
            if _dropped(name):
                continue
            if name.endswith(".dist-info/RECORD"):
                record_name = name
                continue
            data = zin.read(name)
            if name.endswith(".dist-info/WHEEL"):
                text = data.decode()
                text = re.sub(r"^Root-Is-Purelib:.*$", "Root-Is-Purelib: true", text, flags=re.M)
                text = re.sub(r"^Tag:.*\n?", "", text, flags=re.M).rstrip("\n") + "\nTag: py3-none-any\n"
                data = text.encode()
            elif name.endswith(".dist-info/top_level.txt"):
                data = b"".join(line + b"\n" for line in data.splitlines() if line.strip() != b"tools")
            zout.writestr(name, data)
            records.append(_record_line(name, data))
        if record_name is None:
            raise SystemExit(f"{src.name}: no RECORD file in the wheel")
        records.append(f"{record_name},,")
        zout.writestr(record_name, "\n".join(records) + "\n")
    dst.with_suffix(".tmp").replace(dst)
    return dst


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    print(repack(Path(sys.argv[1]), Path(sys.argv[2])))
