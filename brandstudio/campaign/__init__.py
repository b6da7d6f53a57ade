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
    backend = "local"                             # or "ray": a Ray cluster (see Backends)
    deliveries = ["social-vertical", "mezzanine"] # optional: each job generated once, encoded
                                                  # once per delivery (<clip>.<delivery>.<mp4|mov>)

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

What a run writes under ``output_dir`` (the clips, ``manifest.jsonl``, ``audit/<profile-id>.jsonl``,
``.campaign.lock``), how a killed run resumes and what the audit log records: see
:mod:`brandstudio.batch`, which runs a campaign's jobs.

**Backends.** ``backend="local"`` renders the jobs in order in this process, with one
:class:`~brandstudio.studio.BrandStudio` (the model is loaded once, not once per job).
``backend="ray"`` (or ``campaign run --ray ADDRESS``) spreads them over a Ray cluster, one
actor per GPU holding its loaded pipeline (:mod:`brandstudio.distributed`). Either
way this process alone writes the manifest and the audit log; workers render, publish the clip
and send back only its path, hash and :class:`~brandstudio.request.RenderResult`.

**Shared storage.** ``output_dir`` may be an fsspec URL (``s3://bucket/spring``,
``gs://...``, ``file:///mnt/shared/renders``): each clip is rendered to a local staging file,
then uploaded with its sidecars (MP4 last) and the staging copy deleted. The manifest, audit
log and lock then live in ``state_dir`` (default ``.brandstudio/<name>`` next to the campaign
file). A clip on shared storage counts as done when it exists with the recorded size.

Modules: :mod:`~.schema` (the file's tables), :mod:`~.briefs` (CSV briefs), :mod:`~.load`
(the jobs of a campaign, its plan), :mod:`~.runner` (running it on a backend).

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

from ..batch import CampaignSummary, Job, JobEvent, JobFailure, JobPlan, read_manifest
from ..batch.briefs import BriefRow, read_briefs
from .load import Campaign, load_campaign, plan
from .runner import run
from .schema import BACKENDS, CampaignSection, CampaignSpec, DefaultsSection, RaySection

__all__ = [
    "BACKENDS",
    "BriefRow",
    "Campaign",
    "CampaignSection",
    "CampaignSpec",
    "CampaignSummary",
    "DefaultsSection",
    "Job",
    "JobEvent",
    "JobFailure",
    "JobPlan",
    "RaySection",
    "load_campaign",
    "plan",
    "read_briefs",
    "read_manifest",
    "run",
]
