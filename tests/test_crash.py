"""Crash safety with real processes and signals: SIGKILL mid-step and mid-save, SIGTERM.

The train loop runs as `python -m r1jax.train` in a subprocess, as a user runs it. A run
killed with SIGKILL and restarted with the same --workdir must resume from its last
complete checkpoint and end with exactly the metrics and parameters of a run that was
never interrupted (CPU, fixed seed).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from r1jax.models import loading
from r1jax.runtime import checkpoint as ckpt_lib
from r1jax.runtime.metrics import read_metrics

ROOT = Path(__file__).resolve().parents[1]
STEPS = 6
# GRPO from the shipped tiny base: the stage with the most state (policy, optimizer,
# reference model, data iterator, per-step rollout seeds).
OVERRIDES = ["--config.rl.prompts_per_step=2", "--config.rl.num_generations=4",
             "--config.rl.max_new_tokens=8", "--config.data.num_eval=8",
             f"--config.train.num_steps={STEPS}", "--config.train.save_every=1",
             "--config.train.eval_every=3", "--config.train.keep_checkpoints=2"]


def _start(workdir: Path) -> subprocess.Popen:
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2",
             JAX_COMPILATION_CACHE_DIR=str(ROOT / ".pytest_cache" / "jax"))
  cmd = [sys.executable, "-m", "r1jax.train", "--config=configs/grpo_zero.py",
         f"--workdir={workdir}", *OVERRIDES]
  return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, start_new_session=True)


def _finish(proc: subprocess.Popen, timeout: float = 240) -> None:
  _, err = proc.communicate(timeout=timeout)
  assert proc.returncode == 0, err.decode()[-3000:]


def _saving(workdir: Path) -> bool:
  """An orbax save is under way: its temporary directory exists."""
  d = workdir / "checkpoints"
  return d.exists() and any("tmp" in p.name for p in d.iterdir())


def _logged_steps(workdir: Path) -> int:
  try:
    return len((workdir / "metrics.jsonl").read_text().splitlines())
  except FileNotFoundError:
    return 0


def _kill_when(proc: subprocess.Popen, condition, timeout: float = 240) -> str:
  """SIGKILLs proc (its whole session) as soon as condition() holds; what it hit."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if proc.poll() is not None:
      return "exited"
    if condition():
      os.killpg(proc.pid, signal.SIGKILL)
      proc.wait()
      return "killed"
    time.sleep(0.002)
  os.killpg(proc.pid, signal.SIGKILL)
  raise TimeoutError("the kill condition never held")


def _rows(workdir: Path) -> list[dict]:
  return [{k: v for k, v in r.items() if not k.startswith("time/")}
          for r in read_metrics(str(workdir))]


def _assert_same_run(a: Path, b: Path) -> None:
  ra, rb = _rows(a), _rows(b)
  assert [r["step"] for r in rb] == list(range(STEPS + 1))
  assert ra == rb  # every logged number, bit for bit
  wa = loading.restore_run_weights(str(a))[1]
  wb = loading.restore_run_weights(str(b))[1]
  jax.tree.map(np.testing.assert_array_equal, wa, wb)


class _Straight:
  """The uninterrupted run, started at once and waited for when first compared against:
  it runs beside the interrupted ones (two cores) instead of before them."""

  def __init__(self, workdir: Path):
    self.workdir, self._proc = workdir, _start(workdir)

  def __call__(self) -> Path:
    if self._proc is not None:
      _finish(self._proc)
      self._proc = None
    return self.workdir


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
  straight = _Straight(tmp_path_factory.mktemp("straight"))
  yield straight
  if straight._proc is not None and straight._proc.poll() is None:
    straight._proc.kill()


def test_sigkill_mid_save_and_mid_step_resumes_exactly(straight_run, tmp_path):
  workdir = tmp_path / "killed"
  hits = []
  # 1. during an async checkpoint save (the temporary directory is there)
  hits.append(_kill_when(_start(workdir), lambda: _saving(workdir) and _logged_steps(workdir) >= 3))
  # 2. during a step: step 4's metrics are logged, its checkpoint is not written yet
  hits.append(_kill_when(_start(workdir), lambda: _logged_steps(workdir) >= 5
                         and not _saving(workdir)))
  assert hits == ["killed", "killed"]
  latest = ckpt_lib.Checkpointer(str(workdir)).latest_step()
  assert latest is not None and latest < STEPS
  _finish(_start(workdir))
  _assert_same_run(straight_run(), workdir)


def test_sigterm_and_ctrl_c_save_then_stop(straight_run, tmp_path):
  workdir = tmp_path / "term"
  for signum, after in ((signal.SIGTERM, 2), (signal.SIGINT, 4)):  # SIGINT: Ctrl-C
    proc = _start(workdir)
    deadline = time.monotonic() + 240
    while _logged_steps(workdir) <= after and time.monotonic() < deadline and proc.poll() is None:
      time.sleep(0.01)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-3000:]
    rows = read_metrics(str(workdir))
    saved = ckpt_lib.Checkpointer(str(workdir)).latest_step()
    assert saved == rows[-1]["step"] < STEPS, signum  # it saved the step it stopped after
  _finish(_start(workdir))
  _assert_same_run(straight_run(), workdir)


def test_a_torn_metrics_line_is_dropped_on_resume(tmp_path):
  from r1jax.runtime.metrics import MetricsWriter

  path = tmp_path / "metrics.jsonl"
  path.write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in range(4))
                  + '{"step": 4, "lo')
  MetricsWriter(str(tmp_path), first_step=3, enabled=True).close()
  assert [r["step"] for r in read_metrics(str(tmp_path))] == [0, 1, 2]
