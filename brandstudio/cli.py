"""The ``brandstudio`` command line (Typer).

::

    brandstudio render brand_profiles/aurora-coffee product-hero --var product="Night Roast" --aspect 9:16
    brandstudio profile validate brand_profiles/aurora-coffee
    brandstudio profile show brand_profiles/qinglan-tea
    brandstudio profile schema > brand.schema.json
    brandstudio templates list --profile brand_profiles/aurora-coffee

Errors print as one clear message (what, where, fix) with exit status 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from .errors import BrandStudioError

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

out = Console()
err = Console(stderr=True)


def _fail(exc: BrandStudioError) -> None:
    err.print(f"[bold red]error:[/] {type(exc).__name__}", highlight=False)
    err.print(str(exc), markup=False, highlight=False)
    raise typer.Exit(2)


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
    duration: float | None = typer.Option(None, help="seconds (default: the profile's)"),
    resolution: int | None = typer.Option(None, help="delivered shorter side in px (default: the profile's)"),
    device: str = typer.Option("auto", help="auto, cuda or cpu"),
    as_json: bool = typer.Option(False, "--json", help="print the RenderResult as JSON"),
) -> None:
    """Render one clip and print where it is."""
    from .studio import BrandStudio

    try:
        studio = BrandStudio(profile, output_dir=output_dir, device=device)
        with err.status(f"rendering {template} for {studio.profile.name}…"):
            result = studio.render(
                template,
                aspect=aspect,
                seed=seed,
                output=output,
                duration=duration,
                resolution=resolution,
                **_parse_vars(var),
            )
    except BrandStudioError as exc:
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
    print(result.path)


@profile_app.command("validate")
def profile_validate(paths: list[Path] = typer.Argument(..., help="one or more profile directories")) -> None:
    """Check profiles: schema, every asset opened, hashes. Exit 2 if any is invalid."""
    from .profile.loader import load_profile

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
    from .profile.loader import load_profile

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
    from .profile.schema import profile_json_schema

    print(json.dumps(profile_json_schema(), indent=2, ensure_ascii=False))


@templates_app.command("list")
def templates_list(
    profile: Path | None = typer.Option(None, help="include this profile's own templates"),
) -> None:
    """List templates with their variables."""
    from .prompts.templates import TemplateLibrary, shared_templates_dir

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


def main() -> None:  # pragma: no cover - entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
