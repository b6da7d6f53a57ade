"""Loading a campaign file: its settings, and its jobs (CSV rows × matrix cells); its plan.

Example:
    >>> c = load_campaign("notebooks/campaigns/spring.toml")           # doctest: +SKIP
    >>> [(p.job.id, p.status) for p in plan(c)][:2]                    # doctest: +SKIP
    [('3f0c9a1b2d4e', 'pending'), ('9b1e0d7c6a53', 'pending')]
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..batch import Job, JobDefaults, JobPlan, is_url, make_job, plan_jobs
from ..batch.briefs import BriefRow, read_briefs
from ..deliveries import Delivery, find_delivery
from ..errors import CampaignError, RequestError, error_context
from ..files import read_toml_model
from ..profile import load_profile
from .schema import CampaignSpec, RaySection, Value

__all__ = ["Campaign", "load_campaign", "plan"]


@dataclasses.dataclass(frozen=True)
class Campaign:
    """A loaded campaign: its settings and its jobs (in file order)."""

    name: str
    path: Path | None
    profile: Path
    output_dir: Path  # local: the clips and the state; URL campaign: the state and the staging area
    backend: str
    jobs: tuple[Job, ...]
    warnings: tuple[str, ...] = ()
    output_url: str | None = None  # the clips' shared storage, when output_dir was given as a URL
    ray: RaySection = RaySection()

    @property
    def manifest_path(self) -> Path:
        return self.output_dir / "manifest.jsonl"

    @property
    def audit_dir(self) -> Path:
        return self.output_dir / "audit"

    @property
    def destination(self) -> str:
        """Where the clips go: the URL, or the local folder."""
        return self.output_url or str(self.output_dir)


def load_campaign(path: str | Path) -> Campaign:
    """Read and validate a campaign file and build its jobs (nothing is rendered or loaded).

    Raises :class:`~brandstudio.errors.CampaignError` for an unreadable or invalid file or CSV.
    A bad *row* is not an error here: it becomes a job that fails with a clear message.
    """
    # 1. the file, validated
    path = Path(path)
    spec = read_toml_model(
        path, CampaignSpec, CampaignError, what="the campaign file", kind="campaign file",
        fix="see the campaign file format in `help(brandstudio.campaign)` or the README",
    )  # fmt: skip
    c = spec.campaign
    if c.template is None and "template" not in spec.matrix and c.csv is None:
        raise CampaignError(
            "the campaign names no template",
            file=str(path),
            field="campaign.template",
            fix='set campaign.template = "product-hero" (or a `template` matrix key or CSV column)',
        )

    # 2. where things are: paths relative to the file, made absolute (cluster workers may start elsewhere)
    base = path.parent.resolve()
    output_url = c.output_dir if c.output_dir and is_url(c.output_dir) else None
    if output_url:  # clips to shared storage; manifest, audit log, lock and staging stay here
        output_dir = base / (c.state_dir or f".brandstudio/{c.name}")
    else:
        output_dir = base / (c.output_dir or f"renders/{c.name}")

    # 3. the jobs: every brief row crossed with every matrix cell, each distinct job once
    rows = read_briefs(base / c.csv, c.csv) if c.csv else [BriefRow("defaults", {})]
    defaults = _job_defaults(spec)
    deliveries = _deliveries(c.deliveries, base / c.profile, path)
    jobs = [
        make_job(
            source,
            values,
            template=c.template,
            output_dir=output_dir,
            defaults=defaults,
            problem=problem,
            output_url=output_url,
            deliveries=deliveries,
        )
        for source, values, problem in _cross(rows, spec.matrix, from_csv=c.csv is not None)
    ]
    with error_context(file=str(path)):
        jobs, warnings = _distinct(jobs)
    return Campaign(
        name=c.name,
        path=path,
        profile=base / c.profile,
        output_dir=output_dir,
        backend=c.backend,
        jobs=tuple(jobs),
        warnings=tuple(warnings),
        output_url=output_url,
        ray=spec.ray,
    )


def plan(campaign: Campaign | str | Path) -> list[JobPlan]:
    """What a run would do: every job with its status. Reads only; renders and loads nothing."""
    c = campaign if isinstance(campaign, Campaign) else load_campaign(campaign)
    return plan_jobs(c.jobs, c.manifest_path)


def _deliveries(names: Sequence[str], profile: Path, path: Path) -> list[Delivery]:
    """The campaign's deliveries, looked up in its profile's ``[[deliveries]]`` and the presets
    now, so that a misspelt name stops the campaign before any job renders."""
    if not names:
        return []
    if len(set(names)) != len(names):
        raise CampaignError("a delivery is named twice", file=str(path), field="campaign.deliveries",
                            value=str(names), fix="name each delivery once")  # fmt: skip
    entries = load_profile(profile).spec.deliveries
    try:
        return [find_delivery(name, entries) for name in names]
    except RequestError as exc:
        raise CampaignError(exc.message, file=str(path), field="campaign.deliveries", value=exc.value,
                            fix=exc.fix) from None  # fmt: skip


def _job_defaults(spec: CampaignSpec) -> JobDefaults:
    d = spec.defaults
    return JobDefaults(d.aspect, d.seed, d.duration, d.resolution, dict(d.variables))


def _cross(
    rows: Sequence[BriefRow], matrix: Mapping[str, Sequence[Value]], *, from_csv: bool
) -> list[BriefRow]:
    """Every row with every matrix cell (the cartesian product of the matrix values), in order.

    A named row (``output``) gets the cell's values appended, one clip name per cell."""
    keys = list(matrix)
    cells = list(itertools.product(*(matrix[k] for k in keys))) if keys else [()]
    out = []
    for n, (row, cell) in enumerate(itertools.product(rows, cells)):
        values: dict[str, Any] = {**row.values, **dict(zip(keys, cell, strict=True))}
        if keys and values.get("output"):
            values["output"] = "-".join([str(values["output"]).removesuffix(".mp4"), *map(_slug, cell)])
        if not keys:
            source = row.source
        else:
            source = f"{row.source} × matrix[{n % len(cells)}]" if from_csv else f"matrix[{n}]"
        out.append(BriefRow(source, values, row.problem))
    return out


def _distinct(jobs: Sequence[Job]) -> tuple[list[Job], list[str]]:
    """Each job once (a repeated one is a warning); two jobs writing one file is an error."""
    seen: dict[str, Job] = {}
    outputs: set[Path] = set()
    warnings: list[str] = []
    for job in jobs:
        if job.id in seen:
            warnings.append(f"{job.source} is the same job as {seen[job.id].source}; rendered once")
            continue
        for f in {job.output, *job.files}:
            if f in outputs:
                raise CampaignError(
                    f"{job.source}: two different jobs would write {f.name}",
                    value=f.name,
                    fix="give every row its own `output` name",
                )
        seen[job.id] = job
        outputs.update({job.output, *job.files})
    return list(seen.values()), warnings


def _slug(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(value).replace(":", "x")).strip("-") or "x"
