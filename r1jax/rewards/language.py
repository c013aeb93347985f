"""R1's language-consistency reward (R1 §2.3.2): the share of target-language words in the CoT.

R1-Zero's chains of thought mix languages; R1 adds, during reasoning-oriented RL, "the
proportion of target language words in the CoT" to the reward. Here the CoT is the text
inside <think>…</think> (the text before </think> when the prompt prefilled "<think>"; the
whole completion when there are no think tags), with LaTeX commands, digits and punctuation
removed. It is cut into word units: every CJK character (Han, kana, Hangul) is one unit,
every other run of letters is one unit. Then

  en  share of units written only in Latin letters
  zh  share of units that are Han characters

A CoT with letters in no unit (pure arithmetic such as "7 + 8 = 15") scores 1.0: nothing
in it is in the wrong language. An empty or missing CoT scores 0.0.
"""

from __future__ import annotations

import re

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_CJK = _HAN + "\u3040-\u30ff\u31f0-\u31ff\uac00-\ud7af"  # + kana and Hangul syllables
_LATIN = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff"

_UNIT = re.compile(rf"[{_CJK}]|(?:(?![{_CJK}])[^\W\d_])+")
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")
_IS_TARGET = {
    "en": re.compile(rf"[{_LATIN}]+").fullmatch,
    "zh": re.compile(rf"[{_HAN}]").fullmatch,
}
LANGUAGES = tuple(_IS_TARGET)


def chain_of_thought(completion: str) -> str:
  """The reasoning part of a completion (see the module docstring)."""
  start, end = completion.find("<think>"), completion.find("</think>")
  if end < 0:
    return completion[start + len("<think>"):] if start >= 0 else completion
  return completion[start + len("<think>") if 0 <= start < end else 0:end]


def language_share(text: str, language: str) -> float:
  """The share of `text`'s word units in `language` ("en" or "zh")."""
  if language not in _IS_TARGET:
    raise ValueError(f"language={language!r} is not supported; use one of {LANGUAGES}")
  if not text.strip():
    return 0.0
  units = _UNIT.findall(_LATEX_COMMAND.sub(" ", text))
  if not units:
    return 1.0
  is_target = _IS_TARGET[language]
  return sum(bool(is_target(u)) for u in units) / len(units)


def language_consistency_reward(prompts: list[str], completions: list[str], *,
                                language: str | list[str] = "en", **_) -> list[float]:
  """Per completion, the share of target-language words in its CoT, in [0, 1].

  `language` is one code for all completions or one per completion (a dataset field).
  """
  del prompts
  langs = [language] * len(completions) if isinstance(language, str) else language
  return [language_share(chain_of_thought(c), lang)
          for c, lang in zip(completions, langs, strict=True)]
