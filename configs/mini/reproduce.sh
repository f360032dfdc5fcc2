#!/usr/bin/env bash
# Miniature Tables 4 and 5 on real data, CPU (issue #6). Run from the repository root after the install.
#   1. MAE-pretrain the tiny encoder on CIFAR-10 (no labels)           ~26 min
#   2. train the same tiny ViT with CIFAR-10 labels (supervised init)   ~25 min  (also gives Table 9/10-style numbers)
#   3. the reduced per-entry search on coco128 detection + segmentation  ~1.5 h
#   4. the tables and plots
set -euo pipefail
py=.venv/bin/python
out=output/mini
[[ -f $out/cifar10/pretrain/encoder.pth && -f $out/cifar10/finetune_random/checkpoint-last.pth ]] || \
    bash configs/mini/cifar10_classification.sh "$out/cifar10"
$py tools/search.py run --config configs/mini/search_coco128.py
$py tools/report.py --config configs/mini/search_coco128.py --out $out/report
