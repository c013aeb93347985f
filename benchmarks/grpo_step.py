"""One GRPO workload in r1jax, TRL and Tunix, interleaved; prints one JSON object.

    python benchmarks/grpo_step.py --rounds=3 --steps=6 --prompts=variable,same_length \
        --python_trl=/work/benchvenv/bin/python --python_tunix=/work/benchvenv-tunix/bin/python \
        --out=benchmarks/results/grpo_step_cpu.json

The workload, the same in every framework: a random Qwen2 (default hidden 256, 4 layers,
4 heads / 2 KV heads, intermediate 688, untied head: 5.0M parameters) saved with
`transformers` in an HF directory made here, with a byte-level BPE (default 4,096 ids)
trained with `tokenizers` on the GSM8K train questions (tokenizer.json; its post-processor
prepends the bos, which r1jax adds itself, so every framework feeds the same ids); the first
64 GSM8K train questions in DeepSeek-R1's chat format (`--prompts=variable`: 55-142 tokens)
or the same 64 cut or extended to one length (`same_length`: 82 tokens); per step 8 prompts
× G = 4 completions × 64 new tokens at T = 1.0, EOS suppressed everywhere so each framework
generates exactly 64 tokens per completion (r1jax `rl.ignore_eos`, TRL `min_new_tokens`,
Tunix an eos id outside the vocabulary); β = 0.04, μ = 1, ε = 0.2, the per-sequence GRPO
loss, AdamW at a constant 1e-6 after global-norm clipping at 1, float32 on the CPU. The
reward is `digit_reward`, the fraction of digits in a completion's text: cheap, the same
Python in every framework, and not constant (a length reward would be, with EOS suppressed).
Every framework draws the same prompts in the same order: r1jax's `PromptIterator` order,
handed to the peers as a list (TRL with shuffle_dataset=False).

Each framework runs in its own fresh interpreter for `--steps` steps per round, `--rounds`
rounds, interleaved (r1jax, TRL, Tunix, r1jax, ...), so machine noise spreads over all of
them. Per framework: the median step time over every step but each round's first, the first
step (compiles included) separately, the peak RSS of its process, and the phases it reports
itself (r1jax's time/* metrics, TRL's profiling contexts, Tunix's perf spans), medians over
the same steps. r1jax runs with JAX's persistent compilation cache off, so each round's
first step shows the real compile. Tunix pads every prompt to `max_prompt_length`, set to
the longest prompt of the workload (one shape, no recompiles: its best case); TRL pads each
batch to its longest prompt; r1jax to the prompt bucket of its longest (64, 96, 128, 192).

Peers come from the `bench` extra (`pip install -e ".[bench]"`: trl, google-tunix). Tunix
0.1.7 pins an older `transformers` than r1jax's dev set, so each may live in its own
virtual environment: `--python_trl` and `--python_tunix` name their interpreters (default:
this one). A framework whose package is missing there is reported as {"skipped": why}.
`--dry_run` (tiny model, 2 steps, 1 round, 4 new tokens) checks the plumbing in well under a
minute per framework; the test suite runs it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __package__ != "benchmarks":  # run as a file: python benchmarks/<name>.py
  sys.path.insert(0, str(ROOT))

FRAMEWORKS = ("r1jax", "trl", "tunix")
PACKAGES = {"r1jax": "r1jax", "trl": "trl", "tunix": "tunix"}
BOS, PAD = "<|endoftext|>", "<|pad|>"  # bos = eos, as in Qwen2's base tokenizer
SAME_LENGTH = 82  # tokens, bos included: the `same_length` prompts


def digit_reward(prompts, completions, **unused) -> list[float]:
  """The fraction of a completion's characters that are digits: cheap, identical Python in
  every framework, and varying between completions so advantages are not all zero."""
  del prompts, unused
  return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]


def _peak_rss_mb() -> float:
  """Peak resident memory of this process (and any children it waited for), in MB."""
  kb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
           resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
  return kb / 1024


def _versions(*names: str) -> dict[str, str]:
  from importlib import metadata
  out = {}
  for name in names:
    try:
      out[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      pass
  return out


# ----------------------------------------------------------------- the workload (parent)


def build_model_dir(path: Path, args, weights: bool = True) -> dict:
  """A random Qwen2 and a BPE trained on the GSM8K train questions, as an HF directory
  (only the tokenizer without `weights`: a preset brings its own shape)."""
  import tokenizers as hf_tok

  path.mkdir(parents=True, exist_ok=True)
  questions = [json.loads(line)["question"] for line in open(ROOT / "data/gsm8k/train.jsonl")]
  tok = hf_tok.Tokenizer(hf_tok.models.BPE())
  tok.pre_tokenizer = hf_tok.pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = hf_tok.decoders.ByteLevel()
  trainer = hf_tok.trainers.BpeTrainer(
      vocab_size=args.vocab, special_tokens=[BOS, PAD], show_progress=False,
      initial_alphabet=hf_tok.pre_tokenizers.ByteLevel.alphabet())
  tok.train_from_iterator(questions, trainer)
  # TRL and Tunix take the tokenizer's own encoding (its post-processor); r1jax encodes
  # without it and prepends the bos itself: both give [bos] + ids.
  tok.post_processor = hf_tok.processors.TemplateProcessing(
      single=f"{BOS} $A", special_tokens=[(BOS, tok.token_to_id(BOS))])
  tok.save(str(path / "tokenizer.json"))
  (path / "tokenizer_config.json").write_text(json.dumps(
      {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": BOS, "eos_token": BOS,
       "pad_token": PAD, "model_max_length": args.context}))
  if not weights:
    return {"preset": args.preset, "vocab": tok.get_vocab_size()}
  import torch
  import transformers

  torch.manual_seed(0)
  cfg = transformers.Qwen2Config(
      vocab_size=tok.get_vocab_size(), hidden_size=args.hidden, intermediate_size=args.intermediate,
      num_hidden_layers=args.layers, num_attention_heads=args.heads,
      num_key_value_heads=args.kv_heads, max_position_embeddings=args.context,
      rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=False,
      bos_token_id=tok.token_to_id(BOS), eos_token_id=tok.token_to_id(BOS),
      pad_token_id=tok.token_to_id(PAD))
  model = transformers.Qwen2ForCausalLM(cfg).to(torch.float32)
  model.save_pretrained(str(path))
  return {"params": sum(p.numel() for p in model.parameters()), "vocab": tok.get_vocab_size(),
          "hidden": args.hidden, "layers": args.layers, "heads": args.heads,
          "kv_heads": args.kv_heads, "intermediate": args.intermediate,
          "tie_word_embeddings": False}


def _same_length_question(tok, question: str, following: list[str], length: int) -> str:
  """`question` (continued with the `following` questions when it is too short) cut at the
  point where its chat-format prompt is `length` tokens long, bos included."""
  from r1jax.data.templates import prompt_format

  fmt = prompt_format("r1_chat")

  def n_tokens(q: str) -> int:
    return len(tok.encode(fmt.question(q)).ids)  # the post-processor adds the bos

  text = " ".join([question] + following)
  words = text.split(" ")
  lo, hi = 1, len(words)  # the most words whose prompt fits
  while lo < hi:
    mid = (lo + hi + 1) // 2
    lo, hi = (mid, hi) if n_tokens(" ".join(words[:mid])) <= length else (lo, mid - 1)
  q = " ".join(words[:lo])
  for ch in " " + words[lo] if lo < len(words) else "":  # top up character by character
    if n_tokens(q) >= length:
      break
    q += ch
  return q


def prompt_records(kind: str, n: int, model_dir: Path) -> list[dict]:
  """The first n GSM8K train records; for `same_length`, their questions cut or extended so
  every prompt has SAME_LENGTH tokens."""
  from r1jax.data.datasets import load_prompts
  records = load_prompts("gsm8k:train", limit=n + 8)
  if kind == "variable":
    return records[:n]
  import tokenizers as hf_tok
  tok = hf_tok.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
  out = []
  for i, r in enumerate(records[:n]):
    q = _same_length_question(tok, r["question"], [x["question"] for x in records[i + 1:i + 4]],
                              SAME_LENGTH)
    out.append(dict(r, question=q))
  return out


def step_batches(records: list[dict], args) -> list[list[dict]]:
  """The prompts of each step, in the order r1jax's GRPO stage draws them."""
  from r1jax.data.datasets import PromptIterator
  it = PromptIterator(records, args.prompts_per_step, seed=args.seed)
  return [next(it) for _ in range(args.steps)]


def make_spec(kind: str, model_dir: Path, workdir: Path, args) -> dict:
  """What a worker needs to run the workload: written as JSON, read by `_worker`."""
  from r1jax.data.templates import prompt_format
  from r1jax.data.tokenizers import load_tokenizer

  records = prompt_records(kind, args.num_prompts, model_dir)
  data = workdir / f"prompts_{kind}.jsonl"
  data.write_text("".join(json.dumps(r) + "\n" for r in records))
  tok = load_tokenizer(str(model_dir))
  batches = step_batches(records, args)
  fmt = prompt_format("r1_chat")
  texts = [[fmt.record(r) for r in b] for b in batches]
  lengths = [[len(fmt.encode(tok, t)) for t in b] for b in texts]
  every = [len(fmt.encode(tok, fmt.record(r))) for r in records]
  return {"model_dir": str(model_dir), "data": str(data), "num_prompts": len(records),
          "texts": texts, "prompt_tokens": lengths, "longest_prompt": max(every),
          "steps": args.steps, "prompts_per_step": args.prompts_per_step,
          "num_generations": args.num_generations, "max_new_tokens": args.max_new_tokens,
          "beta": args.beta, "learning_rate": args.learning_rate, "seed": args.seed,
          "dtype": args.dtype, "preset": args.preset, "attention_impl": args.attention_impl,
          "batch_layout": args.batch_layout}


# ----------------------------------------------------------------- workers (fresh interpreters)


def _run_r1jax(spec: dict, workdir: Path) -> dict:
  """`python -m r1jax.train --config=configs/grpo_gsm8k.py --config.init_from=... ...`,
  in process: the same config and train loop, with the digit reward registered."""
  from configs import grpo_gsm8k
  from r1jax import rewards
  from r1jax.runtime.metrics import read_metrics
  from r1jax.train import train_and_evaluate

  rewards.REWARDS["digits"] = digit_reward
  c = grpo_gsm8k.get_config()
  if spec.get("preset"):  # a preset from random weights, with the workload's tokenizer
    c.model, c.init_from, c.tokenizer = spec["preset"], "", spec["model_dir"]
  else:
    c.init_from = spec["model_dir"]
  c.data.template = "r1_chat"  # the workload's prompts: DeepSeek-R1's chat format
  c.model_overrides.dtype = spec["dtype"]
  c.model_overrides.remat = "none"
  c.model_overrides.attention_impl = spec.get("attention_impl", "xla")
  c.compilation_cache = ""  # each round's first step compiles, as the peers' do
  c.seed = spec["seed"]
  c.data.train, c.data.num_train = spec["data"], spec["num_prompts"]
  c.data.num_eval, c.data.instruction = 1, ""
  c.rl.prompts_per_step = spec["prompts_per_step"]
  c.rl.num_generations = spec["num_generations"]
  c.rl.max_new_tokens = spec["max_new_tokens"]
  c.rl.beta, c.rl.num_iterations, c.rl.loss = spec["beta"], 1, "grpo"
  c.rl.ignore_eos = True
  c.rl.batch_layout = spec.get("batch_layout", "auto")
  c.rl.rewards = {"digits": 1.0}
  c.optim.learning_rate, c.optim.warmup_steps = spec["learning_rate"], 0
  c.train.num_steps, c.train.eval_every = spec["steps"], 0
  c.train.log_every, c.train.save_every = 1, spec["steps"]
  t0 = time.perf_counter()
  train_and_evaluate(c, str(workdir / "run"))
  train_s = time.perf_counter() - t0
  rows = [r for r in read_metrics(str(workdir / "run")) if "time/step_s" in r]
  steps = [{"step_s": r["time/step_s"],
            "phases": {k[5:-2]: r[k] for k in ("time/rollout_s", "time/reward_s",
                                               "time/logprob_s", "time/update_s",
                                               "time/compile_s")},
            "compiles": r["time/compiles"], "prompt_len": r["rollout/prompt_len"],
            "longest_prompt": r["rollout/longest_prompt"],
            "completion_tokens": r["completion/mean_length"],
            "train_tokens": r["batch/tokens"]} for r in rows]
  expected = [max(b) for b in spec["prompt_tokens"]]
  return {"steps": steps, "train_s": train_s,
          "same_prompts": [s["longest_prompt"] for s in steps] == expected,
          "versions": _versions("jax", "jaxlib", "flax", "optax")}


def _hf_tokenizer(model_dir: str):
  """The directory's tokenizer.json as is. (AutoTokenizer picks Qwen2Tokenizer for a qwen2
  config.json, which splits words with Qwen2's own pattern: other ids than r1jax's.)"""
  import transformers
  return transformers.PreTrainedTokenizerFast.from_pretrained(model_dir)


def _run_trl(spec: dict, workdir: Path) -> dict:
  """TRL's GRPOTrainer on the model directory, one generation per optimizer step."""
  import datasets
  import torch
  import transformers
  import trl
  from trl.extras import profiling

  # TRL times its phases in profiling contexts and reports them only to W&B / MLflow /
  # Trackio; record them here instead.
  spans: list[tuple[str, float]] = []
  log_metrics = profiling.ProfilingContext._log_metrics

  def record(self, duration):
    spans.append((self.name.split(".", 1)[-1], duration))
    return log_metrics(self, duration)

  profiling.ProfilingContext._log_metrics = record

  class StepTimer(transformers.TrainerCallback):
    """Wall time from the start of an optimizer step to its end, and the spans inside."""

    def __init__(self):
      self.steps, self.lengths = [], []

    def on_step_begin(self, args, state, control, **kwargs):
      self.t0, self.first_span = time.perf_counter(), len(spans)

    def on_step_end(self, args, state, control, **kwargs):
      phases: dict[str, float] = {}
      for name, s in spans[self.first_span:]:
        phases[name] = phases.get(name, 0.0) + s
      self.steps.append({"step_s": time.perf_counter() - self.t0, "phases": phases})

    def on_log(self, args, state, control, logs=None, **kwargs):
      if logs and "completions/mean_length" in logs:
        self.lengths.append(logs["completions/mean_length"])

  P, G, M = spec["prompts_per_step"], spec["num_generations"], spec["max_new_tokens"]
  tokenizer = _hf_tokenizer(spec["model_dir"])
  prompts = [t for batch in spec["texts"] for t in batch]
  lengths = [len(ids) for ids in tokenizer(text=prompts)["input_ids"]]
  config = trl.GRPOConfig(
      output_dir=str(workdir / "run"), report_to="none", save_strategy="no", logging_steps=1,
      disable_tqdm=True, use_cpu=True, bf16=False, fp16=False, seed=spec["seed"],
      model_init_kwargs={"dtype": spec["dtype"]},
      per_device_train_batch_size=P * G, gradient_accumulation_steps=1, num_generations=G,
      max_steps=spec["steps"], shuffle_dataset=False, max_completion_length=M,
      temperature=1.0, top_p=1.0, top_k=0, generation_kwargs={"min_new_tokens": M},
      beta=spec["beta"], num_iterations=1, epsilon=0.2, loss_type="grpo",
      scale_rewards="group", learning_rate=spec["learning_rate"], lr_scheduler_type="constant",
      warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0)
  timer = StepTimer()
  trainer = trl.GRPOTrainer(model=spec["model_dir"], reward_funcs=digit_reward, args=config,
                            train_dataset=datasets.Dataset.from_dict({"prompt": prompts}),
                            processing_class=tokenizer, callbacks=[timer])
  t0 = time.perf_counter()
  trainer.train()
  train_s = time.perf_counter() - t0
  for step, length in zip(timer.steps, timer.lengths):
    step["completion_tokens"] = length
  return {"steps": timer.steps, "train_s": train_s,
          "same_prompts": lengths == [n for b in spec["prompt_tokens"] for n in b],
          "torch_threads": torch.get_num_threads(),
          "versions": _versions("torch", "transformers", "trl", "accelerate")}


def _tunix_model_config(model_dir: str):
  from tunix.models.qwen2 import model as qwen2
  hf = json.loads((Path(model_dir) / "config.json").read_text())
  return qwen2.ModelConfig(
      num_layers=hf["num_hidden_layers"], vocab_size=hf["vocab_size"],
      embed_dim=hf["hidden_size"], hidden_dim=hf["intermediate_size"],
      num_heads=hf["num_attention_heads"], num_kv_heads=hf["num_key_value_heads"],
      head_dim=hf["hidden_size"] // hf["num_attention_heads"],
      rope_theta=int(hf.get("rope_theta") or hf["rope_parameters"]["rope_theta"]),
      norm_eps=hf["rms_norm_eps"], use_tied_embedding=hf["tie_word_embeddings"])


def _run_tunix(spec: dict, workdir: Path) -> dict:
  """Tunix's GRPOLearner: actor, reference and rollout colocated on the one CPU device,
  the vanilla (Tunix sampler) rollout engine, perf metrics on."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  import optax
  from flax import nnx
  from tunix.models.qwen2 import params as qwen2_params
  from tunix.perf import export as perf_export
  from tunix.perf import metrics as perf_metrics
  from tunix.rl import rl_cluster as rl_cluster_lib
  from tunix.rl.grpo import grpo_learner
  from tunix.rl.rollout import base_rollout
  from tunix.sft import metrics_logger

  G, M = spec["num_generations"], spec["max_new_tokens"]
  mesh = jax.make_mesh((1, 1), ("fsdp", "tp"), axis_types=(jax.sharding.AxisType.Auto,) * 2)
  cfg = _tunix_model_config(spec["model_dir"])
  reference = qwen2_params.create_model_from_safe_tensors(spec["model_dir"], cfg, mesh)
  graph, state = nnx.split(reference)  # the actor starts as a copy of the reference
  actor = nnx.merge(graph, jax.tree.map(jnp.copy, state))
  tokenizer = _hf_tokenizer(spec["model_dir"])
  roles = rl_cluster_lib.Role
  longest = spec["longest_prompt"]
  cluster_config = rl_cluster_lib.ClusterConfig(
      role_to_mesh={roles.ACTOR: mesh, roles.REFERENCE: mesh, roles.ROLLOUT: mesh},
      rollout_engine="vanilla", offload_to_cpu=False,
      training_config=rl_cluster_lib.RLTrainingConfig(
          actor_optimizer=optax.chain(optax.clip_by_global_norm(1.0),
                                      optax.adamw(spec["learning_rate"], weight_decay=0.0)),
          eval_every_n_steps=10**9, max_steps=spec["steps"],
          metrics_logging_options=metrics_logger.MetricsLoggerOptions(
              log_dir=str(workdir / "logs"), flush_every_n_steps=10**9)),
      rollout_config=base_rollout.RolloutConfig(
          max_tokens_to_generate=M, max_prompt_length=longest, kv_cache_size=longest + M,
          temperature=1.0, top_p=1.0, top_k=None, data_type=jnp.float32,
          # Tunix stops at these ids: one outside the vocabulary never comes.
          eos_tokens=[cfg.vocab_size]))
  perf: list[dict[str, float]] = []
  export = perf_export.PerfMetricsExport.from_cluster_config(cluster_config)

  def record(query):
    metrics = export(query)
    # one micro-batch per step: the perf/mean/* values repeat the perf/sum/* ones
    perf.append({k.removeprefix("perf/").removeprefix("sum/"): float(v)
                 for k, (v, _) in metrics.items() if not k.startswith("perf/mean/")})
    return metrics

  cluster = rl_cluster_lib.RLCluster(
      actor=actor, reference=reference, tokenizer=tokenizer, cluster_config=cluster_config,
      perf_config=perf_metrics.PerfMetricsConfig(custom_export_fn=record))
  learner = grpo_learner.GRPOLearner(
      cluster, grpo_learner.GRPOConfig(num_generations=G, num_iterations=1, beta=spec["beta"],
                                       epsilon=0.2),
      reward_fns=digit_reward)
  lengths, starts = [], []
  generate = cluster.generate

  def generate_and_count(*a, **k):
    out = generate(*a, **k)
    lengths.append(float(sum(len(t) for t in out.tokens)) / len(out.tokens))
    return out

  cluster.generate = generate_and_count
  run_global_step = learner._run_global_step

  def timed_global_step(*a, **k):
    starts.append(time.perf_counter())
    return run_global_step(*a, **k)

  learner._run_global_step = timed_global_step
  # a batch as a grain pipeline gives it: arrays, which the learner repeats G times
  batches = [{"prompts": np.array(batch)} for batch in spec["texts"]]
  t0 = time.perf_counter()
  learner.train(batches)
  end = time.perf_counter()
  train_s = end - t0
  # a step: from one global step's start to the next's (weight sync and the perf export
  # included), the last to the end of train()
  bounds = starts + [end]
  steps = [{"step_s": b - a, "phases": p, "completion_tokens": n}
           for a, b, p, n in zip(bounds, bounds[1:], perf + [{}] * len(starts), lengths)]
  sampler_tokens = [len(cluster.rollout._sampler.tokenize(t)) for b in spec["texts"] for t in b]
  return {"steps": steps, "train_s": train_s,
          "same_prompts": sampler_tokens == [n for b in spec["prompt_tokens"] for n in b],
          "versions": _versions("jax", "jaxlib", "flax", "google-tunix", "transformers")}


RUNNERS = {"r1jax": _run_r1jax, "trl": _run_trl, "tunix": _run_tunix}


def _worker(framework: str, spec_path: str, result_path: str) -> None:
  """Runs one framework's round and writes its result (or why it was skipped) as JSON."""
  spec = json.loads(Path(spec_path).read_text())
  if importlib.util.find_spec(PACKAGES[framework]) is None:
    result = {"skipped": f"{PACKAGES[framework]} is not installed for {sys.executable}"}
  else:
    with tempfile.TemporaryDirectory(prefix=f"grpo_step_{framework}_") as tmp:
      result = RUNNERS[framework](spec, Path(tmp))
    result["peak_rss_mb"] = _peak_rss_mb()
    result["python"] = sys.executable
  Path(result_path).write_text(json.dumps(result))


# ----------------------------------------------------------------- the parent


def _child_env() -> dict[str, str]:
  """This environment, less a forced host device count (the test suite's 8 CPU devices):
  every framework runs on the one CPU device a user gets."""
  env = dict(os.environ)
  flags = re.sub(r"--xla_force_host_platform_device_count=\S+", "", env.get("XLA_FLAGS", ""))
  if flags.strip():
    env["XLA_FLAGS"] = flags.strip()
  else:
    env.pop("XLA_FLAGS", None)
  env.setdefault("TOKENIZERS_PARALLELISM", "false")
  return env


def run_round(framework: str, python: str, spec_path: Path, workdir: Path, tag: str,
              timeout: float) -> dict:
  result_path = workdir / f"{tag}.json"
  log = workdir / f"{tag}.log"
  if not Path(python).exists() and not shutil_which(python):
    return {"skipped": f"no interpreter {python}"}
  cmd = [python, str(Path(__file__).resolve()), "--_worker", framework,
         "--_spec", str(spec_path), "--_result", str(result_path)]
  t0 = time.perf_counter()
  with open(log, "w") as f:
    try:
      proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=_child_env(),
                            cwd=str(ROOT), timeout=timeout)
    except subprocess.TimeoutExpired:
      return {"error": f"timed out after {timeout:.0f} s; log: {log}"}
  wall = time.perf_counter() - t0
  if proc.returncode or not result_path.exists():
    tail = log.read_text()[-2000:]
    return {"error": f"exit {proc.returncode}; log {log}:\n{tail}"}
  result = json.loads(result_path.read_text())
  result["process_s"] = wall
  return result


def shutil_which(name: str) -> str | None:
  import shutil
  return shutil.which(name)


def _median(xs):
  return float(statistics.median(xs)) if xs else None


def summarize(framework: str, rounds: list[dict]) -> dict:
  """Median step time over every round's steps but the first; first steps; peak RSS;
  the median of each phase over the same steps."""
  bad = [r for r in rounds if "steps" not in r]
  if bad:
    return {"framework": framework, **bad[0]}
  later = [s for r in rounds for s in r["steps"][1:]]
  firsts = [r["steps"][0]["step_s"] for r in rounds]
  names = sorted({k for s in later for k in s.get("phases", {})})
  out = {
      "framework": framework,
      "median_step_s": _median([s["step_s"] for s in later]),
      "steps_in_median": len(later),
      "first_step_s": firsts, "median_first_step_s": _median(firsts),
      "peak_rss_mb": max(r["peak_rss_mb"] for r in rounds),
      "peak_rss_mb_per_round": [r["peak_rss_mb"] for r in rounds],
      "phases_median_s": {k: _median([s["phases"][k] for s in later if k in s["phases"]])
                          for k in names},
      "completion_tokens_per_row": sorted({s.get("completion_tokens") for r in rounds
                                           for s in r["steps"]} - {None}),
      "same_prompts": all(r.get("same_prompts") for r in rounds),
      "train_s": [r["train_s"] for r in rounds], "process_s": [r["process_s"] for r in rounds],
      "step_s": [[s["step_s"] for s in r["steps"]] for r in rounds],
      "versions": rounds[0].get("versions"), "python": rounds[0].get("python"),
  }
  if "compiles" in rounds[0]["steps"][0]:
    out["compiles_per_round"] = [sum(s["compiles"] for s in r["steps"]) for r in rounds]
    out["prompt_len_buckets"] = sorted({s["prompt_len"] for r in rounds for s in r["steps"]})
    out["median_train_tokens"] = _median([s["train_tokens"] for r in rounds for s in r["steps"]])
  if "torch_threads" in rounds[0]:
    out["torch_threads"] = rounds[0]["torch_threads"]
  return out


def _ratio(a, b):
  return a / b if a and b else None


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--frameworks", default=",".join(FRAMEWORKS))
  p.add_argument("--prompts", default="variable",
                 help="comma list of prompt sets: variable (GSM8K lengths), same_length")
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument("--steps", type=int, default=6, help="steps per round")
  p.add_argument("--num_prompts", type=int, default=64, help="the first N GSM8K questions")
  p.add_argument("--prompts_per_step", type=int, default=8)
  p.add_argument("--num_generations", type=int, default=4)
  p.add_argument("--max_new_tokens", type=int, default=64)
  p.add_argument("--beta", type=float, default=0.04)
  p.add_argument("--learning_rate", type=float, default=1e-6)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--vocab", type=int, default=4096)
  p.add_argument("--hidden", type=int, default=256)
  p.add_argument("--layers", type=int, default=4)
  p.add_argument("--heads", type=int, default=4)
  p.add_argument("--kv_heads", type=int, default=2)
  p.add_argument("--intermediate", type=int, default=688)
  p.add_argument("--context", type=int, default=1024)
  p.add_argument("--preset", default="", help="r1jax only: this preset from random weights "
                 "instead of the Qwen2 above (e.g. qwen2_5_0_5b, deepseek_v3_1b on a GPU)")
  p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  p.add_argument("--attention_impl", default="xla", choices=["xla", "cudnn"])
  p.add_argument("--batch_layout", default="auto", choices=["auto", "rows", "groups"],
                 help="r1jax's config.rl.batch_layout (r1jax.stages.grpo_batch)")
  p.add_argument("--python_r1jax", default=sys.executable)
  p.add_argument("--python_trl", default=sys.executable)
  p.add_argument("--python_tunix", default=sys.executable)
  p.add_argument("--worker_timeout", type=float, default=1800)
  p.add_argument("--workdir", default=None, help="default: a temporary directory")
  p.add_argument("--dry_run", action="store_true",
                 help="tiny model, 2 steps, 1 round, 2 prompts x 2 x 4 tokens")
  p.add_argument("--note", default="", help="a remark stored in the JSON")
  p.add_argument("--out", default=None, help="also write the JSON here")
  args = p.parse_args(argv)
  if args.dry_run:
    args.rounds, args.steps, args.num_prompts = 1, 2, 8
    args.prompts_per_step, args.num_generations, args.max_new_tokens = 2, 2, 4
    args.vocab, args.hidden, args.layers, args.intermediate = 512, 64, 2, 128
  frameworks = [f.strip() for f in args.frameworks.split(",")]
  if args.preset and frameworks != ["r1jax"]:
    p.error("--preset runs an r1jax preset; pass --frameworks=r1jax")
  kinds = [k.strip() for k in args.prompts.split(",")]
  for f in frameworks:
    if f not in FRAMEWORKS:
      p.error(f"--frameworks: unknown {f!r}; use some of {FRAMEWORKS}")
  for k in kinds:
    if k not in ("variable", "same_length"):
      p.error(f"--prompts: unknown {k!r}; use variable and/or same_length")

  from benchmarks import report
  load_before = os.getloadavg()
  tmp = None
  if args.workdir:
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
  else:
    tmp = tempfile.TemporaryDirectory(prefix="grpo_step_")
    workdir = Path(tmp.name)
  model = build_model_dir(workdir / "model", args, weights=not args.preset)
  specs = {}
  for kind in kinds:
    spec = make_spec(kind, workdir / "model", workdir, args)
    specs[kind] = workdir / f"spec_{kind}.json"
    specs[kind].write_text(json.dumps(spec))
  pythons = {"r1jax": args.python_r1jax, "trl": args.python_trl, "tunix": args.python_tunix}
  raw = {(k, f): [] for k in kinds for f in frameworks}
  for rnd in range(args.rounds):
    for kind in kinds:
      for f in frameworks:
        r = run_round(f, pythons[f], specs[kind], workdir, f"{kind}_{f}_{rnd}",
                      args.worker_timeout)
        raw[(kind, f)].append(r)
        took = r.get("process_s")
        print(f"grpo_step: round {rnd} {kind} {f}: "
              + (f"{took:.0f} s, steps {[round(s['step_s'], 2) for s in r['steps']]}"
                 if "steps" in r else str(r.get("skipped") or r.get("error"))[:400]),
              file=sys.stderr, flush=True)
  results, ratios = [], {}
  for kind in kinds:
    by_fw = {}
    for f in frameworks:
      rounds = raw[(kind, f)]
      skipped = next((r for r in rounds if "skipped" in r), None)
      by_fw[f] = ({"framework": f, "skipped": skipped["skipped"]} if skipped
                  else summarize(f, rounds))
      results.append({"prompts": kind, **by_fw[f]})
    base = by_fw.get("r1jax", {})
    ratios[kind] = {f"{f}/r1jax": {
        "median_step": _ratio(by_fw[f].get("median_step_s"), base.get("median_step_s")),
        "first_step": _ratio(by_fw[f].get("median_first_step_s"),
                             base.get("median_first_step_s")),
        "peak_rss": _ratio(by_fw[f].get("peak_rss_mb"), base.get("peak_rss_mb"))}
        for f in frameworks if f != "r1jax"}
  spec0 = json.loads(next(iter(specs.values())).read_text())
  lengths = {k: [n for b in json.loads(s.read_text())["prompt_tokens"] for n in b]
             for k, s in specs.items()}
  workload = {
      "model": {"type": args.preset or "qwen2", **model}, "dtype": spec0["dtype"],
      "attention_impl": args.attention_impl, "r1jax_batch_layout": args.batch_layout,
      "prompts": {k: {"source": f"first {args.num_prompts} GSM8K train questions, R1 chat "
                      "format, no instruction" + (f", cut/extended to {SAME_LENGTH} tokens"
                                                  if k == "same_length" else ""),
                      "tokens_min": min(v), "tokens_max": max(v)} for k, v in lengths.items()},
      "prompts_per_step": args.prompts_per_step, "num_generations": args.num_generations,
      "max_new_tokens": args.max_new_tokens, "eos_suppressed": True, "temperature": 1.0,
      "beta": args.beta, "epsilon": 0.2, "num_iterations": 1, "loss": "grpo (sequence mean)",
      "learning_rate": args.learning_rate, "reward": "digit_reward: fraction of digits",
      "steps_per_round": args.steps, "rounds": args.rounds}
  load_after = os.getloadavg()
  command = "python benchmarks/grpo_step.py " + " ".join(
      shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
  out = report.emit(
      "grpo_step", _device(), args, results, command=command,
      machine={"cores": os.cpu_count(), "cpu": _cpu_model()},
      loadavg={"before": load_before, "after": load_after}, workload=workload, ratios=ratios,
      versions=_all_versions(results), note=args.note)
  if tmp is not None:
    tmp.cleanup()
  return out


def _device() -> str:
  import jax
  d = jax.devices()[0]
  return f"cpu ({os.cpu_count()} cores)" if d.platform == "cpu" else f"{d.device_kind} ({d.platform})"


def _cpu_model() -> str:
  try:
    for line in open("/proc/cpuinfo"):
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return ""


def _all_versions(results: list[dict]) -> dict:
  """Package versions per framework's interpreter, as each worker saw them."""
  out = {}
  for r in results:
    if r.get("versions"):
      out[r["framework"]] = r["versions"]
  return out


if __name__ == "__main__":
  if "--_worker" in sys.argv:
    w = argparse.ArgumentParser()
    w.add_argument("--_worker")
    w.add_argument("--_spec")
    w.add_argument("--_result")
    a = w.parse_args()
    _worker(a._worker, a._spec, a._result)
  else:
    main()
