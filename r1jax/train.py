"""The one train loop: `python -m r1jax.train --config=configs/grpo_zero.py --workdir=...`.

`config.stage` picks the batch source and the loss; the update step is the same pure,
jitted function for every stage:

    pretrain / sft   token batches from text -> masked next-token loss (r1jax.stages.lm)
    grpo             rollouts scored by rewards -> GRPO policy loss (r1jax.stages.grpo)
    reward_model     preference pairs -> Bradley-Terry loss (r1jax.stages.reward_model)
    distill          teacher traces -> SFT (+ top-k logit KD) loss (r1jax.stages.distill)

Each run writes `<workdir>/metrics.jsonl`, TensorBoard events, orbax checkpoints and,
for a Hugging Face tokenizer, its tokenizer.json and tokenizer_config.json, and resumes
from its latest checkpoint when started again with the same workdir.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from tqdm import tqdm

from r1jax.data.tokenizers import HFTokenizer, load_tokenizer, tokenizer_spec
from r1jax.losses import LOSS_WEIGHT
from r1jax.models import ModelConfig, update_router_biases
from r1jax.models.loading import (check_same_model, init_weights, model_config,
                                  model_config_dict)
from r1jax.runtime import checkpoint as ckpt_lib
from r1jax.runtime import distributed, sharding
from r1jax.runtime.compilation import CompileLog, use_persistent_cache
from r1jax.runtime.metrics import MetricsWriter
from r1jax.runtime.optimizer import make_optimizer
from r1jax.stages.distill import DistillStage
from r1jax.stages.grpo import GRPOStage
from r1jax.stages.lm import LMStage, SFTStage
from r1jax.stages.reward_model import RewardModelStage

State = dict[str, Any]

# config.stage -> the stage class that feeds the loop (`r1jax.stages.base`). "sft" on the
# generated "tiny_base" documents is next-token training on text, as "pretrain" is.
STAGES = {"pretrain": LMStage, "sft": SFTStage, "grpo": GRPOStage,
          "reward_model": RewardModelStage, "distill": DistillStage}


def make_stage(config: ml_collections.ConfigDict, cfg: ModelConfig, tokenizer, mesh):
  """The stage object for `config.stage` (and, for "sft", config.data.source)."""
  if config.stage not in STAGES:
    raise ValueError(f"unknown config.stage={config.stage!r}; one of "
                     f"{', '.join(map(repr, STAGES))}")
  stage = STAGES[config.stage]
  if config.stage == "sft" and config.data.get("source", "tiny_base") == "tiny_base":
    stage = LMStage
  return stage(config, cfg, tokenizer, mesh)


def _split(batch: dict[str, jax.Array], k: int) -> dict[str, jax.Array]:
  """[B, ...] arrays -> [k, B/k, ...]: micro-batch i holds rows i, i + k, i + 2k, ..., so
  each device's rows (a contiguous block of the data-sharded batch) feed every micro-batch
  equally and nothing moves between devices."""
  B = jax.tree.leaves(batch)[0].shape[0]
  if B % k:
    raise ValueError(f"config.train.micro_batches={k} does not divide the batch of {B} rows")
  return jax.tree.map(lambda x: x.reshape(B // k, k, *x.shape[1:]).swapaxes(0, 1), batch)


# What the router-bias update reads of the model's aux (MTP logits and the like are
# not carried across micro-batches).
_ROUTER_LOADS = ("expert_load", "mtp_expert_load")


def make_train_step(cfg: ModelConfig, loss_fn, optimizer, *, micro_batches: int = 1,
                    state_shardings=None, metrics_sharding=None):
  """(state, batch) -> (state, metrics): one optimizer update; skipped if not finite.

  `loss_fn(params, batch) -> (loss, (metrics, model_aux))` with params = {"params",
  "buffers"}. MoE router biases move by the aux-loss-free rule from the step's loads.
  `micro_batches` > 1 accumulates the gradient over that many slices of the batch (a
  scan: activations of one slice at a time), each weighed by its metrics[LOSS_WEIGHT]
  (1 where the loss has none), so the update equals the whole batch's; metrics are the
  same weighted means (extremes for `*_max` and `*_min`).
  `state_shardings` (a tree like the state) pins the new state where the old one lives,
  so the step compiles once and parameters keep the sharding rules' layout.
  """
  if micro_batches < 1:
    raise ValueError(f"config.train.micro_batches={micro_batches} must be >= 1")

  def grads_of(params, buffers, batch):
    def f(p):
      return loss_fn({"params": p, "buffers": buffers}, batch)

    (loss, (metrics, aux)), grads = jax.value_and_grad(f, has_aux=True)(params)
    metrics = dict(metrics)
    weight = jnp.asarray(metrics.pop(LOSS_WEIGHT, 1.0), jnp.float32)
    loads = {k: aux[k] for k in _ROUTER_LOADS if k in aux}
    return weight, (loss, metrics, loads, grads)

  def accumulated(params, buffers, batch):
    """Σ_i w_i · (loss, metrics, grads)_i / Σ_i w_i over the micro-batches, and the mean of
    their router loads (which count every token, whatever the loss weighs)."""
    def body(carry, mb):
      total, acc, loads = carry
      w, (loss, metrics, mb_loads, grads) = grads_of(params, buffers, mb)
      acc = jax.tree.map(lambda a, x: a + w * x.astype(a.dtype), acc, (loss, metrics, grads))
      loads = jax.tree.map(lambda a, x: a + x / micro_batches, loads, mb_loads)
      return (total + w, acc, loads), metrics

    mbs = _split(batch, micro_batches)
    _, (loss, metrics, loads, grads) = jax.eval_shape(
        lambda: grads_of(params, buffers, jax.tree.map(lambda x: x[0], mbs)))
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, jnp.promote_types(s.dtype, jnp.float32)),
                         ((loss, metrics, grads), loads))
    (total, acc, loads), per_mb = jax.lax.scan(
        body, (jnp.zeros((), jnp.float32), *zeros), mbs)
    loss, metrics, grads = jax.tree.map(lambda a: a / total, acc)
    extreme = {"_max": jnp.max, "_min": jnp.min}
    metrics = {k: extreme[k[-4:]](per_mb[k]) if k[-4:] in extreme else v
               for k, v in metrics.items()}
    grads = jax.tree.map(lambda g, p: g.astype(p.dtype), grads, params)
    return loss, metrics, loads, grads

  def step(state: State, batch: dict[str, jax.Array]):
    if micro_batches == 1:
      _, (loss, metrics, aux, grads) = grads_of(state["params"], state["buffers"], batch)
    else:
      loss, metrics, aux, grads = accumulated(state["params"], state["buffers"], batch)
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)

    def update(_):
      updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
      buffers = (update_router_biases(cfg, state["buffers"], aux) if cfg.is_moe
                 else state["buffers"])
      return optax.apply_updates(state["params"], updates), opt_state, buffers

    # A branch, not a select between new and old: the skipped step costs nothing and the
    # update writes into the donated state (a select kept both, ~0.4x the parameters more
    # XLA temporaries on deepseek_v3_1b).
    params, opt_state, buffers = jax.lax.cond(
        finite, update, lambda _: (state["params"], state["opt_state"], state["buffers"]), None)
    new_state = dict(state, params=params, opt_state=opt_state, buffers=buffers,
                     step=state["step"] + 1,
                     skipped=state["skipped"] + (~finite).astype(jnp.int32))
    metrics = dict(metrics, loss=loss, grad_norm=grad_norm, skipped_steps=new_state["skipped"])
    return new_state, metrics

  out_shardings = None if state_shardings is None else (state_shardings, metrics_sharding)
  return jax.jit(step, donate_argnums=0, out_shardings=out_shardings)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  """Runs `config` in `workdir` (resuming if it holds a checkpoint); returns the last metrics.

  Parameters, optimizer state, batches and activations are laid out by the sharding rules:
  `sharding.DEFAULT_RULES` with `config.sharding_rules` applied ("q_lora:fsdp,...").
  """
  use_persistent_cache(config)
  with sharding.use_rules(sharding.rules_with(config.get("sharding_rules", ""))), \
      CompileLog() as compiles:
    return _train_and_evaluate(config, workdir, compiles)


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                        compiles: CompileLog) -> dict[str, float]:
  cfg = model_config(config)
  tokenizer = load_tokenizer(tokenizer_spec(config))
  if tokenizer.vocab_size > cfg.vocab_size:
    raise ValueError(f"tokenizer {config.tokenizer!r} has {tokenizer.vocab_size} ids but model "
                     f"{cfg.name!r} only {cfg.vocab_size}; pick a matching model or tokenizer")
  mesh = sharding.make_mesh(dict(config.mesh))
  stage = make_stage(config, cfg, tokenizer, mesh)
  if isinstance(tokenizer, HFTokenizer) and jax.process_index() == 0:
    # the run's tokenizer and chat template travel with it: a later stage, evaluation or
    # export reads them with tokenizer="from_checkpoint", init_from=<this workdir>
    tokenizer.save(workdir)
  optimizer = make_optimizer(config)
  checkpointer = ckpt_lib.Checkpointer(workdir, max_to_keep=config.train.get("keep_checkpoints", 2))

  rng = jax.random.key(config.seed)
  eval_rng = jax.random.fold_in(rng, 2**31 - 1)
  weights = init_weights(config, cfg, jax.random.fold_in(rng, 0), mesh)
  state: State = {"params": weights["params"], "buffers": weights["buffers"],
                  "opt_state": optimizer.init(weights["params"]),
                  "step": jnp.zeros((), jnp.int32), "skipped": jnp.zeros((), jnp.int32)}
  state.update(stage.extra_state(weights))
  # Scalars (step, optimizer counts) are made on one device; replicate them on the mesh.
  state = jax.tree.map(lambda x: x if isinstance(x.sharding, jax.sharding.NamedSharding)
                       else jax.device_put(x, sharding.replicated(mesh)), state)
  meta = {"model": model_config_dict(cfg), "config": config.to_json_best_effort()}
  if checkpointer.latest_step() is not None:
    saved_meta = checkpointer.restore_meta()
    check_same_model(saved_meta["model"], cfg, checkpointer.directory)
    state, saved_meta = checkpointer.restore(ckpt_lib.abstract(state))
    stage.set_data_state(saved_meta.get("data"))
    logging.warning("resumed from step %d in %s", int(state["step"]), workdir)

  train_step = make_train_step(cfg, stage.loss_fn, optimizer,
                               micro_batches=config.train.get("micro_batches", 1),
                               state_shardings=jax.tree.map(lambda x: x.sharding, state),
                               metrics_sharding=sharding.replicated(mesh))
  start, total = int(state["step"]), config.train.num_steps
  # Step `start`'s row (or the step-0 evaluation of a fresh run) is already in the log.
  writer = MetricsWriter(workdir, first_step=start + 1 if start else 0)
  if start == 0 and config.train.eval_every:  # the starting point, for the curves
    with sharding.activation_sharding(mesh):
      writer.write(0, stage.evaluate(state, jax.random.fold_in(eval_rng, 0)))
  # SIGTERM or a first Ctrl-C: finish the step, save it, stop. A second Ctrl-C stops at
  # once; the last complete checkpoint is kept (saving a half-updated state would not be).
  interrupted: list[int] = []

  def on_signal(signum, frame):
    if signum == signal.SIGINT and interrupted:
      raise KeyboardInterrupt
    interrupted.append(signum)
    logging.warning("%s: stopping after this step's checkpoint (Ctrl-C again to stop now)",
                    signal.Signals(signum).name)

  prev = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
  last: dict[str, float] = {}
  times: list[dict[str, float]] = []
  skipped_before, skipped_in_a_row = int(state["skipped"]), 0
  bar = tqdm(total=total, initial=start, desc=config.stage, dynamic_ncols=True,
             disable=jax.process_index() != 0)
  try:
    for step in range(start, total):
      t0, compiled_before, compile_s_before = time.perf_counter(), compiles.total, compiles.seconds
      state = stage.begin_step(state)
      with sharding.activation_sharding(mesh):  # traced steps split activations by batch
        batch, host_metrics = stage.next_batch(state, jax.random.fold_in(rng, step + 1))
        t_update = time.perf_counter()
        for i in range(stage.updates_per_batch):
          state, metrics = train_step(state, batch)
          if i == 0:  # what mismatch/* measures holds before the first update only
            before = {k: v for k, v in metrics.items() if k.startswith("mismatch/")}
      metrics = {k: float(v) for k, v in jax.device_get(dict(metrics, **before)).items()}
      metrics.update(host_metrics)
      metrics["time/update_s"] = time.perf_counter() - t_update
      metrics["time/step_s"] = time.perf_counter() - t0
      metrics["time/compile_s"] = compiles.seconds - compile_s_before
      metrics["time/compiles"] = float(compiles.total - compiled_before)
      times.append({k: v for k, v in metrics.items() if k.startswith("time/")})
      skipped_in_a_row = skipped_in_a_row + 1 if int(state["skipped"]) > skipped_before else 0
      skipped_before = int(state["skipped"])
      if skipped_in_a_row > config.train.get("max_consecutive_skips", 20):
        raise FloatingPointError(
            f"{skipped_in_a_row} consecutive updates skipped for a non-finite loss or gradient "
            f"(limit train.max_consecutive_skips); step {step + 1}'s metrics: {metrics}")
      done = step + 1
      if config.train.eval_every and (done % config.train.eval_every == 0 or done == total):
        with sharding.activation_sharding(mesh):
          metrics.update(stage.evaluate(state, jax.random.fold_in(eval_rng, done)))
      if done % config.train.log_every == 0 or done == total or "eval/accuracy" in metrics:
        writer.write(done, metrics)
        samples = stage.samples()
        if samples:
          writer.write_texts(done, "samples", samples)
      bar.set_postfix({k: f"{metrics[k]:.3g}" for k in stage.progress_keys if k in metrics})
      bar.update(1)
      last = metrics
      if done % config.train.save_every == 0 or done == total or interrupted:
        checkpointer.save(done, state, dict(meta, data=stage.data_state()), force=True)
      if interrupted:
        logging.warning("%s: saved step %d, stopping", signal.Signals(interrupted[0]).name, done)
        break
  finally:
    bar.close()
    for s, handler in prev.items():
      signal.signal(s, handler)
    checkpointer.close()
    writer.close()
  if times and jax.process_index() == 0:
    print(time_summary(config.stage, times, compiles))
  return last


def time_summary(stage: str, times: list[dict[str, float]], compiles: CompileLog) -> str:
  """One line on where a run's time went: median seconds per step and per phase, and
  what it compiled (programs lowered, and how often each; tracing + compiling seconds)."""
  median = lambda k: float(np.median([t[k] for t in times if k in t]))
  phases = [k for k in times[-1] if k.endswith("_s")
            and k not in ("time/step_s", "time/compile_s", "time/tokens_per_s")]
  parts = ", ".join(f"{k[5:-2]} {median(k):.2f}" for k in phases)
  programs = ", ".join(f"{name} ×{n}" for name, n in sorted(compiles.counts.items()))
  return (f"{stage}: {len(times)} steps, median {median('time/step_s'):.2f} s/step ({parts}); "
          f"compiled {compiles.total} programs in {compiles.seconds:.1f} s: {programs}")


def parse_flags(argv: list[str], prog: str = "r1jax.train") -> list[str]:
  """absl flag parsing where a bad `--config.*` override is one clear line, not a traceback.

  ml_collections raises AttributeError/KeyError (with its "did you mean" hint) for an
  unknown key, and absl a flags.Error for a value of the wrong type.
  """
  from absl import flags
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    raise SystemExit(f"{prog}: {e}") from None
  except (AttributeError, KeyError) as e:
    # e.g. AttributeError('\'betta\'\nDid you mean "beta" instead of "betta"?')
    msg = " ".join(str(e).replace("\\n", " ").replace("\\", "").replace("'", "").split())
    msg = msg.replace(" Did you", "; did you")
    overrides = " ".join(a for a in argv if a.startswith("--config."))
    raise SystemExit(f"{prog}: unknown config key {msg} (overrides: {overrides}); "
                     "--print_config shows the resolved config") from None


def run_cli(prog: str, run, what: str = "experiment") -> None:
  """The command line the r1jax entry points share: --config=<file> with ml-collections
  overrides, --workdir (default workdirs/<config name>) and --print_config; then
  run(config, workdir)."""
  from absl import app, flags
  from absl import logging as absl_logging
  from ml_collections import config_flags

  config_flags.DEFINE_config_file("config", None, f"{what} config file", lock_config=True)
  flags.DEFINE_string("workdir", None, "run directory (default: workdirs/<config name>)")
  flags.DEFINE_bool("print_config", False, "print the resolved config (overrides applied) and exit")
  flags.mark_flags_as_required(["config"])

  def main(argv):
    del argv
    config = flags.FLAGS.config
    if flags.FLAGS.print_config:
      print(config)
      return
    workdir = flags.FLAGS.workdir or os.path.join(
        "workdirs", os.path.splitext(os.path.basename(flags.FLAGS["config"].config_filename))[0])
    absl_logging.set_verbosity(absl_logging.WARNING)  # orbax is chatty at INFO
    use_persistent_cache(config)
    run(config, workdir)

  app.run(main, flags_parser=lambda argv: parse_flags(argv, prog=prog))


def _train_main(config: ml_collections.ConfigDict, workdir: str) -> None:
  distributed.initialize_from_env()  # a no-op unless SLURM / a TPU pod / R1JAX_* say so
  if distributed.is_main_process():
    print(f"r1jax: stage={config.stage} model={config.model} workdir={workdir} "
          f"({distributed.describe()})")
  train_and_evaluate(config, workdir)


if __name__ == "__main__":
  run_cli("r1jax.train", _train_main)
