#!/usr/bin/env bash
# The miniature Tables 4 and 5 on one GPU: configs/mini/reproduce.sh's pipeline at GPU sizes (configs/mini/gpu/:
# ViT-S/16, 224px pretraining, balloon Mask R-CNN at 384px, CamVid UperNet at 256px, 5 seeds per cell).
#   1. the two MAE encoders and the supervised one (CIFAR-10 labels), side by side on the GPU
#   2. the search (configs/mini/gpu/search_tables.py; 4 workers share the GPU): random / supervised / MAE init
#   3. the tables (mean ± std, Δ vs random init with Welch's 95% CI, "outside seed noise?"), plots, curves
# Sized to end within one device call (~8 minutes on an H100 was the aim; first sizing, not yet timed on a GPU);
# the wall time of each stage is printed. A finished stage is skipped; a killed one resumes.
# Data: MAE_TRANSFER_DATA (default ../shared/data), e.g. the small copy of scripts/pack_mini_data.py.
#   bash configs/mini/reproduce_gpu.sh            # output/mini_gpu (or $MAE_TRANSFER_MINI_OUT)
#   bash configs/mini/reproduce_gpu.sh --smoke    # the same pipeline at 64px for 2 iterations per run (CPU too)
set -euo pipefail
cd "$(dirname "$0")/../.."
smoke=0
case "${1:-}" in
    "") ;;
    --smoke) smoke=1 ;;
    *) echo "error: unknown argument ${1}; use --smoke or nothing" >&2; exit 2 ;;
esac
needs="detectron2 mmseg mmengine pycocotools optuna"
source scripts/gpu_env.sh
search=configs/mini/gpu/search_tables.py
pre=() cls=() workers=4
if ((smoke)); then  # 64px inputs, one epoch, 2 iterations per transfer run (search_tables_smoke.py)
    export MAE_TRANSFER_MINI_OUT="${MAE_TRANSFER_MINI_OUT:-output/mini_gpu_smoke}"
    search=configs/mini/gpu/search_tables_smoke.py
    pre=(epochs=1 warmup_epochs=0 batch_size=4 input_size=64)
    cls=(epochs=1 warmup_epochs=0 batch_size=8 input_size=64 num_workers=0)
    workers=2
    export OMP_NUM_THREADS=1  # one core per process: oversubscribed threads made each run 4x slower
fi
export MAE_TRANSFER_MINI_OUT="${MAE_TRANSFER_MINI_OUT:-output/mini_gpu}"  # search_tables.py reads it
out=$MAE_TRANSFER_MINI_OUT
stage() { local name=$1 t0=$SECONDS; shift; "$@"; echo "[reproduce_gpu] $name: $((SECONDS - t0)) s"; }
encoder() {  # NAME CONFIG TOOL DONE_FILE [overrides]
    local name=$1 config=$2 tool=$3 done=$4; shift 4
    [[ -f $out/$name/$done ]] || stage "$name" "$py" "tools/$tool" --resume auto --config "$config" \
        output_dir="$out/$name" "$@" > >(sed -u "s/^/[$name] /") 2>&1
}
t0=$SECONDS
pids=()
encoder pretrain configs/mini/gpu/pretrain.py pretrain.py encoder.pth "${pre[@]}" & pids+=($!)
encoder pretrain_balloon6 configs/mini/gpu/pretrain_balloon6.py pretrain.py encoder.pth "${pre[@]}" & pids+=($!)
encoder supervised configs/mini/gpu/supervised.py eval_cls.py metrics.json "${cls[@]}" & pids+=($!)
rc=0; for pid in "${pids[@]}"; do wait "$pid" || rc=$?; done; ((rc == 0)) || exit $rc
echo "[reproduce_gpu] encoders: $((SECONDS - t0)) s"
stage search "$py" tools/search.py run --config $search --workers $workers
stage report "$py" tools/report.py --config $search --out "$out/report"
echo "[reproduce_gpu] total: $((SECONDS - t0)) s; report: $out/report/report.md"
