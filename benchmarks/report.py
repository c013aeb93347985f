"""The JSON object every benchmark prints and, with --out, writes (to benchmarks/results/)."""

from __future__ import annotations

import json
import platform
from typing import Any

import jax
import numpy as np


def emit(name: str, device: str, args, results: list[dict], **fields: Any) -> dict:
  """{"benchmark", "device", "jax", "host", **fields, "args", "results"}: printed as JSON,
  written to args.out when given, and returned."""
  report = {"benchmark": name, "device": device, "jax": jax.__version__,
            "host": platform.node(), **fields, "args": vars(args), "results": results}
  text = json.dumps(report, indent=2, default=lambda x: float(np.asarray(x)))
  print(text)
  if args.out:
    with open(args.out, "w") as f:
      f.write(text + "\n")
  return report
