"""The train loop end to end on the tiny default: pretrain -> GRPO, resume, bad input."""

import jax
import numpy as np
import pytest

from configs import grpo_zero, pretrain_tiny
from r1jax.models import loading
from r1jax.runtime import checkpoint as ckpt_lib
from r1jax.runtime.metrics import read_metrics
from r1jax.train import train_and_evaluate


def _pretrain_config(steps=3):
  c = pretrain_tiny.get_config()
  c.data.batch_size = 8
  c.data.num_eval = 8
  c.train.num_steps = steps
  c.train.log_every = 1
  c.train.eval_every = steps
  c.train.save_every = 2
  return c


def _weights(workdir):
  return loading.restore_run_weights(str(workdir))[1]


@pytest.fixture(scope="module")
def base_workdir(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("pretrain")
  train_and_evaluate(_pretrain_config(), str(workdir))
  return workdir


def test_pretrain_writes_metrics_and_checkpoints(base_workdir):
  rows = read_metrics(str(base_workdir))
  assert [r["step"] for r in rows] == [0, 1, 2, 3]  # step 0: the evaluation before training
  assert set(rows[0]) == {"step", "eval/nll"}
  assert rows[-1]["loss"] < rows[1]["loss"] and rows[-1]["eval/nll"] < rows[0]["eval/nll"]
  assert "eval/nll" in rows[-1] and rows[-1]["skipped_steps"] == 0
  assert ckpt_lib.Checkpointer(str(base_workdir)).latest_step() == 3


def test_grpo_zero_from_the_base(base_workdir, tmp_path, monkeypatch):
  from r1jax import train
  from r1jax.stages import grpo as rollout
  # The colocated rollout samples from the training arrays themselves (no copy): the
  # parameters `generate` gets are the objects the train step then updates.
  sampled_from, trained = [], []
  generate, make_train_step = rollout.generate, train.make_train_step
  monkeypatch.setattr(rollout, "generate", lambda cfg, params, *a, **k: (
      sampled_from.append(jax.tree.leaves(params["params"])) or generate(cfg, params, *a, **k)))

  def spy(*args, **kwargs):
    step = make_train_step(*args, **kwargs)
    return lambda state, batch: trained.append(jax.tree.leaves(state["params"])) or step(state, batch)

  monkeypatch.setattr(train, "make_train_step", spy)
  c = grpo_zero.get_config()
  c.init_from = str(base_workdir)
  c.rl.prompts_per_step = 2
  c.rl.num_generations = 4
  c.rl.max_new_tokens = 12
  c.data.num_eval = 8
  c.train.num_steps = 2
  c.train.eval_every = 2
  train_and_evaluate(c, str(tmp_path))
  rows = read_metrics(str(tmp_path))
  assert [r["step"] for r in rows] == [0, 1, 2]
  assert "eval/accuracy" in rows[0] and "eval/format" in rows[0]
  rows = rows[1:]
  for key in ("reward/mean", "reward/accuracy", "reward/format", "completion/mean_length",
              "kl", "loss", "clip_fraction"):
    assert key in rows[0], key
  assert "eval/accuracy" in rows[-1]
  assert 0 < rows[0]["completion/mean_length"] <= 12
  assert len(trained) == 2 and len(sampled_from) >= 2  # (evaluations sample too)
  for leaves in trained:
    assert any(all(a is b for a, b in zip(leaves, s)) for s in sampled_from)
  # the policy starts from the base's weights, not from a random init
  base, after = _weights(base_workdir), _weights(tmp_path)
  emb0, emb1 = base["params"]["embed"], after["params"]["embed"]
  assert np.abs(np.asarray(emb1) - np.asarray(emb0)).max() < 0.05


def test_reference_refresh_every_n_steps():
  from r1jax.data.tokenizers import load_tokenizer
  from r1jax.models.loading import model_config
  from r1jax.runtime import sharding
  from r1jax.stages.grpo import GRPOStage

  c = grpo_zero.get_config()
  c.rl.prompts_per_step, c.rl.num_generations, c.rl.ref_update_every = 2, 4, 3
  cfg = model_config(c)
  stage = GRPOStage(c, cfg, load_tokenizer(c.tokenizer), sharding.make_mesh(dict(c.mesh)))
  ref = {"params": {"w": jax.numpy.zeros(2)}, "buffers": {}}
  state = {"params": {"w": jax.numpy.ones(2)}, "buffers": {}, "ref_params": ref, "step": 4}
  assert stage.begin_step(state)["ref_params"] is ref  # step 4: not a multiple of 3
  new = stage.begin_step(dict(state, step=6))["ref_params"]
  np.testing.assert_array_equal(new["params"]["w"], [1.0, 1.0])
  assert new["params"]["w"] is not state["params"]["w"]  # a copy: the step donates params
  assert stage.begin_step(dict(state, step=0))["ref_params"] is ref


def test_ignore_eos_runs_every_completion_to_max_new_tokens():
  from r1jax.data.tokenizers import load_tokenizer
  from r1jax.models.loading import init_weights, model_config
  from r1jax.runtime import sharding
  from r1jax.stages.grpo import GRPOStage

  c = grpo_zero.get_config()
  c.rl.prompts_per_step, c.rl.num_generations, c.rl.max_new_tokens = 4, 2, 40
  c.rl.stop_strings = ()
  cfg, tok, mesh = model_config(c), load_tokenizer(c.tokenizer), sharding.make_mesh(dict(c.mesh))
  weights = init_weights(c, cfg, jax.random.key(0), mesh)
  items = [("", {"question": f"{a} + {a}", "answer": str(2 * a)}) for a in range(4)]

  def lengths(ignore_eos):
    c.rl.ignore_eos = ignore_eos
    stage = GRPOStage(c, cfg, tok, mesh)
    assert stage.sampling["stop_token_ids"] == (() if ignore_eos else (tok.eos_id,))
    return stage._rollout(weights, items, 2, seed=0).result.lengths

  # the trained tiny base answers and ends with eos well within 40 tokens...
  assert (lengths(False) < 40).any()
  # ...and writes on past it when eos does not stop it
  np.testing.assert_array_equal(lengths(True), 40)


def test_resume_gives_the_uninterrupted_run(tmp_path):
  straight = tmp_path / "straight"
  train_and_evaluate(_pretrain_config(steps=4), str(straight))
  split = tmp_path / "split"
  train_and_evaluate(_pretrain_config(steps=2), str(split))
  train_and_evaluate(_pretrain_config(steps=4), str(split))  # resumes at step 2
  a, b = read_metrics(str(straight)), read_metrics(str(split))
  assert [r["step"] for r in b] == [0, 1, 2, 3, 4]  # the resumed run does not re-evaluate step 0
  a, b = a[1:], b[1:]
  np.testing.assert_allclose([r["loss"] for r in b], [r["loss"] for r in a], rtol=1e-6)
  wa, wb = _weights(straight), _weights(split)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7), wa, wb)


def test_bad_configs(base_workdir, tmp_path):
  c = grpo_zero.get_config()
  c.init_from = str(base_workdir)
  c.rl.num_generations = 1
  with pytest.raises(ValueError, match="num_generations=1"):
    train_and_evaluate(c, str(tmp_path / "a"))
  c = grpo_zero.get_config()
  c.init_from = str(base_workdir)
  c.rl.prompts_per_step, c.rl.num_generations = 3, 2
  with pytest.raises(ValueError, match=r"batch size 6 is not divisible by data×fsdp×expert"):
    train_and_evaluate(c, str(tmp_path / "b"))
  c = _pretrain_config()
  c.model_overrides.dim = 64
  with pytest.raises(ValueError, match=r"different model \(dim: checkpoint 128 vs config 64"):
    train_and_evaluate(c, str(base_workdir))
  c = _pretrain_config()
  c.stage = "dpo"
  with pytest.raises(ValueError, match="unknown config.stage='dpo'"):
    train_and_evaluate(c, str(tmp_path / "c"))


def _hf_student(path):
  """A tiny random Qwen2 instruct checkpoint: a byte-level BPE tokenizer.json with a ChatML
  chat template, as on the Hub."""
  import torch
  import transformers

  from tests.hf_standins import CHATML, write_bpe_tokenizer

  write_bpe_tokenizer(path, chat_template=CHATML)
  torch.manual_seed(0)
  hf_cfg = transformers.Qwen2Config(vocab_size=320, hidden_size=64, intermediate_size=128,
                                    num_hidden_layers=2, num_attention_heads=4,
                                    num_key_value_heads=2, tie_word_embeddings=True)
  transformers.Qwen2ForCausalLM(hf_cfg).save_pretrained(str(path))


def test_grpo_gsm8k_with_a_hugging_face_student(tmp_path):
  from configs import grpo_gsm8k

  student = tmp_path / "student"
  student.mkdir()
  _hf_student(student)
  c = grpo_gsm8k.get_config()
  c.init_from = str(student)
  c.model_overrides.dtype = "float32"
  c.rl.prompts_per_step, c.rl.num_generations, c.rl.max_new_tokens = 2, 4, 6
  c.data.num_eval = 8
  c.train.num_steps = c.train.eval_every = 1
  train_and_evaluate(c, str(tmp_path / "run"))
  row = read_metrics(str(tmp_path / "run"))[-1]
  assert row["step"] == 1 and "eval/accuracy" in row and "reward/accuracy" in row
  # the run keeps the student's tokenizer and chat template: the workdir is a checkpoint
  # that tokenizer="from_checkpoint" reads, as the student directory was
  from r1jax.data.tokenizers import load_tokenizer
  saved, original = load_tokenizer(str(tmp_path / "run")), load_tokenizer(str(student))
  text = "What is 12 + 30? <think> 42 </think>"
  assert saved.encode(text) == original.encode(text)
  assert saved.chat_template == original.chat_template
  c.init_from = str(tmp_path / "missing")
  with pytest.raises(FileNotFoundError, match="missing' does not exist; point it at an r1jax"):
    train_and_evaluate(c, str(tmp_path / "run2"))
  # any stage: a missing config default workdir names the command that makes it
  from configs import sft_stage2
  c = sft_stage2.get_config()
  c.init_from = str(tmp_path / "sft_cold_start")
  with pytest.raises(FileNotFoundError, match="make it with `python -m r1jax.train "
                     "--config=configs/sft_cold_start.py"):
    train_and_evaluate(c, str(tmp_path / "run3"))


def test_export_hf_and_the_shipped_base(base_workdir, tmp_path):
  from r1jax.models import presets
  from r1jax.models.hf import load_hf_checkpoint
  from r1jax.tools import export_hf

  out = export_hf.export(str(base_workdir), str(tmp_path / "hf"))
  _, weights = load_hf_checkpoint(out)
  saved = _weights(base_workdir)
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), weights, saved)
  # the default R1-Zero config starts from the shipped base, the tiny preset's shape
  base_cfg, _ = load_hf_checkpoint(grpo_zero.get_config().init_from)
  loading.check_same_model(loading.model_config_dict(base_cfg), presets.get("deepseek_v3_tiny"),
                            "r1jax/assets/tiny_base")


def _sft_config(data_dir, steps):
  from configs import sft_cold_start
  from r1jax.data import conversations

  c = sft_cold_start.get_config()
  c.data.source = str(data_dir / "cold_start.jsonl")
  if not (data_dir / "cold_start.jsonl").exists():
    conversations.write_jsonl(c.data.source, conversations.arithmetic_conversations("train", 60))
  c.data.eval_source, c.data.eval_fraction = "", 0.2  # 48 to train on: 2 batches an epoch
  c.data.batch_size = 8
  c.train.num_steps = steps
  c.train.log_every = 1
  c.train.eval_every = steps
  c.train.save_every = 2
  return c


def test_sft_cold_start_end_to_end_and_resume(tmp_path):
  straight, split = tmp_path / "straight", tmp_path / "split"
  train_and_evaluate(_sft_config(tmp_path, 3), str(straight))
  rows = read_metrics(str(straight))
  assert [r["step"] for r in rows] == [0, 1, 2, 3]
  assert set(rows[0]) == {"step", "eval/nll", "eval/token_accuracy"}
  assert [r["data/epoch"] for r in rows[1:]] == [0.5, 1.0, 1.5]  # into the second epoch
  assert rows[3]["eval/nll"] < rows[0]["eval/nll"] and rows[3]["skipped_steps"] == 0
  assert 0 < rows[1]["data/fill"] <= 1 and rows[1]["token_accuracy"] > 0
  # fine-tuned from the shipped base, not from a random init
  from r1jax.models.hf import load_hf_checkpoint
  _, base = load_hf_checkpoint(_sft_config(tmp_path, 3).init_from)
  emb0, emb1 = base["params"]["embed"], _weights(straight)["params"]["embed"]
  assert np.abs(np.asarray(emb1) - np.asarray(emb0)).max() < 0.05

  train_and_evaluate(_sft_config(tmp_path, 2), str(split))
  train_and_evaluate(_sft_config(tmp_path, 3), str(split))  # resumes at step 2, epoch 2
  a, b = rows[1:], read_metrics(str(split))[1:]
  assert [r["step"] for r in b] == [1, 2, 3]
  for key in ("loss", "data/epoch"):
    np.testing.assert_allclose([r[key] for r in b], [r[key] for r in a], rtol=1e-6, err_msg=key)
  np.testing.assert_allclose(b[-1]["eval/nll"], a[-1]["eval/nll"], rtol=1e-6)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7),
               _weights(straight), _weights(split))


def test_sharding_rules_come_from_the_config(tmp_path, monkeypatch):
  """config.sharding_rules lays out the run's state: the embedding split over fsdp on its
  vocab axis instead of its embed axis, Adam's moments with it."""
  from jax.sharding import PartitionSpec as P

  from r1jax import train
  seen = {}
  make_train_step = train.make_train_step

  def spy(*args, state_shardings, **kwargs):
    seen.update(state_shardings)
    return make_train_step(*args, state_shardings=state_shardings, **kwargs)

  monkeypatch.setattr(train, "make_train_step", spy)
  c = _pretrain_config(steps=1)
  c.mesh.data, c.mesh.fsdp = 1, -1
  c.sharding_rules = "embed:none,vocab:fsdp"
  train_and_evaluate(c, str(tmp_path / "run"))
  assert seen["params"]["embed"].spec == P("fsdp", None)
  assert seen["opt_state"][1][0].mu["embed"].spec == P("fsdp", None)
  assert seen["params"]["lm_head"].spec == P(None, "fsdp")
  c.sharding_rules = "embed:fsdb"
  with pytest.raises(ValueError, match=r"sharding rule 'embed:fsdb': \['fsdb'\] are not mesh axes"):
    train_and_evaluate(c, str(tmp_path / "bad"))
