"""SFT conversations: R1 chat rendering, the assistant-only mask, packing, epochs, bad input."""

import json
import logging

import jax
import numpy as np
import pytest

from configs import sft_cold_start, sft_stage2
from r1jax.data import conversations as C
from r1jax.data.templates import ASSISTANT, EOS, r1_chat_prompt
from r1jax.data.tokenizers import load_tokenizer
from r1jax.losses import LOSS_WEIGHT
from r1jax.losses.lm import make_lm_loss, token_batch
from r1jax.models import init_params, presets
from r1jax.models.hf import load_hf_checkpoint
from r1jax.runtime import sharding

TOK = load_tokenizer("r1jax_tiny")

MULTI_TURN = [
    {"role": "system", "content": "You add numbers."},
    {"role": "user", "content": "What is 47 + 38?"},
    {"role": "assistant", "content": "<think>\n7 + 8 = 15 , 4 + 3 + 1 = 8\n</think>\n\nIt is 85."},
    {"role": "user", "content": "And 12 + 30?"},
    {"role": "assistant", "content": "<think>\n2 + 0 = 2 , 1 + 3 = 4\n</think>\n\nIt is 42."},
    {"role": "user", "content": "Thanks!"},  # after the last answer: no loss, dropped
]


def _write(path, rows):
  path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
  return str(path)


def _masked_runs(ids, mask):
  """The texts of the maximal runs of trained tokens."""
  runs, cur = [], []
  for i, m in zip(ids + [None], mask + [0]):
    if m:
      cur.append(i)
    elif cur:
      runs.append(TOK.decode(cur))
      cur = []
  return runs


def test_rendering_follows_the_r1_chat_template():
  pieces = C.chat_pieces(MULTI_TURN)
  text = "".join(t for _, t in pieces)
  # history as r1_chat_prompt renders it (the first answer loses its reasoning), then the
  # answer being learned with its reasoning
  assert text == (r1_chat_prompt(MULTI_TURN[:4], add_generation_prompt=False) + ASSISTANT
                  + MULTI_TURN[4]["content"] + EOS)
  assert [k for k, _ in pieces] == ["prompt", "answer", "eos"] * 2
  assert pieces[1][1] == "\n\nIt is 85."
  # the tokens before the last answer are the generation prompt minus its prefilled
  # <think>, with the tokenizer's bos and eos ids for R1's BOS and EOS strings
  ids, mask = C.tokenize(MULTI_TURN, TOK)
  gen_prompt = r1_chat_prompt(MULTI_TURN[:4]).removesuffix("<think>\n")
  n_prompt = len(ids) - len(TOK.encode(MULTI_TURN[4]["content"])) - 1
  assert TOK.decode(ids[:n_prompt]) == gen_prompt.replace(C.BOS, "<s>").replace(EOS, "</s>")
  assert ids[0] == TOK.bos_id and ids[-1] == TOK.eos_id


def test_mask_covers_exactly_the_last_assistant_answer():
  row = {"system": "Be brief.", "prompt": "What is 2 + 3?",
         "completion": "<think>\n2 + 3 = 5\n</think>\n\n5"}
  # the first answer is context without its reasoning, as at inference: no loss on it
  for msgs, answers in [(MULTI_TURN, [MULTI_TURN[4]["content"]]),
                        (C.to_messages(row), [row["completion"]])]:
    ids, mask = C.tokenize(msgs, TOK)
    assert len(ids) == len(mask) and mask[0] == 0
    assert _masked_runs(ids, mask) == [a + "</s>" for a in answers]
    prompt_text = TOK.decode([i for i, m in zip(ids, mask) if not m])
    for m in msgs:
      if m["role"] != "assistant" and m is not MULTI_TURN[-1]:
        assert m["content"] in prompt_text
    assert "Thanks!" not in TOK.decode(ids)
  assert "It is 85.</s>" in TOK.decode([i for i, m in zip(*C.tokenize(MULTI_TURN, TOK)) if not m])


def test_row_formats():
  chat = C.to_messages({"prompt": [{"role": "user", "content": "Hi"}],
                        "completion": [{"role": "assistant", "content": "Hello",
                                        "reasoning_content": "greet back"}]})
  assert chat == [{"role": "user", "content": "Hi"},
                  {"role": "assistant", "content": "<think>\ngreet back\n</think>\n\nHello"}]
  with pytest.raises(ValueError, match="needs 'messages' or 'prompt' and 'completion'"):
    C.to_messages({"question": "x"})


def test_pack_first_fit():
  assert C.pack([5, 4, 3, 2, 6, 1], 8) == [[0, 2], [1, 3, 5], [4]]
  # with one open row, a closed row is never filled again
  assert C.pack([5, 4, 3, 2, 6, 1], 8, window=1) == [[0], [1, 2], [3, 4], [5]]
  assert C.pack([8, 8], 8) == [[0], [1]]
  with pytest.raises(ValueError, match="item 1 has length 9"):
    C.pack([3, 9], 8)


def test_packed_batch_layout():
  a, b = ([2, 10, 11], [0, 1, 1]), ([2, 12], [0, 1])
  batch = C.packed_batch([[a, b], [b]], 6, pad_id=0, batch_size=3)
  np.testing.assert_array_equal(batch["tokens"], [[2, 10, 11, 2, 12, 0], [2, 12, 0, 0, 0, 0],
                                                  [0] * 6])
  np.testing.assert_array_equal(batch["segment_ids"], [[1, 1, 1, 2, 2, 0], [1, 1, 0, 0, 0, 0],
                                                       [0] * 6])
  np.testing.assert_array_equal(batch["positions"], [[0, 1, 2, 0, 1, 0], [0, 1, 0, 0, 0, 0],
                                                     [0] * 6])
  np.testing.assert_array_equal(batch["loss_mask"], [[0, 1, 1, 0, 1, 0], [0, 1, 0, 0, 0, 0],
                                                     [0] * 6])


@pytest.mark.parametrize("n_mtp", [0, 1])
def test_packed_loss_equals_one_conversation_per_row(n_mtp):
  if n_mtp:  # MTP targets must stay within their conversation too
    cfg = presets.get("deepseek_v3_tiny", n_mtp_modules=n_mtp)
    params = init_params(cfg, jax.random.key(0))
  else:  # the shipped base: trained weights, so token accuracy is not trivially 0
    cfg, params = load_hf_checkpoint(sft_cold_start.get_config().init_from)
  convs = (C.arithmetic_conversations("train", 5) + C.general_conversations("train", 6)
           + [MULTI_TURN])
  examples = [C.tokenize(m, TOK) for m in convs]
  seq_len = 192
  packed = C.packed_batches(examples, seq_len, 8, TOK.pad_id)  # 5 rows + 3 empty ones
  assert len(packed) == 1 and (packed[0]["segment_ids"].max(1)[:5] >= 2).all()  # really packed
  unpacked = token_batch([e[0] for e in examples], [e[1] for e in examples], seq_len, TOK.pad_id)
  loss_fn = jax.jit(make_lm_loss(cfg))
  _, (got, _) = loss_fn(params, packed[0])
  _, (want, _) = loss_fn(params, unpacked)
  # (LOSS_WEIGHT: the targets counted, for gradient accumulation)
  assert set(got) == set(want) == ({"nll", "token_accuracy", LOSS_WEIGHT}
                                   | ({"mtp_loss"} if n_mtp else set()))
  for k in want:
    np.testing.assert_allclose(float(got[k]), float(want[k]), rtol=1e-5, atol=1e-6, err_msg=k)
  # the masks count the same targets: packing neither loses nor adds any
  assert packed[0]["loss_mask"].sum() == unpacked["loss_mask"].sum()
  # control: without the segment ids, attention crosses conversations and the loss moves
  leaky = dict(packed[0], segment_ids=np.minimum(packed[0]["segment_ids"], 1))
  _, (leaked, _) = loss_fn(params, leaky)
  assert abs(float(leaked["nll"]) - float(want["nll"])) > 1e-3


def test_iterator_epochs_and_resume():
  examples = [([2] + [100 + i] * (3 + i % 5), [0] + [1] * (3 + i % 5)) for i in range(30)]
  it = C.ConversationIterator(examples, batch_size=2, seq_len=16, pad_id=0, seed=3)
  per_epoch = it.batches_in_epoch(0)
  orders = []
  for epoch in range(3):
    seen = []
    for _ in range(it.batches_in_epoch(epoch)):
      batch = next(it)
      assert batch["tokens"].shape == (2, 16)
      starts = (batch["positions"] == 1) & (batch["segment_ids"] > 0)
      seen += batch["tokens"][starts].tolist()
    assert sorted(seen) == list(range(100, 130))  # every conversation once an epoch
    assert it.progress == epoch + 1
    orders.append(seen)
  assert orders[0] != orders[1]  # reshuffled each epoch
  state = dict(it.get_state())
  ahead = [next(it) for _ in range(per_epoch + 1)]
  again = C.ConversationIterator(examples, batch_size=2, seq_len=16, pad_id=0, seed=3)
  again.set_state(state)
  for want in ahead:
    jax.tree.map(np.testing.assert_array_equal, next(again), want)


def test_overflow(caplog):
  long = ([2] + [9] * 10, [0] + [1] * 10)
  prompt_only = ([2] + [8] * 8 + [9] * 2, [0] * 9 + [1] * 2)
  ok = ([2, 9], [0, 1])
  with caplog.at_level(logging.WARNING):
    out = C.fit_to_length([long, prompt_only, ok], 6, "truncate", source="x.jsonl")
  assert out == [([2] + [9] * 5, [0] + [1] * 5), ok]
  assert "2 of 3 conversations are longer than seq_len=6: truncated (1 dropped" in caplog.text
  assert C.fit_to_length([long, ok], 6, "drop") == [ok]
  with pytest.raises(ValueError, match="no conversation fits in seq_len=6"):
    C.fit_to_length([long], 6, "drop")
  with pytest.raises(ValueError, match="overflow='cut'"):
    C.fit_to_length([ok], 6, "cut")


def test_bad_input(tmp_path, caplog):
  good = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}
  no_answer = {"messages": [{"role": "user", "content": "Hi"}]}
  tool = {"messages": [{"role": "tool", "content": "x"}, {"role": "assistant", "content": "y"}]}
  path = _write(tmp_path / "a.jsonl", [good, "{not json", no_answer, tool, good])
  with pytest.raises(ValueError, match=r"a.jsonl:2: "):
    C.load_conversations(path)
  with pytest.raises(ValueError, match=r"b.jsonl:5: .*unknown role 'tool'.*on_error='skip'"):
    C.load_conversations(_write(tmp_path / "b.jsonl", [good, no_answer, "", good, tool]))
  with caplog.at_level(logging.WARNING):
    convs = C.load_conversations(path, on_error="skip")
  assert len(convs) == 2
  assert "skipped 2 malformed or invalid conversation(s) of 5" in caplog.text
  assert "skipped 1 conversation(s) without an assistant turn" in caplog.text
  with pytest.raises(ValueError, match="none of its 2 conversations has an assistant turn"):
    C.load_conversations(_write(tmp_path / "c.jsonl", [no_answer, no_answer]))
  with pytest.raises(ValueError, match="holds no conversations"):
    C.load_conversations(_write(tmp_path / "d.jsonl", []))
  with pytest.raises(ValueError, match="needs 'messages' or 'prompt'"):
    C.load_conversations(_write(tmp_path / "e.jsonl", [{"text": "x"}]))
  with pytest.raises(ValueError, match="unknown conversation source 'gsm8k'"):
    C.load_conversations("gsm8k")
  with pytest.raises(ValueError, match="tiny_cold_start:train or tiny_cold_start:test"):
    C.load_conversations("tiny_cold_start:dev")
  with pytest.raises(FileNotFoundError):
    C.load_conversations(str(tmp_path / "missing.jsonl"))


def test_configs_build_their_stages(tmp_path):
  from r1jax import train
  from r1jax.stages import lm as stages

  cfg = presets.get("deepseek_v3_tiny")
  mesh = sharding.make_mesh({"data": -1, "fsdp": 1, "expert": 1, "tensor": 1})
  c = sft_stage2.get_config()
  stage = train.make_stage(c, cfg, TOK, mesh)
  assert isinstance(stage, stages.SFTStage) and len(stage.train_iter.examples) == 8000
  assert stage.eval_batches and stage.eval_batches[0]["tokens"].shape == (32, 256)
  # a JSONL source with a held-out fraction; "tiny_base" stays the pretraining text
  c = sft_cold_start.get_config()
  c.data.source = str(tmp_path / "cold.jsonl")
  C.write_jsonl(c.data.source, C.arithmetic_conversations("train", 40))
  c.data.eval_source, c.data.eval_fraction = "", 0.25
  stage = train.make_stage(c, cfg, TOK, mesh)
  assert len(stage.train_iter.examples) == 30 and len(stage.eval_batches) == 1
  c.data.source = "tiny_base"
  c.data.update(num_train=8, num_eval=8, p_format=0.5, p_correct=0.5)
  assert isinstance(train.make_stage(c, cfg, TOK, mesh), stages.LMStage)


def test_packed_mtp_loss_is_mtp_loss_for_one_sequence_per_row():
  from r1jax.losses.lm import packed_mtp_loss
  from r1jax.models import mtp_loss

  rng = np.random.default_rng(0)
  logits = rng.normal(size=(2, 3, 10, 7)).astype(np.float32)
  tokens = rng.integers(0, 7, (3, 10))
  mask = rng.integers(0, 2, (3, 10))
  want = mtp_loss(logits, tokens, mask, 0.3)
  np.testing.assert_allclose(packed_mtp_loss(logits, tokens, mask, np.ones_like(mask), 0.3),
                             want, rtol=1e-6)
  # a second sequence from column 5 on: targets across the boundary no longer count
  seg = np.where(np.arange(10) < 5, 1, 2)[None].repeat(3, 0)
  assert not np.isclose(packed_mtp_loss(logits, tokens, mask, seg, 0.3), want)
