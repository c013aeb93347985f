"""Rewards, selected by name and combined by weight: rule-based (R1 §2.2.2) and reward
models of preferences (R1 §2.3.4).

Every reward is `fn(prompts, completions, **refs) -> list[float]`, one float per completion,
where `refs` are per-completion dataset fields (`answer=[...]`, `numbers=[...]`,
`target=[...]`); each reward takes the fields it needs and ignores the rest.

    total, parts = score({"accuracy": 1.0, "format": 1.0}, prompts, completions, answer=golds)
    parts["accuracy"]         # unweighted per-completion values, logged as reward/accuracy
    parts["errors/accuracy"]  # how many completions the reward failed on

The rule rewards are registered in REWARDS. Trained reward models join them by name for
one run (`reward_fns=`), loaded from `config.rl.reward_models` by `load_reward_models`:

    fns = load_reward_models({"helpful": {"path": "workdirs/reward_model", "view": "summary"},
                              "harmless": {"path": "workdirs/reward_model", "view": "full"}})
    total, parts = score({"helpful": 1.0, "harmless": 1.0}, prompts, completions,
                         reward_fns=fns)

A reward that raises, or returns NaN/inf or a non-number, for some completion does not stop
training: the failure is logged as a warning and counted, and that completion gets
FAILED_REWARD for that reward (0.0, the lowest value of these rule rewards).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from math import isfinite, tanh  # not `import math`: the submodule .math would shadow it

from r1jax.rewards.code import code_reward
from r1jax.rewards.countdown import arithmetic_reward, countdown_reward
from r1jax.rewards.format import format_reward, tag_count_reward
from r1jax.rewards.language import language_consistency_reward
from r1jax.rewards.math import (ANSWER_MODES, accuracy_reward, accuracy_standard_reward,
                                extract_answer, find_answer, math_equal)

RewardFn = Callable[..., list[float]]

REWARDS: dict[str, RewardFn] = {
    "accuracy": accuracy_reward,  # strict: the answer in <answer>/\boxed{} (R1's format)
    "accuracy_standard": accuracy_standard_reward,  # else also math-verify's final answer
    "format": format_reward,
    "tag_count": tag_count_reward,
    "countdown": countdown_reward,
    "arithmetic": arithmetic_reward,
    "language": language_consistency_reward,
    "code": code_reward,
}

FAILED_REWARD = 0.0
# How a reward model reads a completion (R1 §2.3.4): "summary" only the text after its
# last </think> (helpfulness), "full" all of it, reasoning included (harmlessness).
VIEWS = ("summary", "full")

log = logging.getLogger(__name__)


def get_reward(name: str, reward_fns: Mapping[str, RewardFn] | None = None) -> RewardFn:
  """The reward function named `name`: one of `reward_fns`, else the rule reward REWARDS[name]."""
  known = {**REWARDS, **(reward_fns or {})}
  if name in known:
    return known[name]
  close = difflib.get_close_matches(str(name), known, n=1)
  hint = f"did you mean {close[0]!r}? " if close else ""
  raise ValueError(f"unknown reward {name!r}: {hint}known rewards are {sorted(known)} (rule "
                   "rewards, and the reward models of config.rl.reward_models)")


@functools.cache
def _required_refs(fn: RewardFn) -> tuple[str, ...]:
  return tuple(p.name for p in inspect.signature(fn).parameters.values()
               if p.kind is p.KEYWORD_ONLY and p.default is p.empty)


def check_specs(specs: Mapping[str, float], reward_fns: Mapping[str, RewardFn] | None = None,
                *, fields: Iterable[str] | None = None) -> dict[str, float]:
  """{name: float weight} of `specs`; ValueError for no rewards, an unknown name (see
  `get_reward`), a weight that is not a finite number, or (given the dataset `fields` the
  refs will hold) a reward needing a field that is not among them."""
  if not specs:
    raise ValueError("no rewards given: pass name -> weight, e.g. {'accuracy': 1.0, "
                     "'format': 1.0}")
  out = {}
  for name, weight in specs.items():
    fn = get_reward(name, reward_fns)
    number = isinstance(weight, (int, float)) and not isinstance(weight, bool)
    if not number or not isfinite(weight):
      raise ValueError(f"reward {name!r} has weight {weight!r}; use a finite number")
    if fields is not None:
      missing = [k for k in _required_refs(fn) if k not in fields]
      if missing:
        raise ValueError(f"reward {name!r} needs the dataset field(s) {missing}, but the "
                         f"records only have {sorted(fields)}; drop {name!r} from the "
                         "rewards or use a dataset with those fields")
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


def _safe_values(name: str, fn: RewardFn, prompts, completions,
                 refs) -> tuple[list[float], int]:
  """One reward's values and its failure count; a failing batch is retried item by item."""
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


def score(specs: Mapping[str, float], prompts: list[str], completions: list[str], *,
          reward_fns: Mapping[str, RewardFn] | None = None,
          **refs) -> tuple[list[float], dict[str, list[float] | float]]:
  """Weighted sum of the named rewards, and the parts.

  Names are looked up in `reward_fns` (e.g. `load_reward_models`'), then in REWARDS.
  Returns (total, parts): total[i] = Σ_name weight · value_name[i]; parts[name] holds the
  unweighted values (list, one per completion; rewards with weight 0 are computed and
  logged too) and parts["errors/" + name] the number of completions it failed on (float).
  Raises ValueError for unknown names, bad weights, mismatched lengths or a dataset field
  a reward needs but `refs` lacks.
  """
  specs = check_specs(specs, reward_fns, fields=refs)
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
    values, errors = _safe_values(name, get_reward(name, reward_fns), list(prompts),
                                  list(completions), refs)
    total = [t + weight * v for t, v in zip(total, values)]
    parts[name] = values
    parts[f"errors/{name}"] = float(errors)
  return total, parts


def combine(specs: Mapping[str, float]) -> RewardFn:
  """A reward function computing score(specs, ...)'s total; `.components` keeps the parts
  of its latest call (for logging). Names and weights are checked now."""
  specs = check_specs(specs)

  def combined(prompts: list[str], completions: list[str], **refs) -> list[float]:
    total, combined.components = score(specs, prompts, completions, **refs)
    return total

  combined.components = {}
  return combined


def _as_reward(reward_model: RewardFn) -> RewardFn:
  """σ(reward_model(...))."""
  def reward(prompts: list[str], completions: list[str], **refs) -> list[float]:
    logits = reward_model(prompts, completions, **refs)
    return [0.5 + 0.5 * tanh(0.5 * r) for r in logits]  # σ(r), without overflow
  return reward


def load_reward_models(specs: Mapping[str, Mapping[str, str]]) -> dict[str, RewardFn]:
  """Reward functions of trained reward models (`r1jax.rewards.reward_model`), by name.

  specs: config.rl.reward_models, {name: {"path": <a reward_model run's workdir>, "view":
  "summary" | "full"}}: "summary" scores only the completion's text after its last
  "</think>" (R1 §2.3.4's helpfulness reward), "full" the whole response, reasoning
  included (its harmlessness reward). One run may serve several names, e.g. both views.

  A reward model's score r is an unbounded Bradley-Terry logit, with an arbitrary offset
  (its head's bias gets no gradient and stays 0). The reward is σ(r) ∈ (0, 1), the
  preference probability over a response scored 0: on the scale of the 0/1 rule rewards,
  so reward weights mean the same for both kinds, and bounded, so a policy cannot earn
  arbitrarily much by pushing one reward model to an extreme logit. Advantages are
  normalised per group anyway; the squashing matters where rewards are summed.
  """
  from r1jax.rewards.reward_model import load_reward_model  # the model code: only when asked for

  fns, loaded = {}, {}  # loaded: path -> its RewardModelFn, so two views share the weights
  for name, spec in specs.items():
    key = f"config.rl.reward_models.{name}"
    if name in REWARDS:
      raise ValueError(f"{key}: {name!r} is the name of a rule reward; name the reward "
                       "model otherwise")
    spec = dict(spec)
    if set(spec) != {"path", "view"}:
      raise ValueError(f"{key} is {spec}; give {{'path': <reward_model workdir>, 'view': "
                       f"one of {VIEWS}}}")
    path, view = spec["path"], spec["view"]
    if view not in VIEWS:
      raise ValueError(f"{key}.view={view!r}; use 'summary' (the text after </think>: "
                       "helpfulness) or 'full' (the whole response: harmlessness)")
    make = (f"train one with `python -m r1jax.train --config=configs/reward_model.py "
            f"--workdir={path}`")
    if not os.path.isdir(str(path)):
      raise FileNotFoundError(f"{key}.path={path!r} does not exist; {make}")
    real = os.path.realpath(str(path))
    if real not in loaded:
      try:
        loaded[real] = load_reward_model(str(path))
      except FileNotFoundError as e:
        raise FileNotFoundError(f"{key}.path={path!r}: {e}; or {make}") from None
      except ValueError as e:
        raise ValueError(f"{key}.path={path!r}: {e}") from None
    fns[name] = _as_reward(dataclasses.replace(loaded[real],
                                               score_only_summary=view == "summary"))
  return fns


__all__ = ["ANSWER_MODES", "FAILED_REWARD", "REWARDS", "VIEWS", "accuracy_reward",
           "accuracy_standard_reward", "arithmetic_reward", "check_specs", "code_reward",
           "combine", "countdown_reward", "extract_answer", "find_answer", "format_reward",
           "get_reward", "language_consistency_reward", "load_reward_models", "math_equal",
           "score", "tag_count_reward"]
