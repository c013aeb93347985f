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
# # Hugging Face checkpoints in and out
#
# `r1jax.models.hf` reads and writes the Hugging Face layout (`config.json` + safetensors)
# for `deepseek_v3`, `qwen2` and `llama` models, with NumPy only (no torch needed):
#
#     cfg, params = load_hf_checkpoint(path)          # any local checkpoint directory
#     save_hf_checkpoint(cfg, params, out)            # loads in AutoModelForCausalLM
#
# Set `HF_CHECKPOINT` (below, or in the environment) to a downloaded checkpoint, e.g.
# `Qwen/Qwen2.5-0.5B-Instruct` or `deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B`. Left empty,
# the notebook builds a tiny random Qwen2 checkpoint locally, so it runs offline.

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

# %%
import importlib.util
import json
import shutil
import tempfile

HF_CHECKPOINT = os.environ.get("HF_CHECKPOINT", "")  # a local directory, or a Hub id
HAVE_TRANSFORMERS = all(importlib.util.find_spec(m) for m in ("torch", "transformers"))
TMP = Path(tempfile.mkdtemp(prefix="r1jax_hf_"))
print("transformers available:", HAVE_TRANSFORMERS)

# %% [markdown]
# ## A checkpoint
#
# A Hub id is downloaded with `huggingface_hub` when that is installed. Without a
# checkpoint we make one as the Hub would have it: a byte-level BPE `tokenizer.json` and a
# small random Qwen2 model (written by `transformers` when installed, else by r1jax itself).

# %%
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

# %% [markdown]
# ## Load it
#
# `load_hf_checkpoint` maps `config.json` to a `ModelConfig` and the tensors to r1jax's
# parameter tree (input-first kernels, heads split out, layers stacked); FP8 block-scaled
# weights (as DeepSeek-V3/R1 were released) are dequantised on the way. Pass
# `dtype="bfloat16"` to halve the memory of a real model.

# %%
import jax.numpy as jnp
import numpy as np

from r1jax.data.tokenizers import load_tokenizer
from r1jax.models import count_params, forward
from r1jax.models.hf import load_hf_checkpoint

cfg, params = load_hf_checkpoint(HF_CHECKPOINT)
tok = load_tokenizer(HF_CHECKPOINT)
heads = (f"{cfg.n_heads} heads, {cfg.n_kv_heads} KV heads" if cfg.attention == "gqa"
         else f"{cfg.n_heads} heads, MLA latent {cfg.kv_lora_rank}")
print(f"{cfg.name}: {cfg.n_layers} layers, dim {cfg.dim}, {heads}, vocab {cfg.vocab_size}, "
      f"{count_params(cfg)['total'] / 1e6:,.2f}M parameters ({cfg.param_dtype})")
print("tokenizer:", tok)
print("the full config: `cfg`, a frozen dataclass; cfg.replace(dtype='bfloat16') etc.")

# %% [markdown]
# ## Sample from it
#
# `generate_text` prefills the prompts once, then decodes `n` samples per prompt in a
# jitted `while_loop` over the KV cache (top-k / top-p / min-p, stop sequences). A random
# model writes nonsense; a real one answers.

# %%
from r1jax.sampling import SamplingParams, generate_text

prompts = ["Question: What is 12 + 30?\nAnswer:", "Natalia sold clips to"]
sp = SamplingParams(max_new_tokens=8 if FAST else 48, temperature=0.7, top_p=0.95, n=2,
                    vocab_limit=tok.vocab_size, seed=0)
for prompt, outs in zip(prompts, generate_text(cfg, params, tok, prompts, sp)):
    print(repr(prompt))
    for out in outs:
        print("   ->", repr(out))

# %% [markdown]
# ## Same logits as `transformers`?
#
# Runs the checkpoint in PyTorch (when installed) and compares the next-token logits.

# %%
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

# %% [markdown]
# ## Export
#
# `save_hf_checkpoint` writes `config.json` and the weights in the released layout (sharded
# with an index past `max_shard_bytes`); copy the tokenizer files alongside and the
# directory loads with `AutoModelForCausalLM.from_pretrained`, vLLM, or r1jax again. This
# is also how a trained r1jax run leaves the framework
# (`python -m r1jax.tools.export_hf --workdir=... --out=...`).

# %%
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
