"""Before/after table of experiments/smollm2_grpo/run.sh: `python summarize.py OUT`.

Reads OUT/eval_before/samples.jsonl and OUT/eval_after/samples.jsonl (one greedy
completion per held-out problem), checks every completion again with the current checker
(`math_equal`, standard mode: a run evaluated before a checker fix is judged as a new run
would be; "as_evaluated" keeps the verdicts of the time), prints accuracy with Wilson 95 %
intervals, the paired difference with its 95 % interval (problems are the same on both
sides), how many problems changed each way, truncation and length, and writes
OUT/results.json and OUT/samples.md (problems the run turned from wrong to right, right to
wrong, and wrong both times).
"""

import json
import math
import sys
from pathlib import Path


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
  p = k / n
  d = 1 + z * z / n
  c = (p + z * z / (2 * n)) / d
  h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
  return c - h, c + h


def paired_interval(before: list[bool], after: list[bool], z: float = 1.96):
  """Mean of after − before and its normal 95 % interval over the same problems."""
  d = [int(a) - int(b) for a, b in zip(after, before)]
  n = len(d)
  mean = sum(d) / n
  var = sum((x - mean) ** 2 for x in d) / (n - 1)
  h = z * math.sqrt(var / n)
  return mean, mean - h, mean + h


def load(path: Path) -> list[dict]:
  """The samples of one evaluation, by problem, each with "as_evaluated" (the verdict of
  the time) and "correct" (the current checker's)."""
  from r1jax.rewards.math import math_equal
  rows = sorted((json.loads(line) for line in path.open()), key=lambda r: r["problem"])
  for r in rows:
    r["as_evaluated"] = r["correct"]
    r["correct"] = math_equal(r["completion"], r["gold"], mode="standard")
  return rows


def main(out: str) -> None:
  out = Path(out)
  before, after = load(out / "eval_before/samples.jsonl"), load(out / "eval_after/samples.jsonl")
  assert [r["question"] for r in before] == [r["question"] for r in after]
  n = len(before)
  res = {"problems": n}
  for name, rows in (("before", before), ("after", after)):
    k = sum(r["correct"] for r in rows)
    lo, hi = wilson(k, n)
    res[name] = {"correct": k, "accuracy": k / n, "wilson95": [lo, hi],
                 "correct_as_evaluated": sum(r["as_evaluated"] for r in rows),
                 "truncated": sum(r["finish_reason"] == "length" for r in rows) / n,
                 "mean_length": sum(r["length"] for r in rows) / n}
  mean, lo, hi = paired_interval([r["correct"] for r in before], [r["correct"] for r in after])
  res["gain"] = {"points": mean, "paired95": [lo, hi],
                 "wrong_to_right": sum(not b["correct"] and a["correct"]
                                       for b, a in zip(before, after)),
                 "right_to_wrong": sum(b["correct"] and not a["correct"]
                                       for b, a in zip(before, after))}
  (out / "results.json").write_text(json.dumps(res, indent=2) + "\n")
  lines = ["| | before | after |", "|---|---|---|"]
  for key, fmt in (("accuracy", "{:.1%}"), ("correct_as_evaluated", "{}"),
                   ("truncated", "{:.1%}"), ("mean_length", "{:.1f}")):
    lines.append(f"| {key} | " + " | ".join(fmt.format(res[s][key]) for s in ("before", "after"))
                 + " |")
  lines.append("| Wilson 95 % | " + " | ".join(
      "{:.1%} – {:.1%}".format(*res[s]["wilson95"]) for s in ("before", "after")) + " |")
  print("\n".join(lines))
  print(f"gain {mean:+.1%} (paired 95 %: {lo:+.1%} to {hi:+.1%}); "
        f"{res['gain']['wrong_to_right']} problems wrong→right, "
        f"{res['gain']['right_to_wrong']} right→wrong, of {n}")
  md = ["# Before and after GRPO: greedy completions on held-out sums", ""]
  for title, want in (("Wrong before, right after", (False, True)),
                      ("Right before, wrong after", (True, False)),
                      ("Wrong both times", (False, False))):
    md += [f"## {title}", ""]
    picked = [(b, a) for b, a in zip(before, after) if (b["correct"], a["correct"]) == want][:4]
    for b, a in picked:
      md += [f"**{b['question']}** (gold {b['gold']})", "",
             f"- before (answer {b['answer']!r}, {b['finish_reason']}, counted "
             f"{b['as_evaluated']} then): `{b['completion']!r}`",
             f"- after (answer {a['answer']!r}, {a['finish_reason']}, counted "
             f"{a['as_evaluated']} then): `{a['completion']!r}`", ""]
  (out / "samples.md").write_text("\n".join(md))


if __name__ == "__main__":
  sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # r1jax from this checkout
  main(sys.argv[1] if len(sys.argv) > 1 else "workdirs/smollm2_grpo")
