"""The command line: a bad override is one clear line, --print_config shows the config."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _train(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "r1jax.train", "--config=configs/grpo_zero.py",
                         *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_unknown_override_names_the_closest_key():
  out = _train("--config.rl.betta=0")
  assert out.returncode != 0
  assert 'unknown config key betta; did you mean "beta"' in out.stderr
  assert "Traceback" not in out.stderr


def test_wrong_type_override():
  out = _train("--config.rl.beta=abc")
  assert out.returncode != 0 and "could not convert string to float: 'abc'" in out.stderr


def test_print_config_shows_the_overrides_and_exits():
  out = _train("--config.rl.beta=0.25", "--print_config", "--workdir=/nonexistent/never")
  assert out.returncode == 0, out.stderr
  assert "beta: 0.25" in out.stdout and "stage: grpo" in out.stdout
  assert not Path("/nonexistent/never").exists()


def test_the_short_commands_run_the_recipe_programs():
  """`python -m r1jax.evaluate` (and rejection_sample, cold_start, plan) are the programs
  of r1jax/recipe under their documented names."""
  for name, config, key in (("evaluate", "eval_math", "answer_mode"),
                            ("rejection_sample", "rejection_sample", "judge_when"),
                            ("cold_start", "cold_start", "summary")):
    out = subprocess.run([sys.executable, "-m", f"r1jax.{name}", f"--config=configs/{config}.py",
                          "--print_config"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and f"{key}:" in out.stdout, (name, out.stderr[-2000:])
  out = subprocess.run([sys.executable, "-m", "r1jax.plan", "--config=configs/grpo_zero.py",
                        "--mesh=data:3", "--devices=8"], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
  assert out.returncode != 0 and "r1jax.plan:" in out.stderr and "Traceback" not in out.stderr
