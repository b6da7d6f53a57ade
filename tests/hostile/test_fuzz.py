"""A short coverage-guided fuzz run (atheris) of the parsers, bounded in time.

``BRANDSTUDIO_FUZZ_SECONDS`` (default 20) sets how long libFuzzer mutates; each input has 20 s
before it counts as a hang. A crash (any exception other than a ``BrandStudioError``) fails the
test with the input that caused it, replayed alone so that its traceback is in the report.

A run that fails although none of its crash inputs fails again when replayed alone was not
stopped by an input (libFuzzer says "fuzz target exited" for a signal or an exit from outside the
parsers, e.g. a loaded CI machine): the run is made once more, and that one must be clean.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

atheris = pytest.importorskip("atheris")  # Linux/macOS wheels; the property tests cover other platforms

HARNESS = Path(__file__).with_name("fuzz_parsers.py")


def _fuzz(run_dir: Path, seconds: int) -> tuple[int, str, list[Path]]:
    """One bounded fuzz run in ``run_dir``: return code, log, and the crash/timeout inputs it wrote."""
    run_dir.mkdir(parents=True)
    proc = subprocess.run(
        [sys.executable, str(HARNESS), str(run_dir / "corpus"), f"-max_total_time={seconds}", "-timeout=20",
         "-rss_limit_mb=6144", f"-artifact_prefix={run_dir}/", "-print_final_stats=1"],
        capture_output=True, text=True, timeout=seconds + 240, cwd=run_dir,
    )  # fmt: skip
    found = sorted(run_dir.glob("crash-*")) + sorted(run_dir.glob("timeout-*"))
    return proc.returncode, proc.stdout + proc.stderr, found


def _replay(artifact: Path) -> tuple[bool, str]:
    """Run one saved input alone (libFuzzer's single-input mode): did it fail again, and the report."""
    proc = subprocess.run(
        [sys.executable, str(HARNESS), str(artifact), "-timeout=20"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300, cwd=artifact.parent,
    )  # fmt: skip
    data = artifact.read_bytes()
    log = "\n".join(line for line in proc.stdout.splitlines() if not line.startswith("INFO: Instrumenting"))
    report = f"--- {artifact.name} ({len(data)} bytes): {data[:400]!r}\n{log[-3000:]}"
    return proc.returncode != 0, report


def test_parsers_survive_a_bounded_fuzz_run(tmp_path):
    seconds = int(os.environ.get("BRANDSTUDIO_FUZZ_SECONDS", "20"))
    for attempt in (1, 2):
        returncode, log, found = _fuzz(tmp_path / f"run{attempt}", seconds)
        if returncode == 0 and not found:
            break
        replays = [_replay(path) for path in found]
        reproduced = [report for failed, report in replays if failed]
        assert not reproduced, "fuzzing found inputs that fail:\n" + "\n".join(reproduced)
        assert attempt == 1, f"fuzzing failed twice without an input that fails alone:\n{log[-6000:]}"
    runs = [line for line in log.splitlines() if "stat::number_of_executed_units" in line]
    assert runs and int(runs[-1].split(":")[-1]) > 50, log[-3000:]  # it really ran
