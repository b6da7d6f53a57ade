"""A short coverage-guided fuzz run (atheris) of the parsers, bounded in time.

``BRANDSTUDIO_FUZZ_SECONDS`` (default 20) sets how long libFuzzer mutates; each input has 20 s
before it counts as a hang. A crash (any exception other than a ``BrandStudioError``) fails the
test with the input that caused it and its traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

atheris = pytest.importorskip("atheris")  # Linux/macOS wheels; the property tests cover other platforms

HARNESS = Path(__file__).with_name("fuzz_parsers.py")


def test_parsers_survive_a_bounded_fuzz_run(tmp_path):
    seconds = int(os.environ.get("BRANDSTUDIO_FUZZ_SECONDS", "20"))
    corpus = tmp_path / "corpus"
    proc = subprocess.run(
        [sys.executable, str(HARNESS), str(corpus), f"-max_total_time={seconds}", "-timeout=20",
         "-rss_limit_mb=6144", f"-artifact_prefix={tmp_path}/", "-print_final_stats=1"],
        capture_output=True, text=True, timeout=seconds + 240, cwd=tmp_path,
    )  # fmt: skip
    log = proc.stdout + proc.stderr
    crashes = sorted(p.name for p in tmp_path.glob("crash-*")) + sorted(p.name for p in tmp_path.glob("timeout-*"))
    assert proc.returncode == 0 and not crashes, f"fuzzing found {crashes}:\n{log[-6000:]}"
    runs = [line for line in log.splitlines() if "stat::number_of_executed_units" in line]
    assert runs and int(runs[-1].split(":")[-1]) > 50, log[-3000:]  # it really ran
