"""r1jax.cold_start: the rewrite into R1's readable format (the very rendering tiny_cold_start
writes and SFT masks), the stricter filters on hand-written R1-Zero completions, the summary
options, the seeded total cap, the completions-file reader and its line-numbered errors,
and whole runs from a file (function and command line) and from a tiny R1-Zero workdir."""

import json
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from configs import cold_start as cs_config
from r1jax.data import tasks
from r1jax.data.conversations import _cold_start_answer, load_conversations, tokenize
from r1jax.data.tokenizers import load_tokenizer
from r1jax.models import loading
from r1jax.recipe import cold_start as cs
from r1jax.recipe import evaluate as ev
from r1jax.recipe import rejection_sample as rs
from r1jax.rewards.math import extract_answer
from r1jax.runtime import checkpoint as ckpt_lib

REPO = Path(__file__).resolve().parents[1]
EOS = "<｜end▁of▁sentence｜>"
COLD = rs.Filters(**cs_config.get_config().filters.to_dict())  # the config's defaults


def _sample(completion, problem=0, verdict=True, question="What is 47 + 38?", finish="stop",
            prefilled=False, dataset="d"):
  return {"dataset": dataset, "problem": problem, "question": question, "gold": "85",
          "completion": completion, "finish_reason": finish, "think_prefilled": prefilled,
          "verdict": verdict, "verified_by": "rule" if verdict is not None else "none"}


def _r1_zero(ex):
  """What R1-Zero writes for a tasks.arithmetic_examples problem (its template's format)."""
  a, b = ex["question"].removeprefix("What is ").removesuffix("?").split(" + ")
  s = ex["answer"]
  return f" <think> {ex['cot']} , so {a} + {b} = {s} . </think> <answer> {s} </answer>"


# ------------------------------------------------------------------------ the rewrite


def test_rewrite_is_tiny_cold_starts_rendering_and_sft_masks_all_of_it():
  examples = tasks.arithmetic_examples("train", 3)
  samples = [_sample(_r1_zero(ex), problem=i, question=ex["question"])
             for i, ex in enumerate(examples)]
  convs = cs.select(samples, COLD)
  assert [s["dropped_by"] for s in samples] == [None] * 3
  for conv, ex in zip(convs, examples, strict=True):
    assert conv == [{"role": "user", "content": ex["question"]},
                    {"role": "assistant", "content": _cold_start_answer(ex)}]
  # r1_chat-style: the prompt opened the block, the completion ends with its EOS
  chat = _sample(_r1_zero(examples[0]).replace(" <think> ", "") + EOS, prefilled=True)
  assert cs.select([chat], COLD)[0][1]["content"] == _cold_start_answer(examples[0])

  tok = load_tokenizer("r1jax_tiny")
  ids, mask = tokenize(convs[0], tok)
  first = mask.index(1)
  assert set(mask[:first]) == {0} and set(mask[first:]) == {1}
  assert ids[first:] == tok.encode(_cold_start_answer(examples[0])) + [tok.eos_id]


def test_summary_options_keep_the_answer_where_the_accuracy_reward_reads_it():
  answer = "\\frac{1}{2}"
  zero = f" <think> half of one </think> <answer> {answer} </answer>"
  boxed = f" <think> half of one </think> so \\boxed{{{answer}}}"
  for summary, expected in [
      ("answer_tags", f"<answer> {answer} </answer>"),
      ("sentence", f"The final answer is <answer> {answer} </answer>"),
      ("**Answer:** \\boxed{{answer}}", f"**Answer:** \\boxed{{{answer}}}")]:
    for completion in (zero, boxed):
      convs = cs.select([_sample(completion)], COLD, summary=summary)
      content = convs[0][1]["content"]
      assert content == f"<think>\nhalf of one\n</think>\n\n{expected}"
      assert extract_answer(content) == answer
  # a summary without an answer is not R1's format
  s = _sample(" <think> 7 + 8 = 15 </think> the result is 85 .")
  assert cs.select([s], COLD) == [] and s["dropped_by"] == "format"
  for bad in ("plain", "The answer is {answer}.", "<answer> answer </answer>"):
    with pytest.raises(ValueError, match="config.output.summary"):
      cs.summary_template(bad)


# ------------------------------------------------------------------------ filters

GOOD = " <think> 7 + 8 = 15 , 4 + 3 + 1 = 8 , so 85 </think> <answer> 85 </answer>"
WORDS = " ".join(["add"] * 60)


def test_unreadable_and_mixed_language_completions_are_dropped():
  samples = [
      _sample(GOOD),  # kept
      _sample(GOOD.replace("<think>", "<think> 先算个位")),  # mixed language
      _sample(f" <think> {WORDS} 进位 </think> <answer> 85 </answer>", problem=1),  # 2 of 62
      _sample(GOOD.replace("</think>", "```\nprint(85)\n``` </think>"), problem=2),
      _sample(" <think> " + "7 + 8 " * 200 + "</think> <answer> 85 </answer>", problem=3),
      _sample(" 7 + 8 = 15 , so 85 . <answer> 85 </answer>", problem=4),  # no think block
      _sample(" <think> </think> <answer> 85 </answer>", problem=4),  # no reasoning
      _sample(GOOD, problem=5, finish="length"),
      _sample(GOOD, problem=6, verdict=False), _sample(GOOD, problem=6, verdict=None),
      _sample(GOOD.replace("<answer>", "<answer>  "), problem=7),  # renders as #0 does
      _sample(GOOD.replace("so", "thus"), problem=0),  # distinct, but one per prompt
  ]
  convs = cs.select(samples, COLD)
  assert [s["dropped_by"] for s in samples] == [
      None, "language", "language", "code_block", "long_paragraph", "format", "format",
      "truncated", None, None, "duplicate", "per_prompt_cap"]
  assert convs == [[{"role": "user", "content": "What is 47 + 38?"},
                    {"role": "assistant", "content": "<think>\n7 + 8 = 15 , 4 + 3 + 1 = 8 , "
                                                     "so 85\n</think>\n\n<answer> 85 </answer>"}]]
  # rejection sampling's 95 % keeps 2 foreign words in 62 (96.8 %); cold start's 99 % not
  assert rs.readability_issue(WORDS + " 进位", rs.Filters()) is None
  t = rs.tally(samples, cs.FILTERS)
  assert t["kept"] == 1 and t["correct"] == 10 == 1 + sum(t["dropped"].values())


def test_reasoning_length_bounds():
  f = rs.Filters(min_reasoning_chars=10, max_reasoning_chars=20)
  assert [rs.readability_issue(x, f) for x in ("7 + 8", "7 + 8 = 15 , so 85", "x" * 21)] == [
      "reasoning_length", None, "reasoning_length"]
  with pytest.raises(ValueError, match="max_reasoning_chars=5 is below min_reasoning_chars=6"):
    rs.Filters(min_reasoning_chars=6, max_reasoning_chars=5)


# ------------------------------------------------------------------------ the total cap


def _kept(n_prompts, per_prompt):
  samples = [_sample(GOOD.replace("so", f"so ({j})"), problem=p, question=f"question {p}")
             for p in range(n_prompts) for j in range(per_prompt)]
  cs.select(samples, rs.Filters(max_per_prompt=0))
  return samples


def _chosen(samples):
  return [(s["problem"], s["completion"]) for s in samples if s["kept"]]


def test_total_cap_is_round_robin_over_prompts_and_seeded():
  samples = _kept(6, 3)
  convs = cs.select(samples, rs.Filters(max_per_prompt=0), max_samples=8, seed=0)
  assert len(convs) == 8 == len(_chosen(samples))
  per_prompt = [sum(s["kept"] for s in samples if s["problem"] == p) for p in range(6)]
  assert sorted(per_prompt) == [1, 1, 1, 1, 2, 2]  # every prompt once before any twice
  assert [s["dropped_by"] for s in samples].count("max_samples") == 10
  assert [c[1]["content"] for c in convs] == [
      rs.render(*rs.split_completion(c, think_prefilled=False)) for _, c in _chosen(samples)]

  def chosen(seed):
    s = _kept(6, 3)
    cs.select(s, rs.Filters(max_per_prompt=0), max_samples=4, seed=seed)
    return _chosen(s)

  assert chosen(0) == chosen(0)
  assert len({tuple(chosen(seed)) for seed in range(6)}) > 1
  assert len(cs.select(_kept(3, 2), rs.Filters(max_per_prompt=0), max_samples=0)) == 6
  with pytest.raises(ValueError, match="config.output.max_samples"):
    cs.cap_total([], -1, seed=0)


# ------------------------------------------------------------------------ completions files


def _write(path, lines):
  path.write_text("\n".join(lines) + "\n", encoding="utf-8")
  return str(path)


def test_read_completions_fields_and_line_numbers(tmp_path):
  src = _write(tmp_path / "c.jsonl", [
      # evaluate's samples.jsonl: "gold" is the reference, "answer" what the model said
      json.dumps({"dataset": "arithmetic:test@4", "problem": 3, "question": "What is 47 + 38?",
                  "gold": "85", "answer": "84", "completion": GOOD, "finish_reason": "length"}),
      "",
      "\ufeff" + json.dumps({"question": "What is 12 + 30?", "answer": 42,
                             "completion": GOOD}),
      json.dumps({"question": "What is 12 + 30?", "answer": None, "completion": "x",
                  "think_prefilled": True, "numbers": [1, 2], "target": 3})])
  rows = cs.read_completions(src)
  assert [(r["line"], r["problem"], r["dataset"], r["gold"]) for r in rows] == [
      (1, 0, "arithmetic:test@4", "85"), (3, 1, src, "42"), (4, 1, src, None)]
  assert [r["finish_reason"] for r in rows] == ["length", "stop", "stop"]
  assert [r["think_prefilled"] for r in rows] == [False, False, True]
  assert rows[2]["numbers"] == [1, 2] and rows[2]["target"] == 3 and "numbers" not in rows[0]
  assert cs.read_completions(src, template="r1_chat")[1]["think_prefilled"] is True

  for i, (bad, match) in enumerate([
      ('{"question": "q", "completion": "c"', r":3: "),  # malformed JSON
      ('{"question": "q"}', r":3: missing field\(s\) \['completion'\]"),
      ('{"question": "q", "completion": 7}', r":3: 'completion' must be a string"),
      ('{"question": " ", "completion": "c"}', r":3: 'question' must be a non-empty string"),
      ('{"question": "q", "completion": "c", "think_prefilled": "yes"}',
       r":3: 'think_prefilled' must be a bool")]):
    path = _write(tmp_path / f"bad{i}.jsonl", ['{"question": "q", "completion": "c"}', "", bad])
    with pytest.raises(ValueError, match=f"bad{i}.jsonl{match}"):
      cs.read_completions(path)
  with pytest.raises(ValueError, match="holds no completions"):
    cs.read_completions(_write(tmp_path / "empty.jsonl", [""]))
  with pytest.raises(FileNotFoundError, match="config.data.completions"):
    cs.read_completions(str(tmp_path / "missing.jsonl"))


def _judge(question, gold, completion):
  """Knows 12 + 30 only; abstains on everything else."""
  return extract_answer(completion) == "42" if "12 + 30" in question else None


def test_completions_file_end_to_end(tmp_path, capsys):
  def zero(a, b, s):  # R1-Zero's completion, answering s
    return f" <think> adding {a} and {b} gives {s} </think> <answer> {s} </answer>"

  src = _write(tmp_path / "zero.jsonl", [
      json.dumps({"question": "What is 47 + 38?", "answer": "85", "completion": zero(47, 38, 85)}),
      json.dumps({"question": "What is 47 + 38?", "answer": "85",
                  "completion": zero(47, 38, 85).replace("adding", "we add")}),  # capped
      # a stored verdict is not trusted: the rule re-checks against the gold
      json.dumps({"question": "What is 20 + 20?", "gold": "40", "answer": "41", "correct": True,
                  "completion": zero(20, 20, 41)}),
      json.dumps({"question": "What is 12 + 30?", "answer": None,
                  "completion": zero(12, 30, 42)}),  # only the judge can tell
      json.dumps({"question": "What is 25 + 25?", "completion": zero(25, 25, 50) + " 混合"}),
      json.dumps({"question": "What is 30 + 30?", "answer": "60",
                  "completion": zero(30, 30, 60).replace("adding", "我们 adding")})])
  c = cs_config.get_config()
  c.data.completions = src
  c.data.checker = "arithmetic"
  c.output.summary = "sentence"
  stats = cs.build_cold_start(c, str(tmp_path / "out"), judge_fn=_judge)
  out = tmp_path / "out"
  assert capsys.readouterr().out.strip().endswith(f"-> {out / 'cold_start.jsonl'}")
  assert json.loads((out / "stats.json").read_text())["kept"] == stats["kept"] == 2
  assert (stats["total"], stats["correct"], stats["incorrect"], stats["undecided"]) == (6, 4, 1, 1)
  assert stats["verified_by"] == {"rule": 3, "judge": 1}
  assert {k: v for k, v in stats["dropped"].items() if v} == {"per_prompt_cap": 1, "language": 1}
  assert list(stats["dropped"]) == list(cs.FILTERS) and stats["source"] == src
  convs = load_conversations(str(out / "cold_start.jsonl"))
  assert convs == [
      [{"role": "user", "content": "What is 47 + 38?"},
       {"role": "assistant", "content": "<think>\nadding 47 and 38 gives 85\n</think>\n\n"
                                        "The final answer is <answer> 85 </answer>"}],
      [{"role": "user", "content": "What is 12 + 30?"},
       {"role": "assistant", "content": "<think>\nadding 12 and 30 gives 42\n</think>\n\n"
                                        "The final answer is <answer> 42 </answer>"}]]
  fates = [(s["line"], s["verdict"], s["dropped_by"], s["kept"])
           for s in map(json.loads, (out / "samples.jsonl").read_text().splitlines())]
  assert fates == [(1, True, None, True), (2, True, "per_prompt_cap", False),
                   (3, False, None, False), (4, True, None, True), (5, None, None, False),
                   (6, True, "language", False)]

  c.write_samples = True  # reading a run's own samples.jsonl into the same workdir
  c.data.completions = str(out / "samples.jsonl")
  with pytest.raises(ValueError, match="would overwrite it"):
    cs.build_cold_start(c, str(out))
  c.data.completions = src
  c.filters.max_per_prompt = 0
  c.filters.min_language_share = 0.0
  c.output.max_samples = 3
  assert cs.build_cold_start(c, str(tmp_path / "cap"), judge_fn=_judge)["kept"] == 3


def test_nothing_kept_is_an_error_with_the_counts(tmp_path):
  src = _write(tmp_path / "wrong.jsonl", [json.dumps(
      {"question": "What is 47 + 38?", "answer": "85", "completion": GOOD.replace("85", "84")})])
  c = cs_config.get_config()
  c.data.completions = src
  with pytest.raises(ValueError, match=r"cold start kept nothing: kept 0 of 1 sampled \(0 "
                                       r"correct, 1 wrong.*config.data.completions.*allow_empty"):
    cs.build_cold_start(c, str(tmp_path / "out"))
  assert json.loads((tmp_path / "out" / "stats.json").read_text())["incorrect"] == 1
  c.allow_empty = True
  assert cs.build_cold_start(c, str(tmp_path / "out"))["kept"] == 0
  assert (tmp_path / "out" / "cold_start.jsonl").read_text() == ""


def test_bad_config_fails_before_any_work(tmp_path):
  c = cs_config.get_config()
  c.init_from = str(tmp_path / "no_r1_zero")
  with pytest.raises(FileNotFoundError, match="grpo_zero.*config.data.completions"):
    cs.build_cold_start(c, str(tmp_path / "out"))
  for key, value, match in [("output.summary", "short", "config.output.summary"),
                            ("output.max_samples", -5, "config.output.max_samples"),
                            ("filters.language", "fr", "config.filters.language"),
                            ("judge_when", "always", "config.judge_when")]:
    c = cs_config.get_config()
    section, _, name = key.rpartition(".")
    setattr(c[section] if section else c, name, value)
    with pytest.raises(ValueError, match=match):
      cs.build_cold_start(c, str(tmp_path / "out"))
  assert not (tmp_path / "out").exists()


def test_cli_reads_a_completions_file(tmp_path):
  src = _write(tmp_path / "zero.jsonl", [json.dumps(
      {"question": "What is 47 + 38?", "answer": "85", "completion": GOOD})])
  out = subprocess.run([sys.executable, "-m", "r1jax.cold_start", "--config=configs/cold_start.py",
                        f"--config.data.completions={src}", f"--workdir={tmp_path / 'out'}"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr
  assert "kept 1 of 1 sampled" in out.stdout
  assert load_conversations(str(tmp_path / "out" / "cold_start.jsonl"))[0][1]["content"] == (
      "<think>\n7 + 8 = 15 , 4 + 3 + 1 = 8 , so 85\n</think>\n\n<answer> 85 </answer>")


# ------------------------------------------------------------------------ sampling


def test_sampling_from_an_r1_zero_workdir_end_to_end(tmp_path):
  # A stand-in for workdirs/grpo_zero: an r1jax checkpoint of the shipped tiny base.
  c = cs_config.get_config()
  c.init_from = str(REPO / "r1jax" / "assets" / "tiny_base")
  cfg, weights = ev.load_model(c, ev.make_mesh(dict(c.mesh)))
  ckpt = ckpt_lib.Checkpointer(str(tmp_path / "grpo_zero"), async_save=False)
  ckpt.save(5, dict(weights, step=jax.numpy.zeros((), jax.numpy.int32)),
            {"model": loading.model_config_dict(cfg)})
  ckpt.close()
  c.init_from = str(tmp_path / "grpo_zero")
  c.data.datasets = ("arithmetic:train@16",)
  stats = cs.build_cold_start(c, str(tmp_path / "run"))

  run = tmp_path / "run"
  samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
  assert len(samples) == stats["total"] == 16 * 4 and stats["prompts"] == 16
  assert 0 < stats["kept"] <= 16 and max(p["kept"] for p in stats["per_prompt"]) == 1
  assert stats["correct"] == stats["kept"] + sum(stats["dropped"].values())
  assert stats["metrics"]["arithmetic:train@16"]["problems"] == 16
  convs = load_conversations(str(run / "cold_start.jsonl"))
  kept = [s for s in samples if s["kept"]]
  assert len(convs) == len(kept) == stats["kept"]
  for conv, s in zip(convs, kept):
    a, b = map(int, s["question"].removeprefix("What is ").removesuffix("?").split(" + "))
    assert conv[0] == {"role": "user", "content": s["question"]}
    reasoning, _ = rs.split_completion(s["completion"], think_prefilled=False)
    assert conv[1]["content"] == f"<think>\n{reasoning}\n</think>\n\n<answer> {a + b} </answer>"
