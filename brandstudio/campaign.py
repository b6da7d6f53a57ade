"""Campaigns: many renders from one brief file, resumable, with a manifest and an audit log.

A campaign file (TOML) names the profile, the template, defaults, and either a ``[matrix]``
of values whose cartesian product makes the jobs, or a CSV of variable rows (one row, one
clip), which is how agencies hand over briefs. Both may be given: every CSV row is then
crossed with the matrix (e.g. products from the CSV × aspect ratios)::

    [campaign]
    name = "spring-2026"
    profile = "../brand_profiles/aurora-coffee"   # relative to this file
    template = "product-hero"
    output_dir = "renders/spring-2026"            # default: renders/<name>, relative to this file
    csv = "briefs.csv"                            # optional; header = variable names
    backend = "local"                             # "ray" is reserved for the cluster backend

    [defaults]                                    # any job may override these
    aspect = "9:16"
    duration = 5.0
    resolution = 720
    seed = 7                                      # default: derived from the brief
    [defaults.variables]
    cta = "In stores now"

    [matrix]                                      # keys: template variables, aspect, seed,
    product = ["Night Roast", "Day Roast"]        # template, duration, resolution
    aspect = ["9:16", "1:1"]

CSV columns are template variables, plus the optional columns ``aspect``, ``seed``,
``template``, ``duration``, ``resolution`` and ``output`` (a file name without ``.mp4``).
An empty cell means "not set" (the default applies). A bad row (unknown variable, wrong
type, missing value, blocked term) does not stop the campaign: it becomes a failed job with
the render's own error message.

What a run writes under ``output_dir``::

    <job>.mp4, .srt, .json      the clip, its captions and its RenderResult
    manifest.jsonl              one JSON line per job event (started / done / failed), fsynced
    audit/<profile-id>.jsonl    append-only: one line per finished clip (who, when, what)
    .campaign.lock              held while a run is in progress

**Resume.** A job's id is a hash of its inputs (template, variables, aspect, seed, duration,
resolution, output name), so the same row maps to the same job and the same output path
across runs. The manifest's last record per job wins; a job is *done* when that record says
so **and** its MP4 exists with the recorded sha256. A run that is killed leaves at worst a
``started`` record: the clip's files are written to hidden temp files and renamed into
place (:mod:`brandstudio.encode`), and at start-up the runner deletes stray ``.*.part.*``
temp files and whatever an interrupted job may have left at its output paths, then renders
it again. Finished clips are never rendered twice.

**Audit log.** ``<output_dir>/audit/<profile-id>.jsonl`` records who rendered what, when,
with which profile fingerprint, model, seed, safety verdicts and output hash. It lives with
the renders, not in the profile directory: a profile directory is versioned client data
(brand assets in git, validated in CI) and must not change when clips are rendered, and the
log belongs next to the clips it vouches for. It is opened in append mode only; nothing in
brandstudio rewrites it.

**Backends.** ``backend="local"`` renders the jobs in order in this process, with one
:class:`~brandstudio.studio.BrandStudio` (the model is loaded once, not once per job).
``backend="ray"`` (or ``campaign run --ray ADDRESS``) spreads them over a Ray cluster, one
actor per GPU holding its loaded pipeline (:mod:`brandstudio.distributed.ray_backend`). Either
way this process alone writes the manifest and the audit log; workers render, publish the clip
and send back only its path, hash and :class:`~brandstudio.request.RenderResult`.

**Shared storage.** ``output_dir`` may be an fsspec URL (``s3://bucket/spring``,
``gs://...``, ``file:///mnt/shared/renders``): each clip is rendered to a local staging file,
then uploaded with its sidecars (MP4 last) and the staging copy deleted. The manifest, audit
log and lock then live in ``state_dir`` (default ``.brandstudio/<name>`` next to the campaign
file). A clip on shared storage counts as done when it exists with the recorded size.

Example:
    >>> from brandstudio.campaign import load_campaign, plan, run      # doctest: +SKIP
    >>> c = load_campaign("notebooks/campaigns/spring.toml")           # doctest: +SKIP
    >>> [(p.job.id, p.status) for p in plan(c)][:2]                    # doctest: +SKIP
    [('3f0c9a1b2d4e', 'pending'), ('9b1e0d7c6a53', 'pending')]
    >>> summary = run(c, quiet=True)                                   # doctest: +SKIP
    >>> summary.exit_code                                              # doctest: +SKIP
    0
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime as _dt
import getpass
import hashlib
import itertools
import json
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .errors import BrandStudioError, CampaignError
from .files import read_toml_model, sha256_file

if TYPE_CHECKING:  # pragma: no cover
    from .request import RenderRequest, RenderResult
    from .studio import BrandStudio

__all__ = [
    "BACKENDS",
    "Campaign",
    "CampaignSummary",
    "Job",
    "JobEvent",
    "JobFailure",
    "JobOutcome",
    "JobPlan",
    "LocalExecutor",
    "execute_job",
    "is_url",
    "jobs_from_requests",
    "load_campaign",
    "plan",
    "publish",
    "read_manifest",
    "render_many_resumable",
    "run",
    "run_jobs",
]

BACKENDS = ("local", "ray")
RESERVED_COLUMNS = ("aspect", "seed", "template", "duration", "resolution", "output")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
Value = str | int | float | bool


# -- the campaign file ------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CampaignSection(_Model):
    """``[campaign]``: what to render, for which profile, and where the clips go."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="campaign id")
    profile: str = Field(min_length=1, description="profile directory, relative to the campaign file")
    template: str | None = Field(None, description="template name; a CSV/matrix `template` may override it")
    output_dir: str | None = Field(
        None,
        description="a folder relative to the campaign file (default: renders/<name>), or an fsspec URL "
        "(s3://bucket/spring, gs://..., file:///shared/renders) for shared storage",
    )
    state_dir: str | None = Field(
        None,
        description="where the manifest, audit log and lock live when output_dir is a URL "
        "(default: .brandstudio/<name> next to the campaign file); ignored for a local output_dir",
    )
    csv: str | None = Field(None, description="a CSV of variable rows, relative to the campaign file")
    backend: Literal["local", "ray"] = "local"
    description: str = ""


class RaySection(_Model):
    """``[ray]``: the cluster backend (``backend = "ray"`` or ``campaign run --ray ADDRESS``)."""

    address: str | None = Field(
        None,
        description="'auto' (the cluster this machine belongs to), 'ray://head:10001', 'head:6379', "
        "or 'local' to start a Ray instance on this machine; default: 'auto'",
    )
    workers: int | None = Field(None, ge=1, le=4096, description="render actors; default: one per GPU")
    gpus_per_worker: float = Field(1.0, ge=0, le=64, description="GPUs each actor reserves (0: CPU workers)")
    cpus_per_worker: float = Field(1.0, ge=0, le=1024, description="CPUs each actor reserves")


class DefaultsSection(_Model):
    """``[defaults]``: values every job gets unless its row or matrix cell says otherwise."""

    aspect: str | None = None
    seed: int | None = Field(None, ge=0, lt=2**63)
    duration: float | None = Field(None, gt=0, le=120)
    resolution: int | None = Field(None, ge=64, le=4320)
    variables: dict[str, Value] = {}

    @field_validator("aspect")
    @classmethod
    def _aspect(cls, v: str | None) -> str | None:
        if v is not None:
            from .profile.schema import parse_aspect

            parse_aspect(v)
        return v


class CampaignSpec(_Model):
    campaign: CampaignSection
    defaults: DefaultsSection = DefaultsSection()
    ray: RaySection = RaySection()
    matrix: dict[str, list[Value]] = {}

    @field_validator("matrix")
    @classmethod
    def _non_empty(cls, v: dict[str, list[Value]]) -> dict[str, list[Value]]:
        for key, values in v.items():
            if not values:
                raise ValueError(f"matrix.{key} is empty; give at least one value")
            if key == "output":
                raise ValueError("`output` cannot be a matrix key (each clip needs its own name)")
        return v


@dataclasses.dataclass(frozen=True)
class Job:
    """One clip to render. ``id`` is a hash of the inputs, stable across runs."""

    id: str
    source: str  # where it came from: "briefs.csv:7", "matrix[3]", "requests[0]"
    template: str | None
    variables: Mapping[str, Any]
    aspect: str | None
    seed: Any
    duration: Any
    resolution: Any
    output: Path  # where the render writes (for a URL campaign: a local staging path)
    problem: str | None = None  # a malformed row: the job fails with this message, unrendered
    url: str | None = None  # the final place on shared storage when output_dir is an fsspec URL

    @property
    def location(self) -> str:
        """Where the finished clip lives: its URL, or its local path."""
        return self.url or str(self.output)

    @property
    def inputs(self) -> dict[str, Any]:
        return {
            "template": self.template,
            "variables": dict(self.variables),
            "aspect": self.aspect,
            "seed": self.seed,
            "duration": self.duration,
            "resolution": self.resolution,
        }

    def describe(self) -> str:
        vals = ", ".join(str(v) for v in self.variables.values())
        return f"{self.template or '?'} {self.aspect or ''} [{vals}]".replace("  ", " ")


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


def _job_id(inputs: Mapping[str, Any], name: str | None) -> str:
    key = json.dumps([inputs, name], sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _make_job(
    source: str,
    values: Mapping[str, Any],
    defaults: DefaultsSection,
    template: str | None,
    output_dir: Path,
    problem: str | None = None,
    output_url: str | None = None,
) -> Job:
    values = dict(values)
    name = values.pop("output", None)
    if name is not None:
        name = str(name).removesuffix(".mp4")
        if not _NAME.match(name):
            problem = problem or (
                f"{source}: output name {name!r} is not a plain file name "
                "(letters, digits, '.', '_', '-'; no folders)"
            )
            name = None
    inputs = {
        "template": values.pop("template", None) or template,
        "aspect": values.pop("aspect", None) or defaults.aspect,
        "seed": _number(values.pop("seed", None), int, defaults.seed),
        "duration": _number(values.pop("duration", None), float, defaults.duration),
        "resolution": _number(values.pop("resolution", None), int, defaults.resolution),
        "variables": {**defaults.variables, **values},
    }
    if inputs["template"] is None:
        problem = problem or f"{source}: no template: set campaign.template or a `template` column"
    jid = _job_id(inputs, name)
    stem = name or f"{inputs['template'] or 'job'}-{str(inputs['aspect'] or 'auto').replace(':', 'x')}-{jid}"
    return Job(
        id=jid,
        source=source,
        template=inputs["template"],
        variables=inputs["variables"],
        aspect=inputs["aspect"],
        seed=inputs["seed"],
        duration=inputs["duration"],
        resolution=inputs["resolution"],
        output=(output_dir / "staging" if output_url else output_dir) / f"{stem}.mp4",
        problem=problem,
        url=f"{output_url.rstrip('/')}/{stem}.mp4" if output_url else None,
    )


def _slug(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(value).replace(":", "x")).strip("-") or "x"


def _number(value: Any, kind: type, default: Any) -> Any:
    """CSV cells are text: '7' -> 7; anything unparsable is kept, and the render rejects it clearly."""
    if value is None or value == "":
        return default
    if isinstance(value, str):
        try:
            return kind(value)
        except ValueError:
            return value
    return value


def _read_csv(path: Path, rel: str) -> list[tuple[str, dict[str, str], str | None]]:
    """(source, values, problem) per non-empty row; empty cells are left out."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh, skipinitialspace=True)
            rows = list(reader)
    except FileNotFoundError:
        raise CampaignError(
            f"the campaign's CSV {rel!r} does not exist",
            file=str(path),
            field="campaign.csv",
            fix="check the path (it is relative to the campaign file)",
        ) from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CampaignError(
            f"cannot read the CSV {rel!r}: {exc}",
            file=str(path),
            fix="save it as UTF-8 CSV with a header row",
        ) from None
    if not rows or not any(c.strip() for c in rows[0]):
        raise CampaignError(
            f"the CSV {rel!r} has no header row",
            file=str(path),
            fix="the first row names the columns: template variables and aspect/seed/template/output",
        )
    header = [c.strip() for c in rows[0]]
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes or "" in header:
        raise CampaignError(
            f"the CSV {rel!r} has " + (f"duplicate columns {dupes}" if dupes else "an empty column name"),
            file=str(path),
            value=dupes or "",
            fix="give every column one unique name",
        )
    out = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        source = f"{path.name}:{lineno}"
        problem = None
        if len(row) > len(header):
            problem = f"{source}: the row has {len(row)} cells but the header has {len(header)} columns"
        values = {k: v for k, v in zip(header, row, strict=False) if v != ""}
        out.append((source, values, problem))
    return out


def load_campaign(path: str | Path) -> Campaign:
    """Read and validate a campaign file and build its jobs (nothing is rendered or loaded).

    Raises :class:`~brandstudio.errors.CampaignError` for an unreadable or invalid file or CSV.
    A bad *row* is not an error here: it becomes a job that fails with a clear message.
    """
    path = Path(path)
    spec = read_toml_model(
        path, CampaignSpec, CampaignError, what="the campaign file", kind="campaign file",
        fix="see the campaign file format in `help(brandstudio.campaign)` or the README",
    )
    c = spec.campaign
    base = path.parent.resolve()  # absolute: workers of a cluster may start elsewhere
    output_url = c.output_dir if c.output_dir and is_url(c.output_dir) else None
    if output_url:  # clips to shared storage; manifest, audit log, lock and staging stay here
        output_dir = base / (c.state_dir or f".brandstudio/{c.name}")
    else:
        output_dir = base / (c.output_dir or f"renders/{c.name}")
    profile = base / c.profile
    if c.template is None and "template" not in spec.matrix and c.csv is None:
        raise CampaignError(
            "the campaign names no template",
            file=str(path),
            field="campaign.template",
            fix='set campaign.template = "product-hero" (or a `template` matrix key or CSV column)',
        )

    rows: list[tuple[str, dict[str, Any], str | None]] = (
        _read_csv(base / c.csv, c.csv) if c.csv else [("defaults", {}, None)]
    )
    keys = list(spec.matrix)
    cells = list(itertools.product(*(spec.matrix[k] for k in keys))) if keys else [()]
    jobs: list[Job] = []
    seen: dict[str, Job] = {}
    outputs: set[Path] = set()
    warnings: list[str] = []
    n = 0
    for source, values, problem in rows:
        for cell in cells:
            combined = {**values, **dict(zip(keys, cell, strict=True))}
            if keys and combined.get("output"):  # one name per row: tell the matrix cells apart
                combined["output"] = "-".join(
                    [str(combined["output"]).removesuffix(".mp4"), *map(_slug, cell)]
                )
            src = (
                source if not keys else (f"{source} × matrix[{n % len(cells)}]" if c.csv else f"matrix[{n}]")
            )
            n += 1
            job = _make_job(src, combined, spec.defaults, c.template, output_dir, problem, output_url)
            if job.id in seen:
                warnings.append(f"{src} is the same job as {seen[job.id].source}; rendered once")
                continue
            if job.output in outputs:
                raise CampaignError(
                    f"{src}: two different jobs would write {job.output.name}",
                    file=str(path),
                    value=job.output.name,
                    fix="give every row its own `output` name",
                )
            seen[job.id] = job
            outputs.add(job.output)
            jobs.append(job)
    return Campaign(
        name=c.name,
        path=path,
        profile=profile,
        output_dir=output_dir,
        backend=c.backend,
        jobs=tuple(jobs),
        warnings=tuple(warnings),
        output_url=output_url,
        ray=spec.ray,
    )


def is_url(location: str | Path) -> bool:
    """``True`` for an fsspec URL (``s3://...``, ``file:///...``), ``False`` for a plain path."""
    return isinstance(location, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", location) is not None


def jobs_from_requests(requests: Iterable[RenderRequest | Mapping], output_dir: Path) -> list[Job]:
    """Jobs for :meth:`BrandStudio.render_many`: a request without ``output`` goes to
    ``output_dir/<template>-<aspect>-<job-id>.mp4``."""
    from .request import RenderRequest

    jobs = []
    for i, r in enumerate(requests):
        req = r if isinstance(r, RenderRequest) else RenderRequest(**r)
        values: dict[str, Any] = {
            **req.variables,
            "template": req.template,
            "aspect": req.aspect,
            "seed": req.seed,
            "duration": req.duration,
            "resolution": req.resolution,
        }
        job = _make_job(f"requests[{i}]", values, DefaultsSection(), req.template, output_dir)
        if req.output is not None:
            job = dataclasses.replace(job, output=Path(req.output))
        jobs.append(job)
    return jobs


# -- the manifest -----------------------------------------------------------------------------


def read_manifest(path: str | Path) -> dict[str, dict]:
    """The last record per job id. A torn last line (a run killed mid-write) is ignored."""
    path = Path(path)
    last: dict[str, dict] = {}
    if not path.is_file():
        return last
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and "job" in rec:
                last[rec["job"]] = rec
    return last


def _is_done(rec: dict | None, job: Job) -> bool:
    """Recorded done, and the clip is where the record says with the recorded content.

    A local clip is hashed again (sha256). A clip on shared storage (fsspec URL) is checked by
    existence and size, not downloaded: re-reading hundreds of clips from a bucket to plan a run
    would cost more than the run; the sha256 stays in the manifest for anyone who wants to verify.
    """
    if not rec or rec.get("status") != "done":
        return False
    if job.url:
        import fsspec

        fs, path = fsspec.core.url_to_fs(job.url)
        try:
            return fs.exists(path) and fs.size(path) == rec.get("size")
        except OSError:
            return False
    if not job.output.is_file():
        return False
    return rec.get("sha256") == sha256_file(job.output)


@dataclasses.dataclass(frozen=True)
class JobPlan:
    """A job and what the manifest says about it.

    ``status``: ``"done"`` (recorded done and the MP4 on disk has the recorded sha256),
    ``"pending"`` (never run, or its output went missing or changed), ``"failed"`` (failed
    before; ``error`` says why) or ``"interrupted"`` (a run was killed while rendering it).
    """

    job: Job
    status: Literal["done", "pending", "failed", "interrupted"]
    record: dict | None = None

    @property
    def error(self) -> str | None:
        if self.status == "failed" and self.record:
            return self.record.get("error", {}).get("message")
        return self.job.problem


def _plan_jobs(jobs: Sequence[Job], manifest: Path) -> list[JobPlan]:
    records = read_manifest(manifest)
    out = []
    for job in jobs:
        rec = records.get(job.id)
        if _is_done(rec, job):
            out.append(JobPlan(job, "done", rec))
        elif rec and rec.get("status") == "failed":
            out.append(JobPlan(job, "failed", rec))
        elif rec and rec.get("status") == "started":
            out.append(JobPlan(job, "interrupted", rec))
        else:
            out.append(JobPlan(job, "pending", rec))
    return out


def plan(campaign: Campaign | str | Path) -> list[JobPlan]:
    """What a run would do: every job with its status. Reads only; renders and loads nothing."""
    c = campaign if isinstance(campaign, Campaign) else load_campaign(campaign)
    return _plan_jobs(c.jobs, c.manifest_path)


# -- progress ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class JobEvent:
    """Passed to ``on_progress``: ``status`` is ``"started"``, ``"stage"`` (``stage`` names the
    render stage now running), ``"done"`` or ``"failed"``; ``index`` counts from 1 to ``total``
    over the jobs this run renders."""

    job: Job
    status: Literal["started", "stage", "done", "failed"]
    index: int
    total: int
    stage: str | None = None
    seconds: float | None = None
    error: str | None = None


class _PlainDisplay:
    """``quiet``: one plain line per finished job, for CI logs."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def __call__(self, ev: JobEvent) -> None:
        if ev.status == "done":
            line = f"[{ev.index}/{ev.total}] done    {ev.job.id} {ev.job.output.name} ({ev.seconds:.1f}s)"
        elif ev.status == "failed":
            first = (ev.error or "").splitlines()[0] if ev.error else ""
            line = f"[{ev.index}/{ev.total}] FAILED  {ev.job.id} {ev.job.source}: {first}"
        else:
            return
        print(line, file=self.stream, flush=True)


class _RichDisplay:
    """A rich progress bar: the current job and its render stage, done/total and the ETA."""

    def __init__(self, console=None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
            console=self.console,
        )
        self.task = None

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, ev: JobEvent) -> None:
        if self.task is None:
            self.task = self.progress.add_task("starting", total=ev.total)
        from rich.markup import escape

        what = escape(f"{ev.job.id} {ev.job.describe()}")
        if ev.status == "started":
            self.progress.update(self.task, description=f"{what} · loading")
        elif ev.status == "stage":
            self.progress.update(self.task, description=f"{what} · {ev.stage}")
        elif ev.status == "done":
            self.progress.console.print(
                f"[green]done[/]    {escape(ev.job.id + ' ' + ev.job.output.name)}", highlight=False
            )
            self.progress.update(self.task, advance=1)
        elif ev.status == "failed":
            first = (ev.error or "").splitlines()[0]
            self.progress.console.print(
                f"[red]failed[/]  {escape(f'{ev.job.id} {ev.job.source}: {first}')}", highlight=False
            )
            self.progress.update(self.task, advance=1)


# -- running ----------------------------------------------------------------------------------


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


class _Appender:
    """JSON lines, appended: one ``json.dumps`` + flush + fsync per record."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def write(self, record: dict) -> None:
        self.fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


SIDECARS = (".srt", ".vtt", ".json", ".qc.json", ".qc.html")


def _sidecars(out: Path) -> list[Path]:
    """The files a render writes for ``out``: the MP4, captions, RenderResult, QC report."""
    return [out, *(out.with_name(out.stem + s) for s in SIDECARS)]


def _clean_temp_files(dirs: Iterable[Path]) -> list[Path]:
    """Delete stray ``.NAME.*.part.*`` temp files that a killed render left behind."""
    removed = []
    for d in set(dirs):
        if d.is_dir():
            for p in d.glob(".*.part.*"):
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def _remote_files(url: str) -> list[str]:
    """The URLs of a published clip and its sidecars (see :func:`publish`)."""
    stem = url.rsplit("/", 1)[0] + "/" + url.rsplit("/", 1)[1].removesuffix(".mp4")
    return [url, *(stem + s for s in SIDECARS)]


def publish(job: Job) -> None:
    """Move a rendered clip and its sidecars from ``job.output`` to ``job.url`` (shared storage).

    Each file is uploaded under a temporary name and moved into place, sidecars first and the
    MP4 last, so the MP4's presence at its URL means the clip is complete; the local staging
    files are deleted afterwards. On object stores (S3, GCS) an upload is already all-or-nothing.
    """
    import uuid

    import fsspec

    fs, dest = fsspec.core.url_to_fs(job.url)
    parent = dest.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    files = [f for f in _sidecars(job.output) if f.exists()]
    for f in files[1:] + files[:1]:
        tmp = f"{parent}/.{f.name}.part.{uuid.uuid4().hex[:8]}"
        fs.put_file(str(f), tmp)
        fs.mv(tmp, f"{parent}/{f.name}")
    for f in files:
        f.unlink(missing_ok=True)


def _remove_outputs(job: Job) -> None:
    """Whatever an interrupted job may have left at its output paths (local and shared storage)."""
    for f in _sidecars(job.output):
        f.unlink(missing_ok=True)
    if job.url:
        import fsspec

        fs, _ = fsspec.core.url_to_fs(job.url)
        for u in _remote_files(job.url):
            path = fsspec.core.url_to_fs(u)[1]
            if fs.exists(path):
                fs.rm(path)
        parent = fsspec.core.url_to_fs(job.url)[1].rsplit("/", 1)[0]
        for stray in fs.glob(f"{parent}/.{Path(job.url).stem}.*.part.*"):
            fs.rm(stray)


@dataclasses.dataclass(frozen=True)
class JobOutcome:
    """What rendering one job gave: the result and the clip's hash, or the error. Small and
    picklable: this is all that travels back from a cluster worker (no frames, no video)."""

    job: Job
    seconds: float
    result: RenderResult | None = None
    sha256: str | None = None
    size: int | None = None
    error_type: str | None = None
    message: str | None = None
    expected: bool = True  # a BrandStudioError (bad input) rather than a crash
    worker: str | None = None


def execute_job(
    studio: BrandStudio, job: Job, on_stage: Callable[[str], None] | None = None, *, worker: str | None = None
) -> JobOutcome:
    """Render one job, publish it to shared storage if it has a URL, hash it; never raises.

    The one place a job is rendered, for every backend (the Ray actors call it too).
    """
    t0 = time.perf_counter()
    try:
        result = _render_job(studio, job, on_stage or (lambda stage: None))
        digest, size = sha256_file(job.output), job.output.stat().st_size
        if job.url:
            publish(job)
    except Exception as exc:  # noqa: BLE001 - one job's failure must not stop the rest
        known = isinstance(exc, BrandStudioError)
        for f in _sidecars(job.output):  # nothing of a failed job stays behind
            f.unlink(missing_ok=True)
        return JobOutcome(
            job, round(time.perf_counter() - t0, 4), error_type=type(exc).__name__,
            message=str(exc) if known else f"{type(exc).__name__}: {exc}", expected=known, worker=worker,
        )  # fmt: skip
    return JobOutcome(
        job, round(time.perf_counter() - t0, 4), result=result, sha256=digest, size=size, worker=worker
    )


def run(
    campaign: Campaign | str | Path,
    *,
    quiet: bool = False,
    retry_failed: bool = True,
    on_progress: Callable[[JobEvent], None] | None = None,
    backend: str | None = None,
    device: str = "auto",
    studio: BrandStudio | None = None,
    ray_address: str | None = None,
    workers: int | None = None,
) -> CampaignSummary:
    """Render every job that is not done yet; resumable, and one failure never stops the rest.

    Args:
        campaign: a :class:`Campaign` or the path of a campaign file.
        quiet: one plain line per job (CI logs) instead of the rich progress display.
        retry_failed: render jobs that failed in an earlier run again (default) or skip them.
        on_progress: called with a :class:`JobEvent` before and after each job and, on the
            local backend, at each render stage.
        backend: ``"local"`` (this process, one model) or ``"ray"`` (one actor per GPU of a
            Ray cluster, see :mod:`brandstudio.distributed`); default: the campaign file's, or
            ``"ray"`` when ``ray_address`` is given.
        device: passed to :class:`BrandStudio` (``"auto"``, ``"cuda"``, ``"cpu"``).
        studio: an already loaded studio for the campaign's profile (local backend; its model
            is reused).
        ray_address: the Ray cluster (``"auto"``, ``"ray://head:10001"``, ``"local"``);
            default: the campaign's ``[ray] address``. Ignored when Ray is already initialised.
        workers: Ray render actors; default: the campaign's ``[ray] workers``, else one per GPU.

    Returns a :class:`CampaignSummary`; ``summary.exit_code`` is 3 when any job failed.

    Example:
        >>> summary = run("spring.toml", backend="ray", ray_address="auto")   # doctest: +SKIP
        >>> summary.exit_code                                                 # doctest: +SKIP
        0
    """
    c = campaign if isinstance(campaign, Campaign) else load_campaign(campaign)
    backend = backend or ("ray" if ray_address else c.backend)
    if backend not in BACKENDS:
        raise CampaignError(
            f"unknown campaign backend {backend!r}",
            file=str(c.path) if c.path else None,
            field="campaign.backend",
            value=backend,
            fix="use backend = 'local' (this process) or 'ray' (a Ray cluster)",
        )
    common = dict(
        name=c.name, output_dir=c.output_dir, manifest=c.manifest_path, audit_dir=c.audit_dir,
        quiet=quiet, retry_failed=retry_failed, on_progress=on_progress,
    )  # fmt: skip
    if backend == "ray":
        from .distributed.ray_backend import RayExecutor

        with RayExecutor(
            c.profile, c.ray, address=ray_address, workers=workers, device=device, file=c.path
        ) as executor:
            return run_jobs(executor, c.jobs, **common)
    if studio is None:
        from .studio import BrandStudio

        studio = BrandStudio(c.profile, output_dir=c.output_dir, device=device)
    elif studio.profile.root.resolve() != c.profile.resolve():
        raise CampaignError(
            f"the studio given is for {studio.profile.root}, the campaign for {c.profile}",
            file=str(c.path) if c.path else None,
            field="campaign.profile",
            fix="pass a BrandStudio loaded from the campaign's profile, or none",
        )
    return run_jobs(studio, c.jobs, **common)


class LocalExecutor:
    """Renders jobs one after the other in this process, with one studio (one loaded model)."""

    def __init__(self, studio: BrandStudio) -> None:
        self.studio = studio
        self.profile_id = studio.profile.id

    def run(
        self,
        jobs: Sequence[Job],
        started: Callable[[int, Job], None],
        on_stage: Callable[[int, Job, str], None],
    ) -> Iterator[tuple[int, JobOutcome]]:
        for i, job in enumerate(jobs, start=1):
            started(i, job)
            yield i, execute_job(self.studio, job, lambda s, i=i, job=job: on_stage(i, job, s))


def run_jobs(
    executor: BrandStudio | LocalExecutor | Any,
    jobs: Sequence[Job],
    *,
    name: str,
    output_dir: Path,
    manifest: Path,
    audit_dir: Path | None,
    quiet: bool = True,
    retry_failed: bool = True,
    on_progress: Callable[[JobEvent], None] | None = None,
    display: bool = True,
) -> CampaignSummary:
    """Render ``jobs`` with an executor (a :class:`BrandStudio` means :class:`LocalExecutor`).

    This process alone writes the manifest and the audit log, whatever the backend: workers
    only render and report back. Holds ``<output_dir>/.campaign.lock`` for the whole run, so two
    runs of one campaign cannot interleave; a second one fails at once with :class:`CampaignError`.
    """
    from filelock import FileLock, Timeout

    if not hasattr(executor, "run"):
        executor = LocalExecutor(executor)
    t_start = time.perf_counter()
    output_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(output_dir / ".campaign.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise CampaignError(
            f"another run of campaign {name!r} is in progress (it holds {output_dir / '.campaign.lock'})",
            value=str(output_dir),
            fix="wait for it to finish; a killed run releases the lock automatically",
        ) from None
    mf = audit = None
    audit_path = audit_dir / f"{executor.profile_id}.jsonl" if audit_dir is not None else None
    try:
        mf = _Appender(manifest)
        audited = read_manifest(audit_path) if audit_path is not None else {}
        audit = _Appender(audit_path) if audit_path is not None else None

        # 1. clean up after a killed run: temp files, and whatever an interrupted job left,
        #    unless the clip was finished and audited just before the kill (then record it done)
        _clean_temp_files([output_dir, *(j.output.parent for j in jobs)])
        plans = _plan_jobs(jobs, manifest)
        for n, p in enumerate(plans):
            if p.status != "interrupted":
                continue
            a = audited.get(p.job.id)
            if a and a.get("time", "") >= p.record.get("time", "~") and _is_done({**a, "status": "done"}, p.job):
                keys = ("sha256", "size", "seed", "model", "profile", "profile_fingerprint")
                rec = {
                    "job": p.job.id, "campaign": name, "source": p.job.source, "output": p.job.location,
                    "status": "done", "time": _now(), "recovered": True, **{k: a.get(k) for k in keys},
                }  # fmt: skip
                mf.write(rec)
                plans[n] = JobPlan(p.job, "done", rec)
                continue
            _remove_outputs(p.job)
        skipped = [p.job for p in plans if p.status == "done"]
        todo = [p.job for p in plans if p.status != "done" and (retry_failed or p.status != "failed")]
        kept_failures = [
            JobFailure(p.job, p.record.get("error", {}).get("type", "Error"), p.error or "")
            for p in plans
            if p.status == "failed" and not retry_failed
        ]

        # 2. render what is left (one model per worker) and record each outcome as it comes
        user, host = _who()
        rendered: list[Job] = []
        failures: list[JobFailure] = []
        results: dict[str, RenderResult] = {}
        shown = (_PlainDisplay() if quiet else _RichDisplay()) if display else None

        def emit(ev: JobEvent) -> None:
            if shown is not None:
                shown(ev)
            if on_progress is not None:
                on_progress(ev)

        def base(job: Job) -> dict:
            return {"job": job.id, "campaign": name, "source": job.source, "output": job.location}

        def started(i: int, job: Job) -> None:
            mf.write({**base(job), "status": "started", "time": _now(), "inputs": job.inputs})
            emit(JobEvent(job, "started", i, len(todo)))

        def on_stage(i: int, job: Job, stage: str) -> None:
            emit(JobEvent(job, "stage", i, len(todo), stage))

        with shown if shown is not None else contextlib.nullcontext():
            for i, o in executor.run(todo, started, on_stage):
                job, worker = o.job, ({"worker": o.worker} if o.worker else {})
                if o.result is None:
                    mf.write({
                        **base(job), "status": "failed", "time": _now(), "seconds": o.seconds, **worker,
                        "error": {"type": o.error_type, "message": o.message, "expected": o.expected},
                    })  # fmt: skip
                    failures.append(JobFailure(job, o.error_type or "Error", o.message or ""))
                    emit(JobEvent(job, "failed", i, len(todo), seconds=o.seconds, error=o.message))
                    continue
                r = o.result
                if audit is not None:
                    audit.write({
                        "time": _now(), "user": user, "host": host, "campaign": name, "job": job.id,
                        "profile": r.profile_id, "profile_fingerprint": r.profile_fingerprint,
                        "model": r.model_id, "seed": r.seed, "template": r.template,
                        "variables": dict(r.variables), "aspect": r.aspect,
                        "safety": list(r.safety), "label": r.label, "scene_cache": r.cache, **worker,
                        "output": job.location, "sha256": o.sha256, "size": o.size,
                    })  # fmt: skip
                mf.write({
                    **base(job), "status": "done", "time": _now(), "seconds": o.seconds, "sha256": o.sha256,
                    "size": o.size, "seed": r.seed, "model": r.model_id, "profile": r.profile_id,
                    "profile_fingerprint": r.profile_fingerprint, "timings": dict(r.timings), "cache": r.cache,
                    **worker,
                })  # fmt: skip
                rendered.append(job)
                results[job.id] = r
                emit(JobEvent(job, "done", i, len(todo), seconds=o.seconds))
    finally:
        for fh in (mf, audit):
            if fh is not None:
                fh.close()
        lock.release()
    return CampaignSummary(
        name=name,
        total=len(jobs),
        rendered=tuple(rendered),
        skipped=tuple(skipped),
        failed=tuple(kept_failures + failures),
        manifest=manifest,
        audit=audit_path,
        seconds=round(time.perf_counter() - t_start, 3),
        results=results,
    )


def _who() -> tuple[str, str]:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (containers): record that
        user = f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return user, socket.gethostname()


def _render_job(studio: BrandStudio, job: Job, on_stage: Callable[[str], None]) -> RenderResult:
    if job.problem:
        raise CampaignError(job.problem, field=job.source)
    kwargs: dict[str, Any] = {
        "aspect": job.aspect,
        "seed": job.seed,
        "output": job.output,
        "duration": job.duration,
        "resolution": job.resolution,
    }
    if "on_stage" in job.variables:
        raise CampaignError(f"{job.source}: 'on_stage' cannot be a template variable name")
    return studio.render(job.template, **kwargs, **job.variables, on_stage=on_stage)


def render_many_resumable(
    studio: BrandStudio, requests: Iterable[RenderRequest | Mapping], *, manifest: Path, quiet: bool = True
) -> list[RenderResult]:
    """:meth:`BrandStudio.render_many` with a manifest: resumable; failures raised together at the end."""
    from .request import RenderResult

    jobs = jobs_from_requests(requests, studio.output_dir / studio.profile.id)
    summary = run_jobs(
        studio,
        jobs,
        name=manifest.stem,
        output_dir=manifest.parent,
        manifest=manifest,
        audit_dir=manifest.parent / "audit",
        quiet=quiet,
        display=not quiet,
    )
    if summary.failed:
        err = CampaignError(
            f"{len(summary.failed)} of {summary.total} renders failed:\n"
            + "\n".join(
                f"  {f.job.source}: {f.error_type}: {f.message.splitlines()[0]}" for f in summary.failed
            ),
            profile=studio.profile.id,
            file=str(manifest),
            fix="fix those requests and call render_many again; finished clips are not rendered twice",
        )
        err.summary = summary
        raise err
    return [
        summary.results.get(j.id)
        or RenderResult.model_validate_json(j.output.with_suffix(".json").read_text(encoding="utf-8"))
        for j in jobs
    ]
