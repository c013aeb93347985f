"""The run report renders curves and a summary table from metrics.jsonl."""

import pytest

from r1jax.runtime.metrics import MetricsWriter
from r1jax.tools import report


def test_report_png_and_markdown(tmp_path):
  w = MetricsWriter(str(tmp_path), enabled=True)
  for step in range(1, 6):
    w.write(step, {"reward/mean": 0.1 * step, "kl": 0.01 * step, "loss": 1.0 / step})
  w.write(5, {"eval/accuracy": 0.4})
  w.close()
  png, md = report.render(str(tmp_path))
  assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
  text = open(md).read()
  assert "| reward/mean | 0.1 (step 1) | 0.5 (step 5) | 0.5 |" in text
  assert "| eval/accuracy | 0.4 (step 5) | 0.4 (step 5) | 0.4 |" in text
  assert "clip_fraction" not in text  # only metrics the run has


def test_report_without_metrics(tmp_path):
  with pytest.raises(FileNotFoundError, match="no metrics"):
    report.render(str(tmp_path))
