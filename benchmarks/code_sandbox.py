"""Per-test-case cost of the code reward's sandbox, against an earlier revision; prints JSON.

    python benchmarks/code_sandbox.py --before=be59ae6 --problems=200 \
        --out=benchmarks/results/code_sandbox_cpu.json

200 small problems with 4 test cases each (half stdin/stdout, half asserts on a function),
every program right, scored by `code_reward` (its default parallelism) in this tree and in
the r1jax package of git revision `--before` (extracted with `git archive`), in alternating
rounds in fresh processes, so both see the same machine load. Reports seconds per test
case for each and their ratio (after / before). `--problems=8 --rounds=1` runs in seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Run in a fresh interpreter with PYTHONPATH at one tree: scores the problems, prints seconds.
_WORKER = r"""
import json, sys, time
from r1jax.rewards.code import code_reward
n = int(sys.argv[1])
completions, tests = [], []
for i in range(n):
  if i % 2:
    completions.append("```python\nprint(sum(map(int, input().split())))\n```")
    tests.append([{"input": f"{i} {k}\n", "output": str(i + k)} for k in range(4)])
  else:
    completions.append("```python\ndef f(x):\n  return x * x + %d\n```" % i)
    tests.append([f"assert f({k}) == {k * k + i}" for k in range(4)])
code_reward(["p"] * 2, completions[:2], tests=tests[:2])  # warm-up: layer probe, caches
start = time.perf_counter()
rewards = code_reward(["p"] * n, completions, tests=tests)
elapsed = time.perf_counter() - start
assert rewards == [1.0] * n, rewards
print(json.dumps({"seconds": elapsed}))
"""


def _time_tree(tree: str, problems: int) -> float:
  env = dict(os.environ, PYTHONPATH=tree)
  out = subprocess.run([sys.executable, "-c", _WORKER, str(problems)], env=env, check=True,
                       capture_output=True, text=True, cwd=tree).stdout
  return json.loads(out.strip().splitlines()[-1])["seconds"]


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--before", default="HEAD", help="git revision to compare with")
  p.add_argument("--problems", type=int, default=200)
  p.add_argument("--rounds", type=int, default=4, help="alternating rounds per tree")
  p.add_argument("--out", default="")
  args = p.parse_args(argv)
  with tempfile.TemporaryDirectory() as old:
    archive = subprocess.run(["git", "archive", args.before, "r1jax"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", old], input=archive, check=True)
    per_round = max(1, args.problems // args.rounds)
    times = {"before": [], "after": []}
    for _ in range(args.rounds):
      times["before"].append(_time_tree(old, per_round))
      times["after"].append(_time_tree(str(ROOT), per_round))
  cases = per_round * args.rounds * 4
  result = {
      "command": "python benchmarks/code_sandbox.py " + " ".join(argv or sys.argv[1:]),
      "before": args.before, "problems": per_round * args.rounds, "test_cases": cases,
      "cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
      "seconds_per_case": {k: sum(v) / cases for k, v in times.items()},
      "round_seconds": times,
  }
  result["ratio_after_over_before"] = (result["seconds_per_case"]["after"]
                                       / result["seconds_per_case"]["before"])
  text = json.dumps(result, indent=2)
  print(text)
  if args.out:
    Path(args.out).write_text(text + "\n")
  return result


if __name__ == "__main__":
  main()
