"""The package's imports point one way: down the layers, never up, sideways or in a circle.

Read from the source with `ast` (nothing is imported or run), every `import` counts,
including those inside functions: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "r1jax"

# Lowest first. A module may import its own layer's package and any layer below it. The
# layers on one row are siblings: neither may import the other.
LAYERS = (
    ("runtime",),
    ("data",),
    ("models",),
    ("sampling", "losses"),
    ("rewards",),
    ("stages",),
    ("train",),
    ("recipe", "tools"),
    ("evaluate", "rejection_sample", "cold_start", "plan"),  # the recipe's short commands
)
RANK = {name: rank for rank, row in enumerate(LAYERS) for name in row}


def module_name(path: Path, root: Path = PACKAGE) -> str:
  parts = path.relative_to(root.parent).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str], root: Path = PACKAGE) -> set[str]:
  """The modules of `modules` that the file at `path` imports (`from a import b` counts b
  when b is a module, else a)."""
  name = module_name(path, root)
  package = name if path.name == "__init__.py" else name.rpartition(".")[0]
  found = set()
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      targets = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join(anchor + ([base] if base else []))
      targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                 for a in node.names]
    else:
      continue
    for target in targets:
      while target and target not in modules:  # `import r1jax.models.hf` -> that module
        target = target.rpartition(".")[0]
      if target and target != name:
        found.add(target)
  return found


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
  """module -> the package modules it imports, for every .py file under `root`."""
  files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
  return {m: imported_modules(p, set(files), root) for m, p in files.items()}


def layer(module: str) -> str | None:
  """The layer a module belongs to: its first name below the package (None: the package)."""
  parts = module.split(".")
  return parts[1] if len(parts) > 1 else None


def layering_errors(graph: dict[str, set[str]]) -> list[str]:
  """Every edge that points up, sideways between sibling layers, or into an unknown layer;
  importing the top-level package itself counts as pointing up."""
  errors = []
  for src, targets in sorted(graph.items()):
    for dst in sorted(targets):
      a, b = layer(src), layer(dst)
      if a is None:
        continue  # r1jax/__init__.py
      if a not in RANK or (b is not None and b not in RANK):
        unknown = a if a not in RANK else b
        errors.append(f"{src} -> {dst}: layer {unknown!r} is not in tests/test_layers.py's "
                      "LAYERS; give it a place")
      elif b is None or RANK[b] > RANK[a]:
        errors.append(f"{src} -> {dst}: imports upward ({a} is below {b or 'the package'})")
      elif RANK[b] == RANK[a] and a != b:
        errors.append(f"{src} -> {dst}: imports its sibling layer {b} (they share a row)")
  return errors


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """The import circles of `graph`: its strongly connected components of more than one
  module (Tarjan's algorithm), each sorted."""
  index, low, stack, on_stack, out = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in graph.get(v, ()):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        out.append(sorted(component))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return out


def test_the_graph_is_read():  # an empty graph would pass everything below
  graph = import_graph()
  assert {"r1jax.train", "r1jax.stages.grpo", "r1jax.models.transformer",
          "r1jax.runtime.sharding"} <= set(graph)
  assert "r1jax.losses.grpo" in graph["r1jax.stages.grpo"]
  assert "r1jax.runtime.sharding" in graph["r1jax.models.partitioning"]
  # a lazy import inside a function is an edge too
  assert "r1jax.rewards.reward_model" in graph["r1jax.rewards"]


def test_every_layer_is_a_folder_or_module_of_the_package():
  names = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
           if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
  assert names - {"assets"} == set(RANK), (
      f"layers without a file: {sorted(set(RANK) - names)}; files without a layer: "
      f"{sorted(names - set(RANK))}")


def test_imports_point_down():
  errors = layering_errors(import_graph())
  assert not errors, "imports against the layering:\n" + "\n".join(errors)


def test_no_import_circles():
  found = cycles(import_graph())
  assert not found, "import circles:\n" + "\n".join(" <-> ".join(c) for c in found)


@pytest.mark.parametrize("edge, expected", [
    (("r1jax.models.hf", "r1jax.stages.grpo"), "imports upward"),
    (("r1jax.losses.grpo", "r1jax.sampling.sampler"), "sibling layer"),
    (("r1jax.runtime.checkpoint", "r1jax"), "imports upward"),
    (("r1jax.ppo.stage", "r1jax.models"), "not in tests/test_layers.py's LAYERS"),
])
def test_the_checks_bite(edge, expected):
  src, dst = edge
  errors = layering_errors({src: {dst}, dst: set()})
  assert len(errors) == 1 and expected in errors[0] and f"{src} -> {dst}" in errors[0], errors
  assert layering_errors({"r1jax.stages.grpo": {"r1jax.models.hf"}}) == []


def test_circles_are_found(tmp_path):
  pkg = tmp_path / "r1jax"
  (pkg / "data").mkdir(parents=True)
  (pkg / "__init__.py").write_text("")
  (pkg / "data" / "__init__.py").write_text("")
  (pkg / "data" / "a.py").write_text("def f():\n  from r1jax.data import b\n")
  (pkg / "data" / "b.py").write_text("from . import c\n")
  (pkg / "data" / "c.py").write_text("import r1jax.data.a\n")
  graph = import_graph(pkg)
  assert graph["r1jax.data.b"] == {"r1jax.data.c"}  # relative imports resolve
  assert cycles(graph) == [["r1jax.data.a", "r1jax.data.b", "r1jax.data.c"]]
