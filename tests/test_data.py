"""Synthetic tasks, JSONL loading with line-numbered errors, the resumable prompt iterator."""

import json
import random

import pytest

from r1jax.data import tasks
from r1jax.data.datasets import PromptIterator, load_prompts
from r1jax.data.jsonl import read_jsonl


def test_addition_cot_is_right():
  assert tasks.addition_cot(47, 38) == "7 + 8 = 15 , 4 + 3 + 1 = 8"
  assert tasks.addition_cot(95, 17) == "5 + 7 = 12 , 9 + 1 + 1 = 11"
  for a, b in [(10, 10), (99, 99), (55, 45)]:
    digits = [int(s.split("= ")[1]) % 10 for s in tasks.addition_cot(a, b).split(" , ")]
    last = int(tasks.addition_cot(a, b).split("= ")[-1])
    assert int(str(last // 10) + "".join(map(str, digits[::-1]))) == a + b


def test_held_out_split_is_disjoint_and_stable():
  train = {e["question"] for e in tasks.arithmetic_examples("train", 8000)}
  test = {e["question"] for e in tasks.arithmetic_examples("test", 1000)}
  assert not train & test
  assert 600 < len(test) < 1000  # ~10 % of the 8100 pairs
  again = tasks.arithmetic_examples("test", 5, seed=0)
  assert again == tasks.arithmetic_examples("test", 5, seed=0)
  assert tasks.arithmetic_examples("test", 5, seed=1) != again
  with pytest.raises(ValueError, match="split must be"):
    tasks.arithmetic_examples("dev", 3)


def test_base_document_noise_rates():
  ex = tasks.arithmetic_examples("train", 1)[0]
  rng = random.Random(0)
  docs = [tasks.base_document(ex, rng, p_format=0.5, p_correct=0.5) for _ in range(2000)]
  formatted = [d for d in docs if "<answer>" in d]
  correct = [d for d in docs if d.rstrip(" .").endswith(ex["answer"]) or
             f"<answer> {ex['answer']} </answer>" in d]
  assert 0.45 < len(formatted) / 2000 < 0.55
  assert 0.45 < len(correct) / 2000 < 0.55
  # the reasoning is always right and ends in the sum; only the reported answer is noisy
  assert all(f"{ex['cot']} , so {ex['answer']} " in d for d in docs)


def test_read_jsonl_names_the_bad_line(tmp_path):
  path = tmp_path / "d.jsonl"
  path.write_text(json.dumps({"question": "q", "answer": "1"}) + "\n"
                  + "{not json\n" + json.dumps({"question": "q2"}) + "\n"
                  + json.dumps({"question": "q3", "answer": "3"}) + "\n")
  with pytest.raises(ValueError, match=r"d\.jsonl:2: "):
    read_jsonl(str(path), ("question", "answer"))
  rows = read_jsonl(str(path), ("question", "answer"), on_error="skip")
  assert [r["answer"] for r in rows] == ["1", "3"]
  path.write_text(json.dumps({"question": "q"}) + "\n")
  with pytest.raises(ValueError, match=r"d\.jsonl:1: missing field\(s\) \['answer'\]"):
    load_prompts(str(path))
  with pytest.raises(FileNotFoundError, match="nope.jsonl"):
    read_jsonl(str(tmp_path / "nope.jsonl"), ())


def test_shipped_datasets_load():
  gsm = load_prompts("gsm8k:test")
  assert len(gsm) == 1319 and gsm[0]["answer"] == "18"
  assert all("," not in r["answer"] for r in gsm)
  assert len(load_prompts("math500")) == 500
  assert len(load_prompts("aime24")) == 30
  assert len(load_prompts("amc23")) == 40
  with pytest.raises(ValueError, match="unknown prompt dataset 'gsm9k'"):
    load_prompts("gsm9k")


def test_prompt_iterator_resumes_exactly():
  records = [{"question": str(i), "answer": str(i)} for i in range(10)]
  it = PromptIterator(records, 4, seed=3)
  next(it)
  state = it.get_state()
  expected = [next(it), next(it)]
  fresh = PromptIterator(records, 4, seed=3)
  fresh.set_state(state)
  assert [next(fresh), next(fresh)] == expected
  with pytest.raises(ValueError, match="empty"):
    PromptIterator([], 4, seed=0)


GOOD_ROW = {"question": "q", "answer": "1"}
HOSTILE_JSONL_LINES = {
    "binary_garbage": random.Random(0).randbytes(4096).replace(b"\n", b"\x00"),
    "ten_mb_unterminated": b'{"question": "' + b"x" * (10 << 20),
    "invalid_utf8": b'{"question": "caf\xe9", "answer": "1"}',  # Latin-1, not UTF-8
    "truncated_utf8": b'{"question": "\xe4\xb8", "answer": "1"}',
    "json_array": b'[{"question": "q", "answer": "1"}]',
    "json_string": b'"{\\"question\\": \\"q\\", \\"answer\\": \\"1\\"}"',
    "nested_200k": b"[" * 200_000,  # RecursionError in the JSON decoder
    "int_5000_digits": b'{"question": "q", "answer": ' + b"9" * 5_000 + b"}",
    "nul_bytes": b"\x00" * 100,
    "bom_in_the_middle_of_a_line": b'{"question": "q", \xef\xbb\xbf"answer": "1"}',
}


@pytest.mark.parametrize("name", HOSTILE_JSONL_LINES)
def test_read_jsonl_hostile_line(tmp_path, caplog, name):
  """A hostile line between two good ones: raise mode names it (file:line, without quoting
  it), skip mode keeps the good rows and counts it."""
  good = json.dumps(GOOD_ROW).encode()
  path = tmp_path / "d.jsonl"
  path.write_bytes(good + b"\n" + HOSTILE_JSONL_LINES[name] + b"\n" + good + b"\n")
  with pytest.raises(ValueError, match=r"d\.jsonl:2: ") as e:
    read_jsonl(str(path), ("question", "answer"))
  assert len(str(e.value)) < 500
  with caplog.at_level("WARNING"):
    rows = read_jsonl(str(path), ("question", "answer"), on_error="skip")
  assert rows == [GOOD_ROW, GOOD_ROW]
  assert "skipped 1 malformed line(s) of 3" in caplog.text


def test_read_jsonl_hostile_file(tmp_path):
  """Every hostile line at once, and a 10 MB line that is valid: skip mode keeps the valid
  rows and counts the rest; raise mode stops at the first bad line."""
  big = {"question": "x" * (10 << 20), "answer": "1"}
  lines = [json.dumps(GOOD_ROW).encode(), *HOSTILE_JSONL_LINES.values(), json.dumps(big).encode()]
  path = tmp_path / "d.jsonl"
  path.write_bytes(b"\n".join(lines))  # no final newline
  rows = read_jsonl(str(path), ("question", "answer"), on_error="skip")
  assert rows == [GOOD_ROW, big]
  with pytest.raises(ValueError, match=r"d\.jsonl:2: "):
    read_jsonl(str(path), ("question", "answer"))


def test_read_jsonl_byte_order_mark_and_line_endings(tmp_path):
  """A UTF-8 BOM (at the start, or where files were joined with cat) and CRLF endings are
  not malformed lines; a lone CR is not a line break."""
  good = json.dumps(GOOD_ROW).encode()
  path = tmp_path / "d.jsonl"
  path.write_bytes(b"\xef\xbb\xbf" + good + b"\r\n" + good + b"\r\n" + b"\xef\xbb\xbf" + good
                   + b"\n\xef\xbb\xbf\n")
  for on_error in ("raise", "skip"):
    assert read_jsonl(str(path), ("question", "answer"), on_error=on_error) == [GOOD_ROW] * 3
  path.write_bytes(good + b"\r" + good + b"\n")
  with pytest.raises(ValueError, match=r"d\.jsonl:1: Extra data"):
    read_jsonl(str(path), ("question", "answer"))
  assert read_jsonl(str(path), ("question", "answer"), on_error="skip") == []
