"""Run logging: `<workdir>/metrics.jsonl`, TensorBoard scalars and text samples.

Only process 0 writes; other processes get a writer that does nothing, so the train
loop never branches on the process index.
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

  def __init__(self, workdir: str, *, enabled: bool | None = None):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    if self.enabled:
      os.makedirs(workdir, exist_ok=True)
      try:
        from tensorboardX import SummaryWriter
        self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
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


def read_metrics(workdir: str) -> list[dict[str, Any]]:
  """The rows of `<workdir>/metrics.jsonl`, in order."""
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]
