"""The accuracy reward (R1 §2.2.2): is the final answer mathematically equal to the gold?

  extract_answer(completion)  the last <answer>…</answer>, else the last \\boxed{…}, else None
  math_equal(pred, gold)      equivalence by math-verify (LaTeX, fractions, sets, intervals,
                              percentages, units), with a hard per-call deadline
  accuracy_reward(...)        1.0 / 0.0 per completion

Checking one answer with math-verify means parsing LaTeX into SymPy and simplifying, which
a pathological answer ("9^{9^{9^{9^{9}}}}") can turn into minutes of work or gigabytes of
memory. math-verify's own timeout uses SIGALRM, which only works in the main thread and
cannot interrupt long C-level arithmetic, so the check runs in a worker process instead: a
small Python that imports nothing but math-verify, reused across calls and killed (then
restarted) when it misses its deadline. That works from any thread. Plain numbers, the
common case for GSM8K-style data, are compared in-process with exact fractions and never
reach the worker.

Both answers are read with math-verify's LaTeX reader only (bare text is wrapped in
\\boxed{}): its plain-text reader takes the last number in the text, which would accept
"8n^2 + 4n + 1" for the gold "1".

Hostile answers are turned away before any regex or the worker sees them: one longer than
MAX_ANSWER_CHARS, or with brackets nested deeper than MAX_NESTING, is judged unequal at once.
math-verify's parser slows down steeply with nesting ("{{{{{{{{{{{{1}}}}}}}}}}}}" alone
takes seconds), and a megabyte of text is minutes of parsing; either would cost a timeout
and a worker restart. No real answer comes near the bounds (MATH-500's golds: at most 53
characters and depth 2).
"""

from __future__ import annotations

import atexit
import fractions
import functools
import importlib.util
import json
import logging
import os
import re
import select
import subprocess
import sys
import threading
import time

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------ extraction

_BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])(\s*\{)?")
_BOX_WORD = re.compile(r"\s+([^\s$]+)")  # "\boxed 5$" -> "5"


def _braced(text: str, i: int, stop: int) -> str | None:
  """text[i:j] where text[j] is the "}" closing a "{" just before i; None if none before stop."""
  depth, j = 1, i
  while j < stop:
    c = text[j]
    if c == "\\":  # an escaped character (\{, \}) is not a brace
      j += 2
      continue
    if c == "{":
      depth += 1
    elif c == "}":
      depth -= 1
      if depth == 0:
        return text[i:j]
    j += 1
  return None


def extract_answer(text: str | None) -> str | None:
  """The model's final answer in `text`, stripped; None if it gave none.

  The content of the last <answer>…</answer> when there is one (R1-Zero's format), else the
  argument of the last complete \\boxed{…} / \\fbox{…} / "\\boxed x" (balanced braces,
  escaped braces \\{ \\} skipped), else None. Linear time, whatever the text.
  """
  if not isinstance(text, str):
    return None
  end = text.rfind("</answer>")
  start = text.rfind("<answer>", 0, end) if end >= 0 else -1
  if start >= 0:
    return text[start + len("<answer>"):end].strip()
  stop = len(text)
  for m in reversed(list(_BOX_COMMAND.finditer(text))):
    if m.group(1):
      content = _braced(text, m.end(), stop)
      if content is not None:
        return content.strip()
      stop = m.start()  # unclosed; so is every box around it: never scan past here again
    elif word := _BOX_WORD.match(text, m.end(), stop):
      return word.group(1)
  return None


def gsm8k_gold(answer_field: str) -> str:
  """The final number of a GSM8K solution ("... #### 1,800" -> "1800")."""
  _, sep, gold = answer_field.rpartition("####")
  if not sep or not gold.strip():
    raise ValueError(f"not a GSM8K answer (no '#### <number>' line): {answer_field[-80:]!r}")
  return gold.strip().replace(",", "")


# ------------------------------------------------------------------------ fast path

_PLAIN_NUMBER = re.compile(r"(?:\\?\$)?[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?")


def _plain_number(s: str) -> fractions.Fraction | None:
  """"1,000" / "-2.50" / ".5" / "$18" -> an exact Fraction; anything else -> None."""
  s = s.strip()
  if len(s) > 100 or not any(c.isdigit() for c in s) or not _PLAIN_NUMBER.fullmatch(s):
    return None
  return fractions.Fraction(s.lstrip("\\$").replace(",", ""))


# ------------------------------------------------------------------------ hostile answers

MAX_ANSWER_CHARS = 1000  # longer answers (either side) are unequal without parsing
MAX_NESTING = 10  # so are answers whose brackets nest deeper

_OPEN, _CLOSE = frozenset("([{"), frozenset(")]}")


def _too_deep(s: str) -> bool:
  """Whether `s` nests ( [ { (any mix, escaped or not) deeper than MAX_NESTING."""
  depth = 0
  for c in s:
    if c in _OPEN:
      depth += 1
      if depth > MAX_NESTING:
        return True
    elif c in _CLOSE:
      depth = max(depth - 1, 0)
  return False


# ------------------------------------------------------------------------ the worker

_DELIMITED = re.compile(r"\\boxed|\\fbox|(?<!\\)\$|\\\(|\\\[")
_NUMBER_AND_WORDS = re.compile(r"(\S*\d)\s+[A-Za-z]{2,}(?:\s+[A-Za-z]+)*\.?")


def _drop_words(pred: str) -> str:
  """"18 dollars." -> "18": words after a final number, and a full stop, are not the answer."""
  pred = pred.strip()
  m = _NUMBER_AND_WORDS.fullmatch(pred)
  pred = m.group(1) if m else pred
  return pred[:-1] if pred.endswith(".") and pred[-2:-1].isdigit() else pred


def _as_latex(s: str) -> str:
  """What math-verify should parse: `s` itself if it has $…$ / \\(…\\) / \\boxed, else
  \\boxed{s}, since math-verify's LaTeX reader only looks inside such delimiters."""
  return s if _DELIMITED.search(s) else "\\boxed{" + s + "}"


def _serve() -> None:
  """The worker's loop: JSON [pred, gold] lines on stdin -> "1"/"0" lines on stdout."""
  import math_verify

  # The parent enforces the deadline; math-verify's SIGALRM timeouts are switched off (and
  # its warning about that silenced).
  logging.getLogger("math_verify").setLevel(logging.ERROR)

  # LaTeX only: math-verify's plain-text reader takes the last number it sees, so it
  # would accept "8n^2 + 4n + 1" for the gold "1", or "2, 3" for "3".
  latex_only = [math_verify.LatexExtractionConfig()]

  def parse(s):
    return math_verify.parse(_as_latex(s), latex_only, parsing_timeout=None)

  parse_gold = functools.lru_cache(maxsize=4096)(parse)  # a gold repeats G times per group

  def equal(pred, gold):
    g = parse_gold(gold)
    return bool(g) and math_verify.verify(g, parse(pred), timeout_seconds=None)

  # Replies go to a private copy of stdout; anything the libraries print goes to stderr.
  out = os.fdopen(os.dup(1), "w")
  os.dup2(2, 1)
  sys.stdout = sys.stderr
  # Warm up before announcing readiness: the first parse of each kind imports parts of
  # SymPy lazily, which must not count against a caller's deadline.
  equal("\\dfrac{1}{2}", "0.5")
  equal("x = 2\\sqrt{2}", "(0, 1] \\cup \\{2\\}")
  out.write("ready\n")
  out.flush()
  for line in sys.stdin:
    try:
      ok = equal(*json.loads(line))
    except Exception:  # noqa: BLE001 - any failure of the check is a wrong answer
      ok = False
    out.write("1\n" if ok else "0\n")
    out.flush()


# Loads this file by path (not through the r1jax package, whose __init__ imports JAX) and
# runs _serve. The current directory is dropped from sys.path so that this file, named
# math.py, never shadows the standard library when the worker starts inside its folder.
_BOOT = ("import sys; sys.path = [p for p in sys.path if p not in ('', '.')]; "
         "import importlib.util as u; s = u.spec_from_file_location('_r1jax_math_worker', "
         "sys.argv[1]); m = u.module_from_spec(s); s.loader.exec_module(m); m._serve()")

_START_TIMEOUT = 120.0  # seconds for a fresh worker to import math-verify


class _Worker:
  """One math-verify worker process; killed and replaced when it misses a deadline."""

  def __init__(self):
    self._lock = threading.Lock()
    self._proc: subprocess.Popen | None = None
    self._ready = False
    self._pid = None  # the parent's pid when the worker was spawned (fork safety)
    self.restarts = 0

  def _spawn(self) -> None:
    self._proc = subprocess.Popen(
        [sys.executable, "-c", _BOOT, os.path.abspath(__file__)], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, start_new_session=True, close_fds=True)
    self._ready, self._pid = False, os.getpid()

  def _readline(self, deadline: float) -> bytes | None:
    """One line from the worker, or None on EOF or when `deadline` passes."""
    fd, buf = self._proc.stdout.fileno(), b""
    while not buf.endswith(b"\n"):
      remaining = deadline - time.monotonic()
      if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
        return None
      chunk = os.read(fd, 64)
      if not chunk:
        return None
      buf += chunk
    return buf.strip()

  def kill(self) -> None:
    if self._proc is not None and self._pid == os.getpid():
      self._proc.kill()
      self._proc.wait()
      for f in (self._proc.stdin, self._proc.stdout):
        f.close()
    self._proc = None

  def check(self, pred: str, gold: str, timeout: float) -> bool:
    with self._lock:
      if self._pid != os.getpid():  # a forked child must not talk to its parent's worker
        self._proc = None
      if self._proc is None or self._proc.poll() is not None:
        self.kill()
        self._spawn()
      if not self._ready:
        if self._readline(time.monotonic() + _START_TIMEOUT) != b"ready":
          self.kill()
          log.warning("math_equal: the math-verify worker did not start; scoring False")
          return False
        self._ready = True
      try:
        self._proc.stdin.write((json.dumps([pred, gold]) + "\n").encode())
        self._proc.stdin.flush()
      except OSError:
        self.kill()
        return False
      reply = self._readline(time.monotonic() + timeout)
      if reply is None:  # missed the deadline (or died): replace it now so that its
        self.kill()      # imports overlap with whatever the caller does next
        self.restarts += 1
        self._spawn()
        return False
      return reply == b"1"


_WORKER = _Worker()
atexit.register(_WORKER.kill)


# ------------------------------------------------------------------------ public API


@functools.cache
def _require_math_verify() -> None:
  if importlib.util.find_spec("math_verify") is None:
    raise ImportError("math_equal needs math-verify: pip install 'math-verify>=0.7' "
                      "(or pip install -e '.[dev]')")


def math_equal(pred: str | None, gold: str, *, timeout: float = 2.0) -> bool:
  """Whether the answer `pred` equals the reference `gold`; False on failure or timeout.

  Words after a final number are dropped ("18 dollars" -> "18"). Plain numbers ("1,000",
  "-2.5", "$18") are then compared exactly in-process; either side longer than
  MAX_ANSWER_CHARS or nested deeper than MAX_NESTING is unequal at once; everything else
  goes to math-verify in the worker process, which gets `timeout` seconds before it is
  killed (a call that finds the worker restarting first waits for it to start). Both sides
  are read as LaTeX: as written when they contain $…$, \\(…\\) or \\boxed, else as
  \\boxed{…}. Safe to call from any thread (calls are serialised). Never raises, except
  ImportError when math-verify is not installed.
  """
  if not isinstance(pred, str) or not isinstance(gold, str) or not pred.strip():
    return False
  if len(pred) > MAX_ANSWER_CHARS or len(gold) > MAX_ANSWER_CHARS:
    return False
  try:
    pred = _drop_words(pred)
    p, g = _plain_number(pred), _plain_number(gold)
    if p is not None and g is not None:
      if p == g:
        return True
      if p.denominator == 1 and g.denominator == 1 and "." not in pred + gold:
        return False  # unequal integers; decimals go on to math-verify's rounding rules
    if _too_deep(pred) or _too_deep(gold):
      return False
    _require_math_verify()
    return _WORKER.check(pred, gold, timeout)
  except ImportError:
    raise
  except Exception as e:  # noqa: BLE001 - a checker failure must not stop training
    log.warning("math_equal(%.40r, %.40r) failed: %r", pred, gold, e)
    return False


def accuracy_reward(prompts: list[str], completions: list[str], *, answer: list[str],
                    **_) -> list[float]:
  """1.0 where the completion's extracted answer math-equals the gold `answer`, else 0.0."""
  del prompts
  return [float(math_equal(extract_answer(c), str(a))) for c, a in zip(completions, answer,
                                                                     strict=True)]
