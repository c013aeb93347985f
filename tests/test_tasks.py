"""The synthetic tasks: solvable problems, disjoint held-out splits, reward wiring."""

import pytest

from r1jax.data import tasks
from r1jax.data.datasets import load_prompts
from r1jax.rewards import score
from r1jax.rewards.countdown import check_countdown


def _key(r):
  return tuple(sorted(r["numbers"])), r["target"]


def test_countdown_problems_are_solvable_distinct_and_held_out():
  train = tasks.countdown_examples("train", 3000, seed=0)
  test = tasks.countdown_examples("test", 300, seed=0)
  for r in train + test:
    assert check_countdown(r["answer"], r["numbers"], r["target"]), r  # checked by the reward's parser
    assert 1 <= r["target"] <= 999 and len(r["numbers"]) in (3, 4)
    assert str(r["numbers"]) in r["question"] and f"equals {r['target']}." in r["question"]
  assert len({_key(r) for r in train}) == 3000
  assert not {_key(r) for r in train} & {_key(r) for r in test}
  # the split does not depend on the seed: another seed's test problems are held out too
  other = tasks.countdown_examples("train", 3000, seed=1)
  assert not {_key(r) for r in other} & {_key(r) for r in tasks.countdown_examples("test", 300, seed=7)}
  assert tasks.countdown_examples("test", 5, seed=3) == tasks.countdown_examples("test", 5, seed=3)


def test_countdown_records_feed_the_countdown_reward():
  records = load_prompts("countdown:test", limit=4)
  assert set(records[0]) == {"question", "answer", "numbers", "target"}
  completions = [f"<think>try</think> <answer>{r['answer']}</answer>" for r in records[:2]]
  completions += ["<answer>1 + 1</answer>", "no answer"]
  total, parts = score({"countdown": 1.0}, [r["question"] for r in records], completions,
                       numbers=[r["numbers"] for r in records],
                       target=[r["target"] for r in records])
  assert total == [1.0, 1.0, 0.0, 0.0]


def test_bad_task_settings():
  with pytest.raises(ValueError, match="split must be"):
    tasks.countdown_examples("dev", 3)
  with pytest.raises(ValueError, match="could only make"):
    tasks.countdown_examples("train", 50, sizes=(2,), max_number=3)
  with pytest.raises(ValueError, match="bad countdown settings"):
    tasks.countdown_examples("train", 3, sizes=(1,))
