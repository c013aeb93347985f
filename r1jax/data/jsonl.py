"""JSON Lines files: the one reader every dataset of r1jax goes through."""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Callable


def read_jsonl(path: str, required: tuple[str, ...], *, on_error: str = "raise",
               parse: Callable[[dict], Any] | None = None, what: str = "malformed line") -> list:
  """Rows of a JSONL file; malformed lines, lines missing a `required` field or rows that
  `parse` (applied to each row; its result is kept) rejects with a ValueError raise a
  ValueError naming the file and line number, or are skipped with a warning (counted, the
  items called `what`s) when on_error="skip".

  Lines end at "\\n" only and are decoded one by one, so that a line of invalid UTF-8,
  binary garbage or JSON nested too deeply to parse is one malformed line, not the end of
  the read. A UTF-8 byte-order mark at the start of a line (an editor's, or files joined
  with `cat`) is dropped.
  """
  if on_error not in ("raise", "skip"):
    raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
  if not os.path.exists(path):
    raise FileNotFoundError(f"dataset file not found: {path}")
  rows, skipped = [], 0
  with open(path, "rb") as f:
    for lineno, raw in enumerate(f, 1):
      try:
        line = raw.decode("utf-8").removeprefix("\ufeff")
        if not line.strip():
          continue
        row = json.loads(line)
        if not isinstance(row, dict):
          raise ValueError("not a JSON object")
        missing = [k for k in required if k not in row]
        if missing:
          raise ValueError(f"missing field(s) {missing}")
        if parse is not None:
          row = parse(row)
      except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        if on_error == "raise":
          raise ValueError(f"{path}:{lineno}: {e}; fix the line or set "
                           "config.data.on_error='skip'") from None
        skipped += 1
        continue
      rows.append(row)
  if skipped:
    logging.warning("%s: skipped %d %s(s) of %d", path, skipped, what,
                    skipped + len(rows))
  return rows
