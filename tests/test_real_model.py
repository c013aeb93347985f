"""SmolLM2-135M-Instruct, a real pretrained model, against transformers' own reading of it.

The GGUF file (tests/real_model.py) is read twice: by transformers (`gguf_file=`, its own
dequantisation, q/k un-permutation and tokenizer) as the reference, and by r1jax
(`r1jax.models.gguf`, converted once into a Hugging Face directory that r1jax then loads
as any checkpoint). Logits, token ids and greedy generations must agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from r1jax.data.datasets import DATA_DIR
from r1jax.data.templates import prompt_format
from r1jax.data.tokenizers import load_tokenizer
from r1jax.models import forward
from r1jax.models.hf import load_hf_checkpoint
from r1jax.sampling import SamplingParams, generate
from tests import real_model

pytestmark = pytest.mark.real_model

CHATS = [  # 8 conversations of different lengths, with and without a system message
    [{"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "What is 17 + 25?"}],
    [{"role": "system", "content": "You are terse."},
     {"role": "user", "content": "Name a prime number larger than 10."}],
    [{"role": "user", "content": "Write one sentence about the sea."}],
    [{"role": "user", "content": "Natalia sold clips to 48 of her friends in April, and then "
                                 "she sold half as many clips in May. How many clips did "
                                 "Natalia sell altogether in April and May?"}],
    [{"role": "user", "content": "What is the capital of France?"},
     {"role": "assistant", "content": "Paris."},
     {"role": "user", "content": "And of Italy?"}],
    [{"role": "system", "content": "Answer with a number only."},
     {"role": "user", "content": "How many legs does a spider have?"}],
    [{"role": "user", "content": "List three colours."}],
]


@pytest.fixture(scope="module")
def hf_dir() -> Path:
  return real_model.smollm2_hf()


@pytest.fixture(scope="module")
def reference():
  """transformers' model and tokenizer, read from the GGUF file itself."""
  import torch
  from transformers import AutoModelForCausalLM, AutoTokenizer

  gguf = real_model.smollm2_gguf()
  kw = dict(gguf_file=gguf.name)
  model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), dtype=torch.float32, **kw)
  return model.eval(), AutoTokenizer.from_pretrained(str(gguf.parent), **kw)


@pytest.fixture(scope="module")
def r1jax_model(hf_dir):
  cfg, params = load_hf_checkpoint(str(hf_dir))
  return cfg, params, load_tokenizer(str(hf_dir))


def _corpus() -> list[str]:
  texts = ["Hello world", "What is 123 + 4567?", " 12,345.67 dollars and  2/5 of it",
           "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", "naïve café — 日本語 😀",
           "x  y\n\n\tz   \n", "It's 3:45pm; they've won 10-9!", "\\frac{1}{2} + \\sqrt{3}",
           "<think> 7 + 8 = 15 </think> <answer> 15 </answer>", "tabs\tand\r\nreturns"]
  for name, field in (("gsm8k/test.jsonl", ("question", "answer")),
                      ("math500/test.jsonl", ("problem", "solution"))):
    with open(Path(DATA_DIR) / name) as f:
      rows = [json.loads(line) for line in f][:60]
    texts += [r[k] for r in rows for k in field]
  return texts


def test_tokenizer_matches_transformers(r1jax_model, reference):
  """Token ids equal transformers' on a varied corpus. transformers' GGUF reader splits
  text with GPT-2's pattern alone, while llama.cpp's "smollm" pre-tokenizer (and the
  original SmolLM2 tokenizer.json) first isolates every digit; the two differ only where
  a run of spaces meets a digit, and there r1jax equals transformers' tokenizer given
  SmolLM2's own pre-tokenizer."""
  from tokenizers import pre_tokenizers

  _, _, tok = r1jax_model
  _, ref = reference
  corpus = _corpus()
  theirs = [ref.encode(t, add_special_tokens=False) for t in corpus]
  ours = [tok.encode(t) for t in corpus]
  differ = [t for t, a, b in zip(corpus, ours, theirs) if a != b]
  assert len(corpus) > 200 and all("  " in t or " \n" in t for t in differ), differ[:3]
  original = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                      pre_tokenizers.ByteLevel(add_prefix_space=False)])
  ref.backend_tokenizer.pre_tokenizer = original
  assert ours == [ref.encode(t, add_special_tokens=False) for t in corpus]
  assert [tok.decode(ids) for ids in ours[:10]] == corpus[:10]
  assert (tok.bos_id, tok.eos_id, tok.pad_id) == (ref.bos_token_id, ref.eos_token_id,
                                                    ref.pad_token_id)
  assert tok.chat_template == ref.chat_template


def test_logits_match_transformers(r1jax_model, reference):
  import torch

  cfg, params, tok = r1jax_model
  model, ref_tok = reference
  texts = [ref_tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
           for c in CHATS[:3]]
  for text in texts:
    ids = tok.encode(text)
    with torch.no_grad():
      want = model(torch.tensor([ids])).logits.numpy()
    got = np.asarray(jax.jit(lambda p, t: forward(cfg, p, t))(params, np.asarray([ids])))
    assert np.abs(got - want).max() < 1e-4 * max(1.0, np.abs(want).max() / 10)


def test_greedy_generation_matches_transformers(r1jax_model, reference):
  """8 chat prompts of different lengths in one batch: r1jax pads them on the right and
  transformers on the left, and neither changes a single token."""
  import torch

  cfg, params, tok = r1jax_model
  model, ref_tok = reference
  M = 24
  fmt = prompt_format("chat", tok)
  texts = [fmt.conversation(c) for c in CHATS]  # SmolLM2's own template, rendered by r1jax
  assert texts == [ref_tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
                   for c in CHATS]
  prompts = [fmt.encode(tok, t) for t in texts]
  assert len({len(p) for p in prompts}) == len(prompts)
  res = generate(cfg, params, prompts, SamplingParams(M, temperature=0,
                                                      stop_token_ids=fmt.stop_ids(tok)),
                 pad_id=tok.pad_id)
  ours = [r[m.astype(bool)].tolist() for r, m in zip(res.tokens, res.mask)]
  ref_tok.padding_side = "left"
  batch = ref_tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
  with torch.no_grad():
    out = model.generate(**batch, max_new_tokens=M, do_sample=False,
                         eos_token_id=tok.eos_id, pad_token_id=tok.pad_id)
  theirs = []
  for row in out[:, batch["input_ids"].shape[1]:].tolist():
    theirs.append(row[:row.index(tok.eos_id) + 1] if tok.eos_id in row else row)
  assert ours == theirs
  assert any(r == "stop" for r in res.finish_reason) and any(len(t) == M for t in ours)


def test_grpo_runs_from_the_real_checkpoint(hf_dir, tmp_path):
  """Two GRPO steps from SmolLM2 with its own chat template, as a user runs them (the CLI,
  one CPU device: a third of the time the tests' 8 host devices take): the rollouts stop
  at its end-of-turn token, the loss and the update are finite, evaluation runs, and in
  float32 the sampler's log-probs (at T = 0.8) agree with the trainer's to rounding."""
  import os
  import subprocess
  import sys

  from r1jax.runtime.metrics import read_metrics

  overrides = dict(init_from=hf_dir, **{
      "model_overrides.dtype": "float32", "model_overrides.remat": "none",
      "data.train": "arithmetic:train", "data.eval": "arithmetic:test", "data.num_eval": 8,
      "data.instruction": "Answer with the number only, in \\boxed{}.",
      "rl.prompts_per_step": 4, "rl.num_generations": 2, "rl.max_new_tokens": 16,
      "rl.temperature": 0.8, "train.num_steps": 2, "train.eval_every": 2})
  cmd = [sys.executable, "-m", "r1jax.train", "--config=configs/grpo_gsm8k.py",
         f"--workdir={tmp_path / 'run'}"] + [f"--config.{k}={v}" for k, v in overrides.items()]
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  done = subprocess.run(cmd, env=env, cwd=Path(__file__).parents[1], capture_output=True,
                        text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  assert "1 local of 1 devices" in done.stderr + done.stdout
  rows = read_metrics(str(tmp_path / "run"))
  last = rows[-1]
  assert last["step"] == 2 and last["skipped_steps"] == 0 and np.isfinite(last["loss"])
  assert last["grad_norm"] > 0
  assert "eval/accuracy" in last and 0 < last["completion/mean_length"] <= 16
  assert last["mismatch/logp_diff_mean"] <= 1e-5, last["mismatch/logp_diff_mean"]
  assert last["mismatch/token_out_of_clip"] == 0 and last["entropy"] > 0
