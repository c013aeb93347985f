"""Orbax checkpoints of a run: train state, data-iterator state, and what model it was.

A checkpoint under `<workdir>/checkpoints/<step>/` holds
  weights: {"params", "buffers"} — what a later stage starts from (`restore_weights`)
  train:   the rest of the train state (optimizer state, step, reference model, ...)
  meta:    JSON — the model config, the data iterator's state, the config that made it.
Orbax writes each step into a temporary directory and renames it when complete, so a
crash mid-save leaves the previous checkpoint as the latest one; a restart never loads a
half-written step. What a model's weights and config mean is `r1jax.models.loading`'s
business; this module only stores trees.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


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
