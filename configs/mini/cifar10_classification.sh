#!/usr/bin/env bash
# Issue #2's measured result: tiny MAE pretrained on the CIFAR-10 subset (<= 30 min on 2 cores), then
# linear probe and fine-tune on the same images, evaluated on cifar10/test; the same evals from random init.
# Usage: bash configs/mini/cifar10_classification.sh [OUT=output/mini/cifar10]
set -euo pipefail
out="${1:-output/mini/cifar10}"
py=".venv/bin/python"
/usr/bin/time -f "pretrain wall %e s" $py tools/pretrain.py --config configs/pretrain/cifar10_tiny.py output_dir="$out/pretrain"
for init in mae random; do
    weights=""; [[ $init == mae ]] && weights="$out/pretrain/encoder.pth"
    /usr/bin/time -f "linprobe $init wall %e s" $py tools/eval_cls.py --config configs/cls/cifar10_tiny_linprobe.py \
        weights="$weights" output_dir="$out/linprobe_$init"
    /usr/bin/time -f "finetune $init wall %e s" $py tools/eval_cls.py --config configs/cls/cifar10_tiny_finetune.py \
        weights="$weights" output_dir="$out/finetune_$init"
done
for f in "$out"/*/metrics.json; do echo "$f: $(tr -d '\n ' < "$f")"; done
