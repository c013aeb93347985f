"""Meshes and the one table that maps logical axis names to mesh axes.

Every parameter carries logical axis names (`embed`, `heads`, `expert`, ...; see
`r1jax.models.param_logical_axes`). A mesh has four named axes,

    data    pure data parallelism (parameters replicated)
    fsdp    data parallelism with parameters and optimizer state sharded (ZeRO-3)
    expert  MoE experts split across devices; the batch is split here too
    tensor  heads / ffn width split across devices (Megatron)

and `DEFAULT_RULES` says which mesh axes each logical axis is split over. Experiments
override entries with `config.sharding_rules` ("q_lora:fsdp,embed:fsdp+expert", parsed by
`rules_with`); the train loop sets the resulting table as flax's logical-axis-rules
context for the whole run, and every function here that takes `rules=None` reads it
from there (`current_rules`). Model code never names a mesh axis, and nothing here
knows a model: `r1jax.models.partitioning` places a model's parameters by this table.

Several processes (`r1jax.runtime.distributed`): a mesh spans every process's devices and arrays
on it are global. Host data crosses in both directions as the same global value on every
process: `shard_batch` places each process's part of a batch that every process built
alike, `to_host` gathers a global array back to every host. Where building a row costs
(tokenizing text), `shard_rows` has each process build only the rows it holds.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AbstractMesh, Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "expert", "tensor")

# logical axis -> mesh axes (None: replicated). The batch of activations is split over
# every axis that does not split the weights it meets. The MLA up-projections are split
# over their latent axis (at 671B on fsdp=32 they would otherwise be replicated, 12.6 GB
# per chip; `python -m r1jax.plan` shows the layout).
DEFAULT_RULES: tuple[tuple[str, str | tuple[str, ...] | None], ...] = (
    ("batch", ("data", "fsdp", "expert")),
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("head_dim", None),
    ("q_lora", "fsdp"),
    ("kv_lora", "fsdp"),
    ("expert", "expert"),
    ("expert_mlp", "tensor"),
    ("expert_router", None),
    ("mtp_concat", None),
    ("norm", None),
    ("layers", None),
)


def rules_with(overrides: str | None, base=DEFAULT_RULES):
  """`base` with "embed:fsdp+expert,q_lora:fsdp"-style overrides ("none": replicated).

  An override takes the lowest priority and keeps the default as its fallback, so
  `embed:fsdp+expert` splits attention weights 256 ways on a 32×8 mesh while expert
  weights, whose expert axis already holds "expert", still split their embed over fsdp.
  """
  defaults = list(base)
  known = {name for name, _ in defaults}
  added = []
  for part in filter(None, (overrides or "").replace(" ", "").split(",")):
    name, colon, target = part.partition(":")
    if not colon:
      raise ValueError(f"sharding rule {part!r} is not logical_axis:mesh_axes (e.g. q_lora:fsdp, "
                       "embed:fsdp+expert, vocab:none)")
    if name not in known:
      raise ValueError(f"sharding rule {part!r}: unknown logical axis {name!r}; known: "
                       f"{sorted(known)}")
    axes = tuple(a for a in target.split("+") if a and a != "none")
    bad = [a for a in axes if a not in MESH_AXES]
    if bad:
      raise ValueError(f"sharding rule {part!r}: {bad} are not mesh axes {list(MESH_AXES)}")
    added.append((name, axes[0] if len(axes) == 1 else (axes or None)))
  names = {name for name, _ in added}
  return tuple([r for r in defaults if r[0] not in names] + added
               + [r for r in defaults if r[0] in names])


def current_rules():
  """The table of the enclosing `nn.logical_axis_rules` context, else DEFAULT_RULES."""
  return tuple(nn.get_logical_axis_rules()) or DEFAULT_RULES


def mesh_shape(axes: Mapping[str, int], num_devices: int) -> tuple[int, ...]:
  """Sizes for MESH_AXES from {"data": 2, "fsdp": -1, ...}; one size may be -1 (the rest)."""
  unknown = set(axes) - set(MESH_AXES)
  if unknown:
    raise ValueError(f"unknown mesh axes {sorted(unknown)}; the axes are {list(MESH_AXES)}")
  sizes = [int(axes.get(a, 1)) for a in MESH_AXES]
  if sizes.count(-1) > 1:
    raise ValueError(f"at most one mesh axis may be -1, got {dict(zip(MESH_AXES, sizes))}")
  if any(s == 0 or s < -1 for s in sizes):
    raise ValueError(f"mesh axis sizes must be positive or -1, got {dict(zip(MESH_AXES, sizes))}")
  known = math.prod(s for s in sizes if s != -1)
  if -1 in sizes:
    if num_devices % known:
      raise ValueError(f"mesh {dict(zip(MESH_AXES, sizes))}: {num_devices} devices are not "
                       f"divisible by the product of the fixed axes ({known})")
    sizes[sizes.index(-1)] = num_devices // known
  if math.prod(sizes) != num_devices:
    raise ValueError(f"mesh {dict(zip(MESH_AXES, sizes))} has {math.prod(sizes)} devices, but "
                     f"{num_devices} are available; make the product equal (or set one axis to -1)")
  return tuple(sizes)


def make_mesh(axes: Mapping[str, int], devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A Mesh over `devices` (default: all) with MESH_AXES sized by `axes`."""
  devices = list(jax.devices() if devices is None else devices)
  shape = mesh_shape(axes, len(devices))
  return Mesh(np.asarray(devices).reshape(shape), MESH_AXES)


def logical_shardings(logical_axes, mesh: Mesh, rules=None):
  """NamedShardings for a tree of logical-axis PartitionSpecs (e.g. a model's
  `param_logical_axes`) under the rules."""
  rules = current_rules() if rules is None else rules
  return nn.logical_to_mesh_sharding(logical_axes, mesh, list(rules))


def batch_sharding(mesh: Mesh, rules=None, ndim: int = 2) -> NamedSharding:
  """Sharding of a [batch, ...] array: the batch axis split by the "batch" rule."""
  rules = current_rules() if rules is None else rules
  spec = nn.logical_to_mesh_axes(("batch",) + (None,) * (ndim - 1), list(rules))
  return NamedSharding(mesh, spec)


def shard_batch(batch, mesh: Mesh, rules=None):
  """Places every [batch, ...] host leaf of `batch` with its leading axis split by "batch".

  Every process passes the same global batch and copies only the rows its own devices
  hold (nothing crosses between processes, and nothing checks that the batches agree).
  """
  return jax.tree.map(lambda x: place(x, batch_sharding(mesh, rules, np.ndim(x))), batch)


def my_rows(n: int, mesh: Mesh, rules=None) -> np.ndarray:
  """The rows of an [n, ...] batch that this process's devices hold, ascending."""
  shards = batch_sharding(mesh, rules, 1).addressable_devices_indices_map((n,)).values()
  return np.unique(np.concatenate([np.arange(n)[index[0]] for index in shards]))


def shard_rows(build, n: int, mesh: Mesh, rules=None):
  """A global batch of n rows of which each process builds only the rows it holds.

  `build(rows)` gets the ascending global row indices of this process (`my_rows`) and
  returns {name: [len(rows), ...] array}; the result is {name: global [n, ...] array}
  split over the "batch" rule, as `shard_batch` of the whole batch would be. Per-row
  work (tokenizing, padding) then runs once per row across the job, not once per process.
  """
  rows = my_rows(n, mesh, rules)
  local = build(rows)
  where = np.full(n, -1)
  where[rows] = np.arange(len(rows))

  def assemble(x):
    x = np.asarray(x)
    return jax.make_array_from_callback(
        (n,) + x.shape[1:], batch_sharding(mesh, rules, x.ndim),
        lambda index: x[(where[np.arange(n)[index[0]]],) + tuple(index[1:])])

  return {k: assemble(v) for k, v in local.items()}


def place(x, sharding: jax.sharding.Sharding) -> jax.Array:
  """A host array (or one on a single device) as a global array of `sharding`, built from
  the pieces this process's devices hold: nothing crosses between processes, and no
  device receives more than its own shard."""
  x = np.asarray(x)
  return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def to_host(tree):
  """Every leaf's global value as a NumPy array, on every process.

  Arrays that span other processes' devices are all-gathered (a collective: every process
  must call this, in the same order); the others are copied from their own devices.
  """
  def fetch(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)

  return jax.tree.map(fetch, tree)


@contextlib.contextmanager
def use_rules(rules) -> Iterator[None]:
  """Makes `rules` the table that every `rules=None` of this module reads, in this context."""
  with nn.logical_axis_rules(list(rules)):
    yield


@contextlib.contextmanager
def activation_sharding(mesh: Mesh, rules=None) -> Iterator[None]:
  """While tracing under this context, model activations carry the rules' layout
  (e.g. the residual stream split over the batch axes); outside it they are left to XLA."""
  rules = current_rules() if rules is None else rules
  # an AbstractMesh (r1jax.plan: shapes only, no devices) can only be traced against
  use = jax.sharding.use_abstract_mesh if isinstance(mesh, AbstractMesh) else jax.set_mesh
  with use(mesh), nn.logical_axis_rules(list(rules)):
    yield


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())
