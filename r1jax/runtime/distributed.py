"""Many processes, one program: `jax.distributed` set up from the launcher's environment.

Every process of a multi-host run executes the same `python -m r1jax.train ...`; before
anything touches a device, `initialize_from_env()` joins them into one JAX runtime, after
which `jax.devices()` lists every device of the job and a mesh spans all hosts. It reads,
in this order:

  R1JAX_DISTRIBUTED=0            never initialize (one process, whatever else is set)
  R1JAX_COORDINATOR=host:port    explicit set-up, with R1JAX_NUM_PROCESSES and
  R1JAX_NUM_PROCESSES=N          R1JAX_PROCESS_ID (0 … N-1); process 0 serves the
  R1JAX_PROCESS_ID=i             coordinator at host:port
  SLURM (SLURM_NTASKS > 1)       srun's SLURM_JOB_ID, SLURM_STEP_NODELIST, SLURM_PROCID,
                                 SLURM_LOCALID: jax's own SLURM detection; the
                                 coordinator is the first node, port from the job id
                                 (JAX_COORDINATOR_PORT overrides)
  TPU_WORKER_HOSTNAMES=a,b,...   a multi-host TPU slice (GKE); jax reads the rest
  MEGASCALE_COORDINATOR_ADDRESS  a multi-slice TPU job
  R1JAX_DISTRIBUTED=1            initialize with jax's auto-detection (Cloud TPU VMs of a
                                 pod, whose workers are found through the metadata server)
  R1JAX_LOCAL_DEVICE_IDS=0,1,..  the devices this process drives (default: all it sees;
                                 under SLURM, all of the node's with one task per node
                                 and one with one task per GPU)

With none of these, or one process in all, it does nothing. On CPU, cross-process
collectives use gloo (`jax_cpu_collectives_implementation`, the default in jax 0.10).

Once joined, every process runs the same train loop on the same data. Each knows the
step's whole batch (for GRPO the same rollouts, gathered back from the global mesh) and
places only its own devices' rows (`sharding.shard_batch`, `sharding.to_host`); per-row
work is split: the LM stages tokenize only the rows a process holds
(`sharding.shard_rows`), and each process scores its share of a rollout's completions
(`my_share`; rewards may run code or a reward model), every process getting all scores
back (`allgather_objects`). Every process writes its shards of each checkpoint; only
process 0 writes metrics, samples and the progress bar (`is_main_process`).
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils


def _ints(value: str) -> list[int]:
  return [int(v) for v in value.replace(" ", "").split(",") if v]


def _slurm_local_device_ids(env: Mapping[str, str]) -> list[int] | None:
  """The GPUs one SLURM task drives; None leaves jax's default (GPU = SLURM_LOCALID).

  jax assumes one task per GPU. With one task per node (`--ntasks-per-node=1`) the task
  must drive every GPU of the node; with one GPU per task that `CUDA_VISIBLE_DEVICES`
  already narrowed to one, its id is 0.
  """
  per_node = env.get("SLURM_NTASKS_PER_NODE") or env.get("SLURM_STEP_TASKS_PER_NODE", "")
  per_node = per_node.split("(")[0].split(",")[0]  # "2(x4)" -> "2"
  visible = _ints(env.get("CUDA_VISIBLE_DEVICES", ""))
  if per_node == "1":
    gpus = env.get("SLURM_GPUS_ON_NODE") or env.get("SLURM_GPUS_PER_NODE", "").split(":")[-1]
    if visible:
      return list(range(len(visible)))
    if gpus.isdigit():
      return list(range(int(gpus)))
    return None
  if len(visible) == 1:
    return [0]
  return None


def resolve(env: Mapping[str, str] | None = None) -> dict[str, Any] | None:
  """The keyword arguments for `jax.distributed.initialize`, or None for one process.

  A pure function of the environment (default `os.environ`), so launch set-ups can be
  checked without starting anything. Raises ValueError for an incomplete explicit set-up.
  """
  env = os.environ if env is None else env
  if env.get("R1JAX_DISTRIBUTED", "") == "0":
    return None
  local = _ints(env["R1JAX_LOCAL_DEVICE_IDS"]) if env.get("R1JAX_LOCAL_DEVICE_IDS") else None

  if env.get("R1JAX_COORDINATOR"):
    missing = [k for k in ("R1JAX_NUM_PROCESSES", "R1JAX_PROCESS_ID") if not env.get(k)]
    if missing:
      raise ValueError(f"R1JAX_COORDINATOR={env['R1JAX_COORDINATOR']} is set but {missing} "
                       "are not; set all three (the process id runs 0 … N-1)")
    n, pid = int(env["R1JAX_NUM_PROCESSES"]), int(env["R1JAX_PROCESS_ID"])
    if not 0 <= pid < n:
      raise ValueError(f"R1JAX_PROCESS_ID={pid} must lie in [0, R1JAX_NUM_PROCESSES={n})")
    if n == 1:
      return None
    # "deactivate": jax would otherwise let a SLURM environment override the device ids
    return dict(coordinator_address=env["R1JAX_COORDINATOR"], num_processes=n, process_id=pid,
                local_device_ids=local, cluster_detection_method="deactivate")

  if int(env.get("SLURM_NTASKS", "1") or 1) > 1 and "SLURM_JOB_ID" in env:
    if "SLURM_STEP_NODELIST" not in env:
      raise ValueError(f"SLURM_NTASKS={env['SLURM_NTASKS']} but no job step: start each "
                       "process with srun (see experiments/launch/slurm_gpu.sbatch)")
    return dict(cluster_detection_method="slurm",
                local_device_ids=local if local is not None else _slurm_local_device_ids(env))
  hosts = [h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h]
  if (len(hosts) > 1 or env.get("MEGASCALE_COORDINATOR_ADDRESS")
      or env.get("R1JAX_DISTRIBUTED", "") == "1"):
    return dict(local_device_ids=local) if local is not None else {}
  return None


def initialize_from_env(env: Mapping[str, str] | None = None) -> bool:
  """Calls `jax.distributed.initialize` if the environment describes a multi-process job.

  Call it first thing in a program, before any device is used. Returns whether this
  process is now part of a multi-process runtime (also if it already was).
  """
  if jax.distributed.is_initialized():
    return True
  kwargs = resolve(env)
  if kwargs is None:
    return False
  kwargs = {k: v for k, v in kwargs.items() if v is not None}
  jax.distributed.initialize(**kwargs)
  logging.info("jax.distributed: %s", describe())
  return True


def is_main_process() -> bool:
  """True on the process that writes logs, metrics and progress bars (process 0)."""
  return jax.process_index() == 0


def describe() -> str:
  """"process 1/4: 8 local of 32 devices (gpu)", for logs."""
  return (f"process {jax.process_index()}/{jax.process_count()}: {jax.local_device_count()} "
          f"local of {jax.device_count()} devices ({jax.default_backend()})")


def my_share(n: int) -> slice:
  """This process's contiguous share of n items (process p of P: [p·n // P, (p+1)·n // P))."""
  p, count = jax.process_index(), jax.process_count()
  return slice(p * n // count, (p + 1) * n // count)


def allgather_objects(obj: Any) -> list[Any]:
  """[obj of process 0, obj of process 1, ...] on every process (a collective: every
  process must call it, in the same order). Objects travel pickled, so keep them small:
  per-completion scores, not arrays. One process: [obj]."""
  if jax.process_count() == 1:
    return [obj]
  data = np.frombuffer(pickle.dumps(obj), np.uint8)
  sizes = multihost_utils.process_allgather(np.array([data.size], np.int64)).reshape(-1)
  padded = np.zeros(int(sizes.max()), np.uint8)
  padded[:data.size] = data
  gathered = multihost_utils.process_allgather(padded)  # [processes, max size]
  return [pickle.loads(gathered[i, :n].tobytes()) for i, n in enumerate(sizes.tolist())]
