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
# # A tour of the DeepSeek-V3 model
#
# `r1jax.models` builds DeepSeek-V3 / R1 (Multi-head Latent Attention, DeepSeekMoE with
# auxiliary-loss-free balancing, multi-token prediction) and the dense Qwen2 / Llama students
# from one `ModelConfig`. This notebook looks at
#
# 1. the 671B model's parameter counts, from shapes alone (nothing is allocated);
# 2. why MLA's latent cache makes a 128k context affordable;
# 3. how the tiny MoE routes tokens, and how the router bias balances the experts' loads.

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
# ## 1. Parameters of DeepSeek-V3 / R1
#
# `count_params` traces `init_params` with `jax.eval_shape`, so the 671B model costs no
# memory. "activated" counts what one token touches: every weight but the 248 of 256
# routed experts it is not sent to (V3 Table 1: 671B total, 37B activated).

# %%
import functools

import jax
import numpy as np
from IPython.display import Markdown, display

from r1jax.models import count_params, forward, init_cache, init_params, presets

big = presets.get("deepseek_v3_671b")
counts = count_params(big)
for k, v in counts.items():
    print(f"{k:>16}: {v / 1e9:8.2f} B")


# %%
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

# %% [markdown]
# ## 2. The KV cache: MLA's latent vs. full multi-head K/V
#
# Decoding keeps, for every past token and layer, what attention needs to look back at.
# Standard multi-head attention caches a key and a value per head:
# `n_heads · (qk_head_dim + v_head_dim)` values (that is 2 · heads · head_dim when keys and
# values have the same width). MLA (DeepSeek-V2 §2.1) caches only the compressed latent
# `c_kv` (`kv_lora_rank`) and the shared RoPE key `k_pe` (`qk_rope_head_dim`); the up
# projections to per-head keys and values are absorbed into the query and output
# projections at decode time. `ModelConfig.cache_width_per_token` is that width.

# %%
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

# %% [markdown]
# The same for the tiny model, measured on the arrays `init_cache` allocates (what the
# sampler decodes with):

# %%
tiny = presets.get("deepseek_v3_tiny")
MAX_LEN = 2048
cache = init_cache(tiny, batch=1, max_len=MAX_LEN, dtype=jax.numpy.bfloat16)
for path, leaf in jax.tree_util.tree_flatten_with_path(cache)[0]:
    print(f"{jax.tree_util.keystr(path):<32} {str(leaf.shape):<22} {leaf.dtype}")
kv_bytes = sum(leaf.nbytes for path, leaf in jax.tree_util.tree_flatten_with_path(cache)[0]
               if path[0].key not in ("segment_ids", "positions"))  # per slot, not per layer
expected = tiny.cache_width_per_token * tiny.n_layers * MAX_LEN * BYTES
assert kv_bytes == expected, (kv_bytes, expected)
print(f"\nlatent cache: {kv_bytes / 2**10:.0f} KiB for {MAX_LEN} tokens "
      f"({tiny.cache_width_per_token} values/token/layer); MHA K/V would take "
      f"{mha_width(tiny) * tiny.n_layers * MAX_LEN * BYTES / 2**10:.0f} KiB "
      f"({mha_width(tiny)} values/token/layer)")

# %% [markdown]
# ## 3. Routing in the tiny MoE
#
# Each MoE layer scores every token against 16 routed experts (sigmoid affinities), adds a
# per-expert bias, keeps the best 2 of 4 expert groups and sends the token to the top 4
# experts there (V3 §2.1.2). `forward(..., return_aux=True)` reports each layer's
# `expert_load` (tokens per expert). We take the shipped tiny base model and a batch of
# R1-Zero prompts.

# %%
import matplotlib.pyplot as plt

from r1jax.data.datasets import load_prompts
from r1jax.data.templates import prompt_format
from r1jax.data.tokenizers import load_tokenizer
from r1jax.models import update_router_biases
from r1jax.models.hf import load_hf_checkpoint

cfg, params = load_hf_checkpoint(str(Path(r1jax.__file__).parent / "assets" / "tiny_base"))
tok = load_tokenizer("r1jax_tiny")
BATCH = 4 if FAST else 16
pool = load_prompts("arithmetic:train", limit=BATCH * (2 if FAST else 8), seed=0)
ids = [tok.encode(prompt_format("r1_zero").question(r["question"]), add_bos=True) for r in pool]
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

# %% [markdown]
# ### Auxiliary-loss-free balancing
#
# Instead of a balance loss that fights the language-modelling gradient, V3 moves each
# expert's router bias after every step: `b_i += γ · sign(mean load − load_i)`
# (`update_router_biases`, which the train step applies). The bias only steers which
# experts are selected, never the gate values. Below only the biases move (weights frozen),
# over batches of prompts; γ is raised from V3's 0.001 to 0.01 so that a few dozen steps
# suffice. The imbalance is MaxVio = max load / mean load − 1. Once the loads are level, the
# sign rule keeps each bias stepping ±γ around its balance point, which is why V3 uses a
# small γ.

# %%
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

# %% [markdown]
# ## More
#
# * `presets.get("deepseek_v3_tiny", moe_dispatch="ragged")`: the same routing with
#   dropless grouped matmuls (`jax.lax.ragged_dot`); `"capacity"` buckets tokens per expert.
# * `cfg.n_mtp_modules=1` adds the multi-token-prediction module; its logits come back in
#   `aux["mtp_logits"]`.
# * `r1jax/models/transformer.py`, `attention.py` and `moe.py` are short and cite the
#   paper equations they implement.
