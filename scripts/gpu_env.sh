# Sourced by the one-call GPU scripts (benchmarks/gpu_check.sh, configs/mini/reproduce_gpu.sh) from the
# repository root: sets $py (the venv's Python where there is one, else $PYTHON or python3) and, on a bare GPU
# machine (Python + torch + timm only), installs the wheels carried in .whl/ into a temporary folder without
# network (docs/precision_speed.md, "Measuring on a GPU"). $needs: the modules that must import.
py="${PYTHON:-python3}"
[[ -x .venv/bin/python && -z "${PYTHON:-}" ]] && py=.venv/bin/python
if ! "$py" -c "import ${needs// /, }" 2>/dev/null; then
    [[ -d .whl ]] || { echo "error: one of $needs is not importable and no .whl/ folder of wheels is here" >&2; exit 2; }
    site="$(mktemp -d)"
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
