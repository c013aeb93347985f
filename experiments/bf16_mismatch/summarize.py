"""Side-by-side table and plot of experiments/bf16_mismatch/run.sh: `python summarize.py OUT`.

Means over the steps of each run: the sampler/trainer log-prob mismatch, the fraction of
tokens (and sequences, GSPO's unit) whose ratio is outside the clip range before the
update, the clip fraction the loss saw, the TIS weights, KL and reward. Writes
OUT/summary.json, OUT/summary.md and OUT/summary.png.
"""

import json
import sys
from pathlib import Path

KEYS = ("mismatch/logp_diff_mean", "mismatch/logp_diff_max", "mismatch/token_out_of_clip",
        "mismatch/seq_out_of_clip", "mismatch/seq_ratio_min", "mismatch/seq_ratio_max",
        "clip_fraction", "tis/weight_mean", "tis/capped_fraction", "kl", "entropy",
        "reward/mean", "time/step_s")
RUNS = ("sampler", "trainer", "trainer_tis", "gspo")


def main(out: str) -> None:
  out = Path(out)
  rows = {name: [json.loads(line) for line in (out / name / "metrics.jsonl").open()]
          for name in RUNS if (out / name / "metrics.jsonl").exists()}
  summary = {name: {k: sum(r[k] for r in rs if k in r) / max(sum(k in r for r in rs), 1)
                    for k in KEYS if any(k in r for r in rs)} | {"steps": len(rs)}
             for name, rs in rows.items()}
  for name, rs in rows.items():  # where the reward went: its last third
    last = [r["reward/mean"] for r in rs if "reward/mean" in r][-max(len(rs) // 3, 1):]
    summary[name]["reward/mean, last third"] = sum(last) / max(len(last), 1)
  (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
  names = list(summary)
  lines = ["| mean over steps | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
  for k in KEYS + ("reward/mean, last third", "steps"):
    lines.append(f"| {k} | " + " | ".join(
        f"{summary[n][k]:.4g}" if k in summary[n] else "–" for n in names) + " |")
  (out / "summary.md").write_text("\n".join(lines) + "\n")
  print("\n".join(lines))
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  panels = ("mismatch/logp_diff_mean", "mismatch/token_out_of_clip", "clip_fraction",
            "reward/mean")
  fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2))
  for ax, k in zip(axes, panels):
    for name, rs in rows.items():
      ax.plot([r["step"] for r in rs if k in r], [r[k] for r in rs if k in r], label=name)
    ax.set_title(k, fontsize=9)
    ax.set_xlabel("step")
  axes[0].legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(out / "summary.png", dpi=110)


if __name__ == "__main__":
  main(sys.argv[1] if len(sys.argv) > 1 else "workdirs/bf16_mismatch")
