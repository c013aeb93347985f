"""All-scenario RL (R1 §2.3.4): prompt mixtures, per-source rewards, reward models via config."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import r1jax
from hf_standins import write_reward_model
from configs import grpo_all
from r1jax import rewards
from r1jax.data import conversations
from r1jax.data.datasets import MixtureIterator, load_prompts
from r1jax.data.templates import prompt_format, r1_chat_prompt
from r1jax.data.tokenizers import load_tokenizer
from r1jax.models import init_params, loading
from r1jax.models.loading import model_config
from r1jax.rewards import reward_model as rm_reward
from r1jax.runtime import sharding
from r1jax.runtime.metrics import read_metrics
from r1jax.stages.grpo import GRPOStage
from r1jax.train import train_and_evaluate

TOK = load_tokenizer("r1jax_tiny")
R1_CHAT = prompt_format("r1_chat")
TINY_BASE = os.path.join(os.path.dirname(r1jax.__file__), "assets", "tiny_base")


@pytest.fixture(scope="module")
def rm_workdir(tmp_path_factory):
  return write_reward_model(tmp_path_factory.mktemp("reward_model"))


def _config(rm_workdir, steps=2):
  """configs/grpo_all.py at test scale: 4 prompts (3 reasoning, 1 general) × G = 2."""
  c = grpo_all.get_config()
  c.init_from = TINY_BASE
  c.rl.reward_models.helpful.path = c.rl.reward_models.harmless.path = rm_workdir
  c.rl.prompts_per_step, c.rl.num_generations, c.rl.max_new_tokens = 4, 2, 8
  c.data.num_eval = 2
  c.data.sources.reasoning.num_train = c.data.sources.general.num_train = 64
  c.train.num_steps = steps
  c.train.eval_every = 2
  return c


def _stage(c):
  cfg = model_config(c)
  return GRPOStage(c, cfg, TOK, sharding.make_mesh(dict(c.mesh))), cfg


# ------------------------------------------------------------------------------- data


def test_mixture_proportions_determinism_and_resume():
  sources = {"a": [{"question": f"a{i}"} for i in range(5)],
             "b": [{"question": f"b{i}"} for i in range(7)]}
  it = MixtureIterator(sources, {"a": 3.0, "b": 1.0}, 4, seed=0)
  batches = [next(it) for _ in range(10)]
  names = [n for batch in batches for n, _ in batch]
  assert names.count("a") == 30 and names.count("b") == 10
  assert all(sum(n == "a" for n, _ in batch) == 3 for batch in batches)  # evenly interleaved
  assert all(r["question"].startswith(n) for batch in batches for n, r in batch)
  # deterministic given the seed; each source is shuffled and repeated
  again = MixtureIterator(sources, {"a": 3.0, "b": 1.0}, 4, seed=0)
  assert [next(again) for _ in range(10)] == batches
  seen_b = [r["question"] for batch in batches for n, r in batch if n == "b"]
  assert sorted(seen_b[:7]) == sorted(r["question"] for r in sources["b"])
  other = MixtureIterator(sources, {"a": 3.0, "b": 1.0}, 4, seed=1)
  assert [next(other) for _ in range(10)] != batches
  # resumes exactly from a JSON round trip of its state
  state = json.loads(json.dumps(it.get_state()))
  ahead = [next(it) for _ in range(3)]
  fresh = MixtureIterator(sources, {"a": 3.0, "b": 1.0}, 4, seed=0)
  fresh.set_state(state)
  assert [next(fresh) for _ in range(3)] == ahead
  for bad in (0.0, -1.0, float("nan"), True):
    with pytest.raises(ValueError, match="use a number > 0"):
      MixtureIterator(sources, {"a": 1.0, "b": bad}, 4, seed=0)
  with pytest.raises(ValueError, match="weights are for"):
    MixtureIterator(sources, {"a": 1.0}, 4, seed=0)
  with pytest.raises(ValueError, match="'b' is empty"):
    MixtureIterator(dict(sources, b=[]), {"a": 1.0, "b": 1.0}, 4, seed=0)


def test_conversation_prompts_are_what_sft_saw_before_the_answer(tmp_path):
  convs = conversations.load_conversations("tiny_general:train")
  records = load_prompts("tiny_general:train")
  assert len(records) == len(convs) == 2000
  assert all("answer" not in r for r in records)
  two_turn = next(i for i, m in enumerate(convs) if len(m) == 4)
  for msgs, r in zip(convs[:8] + convs[two_turn:two_turn + 1],
                     records[:8] + records[two_turn:two_turn + 1]):
    assert r["messages"] == msgs[:-1] and r["question"] == msgs[-2]["content"]
    text = R1_CHAT.record(r)
    assert text == r1_chat_prompt(msgs[:-1], bos="")
    # the tokens SFT trained on up to the last answer, then the answer's "<think>\n"
    ids, mask = conversations.tokenize(msgs, TOK)
    start = max(i for i in range(len(mask)) if not mask[i]) + 1
    assert R1_CHAT.encode(TOK, text) == ids[:start] + TOK.encode("<think>\n")
  assert len(load_prompts("tiny_general:test", limit=5)) == 5
  # a conversation file, with the chat: prefix; the instruction is for questions only
  path = tmp_path / "chats.jsonl"
  conversations.write_jsonl(str(path), convs[:3])
  assert load_prompts(f"chat:{path}") == records[:3]
  assert R1_CHAT.record(records[0], "Be brief.") == R1_CHAT.record(records[0])
  with pytest.raises(ValueError, match="set the template to 'r1_chat' or 'chat'"):
    prompt_format("r1_zero").record(records[0])
  path.write_text(json.dumps({"messages": [{"role": "assistant", "content": "hi"}]}) + "\n")
  with pytest.raises(ValueError, match="no user turn"):
    load_prompts(f"chat:{path}")
  assert load_prompts(f"chat:{path}", on_error="skip") == []


# ---------------------------------------------------------------------------- rewards


def test_reward_models_through_config_score_summary_or_everything(rm_workdir, monkeypatch):
  loads = []
  restore = rm_reward.restore_reward_weights
  monkeypatch.setattr(rm_reward, "restore_reward_weights", lambda *a, **k: loads.append(a) or restore(*a, **k))
  fns = rewards.load_reward_models({"helpful": {"path": rm_workdir, "view": "summary"},
                                    "harmless": {"path": rm_workdir, "view": "full"}})
  assert len(loads) == 1  # one run serving two views is read once
  monkeypatch.undo()
  prompts = [r1_chat_prompt([{"role": "user", "content": q}], bos="")
             for q in ("Hello", "What is 12 + 30?", "Who are you?")]
  completions = ["I should greet.\n</think>\n\nHello! Ask me to add two numbers.",
                 "2 + 0 = 2 , 1 + 3 = 4 , so 42 .\n</think>\n\n<answer> 42 </answer>",
                 "no think block at all"]
  sigmoid = lambda r: 1 / (1 + np.exp(-np.asarray(r)))
  direct_summary = rm_reward.load_reward_model(rm_workdir, score_only_summary=True)(prompts, completions)
  direct_full = rm_reward.load_reward_model(rm_workdir, score_only_summary=False)(prompts, completions)
  helpful, harmless = fns["helpful"](prompts, completions), fns["harmless"](prompts, completions)
  np.testing.assert_allclose(helpful, sigmoid(direct_summary), rtol=1e-6)
  np.testing.assert_allclose(harmless, sigmoid(direct_full), rtol=1e-6)
  assert all(0 < v < 1 for v in helpful + harmless)
  assert np.abs(np.subtract(helpful, harmless)).min() > 1e-4  # the views read different text
  # the helpful view reads the text after </think> only: the reasoning does not matter
  other_reasoning = ["Something else entirely.\n</think>\n\nHello! Ask me to add two numbers."]
  np.testing.assert_allclose(fns["helpful"](prompts[:1], other_reasoning), helpful[:1], rtol=1e-6)
  assert abs(fns["harmless"](prompts[:1], other_reasoning)[0] - harmless[0]) > 1e-4
  # usable by name in a weighted sum, next to rule rewards
  total, parts = rewards.score({"helpful": 2.0, "format": 1.0}, prompts, completions,
                               reward_fns=fns)
  assert parts["helpful"] == helpful
  np.testing.assert_allclose(total, 2 * np.asarray(helpful) + np.asarray(parts["format"]))


def test_each_source_is_scored_with_its_own_rewards(rm_workdir, monkeypatch):
  monkeypatch.setitem(rewards.REWARDS, "probe", lambda prompts, completions, **_:
                      [1.0] * len(completions))
  c = _config(rm_workdir)
  c.rl.beta = 0.0
  c.data.sources.reasoning.rewards = {"probe": 2.0, "accuracy": 0.0}
  c.data.sources.general.rewards = {"probe": -1.0, "helpful": 0.0}
  stage, cfg = _stage(c)
  weights = init_params(cfg, jax.random.key(0))
  state = dict(weights, step=jnp.zeros((), jnp.int32))
  batch, metrics = stage.next_batch(state, None)
  assert metrics["reward/reasoning/mean"] == 2.0 and metrics["reward/general/mean"] == -1.0
  assert metrics["reward/mean"] == (3 * 2.0 - 1.0) / 4  # 3 reasoning prompts, 1 general
  assert metrics["reward/probe"] == 1.0  # unweighted, over every completion
  assert "reward/reasoning/accuracy" in metrics and "reward/general/accuracy" not in metrics
  assert "reward/general/helpful" in metrics and "reward/reasoning/helpful" not in metrics
  assert metrics["reward/errors/probe"] == 0.0
  # groups never mix sources: every group's rewards are equal, so no advantage
  np.testing.assert_array_equal(np.asarray(batch["advantages"]), 0.0)
  assert stage.samples()[0].startswith("[general] ")


def test_bad_input(rm_workdir, tmp_path):
  def stage_with(**changes):
    c = _config(rm_workdir)
    for key, value in changes.items():
      node, *path, leaf = key.split(".")
      parent = c[node]
      for p in path:
        parent = parent[p]
      parent[leaf] = value
    return _stage(c)

  with pytest.raises(ValueError, match=r"sources.general.rewards: unknown reward 'helpfull': "
                                       "did you mean 'helpful'"):
    stage_with(**{"data.sources.general.rewards": {"helpfull": 1.0}})
  for weight in (0.0, -1.0):
    with pytest.raises(ValueError, match=rf"sources.general.weight={weight}: use a number > 0"):
      stage_with(**{"data.sources.general.weight": weight})
  with pytest.raises(ValueError, match="sources.general.rewards: no rewards given"):
    stage_with(**{"data.sources.general.rewards": {}})
  with pytest.raises(ValueError, match=r"sources.general lacks \['rewards'\]"):
    c = _config(rm_workdir)
    del c.data.sources.general.rewards
    _stage(c)
  with pytest.raises(ValueError, match=r"unknown key\(s\) \['reward'\]"):
    stage_with(**{"data.sources.general.reward": {"helpful": 1.0}})
  with pytest.raises(ValueError, match=r"'accuracy' needs the dataset field\(s\) \['answer'\]"):
    stage_with(**{"data.sources.general.rewards": {"accuracy": 1.0}})
  with pytest.raises(ValueError, match="sources.general: conversation prompts need a chat "
                                       "format; set the template to 'r1_chat' or 'chat', not "
                                       "'r1_zero'"):
    stage_with(**{"data.sources.general.template": "r1_zero"})
  with pytest.raises(ValueError, match="sources.reasoning: unknown config.data.template='chatml'"):
    stage_with(**{"data.sources.reasoning.template": "chatml"})
  with pytest.raises(ValueError, match="sources.reasoning: config.data.template='chat' renders "
                                       "prompts with the checkpoint's own chat template"):
    stage_with(**{"data.sources.reasoning.template": "chat"})
  with pytest.raises(ValueError, match="sources replaces rl.rewards"):
    stage_with(**{"rl.rewards": {"accuracy": 1.0}})
  c = _config(rm_workdir)
  c.init_from = str(tmp_path / "sft_stage2")
  with pytest.raises(FileNotFoundError, match="init_from=.*sft_stage2' does not exist; make it "
                                              "with `python -m r1jax.train --config=configs/"
                                              "sft_stage2.py --workdir="):
    _stage(c)
  # reward models: a missing path, a run that is not a reward model, a bad view, a clash
  with pytest.raises(FileNotFoundError, match="helpful.path=.*does not exist; train one with "
                                              "`python -m r1jax.train --config=configs/reward"):
    stage_with(**{"rl.reward_models.helpful.path": str(tmp_path / "missing")})
  not_rm = write_reward_model(tmp_path / "pretrain_run", stage="pretrain")
  with pytest.raises(ValueError, match="harmless.path=.*is a 'pretrain' run, not a reward model"):
    stage_with(**{"rl.reward_models.harmless.path": not_rm})
  with pytest.raises(ValueError, match="helpful.view='short'"):
    stage_with(**{"rl.reward_models.helpful.view": "short"})
  with pytest.raises(ValueError, match="'format' is the name of a rule reward"):
    stage_with(**{"rl.reward_models.format": {"path": rm_workdir, "view": "full"}})


# -------------------------------------------------------------------------- a whole run


def _rows(workdir):
  return [{k: v for k, v in r.items() if not k.startswith("time/")}
          for r in read_metrics(str(workdir))]


def test_a_mixture_run_resumes_with_identical_metrics(rm_workdir, tmp_path):
  straight, split = tmp_path / "straight", tmp_path / "split"
  train_and_evaluate(_config(rm_workdir, steps=2), str(straight))
  train_and_evaluate(_config(rm_workdir, steps=1), str(split))
  train_and_evaluate(_config(rm_workdir, steps=2), str(split))  # resumes at step 1
  a, b = _rows(straight), _rows(split)
  assert [r["step"] for r in a] == [r["step"] for r in b] == [0, 1, 2]
  for key in ("eval/reasoning/accuracy", "eval/general/helpful", "eval/general/harmless",
              "eval/accuracy", "eval/helpful"):
    assert key in a[0] and key in a[2], key
  for key in ("reward/mean", "reward/reasoning/mean", "reward/general/mean",
              "reward/reasoning/language", "reward/general/helpful", "reward/helpful",
              "reward/accuracy", "kl", "loss"):
    assert key in a[1], key
  # the reward models ran (under the train loop's mesh) on every completion
  assert a[1]["reward/errors/helpful"] == a[1]["reward/errors/harmless"] == 0.0
  assert a[0]["eval/errors/helpful"] == 0.0 and 0 < a[1]["reward/general/helpful"] < 1
  # the split run's step 1 ended a run, so it was evaluated too; the rest is bit for bit
  assert {k: v for k, v in b[1].items() if not k.startswith("eval/")} == a[1]
  assert b[0] == a[0] and b[2] == a[2]
  jax.tree.map(np.testing.assert_array_equal, loading.restore_run_weights(str(straight))[1],
               loading.restore_run_weights(str(split))[1])
