"""Distillation (R1 §2.4): the top-k KD loss against NumPy, a frozen teacher, tokenizer
checks, and SFT + KD of an HF-format dense student from an r1jax MoE teacher, resumed."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import distill as distill_config
from configs import sft_cold_start
from r1jax import train
from r1jax.data import conversations as C
from r1jax.data.tokenizers import load_tokenizer
from r1jax.losses import distill as distill_loss
from r1jax.losses.lm import make_lm_loss
from r1jax.models import forward, init_params, loading, presets
from r1jax.models.hf import load_hf_checkpoint, save_hf_checkpoint
from r1jax.runtime import checkpoint as ckpt_lib
from r1jax.runtime import sharding
from r1jax.runtime.metrics import read_metrics
from r1jax.stages import distill
from r1jax.train import train_and_evaluate
from tests.hf_standins import write_bpe_tokenizer

TOK = load_tokenizer("r1jax_tiny")
TINY_BASE = sft_cold_start.get_config().init_from  # the shipped deepseek_v3_tiny


def _np_log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _np_kd(student, teacher, mask, k, tau):
  """KL(teacher's top-k renormalised ‖ student gathered at those ids), masked mean."""
  kl = np.zeros(mask.shape)
  for idx in np.ndindex(*mask.shape):
    z = teacher[idx] / tau
    top = np.argsort(-z)[:k]
    p = np.exp(z[top] - z[top].max())
    p /= p.sum()
    logq = _np_log_softmax(student[idx] / tau)[top]
    kl[idx] = (p * (np.log(p) - logq)).sum()
  return (kl * mask).sum() / mask.sum()


def _batch(n=6, seq_len=128, batch_size=2):
  examples = [C.tokenize(m, TOK) for m in C.arithmetic_conversations("train", n)]
  return C.packed_batches(examples, seq_len, batch_size, TOK.pad_id)[0]


def test_topk_kl_matches_numpy():
  rng = np.random.default_rng(0)
  student = rng.normal(size=(2, 5, 13)).astype(np.float32) * 3
  teacher = rng.normal(size=(2, 5, 13)).astype(np.float32) * 3
  mask = rng.integers(0, 2, (2, 5)).astype(np.float32)
  for k, tau in [(4, 1.0), (4, 2.0), (13, 0.5)]:
    ids, logp, mass = distill_loss.teacher_topk(jnp.asarray(teacher), k, tau)
    assert ids.shape == logp.shape == (2, 5, k) and mass.shape == (2, 5)
    np.testing.assert_allclose(np.exp(logp).sum(-1), 1.0, rtol=1e-6)
    full = np.exp(_np_log_softmax(teacher / tau))
    np.testing.assert_allclose(mass, np.sort(full, -1)[..., ::-1][..., :k].sum(-1), rtol=1e-5)
    got = distill_loss.topk_forward_kl(jnp.asarray(student), ids, logp, jnp.asarray(mask), tau)
    np.testing.assert_allclose(got, _np_kd(student, teacher, mask, k, tau), rtol=1e-5)
  # a student that copies the teacher's full distribution pays −log(top-k mass) for what
  # it puts outside the top k, and nothing with k = V
  ids, logp, mass = distill_loss.teacher_topk(jnp.asarray(teacher), 4, 1.0)
  np.testing.assert_allclose(distill_loss.topk_forward_kl(jnp.asarray(teacher), ids, logp,
                                                     jnp.ones((2, 5)), 1.0),
                             -np.log(mass).mean(), rtol=1e-5)
  ids, logp, _ = distill_loss.teacher_topk(jnp.asarray(teacher), 13, 1.0)
  assert abs(distill_loss.topk_forward_kl(jnp.asarray(teacher), ids, logp, jnp.ones((2, 5)), 1.0)) < 1e-5


def test_distill_loss_is_sft_plus_weighted_kd():
  cfg = presets.get("qwen2_tiny", n_layers=1, n_dense_layers=1)
  params = init_params(cfg, jax.random.key(0))
  batch = _batch()
  T = batch["tokens"].shape[1]
  teacher_logits = jax.random.normal(jax.random.key(1), (2, T - 1, cfg.vocab_size)) * 4
  ids, logp, mass = distill_loss.teacher_topk(teacher_logits, 8, 2.0)
  kd_batch = dict(batch, teacher_ids=ids, teacher_logp=logp, teacher_topk_mass=mass)

  _, (want, _) = jax.jit(make_lm_loss(cfg))(params, batch)
  loss0, (got, _) = jax.jit(distill_loss.make_distill_loss(cfg, kd_weight=0.0, temperature=2.0))(
      params, kd_batch)
  assert float(loss0) == float(want["nll"])  # α = 0: exactly the SFT loss
  for key in ("nll", "token_accuracy"):
    assert float(got[key]) == float(want[key]), key

  loss, (m, _) = jax.jit(distill_loss.make_distill_loss(cfg, kd_weight=0.3, temperature=2.0))(
      params, kd_batch)
  student = np.asarray(jax.jit(lambda b: forward(cfg, params, b["tokens"][:, :-1],
                                                 positions=b["positions"][:, :-1],
                                                 segment_ids=b["segment_ids"][:, :-1]))(batch))
  mask = batch["loss_mask"][:, 1:].astype(np.float64)
  kl = _np_kd(student, np.asarray(teacher_logits), mask, 8, 2.0)
  np.testing.assert_allclose(m["kd_kl"], kl, rtol=1e-5)
  np.testing.assert_allclose(loss, 0.7 * float(want["nll"]) + 0.3 * 4.0 * kl, rtol=1e-5)
  np.testing.assert_allclose(m["kd_topk_mass"], (np.asarray(mass) * mask).sum() / mask.sum(),
                             rtol=1e-5)
  assert 0 <= float(m["kd_agreement"]) <= 1
  with pytest.raises(ValueError, match=r"kd_weight=1.5 must lie in \[0, 1\]"):
    distill_loss.make_distill_loss(cfg, kd_weight=1.5, temperature=1.0)
  with pytest.raises(ValueError, match="temperature=0 must be > 0"):
    distill_loss.make_distill_loss(cfg, kd_weight=0.5, temperature=0)
  with pytest.raises(ValueError, match=r"top_k=2000 must lie in \[1, 1024\]"):
    distill_loss.make_teacher_fn(cfg, top_k=2000, temperature=1.0, vocab_limit=1024)


def test_no_gradient_reaches_the_teacher():
  student_cfg = presets.get("qwen2_tiny", n_layers=1, n_dense_layers=1)
  teacher_cfg = presets.get("llama3_tiny", n_layers=1, n_dense_layers=1)
  student = init_params(student_cfg, jax.random.key(0))
  teacher = init_params(teacher_cfg, jax.random.key(1))
  batch = _batch()
  loss_fn = distill_loss.make_distill_loss(student_cfg, kd_weight=1.0, temperature=1.0)
  teacher_fn = distill_loss.make_teacher_fn(teacher_cfg, top_k=8, temperature=1.0,
                                       vocab_limit=TOK.vocab_size)
  grads = jax.jit(jax.grad(lambda t: loss_fn(student, dict(batch, **teacher_fn(t, batch)))[0]))
  assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree.leaves(grads(teacher)))
  # nor through the targets alone, however the teacher's logits were made (the loss does
  # depend on them: a different teacher gives a different KL)
  z = jax.random.normal(jax.random.key(2), (2, 4, 9))

  def kl(teacher_logits):
    ids, logp, _ = distill_loss.teacher_topk(teacher_logits, 3, 1.0)
    return distill_loss.topk_forward_kl(z, ids, logp, jnp.ones((2, 4)), 1.0)

  assert float(kl(2 * z)) != float(kl(3 * z))
  assert float(jnp.abs(jax.grad(kl)(2 * z)).max()) == 0


class _Swapped:
  """The tiny tokenizer with ids a and b exchanged."""

  def __init__(self, a, b):
    self.vocab_size, self.bos_id, self.eos_id, self.pad_id = (TOK.vocab_size, TOK.bos_id,
                                                              TOK.eos_id, TOK.pad_id)
    self.swap = {a: b, b: a}

  def decode_batch(self, batch, *, skip_special=False):
    return TOK.decode_batch([[self.swap.get(i, i) for i in ids] for ids in batch],
                            skip_special=skip_special)


def test_tokenizer_check_counts_the_differences(tmp_path):
  distill.check_same_tokenizer(TOK, load_tokenizer("r1jax_tiny"), student_name="a",
                               teacher_name="b")
  with pytest.raises(ValueError, match=r"2 of the 1024 ids both have decode to different text "
                                       r"\(e\.g\. id 100: "):
    distill.check_same_tokenizer(TOK, _Swapped(100, 700), student_name="s", teacher_name="t")
  write_bpe_tokenizer(tmp_path)
  bpe = load_tokenizer(tmp_path)
  with pytest.raises(ValueError) as e:
    distill.check_same_tokenizer(bpe, TOK, student_name=str(tmp_path), teacher_name="r1jax_tiny")
  msg = str(e.value)
  assert f"the student's tokenizer has {bpe.vocab_size} ids, the teacher's 1024" in msg
  assert f"of the {bpe.vocab_size} ids both have decode to different text" in msg
  assert "special ids differ" in msg
  assert "--config.tokenizer=r1jax_tiny" in msg and "--config.distill.kd_weight=0" in msg


# ------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def teacher_workdir(tmp_path_factory):
  """An r1jax workdir holding the shipped tiny DeepSeek-V3 MoE as a run's checkpoint."""
  workdir = str(tmp_path_factory.mktemp("teacher"))
  cfg, weights = load_hf_checkpoint(TINY_BASE)
  checkpointer = ckpt_lib.Checkpointer(workdir, async_save=False)
  state = dict(weights, step=jnp.zeros((), jnp.int32))
  checkpointer.save(1, state, {"model": loading.model_config_dict(cfg),
                               "config": json.dumps({"stage": "sft", "tokenizer": "r1jax_tiny"})})
  checkpointer.close()
  return workdir


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  path = tmp_path_factory.mktemp("traces")
  C.write_jsonl(str(path / "traces.jsonl"), C.arithmetic_conversations("train", 60))
  student = path / "student"
  cfg = presets.get("qwen2_tiny")
  save_hf_checkpoint(cfg, init_params(cfg, jax.random.key(3)), str(student))
  return path


def _config(data_dir, teacher, steps):
  c = distill_config.get_config("kd")
  c.model, c.init_from = "from_checkpoint", str(data_dir / "student")
  c.distill.teacher, c.distill.top_k = teacher, 8  # kd_weight 0.5, as the variant
  c.data.source = str(data_dir / "traces.jsonl")
  c.data.eval_source, c.data.eval_fraction = "", 0.2  # 48 to train on: 2 batches an epoch
  c.data.batch_size, c.data.seq_len = 8, 128
  c.train.num_steps = steps
  c.train.log_every = 1
  c.train.eval_every = steps
  c.train.save_every = 2
  return c


def test_distill_with_kd_end_to_end_and_resume(data_dir, teacher_workdir, tmp_path):
  straight, split = tmp_path / "straight", tmp_path / "split"
  train_and_evaluate(_config(data_dir, teacher_workdir, 3), str(straight))
  rows = read_metrics(str(straight))
  assert [r["step"] for r in rows] == [0, 1, 2, 3]
  assert set(rows[0]) == {"step", "eval/nll", "eval/token_accuracy", "eval/kd_kl",
                          "eval/kd_agreement"}
  for r in rows[1:]:
    assert np.isfinite(r["loss"]) and r["skipped_steps"] == 0 and 0 < r["kd_topk_mass"] <= 1
    np.testing.assert_allclose(r["loss"], 0.5 * r["nll"] + 0.5 * r["kd_kl"], rtol=1e-5)
  for key in ("eval/kd_kl", "eval/nll"):
    assert rows[3][key] < rows[0][key], key
  # the student starts from its Hugging Face checkpoint, not from a random init
  _, start = load_hf_checkpoint(str(data_dir / "student"))
  _, after = loading.restore_run_weights(str(straight))
  assert np.abs(np.asarray(after["params"]["embed"]) - start["params"]["embed"]).max() < 0.05
  # the teacher is reloaded, not checkpointed: a resumed run is the uninterrupted one
  train_and_evaluate(_config(data_dir, teacher_workdir, 2), str(split))
  train_and_evaluate(_config(data_dir, teacher_workdir, 3), str(split))
  a, b = rows[1:], read_metrics(str(split))[1:]
  assert [r["step"] for r in b] == [1, 2, 3]
  for key in ("loss", "kd_kl", "data/epoch"):
    np.testing.assert_allclose([r[key] for r in b], [r[key] for r in a], rtol=1e-6, err_msg=key)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7),
               loading.restore_run_weights(str(split))[1], after)


def test_stage_bad_input(data_dir, teacher_workdir, tmp_path):
  mesh = sharding.make_mesh({"data": -1, "fsdp": 1, "expert": 1, "tensor": 1})
  cfg = presets.get("qwen2_tiny")
  write_bpe_tokenizer(tmp_path)
  c = _config(data_dir, teacher_workdir, 1)
  c.model, c.init_from, c.tokenizer = "qwen2_tiny", "", str(tmp_path)
  with pytest.raises(ValueError, match=r"differ: the student's tokenizer has \d+ ids, the "
                                       r"teacher's 1024.*--config\.tokenizer=r1jax_tiny"):
    train_and_evaluate(c, str(tmp_path / "run"))
  c.distill.kd_weight = 0.0  # SFT on text traces: any tokenizer, and no teacher is loaded
  stage = train.make_stage(c, cfg, load_tokenizer(c.tokenizer), mesh)
  assert isinstance(stage, distill.DistillStage) and stage.teacher is None
  c = _config(data_dir, str(tmp_path / "missing"), 1)
  with pytest.raises(FileNotFoundError, match=r"teacher=.*missing.*configs/sft_stage2\.py"):
    train.make_stage(c, cfg, TOK, mesh)
  c.distill.teacher = TINY_BASE  # a Hugging Face checkpoint without a tokenizer.json
  with pytest.raises(ValueError, match="set --config.distill.teacher_tokenizer="):
    train.make_stage(c, cfg, TOK, mesh)
  c.distill.teacher_tokenizer = "r1jax_tiny"
  stage = train.make_stage(c, cfg, TOK, mesh)
  _, want = load_hf_checkpoint(TINY_BASE)
  jax.tree.map(np.testing.assert_array_equal, stage.teacher, want)
  batch, _ = stage.next_batch({"step": 0}, None)
  assert batch["teacher_ids"].shape == batch["teacher_logp"].shape == (8, 127, 8)
