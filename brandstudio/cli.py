"""The ``brandstudio`` command line (Typer).

::

    brandstudio render brand_profiles/aurora-coffee product-hero --var product="Night Roast" --aspect 9:16
    brandstudio profile validate brand_profiles/aurora-coffee
    brandstudio profile show brand_profiles/qinglan-tea
    brandstudio profile schema > brand.schema.json
    brandstudio templates list --profile brand_profiles/aurora-coffee
    brandstudio qc clip.mp4 --profile brand_profiles/aurora-coffee [--json] [--html report.html]
    brandstudio verify clip.mp4 [--trust roots.pem] [--json]     # C2PA content credentials
    brandstudio campaign plan notebooks/campaigns/spring.toml
    brandstudio campaign run notebooks/campaigns/spring.toml [--quiet]
    brandstudio cache prewarm brand_profiles/aurora-coffee
    brandstudio cache ls | stats | prune --max-size 2GB   [--cache DIR-or-URL]

Errors print as one clear message (what, where, fix) with exit status 2, never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as ProgressBar
from rich.table import Table

from .batch import JobEvent, PlainDisplay
from .campaign import load_campaign
from .campaign import plan as plan_campaign
from .campaign import run as run_campaign
from .errors import BrandStudioError, ProvenanceError, RequestError
from .files import write_text_atomic
from .generation.cache import SceneCache, parse_size
from .logs import quiet_import_notices
from .profile.loader import load_profile
from .profile.schema import profile_json_schema
from .prompts.templates import TemplateLibrary, shared_templates_dir
from .provenance import read_credentials
from .qc import check_file
from .studio import BrandStudio

app = typer.Typer(
    help="Brand-consistent marketing video.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
profile_app = typer.Typer(help="Validate, inspect and document brand profiles.", no_args_is_help=True)
templates_app = typer.Typer(help="Prompt templates.", no_args_is_help=True)
app.add_typer(profile_app, name="profile")
app.add_typer(templates_app, name="templates")
campaign_app = typer.Typer(help="Campaigns: many clips from one brief file, resumable.", no_args_is_help=True)
app.add_typer(campaign_app, name="campaign")
cache_app = typer.Typer(help="The scene cache: generated footage, reused across renders.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")

out = Console()
err = Console(stderr=True)

@app.callback()
def _cli_setup(ctx: typer.Context) -> None:
    """Brand-consistent marketing video."""

    quiet_import_notices()  # QUIET_LOGGERS: done at `import brandstudio`; again after a user's reset
    _exit_cleanly_on_sigterm(ctx)


def _exit_cleanly_on_sigterm(ctx: typer.Context) -> None:
    """A ``kill`` (SIGTERM, as job runners and ``timeout`` send) unwinds like Ctrl-C does: the
    encoder's ffmpeg is stopped and the hidden partial files are removed, and the command exits
    with status 143. Without this, Python dies at once and leaves both behind."""

    if threading.current_thread() is not threading.main_thread():
        return

    def terminate(signum, frame) -> None:
        raise SystemExit(128 + signum)  # a BaseException: every `finally` / cleanup runs

    previous = signal.signal(signal.SIGTERM, terminate)
    ctx.call_on_close(lambda: signal.signal(signal.SIGTERM, previous))


def _fail(exc: BrandStudioError) -> None:
    err.print(f"[bold red]error:[/] {type(exc).__name__}", highlight=False)
    err.print(str(exc), markup=False, highlight=False)
    raise typer.Exit(2)


class RenderProgress:
    """A render's progress on the terminal: one bar per stage with its step, total and ETA
    (each denoising step of each expert, each encoded chunk), under the clip's name; nothing
    when the output is not a terminal.

    Used as the ``on_progress`` callback of :meth:`brandstudio.BrandStudio.render`.
    """

    def __init__(self, console: Console, title: str) -> None:
        self.title = escape(title)
        self.bar = ProgressBar(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )
        self.task = None
        self.stage: str | None = None

    def __enter__(self) -> RenderProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def __call__(self, event) -> None:
        if event.stage != self.stage or self.task is None:  # a new stage: a new bar, its own ETA
            if self.task is not None:
                self.bar.remove_task(self.task)
            self.stage = event.stage
            self.task = self.bar.add_task(f"{self.title}: {event.stage}", total=event.total or None, detail="")
        self.bar.update(
            self.task, completed=event.step, total=event.total or None, detail=escape(event.detail or "")
        )


def _parse_vars(pairs: list[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        if "=" not in pair:
            err.print(f"[bold red]error:[/] --var expects NAME=VALUE, got {pair!r}")
            raise typer.Exit(2)
        k, v = pair.split("=", 1)
        values[k.strip()] = v
    return values


@app.command()
def render(
    profile: Path = typer.Argument(..., help="brand profile directory"),
    template: str = typer.Argument(..., help="template name (see `brandstudio templates list`)"),
    var: list[str] = typer.Option([], "--var", "-v", help="template variable NAME=VALUE (repeatable)"),
    aspect: str | None = typer.Option(None, "--aspect", "-a", help="16:9, 9:16, 1:1 or 4:5"),
    seed: int | None = typer.Option(None, help="generation seed (default: derived from the brief)"),
    output: Path | None = typer.Option(None, "--output", "-o", help="MP4 path"),
    output_dir: Path = typer.Option(Path("renders"), help="where clips go when --output is not given"),
    duration: float | None = typer.Option(None, help="seconds (default: the profile's; a multi-shot template's own length)"),
    resolution: int | None = typer.Option(None, help="delivered shorter side in px (default: the profile's)"),
    mood: str | None = typer.Option(
        None, "--mood", "--music-mood", help="music mood, one of the profile's track moods (default: the template's)"
    ),
    voiceover: Path | None = typer.Option(None, "--voiceover", help="audio file spoken over the music (ducks it)"),
    device: str = typer.Option("auto", help="auto, cuda or cpu"),
    reframe: str | None = typer.Option(None, help="aspect crop: centre, saliency or face (default: the profile's)"),
    match: str | None = typer.Option(None, help="colour matching: off, reinhard, mkl or histogram"),
    upscaler: str | None = typer.Option(None, help="lanczos, bicubic or realesrgan (weights: the profile's)"),
    preset: str | None = typer.Option(None, help="speed preset: quality, balanced or fast (default: the profile's)"),
    memory: str | None = typer.Option(None, help="memory plan: auto, resident, swap or group-offload"),
    as_json: bool = typer.Option(False, "--json", help="print the RenderResult as JSON"),
) -> None:
    """Render one clip and print where it is."""

    overrides = {"output.reframe": reframe, "colour.match": match, "upscale.method": upscaler}
    options = {"output.reframe": "--reframe", "colour.match": "--match", "upscale.method": "--upscaler"}
    try:
        studio = BrandStudio(profile, output_dir=output_dir, device=device, overrides=overrides)
        with RenderProgress(err, f"{template} for {studio.profile.name}") as progress:
            result = studio.render(
                template,
                aspect=aspect,
                seed=seed,
                output=output,
                duration=duration,
                resolution=resolution,
                music_mood=mood,
                voiceover=voiceover,
                preset=preset,
                memory=memory,
                on_progress=progress,
                **_parse_vars(var),
            )
    except BrandStudioError as exc:
        if exc.field in options and overrides.get(exc.field) is not None:  # the option's value, not the profile
            exc.message = f"{options[exc.field]} {overrides[exc.field]!r}: {exc.message}"
            exc.fix = f"pass a valid {options[exc.field]} (brandstudio render --help lists the values)"
        elif exc.fix and "help(BrandStudio.render)" in exc.fix:
            exc.fix = "see brandstudio render --help for the accepted values"
        _fail(exc)
    if as_json:
        print(result.to_json())
        return
    timings = ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items())
    err.print(
        f"[green]rendered[/] {result.width}×{result.height} {result.duration:.2f}s @ {result.fps} fps, "
        f"seed {result.seed} ({timings})",
        highlight=False,
    )
    for warning in result.warnings:  # e.g. a multi-shot continuation the model could not do
        err.print(f"[yellow]warning[/]: {escape(str(warning))}", highlight=False)
    for v in result.safety:  # rules that warned, frames blurred (a blocking one stops the render)
        what = f"{v.get('rule')} ({v.get('action')}) in {v.get('where')}"
        err.print(f"[yellow]safety[/]: {escape(what)}: {escape(str(v.get('message') or v.get('matched')))}", highlight=False)
    if result.qc:
        colour = {"pass": "green", "warn": "yellow", "fail": "red"}.get(result.qc.get("status"), "dim")
        flagged = [f"{k} {c.get('status')}" for k, c in (result.qc.get("checks") or {}).items()
                   if c.get("status") in ("warn", "fail")]  # fmt: skip
        err.print(
            f"[{colour}]QC {str(result.qc.get('status')).upper()}[/] {result.qc.get('score')}"
            + (f" ({escape(', '.join(flagged))})" if flagged else "")
            + (f": {result.qc_report}" if result.qc_report else ""),
            highlight=False,
        )
    prov = result.provenance or {}
    if prov.get("signed"):
        err.print(f"[green]signed[/] C2PA, {prov.get('signer')} ({prov.get('alg')})", highlight=False)
    elif prov:
        err.print(f"[yellow]unsigned[/]: {escape(str(prov.get('reason')))}", highlight=False)
    print(result.path)


@app.command("qc")
def qc(
    clip: Path = typer.Argument(..., help="video file to check (made by brandstudio or not)"),
    profile: Path = typer.Option(..., "--profile", "-p", help="brand profile directory to check against"),
    as_json: bool = typer.Option(False, "--json", help="print the QC report as JSON"),
    html_out: Path | None = typer.Option(None, "--html", help="also write the HTML report here"),
) -> None:
    """Check a clip against a brand profile: palette ΔE, flicker, loudness. Exit 1 if it fails."""

    if html_out is not None and html_out.is_dir():  # before the work, not after it
        err.print(f"[bold red]error:[/] --html {html_out} is a folder; name a file, e.g. {html_out / 'qc.html'}")
        raise typer.Exit(2)
    try:
        prof = load_profile(profile)
        with err.status(f"checking {clip.name} against {prof.name}…"):
            report = check_file(clip, prof)
        if html_out is not None:
            write_text_atomic(html_out, report.to_html())
            err.print(f"HTML report: {html_out}", highlight=False)
    except BrandStudioError as exc:
        _fail(exc)
    if as_json:
        print(report.to_json())
    else:
        colours = {"pass": "green", "warn": "yellow", "fail": "red", "skip": "dim"}
        table = Table("status", "check", "value", "warn / fail at", "why", title=f"QC {clip.name}")
        for c in report.checks:
            value = "-" if c.value is None else f"{c.value:g} {c.unit}".strip()
            limits = "-" if c.warn is None and c.fail is None else f"{c.warn:g} / {c.fail:g}"
            table.add_row(f"[{colours[c.status]}]{c.status}[/]", c.name, value, limits, c.explanation)
        out.print(table)
        out.print(
            f"[{colours[report.status]}]{report.status.upper()}[/] score {report.score} "
            f"(profile {report.profile_id}, fingerprint {report.profile_fingerprint[:16]})",
            highlight=False,
        )
    if report.status == "fail":
        raise typer.Exit(1)


@app.command("verify")
def verify(
    clip: Path = typer.Argument(..., help="MP4 whose C2PA content credentials to check"),
    trust: Path | None = typer.Option(None, "--trust", help="PEM file of trusted root certificates"),
    as_json: bool = typer.Option(False, "--json", help="print the credential summary as JSON"),
) -> None:
    """Read and check a clip's C2PA credentials (offline). Exit 1 if missing, tampered or (with --trust) untrusted."""

    try:
        if not clip.is_file():
            raise ProvenanceError(f"no such clip: {clip}", file=str(clip), fix="pass the path of an MP4 file")
        summary = read_credentials(clip, trust_anchors=trust)
    except BrandStudioError as exc:
        _fail(exc)
    ok = summary["signed"] and summary["intact"] and (trust is None or summary["trusted"])
    if as_json:
        print(json.dumps({**summary, "ok": ok}, indent=2, ensure_ascii=False))
    elif not summary["signed"]:
        out.print(f"[red]no C2PA credentials[/] in {clip.name}", highlight=False)
    else:
        render = summary.get("render") or {}
        table = Table("field", "value", title=f"C2PA {clip.name}", show_header=False)
        for k, v in (
            ("state", summary["state"]),
            ("signed by", f"{summary['signer']['common_name']} (issuer {summary['signer']['issuer']}, "
                          f"{summary['signer']['alg']})"),
            ("claim generator", summary["claim_generator"]),
            ("digital source type", str(summary["digital_source_type"]).rsplit("/", 1)[-1] + " (IPTC)"),
            ("actions", ", ".join(summary["actions"])),
            ("profile", f"{render.get('profile')} {render.get('profile_version', '')} "
                        f"fingerprint {str(render.get('profile_fingerprint'))[:16]}"),
            ("model, seed", f"{render.get('model')}, seed {render.get('seed')}"),
            ("template, aspect", f"{render.get('template')}, {render.get('aspect')}"),
        ):  # fmt: skip
            table.add_row(k, str(v))
        for f in summary["failures"]:
            table.add_row("[red]failure[/]" if f["code"] != "signingCredential.untrusted" else "[yellow]note[/]",
                          f"{f['code']}: {f['explanation']}")  # fmt: skip
        out.print(table)
        verdict = "[green]OK[/]" if ok else "[red]FAILED[/]"
        trust_note = "trusted" if summary["trusted"] else "untrusted signer (pass --trust ROOTS.pem)"
        out.print(f"{verdict} intact={summary['intact']} {trust_note}", highlight=False)
    if not ok:
        raise typer.Exit(1)


@profile_app.command("validate")
def profile_validate(paths: list[Path] = typer.Argument(..., help="one or more profile directories")) -> None:
    """Check profiles: schema, every asset opened, hashes. Exit 2 if any is invalid."""

    failed = 0
    for p in paths:
        try:
            prof = load_profile(p)
        except BrandStudioError as exc:
            failed += 1
            err.print(f"[bold red]invalid[/] {p}", highlight=False)
            err.print(str(exc), markup=False, highlight=False)
            continue
        out.print(
            f"[green]valid[/] {p}  {prof.id}  fingerprint {prof.fingerprint[:16]}  "
            f"({len(prof.assets)} assets)",
            highlight=False,
        )
    if failed:
        raise typer.Exit(2)


@profile_app.command("show")
def profile_show(path: Path, as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Show a profile's settings, assets and fingerprint."""

    try:
        prof = load_profile(path)
    except BrandStudioError as exc:
        _fail(exc)
    summary = prof.summary()
    if as_json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
        return
    s = prof.spec
    out.print(
        f"[bold]{s.brand.name}[/] ({s.brand.id}) v{s.brand.version}  language {s.brand.language}  "
        f"region {s.brand.region}",
        highlight=False,
    )
    out.print(f"fingerprint {prof.fingerprint}", highlight=False)
    out.print(
        f"model {s.model.id}  preset {s.model.preset}  steps {s.model.steps}  "
        f"guidance {s.model.guidance_high}/{s.model.guidance_low}  shift {s.model.flow_shift}",
        highlight=False,
    )
    out.print(
        f"output {', '.join(s.output.aspects)}  {s.output.resolution}p  {s.output.fps} fps  "
        f"{s.output.duration}s",
        highlight=False,
    )
    table = Table("field", "file", "sha256", "bytes")
    for k, a in summary["assets"].items():
        table.add_row(k, a["file"], a["sha256"][:16], str(a["bytes"]))
    out.print(table)


@profile_app.command("schema")
def profile_schema() -> None:
    """Print brand.toml's JSON Schema."""

    print(json.dumps(profile_json_schema(), indent=2, ensure_ascii=False))


@templates_app.command("list")
def templates_list(
    profile: Path | None = typer.Option(None, help="include this profile's own templates"),
) -> None:
    """List templates with their variables."""

    dirs = [shared_templates_dir()]
    if profile is not None:
        dirs.insert(0, profile / "templates")
    try:
        templates = TemplateLibrary(dirs).all()
    except BrandStudioError as exc:
        _fail(exc)
    table = Table("template", "description", "variables", "cues", "source")
    for t in templates:
        vars_ = ", ".join(
            f"{k}: {v.type}" + ("" if v.required else f" = {v.default!r}")
            for k, v in t.spec.variables.items()
        )
        table.add_row(t.name, t.spec.description, vars_, str(len(t.spec.captions)), str(t.path.parent))
    out.print(table)


_CACHE_HELP = "scene cache directory or fsspec URL (default: $BRANDSTUDIO_SCENE_CACHE or ~/.cache/brandstudio/scenes)"


def _open_cache(location: str | None):

    try:
        return SceneCache(location)
    except (ValueError, ImportError, OSError) as exc:
        _fail(
            RequestError(
                f"cannot open the scene cache {location!r}: {type(exc).__name__}: {exc}",
                field="--cache",
                value=location,
                fix="give a local directory, or an fsspec URL whose filesystem package is installed (s3fs, gcsfs)",
            )
        )


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _when(t: float) -> str:

    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M")


@cache_app.command("prewarm")
def cache_prewarm(
    profile: Path = typer.Argument(..., help="brand profile directory"),
    aspect: str | None = typer.Option(None, "--aspect", "-a", help="render every scene at this aspect ratio"),
    duration: float | None = typer.Option(None, help="seconds (default: the profile's)"),
    cache: str | None = typer.Option(None, "--cache", help=_CACHE_HELP),
    device: str = typer.Option("auto", help="auto, cuda or cpu"),
) -> None:
    """Generate the profile's [[scenes]] into the scene cache (no post stage, no clip)."""

    store = _open_cache(cache)
    try:
        studio = BrandStudio(profile, device=device, cache=store)
        if not studio.profile.spec.scenes:
            err.print(f"{studio.profile.id} has no [[scenes]]: nothing to prewarm", markup=False, highlight=False)
            return
        with err.status(f"prewarming {len(studio.profile.spec.scenes)} scenes of {studio.profile.name}…"):
            report = studio.prewarm(aspect=aspect, duration=duration)
    except BrandStudioError as exc:
        _fail(exc)
    for r in report:
        out.print(f"{r['cache']:<4}  {r['scene']}  {r['seconds']:.2f}s  {r['key'][:16]}", highlight=False)


@cache_app.command("ls")
def cache_ls(
    cache: str | None = typer.Option(None, "--cache", help=_CACHE_HELP),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """List cached scenes, most recently used first."""
    entries = _open_cache(cache).ls()
    if as_json:
        rows = [
            {"key": e.key, "bytes": e.bytes, "created": e.created, "last_used": e.last_used,
             "shape": list(e.shape), "prompt": e.prompt}
            for e in entries
        ]
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    table = Table()
    for name, width in (("key", 12), ("size", 8), ("frames", 9), ("last used", 16)):
        table.add_column(name, no_wrap=True, min_width=width)
    table.add_column("prompt", no_wrap=True, overflow="ellipsis", min_width=12)
    for e in entries:
        prompt = e.prompt if len(e.prompt) <= 48 else e.prompt[:47] + "…"
        table.add_row(e.key[:12], _human(e.bytes), "{}×{}×{}".format(*e.shape[:3]), _when(e.last_used), prompt)
    out.print(table)


@cache_app.command("stats")
def cache_stats(
    cache: str | None = typer.Option(None, "--cache", help=_CACHE_HELP),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Entries, bytes, hits, misses and corrupt entries dropped."""
    stats = _open_cache(cache).stats()
    if as_json:
        print(json.dumps(stats, indent=2))
        return
    total = stats["hits"] + stats["misses"]
    rate = f" ({stats['hits'] / total:.0%} hit rate)" if total else ""
    out.print(
        f"{stats['location']}\n{stats['entries']} scenes, {_human(stats['bytes'])}; "
        f"{stats['hits']} hits, {stats['misses']} misses{rate}, {stats['corrupt']} corrupt dropped",
        highlight=False,
    )


@cache_app.command("prune")
def cache_prune(
    max_size: str = typer.Option(..., "--max-size", help="keep at most this much, e.g. 500MB or 2GB"),
    cache: str | None = typer.Option(None, "--cache", help=_CACHE_HELP),
) -> None:
    """Evict least-recently-used scenes until the cache fits in --max-size."""

    try:
        limit = parse_size(max_size)
    except ValueError as exc:
        _fail(RequestError(str(exc), field="--max-size", value=max_size, fix="use e.g. --max-size 2GB"))
    store = _open_cache(cache)
    evicted = store.prune(limit)
    freed = sum(e.bytes for e in evicted)
    left = store.stats()
    out.print(
        f"evicted {len(evicted)} scenes ({_human(freed)}); {left['entries']} left, {_human(left['bytes'])}",
        highlight=False,
    )


@campaign_app.command("plan")
def campaign_plan(file: Path = typer.Argument(..., help="campaign file (TOML)")) -> None:
    """Show every job of a campaign and whether it is done, pending or failed."""
    try:
        campaign = load_campaign(file)
        plans = plan_campaign(campaign)
    except BrandStudioError as exc:
        _fail(exc)
    table = Table("job", "variables", "aspect", "status", "output", title=f"campaign {escape(campaign.name)}")
    colours = {"done": "green", "pending": "yellow", "failed": "red", "interrupted": "magenta"}
    for p in plans:
        j = p.job
        status = f"[{colours[p.status]}]{p.status}[/]"
        if p.status == "failed" and p.record:
            status += escape(f" ({p.record.get('error', {}).get('type', 'error')})")
        variables = ", ".join(f"{k}={v}" for k, v in j.variables.items())
        table.add_row(j.id, escape(variables), escape(j.aspect or "(profile)"), status, escape(j.output.name))
    out.print(table)
    counts = {s: sum(p.status == s for p in plans) for s in ("done", "pending", "interrupted", "failed")}
    out.print(
        f"{len(plans)} jobs: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n),
        highlight=False,
    )
    out.print(f"output: {campaign.destination}", highlight=False, markup=False)
    for w in campaign.warnings:
        err.print(f"[yellow]warning:[/] {escape(w)}", highlight=False)


class CampaignProgress:
    """The progress bar of ``campaign run``: the current job and how far its render is,
    done/total and the ETA, with a line per finished job. A context manager and an
    ``on_event`` callback (:class:`~brandstudio.batch.JobEvent`). Job text is escaped: brand
    names and CSV values may contain rich markup such as ``[b]``."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar = ProgressBar(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self.task = None

    def __enter__(self) -> CampaignProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def __call__(self, ev: JobEvent) -> None:
        if self.task is None:
            self.task = self.bar.add_task("starting", total=ev.total)
        what = escape(f"{ev.job.id} {ev.job.describe()}")
        if ev.status == "started":
            self.bar.update(self.task, description=f"{what} · loading")
        elif ev.status == "stage":
            self.bar.update(self.task, description=f"{what} · {escape(str(ev.progress or ev.stage))}")
        elif ev.status == "done":
            self.console.print(f"[green]done[/]    {escape(ev.job.id + ' ' + ev.job.output.name)}", highlight=False)
            self.bar.update(self.task, advance=1)
        elif ev.status == "failed":
            first = (ev.error or "").partition("\n")[0]
            self.console.print(f"[red]failed[/]  {escape(f'{ev.job.id} {ev.job.source}: {first}')}", highlight=False)
            self.bar.update(self.task, advance=1)


@campaign_app.command("run")
def campaign_run(
    file: Path = typer.Argument(..., help="campaign file (TOML)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="one plain line per job (CI logs), no progress bar"),
    retry_failed: bool = typer.Option(True, "--retry-failed/--no-retry-failed", help="render failed jobs again"),
    device: str = typer.Option("auto", help="auto, cuda or cpu"),
    ray: str | None = typer.Option(
        None, "--ray", metavar="ADDRESS",
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
        _fail(exc)
    print(
        f"campaign {summary.name}: {summary.done}/{summary.total} done "
        f"({len(summary.rendered)} rendered now, {len(summary.skipped)} already done), "
        f"{len(summary.failed)} failed in {summary.seconds:.1f}s"
    )
    print(f"manifest: {summary.manifest}")
    if summary.failed:
        err.print(f"[bold red]{len(summary.failed)} failed:[/]", highlight=False)
        for f in summary.failed:
            err.print(f"{f.job.id} {f.job.source}: {f.error_type}", markup=False, highlight=False)
            err.print("  " + f.message.replace("\n", "\n  "), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(summary.exit_code)


def main() -> None:  # pragma: no cover - entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
