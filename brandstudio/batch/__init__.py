"""Batches: a list of jobs rendered resumably, with a manifest, an audit log and job events.

What a run writes under its output folder::

    <job>.mp4, .srt, .json      the clip, its captions and its RenderResult
    manifest.jsonl              one JSON line per job event (started / done / failed), fsynced
    audit/<profile-id>.jsonl    append-only: one line per finished clip (who, when, what)
    .campaign.lock              held while a run is in progress

**Resume.** A job's id is a hash of its inputs (template, variables, aspect, seed, duration,
resolution, output name), so the same inputs map to the same job and the same output path
across runs. The manifest's last record per job wins; a job is *done* when that record says
so **and** its MP4 exists with the recorded sha256. A run that is killed leaves at worst a
``started`` record: the clip's files are written to hidden temp files and renamed into place
(:mod:`brandstudio.encode`), and at start-up the runner deletes the hidden partial files of
its jobs (and stale ones of anything else: :mod:`brandstudio.encode.partials`) and whatever an
interrupted job may have left at its output paths, then renders it again.
Finished clips are never rendered twice.

**Executors.** :func:`run_jobs` takes the executor that renders: :class:`LocalExecutor` (one
studio, this process) or the Ray executor of :mod:`brandstudio.distributed`. Nothing here
imports the studio: it is passed in. Campaign files (:mod:`brandstudio.campaign`) and
:meth:`BrandStudio.render_many(..., manifest=...) <brandstudio.studio.BrandStudio.render_many>`
(:func:`render_many_resumable`) are both built on this package.

Modules: :mod:`~.jobs` (jobs and their ids), :mod:`~.manifest` (the manifest, job plans),
:mod:`~.publish` (a clip's files, shared storage), :mod:`~.execute` (rendering one job,
executors), :mod:`~.events` (job events, a plain display), :mod:`~.audit` (the audit log),
:mod:`~.summary` (what a run did), :mod:`~.run` (the run).
"""

from __future__ import annotations

from .events import EventCallback, JobEvent, PlainDisplay, with_plain_display
from .execute import Executor, JobOutcome, LocalExecutor, Studio, execute_job
from .jobs import Job, JobDefaults, jobs_from_requests, make_job
from .manifest import JobPlan, is_done, plan_jobs, read_manifest
from .publish import SIDECARS, clip_files, is_url, publish
from .run import render_many_resumable, run_jobs
from .summary import CampaignSummary, JobFailure

__all__ = [
    "SIDECARS",
    "CampaignSummary",
    "EventCallback",
    "Executor",
    "Job",
    "JobDefaults",
    "JobEvent",
    "JobFailure",
    "JobOutcome",
    "JobPlan",
    "LocalExecutor",
    "PlainDisplay",
    "Studio",
    "clip_files",
    "execute_job",
    "is_done",
    "is_url",
    "jobs_from_requests",
    "make_job",
    "plan_jobs",
    "publish",
    "read_manifest",
    "render_many_resumable",
    "run_jobs",
    "with_plain_display",
]
