"""Prompt templates: R1-Zero's text verbatim from the paper, R1's chat layout, input errors."""

import pytest

from r1jax.data import templates
from r1jax.data.templates import R1_ZERO_TEMPLATE, r1_chat_prompt, r1_zero_prompt

# DeepSeek-R1, Table 1, typed from the paper.
PAPER_TABLE_1 = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then "
    "provides the user with the answer. The reasoning process and answer are enclosed within "
    "<think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning process "
    "here </think> <answer> answer here </answer>. User: prompt. Assistant:")


def test_r1_zero_template_is_the_papers():
  assert R1_ZERO_TEMPLATE.replace("{prompt}", "prompt") == PAPER_TABLE_1
  assert R1_ZERO_TEMPLATE.count("{prompt}") == 1
  q = "How many primes are below 10?"
  assert r1_zero_prompt(q) == PAPER_TABLE_1.replace("User: prompt.", f"User: {q}.")
  assert r1_zero_prompt(f"  {q}\n") == r1_zero_prompt(q)
  assert r1_zero_prompt(q).endswith("below 10?. Assistant:")


def test_r1_zero_prefill_think():
  q = "What is 2 + 3?"
  assert r1_zero_prompt(q, prefill_think=True) == r1_zero_prompt(q) + " <think>"


def test_r1_zero_question_with_braces_is_not_a_format_string():
  q = "Simplify $\\frac{x^{2}}{x}$ for {x} > 0"
  assert f"User: {q}. Assistant:" in r1_zero_prompt(q)


@pytest.mark.parametrize("question, match", [
    ("", "empty"), ("  \n", "empty"), (None, "must be a str"), (3, "must be a str")])
def test_r1_zero_errors(question, match):
  with pytest.raises(ValueError, match=match):
    r1_zero_prompt(question)


def test_r1_chat_three_turns():
  messages = [
      {"role": "system", "content": "You are a careful mathematician."},
      {"role": "user", "content": "What is 2 + 3?"},
      {"role": "assistant", "content": "<think>\n2 + 3 = 5\n</think>\n\nThe answer is 5."},
      {"role": "user", "content": "And 2 * 3?"},
  ]
  expected = ("<｜begin▁of▁sentence｜>You are a careful mathematician."
              "<｜User｜>What is 2 + 3?"
              "<｜Assistant｜>\n\nThe answer is 5.<｜end▁of▁sentence｜>"
              "<｜User｜>And 2 * 3?"
              "<｜Assistant｜><think>\n")
  assert r1_chat_prompt(messages) == expected
  assert r1_chat_prompt(messages, add_generation_prompt=False) == expected[:-len(
      "<｜Assistant｜><think>\n")]
  assert r1_chat_prompt(messages[1:], bos="") == expected[len(
      "<｜begin▁of▁sentence｜>You are a careful mathematician."):]


def test_r1_chat_single_question_and_assistant_without_think():
  assert (r1_chat_prompt([{"role": "user", "content": "Hi"}]) ==
          "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜><think>\n")
  out = r1_chat_prompt([{"role": "user", "content": "Hi"},
                        {"role": "assistant", "content": "Hello"}], add_generation_prompt=False)
  assert out == ("<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜>Hello"
                 "<｜end▁of▁sentence｜>")
  # only the text after the last </think> of a past turn is kept
  out = r1_chat_prompt([{"role": "user", "content": "Hi"},
                        {"role": "assistant", "content": "a</think>b</think>c"}])
  assert out == ("<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜>c<｜end▁of▁sentence｜>"
                 "<｜Assistant｜><think>\n")
  assert templates.BOS == "<｜begin▁of▁sentence｜>" and "\uff5c" in templates.BOS


@pytest.mark.parametrize("messages, match", [
    ([], "non-empty list"),
    ("hello", "non-empty list"),
    ([{"role": "tool", "content": "x"}], "unknown role 'tool'"),
    ([{"role": "user", "content": 3}], r"messages\[0\]\['content'\] must be a str"),
    ([{"role": "user", "content": None}], "must be a str"),
    ([{"role": "user"}], "'role' and 'content'"),
    (["hi"], "'role' and 'content'"),
    ([{"role": "user", "content": "q"}, {"role": "system", "content": "s"}],
     r"messages\[1\] is a system message"),
    ([{"role": "user", "content": "  "}], "empty content"),
])
def test_r1_chat_errors(messages, match):
  with pytest.raises(ValueError, match=match):
    r1_chat_prompt(messages)
