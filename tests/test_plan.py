"""r1jax.plan: exact per-device bytes from shapes, clear errors, and XLA agreeing."""

import importlib.util
import os
import subprocess
import sys

import jax
import pytest

from configs import grpo_zero, pretrain_tiny
from r1jax.recipe import plan

V5P_256 = dict(data=1, fsdp=32, expert=8, tensor=1)


def _grpo_671b(**rl):
  c = grpo_zero.get_config()
  c.model = "deepseek_v3_671b"
  c.rl.prompts_per_step, c.rl.num_generations = 32, 8  # 256 rollouts, one per device
  c.rl.max_new_tokens, c.rl.beta = 40, 0.001
  c.rl.update(rl)
  return c


def test_parse_mesh():
  assert plan.parse_mesh("data:1,fsdp:32,expert:8,tensor:1") == V5P_256
  assert plan.parse_mesh("fsdp:-1") == {"fsdp": -1}
  with pytest.raises(ValueError, match="'fsdp=2' is not axis:size"):
    plan.parse_mesh("fsdp=2")


def test_671b_on_256_chips_from_shapes_alone():
  before = sum(x.nbytes for x in jax.live_arrays())
  r = plan.plan(_grpo_671b(), V5P_256, device_memory_gb=95, prompt_len=128)
  assert sum(x.nbytes for x in jax.live_arrays()) - before < 10**6  # nothing allocated
  lines = {x.name: x for x in r["lines"] + r["train_lines"] + r["rollout_lines"]}
  params = lines["parameters (float32)"].bytes
  # the expert weights alone: [58, 256, 7168, 2048] float32 split 256 ways, three of them
  assert params > 3 * 58 * 7168 * 2048 * 4
  assert lines["optimizer state (AdamW mu, nu)"].bytes == pytest.approx(2 * params, abs=64)
  assert lines["reference model (KL, beta>0)"].bytes >= params
  assert lines["rollout cache"].bytes == 61 * 168 * 576 * 2 + 168 * 8  # one row per device
  assert all(lines[k].how == plan.EXACT for k in ("parameters (float32)", "rollout cache"))
  assert lines["activations, remat=full"].how == plan.ESTIMATE
  # The rules split the MLA up-projections over fsdp (replicated they led this list at
  # 8.8 GB per chip), so the expert weights are the largest per device.
  assert all("['moe']" in name for name, *_ in r["largest"]), r["largest"]
  # weights, AdamW state and the reference take ~50 GB; with 168-token rows the step fits
  assert r["verdict"] == "fits" and 40e9 < r["persistent"] < r["peak"] <= 95e9
  text = plan.format_report(r)
  assert "FITS on 256 x 95 GB" in text and "exact" in text and "estimate" in text
  # two rows per chip of R1-Zero's long rollouts (1,024 new tokens) do not
  long = plan.plan(_grpo_671b(max_new_tokens=1024, prompts_per_step=64), V5P_256,
                   device_memory_gb=95, prompt_len=256)
  assert long["verdict"] == "does not fit" and long["peak"] > r["peak"]
  # the head scores only the 1,024 completion positions of each row's 1,279, and in chunks
  # of 256 keeps 256 of them
  chunked = plan.plan(_grpo_671b(max_new_tokens=1024, prompts_per_step=64, logprob_chunk=256),
                      V5P_256, device_memory_gb=95, prompt_len=256)
  act = lambda r: next(x.bytes for x in r["train_lines"] if x.name.startswith("activations"))
  logits = 3 * 2 * 129280 * 4  # float32 logits, log-softmax and gradient, 2 rows per chip
  assert act(long) - act(chunked) == pytest.approx(logits * (1024 - 256), rel=1e-6)


def test_rules_that_split_every_weight_256_ways():
  r = plan.plan(_grpo_671b(), V5P_256, device_memory_gb=110, prompt_len=128,
                rules="embed:fsdp+expert,q_lora:fsdp,kv_lora:fsdp")
  # 671B + 11.6B MTP in float32 over 256 devices is 10.7 GB; the rest is what fsdp×expert
  # cannot split (norms, the router, o_proj's head dims).
  assert 10.6e9 < r["lines"][0].bytes < 11.2e9
  assert r["persistent"] < 45e9  # vs 103 GB with the default rules
  assert r["verdict"] == "fits", plan.format_report(r)
  assert "(a what-if: set config.sharding_rules" in plan.format_report(r)
  # the same table as the run's own config.sharding_rules (what r1jax.train reads)
  c = _grpo_671b()
  c.sharding_rules = "embed:fsdp+expert,q_lora:fsdp,kv_lora:fsdp"
  own = plan.plan(c, V5P_256, device_memory_gb=110, prompt_len=128)
  assert own["persistent"] == r["persistent"]
  assert "(config.sharding_rules)" in plan.format_report(own)


@pytest.mark.parametrize("axes, overrides, match", [
    (dict(expert=512), {},
     r"n_routed_experts=256 is not divisible by the expert mesh axis \(512\)"),
    (dict(tensor=256), {}, r"n_heads=128 is not divisible by the tensor mesh axis \(256\)"),
    (V5P_256, dict(prompts_per_step=16),
     r"batch size 128 is not divisible by data×fsdp×expert = 1×32×8 = 256"),
    (V5P_256, dict(max_new_tokens=200_000), r"exceeds the context of 'deepseek_v3_671b'"),
])
def test_clear_errors(axes, overrides, match):
  with pytest.raises(ValueError, match=match):
    plan.plan(_grpo_671b(**overrides), axes, prompt_len=128)


def test_mesh_must_match_the_real_devices():
  with pytest.raises(ValueError, match=r"has 16 devices, but 8 are available"):
    plan.plan(_grpo_671b(), dict(fsdp=16), compile="devices", prompt_len=128)


def test_671b_train_step_lowers_for_an_abstract_mesh():
  r = plan.plan(_grpo_671b(), V5P_256, prompt_len=32, compile="lower")
  assert r["xla"] == {"lowered": 1.0}


def _tiny_lm():
  c = pretrain_tiny.get_config()
  c.data.batch_size, c.data.seq_len = 8, 32
  c.model_overrides.n_layers = 2  # 1 dense + 1 MoE block: a quicker compile
  return c


def test_tiny_compiled_on_8_devices_matches_the_exact_bytes():
  r = plan.plan(_tiny_lm(), dict(fsdp=2, expert=2, tensor=2), compile="devices",
                device_memory_gb=1)
  xla = r["xla"]
  batch = next(x.bytes for x in r["train_lines"] if x.name == "train batch")
  # XLA's arguments are the state and the batch: what the plan computed from shapes,
  # plus the step counters and the optimizer's scalar counts.
  assert 0 <= xla["arguments"] - (r["persistent"] + batch) <= 64
  assert xla["aliased"] > 0.9 * r["persistent"]  # the state is donated
  assert r["train_peak"] == xla["peak"] and r["verdict"] == "fits"


@pytest.mark.skipif(importlib.util.find_spec("libtpu") is None
                    and not os.environ.get("TPU_LIBRARY_PATH"), reason="needs libtpu")
def test_tiny_compiled_for_a_tpu_slice_that_is_not_attached():
  r = plan.plan(_tiny_lm(), dict(fsdp=2, expert=2), compile="tpu", topology="v5p:2x2x1",
                device_memory_gb=95)
  assert r["xla"]["peak"] > r["persistent"] and r["verdict"] == "fits"


def test_cli():
  root = os.path.dirname(os.path.dirname(__file__))
  run = lambda *args: subprocess.run(
      [sys.executable, "-m", "r1jax.plan", "--config=configs/grpo_zero.py",
       "--config.model=deepseek_v3_671b", "--prompt_len=128", *args],
      cwd=root, capture_output=True, text=True, timeout=120)
  ok = run("--mesh=data:1,fsdp:32,expert:8,tensor:1", "--config.rl.prompts_per_step=32",
           "--config.rl.num_generations=8", "--device_memory_gb=95")
  assert ok.returncode == 0, ok.stderr
  assert "verdict: FITS on 256 x 95 GB" in ok.stdout
  bad = run("--mesh=data:1,fsdp:32,expert:8,tensor:1", "--config.rl.prompts_per_step=16",
            "--config.rl.num_generations=8")
  assert bad.returncode != 0
  assert "r1jax.plan: batch size 128 is not divisible" in bad.stderr
  assert "Traceback" not in bad.stderr


@pytest.mark.parametrize("doc", ["README.md", "experiments/launch/README.md"])
def test_the_documented_plan_command_runs(doc):
  import shlex
  root = os.path.dirname(os.path.dirname(__file__))
  text = open(os.path.join(root, doc)).read().replace("\\\n", " ")
  line = next(l for l in text.splitlines() if l.startswith("python -m r1jax.plan "))
  out = subprocess.run([sys.executable, *shlex.split(line)[1:]], cwd=root, capture_output=True,
                       text=True, timeout=120)
  assert out.returncode == 0, out.stderr
  assert "verdict:" in out.stdout
