"""r1jax.rejection_sample: the readability filters and dedupe on hand-made completions, the
conversion to SFT conversations, the judge hook, the empty-result error, and a whole run
on the shipped tiny base (counts consistent with the samples, the JSONL loadable)."""

import collections
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from configs import rejection_sample as rs_config
from r1jax.data.conversations import chat_pieces, load_conversations, write_jsonl
from r1jax.recipe import rejection_sample as rs

EOS = "<｜end▁of▁sentence｜>"

# ------------------------------------------------------------------------ splitting


@pytest.mark.parametrize("completion, prefilled, expected", [
    # r1_zero: the completion opens the block after "Assistant:"
    (" <think> 1 + 8 = 9 , 5 + 4 = 9 </think> <answer> 99 </answer>", False,
     ("1 + 8 = 9 , 5 + 4 = 9", "<answer> 99 </answer>")),
    # r1_chat: the prompt ended in "<think>\n"; the EOS that ended it is not the summary's
    ("Add the tens.\n\n4 + 5 = 9\n</think>\n\nThe sum is \\boxed{99}." + EOS, True,
     ("Add the tens.\n\n4 + 5 = 9", "The sum is \\boxed{99}.")),
    (" 1 + 8 = 9 . so the result is 99 .", False, None),  # no block at all
    ("1 + 8 = 9 </think> <answer> 99 </answer>", False, None),  # never opened
    (" <think> 1 + 8 = 9 <answer> 99 </answer>", False, None),  # never closed
    (" <think> a </think> <think> b </think> 99", False, None),  # two blocks
    ("<think> again </think> 99", True, None),  # reopened after the prefilled <think>
    (" <think>  </think> <answer> 99 </answer>", False, None),  # no reasoning
    (" <think> 1 + 8 = 9 </think>  ", False, None),  # no summary
])
def test_split_completion(completion, prefilled, expected):
  assert rs.split_completion(completion, think_prefilled=prefilled) == expected


def test_render_and_answer_tags():
  assert rs.render("r", "<answer> 99 </answer>") == "<think>\nr\n</think>\n\n<answer> 99 </answer>"
  assert rs.strip_answer_tags("<answer> 99 </answer>") == "99"
  assert rs.strip_answer_tags("The sum is 99.") == "The sum is 99."


# ------------------------------------------------------------------------ readability

F = rs.Filters()


@pytest.mark.parametrize("cot, issue", [
    ("7 + 4 = 11 , 3 + 9 + 1 = 13", None),  # no words: nothing in the wrong language
    ("First add the ones: 7 + 4 = 11, carry the 1.", None),
    ("First add the ones 先算个位 7 + 4 = 11, carry the 1.", "language"),
    ("Let me check with code:\n```python\nprint(47 + 38)\n```\nSo 85.", "code_block"),
    ("Check:\n~~~\n47 + 38\n~~~", "code_block"),
    ("x " * 1001, "long_paragraph"),  # one paragraph of 2001 characters
    ("x " * 900 + "\n\n" + "y " * 900, None),  # two of 1799
    ("x " * 900 + "\n  \n" + "y " * 1100, "long_paragraph"),
])
def test_readability_issue(cot, issue):
  assert rs.readability_issue(cot, F) == issue


def test_filters_can_be_switched_off_and_retargeted():
  off = rs.Filters(language="", drop_code_blocks=False, max_paragraph_chars=0)
  for cot in ("混合 mixed", "```\ncode\n```", "x" * 10**4):
    assert rs.readability_issue(cot, off) is None
  zh = rs.Filters(language="zh")
  assert rs.readability_issue("先算个位，再算十位", zh) is None
  assert rs.readability_issue("先算个位 then the tens", zh) == "language"
  assert rs.longest_paragraph("ab\n\nabcd\n \nabc") == 4 and rs.longest_paragraph("") == 0
  with pytest.raises(ValueError, match="config.filters.language"):
    rs.Filters(language="fr")
  with pytest.raises(ValueError, match="config.filters.max_per_prompt"):
    rs.Filters(max_per_prompt=-1)


def _sample(completion, problem=0, verdict=True, question="What is 47 + 38?", finish="stop",
            prefilled=False, dataset="d"):
  return {"dataset": dataset, "problem": problem, "question": question, "gold": "85",
          "completion": completion, "finish_reason": finish, "think_prefilled": prefilled,
          "verdict": verdict, "verified_by": "rule" if verdict is not None else "none"}


GOOD = " <think> 7 + 8 = 15 , 4 + 3 + 1 = 8 </think> <answer> 85 </answer>"


def _hand_made():
  return [
      _sample(GOOD),  # kept
      _sample("  <think>7 + 8 = 15 ,  4 + 3 + 1 = 8</think>\n<answer>  85 </answer>"),  # dup
      _sample(GOOD.replace("15 ,", "15 , OK")),  # distinct: kept
      _sample(GOOD, verdict=False), _sample(GOOD, verdict=None),  # not correct: untouched
      _sample(GOOD.replace("<think>", "<think> 先"), problem=1),  # language
      _sample(GOOD.replace("</think>", "``` </think>"), problem=1),  # code block
      _sample(" <think> " + "7 " * 1200 + "</think> <answer> 85 </answer>", problem=1),
      _sample(" 7 + 8 = 15 <answer> 85 </answer>", problem=1),  # format
      _sample(GOOD, problem=1, finish="length"),  # truncated
      _sample(GOOD, problem=2, question="What is 40 + 45?"),  # same text, other question
      _sample("7 + 8 = 15\n</think>\n\nThe sum is 85." + EOS, problem=3, prefilled=True),
  ]


def test_select_drops_and_dedupes():
  samples = _hand_made()
  convs = rs.select(samples, F)
  assert [s["dropped_by"] for s in samples] == [
      None, "duplicate", None, None, None, "language", "code_block", "long_paragraph",
      "format", "truncated", None, None]
  assert [s["kept"] for s in samples].count(True) == len(convs) == 4
  assert convs[0] == [{"role": "user", "content": "What is 47 + 38?"},
                      {"role": "assistant", "content": "<think>\n7 + 8 = 15 , 4 + 3 + 1 = 8\n"
                                                       "</think>\n\n<answer> 85 </answer>"}]
  assert convs[3][1]["content"] == "<think>\n7 + 8 = 15\n</think>\n\nThe sum is 85."

  capped = rs.select(samples, rs.Filters(max_per_prompt=1))
  assert len(capped) == 3 and samples[2]["dropped_by"] == "per_prompt_cap"
  assert len(rs.select(samples, rs.Filters(dedupe=False))) == 5
  stripped = rs.select(samples, F, answer_tags="strip")
  assert stripped[0][1]["content"].endswith("</think>\n\n85")
  with pytest.raises(ValueError, match="config.output.answer_tags"):
    rs.select(samples, F, answer_tags="drop")


def test_tally_counts():
  samples = _hand_made()
  rs.select(samples, F)
  t = rs.tally(samples)
  assert (t["total"], t["correct"], t["incorrect"], t["undecided"], t["kept"]) == (12, 10, 1, 1, 4)
  assert t["correct"] == t["kept"] + sum(t["dropped"].values())
  assert t["dropped"]["duplicate"] == 1 and t["dropped"]["per_prompt_cap"] == 0
  assert [(p["problem"], p["sampled"], p["correct"], p["kept"]) for p in t["per_prompt"]] == [
      (0, 5, 3, 2), (1, 5, 5, 0), (2, 1, 1, 1), (3, 1, 1, 1)]
  assert t["prompts"] == 4 and t["prompts_with_zero_kept"] == 1
  assert t["kept_per_prompt_histogram"] == {"0": 1, "1": 2, "2": 1}


def test_conversations_round_trip(tmp_path):
  samples = _hand_made()
  convs = rs.select(samples, F)
  path = str(tmp_path / "rs.jsonl")
  write_jsonl(path, convs)
  assert load_conversations(path) == convs
  # As SFT renders it: the whole assistant turn, reasoning included, is the answer.
  pieces = chat_pieces(convs[0])
  assert [k for k, _ in pieces] == ["prompt", "answer", "eos"]
  assert pieces[1][1] == convs[0][1]["content"]


# ------------------------------------------------------------------------ the judge


def _judge(question, gold, completion):
  """An arithmetic oracle: right when the <answer> is the sum asked for; None: can't tell."""
  nums = re.findall(r"What is (\d+) \+ (\d+)\?", question)
  answer = re.search(r"<answer>\s*(-?\d+)\s*</answer>", completion)
  if not nums or not answer:
    return None
  a, b = map(int, nums[-1])
  return int(answer.group(1)) == a + b


def test_verify_asks_the_judge_only_where_the_rule_cannot_tell():
  calls = []

  def judge(q, gold, c):
    calls.append(gold)
    return True

  assert rs.verify(True, "q", "1", "c", judge_fn=judge) == (True, "rule")
  assert rs.verify(False, "q", "1", "c", judge_fn=judge) == (False, "rule")
  assert rs.verify(None, "q", "None", "c", judge_fn=judge) == (True, "judge")
  assert rs.verify(None, "q", "", "c") == (None, "none")
  assert calls == [None]  # a missing gold ("None" from a JSON null) reaches it as None
  assert rs.verify(False, "q", "1", "c", judge_fn=judge,
                   judge_when="not_correct") == (True, "judge")
  assert rs.verify(False, "q", "1", "c", judge_fn=lambda *a: None,
                   judge_when="not_correct") == (False, "rule")  # abstaining leaves the rule's
  assert rs.verify(None, "q", "", "c", judge_fn=lambda *a: np.bool_(False)) == (False, "judge")
  with pytest.raises(TypeError, match="True, False or None"):
    rs.verify(None, "q", "", "c", judge_fn=lambda *a: "yes")
  with pytest.raises(ValueError, match="config.judge_when"):
    rs.verify(None, "q", "", "c", judge_when="always")
  assert [rs.has_gold(g) for g in (None, "", " ", "None", "0", 0)] == [False] * 4 + [True] * 2


def test_judge_fn_by_name():
  fn = rs.import_fn("tests.test_rejection_sample:_judge", "judge_fn")
  assert fn("What is 2 + 3?", None, " <think> 2 + 3 </think> <answer> 5 </answer>") is True
  assert rs.import_fn("", "judge_fn") is None
  with pytest.raises(ValueError, match="config.judge_fn='no_such_module:f'"):
    rs.import_fn("no_such_module:f", "judge_fn")
  with pytest.raises(ValueError, match="not callable"):
    rs.import_fn("tests.test_rejection_sample:EOS", "judge_fn")


# ------------------------------------------------------------------------ empty results


def test_nothing_kept_is_an_error_with_the_counts(tmp_path):
  samples = [_sample(GOOD, verdict=False), _sample(GOOD, finish="length")]
  rs.select(samples, F)
  with pytest.raises(ValueError, match=r"kept nothing: kept 0 of 2 sampled \(1 correct, 1 wrong"
                                       r".*truncated 1.*config.allow_empty"):
    rs.write_outputs(str(tmp_path), samples, [])
  assert (tmp_path / "stats.json").exists() and not (tmp_path / "rejection_sampled.jsonl").exists()
  stats = rs.write_outputs(str(tmp_path), samples, [], allow_empty=True)
  assert stats["kept"] == 0 and (tmp_path / "rejection_sampled.jsonl").read_text() == ""


# ------------------------------------------------------------------------ end to end


def _read_jsonl(path):
  with open(path) as f:
    return [json.loads(line) for line in f]


def test_rejection_sample_end_to_end(tmp_path):
  # Two problems without a gold (JSON null): only the judge can verify them.
  no_gold = tmp_path / "no_gold.jsonl"
  no_gold.write_text('{"question": "What is 12 + 30?", "answer": null}\n'
                     '{"question": "What is 25 + 25?", "answer": null}\n')
  c = rs_config.get_config()
  c.data.datasets = ("arithmetic:test@4", str(no_gold))
  c.data.checker = "arithmetic"
  c.sampling.num_samples = 4
  c.sampling.max_new_tokens = 48
  judged = []

  def judge(question, gold, completion):
    judged.append(gold)
    return _judge(question, gold, completion)

  stats = rs.rejection_sample(c, str(tmp_path / "run"), judge_fn=judge)
  run = tmp_path / "run"
  assert json.loads((run / "stats.json").read_text())["kept"] == stats["kept"]
  samples = _read_jsonl(run / "samples.jsonl")
  assert len(samples) == stats["total"] == 6 * 4
  assert judged == [None] * 8  # every gold-less sample, no other

  assert 0 < stats["kept"] <= stats["correct"] <= stats["total"]
  assert stats["correct"] + stats["incorrect"] + stats["undecided"] == stats["total"]
  assert stats["correct"] == stats["kept"] + sum(stats["dropped"].values())
  assert stats["correct"] == sum(stats["verified_by"].values())
  per = stats["per_prompt"]
  assert len(per) == stats["prompts"] == 6
  assert all(p["sampled"] == 4 and 0 <= p["kept"] <= p["correct"] <= 4 for p in per)
  for key in ("kept", "correct"):
    assert sum(p[key] for p in per) == stats[key]
  assert stats["prompts_with_zero_kept"] == sum(p["kept"] == 0 for p in per)
  assert all(p["kept_fraction"] == p["kept"] / p["sampled"] for p in per)
  hist = stats["kept_per_prompt_histogram"]
  assert sum(hist.values()) == 6 and sum(int(k) * v for k, v in hist.items()) == stats["kept"]
  d = stats["datasets"]
  assert sum(v["kept"] for v in d.values()) == stats["kept"]
  assert (sum(len(v["problems_with_zero_kept"]) for v in d.values())
          == stats["prompts_with_zero_kept"])
  assert d[str(no_gold)]["verified_by"].keys() <= {"judge"}
  assert d["arithmetic:test@4"]["verified_by"].keys() <= {"rule"}
  assert stats["metrics"]["arithmetic:test@4"]["problems"] == 4 and stats["judge_errors"] == 0

  # samples.jsonl says why each was dropped; the JSONL holds exactly the kept ones.
  fate = collections.Counter(s["dropped_by"] for s in samples if s["verdict"] is True)
  assert {k: fate[k] for k in rs.FILTERS} == stats["dropped"]
  convs = load_conversations(str(run / "rejection_sampled.jsonl"))
  assert len(convs) == stats["kept"] == sum(s["kept"] for s in samples)
  for conv, s in zip(convs, [s for s in samples if s["kept"]]):
    assert conv[0] == {"role": "user", "content": s["question"]}
    answer = conv[1]["content"]
    assert answer.startswith("<think>\n") and "\n</think>\n\n<answer>" in answer
    assert _judge(s["question"], None, conv[1]["content"]) is True


def test_bad_config_fails_before_sampling(tmp_path):
  c = rs_config.get_config()
  c.judge_fn = "no_such_module:f"
  with pytest.raises(ValueError, match="config.judge_fn"):
    rs.rejection_sample(c, str(tmp_path / "out"))
  c = rs_config.get_config()
  c.filters.language = "klingon"
  with pytest.raises(ValueError, match="config.filters.language"):
    rs.rejection_sample(c, str(tmp_path / "out"))
  assert not (tmp_path / "out").exists()


def test_cli_print_config():
  out = subprocess.run([sys.executable, "-m", "r1jax.rejection_sample",
                        "--config=configs/rejection_sample.py", "--config.filters.max_per_prompt=2",
                        "--print_config"], cwd=Path(__file__).resolve().parents[1],
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr
  assert "max_per_prompt: 2" in out.stdout and "judge_when: undecided" in out.stdout
