#!/usr/bin/env bash
# Sampler/trainer mismatch in bfloat16 (issue 23): GRPO from SmolLM2-135M-Instruct on
# 2-digit addition in bfloat16, the same seed and data, with π_old from the sampler, from
# the trainer, from the trainer with token-level TIS (C = 2), and GSPO (sampler π_old).
#
#     bash experiments/bf16_mismatch/run.sh [OUT] [STEPS] [PROMPTS]   # OUT: workdirs/bf16_mismatch
#
# PROMPTS prompts x G = 8 completions of up to 48 tokens per step (default 2: ~36 s/step in
# bfloat16 on 2 CPU cores, so 4 runs x 30 steps take 72 minutes).
set -euo pipefail
OUT=${1:-workdirs/bf16_mismatch}
STEPS=${2:-30}
PROMPTS=${3:-2}
PY=${PYTHON:-python}
MODEL=${SMOLLM2:-$($PY -c "from tests.real_model import smollm2_hf; print(smollm2_hf())")}
COMMON=(--config=configs/grpo_smollm2.py --config.init_from="$MODEL"
        --config.model_overrides.dtype=bfloat16 --config.train.num_steps="$STEPS"
        --config.train.eval_every=0 --config.train.save_every=1000
        --config.rl.prompts_per_step="$PROMPTS" --config.rl.num_generations=8
        --config.rl.max_new_tokens=48 --config.train.micro_batches=2)
run() {  # name, overrides...
  local name=$1; shift
  [ -f "$OUT/$name/metrics.jsonl" ] || $PY -m r1jax.train "${COMMON[@]}" "$@" --workdir="$OUT/$name"
}
run sampler --config.rl.old_logps=sampler
run trainer --config.rl.old_logps=trainer
run trainer_tis --config.rl.old_logps=trainer --config.rl.tis_cap=2.0
run gspo --config.rl.loss=gspo --config.rl.old_logps=sampler
$PY experiments/bf16_mismatch/summarize.py "$OUT"
