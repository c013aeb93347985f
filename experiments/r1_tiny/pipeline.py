"""The whole DeepSeek-R1 recipe on the tiny default, end to end, on a CPU.

    python experiments/r1_tiny/pipeline.py                 # about an hour on 2 CPU cores
    python experiments/r1_tiny/pipeline.py --smoke         # every stage for 2 steps: wiring
    python experiments/r1_tiny/pipeline.py --list          # the commands, without running
    python experiments/r1_tiny/pipeline.py --pretrain      # also pretrain the base (+~15 min)

Every stage is one r1jax command, printed before it runs, in its own workdir under
--root (default workdirs/r1_tiny):

  base            r1jax/assets/tiny_base, made by configs/pretrain_tiny.py (shipped); with
                  --pretrain, the stage `pretrain` makes it and every stage that starts
                  from the base (r1_zero, cold_start, reward_model, sft_stage2) starts there
  r1_zero         GRPO from the base, R1-Zero template, accuracy + format     (R1 §2.2)
  cold_start_data R1-Zero's correct, readable outputs in R1's format         (§2.3.1)
  cold_start      SFT of the base on them                                    (§2.3.1)
  reasoning_rl    GRPO from cold start, accuracy + language consistency      (§2.3.2)
  reward_model    Bradley-Terry preference model for general prompts         (§2.3.4)
  rejection       best-of-N from reasoning RL, correct and readable only     (§2.3.3)
  sft_stage2      SFT of the base on those + non-reasoning conversations     (§2.3.3)
  all_rl          GRPO on a reasoning + general mixture, rules + reward model (§2.3.4)
  distill         a dense student SFT'd on the final model's traces          (§2.4)
  student_plain   the same student on the same questions without the traces (control)

Then every model is evaluated the same way (`python -m r1jax.evaluate`: 128 held-out
additions, 4 samples at T = 0.6, top-p 0.95; pass@1 and cons@4) and the driver writes
results.json, results.md and results.png into --out (default: this folder).

A stage that finished is recorded in <root>/pipeline.json with its command and skipped on a
re-run with the same command, unless an earlier stage ran again (then it starts afresh); an
interrupted stage resumes from its own checkpoint (the train loop's), so the pipeline can
be stopped and restarted at any point.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BASE = os.path.join("r1jax", "assets", "tiny_base")
EVAL_SET = "arithmetic:test@128"


@dataclasses.dataclass(frozen=True)
class Stage:
  name: str
  module: str  # python -m <module>
  config: str
  overrides: tuple[tuple[str, str], ...]  # --config.<key>=<value>
  smoke: tuple[tuple[str, str], ...] = ()  # more overrides for --smoke
  evaluate: str = ""  # the template to evaluate the stage's model with ("": not a model)
  output: str = ""  # the file in the workdir a later stage reads
  from_base: bool = False  # starts from the base model (its config's init_from)

  def command(self, root: str, smoke: bool, base: str = "") -> list[str]:
    """The stage's command; `base` (a workdir) replaces the shipped base it starts from."""
    overrides = dict(self.overrides, **(dict(self.smoke) if smoke else {}))
    if base and self.from_base:
      overrides["init_from"] = base
    return ([sys.executable, "-m", self.module, f"--config={self.config}",
             f"--workdir={os.path.join(root, self.name)}"]
            + [f"--config.{k}={v.format(root=root)}" for k, v in overrides.items()])


SMOKE = (("train.num_steps", "2"), ("train.eval_every", "2"), ("train.save_every", "2"),
         ("train.log_every", "1"))
SMOKE_SAMPLING = (("data.datasets", "('arithmetic:train@16',)"), ("sampling.num_samples", "4"))

# Each stage runs its config's defaults except for the paths that chain the stages, and
# three sizes: 60 reasoning-RL steps instead of 100 (to keep the recipe near an hour on 2
# CPU cores), rejection sampling over 2,048 training prompts, and 280 stage-2 SFT steps.
# The config's 160 steps are two epochs of its 8,000 generated conversations; over the
# ~2,000 traces + 2,000 general conversations here they are 4.2 epochs, after which the
# base had learned the format but not yet to copy the digits it adds (4.5 % held-out);
# at 280 (7.4 epochs) it reaches ~91 %. The tiny model needs more epochs than R1's two.
STAGES = (
    Stage("r1_zero", "r1jax.train", "configs/grpo_zero.py", (), SMOKE, evaluate="r1_zero",
          from_base=True),
    Stage("cold_start_data", "r1jax.cold_start", "configs/cold_start.py",
          (("init_from", "{root}/r1_zero"),), SMOKE_SAMPLING, output="cold_start.jsonl"),
    Stage("cold_start", "r1jax.train", "configs/sft_cold_start.py",
          (("data.source", "{root}/cold_start_data/cold_start.jsonl"),), SMOKE,
          evaluate="r1_chat", from_base=True),
    Stage("reasoning_rl", "r1jax.train", "configs/grpo_reasoning.py",
          (("init_from", "{root}/cold_start"), ("train.num_steps", "60"),
           ("train.eval_every", "20"), ("train.save_every", "20")), SMOKE, evaluate="r1_chat"),
    Stage("reward_model", "r1jax.train", "configs/reward_model.py", (), SMOKE, from_base=True),
    Stage("rejection", "r1jax.rejection_sample", "configs/rejection_sample.py",
          (("init_from", "{root}/reasoning_rl"), ("data.template", "r1_chat"),
           ("sampling.max_new_tokens", "64"), ("data.datasets", "('arithmetic:train@2048',)")),
          SMOKE_SAMPLING, output="rejection_sampled.jsonl"),
    Stage("sft_stage2", "r1jax.train", "configs/sft_stage2.py",
          (("data.source", "{root}/rejection/rejection_sampled.jsonl,tiny_general:train"),
           ("train.num_steps", "280")), SMOKE, evaluate="r1_chat", from_base=True),
    Stage("all_rl", "r1jax.train", "configs/grpo_all.py",
          (("init_from", "{root}/sft_stage2"),
           ("rl.reward_models.helpful.path", "{root}/reward_model"),
           ("rl.reward_models.harmless.path", "{root}/reward_model")), SMOKE,
          evaluate="r1_chat"),
    Stage("distill", "r1jax.train", "configs/distill.py",
          (("data.source", "{root}/rejection/rejection_sampled.jsonl,tiny_general:train"),),
          SMOKE, evaluate="r1_chat"),
    Stage("student_plain", "r1jax.train", "configs/distill.py",
          (("data.source", "{root}/rejection/without_traces.jsonl,tiny_general:train"),),
          SMOKE, evaluate="r1_chat"),
)

# --pretrain: configs/pretrain_tiny.py as its own stage (1,500 steps), the base for the rest
PRETRAIN = Stage("pretrain", "r1jax.train", "configs/pretrain_tiny.py", (), SMOKE)


def stages(pretrain: bool) -> tuple[Stage, ...]:
  return ((PRETRAIN,) if pretrain else ()) + STAGES


def without_traces(src: str, dst: str) -> int:
  """Writes `src`'s conversations with every assistant turn's reasoning emptied (R1's
  "<think>\\n\\n</think>\\n\\n" for queries that need none) and the summary kept: the
  control that sees the same questions and answers as the distilled student but none of
  the teacher's reasoning. Returns the number of conversations."""
  from r1jax.data.conversations import NO_THINK, load_conversations, write_jsonl
  convs = load_conversations(src)
  out = [[dict(m, content=NO_THINK + m["content"].rpartition("</think>")[2].lstrip())
          if m["role"] == "assistant" else m for m in msgs] for msgs in convs]
  write_jsonl(dst, out)
  return len(out)


def eval_command(stage: str, template: str, root: str, smoke: bool,
                 base: str = BASE) -> list[str]:
  init = base if stage == "base" else os.path.join(root, stage)
  data = "('arithmetic:test@8',)" if smoke else f"('{EVAL_SET}',)"
  return [sys.executable, "-m", "r1jax.evaluate", "--config=configs/eval_math.py",
          f"--workdir={os.path.join(root, 'eval', stage)}", f"--config.init_from={init}",
          f"--config.data.template={template}", f"--config.data.datasets={data}",
          # R1's chat rendering of an answer is ~45 tokens; R1-Zero's fits the default 48
          f"--config.sampling.max_new_tokens={64 if template == 'r1_chat' else 48}"]


def run(cmd: list[str], log: str) -> float:
  """Runs `cmd` in the repository, its output teed to `log`; returns the wall time."""
  print("\n$ " + shlex.join(["python", *cmd[1:]]), flush=True)
  start = time.perf_counter()
  with open(log, "a") as f:
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    for line in proc.stdout:
      sys.stdout.write(line)
      f.write(line)
  if proc.wait():
    raise SystemExit(f"stage failed (exit {proc.returncode}): {shlex.join(cmd)}; log: {log}")
  return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--root", default="workdirs/r1_tiny", help="where the stages' workdirs go")
  ap.add_argument("--out", default=None, help="where results.json/.md/.png go (default: "
                  "this folder; with --smoke, --root)")
  ap.add_argument("--smoke", action="store_true", help="2 steps and a few prompts per stage")
  ap.add_argument("--list", action="store_true", help="print the commands and exit")
  ap.add_argument("--pretrain", action="store_true", help="pretrain the base too (stage "
                  "`pretrain`) instead of starting from the shipped one")
  args = ap.parse_args(argv)
  if args.smoke and args.pretrain:
    ap.error("--smoke --pretrain: a base pretrained for 2 steps answers nothing correctly, so "
             "cold-start data would be empty; smoke-test the stages from the shipped base")
  root = os.path.abspath(os.path.join(REPO, args.root))
  os.makedirs(os.path.join(root, "eval"), exist_ok=True)
  record_path = os.path.join(root, "pipeline.json")
  record = json.load(open(record_path)) if os.path.exists(record_path) else {}
  log = os.path.join(root, "pipeline.log")

  base = os.path.join(root, PRETRAIN.name) if args.pretrain else ""
  jobs = [(s.name, s.command(root, args.smoke, base)) for s in stages(args.pretrain)]
  jobs += [(f"eval/{name}", eval_command(name, template, root, args.smoke, base or BASE))
           for name, template in [("base", "r1_zero")] + [(s.name, s.evaluate) for s in STAGES
                                                          if s.evaluate]]
  if args.list:
    print("\n".join(shlex.join(["python", *cmd[1:]]) for _, cmd in jobs))
    return
  redo = False  # once a stage runs again, everything after it must too
  for name, cmd in jobs:
    if not redo and record.get(name, {}).get("command") == cmd[1:]:
      print(f"[{name}] done in an earlier run; skipped (delete it from {record_path} to redo)")
      continue
    workdir = os.path.join(root, name)
    if name in record or (redo and os.path.exists(workdir)):
      # a stale workdir: a restart would resume its old run
      print(f"[{name}] starts afresh: its command or an earlier stage changed")
      shutil.rmtree(workdir, ignore_errors=True)
      record.pop(name, None)
    redo = True  # (the first stage to run may resume its own interrupted run)
    if name == "student_plain":
      n = without_traces(os.path.join(root, "rejection", "rejection_sampled.jsonl"),
                         os.path.join(root, "rejection", "without_traces.jsonl"))
      print(f"[student_plain] {n} conversations without the teacher's reasoning")
    seconds = run(cmd, log)
    record[name] = {"command": cmd[1:], "wall_s": round(seconds, 1)}
    with open(record_path, "w") as f:
      json.dump(record, f, indent=2)
  out = args.out or (root if args.smoke else os.path.dirname(os.path.abspath(__file__)))
  write_results(root, record, out)


def write_results(root: str, record: dict, out: str) -> None:
  """results.json (every stage's eval.json metrics and wall time), results.md, results.png."""
  rows = []
  for name, template in [("base", "r1_zero")] + [(s.name, s.evaluate) for s in STAGES
                                                 if s.evaluate]:
    with open(os.path.join(root, "eval", name, "eval.json")) as f:
      metrics = next(iter(json.load(f)["datasets"].values()))
    rows.append({"stage": name, "template": template, **metrics,
                 "train_wall_s": record.get("pretrain" if name == "base" else name,
                                            {}).get("wall_s")})
  total = sum(r["wall_s"] for r in record.values())
  with open(os.path.join(out, "results.json"), "w") as f:
    json.dump({"eval_set": EVAL_SET, "stages": rows, "wall_s": record,
               "total_wall_s": round(total, 1)}, f, indent=2)
  cons = next(k for k in rows[0] if k.startswith("cons@"))
  lines = [f"| stage | template | pass@1 | {cons} | format | stage wall time |",
           "|---|---|---|---|---|---|"]
  for r in rows:
    wall = f"{r['train_wall_s'] / 60:.1f} min" if r["train_wall_s"] else "shipped"
    lines.append(f"| {r['stage']} | {r['template']} | {100 * r['pass@1']:.1f} % | "
                 f"{100 * r[cons]:.1f} % | {100 * r['format']:.1f} % | {wall} |")
  table = "\n".join(lines) + f"\n\nAll stages and evaluations: {total / 60:.0f} min.\n"
  with open(os.path.join(out, "results.md"), "w") as f:
    f.write(table)
  print(table)

  from matplotlib.figure import Figure
  fig = Figure(figsize=(9, 3.6), layout="constrained")
  ax = fig.add_subplot()
  x = range(len(rows))
  ax.bar([i - 0.2 for i in x], [100 * r["pass@1"] for r in rows], 0.4, label="pass@1")
  ax.bar([i + 0.2 for i in x], [100 * r[cons] for r in rows], 0.4, label=cons)
  ax.set_xticks(list(x), [r["stage"] for r in rows], rotation=30, ha="right")
  ax.set_ylabel(f"% correct, {EVAL_SET}")
  ax.legend()
  fig.savefig(os.path.join(out, "results.png"), dpi=120)


if __name__ == "__main__":
  main()
