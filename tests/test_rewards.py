"""Rule rewards: answer extraction, math-verify equivalence with its deadline, format,
countdown, language consistency, and the weighted registry that must survive bad rewards."""

import concurrent.futures
import fractions
import json
import logging
import math
import os
import random
import time

import pytest

from r1jax import rewards
from r1jax.data.datasets import DATA_DIR
from r1jax.data.templates import r1_chat_prompt, r1_zero_prompt
from r1jax.rewards import REWARDS, combine, get_reward, score
from r1jax.rewards import countdown, format as fmt, language
from r1jax.rewards import math as math_mod
from r1jax.rewards.math import (ANSWER_MODES, accuracy_reward, accuracy_standard_reward,
                                extract_answer, gsm8k_gold, math_equal)

PROMPT = r1_zero_prompt("What is 2 + 3?")


def _jsonl(name: str) -> list[dict]:
  """Rows of data/<name>; the data ships with the repository, so a missing file fails."""
  with open(os.path.join(DATA_DIR, name)) as f:
    return [json.loads(line) for line in f]


# ------------------------------------------------------------------------ extraction


@pytest.mark.parametrize("text, expected", [
    ("<think>x</think> <answer> 42 </answer>", "42"),
    ("<answer>1</answer> then <answer>2</answer>", "2"),  # the last one
    ("<answer>\n\\frac{1}{2}\n</answer>", "\\frac{1}{2}"),
    ("<answer>\\boxed{7}</answer> \\boxed{8}", "\\boxed{7}"),  # tags win over \boxed
    ("<answer></answer>", ""),
    ("so \\boxed{3} and finally \\boxed{5}.", "5"),
    ("$\\boxed{\\frac{1}{\\sqrt{2}}}$", "\\frac{1}{\\sqrt{2}}"),  # nested braces
    ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),  # escaped braces are not structure
    ("\\boxed{a{b{c}}d}", "a{b{c}}d"),
    ("\\boxed 5$.", "5"),
    ("\\boxed {9}", "9"),
    ("\\fbox{x = 2}", "x = 2"),
    ("\\boxed{1} and a truncated \\boxed{2", "1"),  # the last complete box
    ("<answer>unclosed \\boxed{4}", "4"),
    ("\\boxedx{3}", None),
    ("the answer is 42", None),
    ("", None),
    (None, None),
])
def test_extract_answer(text, expected):
  assert extract_answer(text) == expected


def test_gsm8k_gold():
  assert gsm8k_gold("She makes 9 * 2 = $<<9*2=18>>18.\n#### 18") == "18"
  assert gsm8k_gold("... #### 1,800") == "1800"
  with pytest.raises(ValueError, match="####"):
    gsm8k_gold("no final line 18")


# ------------------------------------------------------------------------ math_equal

MATH_EQUAL_CASES = [
    # numbers and thousands separators
    ("1,000", "1000", True), ("1000", "1,000", True), ("1,001", "1000", False),
    ("18.0", "18", True), ("18.", "18", True), ("-18", "18", False),
    ("1000000000000000001", "1000000000000000000", False),  # no float rounding of integers
    ("$18", "18", True), ("\\$18", "18", True), ("$18$", "18", True),
    ("18 dollars", "18", True), ("3 apples and 4 pears", "4", False),
    # fractions and decimals
    ("\\frac{1}{2}", "0.5", True), ("\\dfrac12", "\\frac{1}{2}", True), ("1/2", "0.5", True),
    ("0.5", "\\frac12", True), ("\\frac{1}{3}", "0.333", False), ("1.5", "1.50001", False),
    # LaTeX expressions
    ("2\\sqrt{2}", "\\sqrt{8}", True), ("\\sqrt{2}/2", "\\frac{1}{\\sqrt{2}}", True),
    ("\\sqrt{3}", "\\sqrt{2}", False), ("10^3", "1000", True), ("2^{10}", "1,024", False),
    ("\\pi/2", "\\frac{\\pi}{2}", True), ("-\\frac{\\pi}{6}", "-\\frac{\\pi}{6}", True),
    ("6-5i", "6 - 5i", True), ("p-q", "p - q", True), ("q-p", "p - q", False),
    ("x^5 - x^4 + x^3 - x^2 + x - 1", "x^5 - x^4 + x^3 - x^2 + x - 1", True),
    # percentages, units, degrees
    ("50\\%", "50", True), ("50%", "50", True), ("50\\%", "0.05", False),
    ("5 \\text{ cm}", "5", True), ("90", "90^\\circ", True),
    # sets, tuples, intervals
    ("\\{1,2\\}", "\\{2,1\\}", True), ("{1,2}", "\\{2,1\\}", True), ("-2, 1", "1,-2", True),
    ("(0,1]", "(0,1]", True), ("(0,1)", "(0,1]", False), ("[0,1]", "(0,1]", False),
    ("x \\in [1, 2]", "[1,2]", True),
    ("(3, \\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)", True),
    # equations, boxed and text answers
    ("x=3", "3", True), ("3", "x=3", True), ("x=4", "3", False),
    ("\\boxed{7}", "7", True), ("The answer is \\boxed{7}.", "7", True),
    ("\\text{Evelyn}", "\\text{Evelyn}", True), ("C", "\\text{(C)}", True),
    ("B", "\\text{(C)}", False),
    # math-verify's plain-text reader would take the last number of these
    ("8n^2 + 4n + 1", "1", False), ("3x", "3", False), ("2, 3", "3", False),
    # garbage
    ("", "3", False), ("   ", "3", False), (None, "3", False), ("\\frac{1}{", "0.5", False),
    ("4", "3", False),
]


@pytest.mark.parametrize("pred, gold, expected", MATH_EQUAL_CASES)
def test_math_equal(pred, gold, expected):
  assert math_equal(pred, gold) is expected


def test_math_equal_gsm8k_golds():
  golds = [gsm8k_gold(r["answer"]) for r in _jsonl("gsm8k/test.jsonl")[::10]]
  assert len(golds) > 100
  for g in golds:
    assert math_equal(g, g), g
    assert math_equal(f"\\boxed{{{g}}}", g), g  # through math-verify, not the fast path
    assert not math_equal(str(fractions.Fraction(g) + 1), g), g


def test_math_equal_math500_golds():
  golds = [r["answer"] for r in _jsonl("math500/test.jsonl")[::2]]
  assert len(golds) >= 250
  assert [g for g in golds if not math_equal(g, g)] == []
  assert [g for g in golds if not math_equal(f"The answer is $\\boxed{{{g}}}$.", g)] == []
  assert [g for g in golds if math_equal(g + " + 1", g)] == []


PATHOLOGICAL = "9^{9^{9^{9^{9}}}}"  # SymPy tries to evaluate the tower: minutes without a limit


def test_math_equal_timeout_main_thread():
  assert math_equal("1", "\\frac{2}{2}")  # worker up before timing
  start = time.monotonic()
  assert math_equal(PATHOLOGICAL, "1", timeout=1.0) is False
  assert time.monotonic() - start < 1.0 + 1.5
  assert math_equal("\\frac{2}{4}", "0.5")  # a fresh worker took over


def test_math_equal_timeout_other_thread():
  with concurrent.futures.ThreadPoolExecutor(4) as pool:
    start = time.monotonic()
    slow = pool.submit(math_equal, "(10^{10})!", "1", timeout=1.0)
    assert slow.result() is False
    assert time.monotonic() - start < 1.0 + 1.5
    # concurrent callers are serialised, and each gets its own answer
    cases = [c for c in MATH_EQUAL_CASES if c[0] is not None][:24]
    results = list(pool.map(lambda c: math_equal(c[0], c[1]), cases))
  assert results == [c[2] for c in cases]


def test_accuracy_reward():
  completions = ["<think>2+3</think> <answer>5</answer>", "<answer>\\frac{10}{2}</answer>",
                 "<answer>6</answer>", "no answer 5", "\\boxed{5}"]
  assert accuracy_reward([PROMPT] * 5, completions, answer=["5"] * 5) == [1, 0, 0, 0, 1]
  with pytest.raises(ValueError):  # one gold per completion
    accuracy_reward([PROMPT] * 2, completions[:2], answer=["5"])


# ------------------------------------------------------------------------ format


@pytest.mark.parametrize("completion, expected", [
    ("<think>2 + 3 = 5</think><answer>5</answer>", 1.0),
    (" <think>\nadd them\n</think>\n\n<answer> 5 </answer>\n", 1.0),
    ("<think>a</think> <answer>5</answer><｜end▁of▁sentence｜>", 1.0),  # stop token decoded
    ("<think>a</think> <answer>5</answer></s>", 1.0),
    ("<think>a</think> <answer>5</answer> <|endoftext|>", 1.0),
    ("<think>a</think> <answer>5</answer> so 5", 0.0),  # text after </answer>
    ("<answer>5</answer>", 0.0),  # missing think
    ("<think>a</think>", 0.0),  # missing answer
    ("<think>a</think> 5", 0.0),
    ("<answer>5</answer> <think>a</think>", 0.0),  # wrong order
    ("<think>a</think><think>b</think><answer>5</answer>", 0.0),  # duplicate tags
    ("<think>a</think><answer>5</answer><answer>6</answer>", 0.0),
    ("<think>a <think> b</think><answer>5</answer>", 0.0),  # nested
    ("<think>a</think><answer> </answer>", 0.0),  # empty answer
    ("<think></think><answer>5</answer>", 0.0),  # empty reasoning
    ("intro <think>a</think><answer>5</answer>", 0.0),  # text before <think>
    ("<think>a</think><answer>5", 0.0),  # truncated
    ("", 0.0),
])
def test_format_reward(completion, expected):
  assert fmt.format_reward([PROMPT], [completion]) == [expected]


def test_format_reward_think_prefilled():
  prompt = r1_zero_prompt("What is 2 + 3?", prefill_think=True)
  assert fmt.think_is_prefilled(prompt) and not fmt.think_is_prefilled(PROMPT)
  inside = " 2 + 3 = 5 </think> <answer> 5 </answer>"
  assert fmt.format_reward([prompt], [inside]) == [1.0]  # inferred from the prompt
  assert fmt.format_reward([prompt], ["<think>" + inside]) == [0.0]  # opened twice
  assert fmt.format_reward([PROMPT], [inside], think_prefilled=True) == [1.0]
  assert fmt.format_reward([prompt], [inside], think_prefilled=False) == [0.0]
  assert fmt.format_reward([prompt], [" </think> <answer>5</answer>"]) == [0.0]  # no reasoning
  chat = r1_chat_prompt([{"role": "user", "content": "What is 2 + 3?"}])
  assert fmt.format_reward([chat], ["add\n</think>\n<answer>5</answer>"]) == [1.0]


def test_tag_count_reward():
  completions = ["<think>a</think><answer>5</answer>", "<think>a</think> 5",
                 "<think>a</think><think>b</think><answer>5</answer>", "5", ""]
  assert fmt.tag_count_reward([PROMPT] * 5, completions) == [1.0, 0.5, 0.5, 0.0, 0.0]
  prompt = r1_zero_prompt("q", prefill_think=True)
  assert fmt.tag_count_reward([prompt] * 2, ["a</think><answer>5</answer>",
                                             "<think>a</think><answer>5</answer>"]) == [1.0, 0.75]


DEGENERATE = ["</think>" * 20_000, "<answer>" * 20_000, "<think>a" + " " * 100_000 + "!",
              "<think>a</think><answer>5</answer>" + " </s>" * 20_000 + " x",
              "\\boxed{" * 20_000, "1 " + "aa " * 30_000 + "1", "中a" * 50_000]


def test_rule_rewards_are_fast_on_degenerate_text():
  # CPU time of this thread only: ~0.1 s when linear, minutes if any reward were
  # quadratic in these 100k-character texts. Wall time failed spuriously in CI when
  # threads left by earlier tests competed for the two cores.
  start = time.thread_time()
  for text in DEGENERATE:
    assert fmt.format_reward([PROMPT], [text]) == [0.0]
    fmt.tag_count_reward([PROMPT], [text])
    extract_answer(text)
    language.language_consistency_reward([PROMPT], [text])
  assert time.thread_time() - start < 1.0


# ------------------------------------------------------------------------ countdown


def _answer(expr: str) -> str:
  return f"<think>try</think> <answer>{expr}</answer>"


@pytest.mark.parametrize("expr, numbers, target, expected", [
    ("55 + 36 - 7 - 19", [19, 36, 55, 7], 65, 1.0),
    ("(55 + 36 - 7 - 19)", [19, 36, 55, 7], 65, 1.0),
    ("55 + 36 − 7 − 19", [19, 36, 55, 7], 65, 1.0),  # unicode minus
    ("55 + 36 - 7 - 19 = 65", [19, 36, 55, 7], 65, 1.0),
    ("55 + 36 - 7 - 19 = 64", [19, 36, 55, 7], 65, 0.0),  # a false claim
    ("55 + 36 - 7 - 19 = 65 = 65", [19, 36, 55, 7], 65, 0.0),
    ("55 + 36 - 7 + 19", [19, 36, 55, 7], 65, 0.0),  # wrong value
    ("(3 × 4) ÷ 2 + 1", [1, 2, 3, 4], 7, 1.0),
    ("(3 \\times 4) \\div 2 + 1", [1, 2, 3, 4], 7, 1.0),
    ("3 * (4 - 2) / 1", [1, 2, 3, 4], 6, 1.0),
    ("-(2 - 9) + 1", [1, 2, 9], 8, 1.0),  # unary minus
    ("3 + 5", [3, 5, 7], 8, 0.0),  # 7 unused, and use_all is the default
    ("5 + 5 - 2", [5, 2, 9], 8, 0.0),  # 5 used twice
    ("10 - 2", [5, 2, 9], 8, 0.0),  # 10 is not given
    ("4 / (2 - 2) + 0", [4, 2, 2, 0], 0, 0.0),  # division by zero
    ("(7 / 2) * 2", [7, 2, 2], 7, 1.0),  # non-integer intermediates are allowed
    ("7 2 2", [7, 2, 2], 7, 0.0),
    ("7 + (2 * 2", [7, 2, 2], 11, 0.0),
    ("", [7], 7, 0.0),
])
def test_countdown_reward(expr, numbers, target, expected):
  assert countdown.countdown_reward([""], [_answer(expr)], numbers=[numbers],
                                    target=[target]) == [expected]


def test_countdown_flags_and_field_formats():
  assert countdown.countdown_reward([""], [_answer("3 + 5")], numbers=[[3, 5, 7]], target=[8],
                                    use_all=False) == [1.0]
  assert countdown.countdown_reward([""], [_answer("5 + 5 - 2")], numbers=[[5, 2, 9]],
                                    target=[8], use_all=False) == [0.0]
  assert countdown.check_countdown("(7 / 2) * 2", [7, 2, 2], 7, allow_fractions=False) is False
  assert countdown.check_countdown("(8 / 2) * 2", [8, 2, 2], 8, allow_fractions=False) is True
  assert countdown.check_countdown("19 + 36 + 10", "[19, 36, 10]", "65") is True
  assert countdown.countdown_reward([""], ["55 + 36 - 7 - 19"], numbers=[[19, 36, 55, 7]],
                                    target=[65]) == [0.0]  # no answer tags


MALICIOUS = [
    "__import__('os').system('echo pwned')", "2**99999999", "9**9**9**9", "2 ^ 99999999",
    "1e999", "0x10", "1_000", "lambda: 1", "open('/etc/passwd')", "(1).__class__",
    "9" * 10_000, "1" + "+1" * 5_000, "(" * 5_000 + "1" + ")" * 5_000,
    "(" * 60 + "1" + ")" * 60, "-" * 100 + "1", "1 / 0", "1 % 1", "", "   ",
]


def test_countdown_rejects_malicious_strings_quickly():
  start = time.thread_time()  # CPU time, see above
  for expr in MALICIOUS:
    out = countdown.countdown_reward([""], [_answer(expr)], numbers=[[1, 2, 9, 99999999]],
                                     target=[1])
    assert out == [0.0], expr
    assert countdown.check_countdown(expr, [1, 2], 1) is False
  assert time.thread_time() - start < 0.5


def test_evaluate_errors_say_what_is_wrong():
  with pytest.raises(ValueError, match="division by zero"):
    countdown.evaluate("1 / (2 - 2)")
  with pytest.raises(ValueError, match="MAX_EXPR_CHARS"):
    countdown.evaluate("1+" * 200 + "1")
  with pytest.raises(ValueError, match="MAX_DEPTH"):
    countdown.evaluate("(" * 40 + "1" + ")" * 40)
  with pytest.raises(ValueError, match="unexpected"):
    countdown.evaluate("2 ** 3")
  with pytest.raises(ValueError, match="not an integer"):
    countdown.evaluate("7 / 2", allow_fractions=False)


def _random_expression(rng: random.Random, numbers: list[int]) -> tuple[str, fractions.Fraction]:
  """A fully parenthesised expression over `numbers` and its value, built side by side."""
  if len(numbers) == 1:
    return str(numbers[0]), fractions.Fraction(numbers[0])
  k = rng.randint(1, len(numbers) - 1)
  (a, x), (b, y) = _random_expression(rng, numbers[:k]), _random_expression(rng, numbers[k:])
  op = rng.choice("+-*/" if y else "+-*")
  value = {"+": x + y, "-": x - y, "*": x * y, "/": x / y if y else None}[op]
  return f"({a} {op} {b})", value


def test_evaluate_matches_exact_arithmetic():
  rng = random.Random(0)
  for _ in range(500):
    numbers = [rng.randint(1, 100) for _ in range(rng.randint(1, 6))]
    expr, value = _random_expression(rng, numbers)
    got, used = countdown.evaluate(expr)
    assert got == value and sorted(used) == sorted(numbers), expr
    assert countdown.check_countdown(expr, numbers[::-1], value) is True
    assert countdown.check_countdown(expr, numbers[::-1], value + 1) is False


def test_arithmetic_reward():
  completions = [_answer("85"), _answer(" 1,085 "), _answer("85.0"), "85", _answer("-3"),
                 _answer("eighty-five")]
  out = countdown.arithmetic_reward([""] * 6, completions,
                                    answer=["85", "1085", "85", "85", "-3", "85"])
  assert out == [1.0, 1.0, 0.0, 0.0, 1.0, 0.0]
  with pytest.raises(ValueError, match="integer gold"):
    countdown.arithmetic_reward([""], [_answer("1")], answer=["1.5"])


# ------------------------------------------------------------------------ language


@pytest.mark.parametrize("completion, lang, expected", [
    ("<think>First add the units, then carry the one.</think><answer>5</answer>", "en", 1.0),
    ("<think>We compute 这个 number</think>", "en", 3 / 5),  # 这 个 are two units
    ("<think>我们计算 x</think>", "zh", 4 / 5),
    ("<think>我们计算 x</think>", "en", 1 / 5),
    ("<think>\\frac{1}{2} 是 一半</think>", "zh", 1.0),  # LaTeX commands are not words
    ("<think>Café naïve résumé</think>", "en", 1.0),  # Latin letters with accents
    ("<think>Это English</think>", "en", 1 / 2),  # Cyrillic is another script
    ("<think>7 + 8 = 15 , 4 + 3 + 1 = 8</think>", "en", 1.0),  # no words: nothing wrong
    ("<think>  </think><answer>5</answer>", "en", 0.0),  # no reasoning
    (" add the digits </think><answer>5</answer>", "en", 1.0),  # prefilled <think>
    ("no tags at all, 全部", "en", 4 / 6),
])
def test_language_consistency(completion, lang, expected):
  got = language.language_consistency_reward([""], [completion], language=lang)
  assert got == [pytest.approx(expected)]


def test_language_per_completion_and_errors():
  completions = ["<think>你好</think>", "<think>hi</think>"]
  out = language.language_consistency_reward(["", ""], completions, language=["zh", "en"])
  assert out == [1.0, 1.0]
  with pytest.raises(ValueError, match="not supported"):
    language.language_consistency_reward([""], ["<think>bonjour</think>"], language="fr")


# ------------------------------------------------------------------------ registry


def test_registry_names_and_signatures():
  assert set(REWARDS) == {"accuracy", "accuracy_standard", "format", "tag_count", "countdown",
                          "arithmetic", "language", "code"}
  refs = dict(answer=["5", "5"], numbers=[[2, 3], [2, 3]], target=[5, 5],
              tests=[[{"input": "", "output": "5"}]] * 2)
  completions = ["<think>2 + 3</think> <answer>5</answer>",
                 "<think>2 + 3</think> <answer>2 + 3</answer>"]
  for name, fn in REWARDS.items():
    assert get_reward(name) is fn
    out = fn([PROMPT] * 2, completions, **refs)
    assert len(out) == 2 and all(0.0 <= v <= 1.0 for v in out), name
  assert REWARDS["countdown"]([PROMPT] * 2, completions, **refs) == [0.0, 1.0]
  # "2 + 3" is the question restated, not the answer 5 (math-verify alone says equal)
  assert REWARDS["accuracy"]([PROMPT] * 2, completions, **refs) == [1.0, 0.0]


def test_get_reward_suggests_closest_name():
  with pytest.raises(ValueError, match=r"did you mean 'accuracy'.*'format'"):
    get_reward("acuracy")
  with pytest.raises(ValueError, match="known rewards"):
    get_reward("zzz")


def test_score_weights_and_components():
  completions = ["<think>a</think><answer>5</answer>", "<think>a</think> 5", "<answer>4</answer>"]
  prompts = [PROMPT] * 3
  total, parts = score({"format": 0.5, "tag_count": 2.0, "accuracy": 0.0}, prompts, completions,
                       answer=["5", "5", "5"], cot=["x", "y", "z"])
  f = fmt.format_reward(prompts, completions)
  t = fmt.tag_count_reward(prompts, completions)
  assert parts["format"] == f == [1.0, 0.0, 0.0]
  assert parts["tag_count"] == t == [1.0, 0.5, 0.5]
  assert parts["accuracy"] == [1.0, 0.0, 0.0]  # weight 0: logged, not added
  assert total == [0.5 * a + 2.0 * b for a, b in zip(f, t)]
  assert parts["errors/format"] == parts["errors/tag_count"] == parts["errors/accuracy"] == 0.0


def test_score_survives_failing_rewards(monkeypatch, caplog):
  def flaky(prompts, completions, **_):
    if any("boom" in c for c in completions):
      raise RuntimeError("kaboom")
    return [1.0] * len(completions)

  def nan_for_empty(prompts, completions, **_):
    return [math.nan if not c else 1.0 for c in completions]

  monkeypatch.setitem(REWARDS, "flaky", flaky)
  monkeypatch.setitem(REWARDS, "nan", nan_for_empty)
  monkeypatch.setitem(REWARDS, "short", lambda prompts, completions, **_: [1.0])
  completions = ["fine", "boom", "", "fine too"]
  with caplog.at_level(logging.WARNING):
    total, parts = score({"flaky": 1.0, "nan": 10.0, "short": 100.0}, [""] * 4, completions)
  assert parts["flaky"] == [1.0, 0.0, 1.0, 1.0] and parts["errors/flaky"] == 1.0
  assert parts["nan"] == [1.0, 1.0, 0.0, 1.0] and parts["errors/nan"] == 1.0
  assert parts["short"] == [1.0] * 4 and parts["errors/short"] == 0.0  # fine item by item
  assert total == [111.0, 110.0, 101.0, 111.0]
  assert all(math.isfinite(v) for v in total)
  assert "'flaky'" in caplog.text and "kaboom" in caplog.text and "'nan'" in caplog.text


def test_score_rejects_configuration_errors():
  with pytest.raises(ValueError, match="did you mean 'format'"):
    score({"formatt": 1.0}, [PROMPT], ["x"])
  with pytest.raises(ValueError, match="needs the dataset field"):
    score({"accuracy": 1.0}, [PROMPT], ["x"], target=[3])
  with pytest.raises(ValueError, match="weight"):
    score({"format": float("nan")}, [PROMPT], ["x"])
  with pytest.raises(ValueError, match="no rewards"):
    score({}, [PROMPT], ["x"])
  with pytest.raises(ValueError, match="2 prompts for 1 completions"):
    score({"format": 1.0}, [PROMPT] * 2, ["x"])
  with pytest.raises(ValueError, match=r"refs\['answer'\] has 1 entries"):
    score({"accuracy": 1.0}, [PROMPT] * 2, ["x", "y"], answer=["1"])


def test_combine():
  fn = combine({"accuracy": 1.0, "format": 1.0})
  completions = ["<think>a</think><answer>5</answer>", "<answer>5</answer>", "nothing"]
  assert fn([PROMPT] * 3, completions, answer=["5"] * 3) == [2.0, 1.0, 0.0]
  assert fn.components["accuracy"] == [1.0, 1.0, 0.0]
  assert fn.components["format"] == [1.0, 0.0, 0.0]
  assert fn.components["errors/accuracy"] == 0.0
  with pytest.raises(ValueError, match="did you mean 'tag_count'"):
    combine({"tag_cont": 1.0})


def test_package_exports():
  for name in rewards.__all__:
    assert hasattr(rewards, name), name


# ------------------------------------------------------------------------ undone arithmetic

@pytest.mark.parametrize("answer, gold, undone", [
    ("37 + 94", "131", True), ("37+94=?", "131", True), ("3 \\times 4", "12", True),
    ("2^{10}", "1024", True), ("\\sqrt{16}", "4", True), ("5!", "120", True),
    ("262/2", "131", True), ("\\frac{84}{4}", "21", True), ("7/1", "7", True),
    ("(9+1)", "10", True), ("6/4", "1.5", False),  # a fraction is a value, reduced or not
    ("131", "131", False), ("-5", "-5", False), ("1,000", "1000", False), ("x = 5", "5", False),
    ("3/4", "0.75", False), ("\\frac{3}{4}", "3/4", False), ("10^3", "1000", False),
    ("1.5 \\times 10^{3}", "1500", False),
    ("x + 1", "x+1", False), ("2\\sqrt{3}", "2\\sqrt{3}", False),  # symbolic golds: no rule
])
def test_undone_arithmetic(answer, gold, undone):
  assert math_mod._undone(answer, gold) is undone


def test_restating_the_question_earns_nothing():
  """What SmolLM2 learned under GRPO with math-verify alone (experiments/smollm2_grpo):
  restate the sum. SymPy evaluates "37 + 94" to 131 on parsing; the checker must not."""
  hacks = ["37 + 94 = ?", "\\boxed{37+94}", "<answer>37 + 94</answer>", "The sum is 37+94."]
  for mode in ANSWER_MODES:
    got = accuracy_reward([PROMPT] * 4, hacks, answer=["131"] * 4, answer_mode=mode)
    assert got == [0.0] * 4, (mode, got)
  honest = ["37 + 94 = 131", "\\boxed{131}", "<answer>131</answer>", "The sum is 131."]
  assert accuracy_standard_reward([PROMPT] * 4, honest, answer=["131"] * 4) == [1.0] * 4
  # linear on hostile text
  for text in ("1" * 100_000, "1+" * 50_000, "\\frac{1}{2}" * 10_000):
    t0 = time.monotonic()
    math_mod._undone(text, "5")
    assert time.monotonic() - t0 < 0.5
