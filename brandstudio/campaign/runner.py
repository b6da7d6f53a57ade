"""Running a campaign: build the studio (or the Ray executor) and hand it to :func:`brandstudio.batch.run_jobs`."""

from __future__ import annotations

from pathlib import Path

from ..batch import CampaignSummary, EventCallback, LocalExecutor, run_jobs, with_plain_display
from ..distributed import RayExecutor
from ..errors import CampaignError, error_context
from ..studio import BrandStudio
from .load import Campaign, load_campaign
from .schema import BACKENDS

__all__ = ["require_jobs", "run"]


def require_jobs(c: Campaign) -> None:
    """Raise :class:`~brandstudio.errors.CampaignError` when the campaign has no job at all.

    An empty campaign would otherwise "succeed" with nothing rendered (exit 0), which hides a
    brief that lost its rows. A campaign without a CSV always has at least one job (an empty
    ``[matrix]`` list is refused when the file is read), so no jobs means a CSV with a header
    and no data rows.
    """
    if c.jobs:
        return
    raise CampaignError(
        f"campaign {c.name!r} has no jobs to render: its CSV of briefs has a header but no data rows",
        file=str(c.path) if c.path else None,
        field="campaign.csv",
        fix="add one row per clip under the CSV's header (or point campaign.csv at the right file)",
    )


def run(
    campaign: Campaign | str | Path,
    *,
    quiet: bool = False,
    retry_failed: bool = True,
    on_event: EventCallback | None = None,
    backend: str | None = None,
    device: str = "auto",
    studio: BrandStudio | None = None,
    ray_address: str | None = None,
    workers: int | None = None,
) -> CampaignSummary:
    """Render every job that is not done yet; resumable, and one failure never stops the rest.

    Args:
        campaign: a :class:`Campaign` or the path of a campaign file.
        quiet: print nothing; otherwise one plain line per finished job on stderr (the CLI
            shows a progress bar instead, through ``on_event``).
        retry_failed: render jobs that failed in an earlier run again (default) or skip them.
        on_event: called with a :class:`~brandstudio.batch.JobEvent` before and after each job
            and as its render progresses (on the Ray backend: when a worker takes it).
        backend: ``"local"`` (this process, one model) or ``"ray"`` (one actor per GPU of a
            Ray cluster, see :mod:`brandstudio.distributed`); default: the campaign file's, or
            ``"ray"`` when ``ray_address`` is given.
        device: passed to :class:`BrandStudio` (``"auto"``, ``"cuda"``, ``"cpu"``).
        studio: an already loaded studio for the campaign's profile (local backend; its model
            is reused).
        ray_address: the Ray cluster (``"auto"``, ``"ray://head:10001"``, ``"local"``);
            default: the campaign's ``[ray] address``. Ignored when Ray is already initialised.
        workers: Ray render actors; default: the campaign's ``[ray] workers``, else one per GPU.

    Returns a :class:`~brandstudio.batch.CampaignSummary`; ``summary.exit_code`` is 3 when any
    job failed. A campaign with no jobs (a CSV with a header only) is a
    :class:`~brandstudio.errors.CampaignError` (:func:`require_jobs`), not an empty success.

    Example:
        >>> summary = run("spring.toml", backend="ray", ray_address="auto")   # doctest: +SKIP
        >>> summary.exit_code                                                 # doctest: +SKIP
        0
    """
    # 1. the campaign and its backend
    c = campaign if isinstance(campaign, Campaign) else load_campaign(campaign)
    require_jobs(c)  # before any model or cluster is started
    file = str(c.path) if c.path else None
    backend = backend or ("ray" if ray_address else c.backend)
    if backend not in BACKENDS:
        raise CampaignError(
            f"unknown campaign backend {backend!r}",
            file=file,
            field="campaign.backend",
            value=backend,
            fix="use backend = 'local' (this process) or 'ray' (a Ray cluster)",
        )
    batch = dict(
        name=c.name, output_dir=c.output_dir, manifest=c.manifest_path, audit_dir=c.audit_dir,
        retry_failed=retry_failed, on_event=with_plain_display(on_event, quiet=quiet),
    )  # fmt: skip

    # 2. on a Ray cluster: one actor per GPU, each with its own studio
    if backend == "ray":
        with error_context(file=file):
            with RayExecutor(
                c.profile, address=ray_address or c.ray.address, workers=workers or c.ray.workers,
                gpus_per_worker=c.ray.gpus_per_worker, cpus_per_worker=c.ray.cpus_per_worker, device=device,
            ) as executor:  # fmt: skip
                return run_jobs(executor, c.jobs, **batch)

    # 3. here: one studio, its model loaded once for every job
    if studio is None:
        studio = BrandStudio(c.profile, output_dir=c.output_dir, device=device)
    elif studio.profile.root.resolve() != c.profile.resolve():
        raise CampaignError(
            f"the studio given is for {studio.profile.root}, the campaign for {c.profile}",
            file=file,
            field="campaign.profile",
            fix="pass a BrandStudio loaded from the campaign's profile, or none",
        )
    return run_jobs(LocalExecutor(studio), c.jobs, **batch)
