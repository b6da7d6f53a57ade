"""What a run did: the jobs rendered now, those done before, and the failures."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from ..request import RenderResult
from .jobs import Job

__all__ = ["CampaignSummary", "JobFailure"]


@dataclasses.dataclass(frozen=True)
class JobFailure:
    job: Job
    error_type: str
    message: str


@dataclasses.dataclass(frozen=True)
class CampaignSummary:
    """What a run did. ``exit_code``: 0 when every job is done, 3 when some failed."""

    name: str
    total: int
    rendered: tuple[Job, ...]
    skipped: tuple[Job, ...]  # done in an earlier run
    failed: tuple[JobFailure, ...]
    manifest: Path
    audit: Path | None
    seconds: float
    results: Mapping[str, RenderResult] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def done(self) -> int:
        return len(self.rendered) + len(self.skipped)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 3

    def __str__(self) -> str:
        lines = [
            f"campaign {self.name}: {self.done}/{self.total} done "
            f"({len(self.rendered)} rendered now, {len(self.skipped)} already done), "
            f"{len(self.failed)} failed, {self.seconds:.1f}s"
        ]
        for f in self.failed:
            lines.append(f"  {f.job.id} {f.job.source}: {f.error_type}: {f.message}")
        return "\n".join(lines)
