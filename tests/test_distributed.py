"""Multi-process runs: the environment read by `initialize_from_env`, and two real
processes on localhost running GRPO exactly as one process does.

The two-process test runs this file as a script (`_worker` below): each process has 2
CPU devices, `jax.distributed` joins them over a localhost coordinator (gloo collectives)
into one fsdp=2 × expert=2 mesh, and `train.train_and_evaluate` runs three GRPO steps of
the shipped tiny base (rollouts, rewards, reference log-probs, sharded updates, an
evaluation before and after; each process scores half of every rollout) and writes
one orbax checkpoint from both processes, then two SFT steps (packed conversations, a
held-out evaluation). A
one-process run with 4 devices runs the same config beside it: both must log the same
rewards and end with the same parameters. The test process then restores the
two-process checkpoint, whole, onto a 4-device mesh of its own.
"""

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from r1jax.runtime import distributed

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
  assert distributed.my_share(5) == slice(0, 5)
  assert distributed.allgather_objects({"a": [1.5]}) == [{"a": [1.5]}]


# ------------------------------------------------------------------ two real processes


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _start(tmp_path, run, n_proc, pid, devices, port):
  """Starts process `pid` of `n_proc`, with `devices` CPU devices, on run `run` (its
  directory under tmp_path; the log beside it), scoring with the reward model in
  tmp_path/reward_model."""
  env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "R1JAX_", "TPU_"))}
  # Low XLA CPU optimisation: the same numbers, compiled in about half the time.
  env.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={devices} "
             "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true",
             JAX_PLATFORMS="cpu", R1JAX_COORDINATOR=f"localhost:{port}",
             JAX_COMPILATION_CACHE_DIR=os.path.join(ROOT, ".pytest_cache", "jax"),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.5",
             R1JAX_NUM_PROCESSES=str(n_proc), R1JAX_PROCESS_ID=str(pid),
             PYTHONPATH=ROOT)
  log = open(tmp_path / f"{run}_{pid}.log", "w")
  return subprocess.Popen([sys.executable, os.path.abspath(__file__), str(tmp_path / run),
                           str(tmp_path / "reward_model")],
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


def _grpo_config(reward_model: str):
  """Three GRPO steps of the shipped tiny base on a 4-device fsdp × expert mesh, rewarded
  by rules and by a reward model (each process loads it on a device of its own)."""
  from configs import grpo_zero
  c = grpo_zero.get_config()
  c.mesh.update(data=1, fsdp=2, expert=2, tensor=1)
  # 8 tokens: too few for a whole answer, enough to open "<think>" (a tag_count reward).
  # Every decoded token costs the two processes a round of collectives.
  c.rl.prompts_per_step, c.rl.num_generations, c.rl.max_new_tokens = 2, 4, 8
  c.rl.rewards = dict(accuracy=1.0, tag_count=1.0, helpful=0.5)
  c.rl.reward_models = {"helpful": {"path": reward_model, "view": "full"}}
  c.data.num_train, c.data.num_eval = 64, 2  # eval prompts batched as the train ones
  c.optim.learning_rate, c.optim.warmup_steps = 1e-3, 1  # steps that visibly move weights
  c.train.update(num_steps=3, log_every=1, eval_every=3, save_every=3)
  return c


def _sft_config():
  """Two SFT steps of the shipped tiny base with a held-out evaluation, its experts split
  over both processes: the all_to_all dispatch (dropless) exchanges tokens between them."""
  from configs import sft_cold_start
  c = sft_cold_start.get_config()
  c.mesh.update(data=1, fsdp=1, expert=4, tensor=1)
  c.model_overrides.update(moe_dispatch="all_to_all", capacity_factor=4.0)
  c.data.source, c.data.eval_source, c.data.eval_fraction = "tiny_cold_start:test", "", 0.25
  c.data.batch_size = 4
  c.train.update(num_steps=2, log_every=1, eval_every=2, save_every=2)
  return c


def _flat(tree) -> dict[str, np.ndarray]:
  import jax
  return {jax.tree_util.keystr(p): np.asarray(x)
          for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


@pytest.mark.slow
def test_two_processes_train_like_one(tmp_path):
  import jax

  from r1jax.models import loading
  from r1jax.models.hf import load_hf_checkpoint
  from r1jax.recipe import plan
  from r1jax.runtime import checkpoint, optimizer, sharding
  from r1jax.runtime.metrics import read_metrics

  from hf_standins import write_reward_model
  write_reward_model(tmp_path / "reward_model")
  # 2 processes × 2 devices, and beside them 1 process × 4 devices: the same mesh.
  port = _free_port()
  procs = [_start(tmp_path, "two", 2, i, 2, port) for i in range(2)]
  procs.append(_start(tmp_path, "one", 1, 0, 4, _free_port()))
  _wait_all(tmp_path, procs, 420)

  # Only process 0 logged: one row per step, one TensorBoard event file.
  rows2, rows1 = (read_metrics(str(tmp_path / k / "run")) for k in ("two", "one"))
  assert [r["step"] for r in rows2] == [r["step"] for r in rows1] == [0, 1, 2, 3]
  assert len(os.listdir(tmp_path / "two" / "run" / "tensorboard")) == 1
  for r2, r1 in zip(rows2, rows1):  # the same rollouts: every reward and length alike
    assert sorted(r2) == sorted(r1)
    for k in r2:
      if k.startswith(("reward/", "eval/", "completion/", "groups/")):
        assert r2[k] == r1[k], (r2["step"], k)
      elif k.startswith("mismatch/"):  # sampler vs trainer in float32: rounding, ~1e-5
        np.testing.assert_allclose(r2[k], r1[k], rtol=0, atol=5e-5, err_msg=k)
      elif not k.startswith("time/"):  # losses: sums in another order (see below)
        np.testing.assert_allclose(r2[k], r1[k], rtol=1e-4, atol=1e-6, err_msg=k)
  assert any(r.get("reward/std", 0) > 0 for r in rows2)  # some advantages were not zero
  assert all(0 < r["reward/helpful"] < 1 and r["reward/errors/helpful"] == 0 for r in rows2[1:])

  # The two-process checkpoint, restored whole (optimizer, reference, data) in this one
  # process onto 4 of its devices.
  config = _grpo_config(str(tmp_path / "reward_model"))
  cfg = loading.model_config(config)
  mesh = sharding.make_mesh(dict(config.mesh), jax.devices()[:4])
  ckpt = checkpoint.Checkpointer(str(tmp_path / "two" / "run"), async_save=False)
  state, meta = ckpt.restore(plan.abstract_state(cfg, mesh, optimizer.make_optimizer(config),
                                                 with_ref=True))
  ckpt.close()
  assert int(state["step"]) == 3 and meta["data"]
  # each run's final parameters, as its own processes read them back
  one, two = (np.load(tmp_path / k / "run_params.npz") for k in ("one", "two"))
  restored, ref = _flat(state["params"]), _flat(state["ref_params"]["params"])
  base = _flat(load_hf_checkpoint(config.init_from)[1]["params"])
  assert sorted(two) == sorted(one) == sorted(restored) == sorted(base) and len(two) > 10
  for k in two:
    # The same programs on the same mesh; only the cross-process reductions (gloo) add
    # in another order: mostly ~3e-7 apart, rarely 1.6e-6 (one weight in 4e5, where Adam
    # normalises a tiny gradient), so atol 3e-6, after steps that moved the weights by
    # ~1e-3 (the median), far beyond what the tolerance would hide.
    np.testing.assert_allclose(two[k], one[k], rtol=1e-5, atol=3e-6, err_msg=k)
    np.testing.assert_array_equal(restored[k], two[k], err_msg=k)
    np.testing.assert_array_equal(ref[k], base[k], err_msg=k)  # the KL reference: the start
  assert sum(float(np.abs(base[k] - restored[k]).sum()) for k in base) > 0  # it trained
  # SFT (packed conversations, held-out evaluation) in two processes, as in one
  sft2, sft1 = (read_metrics(str(tmp_path / k / "sft")) for k in ("two", "one"))
  assert [r["step"] for r in sft2] == [r["step"] for r in sft1] == [0, 1, 2]
  for r2, r1 in zip(sft2, sft1):
    assert sorted(r2) == sorted(r1) and "eval/nll" in sft2[-1]
    for k in r2:
      if not k.startswith("time/"):
        np.testing.assert_allclose(r2[k], r1[k], rtol=1e-5, atol=1e-6, err_msg=k)
  one, two = (np.load(tmp_path / k / "sft_params.npz") for k in ("one", "two"))
  assert sorted(one) == sorted(two) == sorted(base)
  for k in two:
    np.testing.assert_allclose(two[k], one[k], rtol=1e-5, atol=1e-6, err_msg=k)
  assert sum(float(np.abs(base[k] - two[k]).sum()) for k in base) > 0

  # The reward work was split: each process scored half of every rollout's completions.
  alone = json.loads((tmp_path / "one" / "scored_0.json").read_text())
  halves = [json.loads((tmp_path / "two" / f"scored_{i}.json").read_text()) for i in range(2)]
  assert alone and halves[0] == halves[1] == [n // 2 for n in alone]
  # Per-row batch work was split too: process p built rows 4p … 4p + 3 of 8, and every
  # process sees the whole batch.
  whole = [[i, -i] for i in range(8)]
  assert json.loads((tmp_path / "one" / "rows_0.json").read_text()) == {
      "built": list(range(8)), "whole": whole}
  for p in range(2):
    assert json.loads((tmp_path / "two" / f"rows_{p}.json").read_text()) == {
        "built": list(range(4 * p, 4 * p + 4)), "whole": whole}
  info = json.loads((tmp_path / "two" / "info.json").read_text())
  assert info == {"process_count": 2, "device_count": 4, "local_device_count": 2}


# ------------------------------------------------------------------ the worker


def _worker(out: str, reward_model: str) -> None:
  """Runs `_grpo_config` in `<out>/run` and `_sft_config` in `<out>/sft` on a mesh over
  every process's devices; after each, every process restores the checkpoint and process
  0 saves its parameters."""
  from r1jax.runtime import distributed as dist
  dist.initialize_from_env()

  import jax

  from r1jax import rewards as rewards_lib
  from r1jax import train
  from r1jax.models import loading, partitioning
  from r1jax.runtime import sharding

  # A batch of 8 rows over the job's 4 devices: this process builds only the rows it holds.
  os.makedirs(out, exist_ok=True)
  built = []
  rows = sharding.shard_rows(lambda r: built.extend(r.tolist()) or {"x": np.stack([r, -r], 1)},
                             8, sharding.make_mesh(dict(data=-1)))
  with open(os.path.join(out, f"rows_{jax.process_index()}.json"), "w") as f:
    json.dump({"built": built, "whole": sharding.to_host(rows)["x"].tolist()}, f)

  scored = []  # how many completions this process scored, per call
  score = rewards_lib.score
  rewards_lib.score = lambda specs, prompts, completions, **kw: (
      scored.append(len(completions)) or score(specs, prompts, completions, **kw))

  for name, config in (("run", _grpo_config(reward_model)), ("sft", _sft_config())):
    workdir = os.path.join(out, name)
    train.train_and_evaluate(config, workdir)
    cfg = loading.model_config(config)
    mesh = sharding.make_mesh(dict(config.mesh))
    _, weights = loading.restore_run_weights(workdir, expected=cfg,
                                             shardings=partitioning.param_shardings(cfg, mesh))
    params = sharding.to_host(weights["params"])  # a collective: every process gathers
    if dist.is_main_process():
      np.savez(os.path.join(out, f"{name}_params.npz"), **_flat(params))
  with open(os.path.join(out, f"scored_{jax.process_index()}.json"), "w") as f:
    json.dump(scored, f)
  if dist.is_main_process():
    with open(os.path.join(out, "info.json"), "w") as f:
      json.dump({"process_count": jax.process_count(), "device_count": jax.device_count(),
                 "local_device_count": jax.local_device_count()}, f)


if __name__ == "__main__":
  _worker(sys.argv[1], sys.argv[2])
