"""The code sandbox and reward: right and wrong programs in both test styles, and hostile
programs, each of which must get zero reward, leave the caller and its files unharmed and
leave no process behind. Layer-2-only checks (audit hook off) run where namespaces work."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

from r1jax.rewards import REWARDS, code as sandbox, score
from r1jax.rewards.code import (check_code, code_reward, extract_code, make_code_reward,
                                run_program, sandbox_layers)
from r1jax.rewards.code_cases import CallCase, Check, IoCase, parse_tests

LIMITS = dict(timeout=1.0, memory_mb=256)
SQUARE = "def f(x):\n  return x * x\n"
ADD = "a, b = map(int, input().split())\nprint(a + b)\n"
ADD_CASES = [{"input": "1 2\n", "output": "3\n"}, {"input": "10 -4", "output": "6"}]


def _needs(*layers):
  missing = [name for name in layers if not sandbox_layers()[name]]
  if missing:
    pytest.skip(f"this machine's sandbox lacks {missing}")


def _processes_with(marker: str) -> list[str]:
  """Command lines (of live, non-zombie processes) containing `marker`; psutil-free."""
  found = []
  for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
      with open(f"/proc/{pid}/cmdline", "rb") as f:
        cmdline = f.read()
      with open(f"/proc/{pid}/stat", "rb") as f:
        state = f.read().rpartition(b")")[2].split()[0]
    except OSError:
      continue
    if marker.encode() in cmdline and state != b"Z":
      found.append(cmdline.replace(b"\0", b" ")[:200].decode(errors="replace"))
  return found


@pytest.fixture
def marker(tmp_path, monkeypatch):
  """Runs in this test put their temporary directory, and so their command lines, under
  tmp_path; afterwards no such process may be left (killed ones get a moment to go)."""
  monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
  yield str(tmp_path)
  deadline = time.monotonic() + 5
  while (left := _processes_with(str(tmp_path))) and time.monotonic() < deadline:
    time.sleep(0.05)
  assert not left, f"sandbox processes left behind: {left}"
  assert not os.listdir(tmp_path), "the sandbox's temporary directory was not removed"


@pytest.fixture
def canary():
  """A process of the caller's, outside the sandbox, that hostile programs must not kill."""
  proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
  yield proc
  assert proc.poll() is None, "a sandboxed program killed a process of the caller"
  proc.kill()
  proc.wait()


# ------------------------------------------------------------------ extraction, parsing


@pytest.mark.parametrize("text, expected", [
    ("```python\nprint(1)\n```", "print(1)\n"),
    ("```py\na\n```\ntext\n```python\nb\n```", "b\n"),  # the last python block
    ("```python\nx\n```\n```text\nnot code\n```", "x\n"),
    ("<think>hm</think><answer>print(2)</answer>", "print(2)"),
    ("<answer>\n```\nprint(3)\n```\n</answer>", "print(3)\n"),
    ("no code here", None),
    (None, None),
])
def test_extract_code(text, expected):
  assert extract_code(text) == expected


def test_parse_tests_formats():
  io = [IoCase("1 2\n", "3\n"), IoCase("10 -4", "6")]
  assert parse_tests(ADD_CASES) == io
  assert parse_tests(json.dumps(ADD_CASES)) == io
  assert parse_tests({"inputs": ["1 2\n", "10 -4"], "outputs": ["3\n", "6"]}) == io
  square = Check((("name", "f"),), (2,), (), op="==", expected=4, source="assert f(2) == 4")
  assert parse_tests("assert f(2) == 4") == [CallCase((square,))]
  two = parse_tests(["assert f(1) == 1", {"assert": "assert f(3) == 9"}])
  assert [c.checks[0].args for c in two] == [(1,), (3,)]


@pytest.mark.parametrize("tests, match", [
    ([], "no tests given"), (None, "no tests given"), ("[]", "no tests given"),
    (["assert f(("], "not valid Python"), ([{"input": "1"}], "test 0"),
    ({"inputs": ["1"], "outputs": []}, "equal length"),
])
def test_bad_tests_are_clear_errors(tests, match):
  with pytest.raises(ValueError, match=match):
    check_code(SQUARE, tests)


def test_bad_arguments_are_clear_errors():
  with pytest.raises(TypeError, match="code must be a str"):
    run_program(b"print(1)")
  with pytest.raises(TypeError, match="code must be a str"):
    check_code(None, ["assert True"])
  for timeout in (-1, 0, float("nan"), float("inf"), "2"):
    with pytest.raises(ValueError, match="timeout"):
      run_program("pass", timeout=timeout)
  with pytest.raises(ValueError, match="memory_mb"):
    run_program("pass", memory_mb=8)
  with pytest.raises(ValueError, match="one entry"):
    code_reward(["p"], ["c"], tests=[ADD_CASES, ADD_CASES])


# ------------------------------------------------------------------- correct and wrong


def test_layers_report(marker):
  layers = sandbox_layers()
  parts = ("pid_namespace", "network_namespace", "ipc_namespace", "caller_files_hidden",
           "writes_confined")
  assert layers["audit_hook"] and set(layers) == {
      "namespaces", "audit_hook", "landlock", "landlock_abi", "seccomp",
      "capabilities_dropped", "contained", *parts}
  if layers["namespaces"]:  # measured from inside a run: all of layer 2 took effect
    assert all(layers[p] for p in parts) and layers["contained"], layers


def test_stdin_stdout_cases(marker):
  assert check_code(ADD, ADD_CASES, **LIMITS) == sandbox.CodeResult(1.0, "ok", ("ok", "ok"))
  # stripped output, trailing spaces of each line ignored; inner spacing is not
  assert check_code("print(' 3  \\n')", [{"input": "", "output": "3"}]).status == "ok"
  assert check_code("print('3 4')", [{"input": "", "output": "3  4"}]).status == "wrong"
  wrong = check_code(ADD.replace("a + b", "a * b"), ADD_CASES, **LIMITS)
  assert wrong == sandbox.CodeResult(0.0, "wrong", ("wrong", "wrong"))
  half = check_code("print(3)", ADD_CASES, **LIMITS)
  assert half.fraction_passed == 0.5 and half.cases == ("ok", "wrong")


def test_assert_cases(marker):
  tests = ["assert f(2) == 4", "assert f(-3) == 9", "assert f(0) == 1"]
  r = check_code(SQUARE, tests, **LIMITS)
  assert r.cases == ("ok", "ok", "wrong") and r.fraction_passed == pytest.approx(2 / 3)
  assert check_code(SQUARE + "raise ValueError", tests[:1], **LIMITS).status == "crash"
  assert check_code("def f(x:\n  pass", tests[:1], **LIMITS).status == "crash"
  # the test runs in the program's globals, LeetCode style
  solution = "class Solution:\n  def twoSum(self, nums, t):\n    return [0, 1]\n"
  assert check_code(solution, ["assert Solution().twoSum([2, 7], 9) == [0, 1]"]).status == "ok"


def test_call_tests_take_what_python_takes(marker):
  """Right programs pass where Python's own assert (or APPS's harness) passes them: an
  iterator read through list/sorted, a Counter compared with a dict, a set argument that
  is mutated, an APPS call-based test answered by a Solution method."""
  gen = "def f(n):\n  return (i * i for i in range(n))\n"
  r = check_code(gen, ["assert list(f(3)) == [0, 1, 4]", "assert sorted(f(3)) == [0, 1, 4]",
                       "assert len(f(3)) == 3", "assert f(3) == [0, 1, 4]"], **LIMITS)
  assert r.cases == ("ok", "ok", "wrong", "wrong"), r  # len() of a generator: Python errs too
  counter = "from collections import Counter\ndef f(s):\n  return Counter(s)\n"
  assert check_code(counter, ["assert f('aab') == {'a': 2, 'b': 1}"], **LIMITS).status == "ok"
  mutate = "def f(s):\n  s.add(3)\n  return sorted(s)\n"
  assert check_code(mutate, ["assert f({1, 2}) == [1, 2, 3]"], **LIMITS).status == "ok"
  apps = {"fn_name": "add", "inputs": [[1, 2], [2, 2]], "outputs": [3, [4]]}
  solution = "class Solution:\n  def add(self, a, b):\n    return a + b\n"
  assert check_code(solution, apps, **LIMITS).cases == ("ok", "ok")
  assert check_code("def add(a, b):\n  return a - b\n", apps, **LIMITS).cases == ("wrong",
                                                                                  "wrong")


def test_run_program_result(marker):
  r = run_program("import sys\nprint(input()[::-1])\nprint('e', file=sys.stderr)",
                  stdin="abc\n", **LIMITS)
  assert (r.status, r.stdout, r.stderr, r.returncode, r.truncated) == ("ok", "cba\n", "e\n",
                                                                       0, False)
  assert run_program("exit()", **LIMITS).status == "ok"  # exit() exists despite -S
  assert run_program("import sys; sys.exit(3)", **LIMITS).status == "crash"
  # stdin programs may end early with exit code 0, a common idiom
  assert check_code("print(3)\nimport sys\nsys.exit(0)\nprint(4)",
                    [{"input": "", "output": "3"}], **LIMITS).status == "ok"


def test_code_reward_parallel_and_registered(marker):
  completions = [f"<think>t</think><answer>\n```python\n{ADD}```\n</answer>",
                 "```python\nprint(0)\n```", "no program", "```python\nwhile True: pass\n```"]
  tests = [json.dumps(ADD_CASES)] * 3 + [ADD_CASES]
  start = time.monotonic()
  rewards = make_code_reward(timeout=1.0, max_workers=4)(["p"] * 4, completions, tests=tests)
  assert rewards == [1.0, 0.0, 0.0, 0.0]
  assert time.monotonic() - start < 6  # the timeout runs beside the others, once
  assert REWARDS["code"] is code_reward
  total, parts = score({"code": 1.0}, ["p"] * 2, completions[:2], tests=tests[:2])
  assert total == [1.0, 0.0] and parts["errors/code"] == 0.0


# -------------------------------------------------------------------------- hostile


def _assert_zero(code, tests=({"input": "", "output": ""},), status=None, **limits):
  """`code` (which would pass if its attack worked) scores zero; returns its CodeResult."""
  r = check_code(code, list(tests), **(LIMITS | limits))
  assert r.fraction_passed == 0.0 and r.status in sandbox.STATUSES, r
  if status is not None:
    assert r.status in ((status,) if isinstance(status, str) else status), r
  return r


def test_infinite_loop(marker):
  start = time.monotonic()
  _assert_zero("while True:\n  pass", status="timeout", timeout=0.5)
  _assert_zero("import time\ntime.sleep(100)", status="timeout", timeout=0.5)
  assert time.monotonic() - start < 4


@pytest.mark.parametrize("bomb", [
    "import os\nwhile True:\n  os.fork()",
    "import os\nwhile True:\n  try:\n    os.fork()\n  except OSError:\n    pass",
    "import os, sys\nwhile True:\n  os.posix_spawn(sys.executable, [sys.executable], {})",
    "import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'while 1: pass'])",
    "import multiprocessing as mp\nmp.Process(target=print).start()",
    "import pty\npty.fork()",
])
def test_fork_bomb(marker, bomb):
  _assert_zero(bomb, status=("crash", "timeout"), timeout=0.5)


def test_escaped_children_are_killed(marker):
  """With the hook off, the kernel refuses the fork (seccomp): no child to escape."""
  _needs("seccomp")
  code = ("import os, time\nfor _ in range(8):\n  if os.fork() == 0:\n    os.setsid()\n"
          "    time.sleep(100)\nprint('forked')")
  r = run_program(code, _audit_hook=False, **LIMITS)
  assert r.status == "crash" and "Operation not permitted" in r.stderr, r


@pytest.mark.parametrize("bomb", [
    "a = []\nwhile True:\n  a.append(' ' * 10**7)",
    "x = bytearray(1 << 34)",
    "print('x' * 10**9)",
])
def test_memory_bomb(marker, bomb):
  _assert_zero(bomb, status="limit")


def test_huge_output(marker):
  r = run_program("while True:\n  print('x' * 10**6)", output_bytes=1 << 16, **LIMITS)
  assert r.status == "limit" and r.truncated and len(r.stdout) == 1 << 16
  _assert_zero("import sys\nwhile True:\n  sys.stderr.write('y' * 10**6)", status="limit")


def test_recursion_bomb(marker):
  _assert_zero("def f(n):\n  return f(n + 1)\nf(0)", status="crash")
  _assert_zero("import sys\nsys.setrecursionlimit(10**9)\ndef f(n):\n  return f(n + 1)\nf(0)",
               status=("crash", "timeout", "limit"), memory_mb=64)


def _writers(target: str, home_target: str) -> list[str]:
  """Programs that print "ok" if they managed to create `target` or `home_target`."""
  return [
      f"open({target!r}, 'w').write('x')\nprint('ok')",
      f"open({home_target!r}, 'w').write('x')\nprint('ok')",
      f"import pathlib\npathlib.Path({target!r}).write_text('x')\nprint('ok')",
      f"import os\nfd = os.open({os.path.dirname(target)!r}, os.O_RDONLY)\n"
      f"os.close(os.open({os.path.basename(target)!r}, os.O_CREAT | os.O_WRONLY, dir_fd=fd))"
      "\nprint('ok')",
      f"import os\nos.symlink({target!r}, 'link')\nopen('link', 'w').write('x')\nprint('ok')",
      f"import os\nos.chdir({os.path.dirname(target)!r})\n"
      f"open({os.path.basename(target)!r}, 'w')\nprint('ok')",
      f"import shutil\nopen('f', 'w').write('x')\nshutil.move('f', {target!r})\nprint('ok')",
      # tampering: patch what a hook written in Python might call, add a permissive hook
      "import builtins, os, posixpath, sys\nbuiltins.isinstance = lambda *a: True\n"
      "os.path.realpath = posixpath.realpath = lambda p: os.getcwd() + '/x'\n"
      "os.fspath = lambda p: 'x'\nsys.modules['posix'].getcwd = lambda: '/'\n"
      f"sys.addaudithook(lambda *a: None)\nopen({target!r}, 'w')\nprint('ok')",
  ]


def test_writes_outside_the_sandbox(marker, tmp_path):
  target = str(tmp_path / "escape.txt")
  home_target = os.path.join(os.path.expanduser("~"), f"r1jax-escape-{uuid.uuid4().hex}")
  for code in _writers(target, home_target):
    _assert_zero(code, [{"input": "", "output": "ok"}])
    assert not os.path.exists(target) and not os.path.exists(home_target), code
  assert run_program("open('inside.txt', 'w').write('x')\nprint(open('inside.txt').read())",
                     **LIMITS).stdout == "x\n"  # the working directory itself is writable


def test_writes_outside_without_hook(marker, tmp_path):
  _needs("writes_confined")
  target = str(tmp_path / "escape.txt")
  home_target = os.path.join(os.path.expanduser("~"), f"r1jax-escape-{uuid.uuid4().hex}")
  for code in _writers(target, home_target)[:6]:
    r = run_program(code, _audit_hook=False, **LIMITS)
    assert r.stdout != "ok\n" and "Error" in r.stderr, r
    assert not os.path.exists(target) and not os.path.exists(home_target)


def test_secret_environment(marker, monkeypatch):
  secret = f"s3cret-{uuid.uuid4().hex}"
  monkeypatch.setenv("R1JAX_SECRET", secret)
  spy = ("import os\nprint(os.environ.get('R1JAX_SECRET', ''))\n"
         "for pid in filter(str.isdigit, os.listdir('/proc')):\n  try:\n"
         "    print(open(f'/proc/{pid}/environ', 'rb').read().decode(errors='replace'))\n"
         "  except OSError:\n    pass\n")
  for audit in (True, False):
    r = run_program(spy, _audit_hook=audit, **LIMITS)  # /proc itself may be unreadable
    assert r.status in ("ok", "crash") and secret not in r.stdout + r.stderr
  env = run_program("import json, os\nprint(json.dumps(sorted(os.environ)))", **LIMITS)
  assert json.loads(env.stdout) == ["HOME", "LANG", "PATH"]
  _assert_zero(spy, [{"input": "", "output": secret}])


@pytest.mark.parametrize("audit", [True, False])
def test_network(marker, audit):
  if not audit:
    _needs("network_namespace")
  with socket.socket() as server:
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    port = server.getsockname()[1]
    code = (f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)"
            ".sendall(b'leak')\nprint('ok')")
    r = run_program(code, _audit_hook=audit, **LIMITS)
    assert r.status == "crash" and "ok" not in r.stdout
    with pytest.raises(socket.timeout):
      server.accept()


@pytest.mark.parametrize("audit", [True, False])
def test_kill_the_parent(marker, canary, audit):
  _needs("pid_namespace")  # without it only the hook would stand between kill(-1) and us
  for attack in ("os.kill(os.getppid(), signal.SIGKILL)", "os.kill(-1, signal.SIGKILL)",
                 f"os.kill({os.getpid()}, signal.SIGKILL)",
                 f"os.kill({canary.pid}, signal.SIGKILL)", "os.killpg(0, signal.SIGKILL)"):
    code = f"import os, signal\n{attack}\nprint('ok')"
    if audit:
      _assert_zero(code, [{"input": "", "output": "ok"}])
    else:  # the kernel layer alone: nothing outside the namespace can be reached
      run_program(code, _audit_hook=False, **LIMITS)
    assert canary.poll() is None, attack


@pytest.mark.parametrize("exit_early", ["import os\nos._exit(0)", "import sys\nsys.exit(0)",
                                        "exit()", "raise SystemExit", "import os\nos.abort()"])
def test_exit_before_the_tests(marker, exit_early):
  _assert_zero(f"{SQUARE}{exit_early}\n", ["assert f(2) == 5"], status="crash")


def test_exit_after_correct_output_in_io_mode(marker):
  """stdin/stdout verdicts are the output, compared by the caller: an abort after the right
  output is a crash, and an early clean exit after it is the program's own business."""
  _assert_zero("print(3, flush=True)\nimport os\nos.abort()", [{"input": "", "output": "3"}],
               status="crash")
  assert check_code("print(3, flush=True)\nimport os\nos._exit(0)",
                    [{"input": "", "output": "3"}], **LIMITS).status == "ok"


@pytest.mark.parametrize("attempt", [
    "import ctypes",
    "import importlib\nimportlib.import_module('_ctypes')",
    "__import__('_posixsubprocess').fork_exec",
    "import sys\nsys.modules.pop('posix', None)\nimport posix\nposix.fork()",
    "import sys\nsys.audit = lambda *a: None\nimport os\nos.fork()",
    "import gc, os\nfor o in gc.get_objects():\n  if getattr(o, '__name__', '') == 'hook':\n"
    "    o.__closure__[0].cell_contents = frozenset()\nos.fork()",
    "import _xxsubinterpreters as i\ni.run_string(i.create(), 'import os; os.fork()')",
    "import _testcapi",
])
def test_hook_tampering(marker, attempt):
  _assert_zero(f"{attempt}\nprint('ok')", [{"input": "", "output": "ok"}], status="crash")


@pytest.mark.parametrize("hack", [
    "import builtins\nbuiltins.exec = lambda *a, **k: None",
    "import builtins\n_c = compile\nbuiltins.compile = lambda *a, **k: _c('1', '', 'exec')",
    "import builtins\nbuiltins.sorted = lambda x: [1, 2, 3]",
    "import builtins\nbuiltins.AssertionError = builtins.SystemExit = Exception",
    "import sys\nsys.exc_info = lambda: (None, None, None)\nsys.excepthook = print",
    "import os\nos._exit = os.write = lambda *a: None",
])
def test_reward_hacks_on_assert_tests(marker, hack):
  """Patching what the runner or the test would call does not make a wrong program pass."""
  _assert_zero(f"def f():\n  return [3, 1]\n{hack}\n", ["assert sorted(f()) == [1, 2, 3]"],
               status="wrong")


def test_fallback_without_namespaces(marker, tmp_path, canary, monkeypatch):
  """Layers 1 and 3 alone, as on a machine without namespaces, still contain the basics;
  the program's parent is then the launcher, not the caller."""
  monkeypatch.setenv(sandbox.NAMESPACES_ENV, "0")
  assert not sandbox_layers()["namespaces"] and sandbox_layers()["contained"]
  target = str(tmp_path / "escape.txt")
  assert check_code(ADD, ADD_CASES, **LIMITS).status == "ok"
  assert run_program("import time\ntime.sleep(100)", timeout=0.5).status == "timeout"
  for code, status in [("import os\nwhile True:\n  os.fork()", "crash"),
                       ("a = []\nwhile True:\n  a.append(' ' * 10**7)", "limit"),
                       (f"open({target!r}, 'w')", "crash"),
                       ("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)", "crash"),
                       ("import socket\nsocket.socket()", "crash"),
                       (f"print(open('/proc/{os.getpid()}/environ').read())", "crash")]:
    assert run_program(code, **LIMITS).status == status, code
  assert not os.path.exists(target)


def test_grpo_config_refuses_unjudgeable_tests_and_uncontained_machines(monkeypatch):
  """Checked at config load: every record's tests must parse, and the machine must
  contain programs unless config.rl.allow_unsandboxed_code accepts the risk."""
  import ml_collections

  from r1jax.stages import grpo
  good = {"question": "square it", "answer": "", "tests": ["assert f(2) == 4"]}
  bad = {"question": "square it", "answer": "", "tests": ["def check(c):\n  assert c(2) == 4"]}
  assert grpo._checked_rewards("config.rl.rewards", {"code": 1.0}, {}, [good]) == {"code": 1.0}
  with pytest.raises(ValueError, match=r"config.rl.rewards: the tests of record 1 .*not an assert"):
    grpo._checked_rewards("config.rl.rewards", {"code": 1.0}, {}, [good, bad])
  rl = ml_collections.ConfigDict({"allow_unsandboxed_code": False})
  assert grpo._code_reward(rl)(["p"], ["```python\ndef f(x):\n  return x * x\n```"],
                               tests=[good["tests"]]) == [1.0]
  uncontained = dict(sandbox_layers(), contained=False)
  monkeypatch.setattr(sandbox, "sandbox_layers", lambda: uncontained)
  with pytest.raises(ValueError, match="config.rl.allow_unsandboxed_code=True"):
    grpo._code_reward(rl)
  rl.allow_unsandboxed_code = True
  assert callable(grpo._code_reward(rl))
  with pytest.raises(sandbox.SandboxError, match="allow_unsandboxed_code"):
    check_code(SQUARE, ["assert f(2) == 4"])
