"""``brandstudio lut fit``: a LUT fitted to the brand's graded stills or reference stills."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..errors import BrandStudioError
from ..style import fit_lut
from .app import err, fail, lut_app, out
from .display import json_text, safe


@lut_app.command("fit")
def lut_fit(
    profile: Path = typer.Argument(..., help="the brand profile directory"),
    pairs: tuple[Path, Path] = typer.Option(None, "--pairs", metavar="BEFORE AFTER",
                                            help="folders of stills and their graded versions (same names)"),
    footage: list[Path] = typer.Option([], "--footage", help="the model's clips or stills (repeat; default: the profile's scenes, generated through the scene cache)"),
    references: Path = typer.Option(None, "--references", help="the brand's stills (default: <profile>/references)"),
    method: str = typer.Option(
        "chroma", "--method", help="transfer for a fit to references: chroma (colour only), mkl or reinhard"
    ),
    size: int = typer.Option(33, "--size", help="lattice points per axis"),
    smoothness: float = typer.Option(10.0, "--smoothness", help="how smooth the table is where no pixel says (pairs)"),
    output: Path = typer.Option(None, "--output", "-o", help="the .cube to write"),
    preview: Path = typer.Option(None, "--preview", help="a before/after PNG to write"),
    apply: bool = typer.Option(False, "--apply", help="set it as the profile's colour.lut (brand.toml)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:  # fmt: skip
    """Fit a 3D LUT: to graded before/after stills, or from the model's footage to reference stills."""

    try:
        result = fit_lut(
            profile, pairs=pairs if pairs and pairs[0] is not None else None, footage=footage, references=references,
            method=method, size=size, smoothness=smoothness, output=output, preview=preview, apply=apply,
        )  # fmt: skip
    except BrandStudioError as exc:
        fail(exc)
    fit = result.fit
    if as_json:
        data = {**fit.as_dict(), "cube": str(result.cube), "preview": str(result.preview) if result.preview else None,
                "applied": result.applied}  # fmt: skip
        print(json_text(json.dumps(data, indent=2, ensure_ascii=False)))
        return
    if fit.held_out_delta_e:
        de, was = fit.held_out_delta_e, fit.before_delta_e
        err.print(f"fitted {fit.lut.size}-point LUT to {fit.pixels} graded pixels: ΔE2000 on held-back pixels "
                  f"mean {de['mean']:.2f}, p95 {de['p95']:.2f} (ungraded: mean {was['mean']:.2f})", highlight=False)  # fmt: skip
    else:
        err.print(f"baked the {fit.method} transfer from the footage to the references into a "
                  f"{fit.lut.size}-point LUT", highlight=False)  # fmt: skip
    if result.preview:
        err.print(f"preview: {safe(result.preview)}", highlight=False)
    if result.applied:
        err.print(f"[green]applied[/]: {safe(profile)} now grades with {safe(result.cube)}", highlight=False)
    out.print(safe(result.cube), highlight=False)
