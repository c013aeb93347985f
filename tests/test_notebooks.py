"""The notebooks in notebooks/ run top to bottom, as a researcher would run them.

Each notebook executes in a fresh Jupyter kernel on this Python (sys.executable), with its
working directory in notebooks/, JAX on the CPU and R1JAX_NOTEBOOK_FAST=1, which every
notebook reads to shrink its runs to a smoke test of the same code. Any cell error fails
the test. Needs nbclient, nbformat and ipykernel (the `dev` extra); without them the tests
fail, they are not skipped.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
CELL_TIMEOUT_S = 300
# Notebooks whose plots are their point: each must display at least one figure.
WITH_FIGURES = {"01_quickstart.ipynb", "02_model_tour.ipynb"}


def _jupyter():
  try:
    import ipykernel  # noqa: F401
    import jupyter_client  # noqa: F401
    import nbclient
    import nbformat
  except ImportError as e:
    pytest.fail(f"running the notebooks needs nbclient, nbformat and ipykernel ({e}); "
                "install them with pip install -e '.[dev]' (or pip install nbclient ipykernel)",
                pytrace=False)
  return nbclient, nbformat


def _kernel_env(tmp_path: Path) -> dict[str, str]:
  env = dict(os.environ)
  # tests/conftest.py fakes 8 host devices for the mesh tests; the notebooks run as a user
  # runs them, on one. Unoptimised XLA CPU code compiles in half the time, and the tiny
  # runs barely notice.
  flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "", env.get("XLA_FLAGS", ""))
  env["XLA_FLAGS"] = f"{flags.strip()} --xla_backend_optimization_level=0".strip()
  env.update({
      "R1JAX_NOTEBOOK_FAST": "1",
      "JAX_PLATFORMS": "cpu",
      # the compilation cache the rest of the suite uses (tests/conftest.py)
      "JAX_COMPILATION_CACHE_DIR": str(ROOT / ".pytest_cache" / "jax"),
      "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.5",
      "TMPDIR": str(tmp_path),  # the notebooks' temporary workdirs and checkpoints
      "MPLBACKEND": "module://matplotlib_inline.backend_inline",
  })
  # The notebooks' own inputs. No PYTHONPATH: the set-up cell must find configs/ itself.
  for key in ("R1JAX_WORKDIR", "HF_CHECKPOINT", "R1JAX_GIT"):
    env.pop(key, None)
  return env


def _kernel_manager(tmp_path: Path):
  """A kernel on this very Python, whatever kernelspecs the machine has installed."""
  from jupyter_client.kernelspec import KernelSpecManager
  from jupyter_client.manager import KernelManager

  spec_dir = tmp_path / "kernels" / "r1jax-test"
  spec_dir.mkdir(parents=True)
  (spec_dir / "kernel.json").write_text(json.dumps({
      "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
      "display_name": "r1jax tests", "language": "python"}))
  specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")], ensure_native_kernel=False)
  return KernelManager(kernel_name="r1jax-test", kernel_spec_manager=specs)


def _error_report(nb, exc) -> str:
  for i, cell in enumerate(nb.cells):
    for out in cell.get("outputs", []):
      if out.get("output_type") == "error":
        src = "\n".join(cell.source.splitlines()[:8])
        tb = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(out.get("traceback", [])))
        return f"cell {i} failed:\n{src}\n...\n{tb[-4000:]}"
  return str(exc)[-4000:]


def test_there_are_notebooks():  # a wrong glob must not pass by running nothing
  names = {p.name for p in NOTEBOOKS}
  assert {"01_quickstart.ipynb", "02_model_tour.ipynb", "03_rewards.ipynb",
          "04_hf_checkpoints.ipynb"} <= names, names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path):
  nbclient, nbformat = _jupyter()
  nb = nbformat.read(str(path), as_version=4)
  km = _kernel_manager(tmp_path)
  client = nbclient.NotebookClient(
      nb, km=km, timeout=CELL_TIMEOUT_S, allow_errors=False,
      resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
  start = time.perf_counter()
  try:
    client.execute(env=_kernel_env(tmp_path))
  except nbclient.exceptions.CellExecutionError as e:
    pytest.fail(f"{path.name}: {_error_report(nb, e)}", pytrace=False)
  finally:  # nbclient leaves a kernel it was given running
    if km.has_kernel:
      km.shutdown_kernel(now=True)
  print(f"{path.name}: {time.perf_counter() - start:.1f} s")
  if path.name in WITH_FIGURES:
    figures = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
               if "image/png" in o.get("data", {})]
    assert figures, f"{path.name} displayed no figure"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_are_committed_without_outputs(path):
  nb = json.loads(path.read_text(encoding="utf-8"))
  for i, cell in enumerate(nb["cells"]):
    if cell["cell_type"] == "code":
      assert not cell["outputs"] and cell["execution_count"] is None, (
          f"{path.name} cell {i} has outputs; commit notebooks stripped "
          "(python notebooks/_build.py writes them so)")
  assert nb["cells"][1]["cell_type"] == "code" and "R1JAX_NOTEBOOK_FAST" in "".join(
      nb["cells"][1]["source"]), f"{path.name}: the set-up cell (FAST switch) must come first"


def test_notebooks_match_their_generator():
  _jupyter()
  result = subprocess.run([sys.executable, str(NOTEBOOK_DIR / "_build.py"), "--check"],
                          capture_output=True, text=True)
  assert result.returncode == 0, result.stderr
