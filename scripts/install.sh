#!/usr/bin/env bash
# One-step unattended install: the pinned dependency set, detectron2 (repacked), and this project
# (editable). The venv is keyed by a hash of the requirement files and reused while they are unchanged,
# so CI and fresh clones on the same machine do not reinstall ~6 GB each time.
#   MAE_TRANSFER_VENV_ROOT   where keyed venvs live (default ~/.cache/mae-transfer)
#   PYTHON                   interpreter to build the venv from (default python3.11)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
python="${PYTHON:-python3.11}"
key="$(cat requirements/*.txt scripts/repack_detectron2.py scripts/install.sh | sha256sum | cut -c1-16)"
root="${MAE_TRANSFER_VENV_ROOT:-$HOME/.cache/mae-transfer}"
venv="$root/venv-$key"

if [[ ! -f "$venv/.complete" ]]; then
    echo "[install] building venv $venv"
    rm -rf "$venv"
    mkdir -p "$root"
    "$python" -m venv "$venv"
    pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
    "${pip[@]}" install --upgrade 'pip>=24'
    "${pip[@]}" install -r requirements/base.txt
    wheels="$(mktemp -d)"
    trap 'rm -rf "$wheels"' EXIT
    "${pip[@]}" download --no-deps --only-binary=:all: --python-version 3.10 \
        -r requirements/detectron2.txt -d "$wheels/orig"
    repacked="$("$venv/bin/python" scripts/repack_detectron2.py "$wheels"/orig/*.whl "$wheels/repacked")"
    "${pip[@]}" install --no-deps "$repacked"
    touch "$venv/.complete"
else
    echo "[install] reusing venv $venv"
fi
# Always (re)point the editable install at this checkout: fast, offline.
"$venv/bin/python" -m pip --disable-pip-version-check -q install --no-deps --no-build-isolation -e "$repo"
ln -sfn "$venv" "$repo/.venv"
echo "[install] ready: $repo/.venv -> $venv"
