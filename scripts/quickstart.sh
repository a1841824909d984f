#!/usr/bin/env bash
# Quick start: install what is missing, build vitrt, benchmark vit_base_patch16_224 on this CPU and
# classify the sample image (with the real DeiT-Tiny when ../shared/data has it, else synthetic weights).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake --preset release
cmake --build --preset release
vitrt=build/release/bin/vitrt
"$vitrt" bench --model vit_base_patch16_224 --batch 1,8 --iters 5 --warmup 1
"$vitrt" bench --model vit_base_patch16_224 --batch 8 --iters 5 --warmup 1 --precision bf16
deit=../shared/data/deit_tiny_patch16_224/model.safetensors
if [ -f "$deit" ]; then
  "$vitrt" classify --model deit_tiny_patch16_224 --weights "$deit" docs/sample.jpg
else
  "$vitrt" classify --model vit_base_patch16_224 docs/sample.jpg
fi
