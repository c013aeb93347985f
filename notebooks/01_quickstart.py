# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # r1jax quickstart: R1-Zero on the tiny default
#
# DeepSeek-R1-Zero (R1 §2.2) is reinforcement learning straight from a base model: for each
# prompt the policy samples a group of G completions, rule-based rewards score them
# (**accuracy**: is the final answer right? **format**: is the reasoning in `<think>…</think>`
# and the answer in `<answer>…</answer>`?), and GRPO pushes up the completions that beat
# their group's mean.
#
# The embedded default (`configs/grpo_zero.py`) does this with `deepseek_v3_tiny` — the
# DeepSeek-V3 architecture (MLA, DeepSeekMoE with 16 experts, YaRN) at 1.9M parameters —
# starting from a small base model shipped in `r1jax/assets/tiny_base` that adds two-digit
# numbers correctly only some of the time and follows the format about half the time.
#
# This notebook runs it, plots the reward curves and shows what the policy writes.
# Everything runs on a laptop CPU (a few minutes by default); on a Colab GPU / TPU it runs
# as is, faster. Set `R1JAX_NOTEBOOK_FAST=1` for a 2-step smoke test.

# %% tags=["parameters"]
# Set-up: run me first. FAST=1 (set by the tests) shrinks every run to a smoke test.
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

FAST = os.environ.get("R1JAX_NOTEBOOK_FAST") == "1"
R1JAX_GIT = os.environ.get("R1JAX_GIT", "")  # on Colab: the git URL of r1jax, to clone it here


def _find_repo(start: Path):
    for d in (start, *start.parents):
        if (d / "r1jax" / "__init__.py").exists() and (d / "configs").is_dir():
            return d
    return None


REPO = _find_repo(Path.cwd())
if REPO is None and R1JAX_GIT:
    subprocess.check_call(["git", "clone", "-q", "--depth=1", R1JAX_GIT, "r1jax"])
    REPO = Path("r1jax").resolve()
if REPO is not None and str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # `configs/` is not part of the installed package


def _missing(*modules):
    return [m for m in modules if importlib.util.find_spec(m) is None]


if _missing("jax", "flax", "optax", "orbax", "grain", "ml_collections", "math_verify", "r1jax"):
    if REPO is None:
        raise ImportError(
            "r1jax is not installed and this notebook is not inside a clone of it: run\n"
            "  git clone <r1jax git URL> r1jax && pip install -e 'r1jax[dev]'\n"
            "and open the notebook from r1jax/notebooks/ (or set R1JAX_GIT to the URL).")
    # Keeps a jax that is already installed (Colab's GPU / TPU build stays).
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "-e", str(REPO)])
if _missing("matplotlib"):
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "matplotlib"])
importlib.invalidate_caches()

import jax
import r1jax
print(f"r1jax {r1jax.__version__} from {Path(r1jax.__file__).parent}; "
      f"jax {jax.__version__} on {jax.devices()}; FAST={FAST}")

# %% [markdown]
# ## The config
#
# Experiments are `ml_collections.ConfigDict`s (one file per experiment in `configs/`); the
# command line `python -m r1jax.train --config=configs/grpo_zero.py --config.rl.beta=0.0`
# overrides fields the same way as the assignments below.

# %%
import tempfile

from configs import grpo_zero

config = grpo_zero.get_config()
# configs/grpo_zero.py runs 100 steps of 16 prompts x 8 completions (~9 min on 2 CPU cores);
# 30 steps already show the format reward rising.
config.train.num_steps = 2 if FAST else 30
config.train.eval_every = 0 if FAST else 15  # held-out accuracy at steps 0, 15, 30
config.train.save_every = config.train.num_steps
if FAST:  # a smoke test of the same code path: 2 prompts x 4 completions of 16 tokens
    config.rl.prompts_per_step, config.rl.num_generations = 2, 4
    config.rl.max_new_tokens = 16

# A fresh directory per run; point R1JAX_WORKDIR at an existing run to resume it.
WORKDIR = os.environ.get("R1JAX_WORKDIR") or tempfile.mkdtemp(prefix="r1_zero_")
print("workdir:", WORKDIR)
print(f"model {config.model} from {config.init_from}")
print(f"{config.train.num_steps} steps x {config.rl.prompts_per_step} prompts x "
      f"G={config.rl.num_generations} completions of <= {config.rl.max_new_tokens} tokens; "
      f"loss={config.rl.loss}, beta={config.rl.beta}, rewards={dict(config.rl.rewards)}")

# %% [markdown]
# What the policy sees: the R1-Zero template (R1 Table 1) around a training problem.

# %%
from r1jax.data.datasets import load_prompts
from r1jax.data.templates import prompt_format

example = load_prompts(config.data.train, limit=1, seed=config.seed)[0]
print(prompt_format(config.data.template).question(example["question"]))
print("\ngold answer:", example["answer"])

# %% [markdown]
# ## Train
#
# `train_and_evaluate(config, workdir)` is what `python -m r1jax.train` runs: it writes
# `metrics.jsonl`, TensorBoard events and checkpoints into the workdir, and resumes from the
# latest checkpoint when called again with the same workdir.

# %%
from r1jax.train import train_and_evaluate

last = train_and_evaluate(config, WORKDIR)
print({k: round(v, 4) for k, v in last.items() if k.startswith(("reward/", "eval/", "kl"))})

# %% [markdown]
# ## The curves
#
# One row per step in `metrics.jsonl` (`r1jax.runtime.metrics.read_metrics`); `python -m r1jax.tools.report
# --workdir=...` draws every panel into `report.png`.

# %%
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from r1jax.runtime.metrics import read_metrics
from r1jax.tools.report import series, summary_markdown

rows = read_metrics(WORKDIR)
fig, axes = plt.subplots(1, 3, figsize=(14, 3.4))
for key in ("reward/mean", "reward/accuracy", "reward/format"):
    axes[0].plot(*series(rows, key), marker="o", markersize=3, label=key)
axes[0].set_title("training rewards (mean over the step's completions)")
axes[1].plot(*series(rows, "completion/mean_length"), marker="o", markersize=3)
axes[1].set_title("completion length (tokens)")
for key in ("eval/accuracy", "eval/format"):
    if series(rows, key)[1]:  # FAST mode skips the held-out evaluation
        axes[2].plot(*series(rows, key), marker="s", label=key)
kl_axis = axes[2].twinx()
kl_axis.plot(*series(rows, "kl"), color="gray", ls=":", label="KL to the reference (right)")
kl_axis.legend(fontsize=8, loc="lower right")
axes[2].set_title("held-out evaluation, KL")
for ax in axes:
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
plt.tight_layout()
plt.show()
display(Markdown(summary_markdown(rows)))

# %% [markdown]
# ## What the policy writes
#
# The run's last checkpoint, sampled at temperature 1 on held-out problems (the pairs of
# `arithmetic:test` never appear in training) and scored with the training rewards.

# %%
from r1jax import rewards
from r1jax.data.tokenizers import load_tokenizer, tokenizer_spec
from r1jax.models.loading import model_config, restore_run_weights
from r1jax.sampling import SamplingParams, generate_text

cfg = model_config(config)
_, weights = restore_run_weights(WORKDIR, expected=cfg)
tok = load_tokenizer(tokenizer_spec(config))
problems = load_prompts("arithmetic:test", limit=config.rl.prompts_per_step if FAST else 4,
                        seed=1)
prompts = [prompt_format(config.data.template).question(p["question"]) for p in problems]
sp = SamplingParams(max_new_tokens=config.rl.max_new_tokens, temperature=1.0,
                    n=config.rl.num_generations if FAST else 2, vocab_limit=tok.vocab_size,
                    stop_sequences=(tuple(tok.encode("</answer>")),), seed=0)
completions = generate_text(cfg, weights, tok, prompts, sp)

for problem, prompt, outs in zip(problems, prompts, completions):
    _, parts = rewards.score(dict(config.rl.rewards), [prompt] * len(outs), outs,
                             answer=[problem["answer"]] * len(outs))
    print(f"{problem['question']}  (gold {problem['answer']})")
    for text, acc, fmt in list(zip(outs, parts["accuracy"], parts["format"]))[:2]:
        print(f"  [accuracy {acc:.0f}, format {fmt:.0f}] {text.strip()!r}")

# %% [markdown]
# ## Next
#
# * The full run: `python -m r1jax.train --config=configs/grpo_zero.py --workdir=workdirs/grpo_zero`
#   (100 steps; `experiments/r1_zero_tiny/` has its curves), then
#   `python -m r1jax.tools.report --workdir=workdirs/grpo_zero`.
# * Other losses: `--config.rl.loss=dapo --config.rl.beta=0.0` (also `dr_grpo`, `gspo`).
# * `02_model_tour.ipynb`: what is inside the model; `03_rewards.ipynb`: the reward functions;
#   `04_hf_checkpoints.ipynb`: Hugging Face checkpoints in and out.
