"""experiments/r1_tiny/pipeline.py: the commands it chains, its control data, its table.

The stages themselves are tested where they live; `pipeline.py --smoke` runs them all
for 2 steps each (~5 min, not part of the suite).
"""

import json
import sys
from pathlib import Path

import pytest

from r1jax.data.conversations import NO_THINK, load_conversations, write_jsonl

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "experiments" / "r1_tiny"))
import pipeline  # noqa: E402


def test_each_stage_reads_what_an_earlier_stage_writes(tmp_path):
  root = str(tmp_path)
  names = [s.name for s in pipeline.STAGES]
  for i, stage in enumerate(pipeline.STAGES):
    cmd = stage.command(root, smoke=False)
    assert cmd[1:3] == ["-m", stage.module] and (ROOT / stage.config).exists()
    assert cmd[4] == f"--workdir={root}/{stage.name}"
    for arg in cmd[5:]:
      value = arg.partition("=")[2]
      for path in value.split(","):
        if path.startswith(root):  # a path into the pipeline: an earlier stage's workdir
          producer = Path(path).relative_to(root).parts[0]
          assert producer in names[:i], (stage.name, arg)
  smoke = pipeline.STAGES[0].command(root, smoke=True)
  assert "--config.train.num_steps=2" in smoke
  assert "--config.train.num_steps=2" not in pipeline.STAGES[0].command(root, smoke=False)


def test_pretrain_makes_the_base_every_base_stage_starts_from(tmp_path, monkeypatch):
  root = str(tmp_path)
  ran = []
  monkeypatch.setattr(pipeline, "run", lambda cmd, log: ran.append(cmd) or 1.0)
  monkeypatch.setattr(pipeline, "without_traces", lambda src, dst: 0)
  monkeypatch.setattr(pipeline, "write_results", lambda root, record, out: None)
  pipeline.main(["--root", root, "--out", root, "--pretrain"])
  by_workdir = {next(a for a in cmd if a.startswith("--workdir="))[len(f"--workdir={root}/"):]:
                cmd for cmd in ran}
  assert ran[0][3:5] == ["--config=configs/pretrain_tiny.py", f"--workdir={root}/pretrain"]
  started_from_base = sorted(name for name, cmd in by_workdir.items()
                             if f"--config.init_from={root}/pretrain" in cmd)
  assert started_from_base == ["cold_start", "eval/base", "r1_zero", "reward_model",
                               "sft_stage2"]
  with pytest.raises(SystemExit):
    pipeline.main(["--root", root, "--pretrain", "--smoke"])
  # without --pretrain, those stages keep their configs' default: the shipped base
  assert not any("--config.init_from" in a for s in pipeline.STAGES if s.from_base
                 for a in s.command(root, smoke=False))


def test_without_traces_keeps_questions_and_answers_only(tmp_path):
  src, dst = tmp_path / "rs.jsonl", tmp_path / "plain.jsonl"
  write_jsonl(str(src), [[{"role": "user", "content": "What is 1 + 2?"},
                          {"role": "assistant",
                           "content": "<think>\n1 + 2 = 3 .\n</think>\n\n<answer> 3 </answer>"}]])
  assert pipeline.without_traces(str(src), str(dst)) == 1
  (msgs,) = load_conversations(str(dst))
  assert msgs == [{"role": "user", "content": "What is 1 + 2?"},
                  {"role": "assistant", "content": NO_THINK + "<answer> 3 </answer>"}]


def test_results_table_and_plot(tmp_path):
  evaluated = [("base", "r1_zero")] + [(s.name, s.evaluate) for s in pipeline.STAGES
                                       if s.evaluate]
  for i, (name, _) in enumerate(evaluated):
    d = tmp_path / "eval" / name
    d.mkdir(parents=True)
    metrics = {"pass@1": i / 100, "cons@4": i / 50, "format": 0.5}
    (d / "eval.json").write_text(json.dumps({"datasets": {"arithmetic:test@128": metrics}}))
  record = {name: {"wall_s": 60.0} for name, _ in evaluated[1:]}
  pipeline.write_results(str(tmp_path), record, str(tmp_path))
  table = (tmp_path / "results.md").read_text()
  assert "| r1_zero | r1_zero | 1.0 % | 2.0 % | 50.0 % | 1.0 min |" in table
  assert "| base | r1_zero | 0.0 % | 0.0 % | 50.0 % | shipped |" in table
  out = json.loads((tmp_path / "results.json").read_text())
  assert [r["stage"] for r in out["stages"]] == [n for n, _ in evaluated]
  assert (tmp_path / "results.png").stat().st_size > 1000


def test_a_failing_stage_stops_the_pipeline(tmp_path):
  with pytest.raises(SystemExit, match="stage failed"):
    pipeline.run([sys.executable, "-c", "raise SystemExit(3)"], str(tmp_path / "log"))


def test_rerun_skips_finished_stages_and_redoes_what_follows_a_change(tmp_path, monkeypatch):
  ran = []
  monkeypatch.setattr(pipeline, "run", lambda cmd, log: ran.append(cmd[4]) or 1.0)
  monkeypatch.setattr(pipeline, "without_traces", lambda src, dst: 0)
  monkeypatch.setattr(pipeline, "write_results", lambda root, record, out: None)
  args = ["--root", str(tmp_path), "--out", str(tmp_path)]
  pipeline.main(args)
  n = len(ran)
  assert n == len(pipeline.STAGES) + len([s for s in pipeline.STAGES if s.evaluate]) + 1
  pipeline.main(args)
  assert len(ran) == n  # everything recorded: nothing runs again

  stale = tmp_path / "sft_stage2" / "checkpoints"
  stale.mkdir(parents=True)
  i = [s.name for s in pipeline.STAGES].index("rejection")
  changed = pipeline.dataclasses.replace(pipeline.STAGES[i], overrides=(("seed", "1"),))
  monkeypatch.setattr(pipeline, "STAGES",
                      pipeline.STAGES[:i] + (changed,) + pipeline.STAGES[i + 1:])
  pipeline.main(args)
  redone = [Path(w.removeprefix("--workdir=")).relative_to(tmp_path).as_posix()
            for w in ran[n:]]
  later = [s.name for s in pipeline.STAGES[i:]]
  assert redone[:len(later)] == later and "r1_zero" not in redone
  assert "eval/base" in redone  # the evaluations come after every stage
  assert not stale.exists()  # a finished run there would have been resumed, not redone
