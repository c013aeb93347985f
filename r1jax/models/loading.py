"""Which model a run uses and where its weights come from.

An experiment config names its model with `config.model` (a preset, or "from_checkpoint":
the model `config.init_from` was made with) plus `config.model_overrides`, and its start
with `config.init_from`: a Hugging Face checkpoint directory (config.json + safetensors),
an r1jax workdir (orbax checkpoints whose meta records the model), or "" for random
weights. Every stage and program around the loop goes through `model_config` and
`init_weights`, so they agree on what a config means.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import jax
import ml_collections
from jax.sharding import Mesh

from r1jax.models import hf, partitioning, presets
from r1jax.models.config import ModelConfig
from r1jax.models.transformer import init_params
from r1jax.runtime import checkpoint as ckpt_lib


def model_config_dict(cfg: ModelConfig) -> dict[str, Any]:
  return dataclasses.asdict(cfg)


def model_config_from_dict(d: dict[str, Any]) -> ModelConfig:
  return ModelConfig(**d)


# Fields that may differ between runs of one model: its name, numerics and training knobs.
_NOT_ARCHITECTURE = frozenset({
    "name", "dtype", "param_dtype", "remat", "attention_impl", "moe_dispatch", "capacity_factor",
    "init_std", "bias_update_rate", "seq_aux_loss_alpha", "mtp_loss_weight"})


def check_same_model(saved: dict[str, Any], cfg: ModelConfig, directory: str) -> None:
  """A clear error when a workdir's checkpoint belongs to a different model."""
  mine = model_config_dict(cfg)
  diff = {k: (saved.get(k), v) for k, v in mine.items()
          if saved.get(k) != v and k not in _NOT_ARCHITECTURE}
  if diff:
    shown = ", ".join(f"{k}: checkpoint {a!r} vs config {b!r}" for k, (a, b) in list(diff.items())[:6])
    raise ValueError(f"the checkpoint in {directory} was written for a different model ({shown}). "
                     "Use a fresh --workdir, or set the config's model to match.")


def model_config(config: ml_collections.ConfigDict) -> ModelConfig:
  """config.model names a preset, or is "from_checkpoint": the model init_from was made
  with (a Hugging Face config.json, or the meta of an r1jax workdir's checkpoint)."""
  overrides = dict(config.get("model_overrides", {}))
  if config.model != "from_checkpoint":
    return presets.get(config.model, **overrides)
  src = config.get("init_from", "")
  ckpt_lib.check_init_from(src)
  path = os.path.join(src, "config.json")
  if os.path.exists(path):
    with open(path) as f:
      return hf.config_from_hf(json.load(f)).replace(**overrides)
  if src and os.path.isdir(os.path.join(src, "checkpoints")):
    checkpointer = ckpt_lib.Checkpointer(src, async_save=False, create=False)
    try:
      saved = checkpointer.restore_meta()["model"]
    finally:
      checkpointer.close()
    return model_config_from_dict(saved).replace(**overrides)
  raise FileNotFoundError(f"config.model='from_checkpoint' reads {path} or the checkpoints of an "
                          f"r1jax workdir, and {src!r} holds neither; set --config.init_from="
                          "<a Hugging Face checkpoint directory or an r1jax workdir>")


def restore_run_weights(workdir: str, *, expected: ModelConfig | None = None, shardings=None,
                        step: int | None = None) -> tuple[ModelConfig, dict]:
  """(model config, {"params", "buffers"}) of a run's checkpoint (default: the latest).

  Only the weights are read, not the run's optimizer or data state. With `expected`, a
  checkpoint of another model is refused before anything is read, and the weights take
  `expected`'s dtypes; `shardings` (a tree like the weights) places them on a mesh,
  otherwise they go whole onto this process's first device (`on_local_device`).
  """
  c = ckpt_lib.Checkpointer(workdir, async_save=False, create=False)
  try:
    saved = model_config_from_dict(c.restore_meta(step)["model"])
    if expected is not None:
      check_same_model(model_config_dict(saved), expected, workdir)
    cfg = expected or saved
    target = jax.eval_shape(lambda: init_params(cfg, jax.random.key(0)))
    target = (ckpt_lib.on_local_device(target) if shardings is None else
              jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                           target, shardings))
    return saved, c.restore_weights(target, step)
  finally:
    c.close()


def init_weights(config: ml_collections.ConfigDict, cfg: ModelConfig, rng: jax.Array,
                 mesh: Mesh, *, step: int | None = None) -> dict:
  """{"params", "buffers"} to start from, sharded on `mesh`: config.init_from (a Hugging
  Face checkpoint dir, or an r1jax workdir's checkpoint `step`, default the latest), or
  random from `rng` when init_from is empty."""
  src = config.get("init_from", "")
  if not src:
    return partitioning.init_sharded_params(cfg, rng, mesh)
  ckpt_lib.check_init_from(src)
  if os.path.exists(os.path.join(src, "config.json")):
    partitioning.check_divisibility(cfg, mesh)
    hf_cfg, params = hf.load_hf_checkpoint(src, mesh=mesh)
    if cfg.n_mtp_modules < hf_cfg.n_mtp_modules:  # a stage that does not train MTP drops it
      unused = {f"mtp_{k}" for k in range(cfg.n_mtp_modules + 1, hf_cfg.n_mtp_modules + 1)}
      params = {c: {k: v for k, v in tree.items() if k not in unused} for c, tree in params.items()}
      hf_cfg = hf_cfg.replace(n_mtp_modules=cfg.n_mtp_modules)
    elif cfg.n_mtp_modules > hf_cfg.n_mtp_modules:
      raise ValueError(f"{src} holds weights for {hf_cfg.n_mtp_modules} MTP module(s) but the "
                       f"model wants {cfg.n_mtp_modules}; set "
                       f"--config.model_overrides.n_mtp_modules={hf_cfg.n_mtp_modules}")
    check_same_model(model_config_dict(hf_cfg), cfg, src)
    return params
  try:
    _, weights = restore_run_weights(src, expected=cfg, step=step,
                                     shardings=partitioning.param_shardings(cfg, mesh))
  except FileNotFoundError as e:
    raise FileNotFoundError(f"config.init_from={src!r} holds neither a Hugging Face checkpoint "
                            "(config.json) nor r1jax checkpoints (checkpoints/<step>)") from e
  return weights
