"""Multi-process runs: the environment read by `initialize_from_env`, and two real
processes on localhost training one sharded model exactly as one process does.

The two-process test runs this file as a script (`_worker` below): each process has 2
CPU devices, `jax.distributed` joins them over a localhost coordinator (gloo collectives)
into one fsdp=2 × expert=2 mesh, three AdamW steps of the tiny MoE's sharded LM train
step run, and both processes write one orbax checkpoint together. A one-process run with
4 devices then trains the same steps and restores that checkpoint; all three parameter
sets must agree.
"""

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from r1jax import distributed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLURM = {"SLURM_JOB_ID": "42", "SLURM_NTASKS": "4", "SLURM_PROCID": "1", "SLURM_LOCALID": "1",
         "SLURM_STEP_NODELIST": "node[1-2]"}


@pytest.mark.parametrize("env, expected", [
    ({}, None),
    ({"SLURM_JOB_ID": "42", "SLURM_NTASKS": "1"}, None),
    ({"R1JAX_COORDINATOR": "h:1234", "R1JAX_NUM_PROCESSES": "1", "R1JAX_PROCESS_ID": "0"}, None),
    ({"R1JAX_COORDINATOR": "h:1234", "R1JAX_NUM_PROCESSES": "4", "R1JAX_PROCESS_ID": "2"},
     dict(coordinator_address="h:1234", num_processes=4, process_id=2, local_device_ids=None,
          cluster_detection_method="deactivate")),
    ({"R1JAX_COORDINATOR": "h:1", "R1JAX_NUM_PROCESSES": "2", "R1JAX_PROCESS_ID": "1",
      "R1JAX_LOCAL_DEVICE_IDS": "0,1"},
     dict(coordinator_address="h:1", num_processes=2, process_id=1, local_device_ids=[0, 1],
          cluster_detection_method="deactivate")),
    # one task per GPU, each narrowed to its GPU by CUDA_VISIBLE_DEVICES
    (dict(SLURM, SLURM_NTASKS_PER_NODE="2", CUDA_VISIBLE_DEVICES="1"),
     dict(cluster_detection_method="slurm", local_device_ids=[0])),
    # one task per GPU, all GPUs visible: jax picks GPU SLURM_LOCALID
    (dict(SLURM, SLURM_NTASKS_PER_NODE="2"), dict(cluster_detection_method="slurm",
                                                  local_device_ids=None)),
    # one task per node drives every GPU of it
    (dict(SLURM, SLURM_NTASKS_PER_NODE="1", SLURM_GPUS_ON_NODE="8"),
     dict(cluster_detection_method="slurm", local_device_ids=list(range(8)))),
    (dict(SLURM, SLURM_STEP_TASKS_PER_NODE="1(x4)", CUDA_VISIBLE_DEVICES="0,1,2,3"),
     dict(cluster_detection_method="slurm", local_device_ids=[0, 1, 2, 3])),
    ({"TPU_WORKER_HOSTNAMES": "t0,t1,t2,t3", "TPU_WORKER_ID": "1"}, {}),
    ({"TPU_WORKER_HOSTNAMES": "localhost"}, None),
    ({"R1JAX_DISTRIBUTED": "1"}, {}),
    (dict(SLURM, R1JAX_DISTRIBUTED="0"), None),
], ids=["nothing", "slurm-1-task", "explicit-1", "explicit", "explicit-devices",
        "slurm-per-gpu-bound", "slurm-per-gpu", "slurm-per-node", "slurm-per-node-cuda",
        "tpu-pod", "tpu-1-host", "forced", "disabled"])
def test_resolve(env, expected):
  assert distributed.resolve(env) == expected


@pytest.mark.parametrize("env, match", [
    ({"R1JAX_COORDINATOR": "h:1", "R1JAX_NUM_PROCESSES": "2"}, r"\['R1JAX_PROCESS_ID'\]"),
    ({"R1JAX_COORDINATOR": "h:1", "R1JAX_NUM_PROCESSES": "2", "R1JAX_PROCESS_ID": "2"},
     r"R1JAX_PROCESS_ID=2 must lie in \[0, R1JAX_NUM_PROCESSES=2\)"),
    ({k: v for k, v in SLURM.items() if k != "SLURM_STEP_NODELIST"}, "srun"),
])
def test_resolve_errors(env, match):
  with pytest.raises(ValueError, match=match):
    distributed.resolve(env)


def test_one_process_is_a_no_op():
  assert distributed.initialize_from_env({}) is False
  assert distributed.is_main_process()
  assert "process 0/1" in distributed.describe()


# ------------------------------------------------------------------ two real processes


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _start(out, mode, n_proc, pid, devices, port, ckpt):
  env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "R1JAX_", "TPU_"))}
  # Low XLA CPU optimisation: the same numbers, compiled in about half the time.
  env.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={devices} "
             "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true",
             JAX_PLATFORMS="cpu", R1JAX_COORDINATOR=f"localhost:{port}",
             JAX_COMPILATION_CACHE_DIR=os.path.join(ROOT, ".pytest_cache", "jax"),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.5",
             R1JAX_NUM_PROCESSES=str(n_proc), R1JAX_PROCESS_ID=str(pid),
             PYTHONPATH=ROOT)
  log = open(os.path.join(out, f"{mode}{n_proc}_{pid}.log"), "w")
  return subprocess.Popen([sys.executable, os.path.abspath(__file__), mode, str(out), str(ckpt)],
                          env=env, stdout=log, stderr=subprocess.STDOUT), log


def _wait_all(out, procs, timeout):
  """Waits for every process; kills the rest if one fails or time runs out."""
  deadline = time.monotonic() + timeout
  try:
    while any(p.poll() is None for p, _ in procs):
      if any(p.returncode for p, _ in procs) or time.monotonic() > deadline:
        break
      time.sleep(0.2)
  finally:
    for p, log in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
      log.close()
  codes = [p.returncode for p, _ in procs]
  if any(codes):
    logs = {n: (out / n).read_text()[-2000:] for n in sorted(os.listdir(out)) if n.endswith(".log")}
    pytest.fail(f"worker exit codes {codes} (negative: killed after {timeout} s); logs: {logs}")


@pytest.mark.slow
def test_two_processes_train_like_one(tmp_path):
  ckpt = tmp_path / "run"
  # 2 processes × 2 devices, and beside them 1 process × 4 devices: the same mesh.
  port = _free_port()
  procs = [_start(tmp_path, "train", 2, i, 2, port, ckpt) for i in range(2)]
  procs.append(_start(tmp_path, "train", 1, 0, 4, _free_port(), ckpt))
  _wait_all(tmp_path, procs, 240)
  _wait_all(tmp_path, [_start(tmp_path, "restore", 1, 0, 4, _free_port(), ckpt)], 120)
  two, one, restored = (np.load(tmp_path / f"{k}.npz") for k in ("params2", "params1", "restored"))
  assert sorted(two) == sorted(one) == sorted(restored) and len(two) > 10
  for k in two:
    np.testing.assert_allclose(two[k], one[k], rtol=1e-5, atol=1e-6, err_msg=k)
    np.testing.assert_array_equal(restored[k], two[k], err_msg=k)
  info = json.loads((tmp_path / "info2.json").read_text())
  assert info["process_count"] == 2 and info["device_count"] == 4 and info["step"] == 3
  assert info["moved"] > 0  # the steps did change the parameters


# ------------------------------------------------------------------ the worker


def _worker(mode: str, out: str, ckpt: str) -> None:
  """"train": 3 steps on a mesh over every process's devices (2 processes also save a
  checkpoint together); "restore": one process reads that checkpoint onto its mesh."""
  from r1jax import distributed as dist
  dist.initialize_from_env()

  import jax
  import jax.numpy as jnp
  import ml_collections
  from jax.experimental import multihost_utils

  from r1jax import checkpoint, plan, sharding, sft, train
  from r1jax.models import presets

  cfg = presets.get("deepseek_v3_tiny", n_layers=2)
  config = ml_collections.ConfigDict(dict(
      optim=dict(learning_rate=1e-2, warmup_steps=1, grad_clip=1.0, b1=0.9, b2=0.95,
                 weight_decay=0.01), train=dict(num_steps=3)))
  mesh = sharding.make_mesh(dict(fsdp=2, expert=2))  # 2 processes × 2 devices, or 1 × 4
  optimizer = train.make_optimizer(config)
  flat = lambda tree: {jax.tree_util.keystr(p): np.asarray(x)
                       for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}

  if mode == "restore":  # the state's shapes and shardings come from shapes alone
    ckpt_lib = checkpoint.Checkpointer(ckpt)
    state, meta = ckpt_lib.restore(plan.abstract_state(cfg, mesh, optimizer))
    ckpt_lib.close()
    assert meta["note"] == "two processes" and int(state["step"]) == 3
    np.savez(os.path.join(out, "restored.npz"), **flat(state["params"]))
    return

  params = sharding.init_sharded_params(cfg, jax.random.key(0), mesh)
  rep = sharding.replicated(mesh)
  state = {"params": params["params"], "buffers": params["buffers"],
           "opt_state": jax.jit(optimizer.init)(params["params"]),
           "step": jax.device_put(jnp.zeros((), jnp.int32), rep),
           "skipped": jax.device_put(jnp.zeros((), jnp.int32), rep)}
  state = jax.tree.map(lambda x: x if isinstance(x.sharding, jax.sharding.NamedSharding)
                       else jax.device_put(x, rep), state)
  start = multihost_utils.process_allgather(state["params"], tiled=True)
  step = train.make_train_step(cfg, sft.make_lm_loss(cfg), optimizer)
  rng = np.random.default_rng(0)  # the same global batch on every process
  for _ in range(3):
    tokens = rng.integers(1, cfg.vocab_size, (8, 16)).astype(np.int32)
    batch = sft.token_batch(tokens.tolist(), None, 16, 0)
    state, metrics = step(state, sharding.shard_batch(batch, mesh))

  final = multihost_utils.process_allgather(state["params"], tiled=True)
  n = jax.process_count()
  if n == 2:  # every process writes its shards of one checkpoint
    ckpt_lib = checkpoint.Checkpointer(ckpt)
    ckpt_lib.save(3, state, {"note": "two processes"}, force=True)
    ckpt_lib.close()
  if dist.is_main_process():
    np.savez(os.path.join(out, f"params{n}.npz"), **flat(final))
    moved = sum(float(np.abs(a - b).sum()) for a, b in
                zip(jax.tree.leaves(start), jax.tree.leaves(final)))
    with open(os.path.join(out, f"info{n}.json"), "w") as f:
      json.dump({"process_count": n, "device_count": jax.device_count(),
                 "step": int(state["step"].addressable_data(0)),
                 "loss": float(metrics["loss"].addressable_data(0)), "moved": moved}, f)


if __name__ == "__main__":
  _worker(*sys.argv[1:4])
