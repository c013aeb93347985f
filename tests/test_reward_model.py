"""Reward model: the Bradley-Terry loss, the last-token head, training, the GRPO reward fn."""

import json
import logging
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import reward_model as rm_config
from r1jax.data import preferences
from r1jax.data.templates import ASSISTANT
from r1jax.data.tokenizers import load_tokenizer
from r1jax.losses import bradley_terry
from r1jax.models import init_params, presets
from r1jax.models import reward_model as rm_model
from r1jax.rewards import reward_model as rm_reward
from r1jax.runtime.metrics import read_metrics
from r1jax.train import train_and_evaluate

TOK = load_tokenizer("r1jax_tiny")


def _np_bt(rc, rr, m):
  """−Σ m log σ(rc − rr) / Σ m, transcribed in NumPy (float64)."""
  d = rc - rr
  return float(-(m * -np.log1p(np.exp(-d))).sum() / m.sum())


def test_bradley_terry_loss_matches_numpy_and_finite_differences():
  rng = np.random.default_rng(0)
  rc, rr = rng.normal(size=6) * 2, rng.normal(size=6) * 2
  m = np.array([1, 1, 1, 0, 1, 1], np.float64)
  loss, metrics = bradley_terry.bradley_terry_loss(jnp.asarray(rc, jnp.float32),
                                        jnp.asarray(rr, jnp.float32), jnp.asarray(m))
  np.testing.assert_allclose(float(loss), _np_bt(rc, rr, m), rtol=1e-6)
  keep = m > 0
  np.testing.assert_allclose(float(metrics["pairwise_accuracy"]), np.mean(rc[keep] > rr[keep]))
  np.testing.assert_allclose(float(metrics["reward_margin"]), np.mean((rc - rr)[keep]),
                             rtol=1e-6)
  # gradient w.r.t. both rewards against central differences of the NumPy loss
  g_c, g_r = jax.grad(lambda a, b: bradley_terry.bradley_terry_loss(a, b, jnp.asarray(m))[0],
                      argnums=(0, 1))(jnp.asarray(rc, jnp.float32), jnp.asarray(rr, jnp.float32))
  eps = 1e-5
  for i in range(6):
    e = np.eye(6)[i] * eps
    fd = (_np_bt(rc + e, rr, m) - _np_bt(rc - e, rr, m)) / (2 * eps)
    np.testing.assert_allclose(float(g_c[i]), fd, atol=1e-6)
    np.testing.assert_allclose(float(g_r[i]), -fd, atol=1e-6)
  assert float(g_c[3]) == 0.0  # a filler pair carries no gradient
  # ties count one half; an unweighted batch is the plain mean
  _, tie = bradley_terry.bradley_terry_loss(jnp.zeros(2), jnp.array([0.0, 1.0]))
  assert float(tie["pairwise_accuracy"]) == 0.25


@pytest.fixture(scope="module")
def random_rm():
  cfg = presets.get("deepseek_v3_tiny")
  weights = init_params(cfg, jax.random.key(0))
  head = rm_model.init_head(cfg)
  weights["params"][rm_model.HEAD] = dict(head, w=jax.random.normal(jax.random.key(1), head["w"].shape))
  score = jax.jit(lambda p, t, pos, seg: rm_model.rewards(cfg, p, t, pos, seg)[0])
  return cfg, weights, score


def test_head_reads_exactly_the_last_non_pad_token(random_rm):
  cfg, weights, score = random_rm
  ids = preferences.encode(TOK, "<｜User｜>What is 2 + 3?<｜Assistant｜>", "<answer> 5 </answer>")
  n = len(ids)
  rows = []
  for T, left in ((n, 0), (n + 7, 0), (n + 7, 7), (n + 20, 3)):  # right, left, both sides
    tokens = np.full(T, TOK.pad_id)
    seg, pos = np.zeros(T, np.int32), np.zeros(T, np.int32)
    tokens[left:left + n], seg[left:left + n], pos[left:left + n] = ids, 1, np.arange(n)
    tokens[left + n:] = 7  # whatever the padding holds is never read
    rows.append((tokens, pos, seg))
  values = [float(score(weights, *(np.asarray(a)[None] for a in row))[0]) for row in rows]
  np.testing.assert_allclose(values, values[0], atol=1e-5)
  # in a batch with a longer sequence, and equal to w · final_norm(h)[last] + b
  other = preferences.encode(TOK, "<｜User｜>Hi<｜Assistant｜>", "Hello! Ask me to add two numbers.")
  batch = preferences.sequence_batch([ids, other], max(n, len(other)) + 5, TOK.pad_id)
  r = score(weights, batch["tokens"], batch["positions"], batch["segment_ids"])
  np.testing.assert_allclose(float(r[0]), values[0], atol=1e-5)
  decoder, head = rm_model.split_params(weights)
  h, _ = rm_model.hidden_states(cfg, decoder, batch["tokens"], batch["positions"],
                          batch["segment_ids"])
  np.testing.assert_allclose(float(r[0]), float(h[0, n - 1] @ head["w"] + head["b"]), atol=1e-5)
  # the last token matters
  changed = np.array(ids)
  changed[-1] = 5
  r2 = score(weights, changed[None], np.arange(n)[None], np.ones((1, n), np.int32))
  assert abs(float(r2[0]) - values[0]) > 1e-4


def _tiny_config(steps):
  c = rm_config.get_config()
  c.data.batch_size = 8
  c.data.num_eval = 48
  c.train.num_steps = steps
  c.train.log_every = 5
  c.train.eval_every = steps
  c.train.save_every = steps
  return c


@pytest.fixture(scope="module")
def trained_workdir(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("reward_model")
  train_and_evaluate(_tiny_config(20), str(workdir))
  return str(workdir)


def test_training_improves_held_out_pairwise_accuracy(trained_workdir):
  rows = read_metrics(trained_workdir)
  first, last = rows[0], rows[-1]
  assert first["eval/pairwise_accuracy"] == 0.5  # the zero head: every pair a tie
  assert last["step"] == 20 and last["skipped_steps"] == 0
  for key in ("loss", "bt_loss", "pairwise_accuracy", "reward_margin", "eval/reward_margin"):
    assert key in last, key
  assert last["eval/pairwise_accuracy"] >= 0.75, (first, last)
  assert last["eval/bt_loss"] < first["eval/bt_loss"]


def test_reward_fn_scores_completions(trained_workdir):
  fn = rm_reward.load_reward_model(trained_workdir, batch_size=4)
  pairs = preferences.tiny_preferences("test", 6)
  prompts = [p["prompt"] for p in pairs for _ in range(2)]
  completions = [p[k] for p in pairs for k in ("chosen", "rejected")]
  values = fn(prompts, completions, answer=["x"] * 12)  # refs of other rewards are ignored
  assert len(values) == 12 and all(isinstance(v, float) and math.isfinite(v) for v in values)
  assert sum(c > r for c, r in zip(values[::2], values[1::2])) >= 4
  # one at a time (other shapes, no batch neighbours) gives the same values
  np.testing.assert_allclose(fn(prompts[:1], completions[:1]), values[:1], atol=1e-4)
  # only the summary: the text after </think>, "" when there is none
  summary_fn = rm_reward.load_reward_model(trained_workdir, score_only_summary=True, batch_size=4)
  s = summary_fn(prompts[:2], ["junk reasoning\n</think>\n\n<answer> 5 </answer>", "no tags"])
  np.testing.assert_allclose(s, fn(prompts[:2], ["\n\n<answer> 5 </answer>", ""]), atol=1e-4)
  assert fn([], []) == []
  with pytest.raises(ValueError, match="prompts for"):
    fn(prompts[:2], completions[:1])


def test_a_run_resumes_with_its_head(trained_workdir, tmp_path, caplog):
  """The restart path: the state (head and its optimizer moments included) is restored
  from the checkpoint; nothing is left to run, so nothing is compiled or saved."""
  import shutil
  workdir = str(tmp_path / "run")
  shutil.copytree(trained_workdir, workdir)
  with caplog.at_level(logging.WARNING):
    assert train_and_evaluate(_tiny_config(20), workdir) == {}
  assert "resumed from step 20" in caplog.text
  assert read_metrics(workdir)[-1]["step"] == 20


def _write(path, rows):
  path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
  return str(path)


def test_jsonl_rows_raw_and_conversational(tmp_path):
  rows = [{"prompt": "Q: 1+1? A:", "chosen": " 2", "rejected": " 3"},
          {"prompt": [{"role": "user", "content": "Hi"}],
           "chosen": [{"role": "assistant", "content": "Hello!"}], "rejected": "Go away."},
          {"system": "Be kind.", "prompt": "Hi", "chosen": "Hello!", "rejected": ["bad"]},
          {"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}],
           "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "No"}]}]
  path = _write(tmp_path / "p.jsonl", rows[:2] + rows[3:])
  pairs = preferences.load_preferences(path)
  assert pairs[0] == rows[0]
  assert pairs[1]["prompt"].endswith("Hi" + ASSISTANT) and pairs[1]["rejected"] == "Go away."
  assert pairs[2]["prompt"] == pairs[1]["prompt"] and pairs[2]["chosen"] == "Hey"
  with pytest.raises(ValueError, match=r"bad.jsonl:2: .*must be a dict.*on_error='skip'"):
    preferences.load_preferences(_write(tmp_path / "bad.jsonl", rows[:1] + rows[2:3]))
  assert len(preferences.load_preferences(str(tmp_path / "bad.jsonl"), on_error="skip")) == 1
  other = dict(rows[3], rejected=[{"role": "user", "content": "Yo"},
                                  {"role": "assistant", "content": "No"}])
  with pytest.raises(ValueError, match="differ before their last assistant turn"):
    preferences.load_preferences(_write(tmp_path / "two.jsonl", [other]))


def test_bad_preference_data(tmp_path, caplog):
  good = {"prompt": "Q", "chosen": "yes", "rejected": "no"}
  same = {"prompt": "Q", "chosen": "yes", "rejected": "yes"}
  with caplog.at_level(logging.WARNING):
    pairs = preferences.load_preferences(_write(tmp_path / "a.jsonl", [good, same, "", same]))
  assert pairs == [good]
  assert "skipped 2 of 3 preference pairs" in caplog.text
  with pytest.raises(ValueError, match="all 2 preference pairs have identical"):
    preferences.load_preferences(_write(tmp_path / "b.jsonl", [same, same]))
  # identical once reduced to the summary
  with pytest.raises(ValueError, match="identical"):
    preferences.load_preferences(_write(tmp_path / "c.jsonl", [{"prompt": "Q", "chosen": "a</think>x",
                                                      "rejected": "b</think>x"}]),
                        only_summary=True)
  missing = _write(tmp_path / "d.jsonl", [good, "", {"prompt": "Q", "chosen": "yes"}])
  with pytest.raises(ValueError, match=r"d\.jsonl:3: missing field\(s\) \['rejected'\]"):
    preferences.load_preferences(missing)
  with pytest.raises(ValueError, match="must be non-empty"):
    preferences.load_preferences(_write(tmp_path / "e.jsonl", [dict(good, chosen="")]))
  with pytest.raises(ValueError, match="unknown preference source"):
    preferences.load_preferences("prefs.json")
  ids = preferences.encode(TOK, "Q", "yes")
  with pytest.raises(ValueError, match="raise config.data.seq_len"):
    preferences.encode_pairs([good], TOK, len(ids) - 1)
  (c, r), = preferences.encode_pairs([good], TOK, len(ids) - 1, "truncate")
  assert c[0] == TOK.bos_id and c[-1] == TOK.eos_id and len(c) == len(ids) - 1


def test_encode_matches_generation_time_tokens():
  """BOS/EOS strings become ids, and the GRPO prompt (no BOS string) encodes the same."""
  prompt = "<｜User｜>What is 2 + 3?<｜Assistant｜><think>\n"
  ids = preferences.encode(TOK, prompt, "2 + 3 = 5\n</think> 5</s>")
  assert ids == (TOK.encode(prompt, add_bos=True) + TOK.encode("2 + 3 = 5\n</think> 5")
                 + [TOK.eos_id])
  assert preferences.encode(TOK, "<｜begin▁of▁sentence｜>" + prompt, "x") == preferences.encode(TOK, prompt, "x")
  assert preferences.summary("a</think>b</think> c") == " c" and preferences.summary("no think") == ""
