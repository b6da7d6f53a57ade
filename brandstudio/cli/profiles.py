"""``brandstudio profile validate|show|schema`` and ``templates list``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from ..errors import BrandStudioError
from ..profile.loader import load_profile
from ..profile.schema import profile_json_schema
from ..prompts.templates import TemplateLibrary, shared_templates_dir
from ..style import new_profile
from .app import err, fail, out, profile_app, templates_app
from .display import json_text, plain, safe


@profile_app.command("validate")
def profile_validate(paths: list[Path] = typer.Argument(..., help="one or more profile directories")) -> None:
    """Check profiles: schema, every asset opened, hashes. Exit 2 if any is invalid."""

    failed = 0
    for p in paths:
        try:
            prof = load_profile(p)
        except BrandStudioError as exc:
            failed += 1
            err.print(f"[bold red]invalid[/] {safe(p)}", highlight=False)
            err.print(plain(exc), markup=False, highlight=False)
            continue
        out.print(
            f"[green]valid[/] {safe(p)}  {safe(prof.id)}  fingerprint {prof.fingerprint[:16]}  "
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
        fail(exc)
    summary = prof.summary()
    if as_json:
        print(json_text(json.dumps(summary, indent=2, ensure_ascii=False)))
        return
    s = prof.spec
    out.print(
        f"[bold]{safe(s.brand.name)}[/] ({safe(s.brand.id)}) v{safe(s.brand.version)}  "
        f"language {safe(s.brand.language)}  region {safe(s.brand.region)}",
        highlight=False,
    )
    out.print(f"fingerprint {prof.fingerprint}", highlight=False)
    out.print(
        f"model {safe(s.model.id)}  preset {safe(s.model.preset)}  steps {s.model.steps}  "
        f"guidance {s.model.guidance_high}/{s.model.guidance_low}  shift {s.model.flow_shift}",
        highlight=False,
    )
    out.print(
        f"output {safe(', '.join(s.output.aspects))}  {s.output.resolution}p  {s.output.fps} fps  "
        f"{s.output.duration}s",
        highlight=False,
    )
    table = Table("field", "file", "sha256", "bytes")
    for k, a in summary["assets"].items():
        table.add_row(safe(k), safe(a["file"]), a["sha256"][:16], str(a["bytes"]))
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
        fail(exc)
    table = Table("template", "description", "variables", "cues", "source")
    for t in templates:
        vars_ = ", ".join(
            " ".join(filter(None, (f"{k}: {v.type}", v.limits_text())))
            + ("" if v.required else f" = {v.default!r}")
            for k, v in t.spec.variables.items()
        )
        table.add_row(
            safe(t.name),
            safe(t.spec.description),
            safe(vars_),
            str(len(t.spec.captions)),
            safe(t.path.parent),
        )
    out.print(table)


@profile_app.command("new")
def profile_new(
    path: Path = typer.Argument(..., help="the new profile's folder (must not exist, or be empty)"),
    name: str = typer.Option(None, "--name", help="the brand's name"),
    logo: Path = typer.Option(None, "--logo", help="the logo (PNG with transparency)"),
    references: Path = typer.Option(None, "--references", help="a folder of the brand's stills"),
    palette: str = typer.Option(None, "--palette", help="'#RRGGBB,#RRGGBB,...' (default: taken from the logo and stills)"),
    font: Path = typer.Option(None, "--font", help="caption font (.ttf/.otf; default: DejaVu Sans Bold, Latin/Greek/Cyrillic)"),
    music: list[Path] = typer.Option([], "--music", help="a music track (repeat; default: a placeholder bed)"),
    language: str = typer.Option("en", "--language", help="BCP-47 language of the captions, e.g. en, zh"),
    region: str = typer.Option("none", "--region", help="AI-label rules: eu, cn, us or none"),
    competitors: str = typer.Option("", "--competitors", help="competitor names, comma-separated"),
    client: str = typer.Option("", "--client", help="the client's legal name"),
) -> None:  # fmt: skip
    """Onboard a client: a complete, commented, valid profile from a logo and a few stills."""

    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    if name is None and interactive:
        name = typer.prompt("Brand name")
    if logo is None and interactive:
        logo = Path(typer.prompt("Logo (PNG)"))
    if references is None and interactive:
        references = Path(typer.prompt("Folder of reference stills"))
    missing = [flag for flag, value in (("--name", name), ("--logo", logo), ("--references", references)) if value is None]
    if missing:
        err.print(f"[bold red]error:[/] profile new needs {', '.join(missing)}", highlight=False)
        raise typer.Exit(2)
    try:
        made = new_profile(
            path, name=name, logo=logo, references=references,
            palette=[c.strip() for c in palette.split(",") if c.strip()] if palette else None,
            font=font, music=music, language=language, region=region,
            competitors=[c.strip() for c in competitors.split(",") if c.strip()], client=client,
        )  # fmt: skip
    except BrandStudioError as exc:
        fail(exc)
    out.print(
        f"[green]created[/] {safe(made.path)}  {safe(made.profile.id)}  fingerprint {made.profile.fingerprint[:16]}  "
        f"palette {safe(' '.join(made.palette))}" + (" (extracted)" if made.palette_extracted else ""),
        highlight=False,
    )
    out.print("next steps:", highlight=False)
    for step in made.next_steps():
        out.print(f"  - {safe(step)}", highlight=False)
