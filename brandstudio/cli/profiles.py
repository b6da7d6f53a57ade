"""``brandstudio profile validate|show|schema`` and ``templates list``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from ..errors import BrandStudioError
from ..profile.loader import load_profile
from ..profile.schema import profile_json_schema
from ..prompts.templates import TemplateLibrary, shared_templates_dir
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
            f"{k}: {v.type}" + ("" if v.required else f" = {v.default!r}")
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
