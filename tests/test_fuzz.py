"""Hostile text: the answer extractor, math_equal, the rule rewards and read_jsonl survive
adversarial input, such as brackets nested 10,000 deep, 100,000-digit numbers, megabyte
completions, NUL bytes, lone surrogates, bidi and control characters, \\frac towers and
repeated tags.

Each named shape has an explicit case, and hypothesis adds random, token-built and repeated
text on top. The runs are deterministic (derandomize=True, no example database). The
properties: nothing raises, each call returns within its bound (FAST_S for the in-process
rules, math_equal's timeout + SLACK_S on a warm worker), every reward gives one finite float
in [0, 1] per completion, and math_equal still answers a normal pair after a pathological
one, its worker killed and respawned where needed.

`pytest tests/test_fuzz.py --hypothesis-show-statistics` shows how many examples each fuzz
test ran.
"""

import fractions
import math
import os
import random
import signal
import tempfile
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from r1jax.data.jsonl import read_jsonl
from r1jax.data.templates import r1_zero_prompt
from r1jax.rewards import countdown, format as fmt, language, score
from r1jax.rewards.math import _WORKER, accuracy_reward, extract_answer, math_equal

PROMPT = r1_zero_prompt("What is 2 + 3?")
PREFILLED = r1_zero_prompt("What is 2 + 3?", prefill_think=True)

FAST_S = 2.0  # bound for an in-process rule per megabyte of text (linear code: < 0.5 s)
TIMEOUT_S = 0.5  # math_equal's deadline in these tests
SLACK_S = 1.0  # what a math_equal call may take beyond its deadline

MB = 1 << 20



def fuzz(examples: int) -> settings:
  """Deterministic hypothesis settings: the same `examples` inputs on every run."""
  return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                  print_blob=False, suppress_health_check=[
                      HealthCheck.too_slow, HealthCheck.data_too_large,
                      HealthCheck.large_base_example])


def _random_text(n: int, seed: int = 0) -> str:
  """n characters that mix tags, LaTeX, digits, brackets and several scripts."""
  pieces = ["<think>", "</think>", "<answer>", "</answer>", "\\boxed{", "{", "}", "(", ")",
            "\\frac{", "^{", "9", "1", " ", "\n", "中", "é", "ж", "$", "\\", "a", "\x00"]
  rng = random.Random(seed)
  out, size = [], 0
  while size < n:
    out.append(rng.choice(pieces))
    size += len(out[-1])
  return "".join(out)[:n]


HOSTILE = {
    # deep nesting
    "boxed_x10000": "\\boxed{" * 10_000,
    "boxed_x10000_closed": "\\boxed{" * 10_000 + "1" + "}" * 10_000,
    "parens_x10000": "(" * 10_000,
    "parens_balanced_500": "<answer>" + "(" * 500 + "1" + ")" * 500 + "</answer>",
    "braces_balanced_5000": "\\boxed{" + "{" * 5_000 + "1" + "}" * 5_000 + "}",
    "brackets_depth_11": "<answer>" + "[" * 11 + "1" + "]" * 11 + "</answer>",
    "frac_tower_300": "\\boxed{" + "\\frac{1}{" * 300 + "2" + "}" * 300 + "}",
    "frac_tower_9": "\\boxed{" + "\\frac{1}{" * 9 + "2" + "}" * 9 + "}",  # reaches the worker
    "sqrt_tower_500": "\\boxed{" + "\\sqrt{" * 500 + "2" + "}" * 500 + "}",
    "left_right_x2000": "\\boxed{" + "\\left(" * 2_000 + "1" + "\\right)" * 2_000 + "}",
    # enormous numbers
    "nines_100000": "9" * 100_000,
    "boxed_nines_5000": "\\boxed{" + "9" * 5_000 + "}",  # past int()'s 4300 digits
    "answer_nines_1MB": "<answer>" + "9" * MB + "</answer>",
    "answer_thousands_8000": "<answer>1" + ",000" * 2_000 + "</answer>",
    "answer_decimal_5000": "<answer>0." + "3" * 5_000 + "</answer>",
    "pow_text": "<answer>10**10**10</answer>",
    "pow_latex": "\\boxed{10^{10^{10^{10}}}}",  # the worker times out and is replaced
    "exp_1e999999": "<answer>1e999999</answer>",
    "float_max_overflow": "<answer>1.8e308 * 10</answer>",
    # unbalanced braces
    "close_x10000": "}" * 10_000 + "\\boxed{1}",
    "open_x10000": "{" * 10_000 + "\\boxed{1",
    "mixed_unbalanced": "\\boxed{1}}}{{{\\boxed{" * 2_000,
    "escaped_braces": "\\boxed{\\{" * 5_000,
    "backslashes": "\\" * 100_001,
    # megabyte completions
    "letters_1MB": "a" * MB,
    "random_1MB": _random_text(MB),
    "stop_tokens_1MB": "<think>a</think><answer>5</answer>" + " </s>" * (MB // 5),
    "special_tokens_1MB": "<think>a</think><answer>5</answer>" + "<|endoftext|>" * (MB // 13),
    "whitespace_1MB": " \t\n" * (MB // 3),
    "crlf_1MB": "\r\n" * (MB // 2),
    "cjk_latin_1MB": "中a" * (MB // 2),
    # NUL, surrogates, control and bidi characters
    "nul": "<think>\x00</think><answer>\x00</answer>\x00",
    "nul_1MB": "\x00" * MB,
    "nul_in_number": "<answer>1\x002</answer>",
    "lone_surrogates": "<think>\ud800 \udfff</think><answer>\ud800</answer>",
    "surrogate_box": "\\boxed{\udfff\ud800}",
    "surrogate_pairs_raw": "\ud83d\ude00" * 1000 + "\\boxed{\ud83d}",
    "rtl_control": ("<think>\u202e\u2067 abc \u200f\x1b[31m\x07\x08\x7f</think>"
                    "<answer>\u202e5\u202c</answer>"),
    "bom_zero_width": "\ufeff<think>\u200b</think><answer>\u200d5\ufeff</answer>",
    # repeated tags
    "close_answer_x100000": "</answer>" * 100_000,
    "open_answer_x100000": "<answer>" * 100_000,
    "answer_pairs_x60000": "<answer>1</answer>" * 60_000,
    "think_tags_x50000": "<think>" * 50_000 + "</think>" * 50_000,
    "all_tags_x30000": "<think></think><answer></answer>" * 30_000,
}


def _timed(fn, *args, **kwargs):
  """Wall time: for checks that run in a worker process (math_equal)."""
  start = time.perf_counter()
  out = fn(*args, **kwargs)
  return out, time.perf_counter() - start


def _cpu_timed(fn, *args, **kwargs):
  """CPU time of this thread: for in-process rules, immune to a busy machine."""
  start = time.thread_time()
  out = fn(*args, **kwargs)
  return out, time.thread_time() - start


RULE_REWARDS = {
    "format": fmt.format_reward,
    "tag_count": fmt.tag_count_reward,
    "language_en": lambda p, c: language.language_consistency_reward(p, c, language="en"),
    "language_zh": lambda p, c: language.language_consistency_reward(p, c, language="zh"),
    "countdown": lambda p, c: countdown.countdown_reward(p, c, numbers=[[1, 2, 3]] * len(c),
                                                         target=[6] * len(c)),
    "arithmetic": lambda p, c: countdown.arithmetic_reward(p, c, answer=["5"] * len(c)),
}


def _check_rule_rewards(prompts: list[str], completions: list[str]) -> None:
  """Each rule reward returns one finite float in [0, 1] per completion, in time; and
  score(), which would swallow an exception, counts no failure."""
  bound = FAST_S * max(1.0, sum(map(len, prompts + completions)) / MB)
  for name, fn in RULE_REWARDS.items():
    out, secs = _cpu_timed(fn, prompts, completions)
    assert len(out) == len(completions), name
    assert all(type(v) is float and math.isfinite(v) and 0.0 <= v <= 1.0 for v in out), \
        (name, out)
    assert secs < bound, (name, secs)
  n = len(completions)
  _, parts = score({"format": 1.0, "tag_count": 1.0, "language": 1.0, "countdown": 1.0,
                    "arithmetic": 1.0}, prompts, completions,
                   numbers=[[1, 2, 3]] * n, target=[6] * n, answer=["5"] * n)
  assert {k: v for k, v in parts.items() if k.startswith("errors/") and v} == {}


def _check_extract(text: str) -> str | None:
  out, secs = _cpu_timed(extract_answer, text)
  assert out is None or (type(out) is str and out in text)
  assert secs < FAST_S, secs
  return out


def _worker_ok() -> None:
  """math_equal answers a normal pair through the worker (restarting it first if needed)."""
  assert math_equal("\\frac{2}{4}", "0.5") is True
  assert math_equal("\\frac{3}{4}", "0.5") is False


def _check_math_equal(pred, gold) -> bool:
  """One math_equal call, timed on a worker just seen to answer a normal pair: a bool,
  within TIMEOUT_S + SLACK_S."""
  _worker_ok()  # a restart after the previous call is not this call's time
  out, secs = _timed(math_equal, pred, gold, timeout=TIMEOUT_S)
  assert type(out) is bool
  assert secs < TIMEOUT_S + SLACK_S, secs
  return out


# ------------------------------------------------------------------------ named shapes


@pytest.mark.parametrize("name", HOSTILE)
def test_extract_answer_hostile(name):
  _check_extract(HOSTILE[name])


@pytest.mark.parametrize("name", HOSTILE)
def test_rule_rewards_hostile(name):
  text = HOSTILE[name]
  _check_rule_rewards([PREFILLED, text], [text, "<think>a</think><answer>5"])


@pytest.mark.parametrize("name", HOSTILE)
def test_math_equal_hostile(name):
  """As the answer, as the gold, and as extracted from a completion (each followed by a
  normal pair, which must still come out right)."""
  text = HOSTILE[name]
  pairs = [(text, "1"), ("1", text)]
  extracted = extract_answer(text)
  if extracted and extracted != text:
    pairs.append((extracted, "1"))
  for pred, gold in pairs:
    _check_math_equal(pred, gold)
  _worker_ok()


def test_accuracy_reward_hostile():
  texts = [t for name, t in HOSTILE.items() if name != "pow_latex"]  # one timeout is enough
  _worker_ok()
  out, secs = _timed(accuracy_reward, [PROMPT] * len(texts), texts, answer=["1"] * len(texts))
  assert len(out) == len(texts) and all(v in (0.0, 1.0) for v in out)
  assert secs < FAST_S * len(texts)


def test_math_equal_respawns_after_a_timeout():
  _worker_ok()
  before = _WORKER.restarts
  # (a symbolic gold: against a plain number the tower is undone arithmetic, refused at once)
  assert _check_math_equal(HOSTILE["pow_latex"], "\\sqrt{2}") is False
  assert _WORKER.restarts == before + 1  # killed at the deadline, and a fresh worker
  assert math_equal("\\boxed{\\frac{1}{\\sqrt{2}}}", "\\frac{\\sqrt{2}}{2}") is True
  assert math_equal("1,000", "1000") is True and math_equal("x=3", "3") is True
  frac_tower_9 = extract_answer(HOSTILE["frac_tower_9"])  # 1/(1/(…1/2)), nine deep: 1/2
  assert math_equal(frac_tower_9, "0.5") is True  # within MAX_NESTING: really parsed
  assert math_equal("[" * 11 + "1" + "]" * 11, "[" * 11 + "1" + "]" * 11) is False  # past it


def test_math_equal_respawns_a_dead_worker():
  _worker_ok()
  _WORKER._proc.kill()  # dies between calls
  _WORKER._proc.wait()
  _worker_ok()
  # dies during a call: the call ends at once (EOF), not at its deadline
  threading.Timer(0.3, lambda: os.kill(_WORKER._proc.pid, signal.SIGKILL)).start()
  out, secs = _timed(math_equal, HOSTILE["pow_latex"], "1", timeout=30.0)
  assert out is False and secs < 5.0, secs
  _worker_ok()


# ------------------------------------------------------------------------ hypothesis

TOKENS = [
    "\\boxed{", "\\boxed ", "\\fbox{", "{", "}", "\\{", "\\}", "\\", "(", ")", "[", "]",
    "<answer>", "</answer>", "<think>", "</think>", "</s>", "<|endoftext|>", "<eos>",
    "<｜end▁of▁sentence｜>", "$", "\\(", "\\)", "\\[", "\\frac{", "\\dfrac", "\\sqrt{", "^{", "^",
    "_", "\\left(", "\\right)", "\\text{", "\\infty", "\\pi", "!", "%", "\\%", "=", "+", "-",
    "*", "**", "/", "×", "÷", "−", "·", "\\times", "\\div", "\\cdot", ",", ".", " ", "\n", "\t",
    "\r", "0", "1", "2", "3", "7", "42", "9" * 60, "1e999999", "10**10**10", "1,000", "0.5",
    "\x00", "\ud800", "\udfff", "\u202e", "\u200f", "\ufeff", "\x1b[31m", "\x7f", "中", "文",
    "ж", "é", "a", "x", "dollars", "The answer is ",
]

token_text = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)
# lengths at the edges that matter (int()'s 4300 digits, the 1000-character caps) and beyond
sizes = st.sampled_from([1, 2, 10, 11, 200, 201, 1000, 1001, 4300, 4301, 20_000]) | \
    st.integers(1, 20_000)
small_text = st.text(max_size=60)  # all of Unicode, lone surrogates and controls included


@st.composite
def repeated(draw):
  """A unit (a token or a few random characters) repeated up to 20,000 times, in context."""
  unit = draw(st.sampled_from(TOKENS) | st.text(min_size=1, max_size=4))
  return draw(token_text) + unit * draw(sizes) + draw(token_text)


_BRACKETS = [("\\boxed{", "}"), ("{", "}"), ("(", ")"), ("[", "]"), ("\\frac{1}{", "}"),
             ("\\sqrt{", "}"), ("\\left(", "\\right)"), ("<answer>", "</answer>"),
             ("<think>", "</think>"), ("\\text{", "}"), ("\\{", "\\}")]


@st.composite
def nested(draw):
  """n openers, some text, m closers: balanced or not, shallow or 5,000 deep."""
  opener, closer = draw(st.sampled_from(_BRACKETS))
  n = draw(st.integers(0, 12) | sizes)
  m = draw(st.sampled_from([n, 0, max(n - 1, 0), n + 1]) | sizes)
  return opener * n + draw(token_text) + closer * m


@st.composite
def big_number(draw):
  """Long digit strings, plain or with separators, decimals, exponents, signs."""
  digits = draw(st.sampled_from("1593")) * draw(sizes | st.just(100_000))
  sign = draw(st.sampled_from(["", "-", "+", "$", "\\$"]))
  tail = draw(st.sampled_from(["", ".5", "e999999", ",000" * 50, "!", "%", " dollars"]))
  return draw(st.sampled_from(["{}", "<answer>{}</answer>", "\\boxed{{{}}}", "{} = 6"])
              ).format(sign + digits + tail)


hostile_text = st.one_of(small_text, token_text, repeated(), nested(), big_number())
answer_like = st.one_of(small_text, token_text, nested(), big_number())  # bounded size
golds = st.sampled_from(["1", "5", "0.5", "\\frac{1}{2}", "18", "1,000", "-3", "\\sqrt{2}",
                         "(0,1]", "\\{1,2\\}", "x=3", "\\text{(C)}", "\\frac{\\pi}{2}"])


@fuzz(800)
@given(hostile_text)
def test_fuzz_extract_answer(text):
  _check_extract(text)


@fuzz(200)
@given(st.lists(hostile_text, min_size=1, max_size=3), st.sampled_from([PROMPT, PREFILLED]) |
       small_text)
def test_fuzz_rule_rewards(completions, prompt):
  _check_rule_rewards([prompt] * len(completions), completions)


@fuzz(400)
@given(answer_like | hostile_text.map(extract_answer), golds | answer_like)
def test_fuzz_math_equal(pred, gold):
  _check_math_equal(pred, gold)


countdown_text = st.lists(st.sampled_from(
    ["1", "2", "3", "7", "99999999", "9" * 150, "+", "-", "*", "/", "(", ")", "×", "÷", "−", "·",
     "\\times", "\\div", "\\cdot", "=", " ", "**", "^", "%", ".", "e9", "\x00", "\ud800"]),
    max_size=80).map("".join)


@fuzz(800)
@given(countdown_text | small_text | nested(),
       st.lists(st.integers(-1000, 1000), max_size=6), st.integers(-10**6, 10**6))
def test_fuzz_countdown_expressions(expr, numbers, target):
  """evaluate either gives an exact value or a ValueError; check_countdown is a bool."""
  start = time.thread_time()
  try:
    value, used = countdown.evaluate(expr)
    assert type(value) is fractions.Fraction and all(type(n) is int for n in used)
  except ValueError:
    pass
  assert type(countdown.check_countdown(expr, numbers, target)) is bool
  assert type(countdown.check_countdown(expr, numbers, target, allow_fractions=False)) is bool
  assert time.thread_time() - start < FAST_S


VALID_ROW = b'{"question": "q", "answer": "1"}'
jsonl_line = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([VALID_ROW, b"\xef\xbb\xbf" + VALID_ROW, VALID_ROW + b"\r", b"", b"  ",
                     b'[{"question": "q", "answer": "1"}]', b'{"question": "q"}', b"null",
                     b"[" * 50_000, b"\xff\xfe\x00", b'{"answer": ' + b"9" * 5_000 + b"}",
                     b'{"question": "\xe9", "answer": "1"}', b"\x00" * 100]),
    st.text(max_size=50).map(lambda s: s.encode("utf-8", "surrogatepass")),
)


@fuzz(300)
@given(st.lists(jsonl_line, max_size=12))
def test_fuzz_read_jsonl(lines):
  """Skip mode never raises and keeps exactly the valid rows; raise mode returns the same
  rows or names a line of the file that is not a valid row."""
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "d.jsonl")
    with open(path, "wb") as f:
      f.write(b"\n".join(lines))
    rows = read_jsonl(path, ("question", "answer"), on_error="skip")
    valid = [raw for raw in b"\n".join(lines).split(b"\n")
             if raw.removeprefix(b"\xef\xbb\xbf").strip() == VALID_ROW]
    assert rows == [{"question": "q", "answer": "1"}] * len(valid)
    try:
      assert read_jsonl(path, ("question", "answer")) == rows
    except ValueError as e:
      where, _, _ = str(e).partition(": ")
      assert where.startswith(path + ":"), str(e)[:200]
      lineno = int(where[len(path) + 1:])
      bad = b"\n".join(lines).split(b"\n")[lineno - 1]
      assert bad.removeprefix(b"\xef\xbb\xbf").strip() != VALID_ROW
      assert len(str(e)) < 1000  # the line itself is not quoted
