#!/usr/bin/env bash
# One-step unattended install: the pinned dependency set, detectron2 (repacked), and this checkout.
#
# The third-party packages (~6 GB) live in a shared venv keyed by a hash of the requirement files,
# reused by every checkout on the machine while the requirements are unchanged. Each checkout gets
# its own small `.venv` on top of it that sees the shared packages and this checkout's code, so two
# clones (or CI next to a working copy) never point each other's `mae_transfer` elsewhere.
#   MAE_TRANSFER_VENV_ROOT   where shared venvs live (default ~/.cache/mae-transfer)
#   PYTHON                   interpreter to build the shared venv from (default python3.11)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
python="${PYTHON:-python3.11}"
key="$(cat requirements/*.txt scripts/repack_detectron2.py | sha256sum | cut -c1-16)"
root="${MAE_TRANSFER_VENV_ROOT:-$HOME/.cache/mae-transfer}"
deps="$root/deps-$key"

if [[ ! -f "$deps/.complete" ]]; then
    echo "[install] building shared dependency venv $deps"
    rm -rf "$deps"
    mkdir -p "$root"
    "$python" -m venv "$deps"
    pip=("$deps/bin/python" -m pip --disable-pip-version-check -q)
    "${pip[@]}" install --upgrade 'pip>=24'
    "${pip[@]}" install -r requirements/base.txt
    wheels="$(mktemp -d)"
    trap 'rm -rf "$wheels"' EXIT
    "${pip[@]}" download --no-deps --only-binary=:all: --python-version 3.10 \
        -r requirements/detectron2.txt -d "$wheels/orig"
    repacked="$("$deps/bin/python" scripts/repack_detectron2.py "$wheels"/orig/*.whl "$wheels/repacked")"
    "${pip[@]}" install --no-deps "$repacked"
    touch "$deps/.complete"
else
    echo "[install] reusing shared dependency venv $deps"
fi

# PostgreSQL server programs (Debian's postgresql package): the multi-machine search storage and its test
# (tests/test_search_postgres.py starts a throwaway cluster). Installed when missing and apt can run.
if ! command -v initdb >/dev/null && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    if command -v apt-get >/dev/null && [[ "$(id -u)" == 0 ]]; then
        echo "[install] installing PostgreSQL (apt-get install postgresql)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
                 --no-install-recommends postgresql >/dev/null; }
    else
        echo "[install] PostgreSQL server programs not found: install Debian's postgresql package (as root)"
    fi
fi

# This checkout's venv: no packages of its own, two .pth files (the shared packages, this checkout)
# and console scripts (torchrun, tensorboard, pytest, ...) that run under its interpreter.
venv="$repo/.venv"
[[ -L "$venv" ]] && rm "$venv"  # older installs linked .venv to the shared venv
[[ -x "$venv/bin/python" ]] || "$deps/bin/python" -m venv --without-pip "$venv"
"$venv/bin/python" - "$deps" "$repo" <<'PY'
import os
import stat
import subprocess
import sys
import sysconfig

deps, repo = sys.argv[1:]
shared_site = subprocess.check_output(
    [os.path.join(deps, "bin", "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
    text=True).strip()
site_dir = sysconfig.get_paths()["purelib"]
with open(os.path.join(site_dir, "_mae_transfer_deps.pth"), "w") as f:  # addsitedir also runs the shared .pth files
    f.write(f"import site; site.addsitedir({shared_site!r})\n")
with open(os.path.join(site_dir, "_mae_transfer_repo.pth"), "w") as f:
    f.write(repo + "\n")

import importlib.metadata as md  # noqa: E402  (sees the shared packages only after the .pth above)
import site  # noqa: E402

site.addsitedir(shared_site)
bin_dir = os.path.dirname(sys.executable)
for ep in md.entry_points(group="console_scripts"):
    path = os.path.join(bin_dir, ep.name)
    if os.path.islink(path):
        continue  # bin/python* link to the interpreter: never overwrite them
    module, _, attr = ep.value.partition(":")
    with open(path, "w") as f:
        f.write(f"#!{sys.executable}\nimport sys\nfrom {module} import {attr.split('.')[0]} as entry\n"
                f"sys.exit(entry{''.join('.' + a for a in attr.split('.')[1:])}())\n")
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
PY
echo "[install] ready: $venv (packages from $deps, code from $repo)"
