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
# # Rule-based rewards
#
# R1-Zero learns from rewards computed by rules, not by a reward model (R1 §2.2.2). The
# functions in `r1jax.rewards` all have the signature
# `fn(prompts, completions, **dataset_fields) -> list[float]`, one value per completion,
# and `score` combines them by weight. This notebook tries each on hand-written strings;
# change them and rerun.

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
# ## Is the answer right? `extract_answer` and `math_equal`
#
# `extract_answer` takes the last `<answer>…</answer>`, else the last `\boxed{…}` (balanced
# braces), else `None`. `math_equal(pred, gold)` compares plain numbers exactly in-process
# and everything else with [math-verify](https://github.com/huggingface/Math-Verify)
# (LaTeX, fractions, sets, intervals, percentages), in a worker process with a hard
# deadline, so that no answer can hang training.

# %%
from IPython.display import Markdown, display

from r1jax.rewards import extract_answer, math_equal

for text in ["<think> 7 + 8 = 15 </think> <answer> 15 </answer>",
             r"so the answer is \boxed{\frac{1}{2}}.",
             r"first \boxed{3}, no wait: \boxed{\{1, 2\}}",
             "<answer>1</answer> ... <answer>2</answer>",
             "I do not know"]:
    print(f"{text!r:58} -> {extract_answer(text)!r}")

# %%
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

# %% [markdown]
# ## Is it well formatted? `format_reward`, `tag_count_reward`
#
# R1-Zero's template asks for `<think> reasoning </think> <answer> answer </answer>`.
# `format_reward` is 1.0 only for exactly that shape; `tag_count_reward` gives 0.25 per
# tag used exactly once, a denser signal for tiny models. When the prompt already ends in
# `<think>` (R1's chat template), the completion starts inside the think block.

# %%
from r1jax.data.templates import r1_zero_prompt
from r1jax.rewards import format_reward, tag_count_reward

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

# %% [markdown]
# ## Language consistency (R1 §2.3.2)
#
# R1-Zero's chains of thought mix languages; R1 adds the share of target-language words in
# the CoT to the reward.

# %%
from r1jax.rewards import language_consistency_reward

cots = ["<think> First add the units: 7 + 8 = 15, carry one. </think> <answer> 85 </answer>",
        "<think> 先算个位 7 + 8 = 15, then the tens. </think> <answer> 85 </answer>",
        "<think> 先算个位，再算十位。 </think> <answer> 85 </answer>",
        "<think> 7 + 8 = 15 , 4 + 3 + 1 = 8 </think> <answer> 85 </answer>"]
for lang in ("en", "zh"):
    print(lang, [round(v, 2) for v in language_consistency_reward([""] * len(cots), cots,
                                                                  language=lang)])

# %% [markdown]
# ## Countdown
#
# Reach a target from given numbers with + − × ÷, each number used once (TinyZero's task).
# The expression is parsed by a small exact-fraction parser, never `eval`.

# %%
from r1jax.rewards import countdown_reward
from r1jax.rewards.countdown import check_countdown

numbers, target = [19, 36, 55, 7], 65
for expr in ["55 + 36 - 7 - 19", "55 + 36 - 7 - 19 = 65", "(55 - 19) * 7 / 36 + 58",
             "55 + 7 + 19 - 36", "55 + 36 - 26", "2**99999999", "__import__('os')"]:
    print(f"{expr!r:28} {check_countdown(expr, numbers, target)}")
print(countdown_reward(["", ""], ["<answer> 55 + 36 - 7 - 19 </answer>", "<answer> 65 </answer>"],
                       numbers=[numbers] * 2, target=[target] * 2))

# %% [markdown]
# ## Combining rewards: `score`
#
# `config.rl.rewards = {"accuracy": 1.0, "format": 1.0}` is a call of `score` per step; the
# unweighted parts are what the run logs as `reward/accuracy`, `reward/format`. A reward
# that raises on some completion scores 0 there and is counted in `errors/<name>` rather
# than stopping training.

# %%
from r1jax import rewards

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

# %% [markdown]
# ## Your turn
#
# Edit the strings and rerun. A new reward is any function with the signature above;
# registering it in `rewards.REWARDS` makes it usable by name in `config.rl.rewards` (in this
# Python process).

# %%
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
