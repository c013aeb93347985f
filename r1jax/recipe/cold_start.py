"""Cold-start data from R1-Zero's outputs (R1 §2.3.1):
`python -m r1jax.cold_start --config=configs/cold_start.py --workdir=...`.

"we construct and collect a small amount of long CoT data to fine-tune the model as the
initial RL actor ... gathering DeepSeek-R1-Zero outputs in a readable format ... we design
a readable pattern that includes a summary at the end of each response and filters out
responses that are not reader-friendly. Here, we define the output format as
|special_token|<reasoning_process>|special_token|<summary>."

This turns R1-Zero completions into a few thousand SFT conversations for
configs/sft_cold_start.py (`--config.data.source=<workdir>/cold_start.jsonl`). The
completions come from one of

  config.data.completions = ""   (default) sampling: config.sampling.num_samples per prompt
      of config.data.datasets from the R1-Zero checkpoint config.init_from (default
      workdirs/grpo_zero, configs/grpo_zero.py's workdir) with the R1-Zero template it was
      trained with; sampling, seeding and verifying are r1jax.rejection_sample's
      (`sample_and_verify`), with a progress bar per dataset.
  config.data.completions = "<file>.jsonl"   completions made earlier: the samples.jsonl
      that r1jax.evaluate and r1jax.rejection_sample write, or a file of one JSON object
      a line with
        question        the question, without the template (required, non-empty)
        completion      the model's text after the prompt (required)
        gold            the reference answer; where absent, "answer" is (in evaluate's
                        samples.jsonl "answer" is the model's extracted answer and "gold"
                        the reference); null or missing: only config.judge_fn can verify it
        numbers, target Countdown's references, handed to the checker with the gold
        dataset         groups rows for the checker and stats.json (default: the file)
        finish_reason   "length" marks a completion cut by max_new_tokens (default "stop")
        think_prefilled whether the prompt opened the <think> block (default: as
                        config.data.template's prompt does; False for R1-Zero's)
      The rule checker (config.data.checker; "auto" picks it per dataset as r1jax.evaluate
      does) re-verifies every row that has a gold; verdicts stored in the file are not
      trusted. Malformed lines are errors naming the line.

Then, as r1jax.rejection_sample's `filter_samples` (see there for the order):
  1. keep the verified-correct completions (the judge hook config.judge_fn too);
  2. drop the unreadable: truncated, no single <think>…</think> block with reasoning and a
     summary holding an answer ("format"), CoT below config.filters.min_language_share of
     words in config.filters.language (mixed languages), code fences, paragraphs over
     config.filters.max_paragraph_chars, CoT length outside [min_reasoning_chars,
     max_reasoning_chars]; then duplicates and all but config.filters.max_per_prompt per
     prompt (default 1: one response per question, as many questions as possible);
  3. cap the total at config.output.max_samples (`cap_total`: round robin over the
     prompts in an order drawn with config.seed, so the choice is reproducible);
  4. rewrite each into R1's readable format with <think>/</think> as the special tokens,
     exactly as r1jax.data.conversations' tiny_cold_start writes it:
     "<think>\\n{reasoning}\\n</think>\\n\\n{summary}". R1-Zero's summary is only
     "<answer> X </answer>"; config.output.summary picks what is written from its answer X:
       answer_tags  "<answer> X </answer>" (default): tiny_cold_start's summary, and
                    the shortest, which the tiny models' token budgets need
       sentence     "The final answer is <answer> X </answer>": a short sentence
       any string with "{answer}": e.g. "**Answer:** <answer> {answer} </answer>"
     Every choice must keep X where r1jax.rewards.math.extract_answer reads it (inside
     <answer> tags or \\boxed{}), so the accuracy reward of the RL that follows still
     scores the format SFT taught; ending in "</answer>" matches the RL configs' stop string.
  5. write <workdir>/<config.output.filename> (default cold_start.jsonl; {"messages":
     [user, assistant]} lines, `r1jax.data.conversations.load_conversations` reads them),
     <workdir>/stats.json (counts per filter, kept of total, per prompt and per dataset)
     and, with config.write_samples, every completion with its verdict and fate to
     <workdir>/samples.jsonl; print a one-line summary. Nothing kept is an error naming
     the counts (stats.json is still written) unless config.allow_empty.
"""

from __future__ import annotations

import collections
import json
import os
import time
from collections.abc import Callable
from typing import Any

import ml_collections
import numpy as np
from tqdm import tqdm

from r1jax import train
from r1jax.data.conversations import Messages
from r1jax.data.jsonl import read_jsonl
from r1jax.data.templates import prompt_format
from r1jax.recipe import evaluate as ev
from r1jax.recipe import rejection_sample as rs
from r1jax.rewards.format import think_is_prefilled
from r1jax.rewards.math import extract_answer

FILTERS = rs.FILTERS + ("max_samples",)
SUMMARIES = {
    "answer_tags": "<answer> {answer} </answer>",
    "sentence": "The final answer is <answer> {answer} </answer>",
}
REFERENCE_FIELDS = ("numbers", "target")  # handed to the checker next to answer=gold

# ----------------------------------------------------------------- rewriting (pure)


def summary_template(summary: str) -> str:
  """The template of config.output.summary: a name of SUMMARIES or a string holding
  "{answer}" where extract_answer reads it back."""
  template = SUMMARIES.get(summary, summary)
  probe = "1/2 + x_{0}"
  if "{answer}" not in template or extract_answer(template.replace("{answer}", probe)) != probe:
    raise ValueError(f"config.output.summary={summary!r}; use one of {sorted(SUMMARIES)} or a "
                     "template with '{answer}' inside <answer> </answer> (or \\boxed{}), e.g. "
                     "'**Answer:** <answer> {answer} </answer>', so the accuracy reward reads it")
  return template


def summary_rewriter(summary: str) -> Callable[[str], str | None]:
  """R1-Zero's summary ("<answer> 85 </answer>") -> the summary written, from its answer
  (extract_answer: the last <answer>, else \\boxed{}); None where it holds no answer."""
  template = summary_template(summary)

  def rewrite(r1_zero_summary: str) -> str | None:
    answer = extract_answer(r1_zero_summary)
    return template.replace("{answer}", answer) if answer else None

  return rewrite


def check_max_samples(max_samples: Any) -> None:
  if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 0:
    raise ValueError(f"config.output.max_samples={max_samples!r}: use an int >= 0 (0: no cap)")


def cap_total(samples: list[dict], max_samples: int, *, seed: int) -> None:
  """Keeps at most `max_samples` of the kept samples; the others get dropped_by
  "max_samples". Round robin: every prompt's first kept sample before any prompt's second,
  prompts in an order drawn from `seed`. 0: no cap."""
  check_max_samples(max_samples)
  kept = [s for s in samples if s["kept"]]
  if not max_samples or len(kept) <= max_samples:
    return
  prompts = list(dict.fromkeys((s["dataset"], s["problem"]) for s in kept))
  place = dict(zip(prompts, np.random.default_rng(seed).permutation(len(prompts))))
  rank, seen = [], collections.Counter()
  for s in kept:
    prompt = (s["dataset"], s["problem"])
    rank.append((seen[prompt], place[prompt]))
    seen[prompt] += 1
  for i in sorted(range(len(kept)), key=rank.__getitem__)[max_samples:]:
    kept[i]["kept"], kept[i]["dropped_by"] = False, "max_samples"


def select(samples: list[dict], filters: rs.Filters, *, summary: str = "answer_tags",
           max_samples: int = 0, seed: int = 0) -> list[Messages]:
  """The cold-start conversations of `samples` (steps 1-4 of the module docstring), in
  sample order. samples: as rs.filter_samples takes them; each gets "dropped_by" (a name
  of FILTERS, or None) and "kept"."""
  conversations = rs.filter_samples(samples, filters, summary_rewriter(summary))
  kept = [s for s in samples if s["kept"]]
  cap_total(samples, max_samples, seed=seed)
  return [conv for conv, s in zip(conversations, kept, strict=True) if s["kept"]]


# ----------------------------------------------------------------- completions from a file


def _row_lines(path: str) -> list[int]:
  """The line numbers of `path`'s non-blank lines: those of read_jsonl's rows."""
  with open(path, "rb") as f:
    return [n for n, raw in enumerate(f, 1)
            if raw.decode("utf-8").removeprefix("\ufeff").strip()]


def _sample(row: dict, *, dataset: str, think_prefilled: bool) -> dict[str, Any]:
  """One completion row (fields: the module docstring) as a sample; ValueError naming the
  field that is wrong."""
  question, completion = row["question"], row["completion"]
  if not isinstance(question, str) or not question.strip():
    raise ValueError(f"'question' must be a non-empty string, got {question!r:.80}")
  if not isinstance(completion, str):
    raise ValueError(f"'completion' must be a string (the model's text after the prompt), "
                     f"got {type(completion).__name__}")
  gold = row["gold"] if "gold" in row else row.get("answer")
  s = {"dataset": row.get("dataset", dataset), "question": question,
       "gold": None if gold is None else str(gold), "completion": completion,
       "finish_reason": row.get("finish_reason", "stop"),
       "think_prefilled": row.get("think_prefilled", think_prefilled)}
  for key, kind in (("dataset", str), ("finish_reason", str), ("think_prefilled", bool)):
    if not isinstance(s[key], kind):
      raise ValueError(f"'{key}' must be a {kind.__name__}, got {s[key]!r:.80}")
  return s | {k: row[k] for k in REFERENCE_FIELDS if k in row}


def read_completions(path: str, *, template: str = "r1_zero") -> list[dict[str, Any]]:
  """The samples of a completions JSONL file (see the module docstring), each with its
  "line" and "problem" (numbered by first appearance of its dataset and question).
  `template`: the one the completions were sampled with (sets think_prefilled)."""
  try:
    rows = read_jsonl(path, ("question", "completion"))
  except FileNotFoundError:
    raise FileNotFoundError(f"config.data.completions={path!r}: no such file") from None
  if not rows:
    raise ValueError(f"config.data.completions={path!r} holds no completions (empty file)")
  prefilled = think_is_prefilled(prompt_format(template).question("?"))
  problems: dict[tuple[str, str], int] = {}
  samples = []
  for row, line in zip(rows, _row_lines(path), strict=True):
    try:
      s = _sample(row, dataset=path, think_prefilled=prefilled)
    except ValueError as e:
      raise ValueError(f"{path}:{line}: {e}") from None
    problem = problems.setdefault((s["dataset"], s["question"]), len(problems))
    samples.append({"line": line, "problem": problem, **s})
  return samples


def verify_completions(samples: list[dict], *, checker: str = "auto",
                       judge_fn: rs.JudgeFn | None = None, judge_when: str = "undecided"
                       ) -> None:
  """Sets "verdict" and "verified_by" of every sample (rs.verify): the rule `checker`
  (per dataset for "auto", as r1jax.evaluate chooses) where there is a gold, the judge
  where the rule cannot tell (and with judge_when="not_correct" where it says wrong)."""
  groups = collections.defaultdict(list)
  for s in samples:
    groups[s["dataset"]].append(s)
  checkers = {spec: ev.choose_checker(spec, group, checker) for spec, group in groups.items()}
  for s in tqdm(samples, desc="verifying", unit="completion", dynamic_ncols=True):
    refs = {"answer": s["gold"], **{k: s[k] for k in REFERENCE_FIELDS if k in s}}
    rule = (rs.check_rule(checkers[s["dataset"]], s["question"], s["completion"], refs)
            if rs.has_gold(s["gold"]) else None)
    s["verdict"], s["verified_by"] = rs.verify(rule, s["question"], s["gold"], s["completion"],
                                               judge_fn=judge_fn, judge_when=judge_when)


# ----------------------------------------------------------------- the run


def _check_config(config: ml_collections.ConfigDict, workdir: str) -> rs.Filters:
  """Everything that can be wrong with the config, before any sampling; the filters."""
  filters = rs.Filters(**config.filters.to_dict())
  summary_template(config.output.summary)
  check_max_samples(config.output.max_samples)
  if config.judge_when not in rs.JUDGE_WHEN:
    raise ValueError(f"config.judge_when={config.judge_when!r}; use one of {rs.JUDGE_WHEN}")
  src = config.data.completions
  if src:
    outputs = [config.output.filename, "stats.json"] + (["samples.jsonl"]
                                                        if config.write_samples else [])
    for name in outputs:
      if os.path.abspath(os.path.join(workdir, name)) == os.path.abspath(src):
        raise ValueError(f"config.data.completions={src!r} is an output of this run, which "
                         "would overwrite it; pick another --workdir"
                         + (" or set config.write_samples=False" if name == "samples.jsonl"
                            else ""))
  elif not os.path.isdir(config.init_from):
    raise FileNotFoundError(
        f"config.init_from={config.init_from!r} is not a directory. Sample from an R1-Zero "
        "checkpoint: train one (python -m r1jax.train --config=configs/grpo_zero.py writes "
        "workdirs/grpo_zero) or point config.init_from at an r1jax workdir or Hugging Face "
        "checkpoint; or read completions made earlier with config.data.completions=<file>.jsonl")
  return filters


def build_cold_start(config: ml_collections.ConfigDict, workdir: str, *,
                     judge_fn: rs.JudgeFn | None = None) -> dict[str, Any]:
  """Reads or samples R1-Zero completions, verifies, filters, rewrites and writes them (see
  the module docstring); returns stats.json's contents. `judge_fn` (default: the callable
  named by config.judge_fn) decides answers no rule can check."""
  t0 = time.perf_counter()
  judge_fn = judge_fn or rs.import_fn(config.get("judge_fn", ""), "judge_fn")
  filters = _check_config(config, workdir)
  src = config.data.completions
  if src:
    samples = read_completions(src, template=config.data.template)
    judge_errors: list[Exception] = []
    verify_completions(samples, checker=config.data.checker,
                       judge_fn=rs.counting_errors(judge_fn, judge_errors) if judge_fn else None,
                       judge_when=config.judge_when)
    extra: dict[str, Any] = {"source": src, "judge_errors": len(judge_errors)}
    advice = "give more completions (config.data.completions) or loosen config.filters"
  else:
    samples, extra = rs.sample_and_verify(config, judge_fn)
    extra.update(source=config.init_from, num_samples=config.sampling.num_samples)
    advice = ("sample more (config.data.datasets, config.sampling.num_samples), from a better "
              "R1-Zero checkpoint, or loosen config.filters")
  o = config.output
  conversations = select(samples, filters, summary=o.summary, max_samples=o.max_samples,
                         seed=config.seed)
  extra.update(summary=o.summary, max_samples=o.max_samples, time_s=time.perf_counter() - t0,
               config=json.loads(config.to_json_best_effort()))
  stats = rs.write_outputs(workdir, samples, conversations, extra=extra, filename=o.filename,
                           allow_empty=config.allow_empty, write_samples=config.write_samples,
                           names=FILTERS, what="cold start", advice=advice)
  print(f"{rs.summary_line(stats)} -> {os.path.join(workdir, o.filename)}")
  return stats


def _main(config: ml_collections.ConfigDict, workdir: str) -> None:
  print(f"r1jax.cold_start: {config.data.completions or config.init_from} -> {workdir}")
  build_cold_start(config, workdir)


def main() -> None:
  train.run_cli("r1jax.cold_start", _main, "cold-start data")


if __name__ == "__main__":
  main()
