"""Shapes are part of performance: each program compiles a bounded number of times
whatever the data. Prompt lengths vary from batch to batch on real data (GSM8K questions
are 54 to 148 tokens before the template); the sampler pads them to a few buckets, so a
GRPO run compiles prefill, decode, the reference log-probs and the train step once per
bucket, and a step whose bucket was seen before compiles nothing. SFT packs conversations
of any length into fixed rows, and evaluation pads every batch to one shape per bucket.
"""

import json

import pytest

from configs import eval_math, grpo_zero, sft_cold_start
from r1jax.recipe import evaluate as ev
from r1jax.runtime.compilation import CompileLog
from r1jax.sampling import prompt_bucket
from r1jax.train import train_and_evaluate

PROGRAMS = ("jit(_prefill)", "jit(_decode_start)", "jit(_decode_steps)", "jit(logps)",
            "jit(step)")


def _rows(workdir):
  with open(workdir / "metrics.jsonl") as f:
    return [json.loads(line) for line in f]


@pytest.mark.parametrize("buckets, expected", [
    ((1, 16, 17, 24, 25, 33, 48, 49, 97, 129, 193, 257),
     (16, 16, 24, 24, 32, 48, 48, 64, 128, 192, 256, 384)),
])
def test_prompt_buckets(buckets, expected):
  assert tuple(prompt_bucket(n) for n in buckets) == expected
  assert prompt_bucket(300, limit=280) == 300  # never shorter than the prompt
  assert prompt_bucket(100, limit=120) == 120  # the context caps the bucket
  # two buckets per octave: 16, 24, 32, ..., 3072, 4096
  assert len({prompt_bucket(n) for n in range(1, 4097)}) == 17


def test_grpo_compiles_once_per_prompt_bucket(tmp_path):
  c = grpo_zero.get_config()
  c.data.train, c.data.num_train = "gsm8k:train", 64
  c.rl.prompts_per_step, c.rl.num_generations, c.rl.max_new_tokens = 4, 2, 8  # 8 devices
  c.rl.rewards = {"accuracy": 1.0}
  c.train.num_steps, c.train.eval_every, c.train.log_every = 8, 0, 1
  with CompileLog() as log:
    train_and_evaluate(c, str(tmp_path / "run"))
  rows = [r for r in _rows(tmp_path / "run") if "rollout/prompt_len" in r]
  longest = [r["rollout/longest_prompt"] for r in rows]
  buckets = [r["rollout/prompt_len"] for r in rows]
  assert len(rows) == 8 and len(set(longest)) >= 5, longest  # the data does vary
  assert len(set(buckets)) <= 2, buckets
  for program in PROGRAMS:
    assert 1 <= log.counts[program] <= len(set(buckets)), (program, dict(log.counts))
  seen, again = set(), []
  for r in rows:
    if r["rollout/prompt_len"] in seen:
      again.append(r["time/compiles"])
    seen.add(r["rollout/prompt_len"])
  assert again and not any(again), (buckets, [r["time/compiles"] for r in rows])
  for key in ("time/rollout_s", "time/reward_s", "time/logprob_s", "time/update_s",
              "time/compile_s", "time/tokens_per_s", "rollout/padding_fraction"):
    assert all(key in r for r in rows), key
  assert sum(r["time/compile_s"] for r in rows) > 0


def test_sft_compiles_the_step_once(tmp_path):
  c = sft_cold_start.get_config()
  c.data.source = "tiny_cold_start:train"  # conversations of varying lengths, packed
  c.data.batch_size, c.data.eval_fraction = 8, 0.1
  c.train.num_steps, c.train.eval_every, c.train.log_every = 6, 3, 1
  with CompileLog() as log:
    train_and_evaluate(c, str(tmp_path / "run"))
  assert log.counts["jit(step)"] == 1, dict(log.counts)
  assert log.counts["jit(loss_fn)"] == 1, dict(log.counts)  # the held-out loss
  compiles = [r["time/compiles"] for r in _rows(tmp_path / "run") if "time/compiles" in r]
  assert len(compiles) == 6 and compiles[0] == 1 and not any(compiles[1:]), compiles


def test_evaluation_compiles_once_per_prompt_bucket(tmp_path):
  c = eval_math.get_config()
  c.data.datasets = ("gsm8k:test@12",)
  c.data.template = "plain"
  c.sampling.num_samples, c.sampling.max_new_tokens, c.sampling.prompts_per_batch = 2, 4, 2
  c.write_samples = False
  with CompileLog() as log:
    ev.evaluate(c, str(tmp_path / "eval"))
  records = ev.load_prompts("gsm8k:test", limit=12, seed=c.seed)
  from r1jax.data.tokenizers import load_tokenizer
  tok = load_tokenizer(c.tokenizer)
  longest = [max(len(tok.encode(r["question"], add_bos=True)) for r in records[i:i + 2])
             for i in range(0, 12, 2)]
  buckets = {prompt_bucket(n) for n in longest}
  assert len(set(longest)) >= 5 and len(buckets) <= 3, longest  # 6 lengths, 3 shapes
  for program in PROGRAMS[:3]:
    assert 1 <= log.counts[program] <= len(buckets), (program, dict(log.counts))
