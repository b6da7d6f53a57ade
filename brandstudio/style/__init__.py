"""The brand's look, learned from the brand's own material.

The front doors: :func:`new_profile` (``brandstudio profile new``: a complete profile from a
logo, a few stills and a font, the palette taken from them) and :func:`fit_lut` (``brandstudio lut fit``): a 33-point 3D LUT fitted to a
colourist's graded before/after stills (regularised least squares over the lattice), or baked
from the colour transfer between the model's footage and the brand's reference stills; written
as ``.cube``, with a before/after preview, and set as the profile's ``[colour] lut`` on request.
The fitting itself is :mod:`.lut_fit`; reading stills and clips and editing the profile,
:mod:`.lut_profile`.

Example:
    >>> from brandstudio.style import fit_lut   # doctest: +SKIP
    >>> result = fit_lut("brand_profiles/aurora-coffee", pairs=("grades/before", "grades/after"),
    ...                  output="aurora.cube", preview="aurora-preview.png")  # doctest: +SKIP
    >>> result.fit.held_out_delta_e   # doctest: +SKIP
    {'mean': 0.4, 'p95': 1.1, 'max': 3.0}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import RequestError
from ..files import check_writable
from ..profile import BrandProfile, load_profile
from .lora_train import DEFAULT_TARGET_MODULES, LoraTrainingConfig, LoraTrainingResult, train_lora
from .lut_fit import BAKEABLE_METHODS, LutFit, apply_lut, fit_pairs, fit_references, write_cube
from .lut_profile import read_footage, read_pairs, read_stills, sample_footage, set_profile_lut, write_preview
from .onboard import NewProfile, extract_palette, new_profile

__all__ = [
    "BAKEABLE_METHODS",
    "DEFAULT_TARGET_MODULES",
    "LoraTrainingConfig",
    "LoraTrainingResult",
    "LutFit",
    "LutFitResult",
    "NewProfile",
    "apply_lut",
    "extract_palette",
    "fit_lut",
    "fit_pairs",
    "fit_references",
    "new_profile",
    "train_lora",
    "write_cube",
]


@dataclass(frozen=True)
class LutFitResult:
    """What ``lut fit`` made: the fit (with its ΔE figures), the ``.cube``, the preview, and
    whether the profile now uses it."""

    fit: LutFit
    cube: Path
    preview: Path | None
    applied: bool


def fit_lut(
    profile: str | Path | BrandProfile,
    *,
    pairs: tuple[str | Path, str | Path] | None = None,
    footage: Sequence[str | Path] = (),
    references: str | Path | None = None,
    method: str = "chroma",
    size: int = 33,
    smoothness: float = 10.0,
    output: str | Path | None = None,
    preview: str | Path | None = None,
    apply: bool = False,
    cache: str | Path | bool | None = True,
) -> LutFitResult:
    """Fit a LUT for ``profile`` and write it.

    Args:
        pairs: ``(before_dir, after_dir)``: stills and their graded versions, matched by name.
            Without pairs, the LUT is the transfer from ``footage`` to ``references``.
        footage: the model's own clips or stills (renders of the profile without its LUT);
            default: the profile's first ``[[scenes]]`` generated through the scene cache
            (``cache``: a path, or False for none).
        references: a folder of the brand's reference stills (default: the profile's
            ``references/`` folder).
        method: ``"chroma"`` (default: the references' colour, the footage's own lightness),
            ``"mkl"`` or ``"reinhard"`` (colour and lightness), for a fit to references.
        size, smoothness: lattice points per axis; the weight of smoothness (pairs).
        output: the ``.cube`` to write (default: ``<profile id>-fitted.cube`` here, or
            ``luts/<profile id>-fitted.cube`` inside the profile with ``apply``).
        preview: a PNG to write: a still as it is, through the LUT (and the colourist's grade).
        apply: point the profile's ``[colour] lut`` at the new table (the file is written inside
            the profile; the profile is validated, and brand.toml restored if it does not load).
    """
    prof = profile if isinstance(profile, BrandProfile) else load_profile(profile)
    interpolation = prof.spec.colour.interpolation
    name = f"{prof.id}-fitted"
    cube = Path(output) if output is not None else (prof.root / "luts" if apply else Path.cwd()) / f"{name}.cube"
    if apply and not cube.resolve().is_relative_to(prof.root.resolve()):
        raise RequestError(f"--apply sets the profile's LUT, so the table must be inside the profile; {cube} is not",
                           field="output", value=str(cube),
                           fix=f"leave out --output, or name a file under {prof.root / 'luts'}")  # fmt: skip
    # both outputs checked before any work: neither is written unless both can be
    check_writable(cube, error=RequestError, what="the LUT", field="output", profile=prof.id)
    if preview is not None:
        check_writable(preview, error=RequestError, what="the preview", field="preview", profile=prof.id)
    if pairs is not None:
        graded = read_pairs(*pairs)
        fit = fit_pairs(graded, size=size, smoothness=smoothness, interpolation=interpolation, name=name)
        panels = list(graded[0])
    else:
        ref_dir = Path(references) if references is not None else prof.root / (prof.spec.style.references or "references")
        if not footage and not ref_dir.is_dir():
            raise RequestError("no graded pairs and no reference stills: nothing to fit", field="references",
                               fix="pass --pairs BEFORE AFTER (graded stills), or --references DIR (the brand's "
                               "stills; default <profile>/references) with --footage CLIP (the model's renders)")  # fmt: skip
        refs = read_stills(ref_dir)
        frames = read_footage(footage) if footage else sample_footage(prof, cache=cache)
        fit = fit_references(frames, refs, method=method, size=size, name=name)
        panels = [frames[0]]
    write_cube(fit.lut, cube, title=name)
    shown = write_preview(preview, fit.lut, panels, interpolation) if preview is not None else None
    if apply:
        set_profile_lut(prof.root, cube)
    return LutFitResult(fit, cube, shown, apply)
