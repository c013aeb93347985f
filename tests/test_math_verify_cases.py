"""Answer checking against math-verify's own regression cases, and the two answer modes.

tests/data/math_verify_cases.json holds the (gold, pred, expected) triples of math-verify's
tests/test_all.py (its MIT notice, source path and commit are in the file). Standard mode
must agree with at least AGREEMENT of them, as math-verify's own default pipeline does
(185 of 190); strict mode, the checker GRPO rewards with (and r1jax's only one before),
agrees with 157 and must stay below the bar, so the bar tells the two apart. The rest
checks what standard mode adds (locale numbers, rounding, set-relation comparison, the
final answer of untagged text), the guard that keeps "8n^2 + 4n + 1" from matching "1",
and the hostile-input and deadline guarantees of tests/test_fuzz.py in standard mode too.
"""

import concurrent.futures
import json
import os
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from r1jax.rewards import REWARDS, get_reward
from r1jax.rewards.math import (ANSWER_MODES, MAX_TEXT_CHARS, _tagged, accuracy_reward,
                                accuracy_standard_reward, extract_answer, find_answer,
                                math_equal)
from tests.test_fuzz import (FAST_S, HOSTILE, PROMPT, SLACK_S, TIMEOUT_S, _timed, _worker_ok,
                             answer_like, fuzz, golds, hostile_text)

AGREEMENT = 0.97

with open(os.path.join(os.path.dirname(__file__), "data", "math_verify_cases.json")) as f:
  DATA = json.load(f)
CASES = DATA["cases"]


def _disagreements(mode: str) -> list[str]:
  """One line per case where math_equal(pred, gold, mode=mode) is not the expected verdict."""
  out = []
  for i, c in enumerate(CASES):
    if math_equal(c["pred"], c["gold"], mode=mode) is not c["expected"]:
      out.append(f"#{i} {c['test']} {c['settings']}: expected {c['expected']}; gold "
                 f"{c['gold'][:70]!r}, pred ...{c['pred'][-70:]!r}")
  return out


def test_data_file():
  assert DATA["count"] == len(CASES) == 190
  assert DATA["path"] == "tests/test_all.py" and len(DATA["commit"]) == 40
  assert "MIT License" in DATA["license"] and "HuggingFace" in DATA["license"]
  assert all(type(c["expected"]) is bool for c in CASES)


def test_standard_mode_agrees_with_math_verify():
  bad = _disagreements("standard")
  agreement = 1 - len(bad) / len(CASES)
  assert agreement >= AGREEMENT, (
      f"standard mode agrees on {len(CASES) - len(bad)} of {len(CASES)} math-verify cases "
      f"({agreement:.1%} < {AGREEMENT:.0%}); disagreements:\n" + "\n".join(bad))


def test_strict_mode_stays_below_the_bar():
  """Strict mode reads only <answer>/\\boxed{} and LaTeX: the bar must tell it apart."""
  bad = _disagreements("strict")
  assert 1 - len(bad) / len(CASES) < AGREEMENT, len(bad)


# ------------------------------------------------------------------------ standard mode

STANDARD_CASES = [
    # locale and spacing in plain numbers, currency and units
    ("1 000", "1000", True), ("1,22", "1.22", True), ("1000,99", "1000.99", True),
    ("Soucis : 2,74 $ a..", "2.74", True), ("1,000.99€", "1000.99", True),
    ("so the number is 10 which is 1,000.99m²", "1000.99", True), ("0,111", "111", False),
    ("1,000", "1000", True), ("1,001", "1000", False), ("$18", "18", True),
    # rounding to the decimals written (2 to 6)
    ("$(0.6,2.6667]$", "(\\frac{3}{5},\\frac{8}{3}]", True),
    ("$\\begin{pmatrix}0.33\\\\0.2 \\end{pmatrix}$",
     "\\begin{pmatrix}\\frac{1}{3}\\\\ \\frac{1}{5} \\end{pmatrix}", True),
    ("0.33", "\\frac{1}{3}", True), ("0.3", "\\frac{1}{3}", False), ("1.5", "1.50001", False),
    ("0.0833333333333333", "\\frac{1}{12}", True),
    # an inequality against an interval
    ("$-2 \\le x \\le 7$", "x \\in [-2,7]", True), ("$-2 < x \\le 7$", "x \\in [-2,7]", False),
    # the final answer of a whole solution, without tags or boxes
    ("... so 2n + 1 < 70. Final Answer: The largest $n$ is 34.", "34", True),
    ("9=189.\n\nTherefore, answer is 189.\n\nAnother thought: 5 cm", "189", True),
    ("The final answer is $\\frac{10\\sqrt{10.5}}{27}$. I hope it is correct.",
     "\\frac{10\\sqrt{10.5}}{27}", True),
    ("Therefore, the probability that Alice wins is 2/3. <|im_start|>user", "\\frac23", True),
    # arithmetic left undone is not an answer to a plain-number gold (math-verify: True)
    ("Answer \\( (9+1) \\)", "10", False), ("37 + 94 = ?", "131", False),
    ("So 37 + 94 = 131.", "131", True),
    # the guard: a number of a larger formula is not the answer, nor any earlier one
    ("8n^2 + 4n + 1", "1", False), ("8n^2 + 4n + 1", "8n^2+4n+1", True),
    ("3x", "3", False), ("2, 3", "3", False), ("-2, 1", "1,-2", True),
    ("2\\sqrt{2}", "2", False), ("2\\sqrt{2}", "\\sqrt{8}", True), ("x^2", "2", False),
    ("so it is 4 \\sin b", "4", False), ("the 5-year total is 7", "7", True),
    ("The closed form is 8n^2 + 4n + 1", "1", False),
    ("3 apples and 4 pears", "4", True),  # prose: the last number, as math-verify reads it
    # MATH's "-2,1" is a list; math-verify's plain text reads it as -2.1: either counts
    ("\\boxed{-2, 1}", "-2,1", True), ("\\boxed{1,-2}", "-2,1", True),
    # several final boxes make one answer
    ("\\[ \\boxed{-2} \\quad \\text{and} \\quad \\boxed{1}. \\]", "1,-2", True),
    ("$\\boxed{1}$ and $\\boxed{2}$", "\\{1, 2\\}", True),
    ("\\boxed{1} is wrong, so \\boxed{2}", "2", True),
    # R1's format still comes first
    ("<think>1</think> <answer> 5 </answer> \\boxed{6}", "5", True),
    ("<answer>The answer is 18 dollars.</answer>", "18", True),
    ("The answer is $\\boxed{\\frac{\\pi r}{h+r}}$. Final answer: 2", "\\frac{\\pi r}{h+r}", True),
    ("", "3", False), ("no answer here", "3", False), ("\\frac{1}{", "0.5", False),
]


@pytest.mark.parametrize("pred, gold, expected", STANDARD_CASES)
def test_standard_mode(pred, gold, expected):
  assert math_equal(pred, gold, mode="standard") is expected


@pytest.mark.parametrize("text, strict, standard", [
    ("<think>x</think> <answer> 42 </answer>", ("42", "answer_tag"), ("42", "answer_tag")),
    ("so \\boxed{3} and finally \\boxed{5}.", ("5", "boxed"), ("5", "boxed")),
    ("$\\boxed{1}$, $\\boxed{2}$", ("2", "boxed"), ("1, 2", "boxed")),
    ("Final Answer: The largest $n$ is 34.", (None, None), ("34", "expr_final")),
    ("The answer is $\\frac{1}{2}$ and that is all", (None, None), ("\\frac{1}{2}", "latex_final")),
    ("8n^2 + 4n + 1", (None, None), ("8n^2 + 4n + 1", "whole")),
    ("", (None, None), (None, None)),
    (None, (None, None), (None, None)),
])
def test_find_answer(text, strict, standard):
  assert find_answer(text) == find_answer(text, "strict") == strict
  assert find_answer(text, "standard") == standard
  if strict[0] is not None:
    assert extract_answer(text) == strict[0]


def test_modes_are_checked():
  assert ANSWER_MODES == ("strict", "standard")
  for fn in (lambda: math_equal("1", "1", mode="lenient"), lambda: find_answer("1", "x"),
             lambda: accuracy_reward([PROMPT], ["1"], answer=["1"], answer_mode="")):
    with pytest.raises(ValueError, match="answer mode"):
      fn()


def test_accuracy_reward_modes():
  completions = ["<think>2+3</think> <answer>5</answer>", "<answer>\\frac{10}{2}</answer>",
                 "<answer>6</answer>", "no answer 5", "\\boxed{5}", "2 + 3 = 5. Answer: 5",
                 "<think>the answer is 5</think>", "x + 5"]
  strict = [1, 0, 0, 0, 1, 0, 0, 0]  # \\frac{10}{2}: an integer left as a division
  standard = [1, 0, 0, 1, 1, 1, 1, 0]
  prompts, golds_ = [PROMPT] * len(completions), ["5"] * len(completions)
  assert accuracy_reward(prompts, completions, answer=golds_) == strict
  assert REWARDS["accuracy"](prompts, completions, answer=golds_) == strict
  assert accuracy_reward(prompts, completions, answer=golds_, answer_mode="standard") == standard
  assert get_reward("accuracy_standard") is accuracy_standard_reward
  assert accuracy_standard_reward(prompts, completions, answer=golds_) == standard
  with pytest.raises(ValueError):  # one gold per completion
    accuracy_standard_reward(prompts[:2], completions[:2], answer=["5"])


def test_untagged_text_is_searched_from_its_end():
  filler = "We try 7 and 8 first. " * (2 * MAX_TEXT_CHARS // 22)
  assert math_equal(filler + "Therefore, the answer is 42.", "42", mode="standard")
  assert not math_equal("Final answer: 42. " + filler, "42", mode="standard")  # too far back
  assert math_equal(filler + "\\boxed{42}" + filler, "42", mode="standard")  # boxes: anywhere


# ------------------------------------------------------------------------ hostile input


def test_standard_extraction_is_linear():
  """The in-process part of standard mode (tags, boxes and joined boxes) on long texts:
  CPU time ~0.1 s when linear, minutes if quadratic."""
  texts = ["\\boxed{1}" * 100_000, "\\boxed{1} and " * 50_000, "\\boxed{" * 100_000 + "}",
           "\\boxed{1}" + " and" * 200_000, "$\\boxed{1}$, " * 50_000 + "x",
           "\\boxed{{}" * 50_000, "}\\boxed{1}" * 50_000]
  start = time.thread_time()
  for text in texts:
    _tagged(text, join_boxes=True)
  assert time.thread_time() - start < FAST_S


def _check_standard(pred, gold) -> bool:
  """tests/test_fuzz.py's math_equal property, in standard mode: a bool within the
  deadline + SLACK_S (the worker just seen to answer, so no restart counts), and a
  find_answer of the same text within the same bound."""
  _worker_ok()
  out, secs = _timed(math_equal, pred, gold, timeout=TIMEOUT_S, mode="standard")
  assert type(out) is bool and secs < TIMEOUT_S + SLACK_S, secs
  _worker_ok()
  found, secs = _timed(find_answer, pred, "standard", timeout=TIMEOUT_S)
  assert type(found) is tuple and len(found) == 2 and secs < TIMEOUT_S + SLACK_S, secs
  assert found[0] is None or type(found[0]) is str
  return out


@pytest.mark.parametrize("name", HOSTILE)
def test_standard_mode_hostile(name):
  text = HOSTILE[name]
  _check_standard(text, "1")
  _check_standard("1", text)
  _worker_ok()
  assert math_equal("The answer is $\\frac{2}{4}$.", "0.5", mode="standard") is True


@fuzz(150)
@given(answer_like | hostile_text, golds | answer_like)
def test_fuzz_standard_mode(pred, gold):
  _check_standard(pred, gold)


def test_standard_mode_timeout_and_threads():
  _worker_ok()
  with concurrent.futures.ThreadPoolExecutor(4) as pool:
    start = time.monotonic()
    slow = pool.submit(math_equal, "So the answer is $9^{9^{9^{9^{9}}}}$.", "1", timeout=1.0,
                       mode="standard")
    assert slow.result() is False
    assert time.monotonic() - start < 1.0 + 1.5
    cases = STANDARD_CASES[:24]
    results = list(pool.map(lambda c: math_equal(c[0], c[1], mode="standard"), cases))
  assert results == [c[2] for c in cases]
  assert math_equal("\\frac{2}{4}", "0.5", mode="strict")  # a fresh worker took over


@fuzz(30)
@given(st.sampled_from(["The answer is ", "Answer: ", "Final Answer: The final answer is ",
                        "so "]),
       st.sampled_from(["18", "1,000", "0.5", "\\frac{1}{2}", "-7"]))
def test_only_standard_mode_reads_untagged_text(prefix, answer):
  """R1's format rule: strict mode credits no answer outside <answer>/\\boxed{}."""
  text = prefix + answer + "."
  assert find_answer(text) == (None, None)
  assert accuracy_reward([PROMPT], [text], answer=[answer]) == [0.0]
  assert accuracy_reward([PROMPT], [text], answer=[answer], answer_mode="standard") == [1.0]
  assert find_answer(text, "standard")[1] in ("latex_final", "expr_final")
