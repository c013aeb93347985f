"""Renders a run's curves: `python -m r1jax.tools.report --workdir=workdirs/grpo_zero`.

Needs matplotlib (in the `dev` extra).

Reads `<workdir>/metrics.jsonl` and writes `<workdir>/report.png` (one panel per metric
present: reward, accuracy, format, length, KL, clip fraction, eval accuracy, loss) and
`<workdir>/report.md` (first / last / best values per metric).
"""

from __future__ import annotations

import argparse
import os

from r1jax.runtime.metrics import read_metrics

PANELS = ("reward/mean", "reward/accuracy", "reward/format", "completion/mean_length", "kl",
          "clip_fraction", "eval/accuracy", "eval/format", "loss", "eval/nll")


def series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
  pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
  return [p[0] for p in pts], [p[1] for p in pts]


def summary_markdown(rows: list[dict], keys=PANELS) -> str:
  lines = ["| metric | first | last | max |", "|---|---|---|---|"]
  for k in keys:
    steps, vals = series(rows, k)
    if vals:
      lines.append(f"| {k} | {vals[0]:.4g} (step {steps[0]}) | {vals[-1]:.4g} (step {steps[-1]}) "
                   f"| {max(vals):.4g} |")
  return "\n".join(lines) + "\n"


def render(workdir: str) -> tuple[str, str]:
  """Writes report.png and report.md into `workdir`; returns their paths."""
  # A bare Figure draws off-screen without touching pyplot's backend (safe in notebooks).
  from matplotlib.figure import Figure

  rows = read_metrics(workdir)
  if not rows:
    raise FileNotFoundError(f"no metrics in {os.path.join(workdir, 'metrics.jsonl')}")
  keys = [k for k in PANELS if series(rows, k)[1]]
  cols = 3
  n_rows = (len(keys) + cols - 1) // cols
  fig = Figure(figsize=(4 * cols, 2.8 * n_rows))
  axes = fig.subplots(n_rows, cols, squeeze=False)
  for ax, k in zip(axes.flat, keys):
    steps, vals = series(rows, k)
    ax.plot(steps, vals, marker="o" if len(vals) < 20 else None, markersize=3)
    ax.set_title(k)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
  for ax in list(axes.flat)[len(keys):]:
    ax.axis("off")
  fig.suptitle(os.path.basename(os.path.normpath(workdir)))
  fig.tight_layout()
  png, md = os.path.join(workdir, "report.png"), os.path.join(workdir, "report.md")
  fig.savefig(png, dpi=100)
  with open(md, "w") as f:
    f.write(f"# {os.path.basename(os.path.normpath(workdir))}\n\n![curves](report.png)\n\n")
    f.write(summary_markdown(rows, keys))
  return png, md


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--workdir", required=True)
  args = p.parse_args(argv)
  for path in render(args.workdir):
    print(path)


if __name__ == "__main__":
  main()
