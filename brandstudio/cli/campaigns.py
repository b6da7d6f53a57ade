"""``brandstudio campaign plan|run``: many clips from one brief file, resumable."""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer
from rich.table import Table

from ..batch import PlainDisplay
from ..campaign import load_campaign
from ..campaign import plan as plan_campaign
from ..campaign import run as run_campaign
from ..campaign.runner import require_jobs
from ..errors import BrandStudioError
from .app import campaign_app, err, fail, out
from .display import CampaignProgress, plain, safe


@campaign_app.command("plan")
def campaign_plan(file: Path = typer.Argument(..., help="campaign file (TOML)")) -> None:
    """Show every job of a campaign and whether it is done, pending or failed."""
    try:
        campaign = load_campaign(file)
        require_jobs(campaign)  # an empty campaign is an error (exit 2), not an empty table
        plans = plan_campaign(campaign)
    except BrandStudioError as exc:
        fail(exc)
    table = Table("job", "variables", "aspect", "status", "output", title=f"campaign {safe(campaign.name)}")
    colours = {"done": "green", "pending": "yellow", "failed": "red", "interrupted": "magenta"}
    for p in plans:
        j = p.job
        status = f"[{colours[p.status]}]{p.status}[/]"
        if p.status == "failed" and p.record:
            status += safe(f" ({p.record.get('error', {}).get('type', 'error')})")
        variables = ", ".join(f"{k}={v}" for k, v in j.variables.items())
        table.add_row(safe(j.id), safe(variables), safe(j.aspect or "(profile)"), status, safe(", ".join(f.name for f in j.files)))
    out.print(table)
    counts = {s: sum(p.status == s for p in plans) for s in ("done", "pending", "interrupted", "failed")}
    out.print(
        f"{len(plans)} jobs: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n),
        highlight=False,
    )
    out.print(f"output: {plain(campaign.destination)}", highlight=False, markup=False)
    for w in campaign.warnings:
        err.print(f"[yellow]warning:[/] {safe(w)}", highlight=False)


@campaign_app.command("run")
def campaign_run(
    file: Path = typer.Argument(..., help="campaign file (TOML)"),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="one plain line per job (CI logs), no progress bar"
    ),
    retry_failed: bool = typer.Option(
        True, "--retry-failed/--no-retry-failed", help="render failed jobs again"
    ),
    device: str = typer.Option("auto", help="auto, cuda or cpu"),
    ray: str | None = typer.Option(
        None,
        "--ray",
        metavar="ADDRESS",
        help="render on a Ray cluster: 'auto' (the cluster this machine is in), HEAD:6379, "
        "ray://HEAD:10001, or 'local' to start Ray here; one worker per GPU",
    ),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Ray workers (default: one per GPU)"),
) -> None:
    """Render a campaign; resumes where a killed run stopped. Exit 0: all done, 3: some failed."""
    try:
        campaign = load_campaign(file)
        display = contextlib.nullcontext(PlainDisplay()) if quiet else CampaignProgress(err)
        with display as on_event:
            summary = run_campaign(
                campaign, quiet=True, on_event=on_event, retry_failed=retry_failed, device=device,
                ray_address=ray, workers=workers,
            )  # fmt: skip
    except BrandStudioError as exc:
        fail(exc)
    print(
        f"campaign {plain(summary.name)}: {summary.done}/{summary.total} done "
        f"({len(summary.rendered)} rendered now, {len(summary.skipped)} already done), "
        f"{len(summary.failed)} failed in {summary.seconds:.1f}s"
    )
    print(f"manifest: {plain(summary.manifest)}")
    if summary.failed:
        err.print(f"[bold red]{len(summary.failed)} failed:[/]", highlight=False)
        for f in summary.failed:
            err.print(plain(f"{f.job.id} {f.job.source}: {f.error_type}"), markup=False, highlight=False)
            err.print(
                "  " + plain(f.message).replace("\n", "\n  "), markup=False, highlight=False, soft_wrap=True
            )
        raise typer.Exit(summary.exit_code)
