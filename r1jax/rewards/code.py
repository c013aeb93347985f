"""The code reward (R1 §2.2.2): run the model's program against test cases, in a sandbox.

"For LeetCode problems, a compiler can be used to generate feedback based on predefined
test cases" (R1 §2.2.2). `code_reward` is that reward for GRPO: the fraction of a problem's
test cases that the completion's program passes.

  extract_code(completion)          the last ```python block, else the <answer> content
  run_program(code, stdin=, test=)  one sandboxed run -> ExecResult
  check_code(code, tests)           every case -> CodeResult(fraction_passed, status)
  code_reward(prompts, completions, tests=[...])   fraction passed, one float each
  sandbox_layers()                  which containment layers this machine gives (below)

Tests (r1jax.rewards.code_cases): stdin/stdout pairs, APPS inputs/outputs (stdin or
call-based), and asserts such as "assert f(2) == 4", parsed in the caller into the call to
make and the check to apply. Statuses: ok (all passed), wrong, timeout, crash (an error, or
an exit before the calls were made), limit (memory or output cap).

Verdicts are the caller's. The program's process sends back only its stdout, or for call
tests the JSON of what each call returned (plain data by exact type: an object with its
own __eq__, a subclass of int, anything else is a wrong answer). Expected values never
enter the sandbox, and there is no success marker, token or exit code that counts as a
pass: a value is right only if the program computed it.

Containment (r1jax.rewards.sandbox has the processes; `sandbox_layers()` measures what is
active, from inside a run):
 1. Always. A launcher in its own session, SIGKILLed with its process group afterwards; a
    wall-clock timeout, RLIMIT_CPU, RLIMIT_AS, RLIMIT_FSIZE (stdout, stderr and results go
    to capped files, never to the caller's memory), RLIMIT_NOFILE, no core dumps; a fresh
    interpreter per test case (`python -I -S`: standard library only, environment PATH,
    LANG, HOME); no capabilities (even as root), no_new_privs. A root caller's runner takes
    a uid of its own (sandbox.RUN_UID_BASE + the launcher's pid), so that RLIMIT_NPROC,
    which Linux does not apply to root, caps its threads at 64.
 2. Namespaces, where the kernel allows them (root, or unprivileged user namespaces): new
    user, mount, PID, network, IPC and UTS namespaces and a new root holding only the
    system the interpreter needs (read-only; the base interpreter's site-packages hidden
    and its _ctypes extension masked), /dev/null, zero, random and urandom, the sandbox's
    own /proc and a 32 MB, 4096-inode tmpfs working directory at /tmp. No other sandbox
    and no file of the caller's is visible; there is no network; SysV IPC objects die with
    the namespace; an init process of ours is PID 1, so every process dies with the run.
 3. Landlock (ABI >= 1; signals and abstract Unix sockets scoped from ABI 6): reads limited
    to that same system, writes to the working directory, TCP refused.
 4. A seccomp filter: no fork (threads only), setsid, setpgid, ptrace, process_vm_*,
    socket (socketpair stays), SysV IPC, POSIX message queues, namespaces, mounts, bpf,
    io_uring, keyrings, file locks and leases (a channel between concurrent sandboxes),
    extended attributes, fcntl's F_SETOWN, other processes' priority, scheduling, limits
    and pages; and signals, where neither 2 nor Landlock's scope keeps them inside.
 5. In the interpreter, a PEP 578 audit hook refuses process creation, signals, sockets,
    writes and directory opens outside the working directory, other processes' /proc,
    links, gc's object walks and ctypes/cffi/_posixsubprocess/subinterpreters (under any
    dotted name): clear errors for honest programs, and one more wall for the rest.

Without namespaces (R1JAX_SANDBOX_NAMESPACES=0, or a kernel without them) layers 1 and
3-5 hold the same lines: the program cannot fork, leave its group, signal or connect
outside, read beyond the system, or write outside its box. Where neither namespaces nor
Landlock with seccomp exist, runs are refused unless the risk is accepted explicitly
(config.rl.allow_unsandboxed_code, or make_code_reward(allow_unsandboxed=True)).
tests/test_sandbox_attacks.py holds the attacks this was tried with, in both modes.

Limitations, and why acceptable. The program runs in the interpreter that makes the calls,
so it can change what the calls return; but it can only ever return values, and a right
value is a solved case (the caller also refuses sets and dicts of values crafted to share
one hash, which would cost it quadratic time). Programs see the standard library and
system files; concurrent sandboxes can sense each other's CPU load, and the page cache of
shared files through the time reads take (its direct probes and levers are refused); such
a timing channel needs a sender that already solved the case. Without namespaces: paths outside can be
stat()ed (names, sizes, times; never contents); the box is a directory of the caller's
whose size only the timeout and the per-file cap bound (removed afterwards; a program
that makes 10^5 files costs the caller their removal); and a root caller whose Python
lives where other users cannot reach (/root/.pyenv) keeps uid 0, so no thread cap.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import importlib.util
import json
import marshal
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time

from r1jax.rewards import sandbox
from r1jax.rewards.code_cases import CallCase, Case, IoCase, judge, parse_tests

DEFAULT_TIMEOUT_S = 2.0
DEFAULT_MEMORY_MB = 256
DEFAULT_OUTPUT_BYTES = 1 << 20
STATUSES = ("ok", "wrong", "timeout", "crash", "limit")
NAMESPACES_ENV = "R1JAX_SANDBOX_NAMESPACES"  # "0": run without layer 2 (tests, fallback)

_STARTUP_S = 0.5  # wall-clock allowance for starting the launcher and the runner
_DEVICES = ["/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"]


class SandboxError(RuntimeError):
  """The sandbox could not be set up, or would not contain: the machine's fault, not the
  program's."""


@dataclasses.dataclass(frozen=True)
class ExecResult:
  """One sandboxed run.

  status: "ok" (ran to its end; for call tests, every check held), "wrong" (a call test's
  value failed its check), "timeout" (wall clock or CPU time), "limit" (memory, or output
  over the cap), "crash" (anything else). returncode is the program's exit code, -N if
  signal N ended it. checks: each call test's verdict, in order.
  """
  status: str
  stdout: str
  stderr: str
  returncode: int
  duration_s: float
  truncated: bool = False  # stdout or stderr was cut at output_bytes
  checks: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class CodeResult:
  """fraction_passed in [0, 1]; status "ok" if every case passed, else the first failing
  case's status; cases holds every case's status, in order."""
  fraction_passed: float
  status: str
  cases: tuple[str, ...] = ()


# ------------------------------------------------------------------------- extraction

_PYTHON_TAGS = ("python", "py", "python3")


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
  """(language, body) of each ```fenced``` block, in one left-to-right pass: an opening
  ``` runs to its line's end (the language is the first word there), the body to the next
  ```. Linear in len(text) whatever the text holds."""
  blocks, pos = [], 0
  while (start := text.find("```", pos)) >= 0:
    newline = text.find("\n", start + 3)
    if newline < 0:
      break
    end = text.find("```", newline + 1)
    if end < 0:
      break
    info = text[start + 3:newline].lstrip(" \t")
    language = info[:len(info) - len(info.lstrip("abcdefghijklmnopqrstuvwxyz"
                                                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-"))]
    blocks.append((language, text[newline + 1:end]))
    pos = end + 3
  return blocks


def extract_code(completion: str) -> str | None:
  """The program in `completion`: its last ```python (or py, python3) block; else the
  content of its last <answer>…</answer>, taking the last fenced block inside if any;
  else None."""
  if not isinstance(completion, str):
    return None
  python = [body for lang, body in _fenced_blocks(completion) if lang.lower() in _PYTHON_TAGS]
  if python:
    return python[-1]
  end = completion.rfind("</answer>")
  start = completion.rfind("<answer>", 0, end) if end >= 0 else -1
  if start < 0:
    return None
  answer = completion[start + len("<answer>"):end]
  inner = _fenced_blocks(answer)
  return inner[-1][1] if inner else answer.strip()


def _normalise(text: str) -> str:
  return "\n".join(line.rstrip() for line in text.strip().splitlines())


# ------------------------------------------------------------------------------ running


def _check_limits(timeout, memory_mb, output_bytes) -> None:
  if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (
      0 < timeout < float("inf")):
    raise ValueError(f"timeout={timeout!r}: use a positive number of seconds, e.g. 2.0")
  if isinstance(memory_mb, bool) or not isinstance(memory_mb, int) or memory_mb < 64:
    raise ValueError(f"memory_mb={memory_mb!r}: use an int >= 64 (the interpreter alone "
                     "maps ~30 MB)")
  if isinstance(output_bytes, bool) or not isinstance(output_bytes, int) or output_bytes < 1:
    raise ValueError(f"output_bytes={output_bytes!r}: use a positive int")


def run_program(code: str, *, stdin: str = "", test: str | None = None,
                timeout: float = DEFAULT_TIMEOUT_S, memory_mb: int = DEFAULT_MEMORY_MB,
                output_bytes: int = DEFAULT_OUTPUT_BYTES, allow_unsandboxed: bool = False,
                _audit_hook: bool = True) -> ExecResult:
  """Runs `code` with `stdin`, then the calls of `test` (asserts, parsed by the caller and
  judged on the returned values), in the sandbox.

  timeout: wall-clock seconds (plus a fixed 0.5 s for start-up); memory_mb: address space;
  output_bytes: cap on stdout, on stderr and on the calls' results. `_audit_hook=False`
  turns the interpreter layer off, for testing the kernel's layers alone.
  """
  for name, value in (("code", code), ("stdin", stdin)):
    if not isinstance(value, str):
      raise TypeError(f"{name} must be a str, got {type(value).__name__}")
  if test is not None and not isinstance(test, str):
    raise TypeError(f"test must be a str or None, got {type(test).__name__}")
  _check_limits(timeout, memory_mb, output_bytes)
  case = parse_tests([test])[0] if test is not None else IoCase(stdin, "")
  limits = {"timeout": timeout, "memory_mb": memory_mb, "output_bytes": output_bytes}
  return _run_case(code, case, limits, allow_unsandboxed, _audit_hook)


def _run_case(code: str, case: Case, limits: dict, allow_unsandboxed: bool,
              audit: bool = True) -> ExecResult:
  isolate = _use_namespaces()
  layers = sandbox_layers()
  if not layers["contained"] and not allow_unsandboxed:
    raise SandboxError(
        "this machine gives the code sandbox neither namespaces nor Landlock with seccomp "
        f"(sandbox_layers(): {layers}); programs would run nearly unconfined. To accept "
        "that risk, set config.rl.allow_unsandboxed_code=True (make_code_reward("
        "allow_unsandboxed=True))")
  return _execute(code, case, isolate=isolate, audit=audit, landlock=layers["landlock_abi"],
                  seccomp=layers["seccomp"], **limits)


@dataclasses.dataclass(frozen=True)
class _System:
  read: list[str]  # bound read-only into the new root; Landlock's readable paths
  hide: list[str]  # an empty directory over each, in the new root (site-packages)
  mask: list[str]  # /dev/null over each, in the new root (the _ctypes extension)
  python: str  # the interpreter the runner execs
  open_to_all: bool  # every directory above the interpreter and its library is o+x


@functools.cache
def _system() -> _System:
  read = [p for p in ("/usr", "/bin", "/lib", "/lib32", "/lib64", "/libx32",
                      "/etc/ld.so.cache", "/etc/localtime") if os.path.lexists(p)]
  python = os.path.realpath(sys.executable)
  for extra in (os.path.realpath(sys.base_prefix), os.path.dirname(python)):
    if not any(extra == p or extra.startswith(p + "/") for p in read):
      read.append(extra)
  purelib = sysconfig.get_path("purelib", vars={"base": sys.base_prefix})
  spec = importlib.util.find_spec("_ctypes")
  mask = {os.path.realpath(spec.origin)} if spec and spec.origin else set()
  for root in read:  # every other Python's FFI modules under the bound system too
    for pattern in ("lib/python3*/lib-dynload/_ctypes*.so", "lib/python3*/*-packages/_cffi*.so",
                    "local/lib/python3*/lib-dynload/_ctypes*.so"):
      mask.update(map(os.path.realpath, glob.glob(os.path.join(root, pattern))))
  stdlib = os.path.realpath(sysconfig.get_path("stdlib"))
  return _System(read, [purelib] if os.path.isdir(purelib) else [], sorted(mask), python,
                 all(map(_searchable_by_all, (python, stdlib))))


def _searchable_by_all(path: str) -> bool:
  """Whether every directory above `path` lets any user through (o+x)."""
  parent = os.path.dirname(path)
  while parent != path:
    if not os.stat(parent).st_mode & stat.S_IXOTH:
      return False
    path, parent = parent, os.path.dirname(parent)
  return True


@functools.cache
def _sandbox_code() -> bytes:
  """marshal.dumps of r1jax/rewards/sandbox.py's code, compiled once per process: what the
  launcher and the runner execute (sandbox.BOOT), without compiling 30 kB each time."""
  with open(sandbox.__file__, encoding="utf-8") as f:
    return marshal.dumps(compile(f.read(), sandbox.__file__, "exec"))


def _use_namespaces() -> bool:
  return os.environ.get(NAMESPACES_ENV, "1") != "0"


def _execute(code: str, case: Case, *, timeout, memory_mb, output_bytes, isolate: bool,
             audit: bool, landlock: int, seccomp: bool) -> ExecResult:
  calls = [c.call_spec() for c in case.checks] if isinstance(case, CallCase) else None
  stdin = case.stdin if isinstance(case, IoCase) else ""
  system = _system()
  root = tempfile.mkdtemp(prefix=sandbox.TAG + "-")
  try:
    path = {k: os.path.join(root, k)
            for k in ("job", "in", "out", "err", "result", "setup", "code")}
    if isolate:
      os.mkdir(os.path.join(root, "fs"))
      box = sandbox.BOX_INSIDE
    else:
      box = os.path.join(root, "box")
      os.mkdir(box, 0o700)
    with open(path["job"], "w", encoding="utf-8") as f:
      json.dump({"code": code, "calls": calls}, f)
    with open(path["in"], "w", encoding="utf-8") as f:
      f.write(stdin)
    with open(path["code"], "wb") as f:
      f.write(_sandbox_code())
    fds = [os.open(path["job"], os.O_RDONLY)]
    os.unlink(path["job"])
    fds += [os.open(path[k], os.O_WRONLY | os.O_CREAT, 0o600) for k in ("result", "setup")]
    fds.append(os.open(path["code"], os.O_RDONLY))
    cfg = {"box": box, "root": os.path.join(root, "fs"), "run": root, "job_fd": fds[0],
           "result_fd": fds[1], "setup_fd": fds[2], "code_fd": fds[3], "isolate": isolate,
           "audit": audit,
           "landlock": landlock, "seccomp": seccomp,
           "deny_signals": not isolate and landlock < 6,
           "read": system.read, "hide": system.hide, "mask": system.mask,
           "devices": _DEVICES,
           # a root caller's runner takes a uid of its own where it can reach Python
           "own_uid": os.geteuid() == 0 and (isolate or system.open_to_all),
           "python": system.python, "cpu_s": int(timeout) + 1, "memory": memory_mb << 20,
           "fsize": output_bytes + 1}
    with open(path["in"], "rb") as fin, open(path["out"], "wb") as fout, \
         open(path["err"], "wb") as ferr:
      try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", sandbox.BOOT, str(fds[3]), sandbox.TAG,
             json.dumps(cfg)],
            stdin=fin, stdout=fout, stderr=ferr, cwd=root, pass_fds=fds,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": box},
            start_new_session=True)
      finally:
        for fd in fds:
          os.close(fd)
    timed_out, duration = _wait_then_kill_group(proc, timeout + _STARTUP_S)
    with open(path["setup"], encoding="utf-8", errors="replace") as f:
      if setup_error := f.read():
        raise SandboxError(f"could not set up the sandbox: {setup_error}")
    stdout, cut_out = _read_capped(path["out"], output_bytes)
    stderr, cut_err = _read_capped(path["err"], output_bytes)
    results, cut_res = _read_capped(path["result"], output_bytes)
  finally:
    _remove(root)
  rc = proc.returncode  # the launcher's: it exits 128 + N when signal N ended the runner
  rc = rc if rc <= 128 else 128 - rc
  checks: tuple[str, ...] = ()
  if timed_out or rc in (-signal.SIGKILL, -signal.SIGXCPU):  # SIGKILL: RLIMIT_CPU's hard cap
    status = "timeout"
  elif cut_out or cut_err or cut_res or rc == sandbox.EXIT_MEMORY:
    status = "limit"
  elif rc != 0:
    status = "crash"
  elif calls is None:
    status = "ok"
  else:
    checks = _verdicts(case.checks, results)
    status = next((s for s in ("crash", "wrong") if s in checks), "ok")
  return ExecResult(status, stdout, stderr, rc, duration, cut_out or cut_err, checks)


def _remove(path: str) -> None:
  """Removes a run's directory, however deep the tree a program left in its box
  (shutil.rmtree recurses once per level and stops at Python's recursion limit)."""
  try:
    shutil.rmtree(path)
  except (OSError, RecursionError):  # also directories the program made unreadable
    for command in (["chmod", "-R", "u+rwX", path], ["rm", "-rf", "--one-file-system", path]):
      subprocess.run(command, check=False, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)


def _verdicts(checks, results: str) -> tuple[str, ...]:
  """Each check's verdict on the runner's records; a missing or malformed record is a
  crash (the program ended the run before that call)."""
  try:
    records = json.loads(results)
  except (ValueError, RecursionError):
    records = []
  if not isinstance(records, list):
    records = []
  return tuple(judge(check, records[i]) if i < len(records) else "crash"
               for i, check in enumerate(checks))


def _wait_then_kill_group(proc: subprocess.Popen, limit: float) -> tuple[bool, float]:
  """Waits up to `limit` s for the launcher to exit, then SIGKILLs its process group; the
  launcher is reaped only after the kill, so the group id cannot have been reused."""
  start = time.monotonic()
  try:
    pidfd = os.pidfd_open(proc.pid)
  except (AttributeError, OSError):  # kernel < 5.3: wait (and reap) the plain way
    try:
      proc.wait(limit)
      timed_out = False
    except subprocess.TimeoutExpired:
      timed_out = True
  else:
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    timed_out = not poller.poll(limit * 1000)
    os.close(pidfd)
  duration = time.monotonic() - start
  try:
    os.killpg(proc.pid, signal.SIGKILL)
  except ProcessLookupError:
    pass
  proc.wait()
  return timed_out, duration


def _read_capped(path: str, cap: int) -> tuple[str, bool]:
  with open(path, "rb") as f:
    data = f.read(cap + 1)
  return data[:cap].decode("utf-8", "replace"), len(data) > cap


# --------------------------------------------------------------------- checking, reward


def check_code(code: str, tests, *, timeout: float = DEFAULT_TIMEOUT_S,
               memory_mb: int = DEFAULT_MEMORY_MB, output_bytes: int = DEFAULT_OUTPUT_BYTES,
               skip_after_timeout: bool = True, allow_unsandboxed: bool = False,
               _audit_hook: bool = True) -> CodeResult:
  """Runs `code` on every case of `tests` (see code_cases.parse_tests), a fresh sandbox
  each.

  After a case times out the rest count as timed out without running
  (`skip_after_timeout`): a program too slow for one case is usually too slow for all,
  and each would cost the full timeout.
  """
  if not isinstance(code, str):
    raise TypeError(f"code must be a str, got {type(code).__name__}")
  _check_limits(timeout, memory_mb, output_bytes)
  limits = {"timeout": timeout, "memory_mb": memory_mb, "output_bytes": output_bytes}
  return _check_cases(code, parse_tests(tests), limits, skip_after_timeout,
                      allow_unsandboxed, _audit_hook)


def _check_cases(code: str, cases: list[Case], limits: dict, skip_after_timeout: bool = True,
                 allow_unsandboxed: bool = False, audit: bool = True) -> CodeResult:
  statuses = []
  for case in cases:
    if skip_after_timeout and "timeout" in statuses:
      statuses.append("timeout")
      continue
    r = _run_case(code, case, limits, allow_unsandboxed, audit)
    if isinstance(case, IoCase) and r.status == "ok":
      statuses.append("ok" if _normalise(r.stdout) == _normalise(case.expected) else "wrong")
    else:
      statuses.append(r.status)
  failed = [s for s in statuses if s != "ok"]
  return CodeResult(statuses.count("ok") / len(statuses), failed[0] if failed else "ok",
                    tuple(statuses))


def make_code_reward(*, timeout: float = DEFAULT_TIMEOUT_S,
                     memory_mb: int = DEFAULT_MEMORY_MB, max_workers: int | None = None,
                     allow_unsandboxed: bool = False):
  """A code reward with these limits, running up to max_workers sandboxes at once
  (default min(8, CPU count)). allow_unsandboxed: run even where sandbox_layers() says
  programs would not be contained (config.rl.allow_unsandboxed_code)."""
  _check_limits(timeout, memory_mb, DEFAULT_OUTPUT_BYTES)
  limits = {"timeout": timeout, "memory_mb": memory_mb, "output_bytes": DEFAULT_OUTPUT_BYTES}
  workers = max_workers or min(8, os.cpu_count() or 1)

  def code_reward(prompts: list[str], completions: list[str], *, tests, **_) -> list[float]:
    """Fraction of its problem's `tests` each completion's program passes (0.0 without a
    program). `tests` holds one entry per completion: a list of cases or its JSON."""
    if isinstance(tests, (str, dict)) or len(tests) != len(completions):
      raise ValueError("tests needs one entry (a list of cases, or its JSON) per completion")
    cases = [parse_tests(t) for t in tests]  # every record checked before anything runs

    def one(completion, case_list):
      code = extract_code(completion)
      if code is None:
        return 0.0
      return _check_cases(code, case_list, limits, True, allow_unsandboxed).fraction_passed

    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
      return list(pool.map(one, completions, cases))

  return code_reward


code_reward = make_code_reward()


# ---------------------------------------------------------------- which layers are active

_PROBE = """
import errno, json, os, sys
info = json.loads(sys.stdin.read())
layers = {"pid_namespace": os.getpid() == 2 and os.getppid() == 1}
with open("/proc/self/net/dev") as f:
  layers["network_namespace"] = [l.split(":")[0].strip() for l in f.readlines()[2:]] == ["lo"]
layers["ipc_namespace"] = os.readlink("/proc/self/ns/ipc") != info["ipc"]
def refused(fn, *args):
  try:
    fn(*args)
    return False
  except OSError:
    return True
layers["caller_files_hidden"] = refused(os.listdir, info["caller"])
layers["writes_confined"] = refused(open, os.path.join(info["outside"], "probe"), "w")
layers["landlock"] = refused(os.listdir, "/etc")
with open("/proc/self/status") as f:
  status = dict(line.split(":", 1) for line in f if ":" in line)
layers["capabilities_dropped"] = all(int(status[k], 16) == 0 for k in ("CapEff", "CapPrm", "CapBnd"))
layers["seccomp"] = status["Seccomp"].strip() == "2"
print(json.dumps(layers))
"""
_LAYERS: dict[bool, dict] = {}
_LAYERS_LOCK = threading.Lock()


def sandbox_layers() -> dict:
  """Which containment layers runs get on this machine (in the mode that
  R1JAX_SANDBOX_NAMESPACES selects), measured once from inside a run.

  namespaces: layer 2 was built; pid_namespace, network_namespace, ipc_namespace: its
  parts as the program sees them; caller_files_hidden (the r1jax package cannot be
  listed), writes_confined (a directory of the caller's made writable to all cannot be
  written), capabilities_dropped, landlock (its reads are limited) with landlock_abi, seccomp;
  audit_hook; contained: namespaces or Landlock with seccomp, everything the run needs.
  """
  isolate = _use_namespaces()
  with _LAYERS_LOCK:
    if isolate not in _LAYERS:
      _LAYERS[isolate] = _probe(isolate)
    return dict(_LAYERS[isolate])


def _probe(isolate: bool) -> dict:
  abi = sandbox.landlock_abi()
  seccomp = sandbox.seccomp_arch() is not None
  outside = tempfile.mkdtemp(prefix=sandbox.TAG + "-probe-")
  try:
    os.chmod(outside, 0o777)
    info = {"ipc": os.readlink("/proc/self/ns/ipc"), "outside": outside,
            "caller": os.path.dirname(os.path.abspath(__file__))}
    limits = {"timeout": 10.0, "memory_mb": DEFAULT_MEMORY_MB, "output_bytes": 1 << 16}
    run = lambda ns: _execute(_PROBE, IoCase(json.dumps(info), ""), isolate=ns, audit=False,  # noqa: E731
                              landlock=abi, seccomp=seccomp, **limits)
    try:
      r, isolated = run(isolate), isolate
    except SandboxError:
      if not isolate:
        raise
      r, isolated = run(False), False  # no namespaces on this machine
  finally:
    shutil.rmtree(outside, ignore_errors=True)
  if r.status != "ok":
    raise SandboxError(f"the sandbox probe failed ({r.status}): {r.stderr[-2000:]}")
  layers = json.loads(r.stdout)
  ns_parts = ("pid_namespace", "network_namespace", "ipc_namespace", "caller_files_hidden",
              "writes_confined")
  contained = (isolated and all(layers[k] for k in ns_parts)) or (
      layers["landlock"] and layers["seccomp"] and layers["caller_files_hidden"]
      and layers["writes_confined"])
  return dict(layers, namespaces=isolated, landlock_abi=abi, audit_hook=True,
              contained=bool(contained and layers["capabilities_dropped"]))
