"""Orbax checkpoints of a run: train state, data-iterator state, and what model it was.

A checkpoint under `<workdir>/checkpoints/<step>/` holds
  weights: {"params", "buffers"} — what a later stage starts from (`restore_weights`)
  train:   the rest of the train state (optimizer state, step, reference model, ...)
  meta:    JSON — the model config, the data iterator's state, the config that made it.
Orbax writes each step into a temporary directory and renames it when complete, so a
crash mid-save leaves the previous checkpoint as the latest one; a restart never loads a
half-written step.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from r1jax.models import ModelConfig, init_params


def model_config_dict(cfg: ModelConfig) -> dict[str, Any]:
  return dataclasses.asdict(cfg)


def model_config_from_dict(d: dict[str, Any]) -> ModelConfig:
  return ModelConfig(**d)


class Checkpointer:
  """Saves and restores `(state, meta)` under `<workdir>/checkpoints`."""

  def __init__(self, workdir: str, *, max_to_keep: int = 2, async_save: bool = True,
               create: bool = True):
    """`create=False` for a reader: a wrong path then leaves no empty directory behind."""
    self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=create,
                                             enable_async_checkpointing=async_save))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: dict, meta: dict[str, Any], *, force: bool = False) -> None:
    weights, train = _split(state)
    self._manager.save(step, args=ocp.args.Composite(
        weights=ocp.args.StandardSave(weights), train=ocp.args.StandardSave(train),
        meta=ocp.args.JsonSave(meta)), force=force)

  def _step(self, step: int | None) -> int:
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint under {self.directory}")
    return step

  def restore_meta(self, step: int | None = None) -> dict[str, Any]:
    return self._manager.restore(self._step(step),
                                 args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

  def restore_weights(self, abstract_weights, step: int | None = None):
    """{"params", "buffers"} of `step` (default: latest), placed as `abstract_weights` says."""
    return self._manager.restore(self._step(step), args=ocp.args.Composite(
        weights=ocp.args.StandardRestore(abstract_weights)))["weights"]

  def restore(self, abstract_state: dict, step: int | None = None):
    """(state, meta) of `step` (default: latest); `abstract_state` gives shapes and shardings."""
    weights, train = _split(abstract_state)
    out = self._manager.restore(self._step(step), args=ocp.args.Composite(
        weights=ocp.args.StandardRestore(weights), train=ocp.args.StandardRestore(train),
        meta=ocp.args.JsonRestore()))
    return {**out["weights"], **out["train"]}, out["meta"]

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def _split(state: dict) -> tuple[dict, dict]:
  weights = {k: state[k] for k in ("params", "buffers")}
  return weights, {k: v for k, v in state.items() if k not in weights}


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


def restore_run_weights(workdir: str, *, expected: ModelConfig | None = None, shardings=None,
                        step: int | None = None) -> tuple[ModelConfig, dict]:
  """(model config, {"params", "buffers"}) of a run's checkpoint (default: the latest).

  Only the weights are read, not the run's optimizer or data state. With `expected`, a
  checkpoint of another model is refused before anything is read, and the weights take
  `expected`'s dtypes; `shardings` (a tree like the weights) places them on a mesh,
  otherwise they go whole onto this process's first device (`on_local_device`).
  """
  c = Checkpointer(workdir, async_save=False, create=False)
  try:
    saved = model_config_from_dict(c.restore_meta(step)["model"])
    if expected is not None:
      check_same_model(model_config_dict(saved), expected, workdir)
    cfg = expected or saved
    target = jax.eval_shape(lambda: init_params(cfg, jax.random.key(0)))
    target = (on_local_device(target) if shardings is None else
              jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                           target, shardings))
    return saved, c.restore_weights(target, step)
  finally:
    c.close()


def on_local_device(abstract_tree):
  """ShapeDtypeStructs placed whole on this process's first device: a restore target that
  works in any process of a multi-process run (without one, orbax would read the
  checkpoint's own, possibly other-topology, shardings)."""
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device),
                      abstract_tree)


def abstract(tree):
  """ShapeDtypeStructs (with shardings) of a pytree of arrays, for `restore`."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                                     sharding=getattr(x, "sharding", None)), tree)


def check_init_from(path: str) -> None:
  """A clear error for a config.init_from that does not exist, naming the command that
  makes it when it is a config's default workdir (`r1jax.train` runs configs/<name>.py in
  workdirs/<name>), e.g. grpo_all.py's workdirs/sft_stage2."""
  if not path or os.path.exists(path):
    return
  config_file = os.path.join("configs", os.path.basename(os.path.normpath(path)) + ".py")
  how = (f"make it with `python -m r1jax.train --config={config_file} --workdir={path}`"
         if os.path.exists(config_file) else
         "point it at an r1jax workdir or a Hugging Face checkpoint directory")
  raise FileNotFoundError(f"config.init_from={path!r} does not exist; {how}")
