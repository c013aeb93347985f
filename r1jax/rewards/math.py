"""The accuracy reward (R1 §2.2.2): is the final answer mathematically equal to the gold?

  find_answer(text, mode)      the final answer in `text` and how it was found
  extract_answer(text)         the last <answer>…</answer>, else the last \\boxed{…}, else None
                               (strict mode's answer)
  math_equal(pred, gold, mode) equivalence by math-verify (LaTeX, fractions, sets, intervals,
                               percentages, units), with a hard per-call deadline
  accuracy_reward(...)         1.0 / 0.0 per completion (strict; accuracy_standard_reward:
                               standard)

Two answer modes (ANSWER_MODES):

  strict    the answer is what the completion puts in <answer>…</answer> or \\boxed{…}, read
            with math-verify's LaTeX reader only (bare text is wrapped in \\boxed{}); no tag
            or box, no answer. R1 asks its policy for a specified format (§2.2.2), so GRPO
            rewards this way (the reward `accuracy`), and training numbers do not depend on
            which stray number a rambling or truncated completion happens to end with.
  standard  math-verify's default pipeline, for judging a model on its answers rather than
            its format (`r1jax.evaluate`, rejection sampling; the reward
            `accuracy_standard`). The answer: in <answer>…</answer>; else in the last
            \\boxed{…}, with the boxes just before it that only "and", commas or spacing
            part from it ("\\boxed{-2} and \\boxed{1}"); else the final answer that
            math-verify's own extraction finds in the last MAX_TEXT_CHARS characters (its
            LatexExtractionConfig and ExprExtractionConfig, in its order of priority:
            "final answer is …", "answer: …", then the last $…$ / \\(…\\) / \\[…\\] or
            number). Answers and golds are read by math-verify's `parse` with both configs,
            so plain numbers in any locale count ("1 000", "1,22", "2,74 $", "1,000.99m²");
            text without $…$ or \\boxed is also read whole as LaTeX, as strict mode reads
            it, and either reading may match (MATH's gold "-2,1" is a list, math-verify's
            "1,22" a decimal). They are compared by math-verify's `verify` with
            set-relation comparison on ("-2 \\le x \\le 7" = "x \\in [-2,7]") and floats
            rounded to as many decimals as either answer writes, 2 to 6 ("(0.6,2.6667]" =
            "(\\frac35,\\frac83]", "0.33" = "1/3", but "0.3" != "1/3").

The guard of standard mode. math-verify's expression config takes the last number of a
text, so on its own it reads "8n^2 + 4n + 1" as 1 and "2\\sqrt{2}" as 2. Each candidate it
finds outside $…$ (a number, a digits-and-operators expression, a bare \\frac{a}{b}) is
checked first, by wrapping math-verify's per-candidate step (`_Guarded`): when an operator,
a relation, an opening bracket, a list comma or an attached symbol touches it ("+ 1",
"4n", "2\\sqrt", "x^2", "(3, 5)"), it is a piece of a larger formula, and from then on no
such candidate counts for that text: the final number was a fragment, so an earlier one
is not the answer either. Text left without a candidate is read whole as LaTeX ("whole").
math-verify's regexes are not linear-time, so they only ever see MAX_TEXT_CHARS characters,
in the worker, under the deadline; the in-process extraction (`_tagged`) is linear.

Undone arithmetic is not an answer (both modes): where the gold is a plain number, an
answer that is a computation of one ("37 + 94", "2^{10}", "\\sqrt{16}", "262/2") counts
wrong, although SymPy evaluates it on parsing and math-verify alone calls it equal (see
`_undone`; fractions and scientific notation are values). Rewarded by math-verify alone,
SmolLM2 learned within 30 GRPO steps to answer "What is 37 + 94?" with "37 + 94 = ?".

Checking one answer with math-verify means parsing LaTeX into SymPy and simplifying, which
a pathological answer ("9^{9^{9^{9^{9}}}}") can turn into minutes of work or gigabytes of
memory. math-verify's own timeout uses SIGALRM, which only works in the main thread and
cannot interrupt long C-level arithmetic, so the check runs in a worker process instead: a
small Python that imports nothing but math-verify, reused across calls and killed (then
restarted) when it misses its deadline. That works from any thread. Plain numbers, the
common case for GSM8K-style data, are compared in-process with exact fractions and never
reach the worker.

Hostile answers are turned away before any regex or the worker sees them: one longer than
MAX_ANSWER_CHARS, or with brackets nested deeper than MAX_NESTING, is judged unequal at once
(in standard mode a text without tags is cut to its last MAX_TEXT_CHARS characters, and
each candidate math-verify finds in it is held to the same two bounds).
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

ANSWER_MODES = ("strict", "standard")

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


# What may stand between boxes that together make one answer: "\boxed{-2} and \boxed{1}",
# "$\boxed{1}$, $\boxed{2}$", "\boxed{3} \quad \text{or} \quad \boxed{4}".
_BOX_SEPARATOR = re.compile(r"(?:\s|[,;$]|\\[,;:! ]|\\q?quad(?![A-Za-z])"
                            r"|\\(?:text|mbox|mathrm)\{\s*(?:and|or|,)?\s*\}|\b(?:and|or)\b)*")


def _boxes_before(text: str, boxes: list[re.Match], start: int) -> list[str]:
  """The contents of the complete boxes just before text[start:] with only separators
  between them (last first): the other parts of a final answer given in several boxes."""
  parts = []
  for m in reversed(boxes):
    if not m.group(1):
      break
    content = _braced(text, m.end(), start)
    if content is None or not _BOX_SEPARATOR.fullmatch(text, m.end() + len(content) + 1, start):
      break
    parts.append(content.strip())
    start = m.start()
  return parts


def _tagged(text: str, join_boxes: bool = False) -> tuple[str | None, str | None]:
  """(extract_answer(text), "answer_tag" | "boxed" | None): which of the two it came from.
  join_boxes (standard mode): the last box and the boxes just before it that only
  separators part from it, joined by ", " (math-verify joins the boxes of one formula)."""
  end = text.rfind("</answer>")
  start = text.rfind("<answer>", 0, end) if end >= 0 else -1
  if start >= 0:
    return text[start + len("<answer>"):end].strip(), "answer_tag"
  stop = len(text)
  boxes = list(_BOX_COMMAND.finditer(text))
  for i in range(len(boxes) - 1, -1, -1):
    m = boxes[i]
    if m.group(1):
      content = _braced(text, m.end(), stop)
      if content is not None:
        before = _boxes_before(text, boxes[:i], m.start()) if join_boxes else []
        return ", ".join([*reversed(before), content.strip()]), "boxed"
      stop = m.start()  # unclosed; so is every box around it: never scan past here again
    elif word := _BOX_WORD.match(text, m.end(), stop):
      return word.group(1), "boxed"
  return None, None


def extract_answer(text: str | None) -> str | None:
  """The model's final answer in `text`, stripped; None if it gave none.

  The content of the last <answer>…</answer> when there is one (R1-Zero's format), else the
  argument of the last complete \\boxed{…} / \\fbox{…} / "\\boxed x" (balanced braces,
  escaped braces \\{ \\} skipped), else None. Linear time, whatever the text.
  """
  return _tagged(text)[0] if isinstance(text, str) else None


def gsm8k_gold(answer_field: str) -> str:
  """The final number of a GSM8K solution ("... #### 1,800" -> "1800")."""
  _, sep, gold = answer_field.rpartition("####")
  if not sep or not gold.strip():
    raise ValueError(f"not a GSM8K answer (no '#### <number>' line): {answer_field[-80:]!r}")
  return gold.strip().replace(",", "")


# ------------------------------------------------------------------------ fast path

# A thousands group never starts with 0: "0,111" is math-verify's decimal comma (0.111).
_PLAIN_NUMBER = re.compile(r"(?:\\?\$)?[+-]?(?:[1-9]\d{0,2}(?:,\d{3})+|\d+)?(?:\.\d+)?")


def _plain_number(s: str) -> fractions.Fraction | None:
  """"1,000" / "-2.50" / ".5" / "$18" -> an exact Fraction; anything else -> None."""
  s = s.strip()
  if len(s) > 100 or not any(c.isdigit() for c in s) or not _PLAIN_NUMBER.fullmatch(s):
    return None
  return fractions.Fraction(s.lstrip("\\$").replace(",", ""))


# ------------------------------------------------------------------------ hostile answers

MAX_ANSWER_CHARS = 1000  # longer answers (either side) are unequal without parsing
MAX_NESTING = 10  # so are answers whose brackets nest deeper
MAX_TEXT_CHARS = 4000  # standard mode searches this much of the end of an untagged text

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


# ------------------------------------------------------------------------ standard mode's guard

# Operators and relations, as characters or LaTeX commands: "-" before a letter is a
# hyphen ("5-year"), and "<" / ">" of a special token ("<|im_end|>", "</s>") no relation.
_OPERATOR = (r"(?:-(?![A-Za-z])|[+*/^_×÷·−≤≥]|<(?![|/A-Za-z])|(?<![|A-Za-z\"'])>"
             r"|\\(?:cdot|times|div|pm|mp|leq?|geq?|lt|gt|neq?)(?![A-Za-z]))")
# LaTeX words that separate rather than bind: "\approx 5", "5 \text{ cm}", "\quad 5".
_SEPARATING = r"(?:approx|quad|qquad|text|textbf|mbox|mathrm|Rightarrow|implies|therefore)"
# Just before a candidate: an operator, an opening bracket, a command taking it as its
# argument ("\sqrt 5", "\sin 2"), or a comma after a list item ("2, 3", "(x, 3").
_FORMULA_BEFORE = re.compile(
    rf"(?:{_OPERATOR}|[(\[{{]|\\(?!{_SEPARATING}(?![A-Za-z]))[A-Za-z]+"
    rf"|(?:[\d)\]}}]|(?<![A-Za-z\\])[A-Za-z]|\\[A-Za-z]+)\s*,)\s*$")
# Just after it: an attached command, bracket, exponent, subscript, factorial or variable
# ("2\sqrt", "2(", "x^", "4n"; not a unit: "5cm", "3m²"), an operator, a command it is
# the factor of ("2 \sin b"), or a comma before another list item ("1, -2").
_FORMULA_AFTER = re.compile(
    rf"[\\{{(\[^_!]|[A-Za-z](?![A-Za-z\d²³])"
    rf"|\s*(?:{_OPERATOR}|\\(?!{_SEPARATING}(?![A-Za-z]))[A-Za-z]"
    rf"|,\s*(?:[-+]?\d|\\|[(\[{{]|[A-Za-z](?![A-Za-z])))")
_NUMBER_GROUPS = ("expr", "integer1", "integer2", "integer3", "decimal1", "decimal2",
                  "decimal3", "percent")  # the named groups of math-verify's expression regexes


def _bare_span(match: re.Match, expression: bool) -> tuple[int, int] | None:
  """Where a candidate of math-verify's that no $…$ encloses sits in its text: the number or
  expression of an expression-config match, the bare \\frac{a}{b} of a LaTeX one; None for
  a LaTeX environment."""
  names = _NUMBER_GROUPS if expression else [n for n in match.re.groupindex
                                             if n.endswith("latexFraction")]
  spans = [match.span(n) for n in names if n in match.re.groupindex and match.group(n)]
  return (min(s for s, _ in spans), max(e for _, e in spans)) if spans else None


def _in_formula(text: str, start: int, end: int) -> bool:
  """Whether text[start:end] is a piece of a larger formula ("1" in "8n^2 + 4n + 1")."""
  return bool(_FORMULA_BEFORE.search(text, max(0, start - 24), start)
              or _FORMULA_AFTER.match(text, end, end + 24))


_DECIMALS = re.compile(r"\d\.(\d+)")


def _rounding(*answers: str | None) -> int:
  """math-verify's float_rounding for two answers: the most decimals either writes, 2 to 6.

  "0.33" is 1/3 to the two decimals it gives, "2.6667" is 8/3 to four; but one decimal
  ("0.3") is too coarse to be 1/3, and 6 is math-verify's default.
  """
  written = [len(d) for a in answers if a for d in _DECIMALS.findall(a)]
  return min(6, max([2, *written]))


# ------------------------------------------------------------------------ undone arithmetic

# A computation left undone: two numbers joined by an arithmetic operator ("37 + 94",
# "3 \times 4", "2^{10}"), a root or factorial of a number, or an integer written as a
# division ("262/2", "\frac{84}{4}"). SymPy evaluates such an answer on parsing, so
# math-verify counts "37 + 94" equal to 131: a policy rewarded that way learns to restate
# the question ("37 + 94 = ?") instead of answering it, as SmolLM2 did within 30 GRPO steps
# (experiments/smollm2_grpo).
_NUM = r"(?<![\d.])\d+(?:\.\d+)?"  # from a number's first digit: linear on digit runs
_ARITH = re.compile(
    rf"{_NUM}\s*(?:[-+*/×÷·^]|\\(?:times|cdot|div))\s*[({{]*\s*[-+]?{_NUM}"
    rf"|\\sqrt\s*(?:\[[^\]]*\])?\s*\{{?\s*{_NUM}|{_NUM}\s*!")
_FRACTION = re.compile(r"\\[dt]?frac\s*\{\s*(\d+)\s*\}\s*\{\s*(\d+)\s*\}"
                       r"|(?<![\d.])(\d+)\s*/\s*(\d+)(?!\d|\.\d)")
_SCIENTIFIC = re.compile(
    rf"\s*(?:[-+]?{_NUM}\s*(?:\\times|\\cdot|×|\*)\s*)?10\s*\^\s*\{{?\s*[-+]?\d+\s*\}}?\s*")


def _fraction_parts(m: re.Match) -> tuple[int, int]:
  return tuple(int(x) for x in (m.group(1, 2) if m.group(1) else m.group(3, 4)))


def _undone(answer: str | None, gold: str | None) -> bool:
  """Whether `answer` leaves undone arithmetic that the gold, a plain number, has done.

  Only where the gold is a plain number ("131", "-2.5", "1,000") or a fraction that is not
  an integer ("2/3"): then the answer must be a value, not a computation of one (_ARITH),
  and an integer must not be written as a division. Fractions ("\frac{2}{4}") and
  scientific notation ("1.5 \times 10^{3}", "10^3") are values.
  """
  if not answer or gold is None:
    return False
  gold = _drop_words(gold.strip().strip("$"))
  m = _FRACTION.fullmatch(gold.strip())
  if _plain_number(gold) is None and not (m and _fraction_parts(m)[1] > 1):
    return False
  if _SCIENTIFIC.fullmatch(answer.strip("$ ")):
    return False
  for m in _FRACTION.finditer(answer):
    a, b = _fraction_parts(m)
    if b <= 1 or a % b == 0:
      return True  # "262/2", "\frac{84}{4}", "7/1": an integer left as a division
  return bool(_ARITH.search(_FRACTION.sub(" 1 ", answer)))  # fractions are values


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


class _Guarded:
  """math-verify's per-candidate extraction step (`math_verify.parser.extract_match`) with
  standard mode's guard and bounds in front, noting which config found the answer.

  `parse` tries candidates best first and stops at the first it can read; this sees each
  try. Only active while `search` runs, so strict mode's parse is math-verify's own.
  """

  def __init__(self, extract_match, latex_config: type):
    self._extract, self._latex = extract_match, latex_config
    self.active = self.vetoed = False
    self.kind = self.answer = None

  def __call__(self, match: re.Match, target):
    if not self.active:
      return self._extract(match, target)
    spans = [match.span(n) for n, v in match.groupdict().items() if v]
    found = match.string[min(s for s, _ in spans):max(e for _, e in spans)] if spans else ""
    if len(found) > MAX_ANSWER_CHARS or _too_deep(found):
      return None, ""
    latex = isinstance(target, self._latex)
    bare = _bare_span(match, expression=not latex)
    if bare is not None and (self.vetoed or _in_formula(match.string, *bare)):
      self.vetoed = True
      return None, ""
    value, text = self._extract(match, target)
    if value is not None:
      self.kind, self.answer = ("latex_final" if latex else "expr_final"), text
    return value, text

  def search(self, parse, text: str) -> tuple[list, str | None, str | None]:
    """parse(text)'s values, and the answer's text and kind (None, None if none)."""
    if self._extract is None:
      raise RuntimeError("this math-verify has no parser.extract_match to guard")
    self.active, self.vetoed, self.kind, self.answer = True, False, None, None
    try:
      values = parse(text)
      return values, self.answer, self.kind
    finally:
      self.active = False


def _serve() -> None:
  """The worker's loop: one JSON request a line on stdin -> one JSON reply a line on
  stdout: ["equal", pred, gold, mode] -> true | false; ["find", text] -> [answer, how];
  null where the request failed."""
  import math_verify
  from math_verify import parser as mv_parser

  # The parent enforces the deadline; math-verify's SIGALRM timeouts are switched off (and
  # its warning about that silenced).
  logging.getLogger("math_verify").setLevel(logging.ERROR)

  # Strict: LaTeX only. math-verify's plain-text reader takes the last number it sees, so
  # it would accept "8n^2 + 4n + 1" for the gold "1", or "2, 3" for "3".
  latex_only = [math_verify.LatexExtractionConfig()]
  # Standard: math-verify's default extraction (parse's own default), behind the guard.
  default = [math_verify.LatexExtractionConfig(), math_verify.ExprExtractionConfig()]
  # parse looks extract_match up per call, so this wraps it for this process only. A
  # math-verify without it fails standard mode's checks, never strict mode's.
  guarded = _Guarded(getattr(mv_parser, "extract_match", None), math_verify.LatexExtractionConfig)
  if guarded._extract is not None:
    mv_parser.extract_match = guarded

  def parse(s):
    return math_verify.parse(_as_latex(s), latex_only, parsing_timeout=None)

  parse_gold = functools.lru_cache(maxsize=4096)(parse)  # a gold repeats G times per group

  def equal_strict(pred, gold):
    g = parse_gold(gold)
    return (bool(g) and not _undone(pred, gold)
            and math_verify.verify(g, parse(pred), timeout_seconds=None))

  @functools.lru_cache(maxsize=4096)  # evaluation asks for a sample's answer, then checks it
  def read(text):
    """(values, answer, how) of an answer or an untagged text, in standard mode: what
    math-verify's default extraction finds behind the guard; and, for text without $…$,
    \\(…\\), \\[…\\] or \\boxed, also all of it read as LaTeX (as strict mode reads an
    answer), so that "-2,1" is both math-verify's decimal -2.1 and MATH's list -2, 1."""
    values, answer, kind = guarded.search(
        lambda t: math_verify.parse(t, default, parsing_timeout=None), text)
    if kind is None:
      values = []
    if not _DELIMITED.search(text) and len(text) <= MAX_ANSWER_CHARS and not _too_deep(text):
      whole = parse(text)
      if whole and kind is None:
        return whole, text.strip(), "whole"
      values = values + whole
    return values, answer, kind

  def equal_standard(pred, gold):
    g, g_answer, _ = read(gold)
    p, p_answer, _ = read(pred)
    return bool(g) and bool(p) and not _undone(p_answer, g_answer) and math_verify.verify(
        g, p, float_rounding=_rounding(p_answer, g_answer), allow_set_relation_comp=True,
        timeout_seconds=None)

  def reply(request):
    if request[0] == "find":
      return list(read(request[1])[1:])
    _, pred, gold, mode = request
    return bool(equal_standard(pred, gold) if mode == "standard" else equal_strict(pred, gold))

  # Replies go to a private copy of stdout; anything the libraries print goes to stderr.
  out = os.fdopen(os.dup(1), "w")
  os.dup2(2, 1)
  sys.stdout = sys.stderr
  # Warm up before announcing readiness: the first parse of each kind imports parts of
  # SymPy lazily, which must not count against a caller's deadline.
  equal_strict("\\dfrac{1}{2}", "0.5")
  equal_strict("x = 2\\sqrt{2}", "(0, 1] \\cup \\{2\\}")
  try:  # standard mode failing here must not take strict mode (GRPO's reward) down too
    equal_standard("The answer is $-2 \\le x \\le 7$.", "x \\in [-2,7]")
    equal_standard("so 1,000.99m²", "1000.99")
  except Exception as e:  # noqa: BLE001 - reported; each standard check then fails alone
    print(f"r1jax math worker: standard mode does not work: {e!r}", file=sys.stderr)
  out.write("ready\n")
  out.flush()
  for line in sys.stdin:
    try:
      answer = reply(json.loads(line))
    except Exception:  # noqa: BLE001 - any failure of the check is a wrong answer
      answer = None
    out.write(json.dumps(answer) + "\n")
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
      chunk = os.read(fd, 4096)
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

  def ask(self, request: list, timeout: float):
    """The worker's reply to `request` (see _serve); None when the request failed, or the
    worker did not start, died or missed the `timeout`-second deadline."""
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
          return None
        self._ready = True
      try:
        self._proc.stdin.write((json.dumps(request) + "\n").encode())
        self._proc.stdin.flush()
      except OSError:
        self.kill()
        return None
      reply = self._readline(time.monotonic() + timeout)
      if reply is None:  # missed the deadline (or died): replace it now so that its
        self.kill()      # imports overlap with whatever the caller does next
        self.restarts += 1
        self._spawn()
        return None
      return json.loads(reply)

  def check(self, pred: str, gold: str, timeout: float, mode: str = "strict") -> bool:
    return self.ask(["equal", pred, gold, mode], timeout) is True


_WORKER = _Worker()
atexit.register(_WORKER.kill)


# ------------------------------------------------------------------------ public API


@functools.cache
def _require_math_verify() -> None:
  if importlib.util.find_spec("math_verify") is None:
    raise ImportError("math_equal needs math-verify: pip install 'math-verify>=0.8' "
                      "(or pip install -e '.[dev]')")


def _check_mode(mode: str) -> None:
  if mode not in ANSWER_MODES:
    raise ValueError(f"answer mode {mode!r}: use one of {ANSWER_MODES} (config.data.answer_mode "
                     "for evaluation, the reward 'accuracy' or 'accuracy_standard' for RL)")


def find_answer(text: str | None, mode: str = "strict", *,
                timeout: float = 2.0) -> tuple[str | None, str | None]:
  """(the final answer in `text`, how it was found), (None, None) if there is none.

  how: "answer_tag" or "boxed" (`extract_answer`, both modes); in standard mode, for a text
  with neither, "latex_final" or "expr_final" (which of math-verify's extraction configs
  found it, behind the guard; the answer as math-verify normalised it), or "whole" (the
  text read whole as LaTeX). Standard mode's search runs in the worker, with `timeout`.
  """
  _check_mode(mode)
  if not isinstance(text, str):
    return None, None
  answer, how = _tagged(text, join_boxes=mode == "standard")
  if answer is not None or mode == "strict" or not text.strip():
    return answer, how
  _require_math_verify()
  answer, how = _WORKER.ask(["find", text[-MAX_TEXT_CHARS:]], timeout) or (None, None)
  return answer, how


def _standard_piece(text: str) -> str | None:
  """What standard mode reads of `text`: its <answer>/\\boxed{} answer (None if longer than
  MAX_ANSWER_CHARS; a box's content boxed again if it has $…$ inside, which math-verify
  only reads right within its box), else its last MAX_TEXT_CHARS characters."""
  answer, how = _tagged(text, join_boxes=True)
  if answer is None:
    return text[-MAX_TEXT_CHARS:]
  if len(answer) > MAX_ANSWER_CHARS:
    return None
  return "\\boxed{" + answer + "}" if how == "boxed" and _DELIMITED.search(answer) else answer


def math_equal(pred: str | None, gold: str, *, timeout: float = 2.0,
               mode: str = "strict") -> bool:
  """Whether the answer `pred` equals the reference `gold`; False on failure or timeout.

  strict: `pred` is an answer (`extract_answer`'s). Words after a final number are dropped
  ("18 dollars" -> "18"). Plain numbers ("1,000", "-2.5", "$18") are then compared exactly
  in-process; either side longer than MAX_ANSWER_CHARS or nested deeper than MAX_NESTING is
  unequal at once; everything else goes to math-verify in the worker process, which gets
  `timeout` seconds before it is killed (a call that finds the worker restarting first
  waits for it to start). Both sides are read as LaTeX: as written when they contain $…$,
  \\(…\\) or \\boxed, else as \\boxed{…}.

  standard: `pred` and `gold` may be whole texts; each is replaced by its <answer>/\\boxed{}
  answer, if any (held to the bounds above), else by its last MAX_TEXT_CHARS characters.
  Then as strict, except that the worker reads both with math-verify's default extraction
  behind the guard (see the module docstring) and compares them with set-relation
  comparison and float rounding to the written decimals.

  Safe to call from any thread (calls are serialised). Never raises, except ImportError
  when math-verify is not installed and ValueError for a mode not in ANSWER_MODES.
  """
  _check_mode(mode)
  if not isinstance(pred, str) or not isinstance(gold, str) or not pred.strip():
    return False
  if mode == "standard":
    pred, gold = _standard_piece(pred), _standard_piece(gold)
    if pred is None or gold is None:
      return False
  elif len(pred) > MAX_ANSWER_CHARS or len(gold) > MAX_ANSWER_CHARS:
    return False
  try:
    pred = _drop_words(pred)
    p, g = _plain_number(pred), _plain_number(gold)
    if p is not None and g is not None:
      if p == g:
        return True
      if p.denominator == 1 and g.denominator == 1 and "." not in pred + gold:
        return False  # unequal integers; decimals go on to math-verify's rounding rules
    # Answers are held to the nesting bound here; longer texts (standard mode's untagged
    # completions) in the worker, candidate by candidate.
    if any(len(s) <= MAX_ANSWER_CHARS and _too_deep(s) for s in (pred, gold)):
      return False
    _require_math_verify()
    return _WORKER.check(pred, gold, timeout, mode)
  except ImportError:
    raise
  except Exception as e:  # noqa: BLE001 - a checker failure must not stop training
    log.warning("math_equal(%.40r, %.40r) failed: %r", pred, gold, e)
    return False


def accuracy_reward(prompts: list[str], completions: list[str], *, answer: list[str],
                    answer_mode: str = "strict", **_) -> list[float]:
  """1.0 where the completion's final answer math-equals the gold `answer`, else 0.0.

  answer_mode "strict" (the GRPO reward `accuracy`): the answer in <answer>/\\boxed{} only;
  "standard" (`accuracy_standard`): else the final answer math-verify finds in the text.
  """
  del prompts
  _check_mode(answer_mode)
  if answer_mode == "strict":
    preds = [extract_answer(c) for c in completions]
  else:
    preds = list(completions)
  return [float(math_equal(p, str(a), mode=answer_mode))
          for p, a in zip(preds, answer, strict=True)]


def accuracy_standard_reward(prompts: list[str], completions: list[str], *,
                             answer: list[str], **_) -> list[float]:
  """accuracy_reward in standard mode: the reward `accuracy_standard`, and evaluation's."""
  return accuracy_reward(prompts, completions, answer=answer, answer_mode="standard")
