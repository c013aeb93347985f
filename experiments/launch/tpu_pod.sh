#!/usr/bin/env bash
# Runs `python -m r1jax.train` on every worker of a Cloud TPU pod slice (one process per
# TPU VM host; jax.distributed finds the other hosts through the TPU metadata server).
#
#   TPU=r1-v5p-512 ZONE=us-east5-a WORKDIR=gs://my-bucket/runs/r1_zero \
#     bash experiments/launch/tpu_pod.sh --config=configs/grpo_zero.py \
#       --config.model=deepseek_v3_671b --config.mesh.fsdp=32 --config.mesh.expert=8
#
# Environment:
#   TPU, ZONE      the TPU VM (gcloud compute tpus tpu-vm list); PROJECT optional
#   WORKDIR        run directory every host can reach (gs://... or a shared mount);
#                  passed as --workdir unless the arguments already give one
#   SETUP=1        (first run) copy this checkout to every worker and pip install it
#   REMOTE_DIR     where the checkout lives on the workers (default: ~/r1jax)
#   STOP=1         only kill a running r1jax.train on every worker, then exit
# Everything after the script name is passed to r1jax.train. Check that the run fits
# first: python -m r1jax.plan <same --config flags> --mesh=... --device_memory_gb=95
set -euo pipefail
: "${TPU:?set TPU to the TPU VM name}"
: "${ZONE:?set ZONE to the TPU VM zone}"
REMOTE_DIR=${REMOTE_DIR:-r1jax}
here="$(cd "$(dirname "$0")/../.." && pwd)"
gc=(gcloud compute tpus tpu-vm)
where=(--zone="$ZONE" ${PROJECT:+--project="$PROJECT"})

on_all() {  # on_all COMMAND: run COMMAND on every worker at once
  "${gc[@]}" ssh "$TPU" "${where[@]}" --worker=all --command="$1"
}

if [[ "${STOP:-0}" == 1 ]]; then
  on_all "pkill -INT -f 'python -m r1jax.train' || true"  # SIGINT: the loop saves, then exits
  exit 0
fi

if [[ "${SETUP:-0}" == 1 ]]; then
  tarball="$(mktemp -d)/r1jax.tar.gz"
  tar -C "$here" --exclude=.venv --exclude=workdirs --exclude=.git --exclude='__pycache__' \
      -czf "$tarball" .
  "${gc[@]}" scp "$tarball" "$TPU":r1jax.tar.gz "${where[@]}" --worker=all
  on_all "mkdir -p $REMOTE_DIR && tar -C $REMOTE_DIR -xzf r1jax.tar.gz && cd $REMOTE_DIR \
    && python3 -m venv .venv && . .venv/bin/activate && pip install -q -U pip \
    && pip install -q -e '.[tpu]'"
fi

args=("$@")
if [[ " ${args[*]-} " != *" --workdir"* ]]; then
  : "${WORKDIR:?set WORKDIR (gs://... or a shared mount) or pass --workdir}"
  args+=(--workdir="$WORKDIR")
fi
quoted="$(printf ' %q' "${args[@]}")"
# R1JAX_DISTRIBUTED=1: jax.distributed.initialize() with the TPU pod's auto-detection.
# Every worker prints its own log; only process 0 writes metrics and the progress bar.
on_all "cd $REMOTE_DIR && . .venv/bin/activate && R1JAX_DISTRIBUTED=1 \
  python -m r1jax.train$quoted 2>&1 | tee -a ~/r1jax_train.log"
