"""r1jax.evaluate: metrics against brute-force references, input errors, and the whole
evaluation on the shipped tiny base (files written, metrics consistent with the samples)."""

import collections
import itertools
import json
import math
import os
import re

import jax
import numpy as np
import pytest

from configs import eval_math
from r1jax.models import loading
from r1jax.recipe import evaluate as ev
from r1jax.rewards import find_answer, math_equal
from r1jax.runtime import checkpoint as ckpt_lib


# ------------------------------------------------------------------------ pure metrics


def _pass_at_k_by_enumeration(n, c, k):
  """The share of the k-subsets of n samples (the first c correct) holding a correct one."""
  subsets = list(itertools.combinations(range(n), k))
  return sum(any(i < c for i in s) for s in subsets) / len(subsets)


def test_pass_at_k_equals_enumeration():
  for n in range(1, 8):
    for c in range(n + 1):
      for k in range(1, n + 1):
        assert math.isclose(ev.pass_at_k(n, c, k), _pass_at_k_by_enumeration(n, c, k),
                            rel_tol=1e-12, abs_tol=1e-12), (n, c, k)


def test_pass_at_k_large_n_is_stable():
  assert math.isclose(ev.pass_at_k(1000, 1, 1), 0.001)
  exact = 1 - math.comb(150, 50) / math.comb(200, 50)
  assert math.isclose(ev.pass_at_k(200, 50, 50), exact, rel_tol=1e-12)
  assert ev.pass_at_k(64, 0, 64) == 0.0 and ev.pass_at_k(64, 1, 64) == 1.0


@pytest.mark.parametrize("n, c, k, match", [
    (4, 2, 0, "1 <= k <= n"), (4, 2, 5, "1 <= k <= n"), (0, 0, 1, "n >= 1"),
    (4, 5, 1, "0 <= c <= n"), (4, -1, 1, "0 <= c <= n")])
def test_pass_at_k_bad_input(n, c, k, match):
  with pytest.raises(ValueError, match=match):
    ev.pass_at_k(n, c, k)
  with pytest.raises(TypeError):
    ev.pass_at_k(4, 2, 1.0)


def _majority_by_counting(answers):
  """The reference: count, keep the answers with the top count, take the earliest."""
  counts = {a: answers.count(a) for a in answers if a is not None}
  if not counts:
    return None
  top = max(counts.values())
  return min((a for a in counts if counts[a] == top), key=answers.index)


def test_majority_vote_against_counting():
  rng = np.random.default_rng(0)
  for _ in range(300):
    answers = [None if x == 0 else str(x) for x in rng.integers(0, 4, size=rng.integers(1, 9))]
    assert ev.majority_vote(answers) == _majority_by_counting(answers), answers
  assert ev.majority_vote(["3", "5", "5", "3"]) == "3"  # a tie goes to the first seen
  assert ev.majority_vote([None, "7", None, None]) == "7"  # no answer never wins
  assert ev.majority_vote([None, None]) is None and ev.majority_vote([]) is None


def test_cons_at_k():
  assert ev.cons_at_k(["4", "5", "5"], [True, False, False]) == 0.0
  assert ev.cons_at_k(["4", "5", "4"], [True, False, True]) == 1.0
  assert ev.cons_at_k(["5", "4"], [False, True]) == 0.0  # tie: the first answer
  assert ev.cons_at_k([None, None, "4"], [False, False, True]) == 1.0
  assert ev.cons_at_k([None, None], [False, False]) == 0.0  # nothing to vote for: wrong
  with pytest.raises(ValueError, match="2 answers but 1"):
    ev.cons_at_k(["1", "2"], [True])


def test_best_of_n():
  assert ev.best_of_n([0.1, 0.9, 0.3], [False, True, False]) == 1.0
  assert ev.best_of_n([0.5, 0.5], [False, True]) == 0.0  # tie: the first
  with pytest.raises(ValueError):
    ev.best_of_n([1.0], [True, False])


@pytest.mark.parametrize("raw, expected", [
    ("42", "42"), (" 1,000 ", "1000"), ("0.5", "1/2"), ("\\frac{1}{2}", "1/2"),
    ("\\dfrac{1}{2}", "1/2"), ("1/2", "1/2"), ("-\\frac{3}{6}", "-1/2"), ("$18$", "18"),
    ("x = 5", "5"), ("5.", "5"), ("2.50", "5/2"), ("90^\\circ", "90"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),
    ("10\\text{ cm}", "10cm"), ("", None), (None, None), ("1/0", "1/0")])
def test_normalize_answer(raw, expected):
  assert ev.normalize_answer(raw) == expected


def test_voting_normalisers():
  assert ev.CHECKERS["arithmetic"](" 85 ") == "85" and ev.CHECKERS["arithmetic"]("8.5") is None
  assert ev.CHECKERS["countdown"]("55 + 36 - 7") == "55+36-7"
  assert ev.CHECKERS["countdown"](None) is None


def test_summarize_by_hand():
  def row(problem, vote, correct, score, finish="stop"):
    return {"problem": problem, "vote": vote, "answer": vote, "correct": correct,
            "score": score, "format": float(vote is not None), "length": 10,
            "finish_reason": finish}
  rows = [row(0, "5", False, 0.9), row(0, "4", True, 0.1), row(0, "5", False, 0.2),
          row(1, None, False, 0.0, "length"), row(1, "7", True, 0.5), row(1, None, False, 0.1)]
  m = ev.summarize(rows, 3, [1, 2, 3])
  assert m["problems"] == 2 and m["samples"] == 3
  assert math.isclose(m["pass@1"], 2 / 6)
  assert m["cons@3"] == 0.5  # problem 0 votes the wrong "5", problem 1 the lone right "7"
  assert math.isclose(m["pass@2"], 2 / 3) and m["pass@3"] == 1.0
  assert m["best_of_3"] == 0.5  # the scorer picks the wrong 0.9 and the right 0.5
  assert math.isclose(m["answered"], 4 / 6) and math.isclose(m["finish/length"], 1 / 6)


# ------------------------------------------------------------------------ set-up and errors


def test_parse_dataset():
  assert ev.parse_dataset("gsm8k:test@200") == ("gsm8k:test", 200)
  assert ev.parse_dataset("math500") == ("math500", None)
  assert ev.parse_dataset("math500", 50) == ("math500", 50)
  assert ev.parse_dataset("/d/a@b/x.jsonl") == ("/d/a@b/x.jsonl", None)
  with pytest.raises(ValueError, match="limit >= 1"):
    ev.parse_dataset("aime24@0")


def test_pass_ks():
  assert ev.pass_ks((), 4) == [1, 2, 4]
  assert ev.pass_ks((), 6) == [1, 2, 4, 6]
  assert ev.pass_ks((8, 1, 8), 16) == [1, 8]
  with pytest.raises(ValueError, match="only n=4 samples"):
    ev.pass_ks((1, 8), 4)


def test_choose_checker():
  assert ev.choose_checker("arithmetic", [{"question": "q", "answer": "1"}]) == "arithmetic"
  assert ev.choose_checker("gsm8k", [{"question": "q", "answer": "1"}]) == "accuracy"
  rec = {"question": "q", "answer": "6", "numbers": [1, 5], "target": 6}
  assert ev.choose_checker("x.jsonl", [rec]) == "countdown"
  assert ev.choose_checker("x.jsonl", [rec], "accuracy") == "accuracy"
  with pytest.raises(ValueError, match="config.data.checker"):
    ev.choose_checker("x.jsonl", [rec], "exact")


M = 40  # new tokens: the tiny base's completions take ~30


def _config(tmp_path, **data):
  c = eval_math.get_config()
  c.data.datasets = ("arithmetic:test@4",)
  c.sampling.num_samples = 2
  c.sampling.max_new_tokens = M
  c.sampling.prompts_per_batch = 2
  c.data.update(data)
  return c


@pytest.mark.parametrize("change, error, match", [
    (lambda c: c.sampling.update(num_samples=0), ValueError, "num_samples=0"),
    (lambda c: c.metrics.update(pass_at_k=(1, 4)), ValueError, "only n=2 samples"),
    (lambda c: c.data.update(datasets=("gsm9k:test",)), ValueError, "unknown prompt dataset"),
    (lambda c: c.data.update(datasets=("nowhere.jsonl",)), FileNotFoundError, "nowhere.jsonl"),
    (lambda c: c.data.update(datasets=()), ValueError, "datasets is empty"),
    (lambda c: c.data.update(checker="exact"), ValueError, "config.data.checker"),
    (lambda c: c.data.update(answer_mode="loose"), ValueError, "config.data.answer_mode"),
    (lambda c: c.update(init_from="/does/not/exist"), FileNotFoundError, "init_from"),
    (lambda c: c.update(select_fn="no_such_module:f"), ValueError, "config.select_fn"),
])
def test_bad_config_fails_clearly(tmp_path, change, error, match):
  c = _config(tmp_path)
  change(c)
  with pytest.raises(error, match=match):
    ev.evaluate(c, str(tmp_path / "out"))
  assert not os.path.exists(tmp_path / "out" / "eval.json")


def test_empty_dataset_fails_clearly(tmp_path):
  empty = tmp_path / "empty.jsonl"
  empty.write_text("")
  with pytest.raises(ValueError, match="has no records"):
    ev.evaluate(_config(tmp_path, datasets=(str(empty),)), str(tmp_path / "out"))


def test_load_model_from_an_r1jax_workdir(tmp_path):
  c = eval_math.get_config()
  mesh = ev.make_mesh(dict(c.mesh))
  cfg, weights = ev.load_model(c, mesh)  # the shipped Hugging Face directory
  ckpt = ckpt_lib.Checkpointer(str(tmp_path), async_save=False)
  ckpt.save(7, dict(weights, step=jax.numpy.zeros((), jax.numpy.int32)),
            {"model": loading.model_config_dict(cfg)})
  ckpt.close()
  c.init_from = str(tmp_path)
  cfg2, weights2 = ev.load_model(c, mesh)
  assert cfg2 == cfg
  np.testing.assert_array_equal(weights2["params"]["embed"], weights["params"]["embed"])
  c.init_from = str(tmp_path / "checkpoints")  # neither kind of checkpoint
  with pytest.raises(FileNotFoundError, match="neither"):
    ev.load_model(c, mesh)


# ------------------------------------------------------------------------ end to end


def _oracle(prompts, completions):
  """A toy reward model that knows arithmetic: 1 for a right answer in <answer>/\\boxed{},
  0.5 for one only standard mode finds; so it ranks a right sample first in either mode."""
  out = []
  for p, comp in zip(prompts, completions):
    a, b = map(int, re.findall(r"What is (\d+) \+ (\d+)\?", p)[-1])
    right = [ev.CHECKERS["arithmetic"](find_answer(comp, mode)[0]) == str(a + b)
             for mode in ("strict", "standard")]
    out.append(right[0] + 0.5 * right[1])
  return out


def _read_jsonl(path):
  with open(path) as f:
    return [json.loads(line) for line in f]


def test_evaluate_end_to_end(tmp_path):
  jsonl = tmp_path / "sums.jsonl"
  jsonl.write_text('{"question": "What is 12 + 30?", "answer": "42"}\n'
                   '{"question": "What is 25 + 25?", "answer": "50"}\n')
  c = _config(tmp_path, datasets=("arithmetic:test@4", str(jsonl)))
  out = ev.evaluate(c, str(tmp_path / "run"), select_fn=_oracle)
  run = tmp_path / "run"
  assert json.loads((run / "eval.json").read_text())["datasets"] == out["datasets"]
  samples = _read_jsonl(run / "samples.jsonl")
  assert len(samples) == 4 * 2 + 2 * 2
  md = (run / "eval.md").read_text()
  assert "| dataset | problems | pass@1 | cons@2 | pass@2 | best_of_2 | format |" in md
  assert "| arithmetic:test@4 | 4 |" in md and f"| {jsonl} | 2 |" in md

  for spec, checker in (("arithmetic:test@4", "arithmetic"), (str(jsonl), "accuracy")):
    m, rows = out["datasets"][spec], [s for s in samples if s["dataset"] == spec]
    assert m["checker"] == checker and m["checker_errors"] == 0
    for key in ("pass@1", "cons@2", "pass@2", "best_of_2", "format", "answered",
                "finish/stop", "finish/length"):
      assert 0.0 <= m[key] <= 1.0, key
    assert math.isclose(m["finish/stop"] + m["finish/length"], 1.0)
    assert 0 < m["mean_length"] <= M and all(1 <= s["length"] <= M for s in rows)
    # Everything recomputed from samples.jsonl.
    assert math.isclose(m["pass@1"], np.mean([s["correct"] for s in rows]))
    groups = collections.defaultdict(list)
    for s in rows:
      groups[s["problem"]].append(s)
    assert sorted(len(g) for g in groups.values()) == [2] * m["problems"]
    assert math.isclose(m["pass@2"], np.mean([any(s["correct"] for s in g)
                                              for g in groups.values()]))
    assert m["best_of_2"] == m["pass@2"]  # the oracle picks a right sample when there is one
    votes = [_majority_by_counting([s["vote"] for s in g]) for g in groups.values()]
    assert math.isclose(m["cons@2"], np.mean(
        [v is not None and next(s["correct"] for s in g if s["vote"] == v)
         for v, g in zip(votes, groups.values())]))
    assert math.isclose(m["format"], np.mean([s["format"] for s in rows]))
    assert math.isclose(m["answered"], np.mean([s["answer"] is not None for s in rows]))
    # Why each sample counted: the mode, and where its answer was found.
    mode = "strict" if checker == "arithmetic" else "standard"
    assert m["answer_mode"] == mode and all(s["answer_mode"] == mode for s in rows)
    assert all((s["found_by"] is None) == (s["answer"] is None) for s in rows)
    assert all(s["found_by"] in (("answer_tag", "boxed", None) if mode == "strict" else
                                 ("answer_tag", "boxed", "latex_final", "expr_final", "whole"))
               for s in rows)
    if mode == "standard":
      assert all(s["correct"] == math_equal(s["completion"], s["gold"], mode="standard")
                 for s in rows)
    if checker == "arithmetic":
      assert all(s["correct"] == (ev.CHECKERS["arithmetic"](s["answer"]) == s["gold"])
                 for s in rows)

  # Same config and seed: the same completions.
  ev.evaluate(c, str(tmp_path / "again"), select_fn=_oracle)
  again = _read_jsonl(tmp_path / "again" / "samples.jsonl")
  assert [s["completion"] for s in again] == [s["completion"] for s in samples]


def test_select_fn_must_score_every_completion(tmp_path):
  c = _config(tmp_path)
  with pytest.raises(ValueError, match="one finite number per completion"):
    ev.evaluate(c, str(tmp_path / "out"), select_fn=lambda p, comps: [0.0])
