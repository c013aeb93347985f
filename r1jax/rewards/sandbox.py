"""The code sandbox's own processes: a launcher, an init and the runner that holds the program.

This file's compiled code is what those processes run, never an import of the package:
the caller compiles it once, and `python -I -S -c BOOT FD TAG CONFIG` execs the code read
from descriptor FD (the launcher with TAG, the runner with RUNNER_TAG), so a sandbox
costs no compile of this file and needs to see no file of the caller's. The caller's
side (r1jax.rewards.code) also imports it for the constants, `encode`/`decode` and the
layer checks. Standard library only; ctypes only in the launcher, before the runner's exec.

    caller ── A launcher (own session; SIGKILLed with its group afterwards)
                 │  with namespaces: unshare user/mount/PID/net/IPC/UTS, pivot into a new root
                 └─ I init, PID 1 of the new PID namespace (trusted; dies with A)
                      └─ B runner: limits, no capabilities, Landlock,
                           seccomp, then exec of a fresh interpreter that runs the program
    Without namespaces B is A's child and I does not exist.

Why nothing outlives a run: with namespaces, I is the namespace's init and stays in A's
process group, so the caller's group kill takes I, and the kernel then kills every process
of the namespace, whatever it did to its session, signals or death signal. Without them,
the seccomp filter refuses fork, setsid and setpgid, so B stays alone in A's group.

What the runner sends back is data only: the program's stdout (stdin/stdout tests) or the
JSON of what each tested call returned (`encode`: None, bool, int, float, str and lists,
tuples, sets and dicts of those, by exact type). Expected values never enter the sandbox,
so the program cannot read them, and no value it sends can be a pass unless it is right.
"""

from __future__ import annotations

import collections
import json
import os
import resource
import signal
import sys

TAG = "r1jax-sandbox"  # the launcher's argv[1], and the prefix of each run's directory
RUNNER_TAG = "r1jax-sandbox-runner"
# The bootstrap of both processes: argv = [-c, FD, TAG, CONFIG]; FD holds marshal.dumps of
# this file's code object (r1jax.rewards.code writes it for every run).
BOOT = ("import marshal, os, sys\n"
        "exec(marshal.loads(os.pread(int(sys.argv[1]), 1 << 24, 0)), {'__name__': '__main__'})\n")
EXIT_MEMORY = 3  # the runner's exit code after a MemoryError
EXIT_SETUP_FAILED = 125  # the launcher's, when it could not build the sandbox
BOX_INSIDE = "/tmp"  # the program's working directory, with namespaces
_BOX_MB, _MAX_FILES = 32, 64  # tmpfs size, RLIMIT_NOFILE
_MAX_DEPTH = 64  # nesting depth of values that encode() accepts
_MAX_SHARED_HASH = 32  # set members or dict keys with one hash that decode() accepts
_MAX_TASKS = 64  # RLIMIT_NPROC of a runner under its own uid: its threads, all told
RUN_UID_BASE = 1 << 20  # a root caller's runners run as uid RUN_UID_BASE + the launcher's pid
# Standard containers a function may return, read as the plain data they hold (exact types).
_DICTS = (collections.Counter, collections.OrderedDict, collections.defaultdict)
_deque = collections.deque

# ------------------------------------------------------------------------- plain data


def encode(value, depth: int = 0):
  """`value` as JSON-able data, tuples/sets/dicts tagged: {"t": [...]}, {"s": [...]},
  {"d": [[key, value], ...]}. Raises TypeError for anything but the exact plain types (a
  subclass of int, an object with its own __eq__) and ValueError past _MAX_DEPTH."""
  kind = type(value)
  if value is None or kind is bool or kind is int or kind is float or kind is str:
    return value
  if depth >= _MAX_DEPTH:
    raise ValueError("nested too deeply")
  if kind is list:
    return [encode(v, depth + 1) for v in value]
  if kind is tuple:
    return {"t": [encode(v, depth + 1) for v in value]}
  if kind is set:
    return {"s": [encode(v, depth + 1) for v in value]}
  if kind is frozenset:
    return {"fs": [encode(v, depth + 1) for v in value]}
  if kind is dict or kind in _DICTS:  # Counter etc.: compared as the dicts they hold
    return {"d": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in dict.items(value)]}
  if kind is _deque:
    return [encode(v, depth + 1) for v in value]
  raise TypeError(f"{kind.__name__} is not plain data")


def distinct_hashes(items: list) -> list:
  """`items`, unless more than _MAX_SHARED_HASH of them share one hash: a set or dict of
  such values costs time quadratic in their number to build (ints are easy to craft so),
  so they are refused (ValueError) before any set or dict is built of them."""
  counts: dict[int, int] = {}
  for item in items:
    h = hash(item)
    counts[h] = counts.get(h, 0) + 1
    if counts[h] > _MAX_SHARED_HASH:
      raise ValueError("too many values with one hash")
  return items


def decode(data, hashable: bool = False):
  """The inverse of `encode`; ValueError if malformed. hashable: where the value must be
  hashable (a set member, a dict key), a set comes back as a frozenset."""
  if isinstance(data, list):
    return [decode(v) for v in data]
  if isinstance(data, dict):
    if len(data) != 1:
      raise ValueError(f"not an encoded value: {str(data)[:80]}")
    (tag, items), = data.items()
    if not isinstance(items, list):
      raise ValueError(f"not an encoded value: {str(data)[:80]}")
    if tag == "t":
      return tuple(decode(v, hashable) for v in items)
    if tag in ("s", "fs"):
      members = distinct_hashes([decode(v, True) for v in items])
      return frozenset(members) if tag == "fs" or hashable else set(members)
    if tag == "d" and all(isinstance(kv, list) and len(kv) == 2 for kv in items):
      keys = distinct_hashes([decode(k, True) for k, _ in items])
      return dict(zip(keys, (decode(v) for _, v in items)))
    raise ValueError(f"not an encoded value: {str(data)[:80]}")
  return data


# ------------------------------------------------------------------------ kernel layers

_CLONE_NEWNS, _CLONE_NEWUTS, _CLONE_NEWIPC = 0x20000, 0x4000000, 0x8000000
_CLONE_NEWUSER, _CLONE_NEWPID, _CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
_CLONE_NEWCGROUP, _CLONE_THREAD = 0x2000000, 0x10000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18
_MNT_DETACH = 2
# Flags a read-only remount keeps: in a user namespace it may not clear them.
_MOUNT_OPTS = {"nosuid": 2, "nodev": 4, "noexec": 8, "noatime": 1024, "nodiratime": 2048,
               "relatime": 1 << 21, "strictatime": 1 << 24}
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE, _PR_CAPBSET_DROP, _PR_SET_SECUREBITS = 1, 4, 24, 28
_PR_SET_NO_NEW_PRIVS, _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 38, 47, 4
_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 22, 2
_SECBITS_LOCKED_NOROOT = 0xC3  # NOROOT, NO_CAP_AMBIENT_RAISE, both locked

# Per-architecture syscall numbers: (audit arch, {name: number}). Unknown architectures get
# no seccomp filter (sandbox_layers() says so).
_SYSCALLS = {
    "x86_64": (0xC000003E, dict(
        fork=57, vfork=58, clone=56, clone3=435, setsid=112, setpgid=109, ptrace=101,
        process_vm_readv=310, process_vm_writev=311, socket=41, fcntl=72,
        shmget=29, shmat=30, shmctl=31, semget=64, semop=65, semctl=66, semtimedop=220,
        msgget=68, msgsnd=69, msgrcv=70, msgctl=71, mq_open=240, mq_unlink=241,
        mq_timedsend=242, mq_timedreceive=243, mq_notify=244, mq_getsetattr=245,
        unshare=272, setns=308, mount=165, umount2=166, pivot_root=155, chroot=161,
        bpf=321, perf_event_open=298, userfaultfd=323, keyctl=250, add_key=248,
        request_key=249, io_uring_setup=425, io_uring_enter=426, io_uring_register=427,
        kcmp=312, pidfd_getfd=438, open_by_handle_at=304, name_to_handle_at=303,
        fanotify_init=300, kill=62, tkill=200, tgkill=234, rt_sigqueueinfo=129,
        rt_tgsigqueueinfo=297, pidfd_send_signal=424, setpriority=141, sched_setparam=142,
        sched_setscheduler=144, sched_setaffinity=203, sched_setattr=314, ioprio_set=251,
        prlimit64=302, migrate_pages=256, move_pages=279, process_madvise=440,
        process_mrelease=448, flock=73, setxattr=188, lsetxattr=189, fsetxattr=190,
        getxattr=191, lgetxattr=192, fgetxattr=193, listxattr=194, llistxattr=195,
        flistxattr=196, removexattr=197, lremovexattr=198, fremovexattr=199,
        setxattrat=463, getxattrat=464, listxattrat=465, removexattrat=466,
        fadvise64=221, mincore=27, cachestat=451, readahead=187, sync=162, syncfs=306,
        connect=42, bind=49, sendmsg=46, sendmmsg=307, sendto=44, preadv2=327,
        madvise=28)),
    "aarch64": (0xC00000B7, dict(
        clone=220, clone3=435, setsid=157, setpgid=154, ptrace=117,
        process_vm_readv=270, process_vm_writev=271, socket=198, fcntl=25,
        shmget=194, shmat=196, shmctl=195, semget=190, semop=193, semctl=191,
        semtimedop=192, msgget=186, msgsnd=189, msgrcv=188, msgctl=187, mq_open=180,
        mq_unlink=181, mq_timedsend=182, mq_timedreceive=183, mq_notify=184,
        mq_getsetattr=185, unshare=97, setns=268, mount=40, umount2=39, pivot_root=41,
        chroot=51, bpf=280, perf_event_open=241, userfaultfd=282, keyctl=219, add_key=217,
        request_key=218, io_uring_setup=425, io_uring_enter=426, io_uring_register=427,
        kcmp=272, pidfd_getfd=438, open_by_handle_at=265, name_to_handle_at=264,
        fanotify_init=262, kill=129, tkill=130, tgkill=131, rt_sigqueueinfo=138,
        rt_tgsigqueueinfo=240, pidfd_send_signal=424, setpriority=140, sched_setparam=118,
        sched_setscheduler=119, sched_setaffinity=122, sched_setattr=274, ioprio_set=30,
        prlimit64=261, migrate_pages=238, move_pages=239, process_madvise=440,
        process_mrelease=448, flock=32, setxattr=5, lsetxattr=6, fsetxattr=7, getxattr=8,
        lgetxattr=9, fgetxattr=10, listxattr=11, llistxattr=12, flistxattr=13,
        removexattr=14, lremovexattr=15, fremovexattr=16, setxattrat=463, getxattrat=464,
        listxattrat=465, removexattrat=466, fadvise64=223, mincore=232, cachestat=451,
        readahead=213, sync=81, syncfs=267, connect=203, bind=200, sendmsg=211,
        sendmmsg=269, sendto=206, preadv2=286, madvise=233)),
}
# Refused outright: new processes (threads are clones with CLONE_THREAD, checked apart),
# leaving the process group, reading or steering other processes (memory, priority,
# scheduling, pages), every socket (socketpair stays), SysV and POSIX message IPC (objects
# that would outlive the run), namespaces and mounts, and kernel interfaces no test
# program needs. prlimit64 and sched_setaffinity only on the program itself (pid 0).
_DENIED = ("fork", "vfork", "setsid", "setpgid", "ptrace", "process_vm_readv",
           "process_vm_writev", "socket", "shmget", "shmat", "shmctl", "semget", "semop",
           "semctl", "semtimedop", "msgget", "msgsnd", "msgrcv", "msgctl", "mq_open",
           "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr",
           "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "bpf",
           "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key",
           "io_uring_setup", "io_uring_enter", "io_uring_register", "kcmp", "pidfd_getfd",
           "open_by_handle_at", "name_to_handle_at", "fanotify_init", "setpriority",
           "sched_setparam", "sched_setscheduler", "sched_setattr", "ioprio_set",
           "migrate_pages", "move_pages", "process_madvise", "process_mrelease",
           # file locks and leases (shared across namespaces: a channel between sandboxes,
           # a way to block processes outside) and extended attributes (Landlock does not
           # cover them: metadata of files outside)
           "flock", "setxattr", "lsetxattr", "fsetxattr", "getxattr", "lgetxattr",
           "fgetxattr", "listxattr", "llistxattr", "flistxattr", "removexattr",
           "lremovexattr", "fremovexattr", "setxattrat", "getxattrat", "listxattrat",
           "removexattrat",
           # the page cache of shared files as a channel (probing it: mincore, cachestat;
           # steering it: fadvise, readahead) and host-wide writeback
           "fadvise64", "mincore", "cachestat", "readahead", "sync", "syncfs",
           # socketpair stays (asyncio's self-pipe), but aimed nowhere: no connect, bind,
           # or sendmsg (whose address a filter cannot read); sendto below
           "connect", "bind", "sendmsg", "sendmmsg")
# (call, offset of the argument in seccomp_data, rule, values): "deny" the listed values,
# "deny_bits" any of them set, "zero" allow only 0 (a pid of 0 is the caller itself; a
# NULL address sends on the socket's own peer), "zero64" the same for a 64-bit pointer.
_ARG_RULES = (("prlimit64", 16, "zero", ()), ("sched_setaffinity", 16, "zero", ()),
              ("sendto", 48, "zero64", ()),
              ("preadv2", 56, "deny_bits", (8,)),  # RWF_NOWAIT: is this page cached?
              ("madvise", 32, "deny", (20, 21)))  # MADV_COLD, MADV_PAGEOUT: evict
# Refused where neither a PID namespace nor Landlock's signal scope keeps signals inside.
_SIGNALS = ("kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
            "pidfd_send_signal")
# fcntl commands refused: aiming SIGIO elsewhere (F_SETOWN, F_SETOWN_EX, F_SETSIG, F_NOTIFY),
# record locks (F_GETLK, F_SETLK, F_SETLKW, F_OFD_*) and leases (F_SETLEASE)
_FCNTL_DENIED = (8, 15, 10, 1026, 5, 6, 7, 36, 37, 38, 1024)
_NAMESPACE_FLAGS = (_CLONE_NEWNS | _CLONE_NEWUTS | _CLONE_NEWIPC | _CLONE_NEWUSER
                    | _CLONE_NEWPID | _CLONE_NEWNET | _CLONE_NEWCGROUP)


def seccomp_arch():
  """(audit arch, syscall table) of this machine, or None where the filter is unknown."""
  return _SYSCALLS.get(os.uname().machine)


def _seccomp_program(deny_signals: bool) -> bytes:
  """The classic-BPF filter: errno EPERM for the refused calls (ENOSYS for clone3, so libc
  falls back to clone, whose flags a filter can read), allow the rest."""
  import struct
  arch, nr = seccomp_arch()
  ld, jeq, jset, ret = 0x20, 0x15, 0x45, 0x06  # BPF_LD|W|ABS, JMP|JEQ|K, JMP|JSET|K, RET|K
  allow, eperm, enosys, kill = 0x7FFF0000, 0x00050001, 0x00050026, 0x80000000
  denied = [nr[n] for n in _DENIED if n in nr]
  if deny_signals:
    denied += [nr[n] for n in _SIGNALS]
  prog = [(ld, 0, 0, 4), (jeq, 1, 0, arch), (ret, 0, 0, kill), (ld, 0, 0, 0)]
  if arch == 0xC000003E:  # x32 system calls on x86_64: refuse them all
    prog += [(0x35, 0, 1, 0x40000000), (ret, 0, 0, eperm)]  # JMP|JGE|K
  for number in denied:
    prog += [(jeq, 0, 1, number), (ret, 0, 0, eperm)]
  prog += [(jeq, 0, 1, nr["clone3"]), (ret, 0, 0, enosys)]
  # clone: threads only, no namespaces (arg 0 holds the flags; low 32 bits at offset 16)
  prog += [(jeq, 0, 6, nr["clone"]), (ld, 0, 0, 16), (jset, 3, 0, _NAMESPACE_FLAGS),
           (jset, 1, 0, _CLONE_THREAD), (ret, 0, 0, eperm), (ret, 0, 0, allow),
           (ret, 0, 0, eperm)]
  for name, offset, rule, values in _ARG_RULES + (("fcntl", 24, "deny", _FCNTL_DENIED),):
    if rule == "deny":  # any listed value -> EPERM
      n = len(values)
      body = [(ld, 0, 0, offset)] + [(jeq, n - i, 0, v) for i, v in enumerate(values)]
      body += [(ret, 0, 0, allow), (ret, 0, 0, eperm)]
    elif rule == "deny_bits":
      body = [(ld, 0, 0, offset), (jset, 1, 0, values[0]), (ret, 0, 0, allow),
              (ret, 0, 0, eperm)]
    elif rule == "zero":
      body = [(ld, 0, 0, offset), (jeq, 0, 1, 0), (ret, 0, 0, allow), (ret, 0, 0, eperm)]
    else:  # zero64: both halves of the argument
      body = [(ld, 0, 0, offset), (jeq, 0, 3, 0), (ld, 0, 0, offset + 4), (jeq, 0, 1, 0),
              (ret, 0, 0, allow), (ret, 0, 0, eperm)]
    prog += [(jeq, 0, len(body), nr[name])] + body
  prog += [(ret, 0, 0, allow)]
  return b"".join(struct.pack("=HBBI", *op) for op in prog), len(prog)


# Landlock (ABI numbers: the kernel's; this machine's is landlock_abi()).
_LANDLOCK_CREATE_RULESET, _LANDLOCK_ADD_RULE, _LANDLOCK_RESTRICT_SELF = 444, 445, 446
_LL_EXECUTE, _LL_WRITE_FILE, _LL_READ_FILE, _LL_READ_DIR = 1, 2, 4, 8
_LL_MAKE_CHAR, _LL_MAKE_BLOCK = 64, 2048
_LL_REFER, _LL_TRUNCATE, _LL_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_LL_FILE_RIGHTS = _LL_EXECUTE | _LL_WRITE_FILE | _LL_READ_FILE | _LL_TRUNCATE | _LL_IOCTL_DEV
_LL_SCOPE_ABSTRACT_UNIX, _LL_SCOPE_SIGNAL = 1, 2
_LL_NET_BIND_TCP, _LL_NET_CONNECT_TCP = 1, 2


def landlock_abi() -> int:
  """This kernel's Landlock ABI version, 0 where Landlock is off or unknown."""
  import ctypes
  libc = ctypes.CDLL(None, use_errno=True)
  libc.syscall.restype = ctypes.c_long
  version = libc.syscall(ctypes.c_long(_LANDLOCK_CREATE_RULESET), None, ctypes.c_size_t(0),
                         ctypes.c_uint32(1))  # LANDLOCK_CREATE_RULESET_VERSION
  return max(0, version)


def _landlock_ruleset(libc, abi: int, read: list[str], write: list[str]) -> int:
  """A Landlock ruleset (its descriptor) for: read (and execute) `read`, read and write
  `write`, nothing else; TCP, abstract Unix sockets and signals outside refused (as far
  as the ABI goes). `_landlock_restrict` applies it."""
  import ctypes
  import struct
  handled = (1 << 13) - 1
  handled |= _LL_REFER if abi >= 2 else 0
  handled |= _LL_TRUNCATE if abi >= 3 else 0
  handled |= _LL_IOCTL_DEV if abi >= 5 else 0
  net = _LL_NET_BIND_TCP | _LL_NET_CONNECT_TCP if abi >= 4 else 0
  scoped = _LL_SCOPE_ABSTRACT_UNIX | _LL_SCOPE_SIGNAL if abi >= 6 else 0
  attr = struct.pack("=QQQ", handled, net, scoped)[:24 if abi >= 6 else 16 if abi >= 4 else 8]
  ruleset = libc.syscall(ctypes.c_long(_LANDLOCK_CREATE_RULESET), attr,
                         ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
  if ruleset < 0:
    raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
  for paths, rights in ((read, _LL_EXECUTE | _LL_READ_FILE | _LL_READ_DIR),
                        (write, handled & ~(_LL_MAKE_CHAR | _LL_MAKE_BLOCK | _LL_IOCTL_DEV))):
    for path in paths:
      try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
      except FileNotFoundError:
        continue
      try:
        allowed = rights if os.path.isdir(path) else rights & _LL_FILE_RIGHTS
        rule = struct.pack("=Qi", allowed & handled, fd)
        if libc.syscall(ctypes.c_long(_LANDLOCK_ADD_RULE), ctypes.c_int(ruleset),
                        ctypes.c_int(1), rule, ctypes.c_uint32(0)) != 0:
          raise OSError(ctypes.get_errno(), f"landlock_add_rule {path}")
      finally:
        os.close(fd)
  return ruleset


def _landlock_restrict(libc, ruleset: int) -> None:
  """Restricts this process and its future children to `ruleset` (needs no_new_privs)."""
  import ctypes
  try:
    if libc.syscall(ctypes.c_long(_LANDLOCK_RESTRICT_SELF), ctypes.c_int(ruleset),
                    ctypes.c_uint32(0)) != 0:
      raise OSError(ctypes.get_errno(), "landlock_restrict_self")
  finally:
    os.close(ruleset)


# ------------------------------------------------------------------- the launcher (A)


def _libc():
  import ctypes
  libc = ctypes.CDLL(None, use_errno=True)
  libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
  libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
  libc.syscall.restype = ctypes.c_long

  def call(name, *args):
    if getattr(libc, name)(*args) != 0:
      err = ctypes.get_errno()
      raise OSError(err, f"{name}{args[:3]}: {os.strerror(err)}")

  return libc, call


def _mount_points() -> list[tuple[bytes, int]]:
  """(mount point, flags to keep) of every mount, from /proc/self/mountinfo."""
  import re
  out = []
  with open("/proc/self/mountinfo", "rb") as f:
    for line in f:
      fields = line.split()
      target = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), fields[4])
      opts = sum(_MOUNT_OPTS.get(o, 0) for o in fields[5].decode().split(","))
      out.append((target, opts))
  return out


def _isolate(libc, call, cfg: dict) -> None:
  """New namespaces; every mount read-only; then a new root holding only cfg["read"] (the
  system the interpreter needs, bound read-only at their own paths), /dev's harmless
  devices, an empty /proc for I to mount and a tmpfs box at BOX_INSIDE."""
  uid, gid = os.getuid(), os.getgid()
  call("unshare", _CLONE_NEWNS | _CLONE_NEWPID | _CLONE_NEWNET | _CLONE_NEWIPC
       | _CLONE_NEWUTS | (_CLONE_NEWUSER if uid else 0))
  if uid:  # root in the new user namespace, still ourselves outside it
    for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"),
                       ("gid_map", f"0 {gid} 1")):
      with open(f"/proc/self/{name}", "w") as f:
        f.write(text)
  call("mount", None, b"/", None, _MS_REC | _MS_PRIVATE, None)
  for target, opts in _mount_points():  # bind mounts below copy the read-only flag
    libc.mount(None, target, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | opts, None)
  new = cfg["root"]
  call("mount", b"tmpfs", new.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV,
       b"size=1m,nr_inodes=1024,mode=0755")
  for path in cfg["read"] + cfg["devices"]:
    if not os.path.exists(path):
      continue
    target = new + path
    if os.path.islink(path) and os.path.dirname(path) == "/":  # /lib -> usr/lib
      os.symlink(os.readlink(path), target)
      continue
    if os.path.isdir(path):
      os.makedirs(target, exist_ok=True)
    else:
      os.makedirs(os.path.dirname(target), exist_ok=True)
      open(target, "w").close()
    call("mount", path.encode(), target.encode(), None, _MS_BIND | _MS_REC, None)
  for path in cfg["hide"]:  # an empty read-only directory over each (site-packages)
    if os.path.isdir(new + path):
      call("mount", b"tmpfs", (new + path).encode(), b"tmpfs", _MS_RDONLY | _MS_NOSUID
           | _MS_NODEV, b"size=4k,nr_inodes=1")
  for path in cfg["mask"]:  # /dev/null over each (the _ctypes extension): nothing to load
    if os.path.isfile(new + path):
      call("mount", b"/dev/null", (new + path).encode(), None, _MS_BIND, None)
  os.makedirs(new + "/proc")
  os.makedirs(new + BOX_INSIDE)
  owner = f",uid={cfg['uid']},gid={cfg['uid']}" if cfg.get("uid") is not None else ""
  call("mount", b"tmpfs", (new + BOX_INSIDE).encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV,
       f"size={_BOX_MB}m,nr_inodes=4096,mode=0700{owner}".encode())
  os.chdir(new)
  arch = seccomp_arch()
  pivot = arch[1].get("pivot_root") if arch else None
  if pivot is not None:  # pivot_root(".", "."), then detach the old root stacked on it
    call("syscall", pivot, b".", b".")
    call("umount2", b".", _MNT_DETACH)
  else:
    os.chroot(".")
  os.chdir("/")
  call("mount", None, b"/", None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID
       | _MS_NODEV, None)


def _set_limits(cfg: dict) -> None:
  for res, soft, hard in ((resource.RLIMIT_CPU, cfg["cpu_s"], cfg["cpu_s"] + 1),
                          (resource.RLIMIT_AS, cfg["memory"], cfg["memory"]),
                          (resource.RLIMIT_FSIZE, cfg["fsize"], cfg["fsize"]),
                          (resource.RLIMIT_NOFILE, _MAX_FILES, _MAX_FILES),
                          (resource.RLIMIT_CORE, 0, 0)):
    cap = resource.getrlimit(res)[1]
    if cap != resource.RLIM_INFINITY:
      soft, hard = min(soft, cap), min(hard, cap)
    resource.setrlimit(res, (soft, hard))


def _become_runner(libc, call, cfg: dict) -> None:
  """Process B: limits and unprivileges itself, then execs the runner (never returns)."""
  import ctypes
  call("prctl", _PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
  os.chdir(cfg["box"])
  _set_limits(cfg)
  # No capabilities now or after exec, even as uid 0; each step fails harmlessly where
  # there is nothing to drop. (The bounding set first: that needs CAP_SETPCAP.)
  libc.prctl(_PR_SET_SECUREBITS, _SECBITS_LOCKED_NOROOT, 0, 0, 0)
  for cap in range(64):
    libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)
  libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
  ruleset = _landlock_ruleset(libc, cfg["landlock"], cfg["read"] + [f"/proc/{os.getpid()}"],
                              [cfg["box"]] + cfg["devices"]) if cfg["landlock"] else None
  if cfg.get("uid") is not None:  # root outside: a uid of this run's own, so that
    # RLIMIT_NPROC (which Linux does not apply to root) bounds its threads
    resource.setrlimit(resource.RLIMIT_NPROC, (_MAX_TASKS, _MAX_TASKS))
    os.setgroups([])
    os.setresgid(cfg["uid"], cfg["uid"], cfg["uid"])
    os.setresuid(cfg["uid"], cfg["uid"], cfg["uid"])
  libc.capset((ctypes.c_uint32 * 2)(0x20080522, 0), (ctypes.c_uint32 * 6)())
  call("prctl", _PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
  if ruleset is not None:
    _landlock_restrict(libc, ruleset)
  if cfg["seccomp"]:
    program, length = _seccomp_program(deny_signals=cfg["deny_signals"])
    code = ctypes.create_string_buffer(program, len(program))

    class Fprog(ctypes.Structure):  # struct sock_fprog
      _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = Fprog(length, ctypes.addressof(code))
    call("prctl", _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0)
  os.set_inheritable(cfg["setup_fd"], False)
  # "run": the caller's directory for this run, which names the runner's processes
  runner_cfg = {k: cfg[k] for k in ("job_fd", "result_fd", "audit", "box", "run")}
  os.execv(cfg["python"], [cfg["python"], "-I", "-S", "-c", BOOT, str(cfg["code_fd"]),
                           RUNNER_TAG, json.dumps(runner_cfg)])


def _init(libc, call, cfg: dict) -> None:
  """Process I, PID 1 of the sandbox's PID namespace: mounts its /proc, starts B, reaps
  orphans, and exits with B's status; its exit kills whatever is left in the namespace."""
  call("prctl", _PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
  libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
  call("mount", b"proc", b"/proc", b"proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None)
  pid = os.fork()
  if pid == 0:
    _child(libc, call, cfg)
  while True:
    done, status = os.waitpid(-1, 0)
    if done == pid:
      os._exit(_exit_code(status))


def _child(libc, call, cfg: dict) -> None:
  try:
    _become_runner(libc, call, cfg)
  except BaseException as e:  # noqa: BLE001 - B must never return into A's or I's code
    _fail(cfg, "runner", e)


def _fail(cfg: dict, stage: str, error: BaseException) -> None:
  os.write(cfg["setup_fd"], f"{stage}: {error!r}".encode())
  os._exit(EXIT_SETUP_FAILED)


def _exit_code(status: int) -> int:
  code = os.waitstatus_to_exitcode(status)
  return code if code >= 0 else 128 - code


def _launch(cfg: dict) -> None:
  """Process A."""
  try:
    libc, call = _libc()
    libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    if cfg["own_uid"]:  # unique among the sandboxes alive: the launcher's pid is
      cfg["uid"] = RUN_UID_BASE + os.getpid()
      if not cfg["isolate"]:
        os.chown(cfg["box"], cfg["uid"], cfg["uid"])
    if cfg["isolate"]:
      _isolate(libc, call, cfg)
  except Exception as e:  # noqa: BLE001 - reported to the caller through setup_fd
    _fail(cfg, "isolation", e)
  pid = os.fork()
  if pid == 0:
    if cfg["isolate"]:
      try:
        _init(libc, call, cfg)
      except BaseException as e:  # noqa: BLE001
        _fail(cfg, "init", e)
    _child(libc, call, cfg)
  os._exit(_exit_code(os.waitpid(pid, 0)[1]))


# ----------------------------------------------------------------- the runner (B, exec'd)


def _deny_hook(box: str) -> None:
  """A PEP 578 audit hook: the in-interpreter layer (r1jax/rewards/code.py). Its state is
  immutable and all it calls is captured here, so a program that patches builtins, os or
  posix changes nothing; gc's object walks are refused so that it cannot be found."""
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
  join_s, join_b, isinstance_ = str.join, bytes.join, isinstance

  def resolve(path):
    """Absolute and lexically normal: sound, as no symlink can be made in the box and the
    working directory stays the box."""
    if path.__class__ is not str_ and path.__class__ is not bytes_:
      path = fspath(path)
    if isinstance_(path, bytes_):
      path = bytes_.decode(join_b(b"", [path]), "utf-8", "surrogateescape")
    path = join_s("", [path])  # an exact str: a subclass's own methods cannot lie
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
    if event == "import":
      name = args[0]
      if name.__class__ is not str_:  # a str subclass could lie to this check
        raise denied("sandbox: import names must be plain strings")
      if any(part in modules or part[:5] == "_test" for part in name.split(".")):
        raise denied(f"sandbox: importing {name} is not allowed")  # x._ctypes too
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


def _run(cfg: dict) -> None:
  """Process B after exec: runs the program, then (call tests) each call, and writes what
  the calls returned to the result descriptor as [kind, data] records: ["value", encoded],
  ["raised", exception name], ["unencodable", type name]."""
  import builtins
  # Captured before the program runs: it may rebind any of these in builtins, sys or os.
  exec_, compile_, exit_, write, dumps = exec, compile, os._exit, os.write, json.dumps
  SystemExit_, MemoryError_, BaseException_ = SystemExit, MemoryError, BaseException
  excepthook, exc_info, stderr, encode_ = sys.excepthook, sys.exc_info, sys.stderr, encode
  getattr_, type_, int_, list_ = getattr, type, int, list
  plain = (type(None), bool, int, float, str, list, tuple, set, frozenset, dict)
  os.close(int(sys.argv[1]))  # the descriptor BOOT read this code from
  with os.fdopen(cfg["job_fd"], "rb") as f:
    job = json.loads(f.read())
  calls, result_fd = job["calls"], cfg["result_fd"]
  args = [(decode(a), decode(k)) for _, a, k, _ in calls or ()]

  def quit_(code=None):  # exit() and quit(), which -S leaves out
    raise SystemExit_(code)

  builtins.exit = builtins.quit = quit_
  if cfg["audit"]:
    _deny_hook(os.getcwd())
  g = {"__name__": "__main__", "__builtins__": builtins}
  try:
    exec_(compile_(job["code"], "<solution>", "exec"), g)
  except SystemExit_ as e:  # the end of a stdin program; before any call, a crash
    if calls is not None or not (e.code is None or type_(e.code) is int_ and e.code == 0):
      stderr.write("sandbox: the program exited before the end of the run\n")
      exit_(1)
  except MemoryError_:
    exit_(EXIT_MEMORY)
  except BaseException_:
    excepthook(*exc_info())
    exit_(1)
  if calls is not None:
    records = []
    for (target, _, _, materialize), (a, k) in zip(calls, args):
      try:
        first = target[0]
        if first[0] == "apps" and first[1] not in g:  # APPS: a function, else Solution's
          fn = getattr_(g["Solution"](), first[1])
        else:
          fn = g[first[1]]
        for step in target[1:]:
          fn = fn() if step[0] == "call" else getattr_(fn, step[1])
        value = fn(*a, **k)
        if materialize and type_(value) not in plain:  # a generator, dict_keys, ...
          value = list_(value)  # the test reads it through list/sorted/set/len/...
      except MemoryError_:
        exit_(EXIT_MEMORY)
      except BaseException_ as e:  # SystemExit included: a call that exits is a crash
        excepthook(*exc_info())
        records.append(["raised", type_(e).__name__])
        continue
      try:
        records.append(["value", encode_(value)])
      except (TypeError, ValueError, RecursionError):
        records.append(["unencodable", type_(value).__name__])
    try:
      write(result_fd, dumps(records).encode())
    except BaseException_:
      exit_(1)
  try:
    for stream in (sys.__stdout__, sys.stdout, sys.__stderr__, sys.stderr):
      stream.flush()
  except BaseException_:
    exit_(1)


if __name__ == "__main__" and sys.argv[-2:-1] == [TAG]:
  _launch(json.loads(sys.argv[-1]))
elif __name__ == "__main__" and sys.argv[-2:-1] == [RUNNER_TAG]:
  _run(json.loads(sys.argv[-1]))
