"""The code reward (R1 §2.2.2): run the model's program against test cases, in a sandbox.

"For LeetCode problems, a compiler can be used to generate feedback based on predefined
test cases" (R1 §2.2.2). `code_reward` is that reward for GRPO: the fraction of a problem's
test cases that the completion's program passes.

  extract_code(completion)        the last ```python block, else the <answer> content
  run_program(code, stdin=, test=)  one sandboxed run -> ExecResult
  check_code(code, tests)         every case -> CodeResult(fraction_passed, status)
  code_reward(prompts, completions, tests=[...])   fraction passed, one float each
  sandbox_layers()                which containment layers this machine gives (below)

A problem's tests are a list of cases, or its JSON string: {"input": ..., "output": ...}
runs the program with that stdin and compares stripped outputs, trailing spaces of each
line ignored; "assert f(2) == 4" (or {"assert": ...}) runs that code after the program, in
its globals (LeetCode style). APPS-style {"inputs": [...], "outputs": [...]} also works.
A case passes only if the run reaches its end: the runner then writes a per-run random
token to a file, so `os._exit(0)` or `sys.exit()` before the tests is a crash, not a pass.
Statuses: ok (all passed), wrong, timeout, crash, limit (memory or output cap).

Containment, in three layers; `sandbox_layers()` reports what is active:
 1. Always. A launcher process in its own session (SIGKILLed with its whole process group
    afterwards; the runner gets PR_SET_PDEATHSIG), a wall-clock timeout and RLIMIT_CPU,
    RLIMIT_AS (memory), RLIMIT_FSIZE (stdout and stderr go to files, so a flood stops at
    the cap and never reaches the caller's memory), RLIMIT_NOFILE, RLIMIT_CORE=0 and
    RLIMIT_NPROC (which Linux does not enforce on root); an empty temporary directory,
    removed afterwards; `python -I -S` with only PATH, LANG and HOME in the environment.
 2. Where the kernel allows it (root, or unprivileged user namespaces). New mount, PID and
    network namespaces: every mount read-only but a 32 MB tmpfs on the working directory,
    no network (loopback down), the program is PID 1 of its own /proc, so no process
    outside is visible or can be signalled (kill(-1) included), and every process left in
    the namespace dies with it; then all capabilities are dropped and no_new_privs set.
 3. In the program's interpreter, a PEP 578 audit hook refuses process creation (fork,
    exec, spawn, subprocess, system), signals (kill, killpg), sockets, writes, directory
    opens and chdir outside the working directory, other processes' /proc files,
    symlinks, hard links, gc's object walks (which could find the hook), and importing
    ctypes, cffi, _posixsubprocess (its fork_exec raises no audit event) or
    subinterpreters (which have no hook). Assert tests see the builtins as they were
    before the program ran.

This guards against accidents and reward hacking, not a determined attacker; for untrusted
code at scale add a container or gVisor. Layer 3 and the completion check live in the
program's own interpreter: a program that walks up its frames (sys._getframe(1)) can read
its assert tests and the completion token, and a thread of its can meddle with the test
stage; an assert test is also passed by an object whose __eq__ always returns True
(stdin/stdout cases are compared by the caller, immune to both). Without layer 2 only
layer 3 stops kill(-1), the network, writes outside the box (bar os.mkfifo, or a PathLike
whose __fspath__ changes between calls) and children that escape the process group; as
root, a fork bomb past layer 3 is bounded by the timeout alone (Linux exempts root from
RLIMIT_NPROC). Programs get the standard library only (-S: no site-packages).
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import sys

DEFAULT_TIMEOUT_S = 2.0
DEFAULT_MEMORY_MB = 256
DEFAULT_OUTPUT_BYTES = 1 << 20
STATUSES = ("ok", "wrong", "timeout", "crash", "limit")

_TAG = "r1jax-sandbox"  # in every sandbox process's command line and temporary directory
_STARTUP_S = 0.5  # wall-clock allowance for starting the launcher and the runner
_BOX_MB, _MAX_FILES, _MAX_PROCESSES = 32, 64, 32  # tmpfs size, RLIMIT_NOFILE, RLIMIT_NPROC
_EXIT_WRONG, _EXIT_MEMORY = 2, 3  # runner exit codes: the test's assert failed, MemoryError
_SETUP_FAILED = 125  # launcher exit code when it could not build the sandbox


# ---------------------------------------------- the launcher (process A) and runner (B)
# The caller starts this file as a script, `python -I -S code.py r1jax-sandbox CONFIG`:
# A isolates itself (layer 2), forks B and mirrors B's exit; B, PID 1 of the new namespace,
# mounts its /proc, limits itself, drops its capabilities and execs a fresh interpreter
# with _RUNNER, so that nothing A loaded (ctypes) is left for the program.

_CLONE_NEWNS, _CLONE_NEWUSER, _CLONE_NEWPID, _CLONE_NEWNET = (
    0x20000, 0x10000000, 0x20000000, 0x40000000)
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18
# Flags a remount keeps: in a user namespace it may not clear them.
_MOUNT_OPTS = {"nosuid": 2, "nodev": 4, "noexec": 8, "noatime": 1024, "nodiratime": 2048,
               "relatime": 1 << 21, "strictatime": 1 << 24}
_PR_SET_PDEATHSIG, _PR_CAPBSET_DROP, _PR_SET_SECUREBITS = 1, 24, 28
_PR_SET_NO_NEW_PRIVS, _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 38, 47, 4
_SECBITS_LOCKED_NOROOT = 0xC3  # NOROOT, NO_CAP_AMBIENT_RAISE, both locked


def _libc():
  import ctypes  # only the launcher needs it
  libc = ctypes.CDLL(None, use_errno=True)
  libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
  libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4

  def call(name, *args):
    if getattr(libc, name)(*args) != 0:
      err = ctypes.get_errno()
      raise OSError(err, f"{name}{args[:3]}: {os.strerror(err)}")

  def capset_empty():  # _LINUX_CAPABILITY_VERSION_3: a header and two empty data structs
    return libc.capset((ctypes.c_uint32 * 2)(0x20080522, 0), (ctypes.c_uint32 * 6)())

  return libc, call, capset_empty


def _mount_points() -> list[tuple[bytes, int]]:
  """(mount point, flags to keep) of every mount, from /proc/self/mountinfo."""
  out = []
  with open("/proc/self/mountinfo", "rb") as f:
    for line in f:
      fields = line.split()
      target = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), fields[4])
      opts = sum(_MOUNT_OPTS.get(o, 0) for o in fields[5].decode().split(","))
      out.append((target, opts))
  return out


def _isolate(libc, call, box: str) -> None:
  """Layer 2 for this process: new namespaces, every mount read-only, a tmpfs box."""
  uid, gid = os.getuid(), os.getgid()
  call("unshare", _CLONE_NEWNS | _CLONE_NEWPID | _CLONE_NEWNET
       | (_CLONE_NEWUSER if uid else 0))
  if uid:  # root in the new user namespace, still ourselves outside it
    for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"),
                       ("gid_map", f"0 {gid} 1")):
      with open(f"/proc/self/{name}", "w") as f:
        f.write(text)
  call("mount", None, b"/", None, _MS_REC | _MS_PRIVATE, None)
  for target, opts in _mount_points():  # best effort; sandbox_layers() checks the outcome
    libc.mount(None, target, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | opts, None)
  call("mount", b"tmpfs", box.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV,
       f"size={_BOX_MB}m,nr_inodes=4096,mode=0700".encode())


def _set_limits(cfg: dict) -> None:
  for res, soft, hard in ((resource.RLIMIT_CPU, cfg["cpu_s"], cfg["cpu_s"] + 1),
                          (resource.RLIMIT_AS, cfg["memory"], cfg["memory"]),
                          (resource.RLIMIT_FSIZE, cfg["fsize"], cfg["fsize"]),
                          (resource.RLIMIT_NOFILE, _MAX_FILES, _MAX_FILES),
                          (resource.RLIMIT_NPROC, _MAX_PROCESSES, _MAX_PROCESSES),
                          (resource.RLIMIT_CORE, 0, 0)):
    cap = resource.getrlimit(res)[1]
    if cap != resource.RLIM_INFINITY:
      soft, hard = min(soft, cap), min(hard, cap)
    resource.setrlimit(res, (soft, hard))


def _become_runner(libc, call, capset_empty, cfg: dict) -> None:
  """Process B: limits and unprivileges itself, then execs the runner (never returns)."""
  call("prctl", _PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
  if cfg["isolate"]:  # a /proc of this PID namespace only; best effort
    libc.mount(b"proc", b"/proc", b"proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None)
  os.chdir(cfg["box"])
  _set_limits(cfg)
  # No capabilities now or after exec, even as uid 0; each step fails harmlessly where
  # there is nothing to drop.
  libc.prctl(_PR_SET_SECUREBITS, _SECBITS_LOCKED_NOROOT, 0, 0, 0)
  for cap in range(64):
    libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)
  libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
  capset_empty()
  call("prctl", _PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
  os.set_inheritable(cfg["setup_fd"], False)
  runner_cfg = {k: cfg[k] for k in ("job_fd", "done_fd", "audit", "box")}  # box: to find it
  os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", _RUNNER, _TAG,
                            json.dumps(runner_cfg)])


def _launch(cfg: dict) -> None:
  """Process A."""
  def fail(stage, e):
    os.write(cfg["setup_fd"], f"{stage}: {e!r}".encode())
    os._exit(_SETUP_FAILED)

  try:
    libc, call, capset_empty = _libc()
    if cfg["isolate"]:
      _isolate(libc, call, cfg["box"])
  except Exception as e:  # noqa: BLE001 - reported to the caller through setup_fd
    fail("isolation", e)
  pid = os.fork()
  if pid == 0:
    try:
      _become_runner(libc, call, capset_empty, cfg)
    except BaseException as e:  # noqa: BLE001 - as above; B must never return into A's code
      fail("runner", e)
  code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
  os._exit(code if code >= 0 else 128 - code)


_RUNNER = r'''
import sys


def _deny_hook(box):
  """Layer 3 (see r1jax/rewards/code.py). The hook's state is immutable and all it calls
  is captured here, so a program that patches builtins, os or posix changes nothing; gc's
  object walks are refused so that the hook cannot be found and rewired."""
  import posix
  deny = frozenset({"os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn",
                    "os.system", "os.startfile", "subprocess.Popen", "os.kill",
                    "os.killpg", "signal.pthread_kill", "os.symlink", "os.link",
                    "gc.get_objects", "gc.get_referrers", "gc.get_referents"})
  paths = frozenset({"os.mkdir", "os.rmdir", "os.remove", "os.rename", "os.chmod",
                     "os.chown", "os.truncate", "os.utime", "os.setxattr", "os.removexattr",
                     "os.chflags"})
  # _posixsubprocess.fork_exec raises no audit event; subinterpreters have no hook
  modules = frozenset({"ctypes", "_ctypes", "cffi", "_cffi_backend", "_posixsubprocess",
                       "_xxsubinterpreters", "_xxinterpchannels", "_interpreters",
                       "_interpchannels", "_interpqueues"})
  writes = posix.O_WRONLY | posix.O_RDWR | posix.O_CREAT | posix.O_TRUNC | posix.O_APPEND
  getcwd, stat, fspath, denied = posix.getcwd, posix.stat, posix.fspath, PermissionError
  str_, bytes_, int_, prefix, own = str, bytes, int, box + "/", str(posix.getpid())

  def resolve(path):
    """Absolute and lexically normal: sound, as no symlink can be made in the box and the
    working directory stays the box."""
    if path.__class__ is not str_ and path.__class__ is not bytes_:
      path = fspath(path)
    if path.__class__ is bytes_:
      path = path.decode("utf-8", "surrogateescape")
    parts = []
    for part in (path if path[:1] == "/" else getcwd() + "/" + path).split("/"):
      if part == "..":
        if parts:
          parts.pop()
      elif part and part != ".":
        parts.append(part)
    return "/" + "/".join(parts)

  def inside(path):
    return path == box or path[:len(prefix)] == prefix or path == "/dev/null"

  def is_dir(path):
    try:
      return stat(path).st_mode & 0o170000 == 0o040000
    except Exception:
      return False

  def hook(event, args):
    if event in deny or event[:7] == "socket.":
      raise denied(f"sandbox: {event} is not allowed")
    if event == "import" and (args[0].partition(".")[0] in modules or args[0][:5] == "_test"):
      raise denied(f"sandbox: importing {args[0]} is not allowed")
    if event == "open" and args[0].__class__ is not int_:  # an int: an open descriptor
      path = resolve(args[0])
      if inside(path):
        return
      if args[2] & writes or is_dir(path):  # a directory's descriptor could be a dir_fd
        raise denied(f"sandbox: may not open {path!r} outside the working directory")
      pid = path[6:].partition("/")[0] if path[:6] == "/proc/" else ""
      if pid.isdigit() and pid != own:
        raise denied("sandbox: may not open another process's /proc files")
    elif event in paths:
      for path in args[:2 if event == "os.rename" else 1]:
        if path.__class__ is not int_ and not inside(resolve(path)):
          raise denied(f"sandbox: {event} outside the working directory: {path!r}")
    elif event == "os.chdir" and (args[0].__class__ is int_ or resolve(args[0]) != box):
      raise denied("sandbox: os.chdir is not allowed")

  sys.addaudithook(hook)


def _main():
  import builtins, json, os
  # Captured before the program runs: it may rebind any of these in builtins, sys or os.
  exec_, compile_, isinstance_, int_, exc_info = exec, compile, isinstance, int, sys.exc_info
  SystemExit_, MemoryError_, AssertionError_, BaseException_ = (
      SystemExit, MemoryError, AssertionError, BaseException)
  write, exit_, excepthook, stdout, stderr = (
      os.write, os._exit, sys.excepthook, sys.stdout, sys.stderr)
  cfg = json.loads(sys.argv[2])
  with os.fdopen(cfg["job_fd"], "rb") as f:
    job = json.loads(f.read())
  nonce, done_fd, test = job.pop("nonce").encode(), cfg["done_fd"], job["test"]

  def quit_(code=None):  # exit() and quit(), which -S leaves out
    raise SystemExit_(code)

  builtins.exit = builtins.quit = quit_
  pristine = dict(builtins.__dict__)
  if cfg["audit"]:
    _deny_hook(os.getcwd())
  g = {"__name__": "__main__", "__builtins__": builtins}
  for stage, source in (("<solution>", job.pop("code")), ("<test>", test)):
    if source is None:
      break
    if stage == "<test>":  # builtins as they were before the program patched any
      g["__builtins__"] = pristine
    try:
      exec_(compile_(source, stage, "exec"), g)
    except SystemExit_ as e:
      if test is not None or not (e.code is None or e.code.__class__ is int_ and e.code == 0):
        stderr.write(f"sandbox: {stage} exited before the end of the run\n")
        exit_(1)
    except MemoryError_:
      exit_(3)  # _EXIT_MEMORY
    except BaseException_ as e:
      excepthook(*exc_info())
      exit_(2 if stage == "<test>" and isinstance_(e, AssertionError_) else 1)  # _EXIT_WRONG
  try:
    for stream in (stdout, sys.stdout, stderr, sys.stderr):
      stream.flush()
  except BaseException_:
    exit_(1)
  write(done_fd, nonce)  # then a normal exit, which flushes any file the program left open


_main()
'''

if __name__ == "__main__" and sys.argv[1:2] == [_TAG]:
  _launch(json.loads(sys.argv[2]))


# ------------------------------------------------------------------- the caller's side
# Imported only here, below the launcher's entry point: the launcher needs none of them
# and starts once per test case.
import dataclasses  # noqa: E402
import select  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402


class SandboxError(RuntimeError):
  """The sandbox could not be set up: the machine's fault, not the program's."""


@dataclasses.dataclass(frozen=True)
class ExecResult:
  """One sandboxed run.

  status: "ok" (ran to its end), "wrong" (the test raised AssertionError), "timeout" (wall
  clock or CPU time), "limit" (memory, or output over the cap), "crash" (anything else).
  returncode is the program's exit code, -N if signal N ended it.
  """
  status: str
  stdout: str
  stderr: str
  returncode: int
  duration_s: float
  truncated: bool = False  # stdout or stderr was cut at output_bytes


@dataclasses.dataclass(frozen=True)
class CodeResult:
  """fraction_passed in [0, 1]; status "ok" if every case passed, else the first failing
  case's status; cases holds every case's status, in order."""
  fraction_passed: float
  status: str
  cases: tuple[str, ...] = ()


# ------------------------------------------------------------------- extraction, parsing

_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.DOTALL)


def extract_code(completion: str) -> str | None:
  """The program in `completion`: its last ```python (or py, python3) block; else the
  content of its last <answer>…</answer>, taking the last fenced block inside if any;
  else None."""
  if not isinstance(completion, str):
    return None
  blocks = list(_FENCE.finditer(completion))
  python = [m.group(2) for m in blocks if m.group(1).lower() in ("python", "py", "python3")]
  if python:
    return python[-1]
  end = completion.rfind("</answer>")
  start = completion.rfind("<answer>", 0, end) if end >= 0 else -1
  if start < 0:
    return None
  answer = completion[start + len("<answer>"):end]
  inner = list(_FENCE.finditer(answer))
  return inner[-1].group(2) if inner else answer.strip()


def parse_tests(tests) -> list[tuple]:
  """Cases as ("io", stdin, expected) or ("assert", code); raises ValueError if malformed."""
  if isinstance(tests, str):
    try:
      tests = json.loads(tests)
    except json.JSONDecodeError:
      tests = [tests]  # not JSON: one assert-style test
  if isinstance(tests, dict) and "inputs" in tests:  # APPS / TACO
    ins, outs = tests["inputs"], tests.get("outputs")
    if not isinstance(ins, list) or not isinstance(outs, list) or len(ins) != len(outs):
      raise ValueError("APPS-style tests need 'inputs' and 'outputs' lists of equal length")
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
        compile(case, "<test>", "exec")  # the dataset's code, not the model's
      except (SyntaxError, ValueError) as e:
        raise ValueError(f"test {i} is not valid Python: {e}") from None
      cases.append(("assert", case))
    elif (isinstance(case, dict) and isinstance(case.get("input"), str)
          and isinstance(case.get("output"), str)):
      cases.append(("io", case["input"], case["output"]))
    else:
      raise ValueError(f"test {i} is {str(case)[:80]!r}: use {{'input': str, 'output': str}}"
                       " or an assert string")
  return cases


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
                output_bytes: int = DEFAULT_OUTPUT_BYTES, _audit_hook: bool = True
                ) -> ExecResult:
  """Runs `code` with `stdin`, then `test` (assert-style) in its globals, in the sandbox.

  timeout: wall-clock seconds (plus a fixed 0.5 s for start-up); memory_mb: address space;
  output_bytes: cap on stdout and on stderr (and on any file written). `_audit_hook=False`
  turns layer 3 off, for testing the other layers only.
  """
  for name, value in (("code", code), ("stdin", stdin)):
    if not isinstance(value, str):
      raise TypeError(f"{name} must be a str, got {type(value).__name__}")
  if test is not None and not isinstance(test, str):
    raise TypeError(f"test must be a str or None, got {type(test).__name__}")
  _check_limits(timeout, memory_mb, output_bytes)
  isolate = sandbox_layers()["namespaces"]
  return _execute(code, stdin, test, timeout, memory_mb, output_bytes, isolate, _audit_hook)


def _execute(code, stdin, test, timeout, memory_mb, output_bytes, isolate, audit
             ) -> ExecResult:
  nonce = os.urandom(16).hex()
  root = tempfile.mkdtemp(prefix=_TAG + "-")
  try:
    box = os.path.join(root, "box")
    os.mkdir(box)
    path = {k: os.path.join(root, k) for k in ("job", "in", "out", "err", "done", "setup")}
    with open(path["job"], "w", encoding="utf-8") as f:
      json.dump({"code": code, "test": test, "nonce": nonce}, f)
    with open(path["in"], "w", encoding="utf-8") as f:
      f.write(stdin)
    fds = [os.open(path["job"], os.O_RDONLY)]
    os.unlink(path["job"])  # the token now lives only behind this descriptor
    fds += [os.open(path[k], os.O_WRONLY | os.O_CREAT, 0o600) for k in ("done", "setup")]
    cfg = {"box": box, "job_fd": fds[0], "done_fd": fds[1], "setup_fd": fds[2],
           "isolate": isolate, "audit": audit, "cpu_s": int(timeout) + 1,
           "memory": memory_mb << 20, "fsize": output_bytes + 1}
    with open(path["in"], "rb") as fin, open(path["out"], "wb") as fout, \
         open(path["err"], "wb") as ferr:
      try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", os.path.abspath(__file__), _TAG, json.dumps(cfg)],
            stdin=fin, stdout=fout, stderr=ferr, cwd=box, pass_fds=fds,
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
    with open(path["done"], "rb") as f:
      completed = f.read(len(nonce) + 1) == nonce.encode()
  finally:
    shutil.rmtree(root, ignore_errors=True)
  rc = proc.returncode  # the launcher's: it exits 128 + N when signal N ended the runner
  rc = rc if rc <= 128 else 128 - rc
  if timed_out or rc in (-signal.SIGKILL, -signal.SIGXCPU):  # SIGKILL: RLIMIT_CPU's hard cap
    status = "timeout"
  elif cut_out or cut_err or rc == _EXIT_MEMORY:
    status = "limit"
  elif rc == _EXIT_WRONG and test is not None:
    status = "wrong"
  else:
    status = "ok" if rc == 0 and completed else "crash"
  return ExecResult(status, stdout, stderr, rc, duration, cut_out or cut_err)


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
               skip_after_timeout: bool = True) -> CodeResult:
  """Runs `code` on every case of `tests` (see parse_tests), one sandbox each.

  After a case times out the rest count as timed out without running
  (`skip_after_timeout`): a program too slow for one case is usually too slow for all,
  and each would cost the full timeout.
  """
  if not isinstance(code, str):
    raise TypeError(f"code must be a str, got {type(code).__name__}")
  _check_limits(timeout, memory_mb, output_bytes)
  limits = {"timeout": timeout, "memory_mb": memory_mb, "output_bytes": output_bytes}
  return _check_cases(code, parse_tests(tests), limits, skip_after_timeout)


def _check_cases(code: str, cases: list[tuple], limits: dict, skip_after_timeout: bool = True
                 ) -> CodeResult:
  statuses = []
  for case in cases:
    if skip_after_timeout and "timeout" in statuses:
      statuses.append("timeout")
    elif case[0] == "io":
      r = run_program(code, stdin=case[1], **limits)
      right = _normalise(r.stdout) == _normalise(case[2])
      statuses.append(r.status if r.status != "ok" else "ok" if right else "wrong")
    else:
      statuses.append(run_program(code, test=case[1], **limits).status)
  failed = [s for s in statuses if s != "ok"]
  return CodeResult(statuses.count("ok") / len(statuses), failed[0] if failed else "ok",
                    tuple(statuses))


def make_code_reward(*, timeout: float = DEFAULT_TIMEOUT_S,
                     memory_mb: int = DEFAULT_MEMORY_MB, max_workers: int | None = None):
  """A code reward with these limits, running up to max_workers sandboxes at once
  (default min(8, CPU count))."""
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
      return 0.0 if code is None else _check_cases(code, case_list, limits).fraction_passed

    import concurrent.futures  # here: the launcher runs this file and must start fast
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
      return list(pool.map(one, completions, cases))

  return code_reward


code_reward = make_code_reward()


# ---------------------------------------------------------------- which layers are active

_PROBE = """
import errno, json, os, socket
layers = {"pid_namespace": os.getpid() == 1}
try:
  socket.create_connection(("127.0.0.1", 9), timeout=1).close()
  layers["network_namespace"] = False
except OSError as e:
  layers["network_namespace"] = e.errno == errno.ENETUNREACH
try:
  open("../probe", "w").close()  # the sandbox's own temporary directory, outside the box
  layers["readonly_filesystem"] = False
except OSError as e:
  layers["readonly_filesystem"] = e.errno == errno.EROFS
with open("/proc/self/status") as f:
  caps = [line.split()[1] for line in f if line.startswith(("CapEff", "CapPrm", "CapBnd"))]
layers["capabilities_dropped"] = all(int(c, 16) == 0 for c in caps)
print(json.dumps(layers))
"""
_LAYERS: dict[str, bool] = {}
_LAYERS_LOCK = threading.Lock()


def sandbox_layers() -> dict[str, bool]:
  """Which containment layers runs get on this machine, measured once from inside a run.

  namespaces: the launcher built layer 2; pid_namespace, network_namespace,
  readonly_filesystem, capabilities_dropped: its parts, as the program sees them;
  nproc_limit: RLIMIT_NPROC is enforced (not as root); audit_hook: layer 3.
  """
  with _LAYERS_LOCK:
    if not _LAYERS:
      args = ("", None, 10.0, DEFAULT_MEMORY_MB, 1 << 16)
      try:
        r, isolated = _execute(_PROBE, *args, isolate=True, audit=False), True
      except SandboxError:
        r, isolated = _execute(_PROBE, *args, isolate=False, audit=False), False
      if r.status != "ok":
        raise SandboxError(f"the sandbox probe failed ({r.status}): {r.stderr[-2000:]}")
      _LAYERS.update(json.loads(r.stdout), namespaces=isolated,
                     nproc_limit=os.geteuid() != 0, audit_hook=True)
    return dict(_LAYERS)
