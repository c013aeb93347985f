"""Rejection sampling for R1's stage-2 SFT data (R1 §2.3.3):
`python -m r1jax.rejection_sample --config=configs/rejection_sample.py --workdir=...`.

"We curate reasoning prompts and generate reasoning trajectories by performing rejection
sampling from the checkpoint from the above RL training ... for each prompt, we sample
multiple responses and retain only the correct ones ... we have filtered out
chain-of-thought with mixed languages, long paragraphs, and code blocks."

From config.init_from (an r1jax workdir or a Hugging Face checkpoint) this samples
config.sampling.num_samples completions per prompt of config.data.datasets (sampling,
seeding and rule checking are r1jax.evaluate's), then

  1. verifies: the rule checker's verdict (`choose_checker`: arithmetic, countdown or
     math-verify accuracy); where no rule can decide (a record without a gold answer, or a
     checker that fails on the item) the judge decides: `judge_fn(question, gold,
     completion) -> True | False | None` (None: abstain), named by config.judge_fn
     ("package.module:function") or passed in. config.judge_when="not_correct" also hands
     it the completions the rule rejected (free-form golds math-verify cannot read).
  2. filters the correct ones, in this order (the first that applies is counted):
       truncated       stopped by max_new_tokens, not by EOS or a stop string
       format          no single <think>…</think> block with reasoning and a summary after
       language        language_share of the CoT below filters.min_language_share
       code_block      a ``` or ~~~ fence in the CoT
       long_paragraph  a CoT paragraph (blank-line separated) over filters.max_paragraph_chars
       reasoning_length  a CoT shorter than filters.min_reasoning_chars or longer than
                       filters.max_reasoning_chars (0: no bound; both off by default)
       duplicate       same question and response after `normalize_text`
       per_prompt_cap  beyond the first filters.max_per_prompt kept for the prompt
  3. writes <workdir>/<config.output.filename> (default rejection_sampled.jsonl) in
     r1jax.data.conversations' format: user = the question, assistant =
     "<think>\\n{reasoning}\\n</think>\\n\\n{summary}" (R1's readable format, as
     tiny_cold_start writes it); <workdir>/stats.json with the counts; and with
     config.write_samples, every completion with its verdict and fate to samples.jsonl.

Completions differ by template: after r1_zero's "Assistant:" the model opens the block
itself (" <think> r </think> <answer> a </answer>"); r1_chat's prompt ends in "<think>\\n",
so the completion starts inside it ("r\\n</think>\\n\\nsummary"). Both become the same
rendering; the summary keeps R1-Zero's <answer> tags unless config.output.answer_tags is
"strip". Nothing kept is an error (stats.json is still written) unless config.allow_empty.
"""

from __future__ import annotations

import collections
import dataclasses
import importlib
import json
import logging
import os
import re
import time
import unicodedata
from collections.abc import Callable
from typing import Any

import ml_collections
import numpy as np

from r1jax import rewards as rewards_lib
from r1jax import train
from r1jax.data.conversations import Messages, write_jsonl
from r1jax.data.templates import prompt_format
from r1jax.data.tokenizers import load_tokenizer, tokenizer_spec
from r1jax.recipe import evaluate as ev
from r1jax.rewards.format import full_text, think_is_prefilled
from r1jax.rewards.language import LANGUAGES, language_share

JudgeFn = Callable[[str, "str | None", str], "bool | None"]
JUDGE_WHEN = ("undecided", "not_correct")
FILTERS = ("truncated", "format", "language", "code_block", "long_paragraph",
           "reasoning_length", "duplicate", "per_prompt_cap")
ANSWER_TAGS = ("keep", "strip")

log = logging.getLogger(__name__)

# ----------------------------------------------------------------- readability (pure)


@dataclasses.dataclass(frozen=True)
class Filters:
  """R1 §2.3.3's readability filters; see the module docstring (config.filters)."""
  language: str = "en"  # "": no language filter
  min_language_share: float = 0.95
  max_paragraph_chars: int = 2000  # 0: no limit
  min_reasoning_chars: int = 0  # 0: no lower bound
  max_reasoning_chars: int = 0  # 0: no upper bound
  drop_code_blocks: bool = True
  drop_truncated: bool = True
  dedupe: bool = True
  max_per_prompt: int = 0  # 0: no cap

  def __post_init__(self):
    if self.language and self.language not in LANGUAGES:
      raise ValueError(f"config.filters.language={self.language!r}; use one of {LANGUAGES} "
                       "or '' to keep every language")
    if not 0.0 <= self.min_language_share <= 1.0:
      raise ValueError(f"config.filters.min_language_share={self.min_language_share} must lie "
                       "in [0, 1]")
    for key in ("max_paragraph_chars", "min_reasoning_chars", "max_reasoning_chars",
                "max_per_prompt"):
      v = getattr(self, key)
      if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"config.filters.{key}={v!r}: use an int >= 0 (0: no limit)")
    if 0 < self.max_reasoning_chars < self.min_reasoning_chars:
      raise ValueError(f"config.filters.max_reasoning_chars={self.max_reasoning_chars} is below "
                       f"min_reasoning_chars={self.min_reasoning_chars}: nothing could pass")


_THINK = re.compile(r"\s*<think>(.*)</think>(.*)", re.DOTALL)
_FENCE = re.compile(r"```|^[ \t]*~~~", re.MULTILINE)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_ANSWER_TAG = re.compile(r"\s*</?answer>\s*")


def split_completion(completion: str, *, think_prefilled: bool) -> tuple[str, str] | None:
  """(reasoning, summary) of a completion, stripped; None unless it holds exactly one
  <think>…</think> block with non-blank reasoning, followed by a non-blank summary.

  think_prefilled: the prompt opened the block (r1_chat), so the completion starts inside
  it. Trailing stop tokens ("</s>", "<｜end▁of▁sentence｜>", …) are ignored.
  """
  text = full_text("", completion, think_prefilled)
  if text.count("<think>") != 1 or text.count("</think>") != 1:
    return None
  m = _THINK.fullmatch(text)
  if not m:
    return None
  reasoning, summary = m.group(1).strip(), m.group(2).strip()
  return (reasoning, summary) if reasoning and summary else None


def render(reasoning: str, summary: str) -> str:
  """R1's readable format: "<think>\\n{reasoning}\\n</think>\\n\\n{summary}"."""
  return f"<think>\n{reasoning}\n</think>\n\n{summary}"


def strip_answer_tags(summary: str) -> str:
  """"<answer> 42 </answer>" -> "42"; a summary without the tags is unchanged."""
  return _ANSWER_TAG.sub(" ", summary).strip()


def to_conversation(question: str, reasoning: str, summary: str) -> Messages:
  """One SFT conversation (r1jax.data.conversations): the question, the rendered answer."""
  return [{"role": "user", "content": question},
          {"role": "assistant", "content": render(reasoning, summary)}]


def has_code_block(text: str) -> bool:
  """Whether `text` has a Markdown code fence: ``` anywhere or ~~~ opening a line."""
  return bool(_FENCE.search(text))


def longest_paragraph(text: str) -> int:
  """Characters in the longest paragraph of `text` (paragraphs split at blank lines)."""
  return max((len(p.strip()) for p in _PARAGRAPH_BREAK.split(text)), default=0)


def readability_issue(reasoning: str, filters: Filters) -> str | None:
  """The first of "language", "code_block", "long_paragraph", "reasoning_length" the CoT
  fails, else None."""
  share = language_share(reasoning, filters.language) if filters.language else 1.0
  if share < filters.min_language_share:
    return "language"
  if filters.drop_code_blocks and has_code_block(reasoning):
    return "code_block"
  if filters.max_paragraph_chars and longest_paragraph(reasoning) > filters.max_paragraph_chars:
    return "long_paragraph"
  if (len(reasoning) < filters.min_reasoning_chars
      or filters.max_reasoning_chars and len(reasoning) > filters.max_reasoning_chars):
    return "reasoning_length"
  return None


def normalize_text(text: str) -> str:
  """The text compared for duplicates: NFKC, case-folded, whitespace runs as one space."""
  return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def select(samples: list[dict], filters: Filters, *, answer_tags: str = "keep"
           ) -> list[Messages]:
  """The conversations of the correct samples that pass every filter, in sample order;
  `filter_samples` with the summary kept, or stripped of its <answer> tags."""
  if answer_tags not in ANSWER_TAGS:
    raise ValueError(f"config.output.answer_tags={answer_tags!r}; use one of {ANSWER_TAGS}")
  return filter_samples(samples, filters,
                        strip_answer_tags if answer_tags == "strip" else lambda summary: summary)


def filter_samples(samples: list[dict], filters: Filters,
                   rewrite_summary: Callable[[str], str | None]) -> list[Messages]:
  """The conversations of the correct samples that pass every filter, in sample order.

  samples: dicts with "dataset", "problem", "question", "completion", "finish_reason",
  "think_prefilled" and "verdict" (True: correct). Sets each sample's "dropped_by" (a
  name of FILTERS, or None) and "kept". rewrite_summary maps the completion's summary to
  the one written; an empty result or None counts as "format".
  """
  seen: set[tuple[str, str]] = set()
  per_prompt: collections.Counter = collections.Counter()
  out = []
  for s in samples:
    s["dropped_by"], s["kept"] = None, False
    if s["verdict"] is not True:
      continue
    parts = split_completion(s["completion"], think_prefilled=s["think_prefilled"])
    if filters.drop_truncated and s["finish_reason"] == "length":
      s["dropped_by"] = "truncated"
    elif parts is None:
      s["dropped_by"] = "format"
    else:
      reasoning, summary = parts[0], rewrite_summary(parts[1]) or ""
      conv = to_conversation(s["question"], reasoning, summary)
      key = (normalize_text(s["question"]), normalize_text(conv[1]["content"]))
      prompt = (s["dataset"], s["problem"])
      if not summary:
        s["dropped_by"] = "format"
      elif issue := readability_issue(reasoning, filters):
        s["dropped_by"] = issue
      elif filters.dedupe and key in seen:
        s["dropped_by"] = "duplicate"
      elif filters.max_per_prompt and per_prompt[prompt] >= filters.max_per_prompt:
        s["dropped_by"] = "per_prompt_cap"
      else:
        seen.add(key)
        per_prompt[prompt] += 1
        s["kept"] = True
        out.append(conv)
  return out


# ----------------------------------------------------------------- verification


def has_gold(gold: Any) -> bool:
  """Whether a record's gold answer can be checked. load_prompts turns a JSON null into
  the string "None", so that counts as missing too."""
  return gold is not None and str(gold).strip() not in ("", "None")


def verify(rule: bool | None, question: str, gold: str | None, completion: str, *,
           judge_fn: JudgeFn | None = None, judge_when: str = "undecided"
           ) -> tuple[bool | None, str]:
  """(verdict, who decided: "rule" | "judge" | "none"); verdict None: nobody could tell.

  The judge is asked where the rule is None, and with judge_when="not_correct" also where
  it is False; a judge answering None leaves the rule's verdict standing.
  """
  if judge_when not in JUDGE_WHEN:
    raise ValueError(f"config.judge_when={judge_when!r}; use one of {JUDGE_WHEN}")
  asked = judge_fn is not None and (rule is None or rule is False and judge_when == "not_correct")
  if asked:
    v = judge_fn(question, gold if has_gold(gold) else None, completion)
    if v is not None:
      if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"judge_fn returned {v!r}; it must return True, False or None")
      return bool(v), "judge"
  return rule, "none" if rule is None else "rule"


def rule_verdict(row: dict, record: dict, checker: str, recheck: bool) -> bool | None:
  """The rule's verdict on an r1jax.evaluate sample row: its "correct", or None where the
  record has no gold or (recheck: the checker failed somewhere in the dataset) the checker
  raises on this item."""
  if not has_gold(record.get("answer")):
    return None
  if row["correct"] or not recheck:
    return bool(row["correct"])
  reward = ev.checker_reward(checker, row.get("answer_mode", "strict"))  # as the row was checked
  return check_rule(reward, row["question"], row["completion"],
                    {k: v for k, v in record.items() if k != "question"})


def check_rule(checker: str, question: str, completion: str, refs: dict[str, Any]
               ) -> bool | None:
  """The rule reward `checker`'s verdict on one completion; `refs` are its reference fields
  ("answer", "numbers", "target", ...). None where the checker raises on it."""
  try:
    reward = rewards_lib.get_reward(checker)([question], [completion],
                                             **{k: [v] for k, v in refs.items()})
    return reward[0] > 0.5
  except Exception:  # noqa: BLE001 - the rule cannot decide this one: the judge may
    return None


def import_fn(path: str, key: str) -> Callable | None:
  """"package.module:function" -> that callable; "" -> None."""
  if not path:
    return None
  module, _, attr = path.partition(":")
  try:
    fn = getattr(importlib.import_module(module), attr)
  except (ImportError, AttributeError, ValueError) as e:
    raise ValueError(f"config.{key}={path!r}: cannot import it ({e}); write "
                     "'package.module:function'") from None
  if not callable(fn):
    raise ValueError(f"config.{key}={path!r} is not callable")
  return fn


# ----------------------------------------------------------------- counts


def tally(samples: list[dict], names: tuple[str, ...] = FILTERS) -> dict[str, Any]:
  """Counts over samples that went through `select` (one dataset or all); "dropped" has
  one count per filter of `names`."""
  groups: dict[tuple, list[dict]] = {}
  for s in samples:
    groups.setdefault((s["dataset"], s["problem"]), []).append(s)
  kept = [sum(s["kept"] for s in g) for g in groups.values()]
  dropped = collections.Counter(s["dropped_by"] for s in samples if s["dropped_by"])
  return {
      "total": len(samples),
      "correct": sum(s["verdict"] is True for s in samples),
      "incorrect": sum(s["verdict"] is False for s in samples),
      "undecided": sum(s["verdict"] is None for s in samples),
      "verified_by": dict(collections.Counter(s["verified_by"] for s in samples
                                              if s["verdict"] is True)),
      "dropped": {name: dropped[name] for name in names},
      "kept": sum(kept),
      "prompts": len(groups),
      "prompts_with_zero_kept": kept.count(0),
      "kept_per_prompt_histogram": {str(k): kept.count(k) for k in range(max(kept, default=0) + 1)},
      "per_prompt": [{"dataset": d, "problem": p, "sampled": len(g),
                      "correct": sum(s["verdict"] is True for s in g), "kept": k,
                      "kept_fraction": k / len(g)}
                     for ((d, p), g), k in zip(groups.items(), kept)],
  }


def summary_line(stats: dict) -> str:
  dropped = ", ".join(f"{k} {v}" for k, v in stats["dropped"].items() if v) or "none"
  return (f"kept {stats['kept']} of {stats['total']} sampled ({stats['correct']} correct, "
          f"{stats['incorrect']} wrong, {stats['undecided']} undecided; dropped: {dropped}); "
          f"{stats['prompts_with_zero_kept']} of {stats['prompts']} prompts kept nothing")


def write_outputs(workdir: str, samples: list[dict], conversations: list[Messages], *,
                  extra: dict | None = None, filename: str = "rejection_sampled.jsonl",
                  allow_empty: bool = False, write_samples: bool = False,
                  names: tuple[str, ...] = FILTERS, what: str = "rejection sampling",
                  advice: str = ("sample more (config.sampling.num_samples), from a better "
                                 "checkpoint, or loosen config.filters")) -> dict[str, Any]:
  """Writes stats.json (always), the conversations and samples.jsonl; returns the stats.
  Raises ValueError with the counts when nothing was kept, unless allow_empty; the message
  says `what` kept nothing and gives `advice`. `names`: the filters counted (`tally`)."""
  os.makedirs(workdir, exist_ok=True)
  stats = tally(samples, names)
  stats["datasets"] = {}
  for spec in dict.fromkeys(s["dataset"] for s in samples):
    part = tally([s for s in samples if s["dataset"] == spec], names)
    part["problems_with_zero_kept"] = [p["problem"] for p in part.pop("per_prompt")
                                       if not p["kept"]]
    stats["datasets"][spec] = part
  stats.update(extra or {})
  with open(os.path.join(workdir, "stats.json"), "w") as f:
    json.dump(stats, f, indent=2)
  if write_samples:
    with open(os.path.join(workdir, "samples.jsonl"), "w") as f:
      for s in samples:
        f.write(json.dumps(s, ensure_ascii=False) + "\n")
  path = os.path.join(workdir, filename)
  if not conversations:
    msg = (f"{what} kept nothing: {summary_line(stats)}. See "
           f"{os.path.join(workdir, 'stats.json')}; {advice}")
    if not allow_empty:
      raise ValueError(msg + f"; config.allow_empty=True writes an empty {filename} anyway")
    log.warning(msg)
  write_jsonl(path, conversations)
  return stats


# ----------------------------------------------------------------- the run


def counting_errors(judge_fn: JudgeFn, errors: list) -> JudgeFn:
  """judge_fn, abstaining (None) where it raises (an API error, say); errors collects them."""

  def judge(question, gold, completion):
    try:
      return judge_fn(question, gold, completion)
    except Exception as e:  # noqa: BLE001 - counted in stats.json's judge_errors
      if not errors:
        log.warning("judge_fn failed (it abstains there; counted in judge_errors): %r", e)
      errors.append(e)
      return None

  return judge


def sample_and_verify(config: ml_collections.ConfigDict, judge_fn: JudgeFn | None = None
                      ) -> tuple[list[dict], dict[str, Any]]:
  """Every sample of config.data.datasets (r1jax.evaluate's rows) with "verdict",
  "verified_by" and "think_prefilled" added; and evaluate's metrics per dataset."""
  tokenizer = load_tokenizer(tokenizer_spec(config))
  sp = ev.sampling_params(config, tokenizer)
  ks = ev.pass_ks(tuple(config.metrics.pass_at_k), sp.n)
  datasets = ev.load_datasets(config)
  cfg, params = ev.load_model(config, ev.make_mesh(dict(config.mesh)))
  if tokenizer.vocab_size > cfg.vocab_size:
    raise ValueError(f"tokenizer {config.tokenizer!r} has {tokenizer.vocab_size} ids but model "
                     f"{cfg.name!r} only {cfg.vocab_size}; pick a matching model or tokenizer")
  d, samples, metrics, judge_errors = config.data, [], {}, []
  judge = counting_errors(judge_fn, judge_errors) if judge_fn else None
  for i, (spec, records, checker) in enumerate(datasets):
    metrics[spec], rows = ev.evaluate_dataset(config, cfg, params, tokenizer, spec, records,
                                              checker, sp, ks, index=i)
    prefilled = think_is_prefilled(prompt_format(d.template, tokenizer).question(
        records[0]["question"], d.get("instruction", "")))
    recheck = metrics[spec]["checker_errors"] > 0
    for row in rows:
      rule = rule_verdict(row, records[row["problem"]], checker, recheck)
      row["verdict"], row["verified_by"] = verify(
          rule, row["question"], row["gold"], row["completion"], judge_fn=judge,
          judge_when=config.judge_when)
      row["think_prefilled"] = prefilled
    samples += rows
  return samples, {"metrics": metrics, "judge_errors": len(judge_errors)}


def rejection_sample(config: ml_collections.ConfigDict, workdir: str, *,
                     judge_fn: JudgeFn | None = None) -> dict[str, Any]:
  """Samples, verifies, filters and writes (see the module docstring); returns stats.json's
  contents. `judge_fn` (default: the callable named by config.judge_fn) decides answers
  no rule can check."""
  t0 = time.perf_counter()
  judge_fn = judge_fn or import_fn(config.get("judge_fn", ""), "judge_fn")
  if config.judge_when not in JUDGE_WHEN:
    raise ValueError(f"config.judge_when={config.judge_when!r}; use one of {JUDGE_WHEN}")
  filters = Filters(**config.filters.to_dict())
  o = config.output
  if o.answer_tags not in ANSWER_TAGS:
    raise ValueError(f"config.output.answer_tags={o.answer_tags!r}; use one of {ANSWER_TAGS}")
  samples, extra = sample_and_verify(config, judge_fn)
  if o.get("with_instruction") and config.data.get("instruction"):
    for s in samples:  # the user turn as the model saw it
      s["question"] = f"{s['question']} {config.data.instruction}".strip()
  conversations = select(samples, filters, answer_tags=o.answer_tags)
  extra.update(init_from=config.init_from, num_samples=config.sampling.num_samples,
               time_s=time.perf_counter() - t0,
               config=json.loads(config.to_json_best_effort()))
  stats = write_outputs(workdir, samples, conversations, extra=extra, filename=o.filename,
                        allow_empty=config.allow_empty, write_samples=config.write_samples)
  print(summary_line(stats))
  return stats


def _main(config: ml_collections.ConfigDict, workdir: str) -> None:
  print(f"r1jax.rejection_sample: {config.init_from} -> {workdir}")
  rejection_sample(config, workdir)


def main() -> None:
  train.run_cli("r1jax.rejection_sample", _main, "rejection-sampling")


if __name__ == "__main__":
  main()
