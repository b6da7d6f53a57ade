"""The audit log: ``<output_dir>/audit/<profile-id>.jsonl``, one line per finished clip.

It records who rendered what, when, with which profile fingerprint, model, seed, safety
verdicts and output hash. It lives with the renders, not in the profile directory: a profile
directory is versioned client data (brand assets in git, validated in CI) and must not change
when clips are rendered, and the log belongs next to the clips it vouches for. It is opened in
append mode only (:class:`~brandstudio.batch.manifest.JsonLinesWriter`); nothing rewrites it.
"""

from __future__ import annotations

import getpass
import os
import socket

from .execute import JobOutcome
from .manifest import utc_now

__all__ = ["audit_record", "who"]


def who() -> tuple[str, str]:
    """``(user, host)`` running this process; ``uid:N`` when there is no login name (containers)."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (containers): record that
        user = f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return user, socket.gethostname()


def audit_record(batch: str, outcome: JobOutcome, user: str, host: str) -> dict:
    """The audit line of a finished clip (``outcome.result`` is set)."""
    r, job = outcome.result, outcome.job
    worker = {"worker": outcome.worker} if outcome.worker else {}
    return {
        "time": utc_now(), "user": user, "host": host, "campaign": batch, "job": job.id,
        "profile": r.profile_id, "profile_fingerprint": r.profile_fingerprint,
        "model": r.model_id, "seed": r.seed, "template": r.template,
        "variables": dict(r.variables), "aspect": r.aspect,
        "safety": list(r.safety), "label": r.label, "scene_cache": r.cache, **worker,
        "output": job.location, "sha256": outcome.sha256, "size": outcome.size, "files": list(outcome.files),
    }  # fmt: skip
