"""Writes the notebooks of this folder from the cell sources below (outputs stripped).

    python notebooks/_build.py           # rewrite 01_quickstart.ipynb ... 04_hf_checkpoints.ipynb
    python notebooks/_build.py --check   # exit 1 if a committed notebook differs from this file

The notebooks are generated so that they stay small, reviewable and in step with each
other (every one starts with the same set-up cell). Edit the cells here and rerun; an edit
made in Jupyter must be carried over by hand. tests/test_notebooks.py runs them all.
"""

from __future__ import annotations

import argparse
import os
import sys

import nbformat

HERE = os.path.dirname(os.path.abspath(__file__))

# ------------------------------------------------------------------- shared cells

SETUP = r'''# Set-up: run me first. FAST=1 (set by the tests) shrinks every run to a smoke test.
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
      f"jax {jax.__version__} on {jax.devices()}; FAST={FAST}")'''


def md(text: str) -> nbformat.NotebookNode:
  return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(text: str, tags=()) -> nbformat.NotebookNode:
  cell = nbformat.v4.new_code_cell(text.strip("\n"))
  if tags:
    cell.metadata["tags"] = list(tags)
  return cell


def setup() -> nbformat.NotebookNode:
  return code(SETUP, tags=("parameters",))


# ------------------------------------------------------------------- 01 quickstart

QUICKSTART = [
    md(r'''
# r1jax quickstart: R1-Zero on the tiny default

DeepSeek-R1-Zero (R1 §2.2) is reinforcement learning straight from a base model: for each
prompt the policy samples a group of G completions, rule-based rewards score them
(**accuracy**: is the final answer right? **format**: is the reasoning in `<think>…</think>`
and the answer in `<answer>…</answer>`?), and GRPO pushes up the completions that beat
their group's mean.

The embedded default (`configs/grpo_zero.py`) does this with `deepseek_v3_tiny` — the
DeepSeek-V3 architecture (MLA, DeepSeekMoE with 16 experts, YaRN) at 1.9M parameters —
starting from a small base model shipped in `r1jax/assets/tiny_base` that adds two-digit
numbers correctly only some of the time and follows the format about half the time.

This notebook runs it, plots the reward curves and shows what the policy writes.
Everything runs on a laptop CPU (a few minutes by default); on a Colab GPU / TPU it runs
as is, faster. Set `R1JAX_NOTEBOOK_FAST=1` for a 2-step smoke test.
'''),
    setup(),
    md(r'''
## The config

Experiments are `ml_collections.ConfigDict`s (one file per experiment in `configs/`); the
command line `python -m r1jax.train --config=configs/grpo_zero.py --config.rl.beta=0.0`
overrides fields the same way as the assignments below.
'''),
    code(r'''
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
'''),
    md(r'''
What the policy sees: the R1-Zero template (R1 Table 1) around a training problem.
'''),
    code(r'''
from r1jax.data.datasets import load_prompts
from r1jax.rl.rollout import prompt_text

example = load_prompts(config.data.train, limit=1, seed=config.seed)[0]
print(prompt_text(config.data.template, example["question"]))
print("\ngold answer:", example["answer"])
'''),
    md(r'''
## Train

`train_and_evaluate(config, workdir)` is what `python -m r1jax.train` runs: it writes
`metrics.jsonl`, TensorBoard events and checkpoints into the workdir, and resumes from the
latest checkpoint when called again with the same workdir.
'''),
    code(r'''
from r1jax.train import train_and_evaluate

last = train_and_evaluate(config, WORKDIR)
print({k: round(v, 4) for k, v in last.items() if k.startswith(("reward/", "eval/", "kl"))})
'''),
    md(r'''
## The curves

One row per step in `metrics.jsonl` (`r1jax.metrics.read_metrics`); `python -m r1jax.report
--workdir=...` draws every panel into `report.png`.
'''),
    code(r'''
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from r1jax.metrics import read_metrics
from r1jax.report import series, summary_markdown

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
'''),
    md(r'''
## What the policy writes

The run's last checkpoint, sampled at temperature 1 on held-out problems (the pairs of
`arithmetic:test` never appear in training) and scored with the training rewards.
'''),
    code(r'''
from r1jax import checkpoint as ckpt_lib
from r1jax.rl import rewards
from r1jax.sampling import SamplingParams, generate_text
from r1jax.tokenizers import load_tokenizer
from r1jax.train import model_config, tokenizer_spec

cfg = model_config(config)
_, weights = ckpt_lib.restore_run_weights(WORKDIR, expected=cfg)
tok = load_tokenizer(tokenizer_spec(config))
problems = load_prompts("arithmetic:test", limit=config.rl.prompts_per_step if FAST else 4,
                        seed=1)
prompts = [prompt_text(config.data.template, p["question"]) for p in problems]
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
'''),
    md(r'''
## Next

* The full run: `python -m r1jax.train --config=configs/grpo_zero.py --workdir=workdirs/grpo_zero`
  (100 steps; `experiments/r1_zero_tiny/` has its curves), then
  `python -m r1jax.report --workdir=workdirs/grpo_zero`.
* Other losses: `--config.rl.loss=dapo --config.rl.beta=0.0` (also `dr_grpo`, `gspo`).
* `02_model_tour.ipynb`: what is inside the model; `03_rewards.ipynb`: the reward functions;
  `04_hf_checkpoints.ipynb`: Hugging Face checkpoints in and out.
'''),
]

# ------------------------------------------------------------------- 02 model tour

MODEL_TOUR = [
    md(r'''
# A tour of the DeepSeek-V3 model

`r1jax.models` builds DeepSeek-V3 / R1 (Multi-head Latent Attention, DeepSeekMoE with
auxiliary-loss-free balancing, multi-token prediction) and the dense Qwen2 / Llama students
from one `ModelConfig`. This notebook looks at

1. the 671B model's parameter counts, from shapes alone (nothing is allocated);
2. why MLA's latent cache makes a 128k context affordable;
3. how the tiny MoE routes tokens, and how the router bias balances the experts' loads.
'''),
    setup(),
    md(r'''
## 1. Parameters of DeepSeek-V3 / R1

`count_params` traces `init_params` with `jax.eval_shape`, so the 671B model costs no
memory. "activated" counts what one token touches: every weight but the 248 of 256
routed experts it is not sent to (V3 Table 1: 671B total, 37B activated).
'''),
    code(r'''
import functools

import jax
import numpy as np
from IPython.display import Markdown, display

from r1jax.models import count_params, forward, init_cache, init_params, presets

big = presets.get("deepseek_v3_671b")
counts = count_params(big)
for k, v in counts.items():
    print(f"{k:>16}: {v / 1e9:8.2f} B")
'''),
    code(r'''
def component(keys):
    if keys[0] in ("embed", "lm_head"):
        return "embedding + output head"
    if keys[0].startswith("mtp_"):
        return "MTP module (excl. shared embedding/head)"
    if "attn" in keys:
        return "attention (MLA)"
    if "mlp" in keys:
        return f"dense FFN (first {big.n_dense_layers} layers)"
    if "shared_experts" in keys:
        return "shared experts"
    if keys[-1] in ("w_gate", "w_up", "w_down"):
        return "routed experts"
    if keys[-1] == "gate":
        return "routers"
    return "norms"


shapes = jax.eval_shape(functools.partial(init_params, big.replace(n_mtp_modules=1)),
                        jax.random.key(0))["params"]
parts = {}
for path, leaf in jax.tree_util.tree_flatten_with_path(shapes)[0]:
    name = component([p.key for p in path])
    parts[name] = parts.get(name, 0) + int(np.prod(leaf.shape))
lines = ["| component | parameters | share |", "|---|---:|---:|"]
for name, n in sorted(parts.items(), key=lambda kv: -kv[1]):
    lines.append(f"| {name} | {n / 1e9:.2f} B | {n / sum(parts.values()):.1%} |")
display(Markdown("\n".join(lines)))

def human(n):
    return f"{n / 1e9:.1f} B" if n >= 1e9 else f"{n / 1e6:.1f} M"


lines = ["| preset | total | activated |", "|---|---:|---:|"]
for name in ("deepseek_v3_tiny", "deepseek_v3_1b", "deepseek_v3_671b", "qwen2_5_1_5b",
             "llama3_1_8b"):
    c = count_params(presets.get(name))
    lines.append(f"| {name} | {human(c['total'])} | {human(c['activated'])} |")
display(Markdown("\n".join(lines)))
'''),
    md(r'''
## 2. The KV cache: MLA's latent vs. full multi-head K/V

Decoding keeps, for every past token and layer, what attention needs to look back at.
Standard multi-head attention caches a key and a value per head:
`n_heads · (qk_head_dim + v_head_dim)` values (that is 2 · heads · head_dim when keys and
values have the same width). MLA (DeepSeek-V2 §2.1) caches only the compressed latent
`c_kv` (`kv_lora_rank`) and the shared RoPE key `k_pe` (`qk_rope_head_dim`); the up
projections to per-head keys and values are absorbed into the query and output
projections at decode time. `ModelConfig.cache_width_per_token` is that width.
'''),
    code(r'''
CONTEXT = 128 * 1024
BYTES = 2  # bfloat16


def mha_width(cfg):
    """K and V of every head, per token per layer, for MHA with this model's heads."""
    if cfg.attention == "mla":
        return cfg.n_heads * (cfg.qk_head_dim + cfg.v_head_dim)
    return 2 * cfg.n_heads * cfg.head_dim


rows = [("DeepSeek-V3 MLA latent (c_kv + k_pe)", big.cache_width_per_token, big.n_layers),
        ("DeepSeek-V3 heads as plain MHA", mha_width(big), big.n_layers)]
for name in ("llama3_1_8b", "qwen2_5_1_5b"):
    c = presets.get(name)
    rows.append((f"{name} (GQA, {c.n_kv_heads} KV heads)", c.cache_width_per_token, c.n_layers))
lines = ["| cache | values / token / layer | per token (all layers) | 128k context |",
         "|---|---:|---:|---:|"]
for name, width, layers in rows:
    per_token = width * layers * BYTES
    lines.append(f"| {name} | {width:,} | {per_token / 2**10:,.1f} KiB | "
                 f"{per_token * CONTEXT / 2**30:,.1f} GiB |")
display(Markdown("\n".join(lines)))
print(f"MLA caches {mha_width(big) / big.cache_width_per_token:.0f}x fewer values than MHA "
      f"with the same {big.n_heads} heads, for one sequence in bfloat16.")
'''),
    md(r'''
The same for the tiny model, measured on the arrays `init_cache` allocates (what the
sampler decodes with):
'''),
    code(r'''
tiny = presets.get("deepseek_v3_tiny")
MAX_LEN = 2048
cache = init_cache(tiny, batch=1, max_len=MAX_LEN, dtype=jax.numpy.bfloat16)
for path, leaf in jax.tree_util.tree_flatten_with_path(cache)[0]:
    print(f"{jax.tree_util.keystr(path):<32} {str(leaf.shape):<22} {leaf.dtype}")
kv_bytes = sum(leaf.nbytes for path, leaf in jax.tree_util.tree_flatten_with_path(cache)[0]
               if path[0].key != "segment_ids")
expected = tiny.cache_width_per_token * tiny.n_layers * MAX_LEN * BYTES
assert kv_bytes == expected, (kv_bytes, expected)
print(f"\nlatent cache: {kv_bytes / 2**10:.0f} KiB for {MAX_LEN} tokens "
      f"({tiny.cache_width_per_token} values/token/layer); MHA K/V would take "
      f"{mha_width(tiny) * tiny.n_layers * MAX_LEN * BYTES / 2**10:.0f} KiB "
      f"({mha_width(tiny)} values/token/layer)")
'''),
    md(r'''
## 3. Routing in the tiny MoE

Each MoE layer scores every token against 16 routed experts (sigmoid affinities), adds a
per-expert bias, keeps the best 2 of 4 expert groups and sends the token to the top 4
experts there (V3 §2.1.2). `forward(..., return_aux=True)` reports each layer's
`expert_load` (tokens per expert). We take the shipped tiny base model and a batch of
R1-Zero prompts.
'''),
    code(r'''
import matplotlib.pyplot as plt

from r1jax.data.datasets import load_prompts
from r1jax.models import update_router_biases
from r1jax.models.hf import load_hf_checkpoint
from r1jax.rl.rollout import prompt_text
from r1jax.tokenizers import load_tokenizer

cfg, params = load_hf_checkpoint(str(Path(r1jax.__file__).parent / "assets" / "tiny_base"))
tok = load_tokenizer("r1jax_tiny")
BATCH = 4 if FAST else 16
pool = load_prompts("arithmetic:train", limit=BATCH * (2 if FAST else 8), seed=0)
ids = [tok.encode(prompt_text("r1_zero", r["question"]), add_bos=True) for r in pool]
T = max(map(len, ids))
tokens = np.full((len(ids), T), tok.pad_id, np.int32)
segments = np.zeros((len(ids), T), np.int32)  # 0 marks padding: not routed, not counted
for i, x in enumerate(ids):
    tokens[i, T - len(x):], segments[i, T - len(x):] = x, 1


@jax.jit
def route_batch(params, tokens, segments):
    """forward's aux: expert_load [MoE layers, experts] (+ balance_loss, MTP loads if enabled)."""
    _, aux = forward(cfg, params, tokens, segment_ids=segments, return_aux=True)
    return aux


aux = route_batch(params, tokens[:BATCH], segments[:BATCH])
print({k: v.shape for k, v in aux.items()})
load = np.asarray(aux["expert_load"])  # [MoE layers, experts]
fig, axes = plt.subplots(1, cfg.n_moe_layers, figsize=(4.2 * cfg.n_moe_layers, 3), sharey=True)
for layer, ax in enumerate(axes):
    rel = load[layer] / load[layer].mean()
    ax.bar(range(cfg.n_routed_experts), rel,
           color=[f"C{e // (cfg.n_routed_experts // cfg.n_expert_groups)}"
                  for e in range(cfg.n_routed_experts)])
    ax.axhline(1.0, color="k", ls="--", lw=1)
    ax.set_title(f"MoE layer {layer}: max/mean load {rel.max():.2f}")
    ax.set_xlabel("expert (colour: group)")
axes[0].set_ylabel("tokens / mean")
plt.tight_layout()
plt.show()
'''),
    md(r'''
### Auxiliary-loss-free balancing

Instead of a balance loss that fights the language-modelling gradient, V3 moves each
expert's router bias after every step: `b_i += γ · sign(mean load − load_i)`
(`update_router_biases`, which the train step applies). The bias only steers which
experts are selected, never the gate values. Below only the biases move (weights frozen),
over batches of prompts; γ is raised from V3's 0.001 to 0.01 so that a few dozen steps
suffice. The imbalance is MaxVio = max load / mean load − 1. Once the loads are level, the
sign rule keeps each bias stepping ±γ around its balance point, which is why V3 uses a
small γ.
'''),
    code(r'''
STEPS = 6 if FAST else 40
bal_cfg = cfg.replace(bias_update_rate=0.01)  # gamma; the forward pass is the same

buffers = params["buffers"]
biases, max_vio = [], []
for step in range(STEPS):
    start = (step * BATCH) % (len(ids) - BATCH + 1)
    aux = route_batch({"params": params["params"], "buffers": buffers},
                      tokens[start:start + BATCH], segments[start:start + BATCH])
    buffers = update_router_biases(bal_cfg, buffers, aux)  # what the train step does
    load = np.asarray(aux["expert_load"])
    max_vio.append(load.max(-1) / load.mean(-1) - 1)
    biases.append(np.asarray(buffers["moe_layers"]["moe"]["e_score_correction_bias"]))
biases, max_vio = np.stack(biases), np.stack(max_vio)  # [steps, layers, experts], [steps, layers]

fig, axes = plt.subplots(1, 2, figsize=(12, 3.4))
axes[0].plot(np.arange(1, STEPS + 1), biases[:, 0])
axes[0].set_title("router bias of each expert, MoE layer 0")
for layer in range(cfg.n_moe_layers):
    axes[1].plot(np.arange(1, STEPS + 1), max_vio[:, layer], label=f"layer {layer}")
axes[1].set_title("MaxVio (max load / mean load - 1)")
axes[1].legend()
for ax in axes:
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
plt.tight_layout()
plt.show()
print("MaxVio per layer, first step:", max_vio[0].round(2), " last step:", max_vio[-1].round(2))
'''),
    md(r'''
## More

* `presets.get("deepseek_v3_tiny", moe_dispatch="ragged")`: the same routing with
  dropless grouped matmuls (`jax.lax.ragged_dot`); `"capacity"` buckets tokens per expert.
* `cfg.n_mtp_modules=1` adds the multi-token-prediction module; its logits come back in
  `aux["mtp_logits"]`.
* `r1jax/models/transformer.py`, `attention.py` and `moe.py` are short and cite the
  paper equations they implement.
'''),
]

# ------------------------------------------------------------------- 03 rewards

REWARDS = [
    md(r'''
# Rule-based rewards

R1-Zero learns from rewards computed by rules, not by a reward model (R1 §2.2.2). The
functions in `r1jax.rl.rewards` all have the signature
`fn(prompts, completions, **dataset_fields) -> list[float]`, one value per completion,
and `score` combines them by weight. This notebook tries each on hand-written strings;
change them and rerun.
'''),
    setup(),
    md(r'''
## Is the answer right? `extract_answer` and `math_equal`

`extract_answer` takes the last `<answer>…</answer>`, else the last `\boxed{…}` (balanced
braces), else `None`. `math_equal(pred, gold)` compares plain numbers exactly in-process
and everything else with [math-verify](https://github.com/huggingface/Math-Verify)
(LaTeX, fractions, sets, intervals, percentages), in a worker process with a hard
deadline, so that no answer can hang training.
'''),
    code(r'''
from IPython.display import Markdown, display

from r1jax.rl.rewards import extract_answer, math_equal

for text in ["<think> 7 + 8 = 15 </think> <answer> 15 </answer>",
             r"so the answer is \boxed{\frac{1}{2}}.",
             r"first \boxed{3}, no wait: \boxed{\{1, 2\}}",
             "<answer>1</answer> ... <answer>2</answer>",
             "I do not know"]:
    print(f"{text!r:58} -> {extract_answer(text)!r}")
'''),
    code(r'''
CASES = [  # (model's answer, gold answer, equal?)
    ("1/2", "0.5", True),
    (r"\frac{1}{2}", "0.5", True),
    (r"\dfrac{3}{4}", "3/4", True),
    ("1,000", "1000", True),
    ("$18", "18", True),
    ("18 dollars", "18", True),
    (r"50\%", "0.5", True),
    (r"\{1, 2, 3\}", r"\{3, 2, 1\}", True),
    ("[0, 1)", "[0,1)", True),
    ("(0, 1)", "[0, 1]", False),
    ("x^2+2x+1", "(x+1)^2", True),
    (r"\sqrt{8}", r"2\sqrt{2}", True),
    ("0.333", "1/3", False),
    ("8n^2 + 4n + 1", "1", False),  # not "the last number in the text"
]
lines = ["| prediction | gold | math_equal |", "|---|---|---|"]
for pred, gold, expected in CASES:
    got = math_equal(pred, gold)
    lines.append(f"| `{pred}` | `{gold}` | {'✓' if got else '✗'}"
                 f"{'' if got == expected else ' (unexpected!)'} |")
display(Markdown("\n".join(lines)))
assert all(math_equal(p, g) == e for p, g, e in CASES)
'''),
    md(r'''
## Is it well formatted? `format_reward`, `tag_count_reward`

R1-Zero's template asks for `<think> reasoning </think> <answer> answer </answer>`.
`format_reward` is 1.0 only for exactly that shape; `tag_count_reward` gives 0.25 per
tag used exactly once, a denser signal for tiny models. When the prompt already ends in
`<think>` (R1's chat template), the completion starts inside the think block.
'''),
    code(r'''
from r1jax.rl.rewards import format_reward, tag_count_reward
from r1jax.rl.templates import r1_zero_prompt

prompt = r1_zero_prompt("What is 47 + 38?")
completions = [
    "<think> 7 + 8 = 15 , 4 + 3 + 1 = 8 </think> <answer> 85 </answer>",
    "<think> 7 + 8 = 15 </think> <answer> 85 </answer></s>",  # a trailing stop token is fine
    "<think> 7 + 8 = 15 </think> 85",
    "<answer> 85 </answer> <think> because </think>",
    "<think> </think> <answer> 85 </answer>",  # empty reasoning
    "85",
]
fmt = format_reward([prompt] * len(completions), completions)
tags = tag_count_reward([prompt] * len(completions), completions)
for c, f, t in zip(completions, fmt, tags):
    print(f"format {f:.0f}  tags {t:.2f}  {c!r}")

prefilled = r1_zero_prompt("What is 47 + 38?", prefill_think=True)
print("\nprompt ends in <think>:", format_reward([prefilled], [" 7 + 8 = 15 </think> <answer> 85 </answer>"]))
'''),
    md(r'''
## Language consistency (R1 §2.3.2)

R1-Zero's chains of thought mix languages; R1 adds the share of target-language words in
the CoT to the reward.
'''),
    code(r'''
from r1jax.rl.rewards import language_consistency_reward

cots = ["<think> First add the units: 7 + 8 = 15, carry one. </think> <answer> 85 </answer>",
        "<think> 先算个位 7 + 8 = 15, then the tens. </think> <answer> 85 </answer>",
        "<think> 先算个位，再算十位。 </think> <answer> 85 </answer>",
        "<think> 7 + 8 = 15 , 4 + 3 + 1 = 8 </think> <answer> 85 </answer>"]
for lang in ("en", "zh"):
    print(lang, [round(v, 2) for v in language_consistency_reward([""] * len(cots), cots,
                                                                  language=lang)])
'''),
    md(r'''
## Countdown

Reach a target from given numbers with + − × ÷, each number used once (TinyZero's task).
The expression is parsed by a small exact-fraction parser, never `eval`.
'''),
    code(r'''
from r1jax.rl.rewards import countdown_reward
from r1jax.rl.rewards.countdown import check_countdown

numbers, target = [19, 36, 55, 7], 65
for expr in ["55 + 36 - 7 - 19", "55 + 36 - 7 - 19 = 65", "(55 - 19) * 7 / 36 + 58",
             "55 + 7 + 19 - 36", "55 + 36 - 26", "2**99999999", "__import__('os')"]:
    print(f"{expr!r:28} {check_countdown(expr, numbers, target)}")
print(countdown_reward(["", ""], ["<answer> 55 + 36 - 7 - 19 </answer>", "<answer> 65 </answer>"],
                       numbers=[numbers] * 2, target=[target] * 2))
'''),
    md(r'''
## Combining rewards: `score`

`config.rl.rewards = {"accuracy": 1.0, "format": 1.0}` is a call of `score` per step; the
unweighted parts are what the run logs as `reward/accuracy`, `reward/format`. A reward
that raises on some completion scores 0 there and is counted in `errors/<name>` rather
than stopping training.
'''),
    code(r'''
from r1jax.rl import rewards

completions = ["<think> 7 + 8 = 15 , 4 + 3 + 1 = 8 </think> <answer> 85 </answer>",
               "<think> 7 + 8 = 15 </think> <answer> 84 </answer>",
               r"The answer is \boxed{85}.",
               "no idea"]
total, parts = rewards.score({"accuracy": 1.0, "format": 0.5, "language": 0.1},
                             [prompt] * len(completions), completions,
                             answer=["85"] * len(completions))
for c, t, a, f, l in zip(completions, total, parts["accuracy"], parts["format"],
                         parts["language"]):
    print(f"total {t:.2f} = 1.0*{a:.0f} + 0.5*{f:.0f} + 0.1*{l:.2f}   {c!r}")
print("registered rewards:", sorted(rewards.REWARDS))
'''),
    md(r'''
## Your turn

Edit the strings and rerun. A new reward is any function with the signature above;
registering it in `rewards.REWARDS` makes it usable by name in `config.rl.rewards` (in this
Python process).
'''),
    code(r'''
my_completion = r"<think> 12 * 12 = 144 </think> <answer> \frac{288}{2} </answer>"
my_gold = "144"

pred = extract_answer(my_completion)
print("extracted:", repr(pred), "| equal to gold:", math_equal(pred, my_gold),
      "| format:", format_reward([""], [my_completion])[0])


def brevity_reward(prompts, completions, **_):
    """1.0 for completions of at most 20 words, falling to 0 at 60."""
    return [min(1.0, max(0.0, (60 - len(c.split())) / 40)) for c in completions]


rewards.REWARDS["brevity"] = brevity_reward
print(rewards.score({"accuracy": 1.0, "brevity": 0.2}, [""], [my_completion],
                    answer=[my_gold]))
'''),
]

# ------------------------------------------------------------------- 04 HF checkpoints

HF = [
    md(r'''
# Hugging Face checkpoints in and out

`r1jax.models.hf` reads and writes the Hugging Face layout (`config.json` + safetensors)
for `deepseek_v3`, `qwen2` and `llama` models, with NumPy only (no torch needed):

    cfg, params = load_hf_checkpoint(path)          # any local checkpoint directory
    save_hf_checkpoint(cfg, params, out)            # loads in AutoModelForCausalLM

Set `HF_CHECKPOINT` (below, or in the environment) to a downloaded checkpoint, e.g.
`Qwen/Qwen2.5-0.5B-Instruct` or `deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B`. Left empty,
the notebook builds a tiny random Qwen2 checkpoint locally, so it runs offline.
'''),
    setup(),
    code(r'''
import importlib.util
import json
import shutil
import tempfile

HF_CHECKPOINT = os.environ.get("HF_CHECKPOINT", "")  # a local directory, or a Hub id
HAVE_TRANSFORMERS = all(importlib.util.find_spec(m) for m in ("torch", "transformers"))
TMP = Path(tempfile.mkdtemp(prefix="r1jax_hf_"))
print("transformers available:", HAVE_TRANSFORMERS)
'''),
    md(r'''
## A checkpoint

A Hub id is downloaded with `huggingface_hub` when that is installed. Without a
checkpoint we make one as the Hub would have it: a byte-level BPE `tokenizer.json` and a
small random Qwen2 model (written by `transformers` when installed, else by r1jax itself).
'''),
    code(r'''
import tokenizers as hf_tok

LOCAL = not HF_CHECKPOINT
if HF_CHECKPOINT and not Path(HF_CHECKPOINT).is_dir():
    from huggingface_hub import snapshot_download

    HF_CHECKPOINT = snapshot_download(HF_CHECKPOINT, allow_patterns=["*.json", "*.safetensors"])
if LOCAL:
    HF_CHECKPOINT = str(TMP / "tiny-qwen2")
    os.makedirs(HF_CHECKPOINT)
    bpe = hf_tok.Tokenizer(hf_tok.models.BPE())
    bpe.pre_tokenizer = hf_tok.pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = hf_tok.decoders.ByteLevel()
    trainer = hf_tok.trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=hf_tok.pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(["Natalia sold clips to 48 of her friends.", "What is 12 + 30?"] * 20,
                            trainer)
    bpe.save(f"{HF_CHECKPOINT}/tokenizer.json")
    Path(HF_CHECKPOINT, "tokenizer_config.json").write_text(
        json.dumps({"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}))
    shape = dict(vocab_size=320, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    if HAVE_TRANSFORMERS:
        import torch
        import transformers

        torch.manual_seed(0)
        transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**shape)).save_pretrained(HF_CHECKPOINT)
    else:
        from r1jax.models import init_params
        from r1jax.models.hf import config_from_hf, save_hf_checkpoint

        tiny = config_from_hf({"model_type": "qwen2", **shape})
        save_hf_checkpoint(tiny, init_params(tiny, jax.random.key(0)), HF_CHECKPOINT)
print(HF_CHECKPOINT, sorted(os.listdir(HF_CHECKPOINT)))
'''),
    md(r'''
## Load it

`load_hf_checkpoint` maps `config.json` to a `ModelConfig` and the tensors to r1jax's
parameter tree (input-first kernels, heads split out, layers stacked); FP8 block-scaled
weights (as DeepSeek-V3/R1 were released) are dequantised on the way. Pass
`dtype="bfloat16"` to halve the memory of a real model.
'''),
    code(r'''
import jax.numpy as jnp
import numpy as np

from r1jax.models import count_params, forward
from r1jax.models.hf import load_hf_checkpoint
from r1jax.tokenizers import load_tokenizer

cfg, params = load_hf_checkpoint(HF_CHECKPOINT)
tok = load_tokenizer(HF_CHECKPOINT)
heads = (f"{cfg.n_heads} heads, {cfg.n_kv_heads} KV heads" if cfg.attention == "gqa"
         else f"{cfg.n_heads} heads, MLA latent {cfg.kv_lora_rank}")
print(f"{cfg.name}: {cfg.n_layers} layers, dim {cfg.dim}, {heads}, vocab {cfg.vocab_size}, "
      f"{count_params(cfg)['total'] / 1e6:,.2f}M parameters ({cfg.param_dtype})")
print("tokenizer:", tok)
print("the full config: `cfg`, a frozen dataclass; cfg.replace(dtype='bfloat16') etc.")
'''),
    md(r'''
## Sample from it

`generate_text` prefills the prompts once, then decodes `n` samples per prompt in a
jitted `while_loop` over the KV cache (top-k / top-p / min-p, stop sequences). A random
model writes nonsense; a real one answers.
'''),
    code(r'''
from r1jax.sampling import SamplingParams, generate_text

prompts = ["Question: What is 12 + 30?\nAnswer:", "Natalia sold clips to"]
sp = SamplingParams(max_new_tokens=8 if FAST else 48, temperature=0.7, top_p=0.95, n=2,
                    vocab_limit=tok.vocab_size, seed=0)
for prompt, outs in zip(prompts, generate_text(cfg, params, tok, prompts, sp)):
    print(repr(prompt))
    for out in outs:
        print("   ->", repr(out))
'''),
    md(r'''
## Same logits as `transformers`?

Runs the checkpoint in PyTorch (when installed) and compares the next-token logits.
'''),
    code(r'''
ids = tok.encode("Natalia sold clips to 48 of her friends. What is 12 + 30?", add_bos=True)
ours = np.asarray(forward(cfg, params, jnp.asarray([ids])))[0]


def transformers_logits(path):
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


if HAVE_TRANSFORMERS:
    theirs = transformers_logits(HF_CHECKPOINT)
    diff = np.abs(ours - theirs).max()
    print(f"max |logit difference| over {len(ids)} positions: {diff:.2e}")
    if LOCAL:
        assert diff < 1e-4, diff
else:
    print("transformers / torch not installed: pip install torch transformers to compare")
'''),
    md(r'''
## Export

`save_hf_checkpoint` writes `config.json` and the weights in the released layout (sharded
with an index past `max_shard_bytes`); copy the tokenizer files alongside and the
directory loads with `AutoModelForCausalLM.from_pretrained`, vLLM, or r1jax again. This
is also how a trained r1jax run leaves the framework
(`python -m r1jax.tools.export_hf --workdir=... --out=...`).
'''),
    code(r'''
from r1jax.models.hf import save_hf_checkpoint

OUT = str(TMP / "export")
save_hf_checkpoint(cfg, params, OUT)
for f in os.listdir(HF_CHECKPOINT):
    if f.startswith(("tokenizer", "special_tokens", "vocab", "merges", "generation_config")):
        shutil.copy(Path(HF_CHECKPOINT, f), OUT)
print(sorted(os.listdir(OUT)))

cfg2, params2 = load_hf_checkpoint(OUT)
same = jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), params, params2)
assert all(jax.tree.leaves(same)), "a parameter changed on the round trip"
print("round trip through the export: every parameter identical")
if HAVE_TRANSFORMERS:
    print(f"transformers on the export: max |logit difference| "
          f"{np.abs(ours - transformers_logits(OUT)).max():.2e}")
'''),
]

NOTEBOOKS = {
    "01_quickstart.ipynb": QUICKSTART,
    "02_model_tour.ipynb": MODEL_TOUR,
    "03_rewards.ipynb": REWARDS,
    "04_hf_checkpoints.ipynb": HF,
}


def build(name: str) -> nbformat.NotebookNode:
  nb = nbformat.v4.new_notebook()
  nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                "language": "python"},
                 "language_info": {"name": "python"}}
  stem = name.split("_")[0]
  cells = [nbformat.from_dict(c) for c in NOTEBOOKS[name]]
  for i, cell in enumerate(cells):
    cell.id = f"nb{stem}-{i:02d}"  # stable ids: regenerating gives no diff
  nb.cells = cells
  nbformat.validate(nb)
  return nb


def text(nb) -> str:
  return nbformat.writes(nb) + "\n"


def _cells(nb) -> list:
  return [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in nb.cells]


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--check", action="store_true", help="compare instead of writing")
  args = p.parse_args(argv)
  stale = []
  for name in NOTEBOOKS:
    path = os.path.join(HERE, name)
    new = text(build(name))
    if args.check:  # compares the cells, not the bytes: nbformat versions format alike
      old = nbformat.read(path, as_version=4) if os.path.exists(path) else None
      if old is None or _cells(old) != _cells(nbformat.reads(new, as_version=4)):
        stale.append(name)
    else:
      with open(path, "w", encoding="utf-8") as f:
        f.write(new)
      print("wrote", path)
  if stale:
    print(f"out of date with notebooks/_build.py: {', '.join(stale)}; run "
          "python notebooks/_build.py", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
