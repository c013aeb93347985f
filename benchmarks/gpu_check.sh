#!/usr/bin/env bash
# The GPU check: everything a lent GPU should measure, as one prepared call.
#
#   bash benchmarks/gpu_check.sh [--dry_run] [OUT]    (default OUT: benchmarks/results/gpu_check)
#
# On one H100 (or H200), with nothing but r1jax and its `gpu` extra installed and no
# network, in well under 8 minutes, it writes into OUT:
#   devices.json          what JAX sees, and the versions
#   model_step.json       forward+backward tokens/s and MFU: Qwen2.5-0.5B and the ~1B-activated
#                         DeepSeek-V3 MoE (deepseek_v3_1b), bf16, cuDNN attention
#   decode.json           decode tokens/s against the HBM roofline, same two presets
#   grpo_step_dense.json  the GRPO step (benchmarks/grpo_step.py, r1jax only) on qwen2_5_0_5b
#   grpo_step_moe.json    the same on deepseek_v3_1b
# --dry_run runs the same commands with a tiny dense preset, XLA attention and float32 (the
# MoE preset runs the same scripts, whose MoE paths tests/test_benchmarks.py checks in
# process), so the test suite checks on a CPU that the script works. Commit OUT's JSON under
# benchmarks/results/ after a real run.
set -euo pipefail
cd "$(dirname "$0")/.."
dry=0
if [ "${1:-}" = "--dry_run" ]; then dry=1; shift; fi
out="${1:-benchmarks/results/gpu_check}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
py="${PYTHON:-python3}"

if [ "$dry" = 1 ]; then
  dense=qwen2_tiny attn=xla dtype=float32 presets=qwen2_tiny
  step_args="--seq=32 --batch=2 --steps=1 --warmup=1 --matmul_n=0 --remat=none"
  decode_args="--batches=2 --contexts=24 --new_tokens=4 --repeats=1 --dtype=float32"
  grpo_args="--dry_run" grpo_kinds="dense"
else
  dense=qwen2_5_0_5b moe=deepseek_v3_1b attn=cudnn dtype=bfloat16 presets=qwen2_5_0_5b,deepseek_v3_1b
  step_args="--seq=2048 --batch=8 --steps=5 --warmup=2 --remat=dots"
  decode_args="--batches=1,32,256 --contexts=1024,4096 --new_tokens=64 --repeats=2"
  grpo_args="--rounds=1 --steps=4 --prompts_per_step=8 --num_generations=8 --max_new_tokens=256"
  grpo_kinds="dense moe"
fi

"$py" - "$out/devices.json" <<'PY'
import json, sys, jax, r1jax
json.dump({"devices": [str(d) for d in jax.devices()], "platform": jax.devices()[0].platform,
           "kind": jax.devices()[0].device_kind, "jax": jax.__version__,
           "r1jax": r1jax.__version__}, open(sys.argv[1], "w"), indent=2)
PY
"$py" benchmarks/model_step.py --presets="$presets" --attention_impl="$attn" $step_args \
  --out="$out/model_step.json" > /dev/null
"$py" benchmarks/decode.py --presets="$presets" $decode_args --out="$out/decode.json" > /dev/null
for kind in $grpo_kinds; do
  preset="${!kind}"
  "$py" benchmarks/grpo_step.py --frameworks=r1jax --preset="$preset" --dtype="$dtype" \
    --attention_impl="$attn" $grpo_args --out="$out/grpo_step_$kind.json" > /dev/null
done
ls "$out"
