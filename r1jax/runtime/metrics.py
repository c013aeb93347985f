"""Run logging: `<workdir>/metrics.jsonl`, TensorBoard scalars and text samples.

Only process 0 writes; other processes get a writer that does nothing, so the train
loop never branches on the process index. A run resumed from a checkpoint first drops
what was logged for the steps it will redo, in both records, so a run that crashed and
resumed logs exactly what an uninterrupted run logs.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import jax
import numpy as np


def _scalar(v: Any) -> float | int:
  v = np.asarray(v).item()
  return v if isinstance(v, int) else float(v)


class MetricsWriter:
  """Appends one JSON object per logged step and mirrors scalars to TensorBoard."""

  def __init__(self, workdir: str, *, first_step: int | None = None,
               enabled: bool | None = None):
    """first_step: the first step this run logs; rows already logged for it or later
    steps are dropped (None: keep everything)."""
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    if self.enabled:
      os.makedirs(workdir, exist_ok=True)
      if first_step is not None:
        _drop_rows_from(self.path, first_step)
      try:
        from tensorboardX import SummaryWriter
        self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"), purge_step=first_step)
      except ImportError:  # TensorBoard is optional; metrics.jsonl is the record
        self._tb = None

  def write(self, step: int, metrics: dict[str, Any]) -> None:
    if not self.enabled:
      return
    row = {"step": int(step)}
    row.update({k: _scalar(v) for k, v in metrics.items()})
    with open(self.path, "a") as f:
      f.write(json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                          for k, v in row.items()}) + "\n")
    if self._tb is not None:
      for k, v in row.items():
        if k != "step":
          self._tb.add_scalar(k, v, step)
      self._tb.flush()

  def write_texts(self, step: int, name: str, texts: list[str]) -> None:
    if self.enabled and self._tb is not None:
      body = "\n\n---\n\n".join(f"```\n{t}\n```" for t in texts)
      self._tb.add_text(name, body, step)
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def _drop_rows_from(path: str, step: int) -> None:
  """Rewrites `path` without the rows of `step` and later (atomically: a crash here
  leaves either the old file or the new one). A torn last line is dropped too."""
  if not os.path.exists(path):
    return
  kept = []
  with open(path) as f:
    for line in f:
      try:
        if json.loads(line)["step"] < step:
          kept.append(line if line.endswith("\n") else line + "\n")
      except (ValueError, KeyError, TypeError):
        continue  # the half-written line of a killed run
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.writelines(kept)
  os.replace(tmp, path)


def read_metrics(workdir: str) -> list[dict[str, Any]]:
  """The rows of `<workdir>/metrics.jsonl`, in order."""
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]
