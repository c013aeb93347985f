"""The notebooks in notebooks/ run top to bottom, as a researcher would run them.

Each notebook executes in a fresh Jupyter kernel on this Python (sys.executable), with its
working directory in notebooks/, JAX on the CPU and R1JAX_NOTEBOOK_FAST=1, which every
notebook reads to shrink its runs to a smoke test of the same code. Any cell error fails
the test.

Each notebook NN_name.ipynb is paired with NN_name.py, its source in jupytext's percent
format: the tests check that the two hold the same cells, that the .ipynb is committed
without outputs, and that all notebooks start with the same set-up cell. Needs nbclient,
nbformat, ipykernel and jupytext (the `dev` extra); without them the tests fail, they are
not skipped.
"""

import difflib
import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
EXPECTED = ("01_quickstart", "02_model_tour", "03_rewards", "04_hf_checkpoints")
PAIRING = "ipynb,py:percent"  # the `formats` of every notebook's jupytext metadata
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


def _jupytext():
  try:
    import jupytext
  except ImportError as e:
    pytest.fail(f"reading the notebooks' .py sources needs jupytext ({e}); "
                "install it with pip install -e '.[dev]' (or pip install jupytext)", pytrace=False)
  return jupytext


def _cells(nb) -> list[tuple[str, str, list[str]]]:
  return [(c.cell_type, c.source, list(c.metadata.get("tags", []))) for c in nb.cells]


def _diff(a: str, b: str, name_a: str, name_b: str, lines: int = 12) -> str:
  diff = list(difflib.unified_diff(a.splitlines(), b.splitlines(), name_a, name_b, lineterm=""))
  return "\n".join(diff[:lines] + (["..."] if len(diff) > lines else []))


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
  assert {f"{n}.ipynb" for n in EXPECTED} <= names, names
  missing = [f"{n}.py" for n in EXPECTED if not (NOTEBOOK_DIR / f"{n}.py").is_file()]
  assert not missing, f"notebooks/ lacks the notebooks' jupytext sources {missing}"


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
          f"{path.name} cell {i} has outputs; commit notebooks stripped (in Jupyter: clear "
          "all outputs and save; or rewrite it from its .py, outputs and cell ids dropped: "
          f"jupytext --to ipynb notebooks/{path.stem}.py)")
  assert nb["cells"][1]["cell_type"] == "code" and "R1JAX_NOTEBOOK_FAST" in "".join(
      nb["cells"][1]["source"]), f"{path.name}: the set-up cell (FAST switch) must come first"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_and_its_py_hold_the_same_cells(path):
  _, nbformat = _jupyter()
  jupytext = _jupytext()
  py = path.with_suffix(".py")
  fix = f"jupytext --sync notebooks/{path.name}"
  assert py.is_file(), (f"{path.name} has no jupytext source {py.name}; pair them with "
                        f"jupytext --set-formats {PAIRING} notebooks/{path.name}")
  nb, text = nbformat.read(str(path), as_version=4), jupytext.read(str(py))
  for name, meta in ((path.name, nb.metadata), (py.name, text.metadata)):
    formats = meta.get("jupytext", {}).get("formats")
    assert formats == PAIRING, (f"{name}: jupytext formats {formats!r}, not {PAIRING!r}, so "
                                f"Jupyter would not keep the pair in sync; run jupytext "
                                f"--set-formats {PAIRING} notebooks/{path.name}")
  a, b = _cells(nb), _cells(text)
  for i, (ca, cb) in enumerate(zip(a, b)):
    if ca != cb:
      what = "\n".join(
          [f"cell type {ca[0]} ({path.name}) vs {cb[0]} ({py.name})"] * (ca[0] != cb[0])
          + [f"tags {ca[2]} ({path.name}) vs {cb[2]} ({py.name})"] * (ca[2] != cb[2])
          + [_diff(ca[1], cb[1], path.name, py.name)] * (ca[1] != cb[1]))
      pytest.fail(f"{path.name} and {py.name} differ from cell {i} on:\n{what}\n"
                  f"Run `{fix}` (the more recently modified file is the source).",
                  pytrace=False)
  if len(a) != len(b):
    pytest.fail(f"{path.name} has {len(a)} cells, {py.name} {len(b)}: they differ from cell "
                f"{min(len(a), len(b))} on.\nRun `{fix}` (the more recently modified file is "
                "the source).", pytrace=False)


def test_notebooks_share_one_set_up_cell():
  """No generator shares the set-up cell any more: the four copies must be kept equal."""
  jupytext = _jupytext()
  setups = {}
  for path in NOTEBOOKS:
    py = path.with_suffix(".py")
    assert py.is_file(), f"{path.name} has no jupytext source {py.name}"
    code = [c for c in jupytext.read(str(py)).cells if c.cell_type == "code"]
    assert code, f"{py.name} has no code cell"
    setups[path.stem] = (code[0].source, tuple(code[0].metadata.get("tags", ())))
  variants = {}
  for name, setup in setups.items():
    variants.setdefault(setup, []).append(name)
  if len(variants) > 1:  # the most common version is the shared one (on a tie: the first's)
    shared = max(variants.values(), key=len)
    odd = [n for n in setups if n not in shared]
    got, want = setups[odd[0]], setups[shared[0]]
    detail = (_diff(want[0], got[0], f"{shared[0]}.py", f"{odd[0]}.py") if got[0] != want[0]
              else f"tags {list(want[1])} ({shared[0]}.py) vs {list(got[1])} ({odd[0]}.py)")
    pytest.fail(f"the set-up cell (first code cell) of {', '.join(odd)} differs from that of "
                f"{', '.join(shared)}:\n{detail}\nThe set-up cell is shared: copy it across to "
                "all four notebooks' .py files, then run jupytext --sync notebooks/*.ipynb.",
                pytrace=False)
