#!/usr/bin/env bash
# One-call GPU check: MAE pretraining step (ViT-B/L: reference vs fast path vs no encoder skip), Mask R-CNN
# ViT-B/L at 1024 vs detectron2's ViTDet-B, UperNet ViT-B at 512 vs mmseg's MAE config; all under the
# harness's precision (bf16 autocast); the pretraining data loader's img/s at 1-16 workers beside ViT-B's.
# Writes gpu_check.json + gpu_check.md under $OUT (else output/gpu_check) and prints the markdown table. About
# 4-5 minutes on one H100.
#
#   benchmarks/gpu_check.sh            # on a GPU machine
#   benchmarks/gpu_check.sh --smoke    # the same scripts at toy sizes on CPU (the test suite runs this)
#
# A bare GPU machine may hold only Python + torch + timm: wheels carried in .whl/ (see docs/precision_speed.md,
# "Measuring on a GPU") are installed into a temporary folder first, without network.
set -euo pipefail
cd "$(dirname "$0")/.."
needs="detectron2 mmseg mmengine pycocotools"
source scripts/gpu_env.sh
exec "$py" benchmarks/gpu_check.py --out "${OUT:-output/gpu_check}" "$@"
