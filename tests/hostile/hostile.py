"""What the hostile-input tests share: a guard that turns a hang into a failure, the CLI run as a
user runs it, and the check that it failed cleanly (exit 2, the words that matter, no traceback)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

#: a minimal campaign file over the CSV ``briefs.csv`` beside it (``.format(profile=...)``)
CAMPAIGN = """\
[campaign]
name = "spring"
profile = "{profile}"
template = "product-hero"
csv = "briefs.csv"
"""


@contextlib.contextmanager
def no_hang(seconds: float = 20.0):
    """Fail (TimeoutError) instead of hanging when the block blocks (a FIFO opened) or runs away."""

    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: it hangs, or no limit stopped it")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """The CLI as a user runs it; ``timeout`` proves it does not hang."""
    full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "brandstudio.cli", *args],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def assert_clean_exit_2(proc: subprocess.CompletedProcess, *words: str) -> None:
    """Exit 2, no traceback, and each of ``words`` in the message (rich's line wrapping undone)."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    text = " ".join(proc.stderr.split())
    for word in words:
        assert word in text, proc.stderr
