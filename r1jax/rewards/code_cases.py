"""A code problem's test cases, parsed and judged by the caller, never by the program.

    parse_tests(tests) -> [IoCase | CallCase, ...]     ValueError for anything else
    judge(check, record) -> "ok" | "wrong" | "crash"   one call's returned value against its check

Forms accepted (a list of them, or its JSON string):
  {"input": str, "output": str}            stdin -> stdout, compared by the caller
  {"inputs": [...], "outputs": [...]}      APPS / TACO stdin/stdout
  {"fn_name": f, "inputs": [[args]], "outputs": [...]}   APPS / TACO call-based
  "assert f(2) == 4"  (or {"assert": ...})  one or more asserts, LeetCode / MBPP style

An assert is parsed with `ast` into a call the sandbox makes (a function, `obj.method` or
`Cls().method`, with literal arguments) and a check the caller applies to the returned
value: `== value`, `is True/False/None`, `is not None`, truthy (`assert f(x)`), falsy
(`assert not f(x)`), `math.isclose(f(x), v, rel_tol=, abs_tol=)` and `abs(f(x) - v) < tol`;
the call may be wrapped in set/sorted/len/round/... applied by the caller too. Any other
shape is refused with the reason, never run: a test the caller cannot judge from data is
a test a program could forge.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
from typing import Any, Union

from r1jax.rewards.sandbox import decode, distinct_hashes, encode


def _set(values):
  return set(distinct_hashes(list(values)))


def _frozenset(values):
  return frozenset(distinct_hashes(list(values)))


def _dict(pairs):
  pairs = list(pairs.items() if isinstance(pairs, dict) else pairs)
  return dict(zip(distinct_hashes([k for k, _ in pairs]), (v for _, v in pairs)))


# Applied by the caller to a returned value (or to a literal on the expected side); sets
# and dicts only of values that do not share hashes en masse (sandbox.distinct_hashes).
_TRANSFORMS = {"set": _set, "frozenset": _frozenset, "dict": _dict, "sorted": sorted,
               "list": list, "tuple": tuple, "len": len, "abs": abs, "round": round,
               "str": str, "int": int, "float": float, "bool": bool, "sum": sum, "min": min,
               "max": max}
# Those that take any iterable in Python (len does not): the sandbox may list an iterator.
_ITERABLE_TRANSFORMS = ("set", "frozenset", "sorted", "list", "tuple", "sum", "min", "max")
_SINGLETONS = (True, False, None)


@dataclasses.dataclass(frozen=True)
class IoCase:
  stdin: str
  expected: str


@dataclasses.dataclass(frozen=True)
class Check:
  """One call the sandbox makes and what its value must satisfy.

  target: the callee as steps from the program's globals, e.g. (("name", "f"),) or
  (("name", "Solution"), ("call",), ("attr", "twoSum")); args/kwargs: plain data;
  transforms: (name, *extra args) applied innermost first; op: "==", "is", "is not",
  "truthy", "falsy", "isclose" (tolerance = (rel_tol, abs_tol)), "abs<", "abs<="
  (tolerance = (tol,)), "apps" (APPS's ==, also against outputs[i][0] and with tuples as
  lists); expected: the value compared with.
  """
  target: tuple
  args: tuple
  kwargs: tuple  # (name, value) pairs
  transforms: tuple = ()
  op: str = "=="
  expected: Any = None
  tolerance: tuple = ()
  source: str = ""

  def call_spec(self) -> list:
    """What the sandbox gets: [target, encoded args, encoded kwargs, materialize]; never
    the expected value. materialize: the test reads the value through list/sorted/set/...,
    so the sandbox turns an iterator it returns (a generator, dict_keys) into a list."""
    return [[list(step) for step in self.target], encode(list(self.args)),
            encode(dict(self.kwargs)),
            bool(self.transforms) and self.transforms[0][0] in _ITERABLE_TRANSFORMS]


@dataclasses.dataclass(frozen=True)
class CallCase:
  checks: tuple[Check, ...]


Case = Union[IoCase, CallCase]


def parse_tests(tests) -> list[Case]:
  """The cases of `tests` (see the module docstring); ValueError, naming the case and the
  reason, for anything malformed or unjudgeable."""
  try:
    return _parse_tests(tests)
  except RecursionError:
    raise ValueError("the tests are nested too deeply to read") from None


def _parse_tests(tests) -> list[Case]:
  if isinstance(tests, str):
    try:
      tests = json.loads(tests)
    except json.JSONDecodeError:
      tests = [tests]  # not JSON: one assert-style test
  if isinstance(tests, dict) and "inputs" in tests:  # APPS / TACO
    ins, outs = tests["inputs"], tests.get("outputs")
    if not isinstance(ins, list) or not isinstance(outs, list) or len(ins) != len(outs):
      raise ValueError("APPS-style tests need 'inputs' and 'outputs' lists of equal length")
    if tests.get("fn_name"):
      return [CallCase((_apps_check(tests["fn_name"], i, o),)) for i, o in zip(ins, outs)]
    tests = [{"input": i, "output": o} for i, o in zip(ins, outs)]
  if isinstance(tests, (str, dict)):
    tests = [tests]
  if not isinstance(tests, (list, tuple)) or not tests:
    raise ValueError(f"no tests given ({str(tests)[:80]!r}): pass a non-empty list of "
                     "{'input': ..., 'output': ...} dicts or assert strings")
  cases = []
  for i, case in enumerate(tests):
    if isinstance(case, dict) and "assert" in case:
      case = case["assert"]
    if isinstance(case, str):
      try:
        cases.append(CallCase(parse_asserts(case)))
      except ValueError as e:
        raise ValueError(f"test {i}: {e}") from None
    elif (isinstance(case, dict) and isinstance(case.get("input"), str)
          and isinstance(case.get("output"), str)):
      cases.append(IoCase(case["input"], case["output"]))
    else:
      raise ValueError(f"test {i} is {str(case)[:80]!r}: use {{'input': str, 'output': str}}"
                       " or an assert string")
  return cases


def _apps_check(fn_name, inputs, output) -> Check:
  if not isinstance(fn_name, str) or not fn_name.isidentifier():
    raise ValueError(f"fn_name {fn_name!r} is not a function name")
  if not isinstance(inputs, list):
    raise ValueError(f"call-based inputs must be argument lists, got {str(inputs)[:80]!r}")
  check = Check((("apps", fn_name),), tuple(inputs), (), op="apps", expected=output,
                source=f"{fn_name}(*{str(inputs)[:60]})")
  return _sendable(check)


# -------------------------------------------------------------------------- asserts


def parse_asserts(source: str) -> tuple[Check, ...]:
  """The checks of one test string: its assert statements (imports are ignored: the
  checks run in the caller)."""
  try:
    tree = ast.parse(source)
  except (SyntaxError, ValueError) as e:
    raise ValueError(f"not valid Python: {e}") from None
  checks = []
  for stmt in tree.body:
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
      continue
    text = ast.get_source_segment(source, stmt) or ""
    if not isinstance(stmt, ast.Assert):
      raise ValueError(f"{text[:80]!r} is not an assert; a test string holds asserts on "
                       "calls, e.g. 'assert f(2) == 4'")
    try:
      checks.append(_sendable(dataclasses.replace(_check(stmt.test), source=text)))
    except ValueError as e:
      raise ValueError(f"cannot judge {text[:80]!r} from data: {e}") from None
  if not checks:
    raise ValueError("no assert in the test")
  return tuple(checks)


def _sendable(check: Check) -> Check:
  """`check`, once its call is known to reach the sandbox as plain data (bytes, complex or
  Ellipsis arguments would not)."""
  try:
    check.call_spec()
  except (TypeError, ValueError) as e:
    raise ValueError(f"the call's arguments are not plain data: {e}") from None
  return check


def _check(node: ast.expr) -> Check:
  if isinstance(node, ast.Compare) and len(node.ops) > 1:
    raise ValueError("compare with one ==, 'is', or abs(f(x) - v) < tol")
  if isinstance(node, ast.Compare):
    left, op, right = node.left, node.ops[0], node.comparators[0]
    if isinstance(op, ast.Eq):
      call, value = _call_and_value(left, right)
      return dataclasses.replace(call, op="==", expected=value)
    if isinstance(op, (ast.Is, ast.IsNot)):
      value = _value(right)
      if not any(value is s for s in _SINGLETONS) or isinstance(op, ast.IsNot) and value is not None:
        raise ValueError("only 'is True', 'is False', 'is None' and 'is not None' compare "
                         "by identity")
      return dataclasses.replace(_call(left), op="is" if isinstance(op, ast.Is) else "is not",
                                 expected=value)
    if (isinstance(op, (ast.Lt, ast.LtE)) and isinstance(left, ast.Call)
        and _name(left.func) == "abs" and len(left.args) == 1
        and isinstance(left.args[0], ast.BinOp) and isinstance(left.args[0].op, ast.Sub)):
      call, value = _call_and_value(left.args[0].left, left.args[0].right)
      return dataclasses.replace(call, op="abs<" if isinstance(op, ast.Lt) else "abs<=",
                                 expected=value, tolerance=(_number(right),))
    raise ValueError("compare with ==, 'is', or abs(f(x) - v) < tol")
  if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
    return dataclasses.replace(_call(node.operand), op="falsy")
  if isinstance(node, ast.Call) and _name(node.func) in ("isclose", "math.isclose"):
    if len(node.args) != 2 or any(k.arg not in ("rel_tol", "abs_tol") for k in node.keywords):
      raise ValueError("isclose takes the call, the value, rel_tol= and abs_tol=")
    call, value = _call_and_value(*node.args)
    tol = {"rel_tol": 1e-9, "abs_tol": 0.0} | {k.arg: _number(k.value) for k in node.keywords}
    return dataclasses.replace(call, op="isclose", expected=_number_value(value),
                               tolerance=(tol["rel_tol"], tol["abs_tol"]))
  return dataclasses.replace(_call(node), op="truthy")


def _call_and_value(a: ast.expr, b: ast.expr) -> tuple[Check, Any]:
  """(the call, the literal value) of two operands, in either order."""
  try:
    return _call(a), _value(b)
  except ValueError as first:
    try:
      return _call(b), _value(a)
    except ValueError:
      raise first from None


def _call(node: ast.expr) -> Check:
  """A (possibly transformed) call of the program's code with literal arguments."""
  transforms = []
  while (isinstance(node, ast.Call) and _name(node.func) in _TRANSFORMS and node.args
         and isinstance(node.args[0], ast.Call) and not _is_value(node.args[0])):
    if node.keywords or len(node.args) > (2 if _name(node.func) == "round" else 1):
      raise ValueError(f"{_name(node.func)}() around the call takes no other arguments")
    transforms.append((_name(node.func), *(_value(a) for a in node.args[1:])))
    node = node.args[0]
  if not isinstance(node, ast.Call):
    raise ValueError("the tested expression must be a call, e.g. f(2)")
  if any(isinstance(a, ast.Starred) for a in node.args) or any(
      k.arg is None for k in node.keywords):
    raise ValueError("*args and **kwargs are not supported in a tested call")
  return Check(_target(node.func), tuple(_value(a) for a in node.args),
               tuple((k.arg, _value(k.value)) for k in node.keywords),
               tuple(reversed(transforms)))


def _target(node: ast.expr) -> tuple:
  if isinstance(node, ast.Name):
    return (("name", node.id),)
  if isinstance(node, ast.Attribute):
    return _target(node.value) + (("attr", node.attr),)
  if isinstance(node, ast.Call) and not node.args and not node.keywords:
    return _target(node.func) + (("call",),)
  raise ValueError("call a function, obj.method or Cls().method")


def _name(node: ast.expr) -> str | None:
  if isinstance(node, ast.Name):
    return node.id
  if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
    return f"{node.value.id}.{node.attr}"
  return None


def _is_value(node: ast.expr) -> bool:
  try:
    _value(node)
    return True
  except ValueError:
    return False


def _value(node: ast.expr) -> Any:
  """A literal, or set/tuple/sorted/float(...)/... of literals, evaluated here."""
  try:
    return ast.literal_eval(node)
  except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
    pass
  if (isinstance(node, ast.Call) and _name(node.func) in _TRANSFORMS and not node.keywords
      and len(node.args) <= 2):
    try:
      return _TRANSFORMS[_name(node.func)](*(_value(a) for a in node.args))
    except (TypeError, ValueError, OverflowError) as e:
      raise ValueError(f"{ast.unparse(node)[:60]}: {e}") from None
  if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
    value = _value(node.operand)
    if type(value) in (int, float):
      return -value
  raise ValueError(f"{ast.unparse(node)[:60]!r} is not a literal value")


def _number(node: ast.expr) -> float:
  return _number_value(_value(node))


def _number_value(value) -> float:
  if type(value) not in (int, float):
    raise ValueError(f"{value!r} is not a number")
  return value


# ---------------------------------------------------------------------------- judging


def judge(check: Check, record) -> str:
  """"ok", "wrong" or "crash" for one call's record from the sandbox: ["value", encoded],
  ["raised", name] (crash), ["unencodable", type name] (wrong: not plain data)."""
  if not (isinstance(record, list) and len(record) == 2 and isinstance(record[0], str)):
    return "crash"
  kind, data = record
  if kind == "unencodable":
    return "wrong"
  if kind != "value":
    return "crash"
  try:
    value = decode(data)
    for name, *extra in check.transforms:
      value = _TRANSFORMS[name](value, *extra)
    return "ok" if _holds(check, value) else "wrong"
  except (TypeError, ValueError, OverflowError, RecursionError, MemoryError):
    return "wrong"


def _holds(check: Check, value) -> bool:
  op, expected = check.op, check.expected
  if op == "==":
    return bool(value == expected)
  if op == "is":
    return value is expected
  if op == "is not":
    return value is not expected
  if op in ("truthy", "falsy"):
    return bool(value) == (op == "truthy")
  if type(value) not in (bool, int, float) or type(expected) not in (bool, int, float):
    return op == "apps" and _apps_equal(value, expected)
  if op == "isclose":
    return math.isclose(value, expected, rel_tol=check.tolerance[0],
                        abs_tol=check.tolerance[1])
  if op in ("abs<", "abs<="):
    gap = abs(value - expected)
    return gap < check.tolerance[0] if op == "abs<" else gap <= check.tolerance[0]
  return op == "apps" and _apps_equal(value, expected)


def _apps_equal(value, expected) -> bool:
  """APPS's call-based comparison: tuples read as lists; a one-element expected list
  also matches its element."""
  def lists(v):
    if isinstance(v, (list, tuple)):
      return [lists(x) for x in v]
    return v
  value = lists(value)
  return value == expected or (isinstance(expected, list) and len(expected) == 1
                               and value == expected[0])
