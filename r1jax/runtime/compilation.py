"""Compilation: JAX's persistent cache on by default, and a count of what a run compiles.

A jitted program compiles once per distinct input shape; a program that compiles again
at every step (a prompt length that changes each batch) is a performance bug. `CompileLog`
listens to JAX's monitoring events while a run lasts and counts, per program, how often
it was lowered (a jit cache miss: traced and compiled, or loaded from the persistent
cache), and the seconds spent tracing, lowering and compiling. The train loop logs the
per-step deltas as compile/count and time/compile_s; tests assert bounds on the counts.

The persistent cache (`use_persistent_cache`) keeps compiled programs on disk, so a
resumed or repeated run skips compiles: by default under $XDG_CACHE_HOME/r1jax/jax
(~/.cache/r1jax/jax), `config.compilation_cache` names another directory, "" turns it
off, and a cache directory set through JAX itself (JAX_COMPILATION_CACHE_DIR) wins.
"""

from __future__ import annotations

import collections
import os
import threading

import jax
from jax import monitoring

# jax._src.dispatch's event names: one trace and one lowering per jit cache miss, one
# backend compile per miss of the persistent cache.
TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"
LOWER_EVENT = "/jax/core/compile/jaxpr_to_mlir_module_duration"
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def default_cache_dir() -> str:
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "r1jax", "jax")


def use_persistent_cache(config) -> str:
  """Points JAX's persistent compilation cache at config.compilation_cache (default
  `default_cache_dir()`; "" leaves it off) unless JAX already has a cache directory.
  Returns the directory in use ("" for none)."""
  current = jax.config.jax_compilation_cache_dir
  if current:
    return current
  path = config.get("compilation_cache", default_cache_dir())
  if path:
    path = os.path.expanduser(path)
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
  return path or ""


class CompileLog:
  """Counts lowerings per program and compile seconds while the context is open.

      with CompileLog() as log:
        ...
      log.counts        # {"jit_step": 1, "jit__decode": 2, ...}
      log.seconds       # trace + lower + backend compile time, in seconds
      log.compiled      # how many programs the backend compiled (persistent-cache misses)
  """

  def __init__(self):
    self.counts: collections.Counter[str] = collections.Counter()
    self.seconds = 0.0
    self.compiled = 0
    self._lock = threading.Lock()

  def _listen(self, event: str, duration: float, **kwargs) -> None:
    if event not in (TRACE_EVENT, LOWER_EVENT, COMPILE_EVENT):
      return
    with self._lock:
      self.seconds += duration
      if event == LOWER_EVENT:
        self.counts[str(kwargs.get("fun_name", "?"))] += 1
      elif event == COMPILE_EVENT:
        self.compiled += 1

  @property
  def total(self) -> int:
    return sum(self.counts.values())

  def __enter__(self) -> "CompileLog":
    monitoring.register_event_duration_secs_listener(self._listen)
    return self

  def __exit__(self, *exc) -> None:
    monitoring.unregister_event_duration_listener(self._listen)
