"""Test cases of code problems, parsed and judged by the caller (r1jax.rewards.code_cases),
and the extraction of a completion's program: forms accepted, shapes refused with the
reason, verdicts on returned values, and extract_code linear on hostile text."""

import json
import time

import pytest

from r1jax.rewards.code import extract_code
from r1jax.rewards.code_cases import CallCase, IoCase, judge, parse_asserts, parse_tests
from r1jax.rewards.sandbox import decode, encode


def _value(v):
  return ["value", encode(v)]


@pytest.mark.parametrize("test, returned, verdict", [
    ("assert f(2) == 4", 4, "ok"),
    ("assert f(2) == 4", 4.0, "ok"),  # Python's ==, as the assert itself would judge
    ("assert f(2) == 4", 5, "wrong"),
    ("assert 4 == f(2)", 4, "ok"),
    ("assert f([1, 2], k=3) == (1, 2)", (1, 2), "ok"),
    ("assert f([1, 2], k=3) == (1, 2)", [1, 2], "wrong"),  # a list is not a tuple
    ("assert set(f(1)) == {1, 2}", [2, 1, 2], "ok"),
    ("assert sorted(f(1)) == [1, 2, 3]", [3, 1], "wrong"),
    ("assert set(f(1)) == set([1, 2])", [2, 1], "ok"),
    ("assert f(1) is True", True, "ok"),
    ("assert f(1) is True", 1, "wrong"),
    ("assert f(1) is None", None, "ok"),
    ("assert f(1) is not None", 0, "ok"),
    ("assert f(1)", [0], "ok"),
    ("assert not f(1)", "", "ok"),
    ("assert math.isclose(f(2), 3.14159, rel_tol=1e-3)", 3.1416, "ok"),
    ("assert math.isclose(f(2), 3.14159, rel_tol=1e-3)", "3.1416", "wrong"),
    ("assert abs(f(2) - 0.5) < 1e-6", 0.5000001, "ok"),
    ("assert abs(f(2) - 0.5) < 1e-6", 0.6, "wrong"),
    ("assert round(f(2), 2) == 1.23", 1.2349, "ok"),
    ("assert len(f('ab')) == 2", {"a": 1, "b": 2}, "ok"),
    ("assert f(1) == {'a': [1, (2, 3)]}", {"a": [1, (2, 3)]}, "ok"),
    ("assert f(1) == float('inf')", float("inf"), "ok"),
    ("assert f(-1) == -2", -2, "ok"),
])
def test_judged_by_value(test, returned, verdict):
  (check,) = parse_asserts(test)
  assert judge(check, _value(returned)) == verdict


def test_judged_as_python_judges_the_same_assert():
  assert judge(parse_asserts("assert str(f()) == '{1, 2}'")[0], _value({1, 2})) == "ok"
  assert judge(parse_asserts("assert str(f()) == 'frozenset({1, 2})'")[0], _value({1, 2})) == "wrong"
  assert judge(parse_asserts("assert str(f()) == 'frozenset({1})'")[0],
               _value(frozenset({1}))) == "ok"
  assert judge(parse_asserts("assert math.isclose(f(), 1.0)")[0], _value(True)) == "ok"
  deep = json.dumps([[[]]])
  for _ in range(5000):
    deep = "[" + deep + "]"
  with pytest.raises(ValueError, match="nested too deeply"):
    parse_tests(deep)


def test_records_that_are_not_values():
  (check,) = parse_asserts("assert f(2) == 4")
  assert judge(check, ["raised", "ValueError"]) == "crash"
  assert judge(check, ["unencodable", "MyInt"]) == "wrong"
  for junk in (None, "ok", ["ok"], ["value"], [1, 4], ["value", {"x": 4}], ["pass", 4]):
    assert judge(check, junk) in ("crash", "wrong"), junk
  assert judge(check, ["value", {"t": 4}]) == "wrong"  # malformed encoding


def test_call_targets_and_arguments():
  (c,) = parse_asserts("assert Solution().twoSum([2, 7], target=9) == [0, 1]")
  assert c.target == (("name", "Solution"), ("call",), ("attr", "twoSum"))
  assert c.args == ([2, 7],) and c.kwargs == (("target", 9),)
  spec = c.call_spec()
  assert "[0, 1]" not in str(spec)  # the expected value never reaches the sandbox
  assert decode(spec[1]) == [[2, 7]] and decode(spec[2]) == {"target": 9}
  checks = parse_asserts("import math\nassert f(1) == 1\nassert f(2) == 4\n")
  assert [ch.args for ch in checks] == [(1,), (2,)]


@pytest.mark.parametrize("test, reason", [
    ("def check(candidate):\n  assert candidate(1) == 2", "is not an assert"),
    ("assert f(g(1)) == 2", "not a literal"),
    ("assert f(x) == 2", "not a literal"),
    ("assert f(1) == g(2)", "not a literal"),
    ("assert f(1) < 3", "compare with"),
    ("assert f(1) == 2 == 3", "compare with"),
    ("assert f(1) is 3", "identity"),
    ("assert f(*[1]) == 1", "not supported"),
    ("assert 1 == 1", "must be a call"),
    ("x = f(1)\nassert x == 2", "is not an assert"),
    ("import math", "no assert"),
    ("assert f((", "not valid Python"),
    ("assert (lambda: 1)() == 1", "call a function"),
    ("assert f(b'ab') == 2", "not plain data"),
    ("assert f(1j) == 2", "not plain data"),
    ("assert f(" + "-" * 3000 + "1) == 1", "nested too deeply|not a literal|too many|recursion"),
])
def test_unjudgeable_tests_are_refused(test, reason):
  with pytest.raises(ValueError, match=reason):
    parse_tests([test])


def test_forms():
  assert parse_tests({"inputs": ["1\n"], "outputs": ["2\n"]}) == [IoCase("1\n", "2\n")]
  (case,) = parse_tests({"fn_name": "add", "inputs": [[1, 2]], "outputs": [[3]]})
  assert isinstance(case, CallCase) and case.checks[0].args == (1, 2)
  assert judge(case.checks[0], _value(3)) == "ok"  # APPS: [3] also matches 3
  assert judge(case.checks[0], _value((3,))) == "ok"  # and tuples read as lists
  assert judge(case.checks[0], _value(4)) == "wrong"
  with pytest.raises(ValueError, match="test 1"):
    parse_tests(["assert f(1) == 1", "assert f(1) < 1"])


def test_encode_is_exact_about_types():
  class MyInt(int):
    pass
  for bad in (MyInt(3), object(), [1, MyInt(2)], {"a": object()}, b"bytes"):
    with pytest.raises(TypeError):
      encode(bad)
  nested = []
  for _ in range(100):
    nested = [nested]
  with pytest.raises(ValueError):
    encode(nested)
  for good in (None, True, 1, 1.5, "s", [1, (2,)], {1, 2}, {"k": {"t": 1}}):
    assert decode(encode(good)) == good


def test_extract_code_is_linear_on_hostile_text():
  n = 12_000
  hostile = ["`" * n, "```\n" * (n // 4), "```python\n" + "`" * n,
             "```" + "x" * n, ("```py\n" + "a" * 10) * (n // 16)]
  benign = "word " * (n // 5)

  def cost(text):
    start = time.perf_counter()
    for _ in range(20):
      extract_code(text)
    return time.perf_counter() - start

  base = max(cost(benign), 1e-4)
  for text in hostile:
    assert cost(text) < 50 * base + 0.05, text[:20]
  assert extract_code("```python\nx = 1\n```" + "`" * n) == "x = 1\n"
