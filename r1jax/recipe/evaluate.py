"""Evaluates a model as R1 does: `python -m r1jax.evaluate --config=configs/eval_math.py`.

R1 §3.1 (evaluation setup): sample n completions per problem at temperature 0.6 and
top-p 0.95 and report pass@1 = 1/n Σ_i p_i, the mean correctness of the n samples; for
AIME also cons@64, the accuracy of the majority answer. Per dataset of
`config.data.datasets` this reports

    pass@1      mean correctness over problems and samples
    cons@n      majority vote over the n normalised final answers (`majority_vote`)
    pass@k      the unbiased estimator of Chen et al. 2021 for k in config.metrics.pass_at_k
    best_of_n   correctness of the sample a scorer ranks first, when one is given: a callable
                `select_fn(prompts, completions) -> scores` (e.g. a reward model)
    format      R1-Zero's <think>/<answer> format reward (0 for completions in other formats)
    answered, mean_length (tokens), finish/stop, finish/length, time_s, tokens_per_s

and writes `<workdir>/eval.json` (config, metrics, timing), `<workdir>/eval.md` (a table,
also printed) and, with config.write_samples, every completion to `samples.jsonl`.

Answers are checked by the rule reward the records call for (config.data.checker,
default "auto"): `arithmetic` (the exact integer) for the synthetic arithmetic task,
`countdown` for records holding "numbers" and "target", otherwise `accuracy` (math-verify
equivalence of the final answer to "answer"), in config.data.answer_mode (default
"standard": the answer in <answer>/\\boxed{}, else the final answer math-verify's own
extraction finds, as a model is judged on its answers; "strict": only <answer>/\\boxed{},
GRPO's reward; see r1jax.rewards.math). Each sample row of samples.jsonl records the mode
("answer_mode") and how its answer was found ("found_by": "answer_tag", "boxed",
"latex_final", "expr_final", "whole" or None).
"""

from __future__ import annotations

import collections
import dataclasses
import fractions
import importlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from tqdm import tqdm

from r1jax import rewards as rewards_lib
from r1jax import train
from r1jax.data.datasets import load_prompts
from r1jax.data.templates import PromptFormat, prompt_format
from r1jax.data.tokenizers import load_tokenizer, tokenizer_spec
from r1jax.models import ModelConfig
from r1jax.models.loading import init_weights, model_config
from r1jax.rewards.countdown import parse_integer
from r1jax.rewards.math import ANSWER_MODES, find_answer
from r1jax.runtime import sharding
from r1jax.sampling import SamplingParams, generate

SelectFn = Callable[[list[str], list[str]], Sequence[float]]

# ----------------------------------------------------------------- metrics (pure)


def pass_at_k(n: int, c: int, k: int) -> float:
  """Unbiased pass@k (Chen et al. 2021, eq. 1) from n samples of which c are correct.

  1 - C(n-c, k) / C(n, k), computed as 1 - Π_{i=n-c+1..n} (1 - k/i): no huge binomials.
  """
  for name, v in (("n", n), ("c", c), ("k", k)):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
      raise TypeError(f"pass_at_k: {name} must be an int, got {v!r}")
  if n < 1 or not 0 <= c <= n:
    raise ValueError(f"pass_at_k: need n >= 1 samples and 0 <= c <= n correct, got n={n}, c={c}")
  if not 1 <= k <= n:
    raise ValueError(f"pass@{k} needs 1 <= k <= n, the samples per problem (n={n}); lower k "
                     "in config.metrics.pass_at_k or raise config.sampling.num_samples")
  if n - c < k:
    return 1.0
  return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def majority_vote(answers: Sequence[str | None]) -> str | None:
  """The most frequent answer (None: no answer, never voted for); ties go to the answer
  that appears first. None if no sample has an answer."""
  counts = collections.Counter(a for a in answers if a is not None)
  if not counts:
    return None
  top = max(counts.values())
  return next(a for a in answers if a is not None and counts[a] == top)


def cons_at_k(answers: Sequence[str | None], correct: Sequence[bool]) -> float:
  """1.0 if the majority answer of one problem's samples is correct, else 0.0.

  answers: the n normalised answers (None where none was extracted); correct: whether
  each sample is right. The vote's correctness is that of its first sample.
  """
  answers = list(answers)
  if len(answers) != len(correct):
    raise ValueError(f"cons_at_k: {len(answers)} answers but {len(correct)} correctness values")
  voted = majority_vote(answers)
  return 0.0 if voted is None else float(bool(correct[answers.index(voted)]))


def best_of_n(scores: Sequence[float], correct: Sequence[bool]) -> float:
  """Correctness of the best-scored sample of one problem (ties: the first)."""
  if len(scores) != len(correct) or not len(scores):
    raise ValueError(f"best_of_n: {len(scores)} scores for {len(correct)} samples")
  return float(bool(correct[int(np.argmax(scores))]))


# ----------------------------------------------------------------- answers for voting

_LATEX_NOISE = re.compile(r"\\left|\\right|\\displaystyle|\\[!,;: ]|\$|\s+")
_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")
_DEGREES = re.compile(r"\^\{?\\circ\}?")
_FRACTIONS = (re.compile(r"(-?)\\frac\{(\d+)\}\{(\d+)\}"), re.compile(r"(-?)(\d+)/(\d+)"))
_NUMBER = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?")


def normalize_answer(answer: str | None) -> str | None:
  """A canonical spelling of a math answer, for voting (checking is math_equal's job).

  Spacing, \\left/\\right, $, \\text{} and degree marks go; \\dfrac/\\tfrac become \\frac;
  "x = 5" becomes "5"; plain numbers and integer fractions become exact ones, so "0.5",
  "\\frac{1}{2}" and "1/2" all read "1/2", and "1,000" reads "1000". None stays None,
  and so does an answer left empty.
  """
  if answer is None:
    return None
  s = _TEXT.sub(r"\1", _LATEX_NOISE.sub("", answer))
  s = _DEGREES.sub("", s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac"))
  s = re.sub(r"^[A-Za-z]=", "", s).rstrip(".")
  if any(ch.isdigit() for ch in s) and _NUMBER.fullmatch(s):
    return str(fractions.Fraction(s.replace(",", "")))  # "3" or "1/2"
  for pattern in _FRACTIONS:
    m = pattern.fullmatch(s)
    if m and int(m.group(3)):
      return str(fractions.Fraction(int(m.group(1) + m.group(2)), int(m.group(3))))
  return s or None


def _normalize_integer(answer: str | None) -> str | None:
  value = parse_integer(answer)
  return None if value is None else str(value)


def _normalize_expression(answer: str | None) -> str | None:
  if answer is None:
    return None
  return re.sub(r"\s+", "", answer) or None


# checker (a reward of r1jax.rewards) -> how its answers are normalised for voting
CHECKERS: dict[str, Callable[[str | None], str | None]] = {
    "accuracy": normalize_answer,
    "arithmetic": _normalize_integer,
    "countdown": _normalize_expression,
}


def answer_mode(config: ml_collections.ConfigDict, checker: str = "accuracy") -> str:
  """How `checker` finds answers: config.data.answer_mode for the math checker `accuracy`;
  "strict" (<answer>/\\boxed{} only) for the others, which read nothing else."""
  mode = config.data.get("answer_mode", "standard")
  if mode not in ANSWER_MODES:
    raise ValueError(f"config.data.answer_mode={mode!r}; use 'standard' (also the final answer "
                     "math-verify finds without <answer>/\\boxed{}) or 'strict' (only those)")
  return mode if checker == "accuracy" else "strict"


def checker_reward(checker: str, mode: str) -> str:
  """The reward of r1jax.rewards that checks `checker`'s answers in `mode`."""
  return "accuracy_standard" if checker == "accuracy" and mode == "standard" else checker


def choose_checker(spec: str, records: list[dict], checker: str = "auto") -> str:
  """The reward that checks `spec`'s answers: `checker`, or by "auto" from the records."""
  if checker != "auto":
    if checker not in CHECKERS:
      raise ValueError(f"config.data.checker={checker!r}; use 'auto' or one of {sorted(CHECKERS)}")
    return checker
  if spec.partition(":")[0] == "arithmetic":
    return "arithmetic"
  if all("numbers" in r and "target" in r for r in records):
    return "countdown"
  return "accuracy"


# ----------------------------------------------------------------- setting up


def parse_dataset(spec: str, default_limit: int = 0) -> tuple[str, int | None]:
  """"gsm8k:test@200" -> ("gsm8k:test", 200); without "@<n>" the limit is default_limit,
  where 0 (-> None) means the whole dataset."""
  name, at, tail = spec.rpartition("@")
  if at and tail.isdigit():
    limit = int(tail)
  else:
    name, limit = spec, default_limit or None
  if not name or limit is not None and limit < 1:
    raise ValueError(f"config.data.datasets entry {spec!r}: write '<dataset>' or "
                     "'<dataset>@<limit>' with limit >= 1, e.g. 'gsm8k:test@200'")
  return name, limit


def load_datasets(config: ml_collections.ConfigDict) -> list[tuple[str, list[dict], str]]:
  """(spec, records, checker) for every entry of config.data.datasets; raises before any
  model is loaded for unknown, missing or empty datasets."""
  d = config.data
  specs = (d.datasets,) if isinstance(d.datasets, str) else tuple(d.datasets)
  if not specs:
    raise ValueError("config.data.datasets is empty; name at least one, e.g. 'arithmetic:test@64'")
  if len(set(specs)) != len(specs):
    raise ValueError(f"config.data.datasets lists a dataset twice: {specs}")
  answer_mode(config)  # a bad mode fails before any model is loaded
  out = []
  for spec in specs:
    name, limit = parse_dataset(spec, d.get("limit", 0))
    try:
      records = load_prompts(name, limit=limit, seed=config.seed)
    except (ValueError, FileNotFoundError) as e:
      raise type(e)(f"config.data.datasets entry {spec!r}: {e}") from None
    if not records:
      raise ValueError(f"config.data.datasets entry {spec!r} has no records; check the file "
                       "or drop it from the list")
    out.append((spec, records, choose_checker(name, records, d.get("checker", "auto"))))
  return out


def pass_ks(ks: Sequence[int], n: int) -> list[int]:
  """The k of pass@k: `ks` (each 1 <= k <= n), or by default 1, 2, 4, ... and n."""
  if not ks:
    return sorted({2**i for i in range(n.bit_length()) if 2**i <= n} | {n})
  bad = [k for k in ks if not isinstance(k, int) or not 1 <= k <= n]
  if bad:
    raise ValueError(f"config.metrics.pass_at_k has k={bad}, but there are only n={n} samples "
                     "per problem (config.sampling.num_samples); use 1 <= k <= n")
  return sorted(set(ks))


def sampling_params(config: ml_collections.ConfigDict, tokenizer) -> SamplingParams:
  s = config.sampling
  if not isinstance(s.num_samples, int) or s.num_samples < 1:
    raise ValueError(f"config.sampling.num_samples={s.num_samples!r}: need k >= 1 samples "
                     "per problem")
  if not isinstance(s.prompts_per_batch, int) or s.prompts_per_batch < 1:
    raise ValueError(f"config.sampling.prompts_per_batch={s.prompts_per_batch!r}: need >= 1")
  return SamplingParams(
      max_new_tokens=s.max_new_tokens, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k,
      n=s.num_samples, vocab_limit=tokenizer.vocab_size,
      stop_token_ids=prompt_format(config.data.template, tokenizer).stop_ids(tokenizer),
      stop_sequences=tuple(tokenizer.encode(t) for t in s.stop_strings))


def load_model(config: ml_collections.ConfigDict, mesh) -> tuple[ModelConfig, dict]:
  """(model config, {"params", "buffers"}) from config.init_from: a Hugging Face
  checkpoint directory or an r1jax workdir (checkpoint config.step, default the latest).
  With config.model "from_checkpoint" the model is the one the checkpoint was made with."""
  src = config.init_from
  if not src or not os.path.isdir(src):
    raise FileNotFoundError(f"config.init_from={src!r} is not a directory; evaluation needs "
                            "trained weights: an r1jax workdir or a Hugging Face checkpoint")
  cfg = model_config(config)
  step = config.get("step") or None
  return cfg, init_weights(config, cfg, jax.random.key(config.seed), mesh, step=step)


def make_mesh(axes: dict[str, int]):
  """sharding.make_mesh, where sizes without a -1 take the first that many devices (so
  the default, all 1, evaluates a small model on one device)."""
  sizes = [int(v) for v in axes.values()]
  devices = jax.devices() if -1 in sizes else jax.devices()[:math.prod(sizes)]
  return sharding.make_mesh(axes, devices)


def _import_select_fn(path: str) -> SelectFn | None:
  """"package.module:function" -> that callable; "" -> None."""
  if not path:
    return None
  module, _, attr = path.partition(":")
  try:
    return getattr(importlib.import_module(module), attr)
  except (ImportError, AttributeError, ValueError) as e:
    raise ValueError(f"config.select_fn={path!r}: cannot import it ({e}); write "
                     "'package.module:function'") from None


# ----------------------------------------------------------------- one dataset


def _sample(cfg, params, tokenizer, fmt: PromptFormat, prompts: list[str], sp: SamplingParams,
            *, seed: int) -> tuple[list[str], list[int], list[str]]:
  """sp.n completions per prompt (rows prompt·n + j): texts without the eos (or
  end-of-turn token) that ended them, lengths in tokens (with it) and finish reasons."""
  ids = [fmt.encode(tokenizer, p) for p in prompts]
  res = generate(cfg, params, ids, dataclasses.replace(sp, seed=seed), pad_id=tokenizer.pad_id)
  tokens, mask = np.asarray(res.tokens), np.asarray(res.mask).astype(bool)
  texts = []
  for row, reason in enumerate(res.finish_reason):
    kept = tokens[row][mask[row]].tolist()
    if reason == "stop" and kept and kept[-1] in sp.stop_token_ids:
      kept = kept[:-1]
    texts.append(tokenizer.decode(kept, skip_special=False))
  return texts, np.asarray(res.lengths).tolist(), list(res.finish_reason)


def _scores(select_fn: SelectFn, prompts: list[str], completions: list[str]) -> list[float]:
  scores = [float(s) for s in select_fn(prompts, completions)]
  if len(scores) != len(completions) or not all(math.isfinite(s) for s in scores):
    raise ValueError(f"select_fn returned {len(scores)} scores for {len(completions)} "
                     "completions; it must return one finite number per completion")
  return scores


def evaluate_dataset(config, cfg, params, tokenizer, spec: str, records: list[dict],
                     checker: str, sp: SamplingParams, ks: list[int], *, index: int = 0,
                     select_fn: SelectFn | None = None) -> tuple[dict[str, Any], list[dict]]:
  """Metrics of one dataset and its samples (one dict per completion). `index` (the
  dataset's place in the list) and config.seed seed the sampling."""
  d, n = config.data, sp.n
  mode = answer_mode(config, checker)
  reward = checker_reward(checker, mode)
  fmt = prompt_format(d.template, tokenizer)
  batch = min(config.sampling.prompts_per_batch, len(records))
  rows: list[dict] = []
  t0, t_gen, checker_errors = time.perf_counter(), 0.0, 0
  bar = tqdm(range(0, len(records), batch), desc=spec, unit="batch", dynamic_ncols=True,
             disable=jax.process_index() != 0)
  for b, start in enumerate(bar):
    chunk = records[start:start + batch]
    prompts = [fmt.question(r["question"], d.get("instruction", "")) for r in chunk]
    padded = prompts + [prompts[-1]] * (batch - len(prompts))  # one shape: one compile
    batch_seed = np.random.SeedSequence([config.seed, index, b]).generate_state(1, np.uint64)
    t1 = time.perf_counter()
    texts, lengths, finish = _sample(cfg, params, tokenizer, fmt, padded, sp,
                                     seed=int(batch_seed[0]))
    t_gen += time.perf_counter() - t1
    R = len(chunk) * n
    flat_prompts = [p for p in prompts for _ in range(n)]
    refs = {k: [r.get(k) for r in chunk for _ in range(n)] for k in chunk[0] if k != "question"}
    _, parts = rewards_lib.score({reward: 1.0, "format": 1.0}, flat_prompts, texts[:R], **refs)
    scores = _scores(select_fn, flat_prompts, texts[:R]) if select_fn else None
    for i in range(R):
      r = chunk[i // n]
      answer, found_by = find_answer(texts[i], mode)
      rows.append({"dataset": spec, "problem": start + i // n, "sample": i % n,
                   "question": r["question"], "gold": r.get("answer"), "completion": texts[i],
                   "answer": answer, "answer_mode": mode, "found_by": found_by,
                   "vote": CHECKERS[checker](answer),
                   "correct": bool(parts[reward][i] > 0.5), "format": parts["format"][i],
                   "length": int(lengths[i]), "finish_reason": finish[i],
                   **({"score": scores[i]} if scores else {})})
    checker_errors += int(parts[f"errors/{reward}"])
    bar.set_postfix({"pass@1": f"{np.mean([r['correct'] for r in rows]):.3f}"})
  bar.close()
  metrics = summarize(rows, n, ks)
  metrics.update(checker=checker, answer_mode=mode, checker_errors=checker_errors,
                 time_s=time.perf_counter() - t0,
                 tokens_per_s=sum(r["length"] for r in rows) / max(t_gen, 1e-9))
  return metrics, rows


def summarize(rows: list[dict], n: int, ks: list[int]) -> dict[str, Any]:
  """Per-dataset metrics from its samples (rows grouped by "problem", n per problem)."""
  groups = collections.defaultdict(list)
  for r in rows:
    groups[r["problem"]].append(r)

  def field(group: list[dict], key: str) -> list:
    return [r[key] for r in group]

  c = [sum(field(g, "correct")) for g in groups.values()]
  m: dict[str, Any] = {"problems": len(groups), "samples": n,
                       "pass@1": float(np.mean(c) / n)}
  m[f"cons@{n}"] = float(np.mean([cons_at_k(field(g, "vote"), field(g, "correct"))
                                  for g in groups.values()]))
  for k in ks:
    m[f"pass@{k}"] = float(np.mean([pass_at_k(n, ci, k) for ci in c]))
  if rows and "score" in rows[0]:
    m[f"best_of_{n}"] = float(np.mean([best_of_n(field(g, "score"), field(g, "correct"))
                                       for g in groups.values()]))
  m["format"] = float(np.mean(field(rows, "format")))
  m["answered"] = float(np.mean([a is not None for a in field(rows, "answer")]))
  m["mean_length"] = float(np.mean(field(rows, "length")))
  for reason in ("stop", "length"):
    m[f"finish/{reason}"] = float(np.mean([r["finish_reason"] == reason for r in rows]))
  return m


# ----------------------------------------------------------------- the run


def markdown_table(results: dict[str, dict[str, Any]]) -> str:
  """dataset | problems | pass@1 | cons@n | pass@k ... | format | length | truncated,
  rates in %, length in tokens."""
  first = next(iter(results.values()))
  keys = ["pass@1", *[k for k in first if k.startswith(("cons@", "pass@", "best_of_"))
                      and k != "pass@1"], "format"]
  lines = ["| dataset | problems | " + " | ".join(keys) + " | length | truncated |",
           "|---" * (len(keys) + 4) + "|"]
  for name, m in results.items():
    cells = [f"{100 * m.get(k, float('nan')):.1f}" for k in keys]
    lines.append(f"| {name} | {m['problems']} | " + " | ".join(cells) +
                 f" | {m['mean_length']:.1f} | {100 * m['finish/length']:.1f} |")
  return "\n".join(lines) + "\n"


def evaluate(config: ml_collections.ConfigDict, workdir: str, *,
             select_fn: SelectFn | None = None) -> dict[str, Any]:
  """Evaluates config.init_from on config.data.datasets; writes eval.json, eval.md (and
  samples.jsonl) in `workdir` and returns what eval.json holds. `select_fn` (default: the
  callable named by config.select_fn) scores completions for best-of-n."""
  t0 = time.perf_counter()
  select_fn = select_fn or _import_select_fn(config.get("select_fn", ""))
  tokenizer = load_tokenizer(tokenizer_spec(config))
  sp = sampling_params(config, tokenizer)
  ks = pass_ks(tuple(config.metrics.pass_at_k), sp.n)
  datasets = load_datasets(config)
  mesh = make_mesh(dict(config.mesh))
  cfg, params = load_model(config, mesh)
  if tokenizer.vocab_size > cfg.vocab_size:
    raise ValueError(f"tokenizer {config.tokenizer!r} has {tokenizer.vocab_size} ids but model "
                     f"{cfg.name!r} only {cfg.vocab_size}; pick a matching model or tokenizer")
  load_s = time.perf_counter() - t0
  os.makedirs(workdir, exist_ok=True)
  results, samples = {}, []
  for i, (spec, records, checker) in enumerate(datasets):
    results[spec], rows = evaluate_dataset(config, cfg, params, tokenizer, spec, records, checker,
                                           sp, ks, index=i, select_fn=select_fn)
    samples += rows
  table = markdown_table(results)
  out = {"init_from": config.init_from, "model": cfg.name, "datasets": results,
         "timing": {"load_s": load_s, "total_s": time.perf_counter() - t0},
         "config": json.loads(config.to_json_best_effort())}
  with open(os.path.join(workdir, "eval.json"), "w") as f:
    json.dump(out, f, indent=2)
  s = config.sampling
  with open(os.path.join(workdir, "eval.md"), "w") as f:
    f.write(f"# {cfg.name} from {config.init_from}\n\n{sp.n} samples per problem at T = "
            f"{s.temperature}, top-p {s.top_p}, up to {s.max_new_tokens} new tokens; template "
            f"{config.data.template!r}. Accuracies and format in %, length in tokens.\n\n{table}")
  if config.write_samples:
    with open(os.path.join(workdir, "samples.jsonl"), "w") as f:
      for r in samples:
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
  print(table)
  return out


def _main(config: ml_collections.ConfigDict, workdir: str) -> None:
  print(f"r1jax.evaluate: {config.init_from} -> {workdir}")
  evaluate(config, workdir)


def main() -> None:
  train.run_cli("r1jax.evaluate", _main, "evaluation")


if __name__ == "__main__":
  main()
