#!/usr/bin/env bash
# The miniature Table 4 with twelve seed runs a side (configs/mini/search_table4.py; docs/miniature.md):
# the longer, detection-only companion of reproduce.sh, whose three seed runs a side leave balloon's Table 4
# inside seed noise. Run from the repository root after the install; it shares reproduce.sh's encoders
# (output/mini/pretrain_balloon6, output/mini/supervised: made here when missing, skipped when finished), and a
# killed stage resumes where it stopped. Two lanes, one core each (OMP_NUM_THREADS=1, as reproduce.sh), on one
# search storage where each entry is its own study, so no run is made twice:
#   lane 1: the balloon table's MAE encoder, the supervised one, then their entries' runs
#   lane 2: random init's runs (they need no encoder), then a worker of the whole search, which takes the
#           pretrained entries' remaining runs
set -euo pipefail
out=output/mini
py=.venv/bin/python
search=configs/mini/search_table4.py
stage() { local name=$1 t0=$SECONDS; shift; "$@"; echo "[reproduce_table4] $name: $((SECONDS - t0)) s"; }
export OMP_NUM_THREADS=1
supervised=$out/supervised/metrics.json balloon_encoder=$out/pretrain_balloon6/encoder.pth  # lane 1's (atomic writes)
lane1() {
    [[ -f $balloon_encoder ]] || stage pretrain_balloon6 $py tools/pretrain.py --resume auto \
        --config configs/pretrain/mini_camvid_balloon6.py output_dir=$out/pretrain_balloon6
    [[ -f $supervised ]] || stage supervised $py tools/eval_cls.py --resume auto \
        --config configs/cls/cifar10_mini_supervised.py output_dir=$out/supervised
    stage "supervised and MAE" $py tools/search.py run --config configs/mini/search_table4_pretrained.py
}
lane2() {
    stage "random init" $py tools/search.py run --config configs/mini/search_table4_random.py
    until [[ -f $supervised && -f $balloon_encoder ]]; do kill -0 $pid1 2>/dev/null || exit 1; sleep 10; done
    stage "search worker" $py tools/search.py run --config $search
}
t0=$SECONDS
lane1 > >(sed -u 's/^/[lane 1] /') 2>&1 & pid1=$!
lane2 > >(sed -u 's/^/[lane 2] /') 2>&1 & pid2=$!
rc=0; wait $pid1 || rc=$?; wait $pid2 || rc=$?; ((rc == 0)) || exit $rc
echo "[reproduce_table4] encoders and search: $((SECONDS - t0)) s"
stage report $py tools/report.py --config $search --out $out/report_table4
