"""A model's parameters on a mesh: its logical axes mapped by the rules of
`r1jax.runtime.sharding`, sharded initialisation and placement, and the checks that a
mesh can split the model and its batch evenly.

Every function with `rules=None` reads the enclosing rules context (`sharding.use_rules`),
as the train loop sets it for a run.
"""

from __future__ import annotations

import jax
from jax.sharding import Mesh

from r1jax.models.config import ModelConfig
from r1jax.models.transformer import init_params, param_logical_axes
from r1jax.runtime import sharding


def check_divisibility(cfg: ModelConfig, mesh: Mesh, batch_size: int | None = None) -> None:
  """Clear errors for model or batch shapes that the mesh cannot split evenly."""
  size = dict(mesh.shape)
  if cfg.is_moe and cfg.n_routed_experts % size["expert"]:
    raise ValueError(f"n_routed_experts={cfg.n_routed_experts} is not divisible by the expert "
                     f"mesh axis ({size['expert']})")
  if cfg.n_heads % size["tensor"]:
    raise ValueError(f"n_heads={cfg.n_heads} is not divisible by the tensor mesh axis "
                     f"({size['tensor']})")
  if cfg.attention == "gqa" and cfg.n_kv_heads % size["tensor"]:
    raise ValueError(f"n_kv_heads={cfg.n_kv_heads} is not divisible by the tensor mesh axis "
                     f"({size['tensor']})")
  if batch_size is not None:
    split = size["data"] * size["fsdp"] * size["expert"]
    if batch_size % split:
      raise ValueError(f"batch size {batch_size} is not divisible by data×fsdp×expert = "
                       f"{size['data']}×{size['fsdp']}×{size['expert']} = {split}")


def param_shardings(cfg: ModelConfig, mesh: Mesh, rules=None):
  """NamedSharding for every leaf of `init_params(cfg, ...)`, from the logical axes."""
  return sharding.logical_shardings(param_logical_axes(cfg), mesh, rules)


def init_sharded_params(cfg: ModelConfig, rng: jax.Array, mesh: Mesh, rules=None):
  """Parameters created directly in their shards: no host ever holds the whole model."""
  check_divisibility(cfg, mesh)
  return jax.jit(lambda key: init_params(cfg, key),
                 out_shardings=param_shardings(cfg, mesh, rules))(rng)


def shard_params(cfg: ModelConfig, params, mesh: Mesh, rules=None):
  """Places existing parameters (host arrays, or on one device) onto the mesh, each
  process copying only its devices' shards (`sharding.place`)."""
  check_divisibility(cfg, mesh)
  return jax.tree.map(sharding.place, params, param_shardings(cfg, mesh, rules))
