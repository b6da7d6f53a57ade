"""``brandstudio render``, ``qc`` and ``verify``: one clip made, measured, or its credentials read."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from ..errors import BrandStudioError, ProvenanceError
from ..files import write_text_atomic
from ..profile.loader import load_profile
from ..provenance import read_credentials
from ..qc import check_file
from ..studio import BrandStudio
from .app import app, err, fail, out, parse_vars
from .display import RenderProgress, json_text, plain, safe


@app.command()
def render(
    profile: Path = typer.Argument(..., help="brand profile directory"),
    template: str = typer.Argument(..., help="template name (see `brandstudio templates list`)"),
    var: list[str] = typer.Option([], "--var", "-v", help="template variable NAME=VALUE (repeatable)"),
    aspect: str | None = typer.Option(None, "--aspect", "-a", help="16:9, 9:16, 1:1 or 4:5"),
    seed: int | None = typer.Option(None, help="generation seed (default: derived from the brief)"),
    output: Path | None = typer.Option(None, "--output", "-o", help="MP4 path"),
    output_dir: Path = typer.Option(Path("renders"), help="where clips go when --output is not given"),
    duration: float | None = typer.Option(
        None, help="seconds (default: the profile's; a multi-shot template's own length)"
    ),
    resolution: int | None = typer.Option(None, help="delivered shorter side in px (default: the profile's)"),
    fps: str | None = typer.Option(
        None, "--fps", help='delivery frame rate: 25, 29.97 or "30000/1001" (default: the profile\'s)'
    ),
    slowmo: float = typer.Option(1.0, "--slowmo", help="play the motion this many times slower (2: half speed)"),
    interpolate: str | None = typer.Option(
        None, "--interpolate", help="in-between frames: repeat, flow or rife (default: the profile's)"
    ),
    mood: str | None = typer.Option(
        None,
        "--mood",
        "--music-mood",
        help="music mood, one of the profile's track moods (default: the template's)",
    ),
    voiceover: Path | None = typer.Option(
        None, "--voiceover", help="audio file spoken over the music (ducks it)"
    ),
    device: str = typer.Option("auto", help="auto, cuda or cpu"),
    reframe: str | None = typer.Option(
        None, help="aspect crop: centre, saliency or face (default: the profile's)"
    ),
    match: str | None = typer.Option(None, help="colour matching: off, reinhard, mkl or histogram"),
    upscaler: str | None = typer.Option(None, help="lanczos, bicubic or realesrgan (weights: the profile's)"),
    preset: str | None = typer.Option(
        None, help="speed preset: quality, balanced or fast (default: the profile's)"
    ),
    memory: str | None = typer.Option(None, help="memory plan: auto, resident, swap or group-offload"),
    delivery: list[str] = typer.Option([], "--delivery", help="a delivery of the profile's [[deliveries]] or a preset "
                                       "(social-vertical, broadcast-1080p25, ...); repeat it for several from one generation"),
    as_json: bool = typer.Option(False, "--json", help="print the RenderResult as JSON"),
) -> None:
    """Render one clip (or one per --delivery, from one generation) and print where it is."""

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
                fps=fps,
                slowmo=slowmo,
                interpolation=interpolate,
                music_mood=mood,
                voiceover=voiceover,
                preset=preset,
                memory=memory,
                deliveries=delivery,
                on_progress=progress,
                **parse_vars(var),
            )
    except BrandStudioError as exc:
        if (
            exc.field in options and overrides.get(exc.field) is not None
        ):  # the option's value, not the profile
            exc.message = f"{options[exc.field]} {overrides[exc.field]!r}: {exc.message}"
            exc.fix = f"pass a valid {options[exc.field]} (brandstudio render --help lists the values)"
        elif exc.fix and "help(BrandStudio.render)" in exc.fix:
            exc.fix = "see brandstudio render --help for the accepted values"
        fail(exc)
    if as_json:
        print(json_text(result.to_json()))
        return
    timings = ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items())
    err.print(
        f"[green]rendered[/] {result.width}×{result.height} {result.duration:.2f}s @ {result.fps:g} fps, "
        f"seed {result.seed} ({timings})",
        highlight=False,
    )
    for warning in result.warnings:  # e.g. a multi-shot continuation the model could not do
        err.print(f"[yellow]warning[/]: {safe(warning)}", highlight=False)
    for v in result.safety:  # rules that warned, frames blurred (a blocking one stops the render)
        what = f"{v.get('rule')} ({v.get('action')}) in {v.get('where')}"
        err.print(
            f"[yellow]safety[/]: {safe(what)}: {safe(v.get('message') or v.get('matched'))}", highlight=False
        )
    if result.qc:
        colour = {"pass": "green", "warn": "yellow", "fail": "red"}.get(result.qc.get("status"), "dim")
        flagged = [f"{k} {c.get('status')}" for k, c in (result.qc.get("checks") or {}).items()
                   if c.get("status") in ("warn", "fail")]  # fmt: skip
        err.print(
            f"[{colour}]QC {safe(str(result.qc.get('status')).upper())}[/] {safe(result.qc.get('score'))}"
            + (f" ({safe(', '.join(flagged))})" if flagged else "")
            + (f": {safe(result.qc_report)}" if result.qc_report else ""),
            highlight=False,
        )
    prov = result.provenance or {}
    if prov.get("signed"):
        err.print(
            f"[green]signed[/] C2PA, {safe(prov.get('signer'))} ({safe(prov.get('alg'))})", highlight=False
        )
    elif prov:
        err.print(f"[yellow]unsigned[/]: {safe(prov.get('reason'))}", highlight=False)
    if not result.deliveries:
        print(plain(result.path))
    for d in result.deliveries:  # one line each: the delivery, its QC, its file (stdout: the paths alone)
        qc_status = str((d.get("qc") or {}).get("status", "")).upper()
        err.print(f"delivery {safe(d['name'])}: {d['width']}×{d['height']} @ {d['fps']:g} fps, QC {safe(qc_status)}",
                  highlight=False)  # fmt: skip
        print(plain(d["path"]))


@app.command("qc")
def qc(
    clip: Path = typer.Argument(..., help="video file to check (made by brandstudio or not)"),
    profile: Path = typer.Option(..., "--profile", "-p", help="brand profile directory to check against"),
    as_json: bool = typer.Option(False, "--json", help="print the QC report as JSON"),
    html_out: Path | None = typer.Option(None, "--html", help="also write the HTML report here"),
) -> None:
    """Check a clip against a brand profile: palette ΔE, flicker, loudness. Exit 1 if it fails."""

    if html_out is not None and html_out.is_dir():  # before the work, not after it
        err.print(
            f"[bold red]error:[/] --html {safe(html_out)} is a folder; name a file, e.g. {safe(html_out / 'qc.html')}",
            highlight=False,
        )
        raise typer.Exit(2)
    try:
        prof = load_profile(profile)
        with err.status(f"checking {safe(clip.name)} against {safe(prof.name)}…"):
            report = check_file(clip, prof)
        if html_out is not None:
            write_text_atomic(html_out, report.to_html())
            err.print(f"HTML report: {plain(html_out)}", markup=False, highlight=False)
    except BrandStudioError as exc:
        fail(exc)
    if as_json:
        print(json_text(report.to_json()))
    else:
        colours = {"pass": "green", "warn": "yellow", "fail": "red", "skip": "dim"}
        table = Table("status", "check", "value", "warn / fail at", "why", title=f"QC {safe(clip.name)}")
        for c in report.checks:
            value = "-" if c.value is None else f"{c.value:g} {c.unit}".strip()
            limits = "-" if c.warn is None and c.fail is None else f"{c.warn:g} / {c.fail:g}"
            table.add_row(
                f"[{colours[c.status]}]{c.status}[/]", safe(c.name), safe(value), limits, safe(c.explanation)
            )
        out.print(table)
        out.print(
            f"[{colours[report.status]}]{report.status.upper()}[/] score {report.score} "
            f"(profile {safe(report.profile_id)}, fingerprint {safe(report.profile_fingerprint[:16])})",
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
        fail(exc)
    ok = summary["signed"] and summary["intact"] and (trust is None or summary["trusted"])
    if as_json:
        print(json_text(json.dumps({**summary, "ok": ok}, indent=2, ensure_ascii=False)))
    elif not summary["signed"]:
        out.print(f"[red]no C2PA credentials[/] in {safe(clip.name)}", highlight=False)
    else:
        render = summary.get("render") or {}
        table = Table("field", "value", title=f"C2PA {safe(clip.name)}", show_header=False)
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
            table.add_row(k, safe(v))
        for f in summary["failures"]:
            table.add_row("[red]failure[/]" if f["code"] != "signingCredential.untrusted" else "[yellow]note[/]",
                          safe(f"{f['code']}: {f['explanation']}"))  # fmt: skip
        out.print(table)
        verdict = "[green]OK[/]" if ok else "[red]FAILED[/]"
        trust_note = "trusted" if summary["trusted"] else "untrusted signer (pass --trust ROOTS.pem)"
        out.print(f"{verdict} intact={summary['intact']} {trust_note}", highlight=False)
    if not ok:
        raise typer.Exit(1)
