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
