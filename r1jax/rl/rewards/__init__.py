"""Rule-based rewards (R1 §2.2.2), selected by name and combined by weight.

Every reward is `fn(prompts, completions, **refs) -> list[float]`, one float per completion,
where `refs` are per-completion dataset fields (`answer=[...]`, `numbers=[...]`,
`target=[...]`); each reward takes the fields it needs and ignores the rest.

    total, parts = score({"accuracy": 1.0, "format": 1.0}, prompts, completions, answer=golds)
    parts["accuracy"]         # unweighted per-completion values, logged as reward/accuracy
    parts["errors/accuracy"]  # how many completions the reward failed on

A reward that raises, or returns NaN/inf or a non-number, for some completion does not stop
training: the failure is logged as a warning and counted, and that completion gets
FAILED_REWARD for that reward (0.0, the lowest value of these rule rewards).
"""

from __future__ import annotations

import difflib
import functools
import inspect
import logging
from collections.abc import Callable, Mapping
from math import isfinite  # not `import math`: the submodule .math would shadow it

from r1jax.rl.rewards.code import code_reward
from r1jax.rl.rewards.countdown import arithmetic_reward, countdown_reward
from r1jax.rl.rewards.format import format_reward, tag_count_reward
from r1jax.rl.rewards.language import language_consistency_reward
from r1jax.rl.rewards.math import accuracy_reward, extract_answer, math_equal

RewardFn = Callable[..., list[float]]

REWARDS: dict[str, RewardFn] = {
    "accuracy": accuracy_reward,
    "format": format_reward,
    "tag_count": tag_count_reward,
    "countdown": countdown_reward,
    "arithmetic": arithmetic_reward,
    "language": language_consistency_reward,
    "code": code_reward,
}

FAILED_REWARD = 0.0

log = logging.getLogger(__name__)


def get_reward(name: str) -> RewardFn:
  """The reward function registered as `name`."""
  if name in REWARDS:
    return REWARDS[name]
  close = difflib.get_close_matches(str(name), REWARDS, n=1)
  hint = f"did you mean {close[0]!r}? " if close else ""
  raise ValueError(f"unknown reward {name!r}: {hint}known rewards are {sorted(REWARDS)} "
                   "(set config.rl.rewards to a dict of these names and weights)")


@functools.cache
def _required_refs(fn: RewardFn) -> tuple[str, ...]:
  return tuple(p.name for p in inspect.signature(fn).parameters.values()
               if p.kind is p.KEYWORD_ONLY and p.default is p.empty)


def _check_specs(specs: Mapping[str, float]) -> dict[str, float]:
  if not specs:
    raise ValueError("no rewards given: pass name -> weight, e.g. {'accuracy': 1.0, "
                     "'format': 1.0}")
  out = {}
  for name, weight in specs.items():
    get_reward(name)
    number = isinstance(weight, (int, float)) and not isinstance(weight, bool)
    if not number or not isfinite(weight):
      raise ValueError(f"reward {name!r} has weight {weight!r}; use a finite number")
    out[name] = float(weight)
  return out


def _call(fn: RewardFn, prompts, completions, refs) -> list[float]:
  """fn's values as floats; raises if there are not one finite number per completion."""
  values = [float(v) for v in fn(prompts, completions, **refs)]
  if len(values) != len(completions):
    raise ValueError(f"returned {len(values)} values for {len(completions)} completions")
  bad = [v for v in values if not isfinite(v)]
  if bad:
    raise ValueError(f"returned {bad[0]}")
  return values


def _safe_values(name: str, prompts, completions, refs) -> tuple[list[float], int]:
  """One reward's values and its failure count; a failing batch is retried item by item."""
  fn = REWARDS[name]
  try:
    return _call(fn, prompts, completions, refs), 0
  except Exception:  # noqa: BLE001 - find the completions it fails on, below
    pass
  values, errors, first = [], 0, None
  for i in range(len(completions)):
    item_refs = {k: v[i:i + 1] if isinstance(v, (list, tuple)) else v for k, v in refs.items()}
    try:
      values += _call(fn, prompts[i:i + 1], completions[i:i + 1], item_refs)
    except Exception as e:  # noqa: BLE001 - counted, logged, scored FAILED_REWARD
      values.append(FAILED_REWARD)
      errors += 1
      first = first or e
  if errors:
    log.warning("reward %r failed on %d of %d completions (scored %s); first error: %r",
                    name, errors, len(completions), FAILED_REWARD, first)
  return values, errors


def score(specs: Mapping[str, float], prompts: list[str], completions: list[str],
          **refs) -> tuple[list[float], dict[str, list[float] | float]]:
  """Weighted sum of the named rewards, and the parts.

  Returns (total, parts): total[i] = Σ_name weight · value_name[i]; parts[name] holds the
  unweighted values (list, one per completion; rewards with weight 0 are computed and
  logged too) and parts["errors/" + name] the number of completions it failed on (float).
  Raises ValueError for unknown names, bad weights, mismatched lengths or a dataset field
  a reward needs but `refs` lacks.
  """
  specs = _check_specs(specs)
  n = len(completions)
  if len(prompts) != n:
    raise ValueError(f"{len(prompts)} prompts for {n} completions; pass one prompt per "
                     "completion (repeat each prompt G times)")
  for k, v in refs.items():
    if isinstance(v, (list, tuple)) and len(v) != n:
      raise ValueError(f"refs[{k!r}] has {len(v)} entries for {n} completions")
  total = [0.0] * n
  parts: dict[str, list[float] | float] = {}
  for name, weight in specs.items():
    missing = [k for k in _required_refs(REWARDS[name]) if k not in refs]
    if missing:
      raise ValueError(f"reward {name!r} needs the dataset field(s) {missing}, but the "
                       f"records only have {sorted(refs)}; drop {name!r} from "
                       "config.rl.rewards or use a dataset with those fields")
    values, errors = _safe_values(name, list(prompts), list(completions), refs)
    total = [t + weight * v for t, v in zip(total, values)]
    parts[name] = values
    parts[f"errors/{name}"] = float(errors)
  return total, parts


def combine(specs: Mapping[str, float]) -> RewardFn:
  """A reward function computing score(specs, ...)'s total; `.components` keeps the parts
  of its latest call (for logging). Names and weights are checked now."""
  specs = _check_specs(specs)

  def combined(prompts: list[str], completions: list[str], **refs) -> list[float]:
    total, combined.components = score(specs, prompts, completions, **refs)
    return total

  combined.components = {}
  return combined


__all__ = ["FAILED_REWARD", "REWARDS", "accuracy_reward", "arithmetic_reward", "code_reward",
           "combine", "countdown_reward", "extract_answer", "format_reward", "get_reward",
           "language_consistency_reward", "math_equal", "score", "tag_count_reward"]
